#!/bin/sh
# Checks deploy/prometheus/: the scrape configuration and the alert rules are
# valid for promtool, the rule unit tests pass, and every alert has both a
# firing and a non-firing case in ringmail.rules.test.yml.
#   sh tests/deploy/test_prometheus_rules.sh
# Exit 77 (skip; a failure under CI=true) where promtool is missing (Debian: apt-get install prometheus;
# tests/setup.sh installs it). No Prometheus server is needed or used.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/deploy/prometheus"
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }

. "$root/tests/skip.sh"
command -v promtool >/dev/null 2>&1 ||
    skip "promtool is not installed (Debian: prometheus; tests/setup.sh installs it)"

run() {
    what=$1
    shift
    if out=$("$@" 2>&1); then
        ok "$what"
    else
        fail "$what"
        printf '%s\n' "$out"
    fi
}
# promtool resolves rule_files relative to the file; run from anywhere.
run "promtool check config prometheus.yml" promtool check config "$dir/prometheus.yml"
run "promtool check rules ringmail.rules.yml" promtool check rules "$dir/ringmail.rules.yml"
run "promtool test rules ringmail.rules.test.yml" promtool test rules "$dir/ringmail.rules.test.yml"

# Every alert: a firing case (exp_alerts with labels) and a quiet one
# (exp_alerts: []), and severity, summary, description and for: set.
alerts=$(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' "$dir/ringmail.rules.yml")
[ -n "$alerts" ] || fail "no alerts found in ringmail.rules.yml"
for a in RingmailDown RingmailTLSHandshakeFailuresRising RingmailRelayCertificateExpiringSoon \
    RingmailKTLSExpectedButInactive RingmailQueueLagGrowing RingmailDeadLettersGrowing \
    RingmailWorkerRestarts RingmailRelayNoVerifiedConnection RingmailOutcomeWritesRefused \
    RingmailOutcomesStuck; do
    printf '%s\n' "$alerts" | grep -qx "$a" && ok "alert $a defined" || fail "alert $a missing"
done
for a in $alerts; do
    # The lines of this alert's rule, up to the next rule.
    rule=$(awk -v a="$a" '/^ *- alert:/ { on = ($3 == a) } on' "$dir/ringmail.rules.yml")
    for key in 'for:' 'severity:' 'summary:' 'description:'; do
        printf '%s\n' "$rule" | grep -q "^ *$key" || fail "$a has no $key"
    done
    # The line after each "alertname: A" says which kind of case it is.
    cases=$(awk -v a="$a" '$1 == "alertname:" { cur = $2; next }
        cur == a && $1 == "exp_alerts:" { print ($2 == "[]") ? "quiet" : "firing"; cur = "" }' \
        "$dir/ringmail.rules.test.yml")
    printf '%s\n' "$cases" | grep -qx firing && ok "$a: firing case" || fail "$a: no firing case"
    printf '%s\n' "$cases" | grep -qx quiet && ok "$a: non-firing case" || fail "$a: no non-firing case"
done

# That the rules name only metrics the engine serves is checked by
# test_dashboard.py, against the exposition the code itself renders.

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
