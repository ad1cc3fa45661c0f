#!/usr/bin/env bash
# Makes a private CA and a server certificate signed by it, for serving distconv-dispatch over HTTPS.
#
#   scripts/gen-certs.sh DIR [--host NAME]... [--days N] [--force]
#
# Writes DIR/ca.crt and DIR/ca.key (keep ca.key offline), DIR/server.crt and DIR/server.key.
# The server certificate names localhost, 127.0.0.1, ::1 and every --host given (DNS name or IP).
# Give engines and CLI users ca.crt (`--ca-cert ca.crt`); give the server server.crt and server.key
# (`serve --tls-cert server.crt --tls-key server.key`). Existing files are kept unless --force.
set -euo pipefail

usage() { echo "usage: scripts/gen-certs.sh DIR [--host NAME]... [--days N] [--force]" >&2; exit 2; }

[[ $# -ge 1 ]] || usage
dir=$1; shift
[[ $dir != -* ]] || usage
hosts=()
days=825
force=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --host) [[ $# -ge 2 && -n $2 ]] || usage; hosts+=("$2"); shift 2 ;;
    --days) [[ $# -ge 2 && $2 =~ ^[0-9]+$ && $2 -gt 0 ]] || usage; days=$2; shift 2 ;;
    --force) force=1; shift ;;
    *) usage ;;
  esac
done
command -v openssl >/dev/null || { echo "gen-certs: openssl is not installed (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$dir"
if [[ $force -eq 0 ]]; then
  for f in ca.crt ca.key server.crt server.key; do
    if [[ -e $dir/$f ]]; then
      echo "gen-certs: $dir/$f exists; pass --force to replace the CA and server certificate" >&2
      exit 1
    fi
  done
fi

san="DNS:localhost,IP:127.0.0.1,IP:::1"
for h in "${hosts[@]}"; do
  if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then san+=",IP:$h"; else san+=",DNS:$h"; fi
done
cn=${hosts[0]:-localhost}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
umask 077

openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$days" \
  -subj "/CN=distconv CA $(date -u +%Y%m%d%H%M%S)" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$tmp/ca.key" -out "$tmp/ca.crt" 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }

openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=$cn" \
  -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
cat > "$tmp/ext.cnf" <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san
EOF
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
  -days "$days" -sha256 -extfile "$tmp/ext.cnf" -out "$tmp/server.crt" 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
openssl verify -CAfile "$tmp/ca.crt" "$tmp/server.crt" >/dev/null

install -m 600 "$tmp/ca.key" "$tmp/server.key" "$dir/"
install -m 644 "$tmp/ca.crt" "$tmp/server.crt" "$dir/"
echo "gen-certs: wrote $dir/ca.crt, $dir/ca.key, $dir/server.crt, $dir/server.key (names: $san)"
