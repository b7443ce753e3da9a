#!/usr/bin/env bash
# Installs the Debian bookworm packages that building, testing and the demo need,
# skipping the ones already present. Needs root when anything is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libmbedtls-dev libuv1-dev libjansson-dev libcmocka-dev node-llhttp
  clang libfuzzer-14-dev libclang-rt-14-dev
  golang-go golang-github-hashicorp-yamux-dev
  curl openssl nginx-light haproxy procps iproute2 python3
  systemd dpkg-dev file man-db groff-base ansible-core strace
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# nginx's package starts a daemon on port 80 where it can; tests start their own instances.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
