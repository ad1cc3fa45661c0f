#!/usr/bin/env bash
# The fault harness with soak figures: 200 jobs, 100 engine/network/pool faults, 20 dispatch
# SIGKILLs at chosen requests. Same binary as the CI run (tests/integration/fault), bigger numbers.
#   scripts/soak.sh                                  # soak figures, a random seed (printed)
#   scripts/soak.sh --seed 1234                      # replay a schedule
#   scripts/soak.sh --jobs 40 --faults 20 --restarts 4 --engines 3   # the CI figures
#   scripts/soak.sh --report soak.json               # also write the run's figures as JSON
# Builds into build/ (RelWithDebInfo) unless BUILD_DIR is set.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD_DIR=${BUILD_DIR:-build}

seed=""
jobs=200
faults=100
restarts=20
engines=3
drain=600
report=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seed) seed="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --faults) faults="$2"; shift 2 ;;
    --restarts) restarts="$2"; shift 2 ;;
    --engines) engines="$2"; shift 2 ;;
    --drain-seconds) drain="$2"; shift 2 ;;
    --report) report="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "usage: scripts/soak.sh [--seed N] [--jobs N] [--faults N] [--restarts N] [--engines N] [--drain-seconds N] [--report FILE]" >&2; exit 2 ;;
  esac
done

if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$BUILD_DIR" -j"$(nproc)" --target test_fault

[[ -n $seed ]] && export DISTCONV_FAULT_SEED="$seed"
[[ -n $report ]] && export DISTCONV_FAULT_REPORT="$(realpath -m "$report")"
export DISTCONV_FAULT_JOBS="$jobs" DISTCONV_FAULT_FAULTS="$faults" DISTCONV_FAULT_DISPATCH_RESTARTS="$restarts"
export DISTCONV_FAULT_ENGINES="$engines" DISTCONV_FAULT_DRAIN_SECONDS="$drain"
exec "$BUILD_DIR/tests/test_fault" --gtest_filter='FaultHarness.RandomFaultSchedule*'
