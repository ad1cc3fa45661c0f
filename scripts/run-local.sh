#!/usr/bin/env bash
# The local demo: installs what is missing, builds, starts a dispatch server and one engine on an
# embedded default (SQLite and a storage pool under .local/demo), makes keys, generates a short sample
# clip with ffmpeg and transcodes it with `distconv submit --wait`. The daemons keep running afterwards.
#   scripts/run-local.sh          # run the demo
#   scripts/run-local.sh stop     # stop the demo's daemons
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DEMO=$ROOT/.local/demo
BIN=$ROOT/build

stop_daemons() {
  for name in engine dispatch; do
    if [[ -f $DEMO/$name.pid ]]; then
      pid=$(cat "$DEMO/$name.pid")
      if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      fi
      rm -f "$DEMO/$name.pid"
    fi
  done
}

if [[ "${1:-}" == "stop" ]]; then
  stop_daemons
  echo "run-local: daemons stopped (data kept in $DEMO)"
  exit 0
fi

scripts/install-deps.sh
cmake -S . -B "$BIN" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BIN" -j2 --target distconv-dispatch distconv-engine distconv

DISPATCH=$BIN/dispatch_server/distconv-dispatch
ENGINE=$BIN/transcoding_engine/distconv-engine
CLI=$BIN/submission_client/distconv

mkdir -p "$DEMO"
stop_daemons  # a previous demo's daemons, if any

# Keys are made once and kept (the secret is shown only at creation).
if [[ ! -f $DEMO/keys.env ]]; then
  user_key=$("$DISPATCH" keys create --data-dir "$DEMO/dispatch" --role admin --name demo-admin 2>/dev/null)
  engine_key=$("$DISPATCH" keys create --data-dir "$DEMO/dispatch" --role engine --name demo-engine 2>/dev/null)
  umask 077
  printf 'DISTCONV_API_KEY=%s\nENGINE_KEY=%s\n' "$user_key" "$engine_key" > "$DEMO/keys.env"
fi
# shellcheck disable=SC1091
source "$DEMO/keys.env"

# Port 8080 when free, else any free port (the server prints the one it bound).
listen=127.0.0.1:8080
if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then listen=127.0.0.1:0; fi
setsid "$DISPATCH" serve --data-dir "$DEMO/dispatch" --listen "$listen" --log-file "$DEMO/dispatch.log" \
  > "$DEMO/dispatch.out" 2>&1 < /dev/null &
echo $! > "$DEMO/dispatch.pid"
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$DEMO/dispatch.out" 2>/dev/null && break
  kill -0 "$(cat "$DEMO/dispatch.pid")" 2>/dev/null || { cat "$DEMO/dispatch.out"; exit 1; }
  sleep 0.1
done
server="http://$(sed -n 's/^listening on //p' "$DEMO/dispatch.out" | head -1)"
echo "run-local: dispatch server on $server (log: $DEMO/dispatch.log)"

setsid "$ENGINE" --server "$server" --key "$ENGINE_KEY" --work-dir "$DEMO/engine" --slots 1 \
  --log-file "$DEMO/engine.log" > "$DEMO/engine.out" 2>&1 < /dev/null &
echo $! > "$DEMO/engine.pid"
echo "run-local: engine started (log: $DEMO/engine.log)"

sample=$DEMO/sample.mp4
if [[ ! -f $sample ]]; then
  ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=1280x720:rate=30:duration=5" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=5" -c:v libx264 -preset ultrafast -pix_fmt yuv420p \
    -c:a aac -shortest "$sample"
fi
result=$DEMO/sample.small.mp4
export DISTCONV_SERVER=$server DISTCONV_API_KEY
"$CLI" submit "$sample" --preset h264-small -o "$result" --force --wait

cat <<MSG

run-local: done — the result is $result
Submit more (the daemons keep running):
  export DISTCONV_SERVER=$server
  export \$(grep DISTCONV_API_KEY $DEMO/keys.env)
  $CLI submit my-video.mkv --preset h265-web --wait
  $CLI list; $CLI engines; $CLI presets
Stop the daemons:
  scripts/run-local.sh stop
MSG
