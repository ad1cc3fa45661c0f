#!/usr/bin/env bash
# The systemd units pass `systemd-analyze verify` with the binaries they start, and the check is
# real: a copy with a misspelt key and a copy starting a missing program are both rejected.
#
#   tests/packaging/verify_units.sh SOURCE_DIR BUILD_DIR
#
# verify insists that ExecStart= programs exist, so the build is installed (prefix /usr) into a temp
# DESTDIR and the units are checked with their /usr/bin paths pointed into it.
set -euo pipefail
src=$1
build=$2
command -v systemd-analyze >/dev/null || { echo "verify_units: systemd-analyze is not installed" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
DESTDIR=$root cmake --install "$build" --prefix /usr >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; exit 1; }

# verify UNIT: exit status 0 and not one line of output (a misspelt key is only a warning).
verify() {
  local out rc=0
  out=$(cd "$tmp" && SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$1" 2>&1) || rc=$?
  if [[ $rc -ne 0 || -n $out ]]; then
    printf '%s\n' "$out"
    return 1
  fi
}

mkdir -p "$tmp/units"
for unit in distconv-dispatch.service distconv-engine.service; do
  installed=$root/usr/lib/systemd/system/$unit
  [[ -f $installed ]] || { echo "FAIL: $unit was not installed" >&2; exit 1; }
  cmp -s "$installed" "$src/scripts/systemd/$unit" || { echo "FAIL: $unit changed on install to /usr" >&2; exit 1; }
  sed "s|/usr/bin/|$root/usr/bin/|g" "$installed" >"$tmp/units/$unit"
  if ! verify "$tmp/units/$unit"; then
    echo "FAIL: systemd-analyze verify $unit" >&2
    exit 1
  fi
  grep -q '^Type=notify$' "$installed" || { echo "FAIL: $unit is not Type=notify" >&2; exit 1; }
  grep -q '^WatchdogSec=' "$installed" || { echo "FAIL: $unit has no WatchdogSec=" >&2; exit 1; }
  # The hardening holds: systemd's own exposure score stays "OK" (below 4.0 of 10).
  if ! (cd "$tmp" && systemd-analyze security --offline=yes --threshold=40 "$tmp/units/$unit" >"$tmp/security.log" 2>&1); then
    tail -3 "$tmp/security.log" >&2
    echo "FAIL: $unit is exposed above 4.0 (systemd-analyze security)" >&2
    exit 1
  fi
  echo "ok: $unit ($(grep -o 'exposure level.*' "$tmp/security.log"))"
done

# The check can fail: a misspelt key, and a program that does not exist.
sed 's/^ProtectSystem=/ProtectSytem=/' "$tmp/units/distconv-dispatch.service" >"$tmp/units/broken-key.service"
if verify "$tmp/units/broken-key.service" >"$tmp/broken.log"; then
  echo "FAIL: verify accepted a unit with a misspelt key" >&2
  exit 1
fi
grep -q 'ProtectSytem' "$tmp/broken.log" || { cat "$tmp/broken.log" >&2; echo "FAIL: unexpected complaint" >&2; exit 1; }
sed "s|$root/usr/bin/distconv-engine|$root/usr/bin/no-such-engine|" "$tmp/units/distconv-engine.service" \
  >"$tmp/units/broken-exec.service"
if verify "$tmp/units/broken-exec.service" >"$tmp/broken.log"; then
  echo "FAIL: verify accepted a unit starting a missing program" >&2
  exit 1
fi
grep -q 'no-such-engine' "$tmp/broken.log" || { cat "$tmp/broken.log" >&2; echo "FAIL: unexpected complaint" >&2; exit 1; }
echo "ok: broken copies are rejected"

# The sysusers.d file parses and creates the distconv user (into a scratch root).
sysusers=$root/usr/lib/sysusers.d/distconv.conf
[[ -f $sysusers ]] || { echo "FAIL: sysusers.d/distconv.conf was not installed" >&2; exit 1; }
if command -v systemd-sysusers >/dev/null; then
  mkdir -p "$tmp/sysroot/etc"
  : >"$tmp/sysroot/etc/passwd"; : >"$tmp/sysroot/etc/group"
  systemd-sysusers --root="$tmp/sysroot" "$sysusers" >"$tmp/sysusers.log" 2>&1 ||
    { cat "$tmp/sysusers.log" >&2; echo "FAIL: systemd-sysusers rejected the file" >&2; exit 1; }
  grep -q '^distconv:x:[0-9]*:[0-9]*:distconv daemons:/var/lib/distconv:/usr/sbin/nologin$' "$tmp/sysroot/etc/passwd" ||
    { cat "$tmp/sysroot/etc/passwd" >&2; echo "FAIL: no distconv system user" >&2; exit 1; }
  grep -q '^distconv:x:' "$tmp/sysroot/etc/group" || { echo "FAIL: no distconv group" >&2; exit 1; }
  echo "ok: sysusers.d creates the distconv user and group"
fi
