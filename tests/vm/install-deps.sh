#!/usr/bin/env bash
# Installs what the VM suite (tests/vm/run.sh) needs on the host, skipping what is present: qemu (TCG is
# enough), debootstrap for the guest's root, e2fsprogs for mkfs.ext4 -d, an ssh client, ansible for the
# playbook run and cmake/cpack for the package. Needs root when anything is missing.
set -euo pipefail

packages=(qemu-system-x86 debootstrap e2fsprogs openssh-client ansible-core cmake dpkg-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "vm/install-deps: missing packages: ${missing[*]}; run as root" >&2
  exit 1
fi
echo "vm/install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
