#!/usr/bin/env bash
# Runs the README's test command inside a root of another Debian release made
# with debootstrap, then the mixed-version test between that build and the
# host's. Usage: tests/distro/run.sh debian13 [--fresh] [--no-suite]
#   --fresh     rebuild the cached root from scratch (a new system, nothing installed)
#   --no-suite  skip the full suite inside the root (build, then the mixed test only)
#   --run CMD   only run CMD in the tree inside the root (for debugging one test there)
# Needs root (debootstrap, mount, chroot).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

release=${1:-}
shift || true
fresh=0 suite=1 run_cmd=
while [ $# -gt 0 ]; do
  case $1 in
    --fresh) fresh=1 ;;
    --no-suite) suite=0 ;;
    --run) run_cmd=${2:?--run needs a command}; shift ;;
    *) echo "distro: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
case $release in
  debian13) suite_name=trixie ;;
  debian12) suite_name=bookworm ;;
  *) echo "usage: $0 debian13|debian12 [--fresh] [--no-suite]" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "distro: needs root (debootstrap, mount, chroot)" >&2
  exit 1
fi

cache=${TUNNEL_DISTRO_CACHE:-/var/cache/tunnel-distro}
root=$cache/$release
# Debian's archive, as the host's apt knows it (deb822 or one-line sources).
mirror=$(grep -rhoE 'https?://[^ ]*/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
  /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1 | tr -d ' ' || true)
mirror=${mirror:-http://deb.debian.org/debian}
security=${mirror%/debian*}/debian-security

t0=$(date +%s)
log() { echo "== distro $release [$(( $(date +%s) - t0 ))s] $*"; }

make_root() {
  command -v debootstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  mkdir -p "$cache"
  # Built beside the cache and renamed when complete: an interrupted build is never reused.
  local tmp=$root.tmp.$$
  rm -rf "$tmp"
  log "debootstrap $suite_name from $mirror"
  if ! debootstrap --variant=minbase "$suite_name" "$tmp" "$mirror" >"$cache/$release.debootstrap.log" 2>&1; then
    tail -n 20 "$cache/$release.debootstrap.log" >&2
    rm -rf "$tmp"
    echo "distro: debootstrap failed (log: $cache/$release.debootstrap.log)" >&2
    exit 1
  fi
  cat >"$tmp/etc/apt/sources.list" <<EOF
deb $mirror $suite_name main
deb $mirror $suite_name-updates main
deb $security $suite_name-security main
EOF
  rm -rf "$root"
  mv "$tmp" "$root"
  log "root ready"
}

# Never delete through a live mount (a run killed before its trap ran): that would reach the host's /dev or /tmp.
if [ -d "$root" ] && findmnt -rno TARGET | grep -q "^$root/"; then
  echo "distro: $root still has mounts (an earlier run was killed); unmount them first:" \
    "findmnt -rno TARGET | grep '^$root/' | sort -r | xargs -r umount -l" >&2
  exit 1
fi
if [ "$fresh" = 1 ]; then rm -rf "$root"; fi
if [ -x "$root/bin/bash" ] && [ -f "$root/etc/apt/sources.list" ]; then
  log "reusing $root"
else
  make_root
fi

mounts=()
cleanup() {
  local i
  for (( i=${#mounts[@]}-1; i>=0; i-- )); do
    umount -R "${mounts[$i]}" 2>/dev/null || umount -lR "${mounts[$i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT INT TERM
bind() { # host-path root-relative-path [rbind]
  mkdir -p "$root$2"
  if [ "${3:-}" = rbind ]; then
    mount --rbind "$1" "$root$2" && mount --make-rslave "$root$2"
  else
    mount --bind "$1" "$root$2"
  fi
  mounts+=("$root$2")
}
mkdir -p "$root/proc"
mount -t proc proc "$root/proc"; mounts+=("$root/proc")
bind /sys /sys rbind
bind /dev /dev rbind
# The host's /tmp: tests inside and outside claim free ports under /tmp/tunnel-test-ports (the network
# namespace is shared), and the mixed test's files are at the same path for both builds.
bind /tmp /tmp
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

# The tree as git sees it (tracked and untracked, not ignored), over the last
# copy so that the build directory inside is reused.
dest=/work/tunnel
mkdir -p "$root$dest"
find "$root$dest" -mindepth 1 -maxdepth 1 ! -name build -exec rm -rf {} +
(cd "$here" && git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do
  if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done | tar --null -T - -cf -) | tar -C "$root$dest" -xf -

in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 ${CTEST_PARALLEL_LEVEL:+CTEST_PARALLEL_LEVEL=$CTEST_PARALLEL_LEVEL} \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    TUNNEL_FUZZ_SECONDS="${TUNNEL_FUZZ_SECONDS:-20}" bash -c "$1"
}

status=0
if [ -n "$run_cmd" ]; then
  in_root "cd $dest && $run_cmd" || status=$?
  exit "$status"
fi
if [ "$suite" = 1 ]; then
  log "bash tests/run.sh inside the root"
  s0=$(date +%s)
  in_root "cd $dest && bash tests/run.sh" || status=$?
  log "suite inside the root: exit $status, $(( $(date +%s) - s0 ))s"
else
  in_root "cd $dest && bash tests/install-deps.sh && cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug \
    -DTUNNEL_SANITIZE=ON >/dev/null && cmake --build build/asan -j$(nproc)" || status=$?
fi
[ "$status" = 0 ] || exit "$status"

log "mixed versions: host build against the $release build"
DISTRO_ROOT=$root DISTRO_TREE=$dest bash "$here/tests/distro/mixed.sh"
log "done"
