#!/usr/bin/env bash
# Installs what is missing, builds everything and runs the whole test suite.
#   scripts/test.sh                      # the normal run (CI runs this)
#   scripts/test.sh --sanitize address   # ASan+UBSan build in build-asan/: unit and integration tests
#   scripts/test.sh --sanitize thread    # TSan build in build-tsan/: the concurrency-heavy tests only
# Extra arguments after `--` go to ctest (e.g. `-- -R Config`). See docs/testing.md.
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

# Sanitizer reports fail the test that triggers them; suppressions (each justified) live in tests/.
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$ROOT/tests/ubsan.supp"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$ROOT/tests/tsan.supp"

case "$sanitize" in
  "")
    cmake --build "$build" -j2
    ctest --test-dir "$build" --output-on-failure -j2 --timeout 600 "${ctest_args[@]}"
    ;;
  address)
    # The unit and integration tests (their daemons are built as dependencies); not the OpenAPI
    # lint, the format check, the example-config check, the fuzz smoke run, the benchmark smoke run or the packaging
    # checks, which have nothing of their own to instrument.
    cmake --build "$build" -j2 --target distconv_tests
    ctest --test-dir "$build" --output-on-failure -j2 --timeout 900 -LE '^(spec|config|fuzz|bench|packaging|format)$' "${ctest_args[@]}"
    ;;
  thread)
    # The tests where threads meet: the scheduler, the HTTP client, the dispatch server's
    # handlers and the engine's runner.
    cmake --build "$build" -j2 --target test_scheduler test_http test_dispatch test_engine
    ctest --test-dir "$build" --output-on-failure -j2 --timeout 900 -L '^(scheduler|http|dispatch|engine)$' \
      "${ctest_args[@]}"
    ;;
esac
