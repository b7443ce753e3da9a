#!/usr/bin/env bash
# The README's two commands are the product's front door, so they are run as written: each indented command line
# of the README section "Two commands" is extracted verbatim. The demo command is run from the source tree and must
# exit 0 and say every step worked; the test command is the one .ci/run calls (running it here would recurse).
# Then the README's quick start runs block by block, as written (see below).
source "$(dirname "$0")/lib.sh"

src=${TUNNEL_SOURCE_DIR:?}
mapfile -t commands < <(awk '/^## Two commands/ { on = 1; next } on && /^## / { exit } on && /^    [^ ]/ { sub(/^    /, ""); print }' \
                          "$src/README.md")
[ "${#commands[@]}" = 2 ] || fail "README's 'Two commands' section should hold exactly two commands, found: ${commands[*]:-none}"
demo=${commands[0]} test_command=${commands[1]}
echo "README demo command: $demo"
echo "README test command: $test_command"

grep -qxF "$test_command" "$src/.ci/run" || fail ".ci/run does not run the README's test command '$test_command'"

# The demo installs what is missing (nothing, on a machine that runs this suite) and builds its own Release tree.
status=0
( cd "$src" && bash -c "$demo" ) >"$TEST_TMP/demo.log" 2>&1 || status=$?
tail -n 12 "$TEST_TMP/demo.log"
[ "$status" = 0 ] || fail "'$demo' exited $status (output in $TEST_TMP/demo.log)"
grep -q "demo: every step worked" "$TEST_TMP/demo.log" || fail "the demo did not report success"
grep -q "failover: the first request served by the backup home2" "$TEST_TMP/demo.log" || fail "the demo skipped its failover step"
grep -q "two sites, two home machines, one public port" "$TEST_TMP/demo.log" || fail "the demo skipped its second site on one port"
grep -qE "two VPSes: [1-9][0-9]* requests through vps2 across the kill of vps1, 0 failed" "$TEST_TMP/demo.log" ||
  fail "the demo skipped its two-VPS step"
pass "README commands: '$demo' ran to the end; .ci/run runs '$test_command'"

# The quick start, block by block as the README tags them (<!-- quickstart: run|start NAME|output --> before a fenced
# block): "run" blocks are evaluated in this shell in order (so cd and export carry, as in the reader's shell),
# "start" blocks are started in the background (tunneld and tunnelc stop-checked), and the "output" block must be
# what the last run block printed last. The only substitutions are the ones the README names: its directory and
# its four ports.
qs_dir="$TEST_TMP/try"
declare -A qs_port=([9056]=$(free_port) [9057]=$(free_port) [8000]=$(free_port) [8080]=$(free_port))
qs_sed=(-e "s#/tmp/tunnel-try#$qs_dir#g")
for p in "${!qs_port[@]}"; do qs_sed+=(-e "s/\\b$p\\b/${qs_port[$p]}/g"); done
python3 - "$src/README.md" "$TEST_TMP/qs" <<'PY'
import os, re, sys
text = open(sys.argv[1]).read()
os.makedirs(sys.argv[2])
blocks = re.findall(r'<!-- quickstart: ([a-z]+)(?: ([a-z0-9]+))? -->\n```[a-z]*\n(.*?)```\n', text, re.S)
for i, (kind, name, body) in enumerate(blocks):
    open(os.path.join(sys.argv[2], "%02d-%s-%s" % (i, kind, name or "-")), "w").write(body)
PY
qs_blocks=("$TEST_TMP"/qs/*)
[ "${#qs_blocks[@]}" -ge 6 ] || fail "README quick start: expected tagged blocks, found ${#qs_blocks[@]}"
grep -q "^## Quick start" "$src/README.md" || fail "README has no Quick start section"
qs_ready() {  # what the reader sees before going on: the program is up
  case $1 in
    backend) wait_port "${qs_port[8000]}" ;;
    tunneld) wait_port "${qs_port[9057]}" ;;
    tunnelc) wait_log "$TEST_TMP/tunnelc.log" "client home: connected to 127.0.0.1:${qs_port[9056]} \\(server certificate CN vps\\)" 30 ;;
  esac
}
cd "$src"
for f in "${qs_blocks[@]}"; do
  base=$(basename "$f"); kind=${base#*-}; kind=${kind%%-*}; name=${base##*-}
  body=$(sed "${qs_sed[@]}" "$f")
  case $kind in
    run)
      echo "quick start: running block $base"
      # In this shell, as in the reader's: cd and export carry into the next block; set -e ends the test (with
      # these logs) at the first failing command.
      eval "$body" >"$TEST_TMP/qs-last.log" 2>"$TEST_TMP/qs-last.err.log" </dev/null
      ;;
    start)
      [ "$(wc -l <<<"$body")" = 1 ] || fail "quick start start block $base is not one command"
      echo "quick start: starting $name: $body"
      read -r -a argv <<<"$body"
      if [ "$name" = tunneld ] || [ "$name" = tunnelc ]; then spawn_checked "$name" "${argv[@]}"; else spawn "$name" "${argv[@]}"; fi
      qs_ready "$name"
      ;;
    output)
      expected=$(cat "$f")
      got=$(tail -n "$(wc -l <"$f")" "$TEST_TMP/qs-last.log")
      [ "$got" = "$expected" ] || fail "quick start: expected '$expected', the last command printed '$got'"
      ;;
    *) fail "unknown quick start block kind in $base" ;;
  esac
done
pass "README quick start ran as written and printed what it says"
