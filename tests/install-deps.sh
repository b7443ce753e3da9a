#!/usr/bin/env bash
# Installs the packages that building, testing and the demo need on Debian 12
# (bookworm), Debian 13 (trixie) or Ubuntu 24.04 (noble), skipping the ones
# already present. Needs root when anything is missing.
set -euo pipefail

# The release decides the names that differ: the libFuzzer runtime goes with the
# release's default clang, Debian 13 folded nginx-light into nginx, and ships llhttp
# as a library (libllhttp-dev) where Debian 12 has only node-llhttp's C sources.
os_id=debian os_version=12
if [ -r /etc/os-release ]; then
  os_id=$(. /etc/os-release && echo "${ID:-debian}")
  os_version=$(. /etc/os-release && echo "${VERSION_ID:-12}")
fi
case "$os_id:$os_version" in
  debian:12) clang_version=14 nginx=nginx-light llhttp=node-llhttp ;;
  debian:13) clang_version=19 nginx=nginx llhttp=libllhttp-dev ;;
  ubuntu:24.04) clang_version=18 nginx=nginx llhttp=node-llhttp ;;
  *)
    echo "install-deps: $os_id $os_version is not a supported release (Debian 12 or 13, Ubuntu 24.04);" \
      "trying Debian 13's package names" >&2
    clang_version=19 nginx=nginx llhttp=libllhttp-dev ;;
esac

packages=(
  build-essential cmake pkg-config
  libmbedtls-dev libuv1-dev libjansson-dev libcmocka-dev "$llhttp"
  clang "libfuzzer-$clang_version-dev" "libclang-rt-$clang_version-dev"
  golang-go golang-github-hashicorp-yamux-dev
  curl openssl "$nginx" haproxy procps iproute2 python3
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
