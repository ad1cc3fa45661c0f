#!/usr/bin/env bash
# distconv benchmarks: each figure is a ratio against a ceiling measured in the same run (local ffmpeg,
# the HTTP library's no-op server, SQLite's commit rate, `cp`), repeated, reported as median and spread.
#
#   scripts/bench.sh [--quick|--full|--smoke] [--repeat N] [--big] [--only NAME,...]
#                    [--build-dir DIR] [--work-dir DIR] [--out DIR] [--no-doc] [--keep-results]
#
#   --quick   (default) a few minutes on 2 cores: 10 s clip, 512 MiB file, short load phases
#   --full    the issue's sizes: 30 s 1080p30 clip, 4 GiB file, longer load phases
#   --smoke   seconds: tiny sizes, one repeat, no doc (the ctest `bench_smoke`)
#   --big     the data plane with a 20 GiB file
#   --only    e2e,overhead,latency,control,data,dashboard,split (engine CPU is measured inside e2e)
#   --keep-results  add to the results already in --out (default build/bench-results) instead of
#             starting over: parts run separately make one table
#
# `split` (split mode: one 60 s 1080p30 source, one engine on one core against two engines on a core
# each) takes about 2-3 minutes a repeat on 2 cores, so it runs only when named (--only split), except
# in --smoke, where it uses a 4 s 320x240 clip. It needs 2 CPUs; its source is cached in the work dir.
#
# Prints a table and writes docs/benchmarks.md (the table, the command, the machine) followed by
# bench/notes.md (what the figures mean, the misses and what would close them).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COMMAND="scripts/bench.sh $*"

MODE=quick REPEAT="" BIG=0 ONLY="" BUILD=$ROOT/build WORK="" OUT="" DOC=1 KEEP=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    --smoke) MODE=smoke DOC=0 ;;
    --big) BIG=1 ;;
    --repeat) REPEAT=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --build-dir) BUILD=$2; shift ;;
    --work-dir) WORK=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-doc) DOC=0 ;;
    --keep-results) KEEP=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

# SPLIT_*: the split part's source (seconds, size) and segment length; the same in quick and full.
case $MODE in
  smoke) E2E_SECONDS=1 E2E_SIZE=320x240 LAT_SAMPLES=10 ENGINES="10" HOLD_ENGINES="10" HOLD_SECONDS=1 SIM_WARMUP=0.5 SIM_SECONDS=1
         HAMMER_SECONDS=0.5 DATA_MIB=16 DEF_REPEAT=1 SPLIT_SECONDS=4 SPLIT_SIZE=320x240 SPLIT_SEGMENT=2 OVERHEAD_SAMPLES=2 ;;
  quick) E2E_SECONDS=10 E2E_SIZE=1920x1080 LAT_SAMPLES=100 ENGINES="10 100 1000" HOLD_ENGINES="1000 5000" HOLD_SECONDS=10 SIM_WARMUP=2 SIM_SECONDS=5
         HAMMER_SECONDS=3 DATA_MIB=512 DEF_REPEAT=3 SPLIT_SECONDS=60 SPLIT_SIZE=1920x1080 SPLIT_SEGMENT=15 OVERHEAD_SAMPLES=10 ;;
  full)  E2E_SECONDS=30 E2E_SIZE=1920x1080 LAT_SAMPLES=300 ENGINES="10 100 1000" HOLD_ENGINES="1000 5000" HOLD_SECONDS=15 SIM_WARMUP=3 SIM_SECONDS=15
         HAMMER_SECONDS=5 DATA_MIB=4096 DEF_REPEAT=5 SPLIT_SECONDS=60 SPLIT_SIZE=1920x1080 SPLIT_SEGMENT=15 OVERHEAD_SAMPLES=20 ;;
esac
# The default parts: split is minutes a repeat, so only the smoke run includes it unasked.
if [[ -z $ONLY ]]; then
  ONLY="e2e,overhead,latency,control,data,dashboard"
  [[ $MODE == smoke ]] && ONLY+=",split"
fi
[[ $BIG == 1 ]] && DATA_MIB=20480
REPEAT=${REPEAT:-$DEF_REPEAT}
want() { [[ ",$ONLY," == *",$1,"* ]]; }

DISPATCH=$BUILD/dispatch_server/distconv-dispatch
ENGINE=$BUILD/transcoding_engine/distconv-engine
CLI=$BUILD/submission_client/distconv
LOADGEN=$BUILD/bench/distconv-loadgen
for b in "$DISPATCH" "$ENGINE" "$CLI" "$LOADGEN"; do
  [[ -x $b ]] || { echo "bench: $b is missing; build it: cmake --build $BUILD --target distconv-dispatch distconv-engine distconv distconv-loadgen" >&2; exit 1; }
done
for t in ffmpeg ffprobe jq curl; do command -v $t >/dev/null || { echo "bench: $t is needed" >&2; exit 1; }; done

