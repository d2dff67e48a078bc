#!/bin/sh
# The command line a user touches first: --help, --version, usage errors.
set -u
bin=$1
pass=0
fail=0
check() { # description, then the command; the check is its exit status
    desc=$1; shift
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $desc"; fi
}
out=$("$bin" --help); rc=$?
check "--help exits 0" [ "$rc" -eq 0 ]
check "--help names the usage" sh -c 'echo "$1" | grep -q "^Usage: ringmail"' _ "$out"
check "--help lists commands" sh -c 'echo "$1" | grep -q "version"' _ "$out"
out=$("$bin" --version); rc=$?
check "--version exits 0" [ "$rc" -eq 0 ]
check "--version prints a version" sh -c 'echo "$1" | grep -Eq "^ringmail [0-9]+\.[0-9]+\.[0-9]+$"' _ "$out"
"$bin" >/dev/null 2>&1; rc=$?
check "no command exits 64" [ "$rc" -eq 64 ]
err=$("$bin" frobnicate 2>&1 >/dev/null); rc=$?
check "unknown command exits 64" [ "$rc" -eq 64 ]
check "unknown command is named" sh -c 'echo "$1" | grep -q "frobnicate"' _ "$err"
# Options of the commands that take numbers: bad values are usage errors.
err=$("$bin" send --relay localhost:25 --from a@x --to b@y --pipeline-depth 33 /dev/null 2>&1); rc=$?
check "send --pipeline-depth above 32 exits 64" [ "$rc" -eq 64 ]
check "send says the depth's limit" sh -c 'echo "$1" | grep -q "at most 32"' _ "$err"
out=$("$bin" send --help); rc=$?
check "send --help lists --pipeline-depth and --no-pipeline-body" \
    sh -c 'echo "$1" | grep -q -- "--pipeline-depth" && echo "$1" | grep -q -- "--no-pipeline-body"' _ "$out"
"$bin" enqueue -c /dev/null --from a@x --to b@y --count 10 --rate 0 >/dev/null 2>&1; rc=$?
check "enqueue --rate 0 exits 64" [ "$rc" -eq 64 ]
out=$("$bin" enqueue --help); rc=$?
check "enqueue --help lists --rate" sh -c 'echo "$1" | grep -q -- "--rate R"' _ "$out"
err=$("$bin" send --relay 127.0.0.1:1 --ehlo client.test --pin sha256//not-a-pin --from a@b.example \
    --to c@d.example /dev/null 2>&1 >/dev/null); rc=$?
check "send --pin that is not a pin exits 64 (got $rc)" [ "$rc" -eq 64 ]
check "send names the pin and the spellings" sh -c 'echo "$1" | grep -qF -- "--pin '"'"'sha256//not-a-pin'"'"': not an SPKI SHA-256 pin"' _ "$err"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
