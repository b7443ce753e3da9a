#!/usr/bin/env bash
# The README's two commands are the product's front door, so they are run as written: each indented command line
# of the README section "Two commands" is extracted verbatim. The demo command is run from the source tree and must
# exit 0 and say every step worked; the test command is the one .ci/run calls (running it here would recurse).
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
pass "README commands: '$demo' ran to the end; .ci/run runs '$test_command'"