# /tmp and the build tree are on the same disk here; the work dir holds every file the data plane makes.
MADE_WORK=0
if [[ -z $WORK ]]; then WORK=$(mktemp -d "${TMPDIR:-/tmp}/distconv-bench.XXXXXX"); MADE_WORK=1; fi
mkdir -p "$WORK"
OUT=${OUT:-$BUILD/bench-results}
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
[[ $KEEP == 1 ]] || : > "$RESULTS"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"/run-* "$WORK"/data-plane "$WORK"/*.mp4
  if [[ $MADE_WORK == 1 ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
record() { printf '%s\t%s\n' "$1" "$2" >> "$RESULTS"; }  # metric value
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.4f", b-a}'; }
calc() { awk "BEGIN{printf \"%.6g\", $1}"; }
median_file() { sort -g "$1" | awk 'NF{a[++n]=$1} END{print (n%2) ? a[(n+1)/2] : (a[n/2]+a[n/2+1])/2}'; }

stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local kept=()
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
  PIDS=("${kept[@]}")
}

# start_dispatch DIR [serve options...]: sets DISPATCH_PID, API, USER_KEY, ENGINE_KEY.
start_dispatch() {
  local dir=$1; shift
  mkdir -p "$dir"
  USER_KEY=$("$DISPATCH" keys create --data-dir "$dir/data" --role admin --name bench-user 2>/dev/null)
  ENGINE_KEY=$("$DISPATCH" keys create --data-dir "$dir/data" --role engine --name bench-engine 2>/dev/null)
  "$DISPATCH" serve --data-dir "$dir/data" --listen 127.0.0.1:0 --log-level warn --log-file "$dir/dispatch.log" "$@" \
    > "$dir/dispatch.out" 2>&1 < /dev/null &
  DISPATCH_PID=$!
  PIDS+=("$DISPATCH_PID")
  ENGINES_STARTED=0
  for _ in $(seq 1 200); do
    grep -q '^listening on ' "$dir/dispatch.out" 2>/dev/null && break
    kill -0 "$DISPATCH_PID" 2>/dev/null || { cat "$dir/dispatch.out" >&2; exit 1; }
    sleep 0.05
  done
  SERVER="http://$(sed -n 's/^listening on //p' "$dir/dispatch.out" | head -1)"
  API=$SERVER/api/v1
}

# start_engine DIR [engine options...]: one more engine on the last started dispatch server; returns
# once the server lists as many engines online as were started on it.
start_engine() {
  local dir=$1; shift
  mkdir -p "$dir"
  ENGINES_STARTED=$((ENGINES_STARTED + 1))
  "$ENGINE" --server "$SERVER" --key "$ENGINE_KEY" --work-dir "$dir/engine" --slots 1 --benchmark off \
    --log-level warn --log-file "$dir/engine.log" "$@" > "$dir/engine.out" 2>&1 < /dev/null &
  ENGINE_PID=$!
  PIDS+=("$ENGINE_PID")
  # Registered once the server lists it.
  for _ in $(seq 1 200); do
    [[ $(curl -fsS -H "Authorization: Bearer $USER_KEY" "$API/engines" |
         jq '[.items[] | select(.state != "offline")] | length') -ge $ENGINES_STARTED ]] && return
    kill -0 "$ENGINE_PID" 2>/dev/null || { cat "$dir/engine.out" >&2; exit 1; }
    sleep 0.05
  done
  echo "bench: the engine did not register" >&2; exit 1
}

# CPU seconds of a process: own (utime+stime) and its waited-for children's (cutime+cstime).
cpu_times() {
  local tck; tck=$(getconf CLK_TCK)
  awk -v t="$tck" '{sub(/^.*\) /, ""); printf "%.4f %.4f\n", ($12+$13)/t, ($14+$15)/t}' "/proc/$1/stat"
}
rss_kib() { awk -v k="$2" '$1==k":"{print $2}' "/proc/$1/status"; }

tiny_clip() {  # a 0.2 s 64x64 clip: the sources of the control-plane jobs
  ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=64x64:rate=10:duration=0.2" \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p "$1"
}

# --- 1 + 5: end-to-end overhead and the engine's CPU share --------------------------------------------
bench_e2e() {
  local src=$WORK/e2e-source.mp4
  log "e2e: making a ${E2E_SECONDS} s ${E2E_SIZE}@30 source"
  ffmpeg -nostdin -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=$E2E_SIZE:rate=30:duration=$E2E_SECONDS" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$E2E_SECONDS" \
    -c:v libx264 -preset ultrafast -crf 18 -pix_fmt yuv420p -c:a aac -b:a 192k -shortest "$src"
  local dir=$WORK/run-e2e
  start_dispatch "$dir"
  start_engine "$dir"
  export DISTCONV_SERVER=$SERVER DISTCONV_API_KEY=$USER_KEY
  local argv=() i which t0 t1 own kids e_own0 e_kids0 e_own1 e_kids1
  for i in $(seq 1 "$REPEAT"); do
    # Alternate the order so a drifting machine load does not favour one side; the first run is
    # remote, as it yields the job's argument vector.
    local order="remote local"; (( i % 2 == 0 )) && order="local remote"
    for which in $order; do
      if [[ $which == remote ]]; then
        read -r e_own0 e_kids0 < <(cpu_times "$ENGINE_PID")
        t0=$(now)
        "$CLI" submit "$src" -o "$dir/remote.mp4" --force --wait --preset h264-web > "$dir/submit.out" 2>&1 ||
          { cat "$dir/submit.out" >&2; exit 1; }
        t1=$(now)
        read -r e_own1 e_kids1 < <(cpu_times "$ENGINE_PID")
        record e2e.distconv_s "$(elapsed "$t0" "$t1")"
        own=$(calc "$e_own1-$e_own0"); kids=$(calc "$e_kids1-$e_kids0")
        record engine.own_cpu_s "$own"
        record engine.ffmpeg_cpu_s "$kids"
        record engine.cpu_share_pct "$(calc "100*$own/$kids")"
        if [[ ${#argv[@]} -eq 0 ]]; then
          local job cmd
          job=$(curl -fsS -H "Authorization: Bearer $USER_KEY" "$API/jobs?limit=1" | jq -r '.items[0].job_id')
          cmd=$(curl -fsS -H "Authorization: Bearer $USER_KEY" "$API/jobs/$job" | jq -r .ffmpeg_command)
          eval "argv=($cmd)"  # POSIX-shell quoted by the server (media::quote_command)
          printf '%s\n' "$cmd" > "$OUT/e2e-ffmpeg-command.txt"
        fi
      else
        local run=() a
        for a in "${argv[@]:1}"; do
          case $a in '{input}') run+=("$src") ;; '{output}') run+=("$dir/local.mp4") ;; *) run+=("$a") ;; esac
        done
        rm -f "$dir/local.mp4"
        t0=$(now)
        # The job's argv already holds `-progress pipe:1 -nostats`, as the engine runs it.
        ffmpeg "${run[@]}" > /dev/null 2> "$dir/local.err" < /dev/null ||
          { cat "$dir/local.err" >&2; exit 1; }
        t1=$(now)
        record e2e.local_s "$(elapsed "$t0" "$t1")"
      fi
    done
    local l r
    l=$(grep '^e2e.local_s' "$RESULTS" | tail -1 | cut -f2)
    r=$(grep '^e2e.distconv_s' "$RESULTS" | tail -1 | cut -f2)
    record e2e.ratio "$(calc "$r/$l")"
    log "e2e: run $i of $REPEAT: distconv ${r} s, local ${l} s, engine CPU $(grep '^engine.cpu_share_pct' "$RESULTS" | tail -1 | cut -f2) % of ffmpeg's"
  done
  stop_pid "$ENGINE_PID"
  stop_pid "$DISPATCH_PID"
}

# --- 1b: fixed per-job overhead ------------------------------------------------------------------------
# What a job costs beyond its ffmpeg run: a 1 s clip through `distconv submit --wait` (upload, SHA-256
# and ffprobe on the server, queue, claim, the engine's fetch and checks, the sandboxed ffmpeg, the
# output's upload and check, the CLI's download) minus local ffmpeg on the job's own argv, in pairs
# whose order alternates; per repeat the median of OVERHEAD_SAMPLES differences.
bench_overhead() {
  local src=$WORK/overhead-source.mkv
  ffmpeg -nostdin -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=640x360:rate=30:duration=1" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=1" \
    -c:v libx264 -preset ultrafast -crf 18 -pix_fmt yuv420p -c:a aac -b:a 128k -shortest "$src"
  local dir=$WORK/run-overhead
  start_dispatch "$dir"
  start_engine "$dir"
  export DISTCONV_SERVER=$SERVER DISTCONV_API_KEY=$USER_KEY
  # One job first, untimed: its argument vector for the local runs, and warm caches on both sides.
  "$CLI" submit "$src" -o "$dir/remote.mp4" --force --wait --preset h264-web > "$dir/submit.out" 2>&1 ||
    { cat "$dir/submit.out" >&2; exit 1; }
  local job cmd argv=() run=() a
  job=$(curl -fsS -H "Authorization: Bearer $USER_KEY" "$API/jobs?limit=1" | jq -r '.items[0].job_id')
  cmd=$(curl -fsS -H "Authorization: Bearer $USER_KEY" "$API/jobs/$job" | jq -r .ffmpeg_command)
  eval "argv=($cmd)"  # POSIX-shell quoted by the server (media::quote_command)
  for a in "${argv[@]:1}"; do
    case $a in '{input}') run+=("$src") ;; '{output}') run+=("$dir/local.mp4") ;; *) run+=("$a") ;; esac
  done
  local i k which t0 t1 remote local_s
  for i in $(seq 1 "$REPEAT"); do
    : > "$dir/diffs" ; : > "$dir/remote" ; : > "$dir/local"
    for k in $(seq 1 "$OVERHEAD_SAMPLES"); do
      local order="remote local"; (( k % 2 == 0 )) && order="local remote"
      for which in $order; do
        if [[ $which == remote ]]; then
          t0=$(now)
          "$CLI" submit "$src" -o "$dir/remote.mp4" --force --wait --preset h264-web > "$dir/submit.out" 2>&1 ||
            { cat "$dir/submit.out" >&2; exit 1; }
          t1=$(now); remote=$(elapsed "$t0" "$t1")
        else
          rm -f "$dir/local.mp4"
          t0=$(now)
          ffmpeg "${run[@]}" > /dev/null 2> "$dir/local.err" < /dev/null || { cat "$dir/local.err" >&2; exit 1; }
          t1=$(now); local_s=$(elapsed "$t0" "$t1")
        fi
      done
      echo "$remote" >> "$dir/remote"; echo "$local_s" >> "$dir/local"
      calc "1000*($remote-$local_s)" >> "$dir/diffs"; echo >> "$dir/diffs"
    done
    record overhead.p50_ms "$(median_file "$dir/diffs")"
    record overhead.remote_p50_s "$(median_file "$dir/remote")"
    record overhead.local_p50_s "$(median_file "$dir/local")"
    log "overhead: run $i of $REPEAT: submit --wait minus local ffmpeg, p50 $(grep '^overhead.p50_ms' "$RESULTS" | tail -1 | cut -f2) ms"
  done
  stop_pid "$ENGINE_PID"
  stop_pid "$DISPATCH_PID"
}

