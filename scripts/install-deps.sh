#!/usr/bin/env bash
# Installs the Debian 12 packages distconv needs to build, test and run.
# Idempotent: only what is missing is installed. Run as root (or with sudo available).
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache git ca-certificates
  libcpp-httplib-dev nlohmann-json3-dev libsqlite3-dev sqlite3 libcurl4-openssl-dev curl
  libssl-dev openssl libcli11-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev
  libsystemd-dev ffmpeg procps bubblewrap
)
# Optional extras for the test suite (the spec linter needs node + npm).
if [[ "${1:-}" == "--test" ]]; then
  command -v node >/dev/null 2>&1 || packages+=(nodejs)
  command -v npm >/dev/null 2>&1 || packages+=(npm)
  # promtool (checks /metrics), systemd-analyze (verifies the units), dpkg-dev (inspects the .deb),
  # jq (benchmark scripts), clang + its runtime (libFuzzer targets), strace (the units' syscall filters),
  # clang-format (the check_format test), chromium + chromium-driver (the dashboard's browser tests,
  # driven over WebDriver), fonts-dejavu-core (so the headless browser renders text).
  packages+=(prometheus systemd dpkg-dev file jq clang libclang-rt-14-dev strace clang-format
             chromium chromium-driver fonts-dejavu-core)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
