#!/usr/bin/env bash
# docs/operations.md stays true: its Prometheus scrape config and alert rules pass promtool, every
# metric it names is one dispatch_server/metrics/metrics.cpp exports (and every exported family is
# documented), and the flags it passes exist in the programs' --help.
#
#   tests/packaging/check_operations_doc.sh SOURCE_DIR DISPATCH_BINARY ENGINE_BINARY
set -euo pipefail
src=$1
dispatch=$2
engine=$3
doc=$src/docs/operations.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# The yaml blocks, in order: the scrape config, then the alert rules.
awk '/^```yaml$/ {n++; on=1; next} /^```$/ {on=0} on {print > (dir "/block" n ".yml")}' dir="$tmp" "$doc"
[[ -f $tmp/block1.yml && -f $tmp/block2.yml ]] || fail "expected two yaml blocks in operations.md"
if command -v promtool >/dev/null; then
  touch "$tmp/ca.crt"
  sed "s|/etc/prometheus/distconv-ca.crt|$tmp/ca.crt|" "$tmp/block1.yml" >"$tmp/prometheus.yml"
  promtool check config --syntax-only "$tmp/prometheus.yml" >"$tmp/promtool.log" 2>&1 ||
    { cat "$tmp/promtool.log" >&2; fail "the scrape config does not pass promtool"; }
  promtool check rules "$tmp/block2.yml" >"$tmp/promtool.log" 2>&1 ||
    { cat "$tmp/promtool.log" >&2; fail "the alert rules do not pass promtool"; }
  echo "ok: scrape config and alert rules pass promtool"
else
  echo "promtool not installed: yaml blocks not checked"
fi

exported=$(grep -o '"distconv_[a-z_]*"' "$src/dispatch_server/metrics/metrics.cpp" | tr -d '"' | sort -u)
named=$(grep -o 'distconv_[a-z][a-z_]*' "$doc" | sed -E 's/_(bucket|sum|count)$//' | sort -u)
for m in $named; do
  grep -qx "$m" <<<"$exported" || fail "operations.md names $m, which /metrics does not export"
done
for m in $exported; do
  grep -q "\`${m}[{\`]" "$doc" || fail "/metrics exports $m, which the table in operations.md lacks"
done
echo "ok: $(wc -w <<<"$exported") metric families documented"

"$dispatch" --help >"$tmp/dispatch.help"
"$engine" --help >"$tmp/engine.help"
for flag in --config --tls-cert --tls-key --pool --data-dir --listen; do
  grep -q -- "$flag" "$tmp/dispatch.help" || fail "distconv-dispatch has no $flag"
done
for key in tls-cert tls-key pool output-retention source-retention job-ttl maintenance-interval log-format log-file; do
  grep -q -- "--$key" "$tmp/dispatch.help" || fail "operations.md uses dispatch key $key, which is no flag"
done
for key in server ca-cert slots tag allow-insecure drain-timeout reserve-disk; do
  grep -q -- "--$key" "$tmp/engine.help" || fail "operations.md uses engine key $key, which is no flag"
done
echo "ok: documented keys are real flags"