# --- 2: dispatch latency -------------------------------------------------------------------------------
bench_latency() {
  tiny_clip "$WORK/tiny.mp4"
  for i in $(seq 1 "$REPEAT"); do
    # A fresh server each time: the server keeps serving a claim whose client went away until its
    # wait ends, and that claim would take the next run's job.
    local dir=$WORK/run-latency-$i
    start_dispatch "$dir"
    local j
    j=$("$LOADGEN" latency --server "$SERVER" --engine-key "$ENGINE_KEY" --user-key "$USER_KEY" \
      --samples "$LAT_SAMPLES" --source "$WORK/tiny.mp4")
    record latency.p50_ms "$(jq .p50_ms <<<"$j")"
    record latency.p99_ms "$(jq .p99_ms <<<"$j")"
    record latency.max_ms "$(jq .max_ms <<<"$j")"
    record latency.retry_request_ms "$(jq .retry_request_p50_ms <<<"$j")"
    log "latency: run $i of $REPEAT: p50 $(jq .p50_ms <<<"$j") ms, p99 $(jq .p99_ms <<<"$j") ms"
    stop_pid "$DISPATCH_PID"
  done
}

# --- 3: control plane ----------------------------------------------------------------------------------
# record_kernel PREFIX SIM_JSON: what the kernel and the simulated engines' connections saw in the
# measured window (client and server share 127.0.0.1, so the counters cover both sides).
record_kernel() {
  local p=$1 j=$2
  record "$p.listen_overflows" "$(jq .kernel.listen_overflows <<<"$j")"
  record "$p.listen_drops" "$(jq .kernel.listen_drops <<<"$j")"
  record "$p.retransmitted_segments" "$(jq .kernel.retransmitted_segments <<<"$j")"
  record "$p.connections_opened_per_s" "$(jq .connections.opened_per_s <<<"$j")"
  record "$p.connect_p99_ms" "$(jq .connections.connect_p99_ms <<<"$j")"
}

# Idle engines held: N engines registered, each heartbeating at the server's default interval and
# long-polling a claim, no jobs. Requests' p99 and errors, the kernel's counters, and the dispatch
# server's resident set per engine (its growth from before the engines registered to the end).
bench_hold() {
  local n i
  for n in $HOLD_ENGINES; do
    for i in $(seq 1 "$REPEAT"); do
      local dir=$WORK/run-hold-$n-$i
      # Each parked claim holds a worker; each engine keeps two connections (claim, heartbeat). The
      # defaults (4096 workers at most, 4096 claims per key, 8192 connections) hold 4000 engines.
      local big=()
      [[ $n -gt 4000 ]] && big=(--http-threads $((n + 128)) --max-claims-per-key $((n + 128))
        --max-connections $((2 * n + 1024)))
      start_dispatch "$dir" "${big[@]}"
      local sim; sim=$("$LOADGEN" sim --server "$SERVER" --engine-key "$ENGINE_KEY" --user-key "$USER_KEY" \
        --engines "$n" --submitters 0 --warmup "$SIM_WARMUP" --seconds "$HOLD_SECONDS" --source "$WORK/tiny.mp4" \
        --server-pid "$DISPATCH_PID")
      echo "$sim" > "$OUT/hold-n$n-$i.json"
      stop_pid "$DISPATCH_PID"
      record "hold.n$n.p99_ms" "$(jq 'if .requests_per_s > 0 then .p99_ms else "none" end' -r <<<"$sim")"
      record "hold.n$n.errors" "$(jq .errors <<<"$sim")"
      record "hold.n$n.heartbeats_per_s" "$(jq .heartbeats_per_s <<<"$sim")"
      record "hold.n$n.rss_kib_per_engine" "$(jq .server_rss_kib_per_idle_engine <<<"$sim")"
      record_kernel "hold.n$n" "$sim"
      log "hold: n=$n run $i of $REPEAT: $(jq -c '{heartbeats_per_s,p99_ms,errors,server_rss_kib_per_idle_engine,kernel,connections}' <<<"$sim")"
      [[ $(jq .errors <<<"$sim") == 0 ]] || jq -c '.ops | map_values(.error_kinds // empty)' <<<"$sim" >&2
      rm -rf "$dir"
    done
  done
}

