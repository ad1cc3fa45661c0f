#!/usr/bin/env bash
# scripts/gen-certs.sh: the certificates verify against the CA and name the right hosts, keys are
# private, nothing is overwritten without --force, bad arguments exit 2; with DISPATCH given, the
# server serves HTTPS with them and curl trusts it through ca.crt.
#
#   tests/packaging/check_gen_certs.sh SOURCE_DIR [DISPATCH_BINARY]
set -euo pipefail
src=$1
dispatch=${2:-}
gen=$src/scripts/gen-certs.sh
tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

d=$tmp/certs
"$gen" "$d" --host dispatch.example.org --host 192.0.2.7 --days 30 >"$tmp/out" || fail "gen-certs failed"
for f in ca.crt ca.key server.crt server.key; do [[ -f $d/$f ]] || fail "$f was not written"; done
[[ $(stat -c %a "$d/ca.key") == 600 && $(stat -c %a "$d/server.key") == 600 ]] || fail "keys are not mode 600"
openssl verify -CAfile "$d/ca.crt" "$d/server.crt" >/dev/null || fail "server.crt does not verify against ca.crt"
san=$(openssl x509 -in "$d/server.crt" -noout -ext subjectAltName)
for name in DNS:localhost "IP Address:127.0.0.1" "IP Address:0:0:0:0:0:0:0:1" DNS:dispatch.example.org "IP Address:192.0.2.7"; do
  [[ $san == *"$name"* ]] || fail "the SANs lack $name: $san"
done
openssl x509 -in "$d/server.crt" -noout -subject | grep -q 'CN *= *dispatch.example.org' || fail "CN is not the first --host"
openssl x509 -in "$d/server.crt" -noout -checkend $((29 * 86400)) >/dev/null || fail "--days 30 was not honoured"
! openssl x509 -in "$d/server.crt" -noout -checkend $((31 * 86400)) >/dev/null || fail "--days 30 was not honoured"
openssl x509 -in "$d/server.crt" -noout -ext extendedKeyUsage | grep -q 'TLS Web Server Authentication' ||
  fail "server.crt is not for serverAuth"
[[ $(openssl x509 -in "$d/server.crt" -noout -pubkey | sha256sum) == $(openssl pkey -in "$d/server.key" -pubout | sha256sum) ]] ||
  fail "server.key does not belong to server.crt"
echo "ok: certificates verify, SANs and lifetime right"

# No overwrite without --force; --force makes a new CA.
before=$(sha256sum "$d"/*)
if "$gen" "$d" 2>"$tmp/err"; then fail "gen-certs overwrote existing files without --force"; fi
grep -q -- '--force' "$tmp/err" || fail "the refusal does not mention --force"
[[ $(sha256sum "$d"/*) == "$before" ]] || fail "a refused run changed files"
"$gen" "$d" --force >/dev/null || fail "gen-certs --force failed"
[[ $(sha256sum "$d/ca.crt") != $(grep ca.crt <<<"$before") ]] || fail "--force did not replace the CA"
openssl verify -CAfile "$d/ca.crt" "$d/server.crt" >/dev/null || fail "after --force, server.crt does not verify"
echo "ok: refuses to overwrite without --force"

# Usage errors exit 2 and write nothing.
for args in "" "--force" "$tmp/u --days" "$tmp/u --days 0" "$tmp/u --days x" "$tmp/u --host" "$tmp/u --nope"; do
  rc=0
  # shellcheck disable=SC2086  # word splitting of the argument list is intended
  "$gen" $args >/dev/null 2>&1 || rc=$?
  [[ $rc -eq 2 ]] || fail "gen-certs $args exited $rc, not 2"
done
[[ ! -e $tmp/u/ca.key ]] || fail "a usage error wrote a key"
echo "ok: bad arguments exit 2"

[[ -n $dispatch ]] || exit 0
# The server serves HTTPS with these files; curl trusts it through ca.crt alone.
"$dispatch" serve --listen 127.0.0.1:0 --data-dir "$tmp/data" --tls-cert "$d/server.crt" --tls-key "$d/server.key" \
  --log-level warn >"$tmp/serve.out" 2>"$tmp/serve.err" &
server_pid=$!
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/serve.out")
  [[ -n $port ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/serve.err" >&2; fail "the server exited"; }
  sleep 0.05
done
[[ -n $port ]] || fail "the server did not say where it listens"
curl -fsS --cacert "$d/ca.crt" "https://localhost:$port/healthz" | grep -q '"ok"' || fail "https with ca.crt failed"
if curl -fsS "https://localhost:$port/healthz" >/dev/null 2>&1; then fail "curl trusted the server without ca.crt"; fi
echo "ok: distconv-dispatch serves HTTPS with the generated certificate"
