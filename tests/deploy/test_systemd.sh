#!/bin/sh
# Checks deploy/systemd/ringmail.service: `systemd-analyze verify` accepts it
# with no warning at all (unknown keys only warn, so any output fails), the
# directives the deployment relies on are there, io_uring is not filtered
# out by its SystemCallFilter, and the offline exposure score stays low.
#   sh tests/deploy/test_systemd.sh /path/to/ringmail
# Exit 77 (skip; a failure under CI=true) only where systemd-analyze is missing.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
unit="$root/deploy/systemd/ringmail.service"
bin=${1:-}
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1"; }

. "$root/tests/skip.sh"
command -v systemd-analyze >/dev/null 2>&1 ||
    skip "systemd-analyze is not installed (Debian: systemd; tests/setup.sh installs it)"
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "usage: $0 /path/to/ringmail (an existing executable for ExecStart)"
    exit 2
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
work=$(mktemp -d /tmp/ringmail-systemd.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM

# verify resolves ExecStart; point it at the built binary in a temp copy.
sed "s#/usr/local/bin/ringmail#$bin#g" "$unit" > "$work/ringmail.service"
out=$(cd "$work" && systemd-analyze verify "$work/ringmail.service" 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then
    ok "systemd-analyze verify: clean"
else
    fail "systemd-analyze verify (rc $rc): $out"
fi

# The directives, with the values the deployment depends on.
while IFS='|' read -r key value; do
    [ -z "$key" ] && continue
    if grep -qxF "$key=$value" "$unit"; then
        ok "$key=$value"
    else
        fail "missing $key=$value"
    fi
done <<'LIST'
Type|exec
ExecStart|/usr/local/bin/ringmail run -c /etc/ringmail/ringmail.yaml
ExecReload|/bin/kill -HUP $MAINPID
KillSignal|SIGTERM
Restart|on-failure
User|ringmail
Group|ringmail
NoNewPrivileges|yes
ProtectSystem|strict
ProtectHome|yes
PrivateTmp|yes
PrivateDevices|yes
CapabilityBoundingSet|
AmbientCapabilities|
RestrictAddressFamilies|AF_INET AF_INET6 AF_UNIX
SystemCallArchitectures|native
SystemCallFilter|@system-service
LockPersonality|yes
MemoryDenyWriteExecute|yes
RestrictRealtime|yes
RestrictNamespaces|yes
ProtectKernelTunables|yes
ProtectKernelModules|yes
ProtectKernelLogs|yes
ProtectControlGroups|yes
ProtectClock|yes
ProtectHostname|yes
RestrictSUIDSGID|yes
UMask|0077
LimitNOFILE|1048576
LIST

# TimeoutStopSec must exceed the drain deadline (shutdown_timeout, 30 s).
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)$/\1/p' "$unit")
drain=$(sed -n 's/^shutdown_timeout: *\([0-9]*\).*/\1/p' "$root/deploy/ringmail.yaml")
if [ -n "$stop" ] && [ -n "$drain" ] && [ "$stop" -gt "$drain" ]; then
    ok "TimeoutStopSec=$stop > shutdown_timeout $drain"
else
    fail "TimeoutStopSec '$stop' not above shutdown_timeout '$drain'"
fi

# io_uring must be allowed: by @system-service in this systemd, or explicitly.
allowed=$(systemd-analyze syscall-filter @system-service 2>/dev/null)
for sc in io_uring_setup io_uring_enter io_uring_register; do
    if printf '%s\n' "$allowed" | grep -qx "[[:space:]]*$sc" ||
        grep '^SystemCallFilter=' "$unit" | grep -v '^SystemCallFilter=~' | grep -qw "$sc"; then
        ok "SystemCallFilter allows $sc"
    else
        fail "SystemCallFilter blocks $sc"
    fi
done

# Offline exposure score (systemd >= 250): 0 is locked down, 100 is wide open.
if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
    if (cd "$work" && systemd-analyze security --offline=yes --threshold=25 \
            "$work/ringmail.service" >"$work/security.txt" 2>&1); then
        ok "$(grep -o 'Overall exposure level.*' "$work/security.txt")"
    else
        fail "exposure above 2.5: $(grep -o 'Overall exposure level.*' "$work/security.txt")"
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
