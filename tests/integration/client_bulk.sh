#!/usr/bin/env bash
# 64 concurrent transfers of 8 MiB each (32 windows' worth per stream) (nginx -> tunnelc -> tunneld -> curl) all arrive with matching
# checksums; prints the aggregate throughput. The link stays up throughout.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fixture.sh"

STREAMS=${CLIENT_BULK_STREAMS:-64}
MIB=${CLIENT_BULK_MIB:-8}

make_pki
start_tunneld
BACKEND_PORT=$(free_port); PUBLIC_PORT=$(free_port)
mkdir -p "$TEST_TMP/www"
head -c $((MIB * 1024 * 1024)) /dev/urandom >"$TEST_TMP/www/big.bin"
want=$(sha256sum <"$TEST_TMP/www/big.bin" | cut -d' ' -f1)
start_nginx nginx "$TEST_TMP/www" "$BACKEND_PORT"
start_tunnelc home1 "[$BACKEND_PORT]"
wait_client_connected home1
put_tunnels "[{\"ListenAddress\": \"127.0.0.1\", \"ListenPort\": $PUBLIC_PORT, \"ClientIdentifier\": \"home1\", \"BackEndPort\": $BACKEND_PORT}]"
wait_port "$PUBLIC_PORT"

t0=$(now_ms)
pids=()
for i in $(seq 1 "$STREAMS"); do
  # The cap only turns a hang into a failure with a message; it is not a speed requirement.
  ( curl -sS --max-time 240 "http://127.0.0.1:$PUBLIC_PORT/big.bin" | sha256sum | cut -d' ' -f1 >"$TEST_TMP/sum.$i" ) \
    2>"$TEST_TMP/curl.$i.err" &
  pids+=("$!"); TEST_PIDS+=("$!")
done
for pid in "${pids[@]}"; do wait "$pid" || true; done
t1=$(now_ms)
bad=0
for i in $(seq 1 "$STREAMS"); do
  if [ "$(cat "$TEST_TMP/sum.$i")" != "$want" ]; then
    bad=$((bad + 1)); echo "transfer $i: checksum mismatch $(cat "$TEST_TMP/curl.$i.err")"
  fi
done
ms=$((t1 - t0)); [ "$ms" -gt 0 ] || ms=1
total_mib=$((STREAMS * MIB))
echo "$STREAMS concurrent transfers of $MIB MiB ($total_mib MiB) in $ms ms:" \
     "$(( total_mib * 1024 * 1000 / ms / 1024 )) MiB/s aggregate (ASan build, both ends)"
[ "$bad" = 0 ] || fail "$bad of $STREAMS transfers arrived damaged or incomplete"
[ "$(grep -c 'disconnected from' "$TEST_TMP/tunnelc-home1.log")" = 0 ] || fail "the link dropped during the transfers"
# Both programs must also shut down cleanly after all that.
stop_checked home1 tunneld
pass "$STREAMS x $MIB MiB concurrent transfers, all checksums match"
