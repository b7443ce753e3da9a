#!/usr/bin/env bash
# Installs what tests/bench/run.sh needs beyond tests/install-deps.sh: the load generators (wrk, iperf3)
# and OpenSSH (the ssh -R baseline), skipping what is already present. Needs root when anything is missing.
set -euo pipefail

packages=(wrk iperf3 openssh-server openssh-client)

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
  echo "install-bench-deps: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-bench-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The packages' own daemons (sshd on 22, iperf3's unit) are not wanted: the benchmark starts its own instances on
# free loopback ports. policy-rc.d keeps the maintainer scripts from starting them where invoke-rc.d is used.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
fi
trap '[ "$made_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get update -qq
echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections 2>/dev/null || true
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
