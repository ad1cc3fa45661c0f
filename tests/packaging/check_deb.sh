#!/usr/bin/env bash
# cpack builds the distconv .deb: its control data (Depends, conffiles, maintainer scripts) and its
# contents are right, and the packaged dispatch server runs.
#
#   tests/packaging/check_deb.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
for tool in cpack dpkg-deb dpkg-shlibdeps; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install dpkg-dev cmake)"
done

# cpack runs the build's cmake_install.cmake with prefix /usr and stripping (CPACK_STRIP_FILES), as
# `cpack -G DEB` does, but as an install script: in project mode it would first build the
# `preinstall` target, that is everything including the whole test suite.
printf 'set(CMAKE_INSTALL_PREFIX /usr)\nset(CMAKE_INSTALL_DO_STRIP 1)\ninclude("%s/cmake_install.cmake")\n' "$build" \
  >"$tmp/install.cmake"
SECONDS=0; (cd "$tmp" && cpack -G DEB -B "$tmp/out" --config "$build/CPackConfig.cmake" \
  -D CPACK_INSTALL_CMAKE_PROJECTS= -D CPACK_INSTALL_SCRIPTS="$tmp/install.cmake" >"$tmp/cpack.log" 2>&1) ||
  { cat "$tmp/cpack.log" >&2; fail "cpack failed"; }
echo "cpack: ${SECONDS}s"; debs=("$tmp"/out/distconv_*.deb)
[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || { ls -R "$tmp/out" >&2; fail "expected one distconv_*.deb"; }
deb=${debs[0]}

dpkg-deb -f "$deb" Package | grep -qx distconv || fail "the package is not called distconv"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for dep in ffmpeg bubblewrap libc6 libstdc++6 libsqlite3-0 libcurl4 libssl3 libsystemd0; do
  [[ ", $depends," == *", $dep"[\ ,]* ]] || fail "Depends lacks $dep"
done

dpkg-deb -I "$deb" conffiles >"$tmp/conffiles" || fail "no conffiles in the package"
diff <(sort "$tmp/conffiles") <(printf '%s\n' /etc/distconv/dispatch.ini /etc/distconv/engine.ini) ||
  fail "conffiles are not the two /etc/distconv configs"
for script in postinst prerm postrm; do
  dpkg-deb -I "$deb" "$script" >"$tmp/$script" || fail "no $script in the package"
  cmp -s "$tmp/$script" "$src/debian/$script" || fail "$script differs from debian/$script"
  dash -n "$tmp/$script" || fail "$script is not valid POSIX sh"
done

# postinst configure creates the user (systemd-sysusers once its file is installed, else adduser)
# only when it is missing; prerm and postrm accept every argument dpkg passes. systemctl and the like are replaced by fakes that record their calls.
fakes=$tmp/fakes
mkdir -p "$fakes"
for cmd in systemd-sysusers adduser useradd install systemctl; do
  printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$cmd" "$tmp/calls" >"$fakes/$cmd"
done
printf '#!/bin/sh\n[ -e "%s" ]\n' "$tmp/user-exists" >"$fakes/getent"
chmod +x "$fakes"/*
run_script() { PATH="$fakes:/usr/bin:/bin" dash "$tmp/$1" "${@:2}" >/dev/null; }
: >"$tmp/calls"
run_script postinst configure ""
grep -q '^systemd-sysusers distconv.conf$' "$tmp/calls" || grep -q '^adduser --system --group' "$tmp/calls" ||
  { cat "$tmp/calls" >&2; fail "postinst did not create the distconv user"; }
touch "$tmp/user-exists"
: >"$tmp/calls"
run_script postinst configure 0.0.9
! grep -qE '^(systemd-sysusers|adduser|useradd) ' "$tmp/calls" || fail "postinst created an existing user again"
for args in "remove" "upgrade 0.1.0" "deconfigure" "failed-upgrade 0.1.0"; do
  # shellcheck disable=SC2086  # the words are the arguments
  run_script prerm $args || fail "prerm $args failed"
done
for args in "remove" "upgrade 0.1.0" "abort-install" "disappear"; do
  # shellcheck disable=SC2086
  run_script postrm $args || fail "postrm $args failed"
done
if run_script postinst bogus 2>/dev/null; then fail "postinst accepted an unknown action"; fi
echo "ok: maintainer scripts"

dpkg-deb -c "$deb" | awk '{print $1, $NF}' >"$tmp/contents"
expect() {  # MODE_PREFIX PATH
  grep -qE "^$1[^ ]* \./${2#/}\$" "$tmp/contents" || { cat "$tmp/contents" >&2; fail "the package lacks $2 ($1)"; }
}
for bin in distconv-dispatch distconv-engine distconv; do expect -rwxr-xr-x "/usr/bin/$bin"; done
expect -rw-r--r-- /usr/lib/systemd/system/distconv-dispatch.service
expect -rw-r--r-- /usr/lib/systemd/system/distconv-engine.service
expect -rw-r--r-- /usr/lib/sysusers.d/distconv.conf
expect -rw-r--r-- /etc/distconv/dispatch.ini
expect -rw-r--r-- /etc/distconv/engine.ini
for doc in README.md LICENSE operations.md protocol.md architecture.md openapi.yaml; do
  expect -rw-r--r-- "/usr/share/doc/distconv/$doc"
done
expect -rwxr-xr-x /usr/share/distconv/gen-certs.sh

dpkg-deb -x "$deb" "$tmp/x"
cmp -s "$tmp/x/usr/lib/systemd/system/distconv-dispatch.service" "$src/scripts/systemd/distconv-dispatch.service" ||
  fail "the packaged dispatch unit is not scripts/systemd/distconv-dispatch.service"
"$tmp/x/usr/bin/distconv-dispatch" --help >"$tmp/help" || fail "the packaged distconv-dispatch --help failed"
grep -q -- '--tls-cert' "$tmp/help" || fail "the packaged distconv-dispatch --help does not list --tls-cert"
"$tmp/x/usr/bin/distconv-dispatch" check-config --config "$tmp/x/etc/distconv/dispatch.ini" >/dev/null ||
  fail "the packaged distconv-dispatch rejects the packaged dispatch.ini"
"$tmp/x/usr/bin/distconv-engine" --help >/dev/null || fail "the packaged distconv-engine --help failed"
"$tmp/x/usr/bin/distconv" --help >/dev/null || fail "the packaged distconv --help failed"
size_kib=$(du -k "$deb" | cut -f1)
[[ $size_kib -lt 20000 ]] || fail "the package has $size_kib KiB: are the binaries stripped?"
echo "ok: $(basename "$deb") ($size_kib KiB)"
