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
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