bench_control() {
  tiny_clip "$WORK/tiny.mp4"
  local n i
  for n in $ENGINES; do
    # Every idle engine parks a long-poll claim on a server thread: the server gets n + 64 threads,
    # and so does the no-op ceiling ("the same thread settings").
    local threads=$((n + 64)) conns=$((n < 32 ? n : 32))
    for i in $(seq 1 "$REPEAT"); do
      local dir=$WORK/run-control-$n-$i
      mkdir -p "$dir"
      # Ceilings: the HTTP library's no-op rate and SQLite's commit rate on this disk.
      "$LOADGEN" noop-server --threads "$threads" > "$dir/noop.out" 2>&1 &
      local noop_pid=$!
      PIDS+=("$noop_pid")
      for _ in $(seq 1 100); do grep -q '^listening on ' "$dir/noop.out" && break; sleep 0.05; done
      local noop_url
      noop_url="http://$(sed -n 's/^listening on //p' "$dir/noop.out")/api/v1/engines/x/heartbeat"
      local body='{"state":"idle","free_disk_bytes":1000000000000,"running_assignments":[]}'
      local noop; noop=$("$LOADGEN" hammer --url "$noop_url" --body "$body" --conns "$conns" --warmup 0.5 \
        --seconds "$HAMMER_SECONDS")
      stop_pid "$noop_pid"
      local sqlite; sqlite=$("$LOADGEN" sqlite --dir "$dir" --seconds 1)

      # Heartbeats as fast as the same client sends no-ops, spread over n registered engines.
      start_dispatch "$dir" --http-threads "$threads" --heartbeat-interval 1s
      local reg='{"hostname":"hb","version":"bench","slots":1,"capabilities":{"ffmpeg_version":"5.1","encoders":[],"decoders":[],"hwaccels":[]},"free_disk_bytes":1000000000000}'
      : > "$dir/hb-urls"
      local k
      for k in $(seq 1 "$n"); do
        printf '{"hostname":"hb-%s"}' "$k" > /dev/null
        curl -fsS -H "Authorization: Bearer $ENGINE_KEY" -H 'Content-Type: application/json' -d "$reg" "$API/engines"
        echo
      done | jq -r --arg api "$API" '"\($api)/engines/\(.engine_id)/heartbeat"' > "$dir/hb-urls"
      local hb; hb=$("$LOADGEN" hammer --urls-file "$dir/hb-urls" --key "$ENGINE_KEY" --body "$body" --conns "$conns" \
        --warmup 0.5 --seconds "$HAMMER_SECONDS")
      stop_pid "$DISPATCH_PID"

      # The lifecycle simulation on a fresh server: n engines at a 1 s heartbeat interval.
      start_dispatch "$dir/sim" --http-threads "$threads" --heartbeat-interval 1s
      local sim; sim=$("$LOADGEN" sim --server "$SERVER" --engine-key "$ENGINE_KEY" --user-key "$USER_KEY" \
        --engines "$n" --submitters 8 --warmup "$SIM_WARMUP" --seconds "$SIM_SECONDS" --source "$WORK/tiny.mp4" \
        --server-pid "$DISPATCH_PID")
      echo "$sim" > "$OUT/sim-n$n-$i.json"
      stop_pid "$DISPATCH_PID"

      record "control.n$n.noop_rps" "$(jq .rate <<<"$noop")"
      record "control.n$n.sqlite_commits_per_s" "$(jq .commits_per_s <<<"$sqlite")"
      record "control.n$n.heartbeat_rps" "$(jq .rate <<<"$hb")"
      record "control.n$n.heartbeat_vs_noop" "$(calc "$(jq .rate <<<"$hb")/$(jq .rate <<<"$noop")")"
      record "control.n$n.heartbeat_p99_ms" "$(jq .p99_ms <<<"$hb")"
      record "control.n$n.heartbeat_errors" "$(jq .errors <<<"$hb")"
      record "control.n$n.sim_lifecycles_per_s" "$(jq .lifecycles_per_s <<<"$sim")"
      record "control.n$n.sim_heartbeats_per_s" "$(jq .heartbeats_per_s <<<"$sim")"
      # No completed request in the window: no latency to speak of ("none"), which misses any target.
      record "control.n$n.sim_p50_ms" "$(jq 'if .requests_per_s > 0 then .p50_ms else "none" end' -r <<<"$sim")"
      record "control.n$n.sim_p99_ms" "$(jq 'if .requests_per_s > 0 then .p99_ms else "none" end' -r <<<"$sim")"
      record "control.n$n.sim_errors" "$(jq .errors <<<"$sim")"
      # The engines' own requests: heartbeats (submits wait for ffprobe and are reported apart).
      record "control.n$n.sim_heartbeat_p99_ms" "$(jq -r '.ops.heartbeat.p99_ms // "none"' <<<"$sim")"
      record "control.n$n.sim_engine_p99_ms" "$(jq -r 'if .requests_per_s > 0 then .engine_p99_ms else "none" end' <<<"$sim")"
      record "control.n$n.sim_submit_p50_ms" "$(jq -r '.ops.submit.p50_ms // "none"' <<<"$sim")"
      record_kernel "control.n$n.sim" "$sim"
      log "control: n=$n run $i of $REPEAT: heartbeats $(jq .rate <<<"$hb")/s vs no-op $(jq .rate <<<"$noop")/s; sim $(jq -c '{lifecycles_per_s,heartbeats_per_s,p50_ms,p99_ms,errors}' <<<"$sim")"
      [[ $(jq .errors <<<"$sim") == 0 ]] || jq -c '.ops | map_values(.error_kinds // empty)' <<<"$sim" >&2
      rm -rf "$dir"
    done
  done
  bench_hold
}

