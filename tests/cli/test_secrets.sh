#!/bin/sh
# Password files and the default EHLO name, through the binary:
#  - `ringmail enqueue -c CONFIG` authenticates with redis.password_file (and
#    redis.user) against a redis-server started here with requirepass / an
#    ACL user; a CRLF-terminated file works; a 600-octet password, an empty
#    file and a two-line file are errors (78), never cut or guessed;
#  - `ringmail run` and `ringmail send` refuse to start (78) when no EHLO name
#    is set and the host's name has no dot, and say to set ehlo_name / --ehlo.
# RINGMAIL_TEST_HOSTNAME stands in for gethostname() (engine/config).
# run and send are under timeout: a binary that starts anyway fails the check
# instead of hanging the test.
#   test_secrets.sh RINGMAIL_BINARY
set -u
bin=$1
pass=0
fail=0
check() { # description, then the command; the check is its exit status
    desc=$1; shift
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $desc"; fi
}
has() { # text, fixed string
    printf '%s\n' "$1" | grep -qF -- "$2"
}
# skip REASON: 77, or a failure under CI=true (the suite's one rule)
. "$(dirname "$0")/../skip.sh"

tmp=$(mktemp -d)
redis_pid=
cleanup() {
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# ---- the default EHLO name (no Redis needed) ----
cat > "$tmp/noehlo.yaml" <<EOF
redis:
  url: redis://127.0.0.1:1
relays:
  - name: main
    host: 127.0.0.1
    port: 1
EOF
out=$(RINGMAIL_TEST_HOSTNAME=vm timeout 10 "$bin" run -c "$tmp/noehlo.yaml" 2>&1); rc=$?
check "run: a host name without a dot exits 78 (got $rc)" [ "$rc" -eq 78 ]
check "run: says to set ehlo_name (got: $out)" has "$out" \
    "ehlo_name: not set, and this host's name \"vm\" is not a fully qualified domain name (RFC 5321 4.1.1.1 wants one in EHLO): set ehlo_name"
out=$(RINGMAIL_TEST_HOSTNAME=vm "$bin" check-config "$tmp/noehlo.yaml" 2>&1); rc=$?
check "check-config says the same (got $rc: $out)" [ "$rc" -eq 78 ]
printf 'Subject: x\n\nx\n' > "$tmp/msg.eml"
out=$(RINGMAIL_TEST_HOSTNAME=vm timeout 10 "$bin" send --relay 127.0.0.1:1 --from a@example.org \
      --to b@example.net "$tmp/msg.eml" 2>&1); rc=$?
check "send: a host name without a dot exits 78 (got $rc)" [ "$rc" -eq 78 ]
check "send: says to give --ehlo (got: $out)" has "$out" \
    "ringmail send: this host's name \"vm\" is not a fully qualified domain name (RFC 5321 4.1.1.1 wants one in EHLO): give --ehlo NAME"
out=$("$bin" send --relay 127.0.0.1:1 --ehlo mail_1.example.com --from a@example.org \
      --to b@example.net "$tmp/msg.eml" 2>&1); rc=$?
check "send: --ehlo with '_' exits 64 (got $rc)" [ "$rc" -eq 64 ]
check "send: names --ehlo (got: $out)" has "$out" "ringmail send: --ehlo: EHLO name contains a character"

# ---- password files against a real redis-server ----
command -v redis-server >/dev/null 2>&1 || skip "redis-server is not installed (tests/setup.sh installs it)"
command -v redis-cli >/dev/null 2>&1 || skip "redis-cli is not installed"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
secret=s3cret-for-ringmail
user_secret=acl-user-secret
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
    --requirepass "$secret" --loglevel warning >/dev/null 2>&1 &
redis_pid=$!
rcli() { redis-cli -p "$port" --no-auth-warning -a "$secret" "$@"; }
i=0
until [ "$(rcli PING 2>/dev/null)" = PONG ]; do
    i=$((i + 1))
    [ "$i" -gt 100 ] && { echo "FAIL: redis-server did not start"; exit 1; }
    sleep 0.1
done
rcli ACL SETUSER producer on ">$user_secret" "~*" "+@all" >/dev/null

config() { # file, url, password file
    cat > "$1" <<EOF
ehlo_name: client.test
redis:
  url: $2
  password_file: $3
relays:
  - name: main
    host: 127.0.0.1
EOF
}
enqueue() { # config, stream
    "$bin" enqueue -c "$1" --from a@example.org --to b@example.net --count 3 --quiet 2>&1
}

printf '%s\n' "$secret" > "$tmp/pw_lf"
config "$tmp/lf.yaml" "redis://127.0.0.1:$port" "$tmp/pw_lf"
out=$(enqueue "$tmp/lf.yaml"); rc=$?
check "enqueue with password_file exits 0 (got $rc: $out)" [ "$rc" -eq 0 ]
check "the 3 jobs are in the stream" [ "$(rcli XLEN ringmail:jobs)" = 3 ]

printf '%s\r\n' "$secret" > "$tmp/pw_crlf"
config "$tmp/crlf.yaml" "redis://127.0.0.1:$port" "$tmp/pw_crlf"
out=$(enqueue "$tmp/crlf.yaml"); rc=$?
check "a CRLF-terminated password file works (got $rc: $out)" [ "$rc" -eq 0 ]
check "6 jobs now" [ "$(rcli XLEN ringmail:jobs)" = 6 ]

printf '%s\n' "$user_secret" > "$tmp/pw_user"
config "$tmp/user.yaml" "redis://producer@127.0.0.1:$port" "$tmp/pw_user"
out=$(enqueue "$tmp/user.yaml"); rc=$?
check "password_file with an ACL user from the url works (got $rc: $out)" [ "$rc" -eq 0 ]
check "9 jobs now" [ "$(rcli XLEN ringmail:jobs)" = 9 ]

printf 'wrong\n' > "$tmp/pw_wrong"
config "$tmp/wrong.yaml" "redis://127.0.0.1:$port" "$tmp/pw_wrong"
out=$(enqueue "$tmp/wrong.yaml"); rc=$?
check "a wrong password exits 69 (got $rc)" [ "$rc" -eq 69 ]
check "and says AUTH failed (got: $out)" has "$out" "ringmail enqueue: Redis AUTH failed:"

# 600 octets: over redis's 511-octet limit, an error rather than a cut.
python3 -c 'import sys; sys.stdout.write("p" * 600 + "\n")' > "$tmp/pw_long"
config "$tmp/long.yaml" "redis://127.0.0.1:$port" "$tmp/pw_long"
out=$(enqueue "$tmp/long.yaml"); rc=$?
check "a 600-octet password exits 78 (got $rc)" [ "$rc" -eq 78 ]
check "and says it is too long (got: $out)" has "$out" \
    "ringmail enqueue: redis.password_file: $tmp/pw_long: the secret is longer than 511 octets"
: > "$tmp/pw_empty"
config "$tmp/empty.yaml" "redis://127.0.0.1:$port" "$tmp/pw_empty"
out=$(enqueue "$tmp/empty.yaml"); rc=$?
check "an empty password file exits 78 (got $rc: $out)" [ "$rc" -eq 78 ]
check "and says so (got: $out)" has "$out" "$tmp/pw_empty: the file is empty (no secret in it)"
printf '%s\nsecond line\n' "$secret" > "$tmp/pw_two"
config "$tmp/two.yaml" "redis://127.0.0.1:$port" "$tmp/pw_two"
out=$(enqueue "$tmp/two.yaml"); rc=$?
check "a two-line password file exits 78 (got $rc: $out)" [ "$rc" -eq 78 ]
check "9 jobs still" [ "$(rcli XLEN ringmail:jobs)" = 9 ]

# send: the AUTH password file goes through the same loader.
out=$("$bin" send --relay 127.0.0.1:1 --ehlo client.test --user u --password-file "$tmp/pw_long" \
      --from a@example.org --to b@example.net "$tmp/msg.eml" 2>&1); rc=$?
check "send: a 600-octet AUTH password is refused (got $rc: $out)" has "$out" \
    "ringmail send: $tmp/pw_long: the secret is longer than 255 octets"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
