#!/usr/bin/env bash
# The units' SystemCallFilter= lets the daemons work: a real job (upload, ffprobe, an ffmpeg encode
# pinned with --cpu-set, download) runs under strace, and every system call the dispatch server, the
# engine and their children made is one their unit allows.
#
#   tests/packaging/check_syscalls.sh SOURCE_DIR DISPATCH ENGINE CLI      (KEEP=1 keeps the temp dir)
set -euo pipefail
src=$1
dispatch=$2
engine=$3
cli=$4
tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n ${KEEP:-} ]]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
for tool in strace ffmpeg systemd-analyze; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/install-deps.sh --test)"
done

# The system calls of group @NAME, nested groups expanded.
expand() {
  local line
  if [[ $1 != @* ]]; then echo "$1"; return; fi
  systemd-analyze syscall-filter "$1" | while read -r line; do
    [[ -z $line || $line == \#* || $line == "$1" ]] && continue
    if [[ $line == @* ]]; then expand "$line"; else echo "$line"; fi
  done
}
# The calls UNIT allows, as systemd reads its SystemCallFilter= lines: in order, an allow line adds
# its calls to the set and a ~ line removes its calls from it (the first line is an allow list).
allowed() {
  local unit=$1 value word
  : >"$tmp/allow"
  while IFS= read -r value; do
    : >"$tmp/line"
    if [[ $value == ~* ]]; then
      for word in ${value#\~}; do expand "$word" >>"$tmp/line"; done
      sort -u "$tmp/allow" | comm -23 - <(sort -u "$tmp/line") >"$tmp/next"
    else
      for word in $value; do expand "$word" >>"$tmp/line"; done
      sort -u "$tmp/allow" "$tmp/line" >"$tmp/next"
    fi
    mv "$tmp/next" "$tmp/allow"
  done < <(sed -n 's/^SystemCallFilter=//p' "$unit")
  sort -u "$tmp/allow"
}
# The system calls in an `strace -c` summary.
used() { awk '/^-+/ {on = !on; next} on && $NF != "total" {print $NF}' "$1" | sort -u; }

ffmpeg -v error -f lavfi -i testsrc=size=160x120:rate=10:duration=1 -f lavfi -i sine=duration=1 -shortest "$tmp/in.mp4"
"$dispatch" keys create --data-dir "$tmp/data" --role admin --name ops >"$tmp/admin.key" 2>/dev/null
"$dispatch" keys create --data-dir "$tmp/data" --role engine --name e1 >"$tmp/engine.key" 2>/dev/null

strace -f -qq -c -o "$tmp/dispatch.strace" "$dispatch" serve --data-dir "$tmp/data" --listen 127.0.0.1:0 \
  >"$tmp/serve.out" 2>"$tmp/serve.err" &
pids+=($!)
port=
for _ in $(seq 1 400); do
  port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/serve.out")
  [[ -n $port ]] && break
  sleep 0.05
done
[[ -n $port ]] || { cat "$tmp/serve.err" >&2; fail "the server did not start"; }
DISTCONV_API_KEY=$(cat "$tmp/engine.key") strace -f -qq -c -o "$tmp/engine.strace" "$engine" \
  --server "http://127.0.0.1:$port" --work-dir "$tmp/engine" --benchmark off --cpu-set 0 >/dev/null 2>"$tmp/engine.err" &
pids+=($!)
timeout 50 "$cli" --server "http://127.0.0.1:$port" --key "$(cat "$tmp/admin.key")" submit "$tmp/in.mp4" \
  --preset h264-web -o "$tmp/out.mp4" >"$tmp/submit.log" 2>&1 || { cat "$tmp/submit.log" "$tmp/engine.err" >&2; fail "the job failed"; }
[[ -s $tmp/out.mp4 ]] || fail "no output"

# Stop the traced programs (strace's children), then strace writes its summary.
for p in "${pids[@]}"; do
  child=$(ps -o pid= --ppid "$p" | tr -d ' ')
  [[ -n $child ]] && kill -TERM "$child"
done
for p in "${pids[@]}"; do wait "$p" || true; done
pids=()

for pair in "dispatch:$tmp/dispatch.strace" "engine:$tmp/engine.strace"; do
  name=${pair%%:*}
  used "${pair#*:}" >"$tmp/$name.used"
  { grep -qx execve "$tmp/$name.used" && grep -qxE 'accept4?|connect' "$tmp/$name.used"; } ||
    fail "the $name trace is incomplete"
  # SQLite chowns its journal files to the database's owner only when running as root.
  if [[ $(id -u) -eq 0 ]]; then sed -i '/^fchown$/d' "$tmp/$name.used"; fi
  allowed "$src/scripts/systemd/distconv-$name.service" >"$tmp/$name.allowed"
  denied=$(comm -23 "$tmp/$name.used" "$tmp/$name.allowed" | tr '\n' ' ')
  [[ -z $denied ]] || fail "distconv-$name.service forbids system calls the $name made: $denied"
  echo "ok: distconv-$name.service allows all $(wc -l <"$tmp/$name.used") system calls the $name and its children made"
done
# Where bubblewrap works here, the job's ffmpeg ran in the sandbox, so its set-up calls were checked too.
if grep -q "sandbox: ffmpeg runs under bubblewrap" "$tmp/engine.err"; then
  grep -qx pivot_root "$tmp/engine.used" || fail "the engine said it sandboxes ffmpeg, but bubblewrap never ran"
  echo "ok: the sandbox's set-up (bubblewrap) is within the engine unit's filter"
else
  echo "note: bubblewrap does not work on this machine; the sandbox's calls were not exercised" >&2
fi
# The check can fail: without @network-io the engine could not have connected.
if comm -23 "$tmp/engine.used" <(grep -vxF -f <(expand @network-io) "$tmp/engine.allowed") | grep -qx connect; then
  echo "ok: a filter without @network-io is caught"
else
  fail "the comparison misses a forbidden call"
fi