# --- 4: data plane ---------------------------------------------------------------------------------------
# The dashboard on a big database: 100k jobs (--smoke: 2k) of two owners in every state, written
# straight into the SQLite file (the triggers keep the counters as the server's own writes do), then
# the answers the page asks for, each timed as the slowest of 20 requests with curl.
bench_dashboard() {
  local dir=$WORK/dashboard n=100000
  [[ $MODE == smoke ]] && n=2000
  log "dashboard: $n jobs"
  start_dispatch "$dir"
  local db=$dir/data/dispatch.db owner other
  owner=$(sqlite3 "$db" "SELECT id FROM api_keys WHERE name = 'bench-user'")
  other=$(sqlite3 "$db" "INSERT INTO api_keys (id, name, role, key_hash, prefix, created_at)
    VALUES ('BENCHOTHERKEY0000000000000', 'bench-other', 'user', 'x', 'x', 0); SELECT 'BENCHOTHERKEY0000000000000'")
  sqlite3 "$db" ".timeout 10000" "
    WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $n)
    INSERT INTO jobs (id, owner_key_id, state, output_filename, source_filename, created_at, updated_at,
                      finished_at)
    SELECT printf('BENCH%021d', i), CASE WHEN i % 4 = 0 THEN '$other' ELSE '$owner' END,
           CASE i % 10 WHEN 0 THEN 'failed' WHEN 1 THEN 'queued' WHEN 2 THEN 'queued' WHEN 3 THEN 'running'
                       WHEN 4 THEN 'canceled' ELSE 'completed' END,
           printf('film %06d.mp4', (i * 7919) % $n), printf('film %06d.mkv', (i * 7919) % $n),
           (strftime('%s', 'now') * 1000) - ($n - i) * 30, (strftime('%s', 'now') * 1000) - ($n - i) * 30,
           CASE WHEN i % 10 IN (0, 5, 6, 7, 8, 9) THEN (strftime('%s', 'now') * 1000) - ($n - i) * 30 END
    FROM k;"
  local name path worst
  for pair in "list_page:/jobs?all=true" "list_own_page:/jobs" "list_failed:/jobs?all=true&state=failed" \
              "list_queued:/jobs?all=true&state=queued" "list_by_name:/jobs?all=true&sort=name" \
              "list_search:/jobs?all=true&q=film%200999" "overview:/overview"; do
    name=${pair%%:*} path=${pair#*:}
    curl -fsS -o /dev/null -H "Authorization: Bearer $USER_KEY" "$API$path"  # warm the page cache
    worst=$(for _ in $(seq 1 20); do
      curl -fsS -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $USER_KEY" "$API$path"
    done | sort -g | tail -1)
    record "dashboard.${name}_ms" "$(calc "$worst*1000")"
  done
  record dashboard.jobs "$n"
  stop_pid "$DISPATCH_PID"
}

bench_data() {
  local bytes=$((DATA_MIB * 1024 * 1024))
  local free_kib; free_kib=$(df -Pk "$WORK" | awk 'NR==2{print $4}')
  if (( free_kib * 1024 < bytes * 7 )); then
    echo "bench: the data plane needs about 7 x ${DATA_MIB} MiB free in $WORK" >&2; exit 1
  fi
  local dir=$WORK/data-plane
  mkdir -p "$dir"
  local src=$dir/source.nut
  # Raw 1080p video (3 MiB a frame) in NUT: decodable by ffprobe, made at disk speed.
  local frames=$(( (bytes + 3110399) / 3110400 ))
  log "data: making a $((frames * 3110400 / 1048576)) MiB source"
  ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "color=c=gray:size=1920x1080:rate=30" \
    -frames:v "$frames" -c:v rawvideo -pix_fmt yuv420p -f nut "$src"
  bytes=$(stat -c %s "$src")
  local sha; sha=$(sha256sum "$src" | cut -d' ' -f1)
  local mb; mb=$(calc "$bytes/1000000")
  local i
  for i in $(seq 1 "$REPEAT"); do
    local t0 t1 s
    t0=$(now); cp "$src" "$dir/copy.nut"; t1=$(now); rm -f "$dir/copy.nut"
    local cp_rate; cp_rate=$(calc "$mb/$(elapsed "$t0" "$t1")")
    record data.cp_mb_s "$cp_rate"
    # The same copy made durable (`sync FILE` fsyncs it), as every distconv transfer but curl's
    # download is: a second ceiling, reported beside the target's (which is plain `cp`).
    t0=$(now); cp "$src" "$dir/copy.nut"; sync "$dir/copy.nut"; t1=$(now); rm -f "$dir/copy.nut"
    local cp_sync_rate; cp_sync_rate=$(calc "$mb/$(elapsed "$t0" "$t1")")
    record data.cp_sync_mb_s "$cp_sync_rate"

    local run=$dir/run-$i
    start_dispatch "$run"
    local d_base; d_base=$(rss_kib "$DISPATCH_PID" VmRSS)
    # curl upload: declare the source, then PUT it (the answer comes after the SHA-256 check and ffprobe).
    local job
    job=$(curl -fsS -H "Authorization: Bearer $USER_KEY" -H 'Content-Type: application/json' \
      -d "{\"output_filename\":\"o.mkv\",\"video\":{\"codec\":\"copy\"},\"audio\":{\"codec\":\"none\"},\"container\":\"mkv\",\"source\":{\"size\":$bytes,\"sha256\":\"$sha\",\"filename\":\"source.nut\"}}" \
      "$API/jobs" | jq -r .job_id)
    t0=$(now)
    curl -fsS -o /dev/null -H "Authorization: Bearer $USER_KEY" -H 'Content-Type: application/octet-stream' \
      -T "$src" "$API/jobs/$job/source"
    t1=$(now)
    record data.curl_upload_mb_s "$(calc "$mb/$(elapsed "$t0" "$t1")")"
    curl -fsS -o /dev/null -X DELETE -H "Authorization: Bearer $USER_KEY" "$API/jobs/$job"

    # CLI upload (--detach returns once the source is stored and the job queued).
    export DISTCONV_SERVER=$SERVER DISTCONV_API_KEY=$USER_KEY
    t0=$(now)
    "$CLI" submit "$src" -o "$run/out.mkv" --video-codec copy --audio-codec none --container mkv --detach \
      > "$run/submit.out"
    t1=$(now)
    record data.cli_upload_mb_s "$(calc "$mb/$(elapsed "$t0" "$t1")")"
    job=$(curl -fsS -H "Authorization: Bearer $USER_KEY" "$API/jobs?limit=1" | jq -r '.items[0].job_id')

    # The engine fetches the source, copies the streams and uploads the output: its own data path.
    start_engine "$run"
    local e_base; e_base=$(rss_kib "$ENGINE_PID" VmRSS)
    t0=$(now)
    while :; do
      s=$(curl -fsS -H "Authorization: Bearer $USER_KEY" "$API/jobs/$job/status" | jq -r .state)
      [[ $s == completed ]] && break
      [[ $s == failed || $s == canceled ]] && { echo "bench: data-plane job $s" >&2; exit 1; }
      sleep 0.2
    done
    t1=$(now)
    # Down + up through the engine, and the server's SHA-256 of the output: three passes over the bytes.
    record data.engine_roundtrip_mb_s "$(calc "$mb/$(elapsed "$t0" "$t1")")"

    t0=$(now)
    "$CLI" download "$job" -o "$run/cli.mkv" > /dev/null
    t1=$(now)
    record data.cli_download_mb_s "$(calc "$mb/$(elapsed "$t0" "$t1")")"
    rm -f "$run/cli.mkv"
    t0=$(now)
    curl -fsS -H "Authorization: Bearer $USER_KEY" -o "$run/curl.mkv" "$API/jobs/$job/result"
    t1=$(now)
    record data.curl_download_mb_s "$(calc "$mb/$(elapsed "$t0" "$t1")")"
    rm -f "$run/curl.mkv"

    record data.dispatch_rss_growth_mib "$(calc "($(rss_kib "$DISPATCH_PID" VmHWM)-$d_base)/1024")"
    record data.engine_rss_growth_mib "$(calc "($(rss_kib "$ENGINE_PID" VmHWM)-$e_base)/1024")"
    record data.dispatch_peak_rss_mib "$(calc "$(rss_kib "$DISPATCH_PID" VmHWM)/1024")"
    record data.engine_peak_rss_mib "$(calc "$(rss_kib "$ENGINE_PID" VmHWM)/1024")"
    stop_pid "$ENGINE_PID"
    stop_pid "$DISPATCH_PID"
    rm -rf "$run"
    local k
    for k in curl_upload cli_upload cli_download curl_download; do
      record "data.${k}_vs_cp" "$(calc "$(grep "^data.${k}_mb_s" "$RESULTS" | tail -1 | cut -f2)/$cp_rate")"
      record "data.${k}_vs_cp_sync" "$(calc "$(grep "^data.${k}_mb_s" "$RESULTS" | tail -1 | cut -f2)/$cp_sync_rate")"
    done
    log "data: run $i of $REPEAT: cp $cp_rate MB/s, cp + sync $cp_sync_rate MB/s; $(grep '_vs_cp	' "$RESULTS" | tail -4 | cut -f1,2 | tr '\t\n' '= ')"
  done
  rm -rf "$dir"
}

# --- 7: split mode ---------------------------------------------------------------------------------------
# One source, the same job options (preset h264-web: x264 veryfast CRF 23 + AAC 128k, MP4 fast start):
# one engine with one slot pinned to one CPU and split off, against two engines with a slot each, each
# pinned to its own CPU, and split on. Wall time: from the submit request (the multipart upload) to the
# job's state `completed`; each run has a fresh dispatch server and engines.
split_source() {  # sets SPLIT_SRC, made once and kept in the work dir (the cleanup leaves cache/ alone)
  local cache=$WORK/cache
  mkdir -p "$cache"
  SPLIT_SRC=$cache/split-${SPLIT_SECONDS}s-${SPLIT_SIZE}-30fps.mp4
  [[ -s $SPLIT_SRC ]] && { log "split: source $SPLIT_SRC (cached)"; return 0; }
  log "split: making a ${SPLIT_SECONDS} s ${SPLIT_SIZE}@30 source (closed GOPs, a keyframe every 2 s, stereo AAC)"
  # testsrc2 moves (a scrolling pattern, a counter, a gradient); -sc_threshold 0 with -g = -keyint_min
  # makes the keyframes regular, x264's GOPs are closed (open-gop=0, its default, spelled out).
  ffmpeg -nostdin -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=$SPLIT_SIZE:rate=30:duration=$SPLIT_SECONDS" \
    -f lavfi -i "aevalsrc=0.3*sin(2*PI*440*t)|0.3*sin(2*PI*660*t):s=48000:c=stereo:d=$SPLIT_SECONDS" \
    -c:v libx264 -preset ultrafast -crf 18 -pix_fmt yuv420p -g 60 -keyint_min 60 -sc_threshold 0 \
    -x264-params open-gop=0 -c:a aac -b:a 192k -ac 2 -shortest -movflags +faststart "$SPLIT_SRC.part.mp4"
  mv "$SPLIT_SRC.part.mp4" "$SPLIT_SRC"
}

video_packets() {  # video frames of a file: its packet count
  ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$1"
}

# split_run DIR SPLIT-JSON CPU...: one engine per CPU (one slot, pinned), one job; sets RUN_S (wall
# time), RUN_FRAMES (the result's video packets) and RUN_JOB (the job resource at the end, JSON).
split_run() {
  local dir=$1 split=$2; shift 2
  start_dispatch "$dir"
  local cpu k=0 engines=()
  for cpu in "$@"; do
    start_engine "$dir/engine-$k" --cpu-set "$cpu"  # one slot (start_engine's)
    engines+=("$ENGINE_PID"); k=$((k + 1))
  done
  jq -n --argjson split "$split" '{output_filename: "out.mp4", preset: "h264-web", split: $split}' > "$dir/job.json"
  local t0 t1 code job s deadline
  t0=$(now)
  code=$(curl -sS -o "$dir/submit.json" -w '%{http_code}' -H "Authorization: Bearer $USER_KEY" \
    -F "file=@$SPLIT_SRC;type=video/mp4" -F "job=<$dir/job.json;type=application/json" "$API/jobs")
  [[ $code == 202 ]] || { echo "bench: split: submit answered $code: $(cat "$dir/submit.json")" >&2; exit 1; }
  job=$(jq -r .job_id "$dir/submit.json")
  deadline=$(awk -v a="$t0" 'BEGIN{printf "%.3f", a + 3600}')  # calc's %g would round it
  while :; do
    s=$(curl -fsS -H "Authorization: Bearer $USER_KEY" "$API/jobs/$job/status" | jq -r .state)
    [[ $s == completed ]] && break
    if [[ $s == failed || $s == canceled ]] || awk -v n="$(now)" -v d="$deadline" 'BEGIN{exit !(n > d)}'; then
      curl -fsS -H "Authorization: Bearer $USER_KEY" "$API/jobs/$job" >&2 || true
      echo "bench: split: job $job is $s" >&2; exit 1
    fi
    sleep 0.2
  done
  t1=$(now)
  RUN_S=$(elapsed "$t0" "$t1")
  RUN_JOB=$(curl -fsS -H "Authorization: Bearer $USER_KEY" "$API/jobs/$job")
  curl -fsS -H "Authorization: Bearer $USER_KEY" -o "$dir/out.mp4" "$API/jobs/$job/result"
  RUN_FRAMES=$(video_packets "$dir/out.mp4")
  for k in "${engines[@]}"; do stop_pid "$k"; done
  stop_pid "$DISPATCH_PID"
}

bench_split() {
  # The first two CPUs this script may run on (taskset lists, e.g. "0-1" or "2,5-7").
  local cpus
  cpus=$(awk '/^Cpus_allowed_list:/{n=split($2,r,","); for(i=1;i<=n;i++){m=split(r[i],b,"-");
    for(c=b[1];c<=(m>1?b[2]:b[1]);c++) printf "%s ", c}}' /proc/self/status)
  read -r CPU_A CPU_B _ <<<"$cpus"
  [[ -n ${CPU_B:-} ]] || { log "split: needs 2 CPUs (has ${cpus:-none}); skipped"; return 0; }
  split_source
  local src_frames; src_frames=$(video_packets "$SPLIT_SRC")
  local on; on=$(jq -cn --argjson s "$SPLIT_SEGMENT" '{mode: "on", segment_seconds: $s}')
  local i which single_s split_s all_equal=1
  for i in $(seq 1 "$REPEAT"); do
    local order="single split"; (( i % 2 == 0 )) && order="split single"
    for which in $order; do
      local dir=$WORK/run-split-$i-$which
      if [[ $which == single ]]; then
        split_run "$dir" '{"mode":"off"}' "$CPU_A"
        single_s=$RUN_S
        record split.single_s "$RUN_S"
        record split.single_frames "$RUN_FRAMES"
      else
        split_run "$dir" "$on" "$CPU_A" "$CPU_B"
        split_s=$RUN_S
        echo "$RUN_JOB" > "$OUT/split-job-$i.json"
        local state; state=$(jq -r '.split.state // "none"' <<<"$RUN_JOB")
        [[ $state == joined ]] ||
          { echo "bench: split: the job was not split (state $state: $(jq -r '.split.reason // ""' <<<"$RUN_JOB"))" >&2; exit 1; }
        record split.split_s "$RUN_S"
        record split.split_frames "$RUN_FRAMES"
        record split.cut_s "$(jq '.split.split_seconds' <<<"$RUN_JOB")"
        record split.join_s "$(jq '.split.join_seconds' <<<"$RUN_JOB")"
        record split.video_segments "$(jq '[.split.segments[] | select(.kind == "video")] | length' <<<"$RUN_JOB")"
        log "split: run $i: segments per engine $(jq -c '[.split.segments[] | "\(.kind):\(.engine_id // "-" | .[-4:])"] | group_by(.) | map("\(.[0])×\(length)")' <<<"$RUN_JOB")"
      fi
      [[ $RUN_FRAMES == "$src_frames" ]] ||
        { all_equal=0; log "split: $which run $i: the result has $RUN_FRAMES video frames, the source $src_frames"; }
      rm -rf "$dir"
    done
    record split.ratio "$(calc "$split_s/$single_s")"
    log "split: run $i of $REPEAT: one engine ${single_s} s, two engines ${split_s} s (ratio $(calc "$split_s/$single_s")), cut $(grep '^split.cut_s' "$RESULTS" | tail -1 | cut -f2) s, join $(grep '^split.join_s' "$RESULTS" | tail -1 | cut -f2) s, frames $src_frames"
  done
  record split.source_frames "$src_frames"
  record split.frames_equal "$all_equal"  # one value: 1 when every result had the source's frame count
}

START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log "mode $MODE, $REPEAT repeat(s), work dir $WORK"
if want e2e; then bench_e2e; fi
if want overhead; then bench_overhead; fi
if want latency; then bench_latency; fi
if want control; then bench_control; fi
if want data; then bench_data; fi
if want dashboard; then bench_dashboard; fi
if want split; then bench_split; fi

# --- summary: median and spread (min..max) of every metric -----------------------------------------------
SUMMARY=$OUT/summary.tsv
awk -F'\t' '{v[$1]=v[$1] " " $2; if(!($1 in seen)){seen[$1]=1; order[++n]=$1}
    if($2 !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/) bad[$1]=1}
  END{for(i=1;i<=n;i++){k=order[i]; m=split(substr(v[k],2),a," ");
    if(k in bad){printf "%s\tnone\tnone\tnone\t%d\n",k,m; continue}
    for(x=1;x<=m;x++)for(y=x+1;y<=m;y++)if(a[y]+0<a[x]+0){t=a[x];a[x]=a[y];a[y]=t}
    med=(m%2)?a[(m+1)/2]:(a[m/2]+a[m/2+1])/2; printf "%s\t%.4g\t%.4g\t%.4g\t%d\n",k,med,a[1],a[m],m}}' \
  "$RESULTS" > "$SUMMARY"

