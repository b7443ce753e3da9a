#!/usr/bin/env bash
# The VM suite: the package and the playbook on a real Debian 12 host, systemd as PID 1, reached over ssh, the
# way operators run them (docs/TESTING.md, "VM suite"). Not part of the test command: it needs root, a network
# to debootstrap from on its first run, and minutes of CPU under TCG.
#   bash tests/vm/run.sh [PATH.deb]
# Without a .deb it builds one as docs/OPERATIONS.md section 1 says (build/deb). Steps, each timed:
#   1. the guest's root, once (tests/vm/make-root.sh, cached in /var/cache/tunnel-vm); a raw ext4 image of it
#      made with mkfs.ext4 -d, holding this run's ssh key
#   2. boots it with qemu (TCG, -snapshot), waits for ssh and `systemctl is-system-running --wait`
#   3. examples/ansible/site.yml against it: --check --diff on the fresh host, then for real (tunneld and tunnelc
#      on the guest, the tunnel table through the management port forwarded to this host), then once more
#   4. on the guest: both units active; a public port carries a request to a backend through the tunnel
#   5. `systemctl reload tunneld` with a broken key: systemd's status text says the reload failed; with the key
#      back, "reloaded"
#   6. poweroff, and qemu exits
# TUNNEL_VM_KEEP=1 leaves a failed guest running for a look (ssh command printed); TUNNEL_VM_CACHE moves the cache.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
cache=${TUNNEL_VM_CACHE:-/var/cache/tunnel-vm}
work=$(mktemp -d /tmp/tunnel-vm.XXXXXX)
QEMU_PID=
t_start=$(date +%s)
t_step=$t_start

