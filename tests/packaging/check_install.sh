#!/usr/bin/env bash
# `cmake --install` lays out binaries, units, sysusers.d, configs, docs and gen-certs.sh; the units
# start the binaries of the prefix installed to; a second install keeps edited configs.
#
#   tests/packaging/check_install.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
prefix=/opt/distconv
install_to() { DESTDIR=$root cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; exit 1; }; }
fail() { echo "FAIL: $*" >&2; exit 1; }

install_to
for f in bin/distconv-dispatch bin/distconv-engine bin/distconv share/distconv/gen-certs.sh; do
  [[ -x $root$prefix/$f ]] || fail "$prefix/$f is missing or not executable"
done
for f in lib/systemd/system/distconv-dispatch.service lib/systemd/system/distconv-engine.service \
         lib/sysusers.d/distconv.conf share/doc/distconv/README.md share/doc/distconv/LICENSE \
         share/doc/distconv/operations.md share/doc/distconv/protocol.md share/doc/distconv/openapi.yaml \
         share/doc/distconv/examples/dispatch.example.ini share/doc/distconv/examples/engine.example.ini; do
  [[ -f $root$prefix/$f ]] || fail "$prefix/$f is missing"
done
cmp -s "$root/etc/distconv/dispatch.ini" "$src/dispatch_server/dispatch.example.ini" || fail "/etc/distconv/dispatch.ini is not the example"
cmp -s "$root/etc/distconv/engine.ini" "$src/transcoding_engine/engine.example.ini" || fail "/etc/distconv/engine.ini is not the example"

unit=$root$prefix/lib/systemd/system/distconv-dispatch.service
grep -qx "ExecStart=$prefix/bin/distconv-dispatch serve --config /etc/distconv/dispatch.ini" "$unit" ||
  fail "the dispatch unit does not start $prefix/bin/distconv-dispatch: $(grep ^ExecStart "$unit")"
grep -qx "ExecStart=$prefix/bin/distconv-engine --config /etc/distconv/engine.ini" \
  "$root$prefix/lib/systemd/system/distconv-engine.service" || fail "the engine unit does not start $prefix/bin/distconv-engine"
! grep -q /usr/bin "$unit" || fail "the dispatch unit still names /usr/bin"
grep -qx "Documentation=file://$prefix/share/doc/distconv/operations.md" "$unit" ||
  fail "the dispatch unit's Documentation= is not under $prefix: $(grep ^Documentation "$unit")"

# The installed dispatch accepts the installed config (the path the unit's ExecStartPre checks).
"$root$prefix/bin/distconv-dispatch" check-config --config "$root/etc/distconv/dispatch.ini" >/dev/null ||
  fail "check-config rejects the installed dispatch.ini"

echo "listen = 0.0.0.0:9000" >>"$root/etc/distconv/dispatch.ini"
install_to
grep -qx "listen = 0.0.0.0:9000" "$root/etc/distconv/dispatch.ini" || fail "a second install overwrote an edited dispatch.ini"
grep -q "Keeping: $root/etc/distconv/dispatch.ini" "$tmp/install.log" || fail "the install did not say it kept dispatch.ini"
echo "ok: install layout under $prefix, units rewritten, configs kept on reinstall"
