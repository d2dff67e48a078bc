#!/bin/bash
# ringmail-sink against independent real clients: openssl s_client (STARTTLS
# and implicit TLS) and Python's smtplib / ssl (Debian's python3). A throwaway
# CA and a server certificate for localhost/127.0.0.1 are made here. Checks:
# STARTTLS and the fresh session after it, the stored .eml byte for byte, the
# .env facts, BDAT chunks, AUTH, the statistics JSON and --ids, duplicates by
# Message-ID, --max-messages, --no-starttls, --inject-after-220 (seen on a raw
# socket), --reply RCPT=550, --disconnect-after DATA-END, TLS versions, usage.
#   test_sink.sh /path/to/ringmail-sink
# Exit 0 pass, 1 fail, 77 only when a needed tool is missing (tests/setup.sh
# installs them).
set -u
SINK=${1:?usage: test_sink.sh /path/to/ringmail-sink}
PY=/usr/bin/python3
. "$(dirname "$0")/../skip.sh"
for tool in openssl "$PY" timeout; do
    command -v "$tool" >/dev/null 2>&1 || skip "$tool is missing (tests/setup.sh installs it)"
done

T=$(mktemp -d /tmp/ringmail-sink-test.XXXXXX)
PIDS=""
cleanup() {
    for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
pass=0
fail=0
check() { # description, then the command; the check is its exit status
    local desc=$1
    shift
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $desc"; fi
}

# ---- PKI ----
(
    cd "$T" &&
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
            -out ca.pem -days 2 -subj "/CN=ringmail sink test CA" &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key \
            -out srv.csr -subj "/CN=localhost" &&
        printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
            "extendedKeyUsage=serverAuth" >srv.ext &&
        openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile srv.ext -out srv.crt &&
        cat srv.crt ca.pem >chain.pem
) >"$T/pki.log" 2>&1 || {
    cat "$T/pki.log"
    echo "FAIL: cannot make the test PKI"
    exit 1
}
TLSARGS=(--cert "$T/chain.pem" --key "$T/srv.key")

# ---- the sink as a child: start_sink NAME ARGS... sets PORT and PID ----
start_sink() {
    local name=$1 i
    shift
    "$SINK" --listen 127.0.0.1:0 "$@" >"$T/$name.out" 2>"$T/$name.err" &
    PID=$!
    PIDS="$PIDS $PID"
    for i in $(seq 200); do
        grep -q '^listening ' "$T/$name.out" 2>/dev/null && break
        if ! kill -0 "$PID" 2>/dev/null; then
            if grep -q 'io_uring' "$T/$name.err"; then
                skip "the kernel refuses io_uring here: $(cat "$T/$name.err")"
            fi
            echo "FAIL: sink $name did not start:"
            cat "$T/$name.err"
            exit 1
        fi
        sleep 0.05
    done
    PORT=$(sed -n 's/^listening 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$T/$name.out")
    [ -n "$PORT" ] || {
        echo "FAIL: sink $name printed no port"
        exit 1
    }
}

# stop_sink PID: SIGTERM and the exit status must be 0
stop_sink() {
    kill -TERM "$1" 2>/dev/null
    timeout 20 tail --pid="$1" -f /dev/null
    wait "$1"
}

py() { timeout 60 "$PY" - "$@"; }

check "--help exits 0 and documents the faults" \
    sh -c '"$1" --help | grep -q -- "--disconnect-after"' _ "$SINK"
"$SINK" --frobnicate >/dev/null 2>&1
check "an unknown option exits 64" [ $? -eq 64 ]
"$SINK" --reply RCPT=99 --plaintext >/dev/null 2>&1
check "a bad reply code exits 64" [ $? -eq 64 ]
"$SINK" >/dev/null 2>"$T/usage.err"
check "TLS without a certificate exits 64" [ $? -eq 64 ]
check "the usage error says why" grep -q -- "--cert" "$T/usage.err"

# ---- A: STARTTLS required, store, ids, stats ----
mkdir -p "$T/store"
start_sink a "${TLSARGS[@]}" --store "$T/store" --ids "$T/ids.txt" --stats "$T/stats.json" -v
A_PID=$PID
A_PORT=$PORT

# openssl s_client -starttls smtp: it sends EHLO and STARTTLS itself.
printf 'EHLO sclient.test\nMAIL FROM:<s@client.test>\nRCPT TO:<r@sink.test>\nDATA\nMessage-ID: <sclient-1@test>\nSubject: s_client\n\nhello\n.\nQUIT\n' |
    timeout 20 openssl s_client -connect "127.0.0.1:$A_PORT" -starttls smtp -CAfile "$T/ca.pem" \
        -verify_return_error -verify_hostname localhost -crlf -ign_eof >"$T/sclient.out" 2>&1
check "s_client: verified the chain" grep -q "Verify return code: 0 (ok)" "$T/sclient.out"
check "s_client: the message was queued" grep -q "^250 2.0.0 Ok: queued as" "$T/sclient.out"
check "s_client: 221 on QUIT" grep -q "^221 " "$T/sclient.out"
check "s_client: no STARTTLS offered after TLS" \
    sh -c '! sed -n "/Verify return code/,\$p" "$1" | grep -q "250-STARTTLS"' _ "$T/sclient.out"

# smtplib: plaintext refused, STARTTLS, 8-bit body with dot lines.
py "$A_PORT" "$T/ca.pem" "$T/sent.eml" <<'EOF'
import smtplib, ssl, sys
port, ca, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
s = smtplib.SMTP("127.0.0.1", port, local_hostname="py.test", timeout=20)
code, resp = s.ehlo()
assert code == 250 and b"STARTTLS" in resp and b"AUTH" not in resp, resp
code, resp = s.mail("early@py.test")
assert code == 530 and resp.startswith(b"5.7.0"), (code, resp)
s.starttls(context=ctx)
code, resp = s.ehlo()
assert b"STARTTLS" not in resp and b"8BITMIME" in resp and b"CHUNKING" in resp, resp
lines = [b"From: <a@py.test>", b"To: <b@sink.test>", b"Message-ID: <py-1@test>",
         b"Subject: dots and 8-bit", b"", b".leading dot", b"..two dots", b".",
         b"not the end", "\u00e9t\u00e9 8-bit".encode(), b". ", b"last line"]
msg = b"\r\n".join(lines)  # smtplib adds the final CRLF
refused = s.sendmail("a@py.test", ["b@sink.test", "c@sink.test"], msg,
                     mail_options=["BODY=8BITMIME"])
assert refused == {}, refused
s.quit()
open(out, "wb").write(msg + b"\r\n")
EOF
check "smtplib: STARTTLS, 8-bit message with dot lines" [ $? -eq 0 ]

# A raw TLS client: pipelined envelope and BDAT chunks, then the same
# Message-ID again (a duplicate).
py "$A_PORT" "$T/ca.pem" <<'EOF'
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
def replies(f, n):
    out = []
    while len(out) < n:
        line = f.readline()
        assert line, "connection closed"
        if line[3:4] == b" ":
            out.append(line)
    return out
raw = socket.create_connection(("127.0.0.1", port), timeout=20)
f = raw.makefile("rb")
replies(f, 1)
raw.sendall(b"EHLO raw.test\r\nSTARTTLS\r\n")
r = replies(f, 2)
assert r[1].startswith(b"220 "), r
ctx = ssl.create_default_context(cafile=ca)
tls = ctx.wrap_socket(raw, server_hostname="localhost")
f = tls.makefile("rb")
body1, body2 = b"Message-ID: <bdat-1@test>\r\n\r\nchunk one ", b"and two\r\n"
tls.sendall(b"EHLO raw.test\r\nMAIL FROM:<bdat@raw.test>\r\nRCPT TO:<x@sink.test>\r\n"
            + b"BDAT %d\r\n" % len(body1) + body1 + b"BDAT %d LAST\r\n" % len(body2) + body2
            + b"MAIL FROM:<dup@raw.test>\r\nRCPT TO:<y@sink.test>\r\nDATA\r\n")
r = replies(f, 8)
assert [x[:3] for x in r] == [b"250", b"250", b"250", b"250", b"250", b"250", b"250", b"354"], r
assert r[4].startswith(b"250 2.0.0 Ok: queued as"), r
tls.sendall(b"Message-ID: <bdat-1@test>\r\n\r\nagain\r\n.\r\nQUIT\r\n")
r = replies(f, 2)
assert r[0].startswith(b"250 2.0.0 Ok: queued as") and r[1].startswith(b"221"), r
EOF
check "raw TLS client: BDAT chunks and a pipelined duplicate" [ $? -eq 0 ]

stop_sink "$A_PID"
check "sink A exits 0 on SIGTERM" [ $? -eq 0 ]
check "the stats JSON is printed on stdout" grep -q '^{"messages":4,' "$T/a.out"
py "$T/stats.json" "$T/store" "$T/sent.eml" "$T/ids.txt" <<'EOF'
import json, os, sys
stats, store, sent, ids = sys.argv[1:5]
s = json.load(open(stats))
want = {"messages": 4, "recipients": 5, "connections": 3, "tls_handshakes": 3,
        "duplicates_by_message_id": 1, "messages_without_message_id": 0,
        "ktls_tx_connections": s["ktls_tx_connections"], "tls_handshake_failures": 0}
for k, v in want.items():
    assert s[k] == v, (k, s[k], v)
assert s["ktls_tx_connections"] <= s["tls_handshakes"]
envs = sorted(x for x in os.listdir(store) if x.endswith(".env"))
assert len(envs) == 4, envs
by_id = {}
for e in envs:
    env = dict(l.split(" ", 1) for l in open(os.path.join(store, e)).read().splitlines())
    eml = open(os.path.join(store, e[:-4] + ".eml"), "rb").read()
    by_id.setdefault(env["message_id"], []).append((env, eml))
    assert env["tls"].startswith("TLSv1.3 "), env
    assert env["ktls_tx"] in ("0", "1") and env["ktls_rx"] in ("0", "1"), env
    assert env["auth"] == "-" and int(env["size"]) == len(eml), env
env, eml = by_id["<py-1@test>"][0]
assert eml == open(sent, "rb").read(), (eml, open(sent, "rb").read())
assert env["from"] == "a@py.test" and env["body"] == "8bitmime", env
rcpts = [l[5:] for l in open(os.path.join(store, [e for e in envs if open(os.path.join(store, e)).read().find("py-1") > 0][0])).read().splitlines() if l.startswith("rcpt ")]
assert rcpts == ["b@sink.test", "c@sink.test"], rcpts
env, eml = by_id["<bdat-1@test>"][0]
assert eml == b"Message-ID: <bdat-1@test>\r\n\r\nchunk one and two\r\n", eml
assert env["bdat"] == "1", env
assert len(by_id["<bdat-1@test>"]) == 2
assert by_id["<sclient-1@test>"][0][1] == b"Message-ID: <sclient-1@test>\r\nSubject: s_client\r\n\r\nhello\r\n"
lines = open(ids).read().splitlines()
assert sorted(lines) == sorted(["<sclient-1@test>", "<py-1@test>", "<bdat-1@test>", "<bdat-1@test>"]), lines
EOF
check "stats, .eml byte for byte, .env facts, ids" [ $? -eq 0 ]
check "verbose log reports kTLS per connection" grep -q "ktls_tx=[01] ktls_rx=[01]" "$T/a.err"

# ---- B: --no-starttls ----
start_sink b "${TLSARGS[@]}" --no-starttls
B_PID=$PID
py "$PORT" <<'EOF'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
code, resp = s.ehlo()
assert code == 250 and b"STARTTLS" not in resp, resp
try:
    s.starttls()
    raise SystemExit("starttls should have been refused")
except smtplib.SMTPNotSupportedError:
    pass
code, resp = s.docmd("STARTTLS")
assert code == 502, (code, resp)
code, resp = s.mail("a@x")
assert code == 530, (code, resp)
s.quit()
EOF
check "--no-starttls: not offered, refused, and no plaintext mail" [ $? -eq 0 ]
stop_sink "$B_PID"
check "sink B exits 0" [ $? -eq 0 ]

# ---- C: --inject-after-220, seen on a raw socket ----
start_sink c "${TLSARGS[@]}" --inject-after-220 '250-INJECTED\r\n250 partial'
C_PID=$PID
py "$PORT" <<'EOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(b"EHLO raw\r\nSTARTTLS\r\n")
data = b""
deadline = time.time() + 10
while b"250 partial" not in data and time.time() < deadline:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
tail = data[data.index(b"220 2.0.0"):]
assert tail == b"220 2.0.0 Ready to start TLS\r\n250-INJECTED\r\n250 partial", data
EOF
check "--inject-after-220: the bytes follow the 220" [ $? -eq 0 ]
stop_sink "$C_PID"
check "sink C exits 0" [ $? -eq 0 ]

# ---- D: --reply RCPT=550 (plaintext allowed so smtplib needs no TLS) ----
start_sink d "${TLSARGS[@]}" --allow-plaintext --reply 'RCPT=550@2:5.1.1 No such user' \
    --stats "$T/d.json"
D_PID=$PID
py "$PORT" <<'EOF'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
refused = s.sendmail("a@x", ["ok1@y", "bad@y", "ok2@y"], b"Subject: x\r\n\r\nbody\r\n")
assert list(refused) == ["bad@y"] and refused["bad@y"] == (550, b"5.1.1 No such user"), refused
# The count runs on across transactions: the 4th recipient is the next victim.
refused = s.sendmail("a@x", ["bad2@y", "ok3@y"], b"Subject: y\r\n\r\nbody\r\n")
assert list(refused) == ["bad2@y"], refused
s.close()
EOF
check "--reply RCPT=550@2 refuses every 2nd recipient" [ $? -eq 0 ]
stop_sink "$D_PID"
check "sink D exits 0" [ $? -eq 0 ]
check "sink D counted the accepted recipients" grep -q '"messages":2,"recipients":3,' "$T/d.json"

# ---- E: implicit TLS ----
mkdir -p "$T/store-e"
start_sink e "${TLSARGS[@]}" --implicit --store "$T/store-e"
E_PID=$PID
printf 'EHLO implicit.test\nQUIT\n' |
    timeout 20 openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$T/ca.pem" \
        -verify_return_error -crlf -ign_eof >"$T/implicit.out" 2>&1
check "implicit: 220 after the handshake" grep -q "^220 ringmail-sink ESMTP" "$T/implicit.out"
check "implicit: EHLO offers no STARTTLS" \
    sh -c 'grep -q "^250 ENHANCEDSTATUSCODES" "$1" && ! grep -q STARTTLS "$1"' _ "$T/implicit.out"
py "$PORT" "$T/ca.pem" <<'EOF'
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = smtplib.SMTP_SSL("localhost", int(sys.argv[1]), context=ctx, timeout=20)
assert s.sendmail("a@x", ["b@y"], b"Subject: implicit\r\n\r\nx\r\n") == {}
s.quit()
EOF
check "implicit: smtplib.SMTP_SSL delivers" [ $? -eq 0 ]
printf 'EHLO x\r\nQUIT\r\n' | timeout 5 openssl s_client -connect "127.0.0.1:$PORT" -starttls smtp \
    >"$T/implicit-starttls.out" 2>&1
check "implicit: a STARTTLS client gets no plaintext greeting" \
    sh -c '! grep -q "^220 ringmail-sink" "$1"' _ "$T/implicit-starttls.out"
stop_sink "$E_PID"
check "sink E exits 0" [ $? -eq 0 ]
check "implicit: the .env records TLS" grep -q "^tls TLSv1" "$T"/store-e/*.env

# ---- F: --plaintext --max-messages 2: the sink stops by itself ----
start_sink f --plaintext --max-messages 2 --stats "$T/f.json"
F_PID=$PID
py "$PORT" <<'EOF'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
code, resp = s.ehlo()
assert b"STARTTLS" not in resp, resp
for i in range(2):
    assert s.sendmail("a@x", ["b@y"], b"Subject: %d\r\n\r\nx\r\n" % i) == {}
try:
    s.quit()
except smtplib.SMTPServerDisconnected:
    pass
EOF
check "--plaintext: mail without TLS" [ $? -eq 0 ]
timeout 20 tail --pid="$F_PID" -f /dev/null
wait "$F_PID"
check "--max-messages: exit 0 on its own" [ $? -eq 0 ]
check "--max-messages: 2 messages, no handshake" \
    grep -q '"messages":2,.*"tls_handshakes":0,' "$T/f.json"

# ---- G: --auth ----
mkdir -p "$T/store-g"
start_sink g "${TLSARGS[@]}" --auth 'user:s3cret' --store "$T/store-g"
G_PID=$PID
py "$PORT" "$T/ca.pem" <<'EOF'
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = smtplib.SMTP("localhost", int(sys.argv[1]), timeout=20)
code, resp = s.ehlo()
assert b"AUTH" not in resp, resp
s.starttls(context=ctx)
code, resp = s.ehlo()
assert b"AUTH PLAIN LOGIN" in resp, resp
code, resp = s.mail("a@x")
assert code == 530, (code, resp)
try:
    s.login("user", "wrong")
    raise SystemExit("a wrong password was accepted")
except smtplib.SMTPAuthenticationError:
    pass
s.login("user", "s3cret")
assert s.sendmail("a@x", ["b@y"], b"Subject: auth\r\n\r\nx\r\n") == {}
s.quit()
s = smtplib.SMTP("localhost", int(sys.argv[1]), timeout=20)
s.starttls(context=ctx)
s.ehlo()
s.user, s.password = "user", "s3cret"
code, resp = s.auth("LOGIN", s.auth_login)
assert code == 235, (code, resp)
s.quit()
EOF
check "--auth: only after TLS, required, PLAIN and LOGIN" [ $? -eq 0 ]
stop_sink "$G_PID"
check "sink G exits 0" [ $? -eq 0 ]
check "--auth: the .env names the user" grep -q "^auth user$" "$T"/store-g/*.env

# ---- H: TLS versions ----
start_sink h "${TLSARGS[@]}" --tls-versions 1.2
H_PID=$PID
printf 'QUIT\n' | timeout 20 openssl s_client -connect "127.0.0.1:$PORT" -starttls smtp \
    -CAfile "$T/ca.pem" -crlf -ign_eof >"$T/v12.out" 2>&1
check "--tls-versions 1.2: TLS 1.2 negotiated" grep -q "Protocol *: TLSv1.2" "$T/v12.out"
printf 'QUIT\n' | timeout 20 openssl s_client -connect "127.0.0.1:$PORT" -starttls smtp \
    -tls1_3 -crlf -ign_eof >"$T/v13.out" 2>&1
check "--tls-versions 1.2: a TLS 1.3-only client fails" [ $? -ne 0 ]
stop_sink "$H_PID"
check "sink H exits 0" [ $? -eq 0 ]

# Old versions and a weak cipher (needs security level 0; the EC test key
# calls for an ECDSA suite).
start_sink h2 "${TLSARGS[@]}" --tls-versions 1.0-1.1 --ciphers 'ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0'
H2_PID=$PID
printf 'QUIT\n' | timeout 20 openssl s_client -connect "127.0.0.1:$PORT" -starttls smtp -tls1_1 \
    -cipher 'ALL:@SECLEVEL=0' -crlf -ign_eof >"$T/v11.out" 2>&1
check "--tls-versions 1.0-1.1: TLS 1.1 negotiated" grep -q "Protocol *: TLSv1.1" "$T/v11.out"
check "--ciphers: the weak cipher was used" grep -q "Cipher *: ECDHE-ECDSA-AES128-SHA$" "$T/v11.out"
stop_sink "$H2_PID"
check "sink H2 exits 0" [ $? -eq 0 ]

# ---- I: --disconnect-after DATA-END: accepted, counted, reply lost ----
start_sink i "${TLSARGS[@]}" --allow-plaintext --disconnect-after DATA-END --ids "$T/ids-i.txt" \
    --stats "$T/i.json"
I_PID=$PID
py "$PORT" <<'EOF'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
try:
    s.sendmail("a@x", ["b@y"], b"Message-ID: <lost-reply@test>\r\n\r\nx\r\n")
    raise SystemExit("the reply should have been lost")
except smtplib.SMTPServerDisconnected:
    pass
EOF
check "DATA-END: the client sees the connection drop" [ $? -eq 0 ]
stop_sink "$I_PID"
check "sink I exits 0" [ $? -eq 0 ]
check "DATA-END: the message was counted" grep -q '"messages":1,.*"fault_disconnects":1,' "$T/i.json"
check "DATA-END: its Message-ID was listed" grep -qx '<lost-reply@test>' "$T/ids-i.txt"

# ---- J: timing faults, --slow, KeyUpdate, SIGTERM with an idle client ----
start_sink j "${TLSARGS[@]}" --slow --delay RCPT=400 --key-update-after 1 --stats "$T/j.json"
J_PID=$PID
py "$PORT" "$T/ca.pem" <<'EOF'
import smtplib, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
s = smtplib.SMTP("localhost", int(sys.argv[1]), timeout=20)
s.starttls(context=ctx)
s.ehlo()
s.mail("a@x")
t = time.monotonic()
code, _ = s.rcpt("b@y")
assert code == 250 and time.monotonic() - t >= 0.35, time.monotonic() - t
code, _ = s.data(b"Subject: 1\r\n\r\nx\r\n")
assert code == 250
# The sink asked for a KeyUpdate with that reply; the next exchange uses new keys.
code, _ = s.noop()
assert code == 250
assert s.sendmail("a@x", ["c@y"], b"Subject: 2\r\n\r\ny\r\n") == {}
s.quit()
EOF
check "--slow, --delay RCPT=400 and --key-update-after 1 over TLS 1.3" [ $? -eq 0 ]
# An idle client holds a connection open: SIGTERM must still end the sink,
# the client getting 421.
py "$PORT" "$T/ca.pem" "$J_PID" <<'EOF'
import os, signal, smtplib, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = smtplib.SMTP("localhost", int(sys.argv[1]), timeout=20)
s.starttls(context=ctx)
s.ehlo()
os.kill(int(sys.argv[3]), signal.SIGTERM)
code, msg = s.getreply()
assert code == 421, (code, msg)
EOF
check "SIGTERM: an idle TLS client gets 421" [ $? -eq 0 ]
timeout 20 tail --pid="$J_PID" -f /dev/null
wait "$J_PID"
check "sink J exits 0 after SIGTERM" [ $? -eq 0 ]
check "sink J sent KeyUpdates" grep -Eq '"key_updates":[1-9]' "$T/j.json"
check "sink J counted the delays" grep -Eq '"delays":[1-9]' "$T/j.json"

start_sink k --plaintext --slow --stall DATA --grace-ms 300
K_PID=$PID
py "$PORT" <<'EOF'
import socket, smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=1.5)
s.ehlo()
s.mail("a@x")
s.rcpt("b@y")
try:
    s.data(b"Subject: stalled\r\n\r\nx\r\n")
    raise SystemExit("the end of data should never be answered")
except (socket.timeout, TimeoutError, smtplib.SMTPServerDisconnected):
    pass
EOF
check "--stall DATA: no answer after the dot (plaintext, --slow)" [ $? -eq 0 ]
stop_sink "$K_PID"
check "sink K exits 0 after the grace period" [ $? -eq 0 ]
check "sink K counted the stall, not the message" grep -q '^{"messages":0,.*"stalls":1,' "$T/k.out"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