log() { printf '[vm %4ds] %s\n' "$(( $(date +%s) - t_start ))" "$*"; }
timed() { local now; now=$(date +%s); log "$1: $((now - t_step)) s"; t_step=$now; }
fail() {
  log "FAIL: $*"
  [ -s "$work/console.log" ] && { echo "--- last lines of the serial console ($work/console.log)"; tail -n 30 "$work/console.log"; }
  exit 1
}
cleanup() {
  local status=$?
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
    if [ "$status" -ne 0 ] && [ "${TUNNEL_VM_KEEP:-0}" = 1 ]; then
      echo "guest left running (qemu pid $QEMU_PID): ssh -i $work/id -p $SSH_PORT -o StrictHostKeyChecking=no" \
           "-o UserKnownHostsFile=/dev/null root@127.0.0.1   (serial console: $work/console.log; stop: kill $QEMU_PID)"
      exit "$status"
    fi
    kill "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
  fi
  if [ "$status" -eq 0 ]; then rm -rf "$work"; else echo "files of this run: $work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || fail "run as root (debootstrap, the image's root-owned files)"
bash "$src/tests/vm/install-deps.sh"
bash "$src/tests/install-deps.sh"
bash "$src/tests/vm/make-root.sh" "$cache"
timed "guest root ready ($cache)"

deb=${1:-}
if [ -z "$deb" ]; then
  log "building the package (docs/OPERATIONS.md section 1, build/deb)"
  cmake -S "$src" -B "$src/build/deb" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
    -DTUNNEL_TESTS=OFF >"$work/deb-build.log" 2>&1 &&
    cmake --build "$src/build/deb" -j "$(nproc)" >>"$work/deb-build.log" 2>&1 &&
    (cd "$src/build/deb" && cpack -G DEB >>"$work/deb-build.log" 2>&1) ||
    { tail -30 "$work/deb-build.log"; fail "the package did not build"; }
  deb=$(ls -t "$src"/build/deb/tunnel_*_amd64.deb | head -1)
  timed "package built"
fi
[ -f "$deb" ] || fail "no package at $deb"
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
log "package: $deb"
# The controller makes the PKI with the packaged tunneld (its libraries are this host's).
dpkg-deb -x "$deb" "$work/pkg"
tunneld_here=$work/pkg/usr/bin/tunneld

# ---- the image ----
ssh-keygen -q -t ed25519 -N '' -C tunnel-vm -f "$work/id"
install -m 600 "$work/id.pub" "$cache/root/root/.ssh/authorized_keys"
mkfs.ext4 -q -F -L tunnel-vm -d "$cache/root" "$work/root.img" 3G >"$work/mkfs.log" 2>&1 ||
  { cat "$work/mkfs.log"; fail "mkfs.ext4 -d failed"; }
timed "image made ($(du -h "$work/root.img" | cut -f1) used of 3G)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SSH_PORT=$(free_port); API_PORT=$(free_port)
qemu-system-x86_64 -accel tcg -cpu max -m 1024 -smp 1 -display none -monitor none \
  -serial "file:$work/console.log" \
  -kernel "$cache/vmlinuz" -initrd "$cache/initrd.img" -append 'root=/dev/vda rw console=ttyS0 quiet' \
  -drive "file=$work/root.img,format=raw,if=virtio" -snapshot \
  -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$SSH_PORT-:22,hostfwd=tcp:127.0.0.1:$API_PORT-:9057" \
  -device virtio-net-pci,netdev=n0 &
QEMU_PID=$!
ssh_opts=(-i "$work/id" -p "$SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
          -o LogLevel=ERROR -o ConnectTimeout=10)
vm() { ssh "${ssh_opts[@]}" root@127.0.0.1 "$@"; }

# Deadlines sized for TCG on a shared, busy machine: about 25 s to multi-user when idle.
deadline=$(( $(date +%s) + 600 ))
until vm true 2>/dev/null; do
  kill -0 "$QEMU_PID" 2>/dev/null || fail "qemu exited before ssh answered"
  [ "$(date +%s)" -lt "$deadline" ] || fail "no ssh within 600 s"
  sleep 2
done
timed "ssh answers"
state=$(vm timeout 600 systemctl is-system-running --wait || true)
[ "$state" = running ] || fail "system state '$state': $(vm systemctl --failed --no-legend 2>&1)"
timed "systemctl is-system-running: running"

# ---- the playbook ----
export ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=false LC_ALL=C.UTF-8
export ANSIBLE_LOCAL_TEMP="$work/ansible-tmp" ANSIBLE_HOME="$work/ansible-home" PYTHONDONTWRITEBYTECODE=1
cp -r "$src/examples/ansible" "$work/ansible"
cd "$work/ansible"
mkdir -p dist && cp "$deb" dist/
"$tunneld_here" pki init pki >/dev/null
"$tunneld_here" pki issue pki --name vps --server --dns tunnel.example.com --ip 127.0.0.1 >/dev/null
"$tunneld_here" pki issue pki --name home >/dev/null
"$tunneld_here" pki issue pki --name ops --admin >/dev/null
# Both roles on the one guest (two inventory names for it); the table from the controller through the forwarded
# management port; the site's tunnels on the guest's own loopback, to a backend the test starts there.
cat >inventory.ini <<INI
[all:vars]
ansible_host=127.0.0.1
ansible_port=$SSH_PORT
ansible_user=root
ansible_ssh_private_key_file=$work/id
ansible_python_interpreter=/usr/bin/python3
tunnel_deb_src=dist/$(basename "$deb")

[tunnel_servers]
vps tunnel_server_ca_cert_src=pki/ca.crt tunnel_server_cert_src=pki/vps.crt tunnel_server_key_src=pki/vps.key tunnel_routes_api_url=https://127.0.0.1:$API_PORT

[tunnel_clients]
home tunnel_client_name=home tunnel_client_allowed_backend_ports='[8000]' tunnel_client_server_host=127.0.0.1 tunnel_client_server_name=tunnel.example.com tunnel_client_ca_cert_src=pki/ca.crt
INI
cat >routes.yml <<'YML'
tunnel_routes:
  - ListenAddress: "127.0.0.1"
    ListenPort: 8080
    ClientIdentifier: home
    BackEndPort: 8000
YML
play() {  # play NAME ARGS...: output in $work/NAME.out
  local t0; t0=$(date +%s)
  if ! ansible-playbook -i inventory.ini site.yml -e @routes.yml "${@:2}" >"$work/$1.out" 2>&1; then
    tail -40 "$work/$1.out"; fail "ansible-playbook $1 failed"
  fi
  log "ansible-playbook $1: $(grep -E '^(vps|home) ' "$work/$1.out" | tr -s ' ' | tr '\n' ';') $(( $(date +%s) - t0 )) s"
}
play check --check --diff
vm test ! -e /usr/bin/tunneld || fail "check mode installed the package"
timed "playbook in check mode on the fresh host"
play apply
timed "playbook applied"
play again
grep -qE '^vps .*changed=0' "$work/again.out" && grep -qE '^home .*changed=0' "$work/again.out" ||
  log "note: the second run reported changes: $(grep -E '^(vps|home) ' "$work/again.out" | tr -s ' ')"
timed "playbook run again"

# ---- the services ----
vm systemctl is-active tunneld.service tunnelc.service >/dev/null || fail "units not active: $(vm systemctl status tunneld tunnelc --no-pager 2>&1 | tail -30)"
[ "$(vm stat -c %U "/proc/\$(systemctl show -p MainPID --value tunneld)")" = tunnel ] || fail "tunneld does not run as tunnel"
vm 'mkdir -p /tmp/www && echo "hello from the guest" >/tmp/www/index.html &&
    (setsid python3 -m http.server 8000 --bind 127.0.0.1 --directory /tmp/www </dev/null >/dev/null 2>&1 &)'
# The guest has no curl (a minimal root): python's urllib, polled with a deadline until the backend is up.
got=$(vm 'for i in $(seq 1 60); do python3 -c "import urllib.request; print(urllib.request.urlopen(\"http://127.0.0.1:8080/\", timeout=5).read().decode().strip())" 2>/dev/null && exit 0; sleep 1; done; exit 1') ||
  fail "no answer through the tunnel on the guest: $(vm journalctl -u tunneld -u tunnelc --no-pager -n 30)"
[ "$(echo "$got" | tail -1)" = "hello from the guest" ] || fail "through the tunnel: '$got'"
timed "tunneld and tunnelc active (tunneld as user tunnel); a request crossed the tunnel"

# ---- a reload that fails, then one that works ----
# systemctl reload returns once kill -HUP has run: the status text is polled (60 s) until tunneld has answered.
status_is() {  # status_is GLOB: tunneld's StatusText matches GLOB within 60 s; the text is left in $status
  local deadline=$(( $(date +%s) + 60 ))
  while :; do
    status=$(vm systemctl show -p StatusText --value tunneld)
    # shellcheck disable=SC2053
    [[ $status == $1 ]] && return 0
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 1
  done
}
vm 'cp /etc/tunnel/server.key /root/server.key.good && echo broken >/etc/tunnel/server.key && systemctl reload tunneld'
status_is "reload failed*" || fail "systemd was not told the reload failed: StatusText '$status'"
log "after a reload with a broken key: StatusText=$status"
vm systemctl is-active tunneld >/dev/null || fail "tunneld stopped after a failed reload"
vm 'install -m 0640 -o root -g tunnel /root/server.key.good /etc/tunnel/server.key && systemctl reload tunneld'
status_is reloaded || fail "after the key came back: StatusText '$status'"
timed "reload: failed one reported (StatusText), good one says reloaded"

# ---- shutdown ----
vm systemctl poweroff >/dev/null 2>&1 || true
deadline=$(( $(date +%s) + 180 ))
while kill -0 "$QEMU_PID" 2>/dev/null; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "the guest did not power off within 180 s"
  sleep 1
done
wait "$QEMU_PID" || true
QEMU_PID=
timed "powered off"
log "PASS: package and playbook on a Debian 12 guest in $(( $(date +%s) - t_start )) s"
