#!/usr/bin/env bash
# Stands in for curl (as bin/curl first on PATH) while docs_examples_test runs the docs' examples as
# written: the real curl, bounded by --max-time, without ~/.curlrc or a proxy, with the documented
# origins pointed at the test's servers (--connect-to keeps the URL's host for TLS and Host), and
# each answer's headers kept so the test can read the status. An example's own options come after
# these, so one that sets --max-time itself wins.
#
#   DCV_REAL_CURL   the real curl
#   DCV_MAX_TIME    seconds one call may take
#   DCV_CONNECT_TO  HOST:PORT:127.0.0.1:PORT mappings, separated by spaces
#   DCV_CURL_LOG    a directory; each call appends "exit-code TAB headers-file TAB phase TAB args" to calls
#   DCV_CURL_PHASE  "setup" or "example", set by the script the test runs
set -u
headers=$(mktemp "$DCV_CURL_LOG/headers.XXXXXX")
options=(-q --max-time "$DCV_MAX_TIME" --noproxy '*' --dump-header "$headers")
for mapping in $DCV_CONNECT_TO; do options+=(--connect-to "$mapping"); done
"$DCV_REAL_CURL" "${options[@]}" "$@"
rc=$?
printf '%s\t%s\t%s\t%s\n' "$rc" "$headers" "${DCV_CURL_PHASE:-}" "$*" >>"$DCV_CURL_LOG/calls"
exit "$rc"