med() { awk -F'\t' -v k="$1" '$1==k{print $2}' "$SUMMARY"; }
spread() { awk -F'\t' -v k="$1" '$1==k{print $3 "–" $4}' "$SUMMARY"; }
# verdict METRIC OP LIMIT: judged on the median
verdict() {
  local v; v=$(med "$1")
  [[ $v =~ ^-?[0-9.]+(e[-+]?[0-9]+)?$ ]] || { echo "**missed**"; return; }  # no figure: nothing got through
  if awk -v v="$v" -v l="$3" -v op="$2" \
    'BEGIN{exit !((op=="<=" && v<=l) || (op==">=" && v>=l) || (op=="<" && v<l) || (op=="==" && v==l))}'; then
    echo "met"
  else
    echo "**missed**"
  fi
}
row() {  # label metric [op limit target-text]
  local v; v=$(med "$2"); [[ -z $v ]] && return 0
  local verdict_text=""
  [[ -n ${3:-} ]] && verdict_text=$(verdict "$2" "$3" "$4")
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$v" "$(spread "$2")" "${5:-}" "$verdict_text"
}

TABLE=$OUT/table.md
{
  echo "| figure | median | spread (min–max) | target | verdict |"
  echo "| --- | --- | --- | --- | --- |"
  row "1. end-to-end: distconv / local ffmpeg" e2e.ratio "<=" 1.10 "≤ 1.10"
  row "   local ffmpeg, s" e2e.local_s
  row "   distconv submit --wait, s" e2e.distconv_s
  row "1b. fixed per-job overhead: submit --wait minus local ffmpeg, 1 s clip, p50 ms" overhead.p50_ms "<=" 150 "≤ 150"
  row "   distconv submit --wait, p50 s" overhead.remote_p50_s
  row "   local ffmpeg, p50 s" overhead.local_p50_s
  row "2. dispatch latency p50, ms" latency.p50_ms "<=" 5 "≤ 5"
  row "   dispatch latency p99, ms" latency.p99_ms "<=" 50 "≤ 50"
  row "   (the retry request's own round trip, p50 ms)" latency.retry_request_ms
  for n in $ENGINES; do
    row "3. N=$n: saturated heartbeats / no-op ceiling" "control.n$n.heartbeat_vs_noop" ">=" 0.5 "≥ 0.5"
    row "   N=$n: saturated heartbeats/s" "control.n$n.heartbeat_rps"
    row "   N=$n: no-op ceiling, requests/s" "control.n$n.noop_rps"
    row "   N=$n: SQLite commit ceiling, commits/s" "control.n$n.sqlite_commits_per_s"
    row "   N=$n: simulated: full job lifecycles/s" "control.n$n.sim_lifecycles_per_s"
    row "   N=$n: simulated: heartbeats/s" "control.n$n.sim_heartbeats_per_s"
    row "   N=$n: simulated: p50 ms (all requests)" "control.n$n.sim_p50_ms"
    row "   N=$n: simulated: p99 ms (all requests)" "control.n$n.sim_p99_ms" "<" 100 "< 100"
    row "   N=$n: simulated: engines' requests p99 ms (all but submits)" "control.n$n.sim_engine_p99_ms" "<" 100 "< 100"
    row "   N=$n: simulated: heartbeat p99 ms" "control.n$n.sim_heartbeat_p99_ms" "<" 100 "< 100"
    row "   N=$n: simulated: errors" "control.n$n.sim_errors" "==" 0 "0"
    row "   N=$n: simulated: submit p50 ms (upload + ffprobe)" "control.n$n.sim_submit_p50_ms"
    row "   N=$n: kernel: listen-queue overflows" "control.n$n.sim.listen_overflows"
    row "   N=$n: kernel: listen drops" "control.n$n.sim.listen_drops"
    row "   N=$n: kernel: retransmitted segments" "control.n$n.sim.retransmitted_segments"
    row "   N=$n: connections opened/s" "control.n$n.sim.connections_opened_per_s"
    row "   N=$n: connect p99 ms" "control.n$n.sim.connect_p99_ms"
  done
  for n in $HOLD_ENGINES; do
    limit=100; [[ $n -gt 1000 ]] && limit=500
    row "3. N=$n idle engines held: p99 ms (all requests)" "hold.n$n.p99_ms" "<" "$limit" "< $limit"
    row "   N=$n held: errors" "hold.n$n.errors" "==" 0 "0"
    row "   N=$n held: dispatch resident set per idle engine, KiB" "hold.n$n.rss_kib_per_engine" "<=" 64 "≤ 64"
    row "   N=$n held: heartbeats/s" "hold.n$n.heartbeats_per_s"
    row "   N=$n held: kernel: listen-queue overflows" "hold.n$n.listen_overflows"
    row "   N=$n held: kernel: listen drops" "hold.n$n.listen_drops"
    row "   N=$n held: kernel: retransmitted segments" "hold.n$n.retransmitted_segments"
    row "   N=$n held: connections opened/s" "hold.n$n.connections_opened_per_s"
    row "   N=$n held: connect p99 ms" "hold.n$n.connect_p99_ms"
  done
  row "4. data: cp on the same disk, MB/s" data.cp_mb_s
  row "   curl upload / cp" data.curl_upload_vs_cp ">=" 0.7 "≥ 0.7"
  row "   CLI upload / cp" data.cli_upload_vs_cp ">=" 0.7 "≥ 0.7"
  row "   CLI download / cp" data.cli_download_vs_cp ">=" 0.7 "≥ 0.7"
  row "   curl download / cp" data.curl_download_vs_cp ">=" 0.7 "≥ 0.7"
  row "   cp + sync of the copy (durable), MB/s" data.cp_sync_mb_s
  row "   curl upload / (cp + sync)" data.curl_upload_vs_cp_sync
  row "   CLI upload / (cp + sync)" data.cli_upload_vs_cp_sync
  row "   CLI download / (cp + sync)" data.cli_download_vs_cp_sync
  row "   curl download / (cp + sync)" data.curl_download_vs_cp_sync
  row "   curl upload, MB/s" data.curl_upload_mb_s
  row "   CLI upload, MB/s" data.cli_upload_mb_s
  row "   CLI download, MB/s" data.cli_download_mb_s
  row "   curl download, MB/s" data.curl_download_mb_s
  row "   engine fetch + copy + upload + server hash, MB/s" data.engine_roundtrip_mb_s
  row "   dispatch server: resident growth, MiB" data.dispatch_rss_growth_mib "<=" 64 "≤ 64"
  row "   engine: resident growth, MiB" data.engine_rss_growth_mib "<=" 64 "≤ 64"
  row "   dispatch server: peak resident, MiB" data.dispatch_peak_rss_mib
  row "   engine: peak resident, MiB" data.engine_peak_rss_mib
  row "6. dashboard, jobs in the database" dashboard.jobs
  row "   list page (all jobs, newest), ms" dashboard.list_page_ms "<" 100 "< 100"
  row "   list page (one owner), ms" dashboard.list_own_page_ms "<" 100 "< 100"
  row "   list page (state failed), ms" dashboard.list_failed_ms "<" 100 "< 100"
  row "   list page (state queued, with queue positions), ms" dashboard.list_queued_ms "<" 100 "< 100"
  row "   list page (sorted by name), ms" dashboard.list_by_name_ms "<" 100 "< 100"
  row "   search by file name (counts its matches), ms" dashboard.list_search_ms "<" 100 "< 100"
  row "   overview, ms" dashboard.overview_ms "<" 100 "< 100"
  row "5. engine CPU / ffmpeg CPU, %" engine.cpu_share_pct "<=" 2 "≤ 2"
  row "   engine CPU, s" engine.own_cpu_s
  row "   ffmpeg CPU, s" engine.ffmpeg_cpu_s
  row "7. split: two engines / one engine, wall time" split.ratio "<=" 0.55 "≤ 0.55"
  row "   one engine, one CPU, split off, s" split.single_s
  row "   two engines, one CPU each, split on, s" split.split_s
  row "   split overhead: the cut on the dispatch server, s" split.cut_s
  row "   join overhead: the join on the dispatch server, s" split.join_s
  row "   video segments" split.video_segments
  row "   source video frames" split.source_frames
  row "   result video frames, one engine" split.single_frames
  row "   result video frames, split" split.split_frames
  row "   results with the source's frame count (1 = all)" split.frames_equal "==" 1 "= source's"
} > "$TABLE"
cat "$TABLE"

