#!/usr/bin/env bash
# Installs what is missing, builds everything and runs the whole test suite.
#   scripts/test.sh                      # the normal run (CI runs this)
#   scripts/test.sh --sanitize address   # ASan+UBSan build in build-asan/
#   scripts/test.sh --sanitize thread    # TSan build in build-tsan/
# Extra arguments after `--` go to ctest (e.g. `-- -R Config`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

sanitize=""
ctest_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sanitize) sanitize="$2"; shift 2 ;;
    --sanitize=*) sanitize="${1#*=}"; shift ;;
    --) shift; ctest_args=("$@"); break ;;
    *) echo "usage: scripts/test.sh [--sanitize address|thread] [-- ctest args]" >&2; exit 2 ;;
  esac
done

scripts/install-deps.sh --test

# The OpenAPI linter, installed project-locally (pinned: newer versions need node >= 20.19).
REDOCLY=.tools/redocly/node_modules/.bin/redocly
if [[ ! -x $REDOCLY ]]; then
  echo "test: installing @redocly/cli into .tools/redocly"
  npm install --prefix .tools/redocly --no-audit --no-fund --loglevel=error @redocly/cli@1.34.20 >/dev/null
fi

build=build
case "$sanitize" in
  "") ;;
  address) build=build-asan ;;
  thread) build=build-tsan ;;
  *) echo "test: --sanitize must be address or thread" >&2; exit 2 ;;
esac
werror=OFF
[[ -n "${CI:-}" ]] && werror=ON

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDISTCONV_WERROR=$werror -DDISTCONV_SANITIZE="$sanitize" >/dev/null
cmake --build "$build" -j2
ctest --test-dir "$build" --output-on-failure -j2 --timeout 600 "${ctest_args[@]}"
