#!/bin/sh
# ringmail check-config: a good file passes with a summary, every bad
# fixture fails with 78 (EX_CONFIG) and a message that names the line and the
# key, --dump prints the effective configuration without secrets, and the
# shipped deploy/ringmail.yaml is valid.
#   test_check_config.sh RINGMAIL_BINARY FIXTURE_DIR DEPLOY_YAML
set -u
# The fixtures and deploy/ringmail.yaml leave ehlo_name to the host's name,
# which must be fully qualified: give one whatever this machine is called
# (engine/config reads RINGMAIL_TEST_HOSTNAME in place of gethostname()).
RINGMAIL_TEST_HOSTNAME=host.test.example
export RINGMAIL_TEST_HOSTNAME
bin=$1
dir=$2
deploy=$3
pass=0
fail=0
check() { # description, then the command; the check is its exit status
    desc=$1; shift
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $desc"; fi
}
has() { # text, fixed string
    printf '%s\n' "$1" | grep -qF -- "$2"
}
lacks() { # text, fixed string
    ! has "$1" "$2"
}

out=$("$bin" check-config "$dir/good.yaml" 2>&1); rc=$?
check "good.yaml exits 0" [ "$rc" -eq 0 ]
check "good.yaml says ok" has "$out" "$dir/good.yaml: ok (2 relays, 2 workers)"

out=$("$bin" check-config "$deploy" 2>&1); rc=$?
check "deploy/ringmail.yaml exits 0 ($out)" [ "$rc" -eq 0 ]
check "deploy/ringmail.yaml says ok" has "$out" ": ok (1 relay, "
check "deploy/ringmail.yaml has no warning" lacks "$out" "warning"

out=$("$bin" check-config --dump "$dir/good.yaml" 2>&1); rc=$?
check "--dump exits 0" [ "$rc" -eq 0 ]
check "--dump shows defaults" has "$out" "claim_min_idle_ms: 600000"
check "--dump shows the relays" has "$out" 'name: "submission"'
check "--dump redacts the password" has "$out" 'url: "redis://:REDACTED@127.0.0.1:6379/1"'
check "--dump never prints the password" lacks "$out" "fixture-secret"
dumped=$(mktemp)
printf '%s\n' "$out" > "$dumped"
out=$("$bin" check-config "$dumped" 2>&1); rc=$?
check "the dump is itself a valid configuration ($out)" [ "$rc" -eq 0 ]
rm -f "$dumped"

bad() { # fixture, expected message fragment
    out=$("$bin" check-config "$dir/$1" 2>&1); rc=$?
    check "$1 exits 78 (got $rc)" [ "$rc" -eq 78 ]
    check "$1 says: $2 (got: $out)" has "$out" "$2"
}
bad bad_port.yaml 'bad_port.yaml:6: relays[0].port: expected an integer from 1 to 65535, got "smtp"'
bad bad_tls.yaml 'bad_tls.yaml:8: relays[1].tls: expected starttls or implicit, got "none"'
bad unknown_key.yaml 'unknown_key.yaml:6: unknown key "conections" in relays[0] (did you mean "connections"?)'
bad duplicate_relay.yaml 'duplicate_relay.yaml:6: relays[1].name: duplicate relay name "default"'
bad missing_url.yaml 'missing_url.yaml:2: redis: missing required key "url"'
bad unreadable_ca.yaml 'unreadable_ca.yaml:6: relays[0].ca_file: cannot read /nonexistent/ringmail-test-ca.pem: No such file or directory'
bad not_pem_ca.yaml "not_pem_ca.yaml:6: relays[0] (default): cannot read CA file $dir/not_a_certificate.txt"
bad yes_bool.yaml 'yes_bool.yaml:6: relays[0].insecure_no_verify: expected true or false, got "yes"'
bad syntax.yaml 'syntax.yaml:3:2: did not find expected key'
bad underscore_ehlo.yaml "underscore_ehlo.yaml:4: ehlo_name: expected a domain or an address literal, got \"mail_1.example.com\": EHLO name contains a character that is not allowed in a domain (letters, digits, '-' and '.'; no '_')"
bad no_such_file.yaml 'no_such_file.yaml: cannot read: No such file or directory'

out=$("$bin" check-config "$dir/insecure.yaml" 2>&1); rc=$?
check "insecure.yaml loads" [ "$rc" -eq 0 ]
check "insecure.yaml warns" has "$out" "warning: $dir/insecure.yaml:7: relays[0].insecure_no_verify: certificate verification is off"

out=$("$bin" check-config --help); rc=$?
check "--help exits 0" [ "$rc" -eq 0 ]
check "--help names the usage" has "$out" "Usage: ringmail check-config"
"$bin" check-config >/dev/null 2>&1; rc=$?
check "no FILE exits 64" [ "$rc" -eq 64 ]
"$bin" check-config --frobnicate "$dir/good.yaml" >/dev/null 2>&1; rc=$?
check "unknown option exits 64" [ "$rc" -eq 64 ]
out=$("$bin" --help); rc=$?
check "ringmail --help lists check-config" has "$out" "check-config"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
