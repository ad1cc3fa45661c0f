#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan+UBSan) in build-fuzz/ and runs each
# for a while on its seed corpus (tests/fuzz/corpus/<target>/). Fails on the first crash, leak,
# sanitizer report or violated invariant, and prints the reproducer.
#   scripts/fuzz.sh                       # every target, 10 s each
#   scripts/fuzz.sh --seconds 300 --target fuzz_options
#   scripts/fuzz.sh --build-only
#   scripts/fuzz.sh --reproduce fuzz_options crash-<sha1>   # runs one input, under the debugger-friendly build
# New inputs the fuzzer finds go to build-fuzz/corpus/<target>/ (the seed corpus stays untouched);
# copy interesting ones into tests/fuzz/corpus/<target>/ to keep them.
# DISTCONV_FUZZ_SEED=N fixes libFuzzer's seed (the ctest smoke run sets 1).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

seconds=10
targets=()
build_only=0
reproduce=()
build=${DISTCONV_FUZZ_BUILD_DIR:-build-fuzz}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --target) targets+=("$2"); shift 2 ;;
    --build-only) build_only=1; shift ;;
    --build-dir) build="$2"; shift 2 ;;
    --reproduce) reproduce=("$2" "$3"); shift 3 ;;
    *) echo "usage: scripts/fuzz.sh [--seconds N] [--target NAME]... [--build-only] [--build-dir DIR] [--reproduce TARGET FILE]" >&2
       exit 2 ;;
  esac
done
all_targets=(fuzz_options fuzz_progress fuzz_ffprobe fuzz_config)
[[ ${#targets[@]} -eq 0 ]] && targets=("${all_targets[@]}")
[[ ${#reproduce[@]} -gt 0 ]] && targets=("${reproduce[0]}")

for tool in clang clang++; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool is missing (scripts/install-deps.sh --test)" >&2; exit 2; }
done

start=$(date +%s)
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDISTCONV_FUZZ=ON >/dev/null
cmake --build "$build" -j2 --target "${targets[@]}"
echo "fuzz: built ${targets[*]} in $(( $(date +%s) - start )) s"
[[ $build_only -eq 1 ]] && exit 0

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

if [[ ${#reproduce[@]} -gt 0 ]]; then
  exec "$build/tests/fuzz/${reproduce[0]}" "${reproduce[1]}"
fi

failed=0
for t in "${targets[@]}"; do
  seeds="tests/fuzz/corpus/$t"
  work="$build/corpus/$t"
  artifacts="$build/artifacts/$t/"
  rm -rf "$artifacts"
  mkdir -p "$work" "$artifacts"
  log="$build/$t.log"
  extra=()
  [[ -f tests/fuzz/$t.dict ]] && extra=(-dict="tests/fuzz/$t.dict")
  # DISTCONV_FUZZ_SEED fixes libFuzzer's random seed (the test suite's smoke run uses one, so it
  # walks the same mutations every time); unset, every run explores anew.
  [[ -n ${DISTCONV_FUZZ_SEED:-} ]] && extra+=(-seed="$DISTCONV_FUZZ_SEED")
  echo "fuzz: $t for ${seconds} s (seeds: $seeds)"
  # -max_len: long enough for the longest ffprobe seed and for lines past the progress parser's limit.
  if "$build/tests/fuzz/$t" "$work" "$seeds" "${extra[@]}" -max_total_time="$seconds" -max_len=16384 \
       -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts" >"$log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^Done ' "$log" | sed "s/^/fuzz: $t: /" || true
  else
    failed=1
    echo "fuzz: $t FAILED; the end of $log:" >&2
    tail -n 60 "$log" >&2
    for crash in "$artifacts"*; do
      [[ -f $crash ]] || continue
      echo "fuzz: reproducer $crash (base64: $(base64 -w0 "$crash" | head -c 2000))" >&2
      echo "fuzz: reproduce with: scripts/fuzz.sh --reproduce $t $crash" >&2
    done
  fi
done
echo "fuzz: done in $(( $(date +%s) - start )) s"
exit $failed
