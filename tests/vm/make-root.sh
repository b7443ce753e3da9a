#!/usr/bin/env bash
# Builds the guest's root for the VM suite once, cached outside the tree: a Debian 12 root made by debootstrap
# with a stock kernel, systemd as PID 1, sshd, python3 (Ansible's modules) and the library packages the tunnel
# package depends on, plus a small initrd (virtio and ext4 only) that boots it under TCG in seconds.
#   bash tests/vm/make-root.sh [CACHE_DIR]       (default /var/cache/tunnel-vm; needs root)
# The result is CACHE_DIR/root (the tree) with CACHE_DIR/vmlinuz and CACHE_DIR/initrd.img beside it;
# CACHE_DIR/root.done marks it complete. Delete CACHE_DIR to build it anew.
set -euo pipefail

cache=${1:-${TUNNEL_VM_CACHE:-/var/cache/tunnel-vm}}
mirror=${TUNNEL_VM_MIRROR:-http://deb.debian.org/debian}
root=$cache/root
[ -e "$cache/root.done" ] && exit 0
[ "$(id -u)" -eq 0 ] || { echo "vm/make-root: needs root (debootstrap, chroot)" >&2; exit 1; }
mkdir -p "$cache"
rm -rf "$root"
t0=$(date +%s)

# The tunnel package's run-time libraries are installed here so the guest needs no network to install it.
include=linux-image-amd64,systemd-sysv,openssh-server,python3,initramfs-tools,udev,iproute2,dbus
include+=,libmbedtls14,libmbedx509-1,libmbedcrypto7,libuv1,libjansson4,man-db,adduser,apt
echo "vm/make-root: debootstrap bookworm into $root (a few minutes)"
debootstrap --variant=minbase --include="$include" bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
  { tail -30 "$cache/debootstrap.log" >&2; exit 1; }

# Only the modules this machine needs: the stock initrd holds every driver and takes much longer to unpack
# under TCG.
sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
printf '%s\n' virtio_pci virtio_blk virtio_net ext4 crc32c_generic >"$root/etc/initramfs-tools/modules"
kver=$(basename "$(ls -d "$root"/lib/modules/* | head -1)")
chroot "$root" mkinitramfs -o /boot/initrd.small "$kver" >"$cache/mkinitramfs.log" 2>&1 ||
  { tail -30 "$cache/mkinitramfs.log" >&2; exit 1; }
cp "$root/boot/vmlinuz-$kver" "$cache/vmlinuz"
cp "$root/boot/initrd.small" "$cache/initrd.img"

echo tunnel-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 tunnel-vm\n::1 localhost\n' >"$root/etc/hosts"
printf '/dev/vda / ext4 defaults 0 1\n' >"$root/etc/fstab"
# qemu's user network answers DHCP on the first NIC.
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n' >"$root/etc/systemd/network/10-dhcp.network"
chroot "$root" systemctl enable systemd-networkd.service >/dev/null 2>&1
# sshd keeps the host keys the package made; root logs in with the per-run key only.
mkdir -p "$root/etc/ssh/sshd_config.d" "$root/root/.ssh"
printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n' \
  >"$root/etc/ssh/sshd_config.d/tunnel-vm.conf"
chmod 700 "$root/root/.ssh"
rm -f "$root"/var/cache/apt/archives/*.deb
touch "$cache/root.done"
echo "vm/make-root: done in $(( $(date +%s) - t0 )) s ($(du -sh "$root" | cut -f1))"
