#!/usr/bin/env bash
# Lints the OpenAPI spec with the project-local @redocly/cli (scripts/test.sh installs it).
# Usage: tests/lint_openapi.sh [SPEC]   (default: protocol/openapi.yaml). Exits non-zero on errors.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SPEC="${1:-$ROOT/protocol/openapi.yaml}"
REDOCLY="$ROOT/.tools/redocly/node_modules/.bin/redocly"
CONFIG="$ROOT/protocol/redocly.yaml"

if [[ ! -x "$REDOCLY" ]]; then
    echo "lint_openapi.sh: redocly not found at $REDOCLY" >&2
    echo "Install it with:" >&2
    echo "  (cd \"$ROOT\" && npm install --prefix .tools/redocly --no-audit --no-fund @redocly/cli@1.34.20)" >&2
    echo "(scripts/test.sh does this for you.)" >&2
    exit 2
fi
if [[ ! -f "$SPEC" ]]; then
    echo "lint_openapi.sh: no such spec: $SPEC" >&2
    exit 2
fi

# No telemetry or update checks: the test machine may have no network.
export REDOCLY_TELEMETRY=off
export REDOCLY_SUPPRESS_UPDATE_NOTICE=true

args=(lint --format=stylish)
[[ -f "$CONFIG" ]] && args+=(--config "$CONFIG")
exec "$REDOCLY" "${args[@]}" "$SPEC"
