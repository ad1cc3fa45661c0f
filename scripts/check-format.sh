#!/usr/bin/env bash
# Checks that every C++ file of the project is formatted as .clang-format says (clang-format 14, from
# Debian). `scripts/check-format.sh --fix` reformats them in place instead.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

fix=0
[[ "${1:-}" == "--fix" ]] && fix=1
command -v clang-format >/dev/null || { echo "check-format: clang-format is not installed (scripts/install-deps.sh --test)" >&2; exit 2; }

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files -- '*.cpp' '*.hpp' '*.h')
else
  mapfile -t files < <(find common protocol dispatch_server transcoding_engine submission_client tests bench \
                         -name '*.cpp' -o -name '*.hpp' -o -name '*.h' 2>/dev/null | sort)
fi
[[ ${#files[@]} -gt 0 ]] || { echo "check-format: no C++ files found" >&2; exit 2; }

if [[ $fix -eq 1 ]]; then
  clang-format -i "${files[@]}"
  echo "check-format: reformatted ${#files[@]} files"
  exit 0
fi

bad=()
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [[ ${#bad[@]} -gt 0 ]]; then
  echo "check-format: ${#bad[@]} of ${#files[@]} files are not formatted (run scripts/check-format.sh --fix):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  clang-format --dry-run "${bad[0]}" 2>&1 | head -20 >&2
  exit 1
fi
echo "check-format: ${#files[@]} files formatted"