if [[ $DOC == 1 ]]; then
  DOCFILE=$ROOT/docs/benchmarks.md
  {
    echo "# Benchmarks"
    echo
    echo "Produced by \`scripts/bench.sh\` (its header lists the options). Every figure is taken against a"
    echo "ceiling measured in the same run, so it holds on a busy machine; each is the median of the repeated"
    echo "runs with the smallest and largest value. Raw values: \`results.tsv\` in the run's output directory."
    echo
    echo "- Command: \`$COMMAND\` ($MODE mode, $REPEAT repeats)"
    echo "- Date: $START"
    echo "- Machine: $(nproc) cores, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/{printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
    echo "- Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (the machine was shared with other work)"
    echo "- Sizes: end-to-end clip ${E2E_SECONDS} s ${E2E_SIZE}@30; data plane ${DATA_MIB} MiB; control plane N = ${ENGINES// /, } with ${SIM_SECONDS} s measured per run; split source ${SPLIT_SECONDS} s ${SPLIT_SIZE}@30 in ${SPLIT_SEGMENT} s segments"
    echo "- $(ffmpeg -version | head -1)"
    echo
    cat "$TABLE"
    echo
    if [[ -f $ROOT/bench/notes.md ]]; then cat "$ROOT/bench/notes.md"; fi
  } > "$DOCFILE"
  log "wrote $DOCFILE"
fi
log "raw results in $OUT"
