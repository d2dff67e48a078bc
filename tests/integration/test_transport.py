#!/usr/bin/env python3
"""Transport tests: `ringmail send` against ringmail-sink over real sockets,
real OpenSSL, and a throwaway PKI made at test time.

usage: test_transport.py RINGMAIL SINK CASE
Each CASE is one ctest test. Refusal cases run through a recording proxy
and prove from the bytes on the wire that no envelope, body or credential
byte was sent before the TLS handshake.
"""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import postfix  # noqa: E402
import pki  # noqa: E402

BODY_MARK = b"body-marker-5f2c9a"
MESSAGE = (b"From: Sender <sender@example.org>\nTo: rcpt@example.net\n"
           b"Subject: transport test\nMessage-ID: <t1@example.org>\n\n"
           b"Hello " + BODY_MARK + b".\n.a line that starts with a dot\n.\n"
           b"caf\xc3\xa9 in 8-bit\nno final newline")
USER, PASSWORD = "tester", "s3cret-pass"
B64_PLAIN = "AHRlc3RlcgBzM2NyZXQtcGFzcw=="  # base64("\0tester\0s3cret-pass")
B64_USER, B64_PASS = "dGVzdGVy", "czNjcmV0LXBhc3M="


class Env:
    def __init__(self, ringmail, sink):
        self.ringmail = ringmail
        self.sink_bin = sink
        self.dir = tempfile.mkdtemp(prefix="ringmail-it-")
        self.pki = pki.make_all(os.path.join(self.dir, "pki"))
        self.msg = os.path.join(self.dir, "message.eml")
        with open(self.msg, "wb") as f:
            f.write(MESSAGE)
        self.pwfile = os.path.join(self.dir, "password")
        with open(self.pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        self.sinks = []

    def sink(self, *flags, cert="good", store=True):
        chain = self.pki.path(cert + ".chain.pem")
        key = {"nointer": "good"}.get(cert, cert)  # the same leaf, sent without its chain
        s = harness.Sink(self.sink_bin, self.dir, *flags, cert=chain,
                         key=self.pki.path(key + ".key"), store=store)
        self.sinks.append(s)
        return s

    def send(self, port, *extra, count=1, connections=1, auth=False, ca="root", timeout=120):
        args = ["send", "--relay", "localhost:%d" % port, "--from", "sender@example.org",
                "--to", "rcpt@example.net", "--count", str(count), "--connections",
                str(connections), "--ehlo", "client.test"]
        if ca:
            args += ["--ca", self.pki.path(ca + ".pem")]
        if auth:
            args += ["--user", USER, "--password-file", self.pwfile]
        args += list(extra) + [self.msg]
        return harness.ringmail(self.ringmail, *args, timeout=timeout)

    def close(self):
        for s in self.sinks:
            if s.proc.poll() is None:
                s.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def expect_delivered(env, sink, rc, out, n=1, tls=None):
    check(rc == 0, "exit 0 expected, got %d:\n%s" % (rc, out))
    stats = sink.stop()
    check(stats.get("messages") == n, "sink counted %s messages, want %d" % (stats.get("messages"), n))
    msgs = sink.messages() if sink.store else []
    if sink.store:
        check(len(msgs) == n, "sink stored %d messages, want %d" % (len(msgs), n))
        for eml, env_text in msgs:
            check(eml == harness.normalise(MESSAGE), "stored message differs from the input")
            if tls:
                check(("tls " + tls) in env_text, "want %s in the envelope record: %r" % (tls, env_text))
    return stats


# ---- deliveries -----------------------------------------------------------

def case_deliver_starttls_tls13(env):
    s = env.sink("--tls-versions", "1.3")
    rc, out = env.send(s.port)
    expect_delivered(env, s, rc, out, tls="TLSv1.3")
    check("TLSv1.3" in out and "verify=ok" in out, "TLS facts printed: %s" % out)


def case_deliver_starttls_tls12(env):
    s = env.sink("--tls-versions", "1.2")
    rc, out = env.send(s.port)
    expect_delivered(env, s, rc, out, tls="TLSv1.2")
    check(re.search(r"TLSv1\.2 ECDHE-\S+-(AES\d+-GCM|CHACHA20)", out), "AEAD+FS cipher: %s" % out)


def case_deliver_implicit_tls13(env):
    s = env.sink("--implicit", "--tls-versions", "1.3")
    rc, out = env.send(s.port, "--implicit-tls")
    expect_delivered(env, s, rc, out, tls="TLSv1.3")


def case_deliver_implicit_tls12(env):
    s = env.sink("--implicit", "--tls-versions", "1.2")
    rc, out = env.send(s.port, "--implicit-tls")
    expect_delivered(env, s, rc, out, tls="TLSv1.2")


def case_deliver_no_pipelining(env):
    s = env.sink("--no-pipelining")
    rc, out = env.send(s.port, count=3)
    expect_delivered(env, s, rc, out, n=3)


def case_deliver_no_chunking(env):
    s = env.sink("--no-chunking")
    rc, out = env.send(s.port, count=3)
    expect_delivered(env, s, rc, out, n=3)


def case_deliver_lockstep_data(env):
    s = env.sink("--no-chunking", "--no-pipelining")
    rc, out = env.send(s.port, count=3)
    expect_delivered(env, s, rc, out, n=3)


def case_deliver_auth(env):
    s = env.sink("--auth", "%s:%s" % (USER, PASSWORD))
    rc, out = env.send(s.port, auth=True, count=2)
    expect_delivered(env, s, rc, out, n=2)


def case_deliver_persistent(env):
    s = env.sink()
    rc, out = env.send(s.port, count=200, connections=4)
    stats = expect_delivered(env, s, rc, out, n=200)
    check(stats.get("connections") == 4, "4 persistent connections, sink saw %s" % stats.get("connections"))


def large(env, *flags):
    # 300 KB bodies: ciphertext runs long enough for SEND_ZC (or not).
    line = b"0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .\n"
    msg = b"Subject: large\n\n" + line * (300000 // len(line))
    path = os.path.join(env.dir, "large.eml")
    with open(path, "wb") as f:
        f.write(msg)
    s = env.sink("--no-chunking")
    rc, out = harness.ringmail(env.ringmail, "send", "--relay", "localhost:%d" % s.port, "--ehlo",
                               "client.test", "--ca",
                               env.pki.path("root.pem"), "--from", "a@example.org", "--to",
                               "b@example.net", "--count", "6", "--connections", "2", *flags, path)
    check(rc == 0, "exit 0 expected, got %d:\n%s" % (rc, out))
    s.stop()
    msgs = s.messages()
    check(len(msgs) == 6, "6 stored, got %d" % len(msgs))
    for eml, _ in msgs:
        check(eml == harness.normalise(msg), "a large message arrived altered")


def case_deliver_large_send_zc(env):
    large(env, "--send-zc", "4096")


def case_deliver_large_copy(env):
    large(env, "--no-send-zc")


def case_slow_server(env):
    s = env.sink("--slow")
    rc, out = env.send(s.port, count=2)
    expect_delivered(env, s, rc, out, n=2)


def case_concurrent_500(env):
    s = env.sink(store=False)
    rc, out = env.send(s.port, count=1500, connections=500, timeout=240)
    stats = expect_delivered(env, s, rc, out, n=1500)
    check(stats.get("connections") == 500, "500 connections, sink saw %s" % stats.get("connections"))


# ---- refusals: reason class, exit 76, and nothing in plaintext -------------

def refused(env, sink, reason, *extra, ca="root", implicit=False):
    proxy = harness.RecordingProxy(sink.port, implicit=implicit)
    args = list(extra) + (["--implicit-tls"] if implicit else [])
    rc, out = env.send(proxy.port, *args, auth=True, ca=ca)
    print(out)
    check(rc == 76, "exit 76 expected, got %d:\n%s" % (rc, out))
    check(("by " + reason) in out, "reason %s expected in:\n%s" % (reason, out))
    harness.wait_for(lambda: proxy.streams, 5)
    check(implicit or any(b"EHLO client.test" in p for p in proxy.plaintext()),
          "the proxy recorded the plaintext session")
    for clear in proxy.plaintext():
        for secret in (b"MAIL FROM", b"RCPT TO", b"rcpt@example.net", BODY_MARK, b"AUTH",
                       B64_PLAIN.encode(), B64_USER.encode(), B64_PASS.encode(), PASSWORD.encode()):
            check(secret not in clear, "%r crossed the wire in plaintext: %r" % (secret, clear))
    for bad in proxy.violations():  # every octet the client sent, to the end
        check(False, "client stream: " + bad)
    proxy.close()
    stats = sink.stop()
    check(stats.get("messages") == 0, "the sink accepted %s messages" % stats.get("messages"))
    return out


def case_refuse_no_starttls(env):
    refused(env, env.sink("--no-starttls", "--allow-plaintext"), "no-starttls")


def case_refuse_starttls_454(env):
    refused(env, env.sink("--starttls-reply", "454 4.7.0 TLS not available"), "starttls-rejected")


def case_refuse_starttls_502(env):
    refused(env, env.sink("--starttls-reply", "502 5.5.1 Not implemented"), "starttls-rejected")


def case_refuse_starttls_250(env):
    refused(env, env.sink("--starttls-reply", "250 OK go on in plaintext", "--allow-plaintext"),
            "starttls-rejected")


def case_refuse_starttls_garbage(env):
    refused(env, env.sink("--starttls-reply", "garbage without a code"), "protocol")


def case_refuse_injection(env):
    refused(env, env.sink("--inject-after-220", "250-INJECTED\\r\\n"), "injection")


def case_refuse_injection_partial(env):
    refused(env, env.sink("--inject-after-220", "25"), "injection")


def case_refuse_cert_expired(env):
    out = refused(env, env.sink(cert="expired"), "cert-verify")
    check("expired" in out, "X509 reason in:\n" + out)


def case_refuse_cert_not_yet_valid(env):
    out = refused(env, env.sink(cert="future"), "cert-verify")
    check("not yet valid" in out, "X509 reason in:\n" + out)


def case_refuse_cert_wrong_host(env):
    out = refused(env, env.sink(cert="wronghost"), "cert-verify")
    check("mismatch" in out.lower(), "X509 reason in:\n" + out)


def case_refuse_cert_self_signed(env):
    out = refused(env, env.sink(cert="selfsigned"), "cert-verify")
    check("self" in out.lower(), "X509 reason in:\n" + out)


def case_refuse_cert_untrusted_ca(env):
    refused(env, env.sink(cert="untrusted"), "cert-verify")


def case_refuse_cert_missing_intermediate(env):
    out = refused(env, env.sink(cert="nointer"), "cert-verify")
    check("issuer" in out.lower(), "X509 reason in:\n" + out)


def case_refuse_tls10_11_only(env):
    refused(env, env.sink("--tls-versions", "1.0-1.1"), "protocol-version")


def case_refuse_weak_ciphers_only(env):
    refused(env, env.sink("--tls-versions", "1.2", "--ciphers", "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0"),
            "handshake")


def case_refuse_implicit_plaintext(env):
    refused(env, env.sink("--allow-plaintext"), "handshake", implicit=True)


# ---- faults --------------------------------------------------------------

def stall(env, stage, *flags):
    """Every third reply at this stage never comes: those connections time
    out (1 s stage timeout) and are replaced; the others carry on. One
    message at a time per connection, so every stage's timeout is seen."""
    s = env.sink("--stall", stage + "@3", *flags, store=False)
    rc, out = env.send(s.port, "--stage-timeout", "1", "--pipeline-depth", "1", count=12,
                       connections=3)
    check(rc == 75, "exit 75 expected, got %d:\n%s" % (rc, out))
    check("by timeout" in out, "timeouts reported:\n" + out)
    m = re.search(r"sent (\d+) of 12", out)
    check(m and int(m.group(1)) >= 4, "the other connections carried on:\n" + out)
    stats = s.stop()
    check(stats.get("connections", 0) > 3, "stalled connections were replaced: %s" % stats)
    check(m and int(m.group(1)) == stats.get("messages"), "sent count matches the sink:\n" + out)


def case_stall_pipelined(env):
    """Transactions back to back when a reply never comes: every one in
    flight on that connection fails as temporary (none is lost, none
    counted twice), the other connections deliver theirs."""
    s = env.sink("--stall", "BDAT@5", store=False)
    rc, out = env.send(s.port, "--stage-timeout", "1", "--pipeline-depth", "4", count=24,
                       connections=3)
    check(rc == 75, "exit 75 expected, got %d:\n%s" % (rc, out))
    m = re.search(r"sent (\d+) of 24 messages \((\d+) recipients delivered, (\d+) temporary", out)
    check(m is not None, "summary line:\n" + out)
    stats = s.stop()
    if m:
        sent, temp = int(m.group(1)), int(m.group(3))
        check(sent == stats.get("messages"), "sent count %d matches the sink: %s" % (sent, stats))
        check(sent + temp == 24, "every message delivered or temporary: %s" % m.group(0))
        check(temp >= 2, "a stalled burst fails more than its stalled message: %s" % m.group(0))


def case_pipelined_rcpt_refused(env):
    """Every third RCPT refused while transactions go back to back: the sink
    keeps a transaction open after refusing its BDAT LAST (as some servers
    do), which without the RSET in front of each follower would take the
    next one's recipient and body into it. Each message's fate must be
    exactly what the server did: 20 delivered (and the sink has exactly
    20), 10 permanent."""
    s = env.sink("--reply", "RCPT=550@3", store=False)
    rc, out = env.send(s.port, "--pipeline-depth", "8", count=30, connections=2)
    check(rc == 69, "exit 69 expected, got %d:\n%s" % (rc, out))
    check("sent 20 of 30 messages (20 recipients delivered, 0 temporary, 10 permanent)" in out,
          "20 delivered, 10 refused:\n" + out)
    stats = s.stop()
    check(stats.get("messages") == 20, "the sink accepted exactly 20: %s" % stats)


def case_postfix_pipelined(env):
    """A real Postfix (Debian's, on loopback) as the relay: transactions
    back to back in bursts (PIPELINING, CHUNKING, BDAT with the envelope),
    each one queued by Postfix exactly once; then every recipient refused:
    permanent, with Postfix's own reply."""
    why = postfix.require()
    if why:
        check(False, why)
        return
    pf = postfix.Postfix(env.dir, postfix.free_port(),
                         server_chain=(env.pki.path("good.key"), env.pki.path("good.chain.pem")),
                         overrides={
                             "mydestination": "example.net",
                             "local_transport": "discard:",
                             "local_recipient_maps": "",
                             "smtpd_recipient_restrictions":
                                 "check_recipient_access inline:{gone@example.net=REJECT}, "
                                 "permit_mynetworks, reject",
                         })
    pf.start()
    try:
        rc, out = env.send(pf.port, "--pipeline-depth", "8", count=40, connections=2)
        check(rc == 0, "exit 0 expected, got %d:\n%s" % (rc, out))
        check("sent 40 of 40" in out, "all 40 accepted:\n" + out)
        queued = postfix.count_in_log(pf, "message-id=<t1@example.org>", 40)
        check(queued == 40, "Postfix queued each message once: %d of 40" % queued)
        rc, out = env.send(pf.port, "--to", "gone@example.net", "--pipeline-depth", "8",
                           count=3, connections=1)
        check(rc == 69 and "Recipient address rejected" in out,
              "a refused recipient is permanent with Postfix's reply (69), got %d:\n%s"
              % (rc, out))
    finally:
        pf.stop()


def stall_before_ready(env, stage):
    """A connection stalled before it is ready never holds a job: the others
    deliver everything, and the stalled one times out (seen while the
    connections are held idle) and is replaced."""
    s = env.sink("--stall", stage + "@3", store=False)
    rc, out = env.send(s.port, "--stage-timeout", "1", "--hold", "3", count=12, connections=3)
    check(rc == 0, "exit 0 expected, got %d:\n%s" % (rc, out))
    check('"reason":"timeout"' in out, "the stalled connection timed out:\n" + out)
    stats = s.stop()
    check(stats.get("messages") == 12, "the others delivered everything: %s" % stats)
    check(stats.get("connections", 0) > 3, "the stalled connection was replaced: %s" % stats)


def case_stall_greeting(env):
    stall_before_ready(env, "GREETING")


def case_stall_ehlo(env):
    stall_before_ready(env, "EHLO")


def case_stall_starttls(env):
    stall_before_ready(env, "STARTTLS")


def case_stall_mail(env):
    stall(env, "MAIL")


def case_stall_rcpt(env):
    stall(env, "RCPT")


def case_stall_data_cmd(env):
    stall(env, "DATA-CMD", "--no-chunking")


def case_stall_data_end(env):
    stall(env, "DATA", "--no-chunking")


def case_stall_bdat(env):
    stall(env, "BDAT")


def case_rotation_resumes_session(env):
    # Rotation after 2 messages: 5 connections for 10 messages, and every
    # reconnect resumes the TLS session of the one before.
    s = env.sink(store=False)
    rc, out = env.send(s.port, "--max-messages-per-connection", "2", count=10, connections=1)
    check(rc == 0, "exit 0 expected, got %d:\n%s" % (rc, out))
    stats = s.stop()
    check(stats.get("messages") == 10, "10 delivered: %s" % stats)
    check(stats.get("connections") == 5, "rotated every 2 messages: %s" % stats)
    check("resumed=1" in out, "the last connection resumed its session:\n" + out)


def case_keepalive_noop(env):
    # Idle connections say NOOP; a 421 to it closes the connection and the
    # pool opens another.
    s = env.sink("--reply", "NOOP=421", store=False)
    rc, out = env.send(s.port, "--keepalive", "1", "--hold", "3", count=1)
    check(rc == 0, "exit 0 expected, got %d:\n%s" % (rc, out))
    stats = s.stop()
    check(stats.get("connections", 0) >= 2, "the NOOP was answered 421 and replaced: %s" % stats)


def case_key_update_userspace(env):
    # A server-initiated KeyUpdate on TLS 1.3 without kTLS: OpenSSL answers
    # it, the connection stays, every message arrives once.
    s = env.sink("--tls-versions", "1.3", "--key-update-after", "2")
    rc, out = env.send(s.port, count=8)
    stats = expect_delivered(env, s, rc, out, n=8)
    check(stats.get("key_updates", 0) >= 3, "the sink sent KeyUpdates: %s" % stats)
    check(stats.get("connections") == 1, "one connection carried them all: %s" % stats)


def case_drop_mid_data(env):
    s = env.sink("--disconnect-after", "DATA-BODY@2", "--no-chunking", store=False)
    rc, out = env.send(s.port, count=6, connections=1)
    check(rc == 75, "exit 75 expected, got %d:\n%s" % (rc, out))
    check("by connection" in out, "connection failure reported:\n" + out)
    stats = s.stop()
    check(stats.get("connections", 0) >= 2, "the dropped connection was replaced: %s" % stats)
    m = re.search(r"sent (\d+) of 6", out)
    check(m and int(m.group(1)) == stats.get("messages"), "sent count matches the sink:\n" + out)


def case_temp_and_perm_replies(env):
    s = env.sink("--reply", "RCPT=451", store=False)
    rc, out = env.send(s.port)
    check(rc == 75, "4yz RCPT is temporary (75), got %d:\n%s" % (rc, out))
    s.stop()
    s = env.sink("--reply", "RCPT=550", store=False)
    rc, out = env.send(s.port)
    check(rc == 69, "5yz RCPT is permanent (69), got %d:\n%s" % (rc, out))
    check(s.stop().get("messages") == 0, "nothing delivered when every RCPT is refused")
    # Again with the body waiting for an accepted recipient, and with the
    # pipelined BDAT (the default) over a connection that goes on: the
    # refused transaction must not poison the next one.
    for extra in (["--no-pipeline-body"], []):
        s = env.sink("--reply", "RCPT=550", store=False)
        rc, out = env.send(s.port, *extra, count=3)
        check(rc == 69, "%s: every RCPT refused is permanent (69), got %d:\n%s" % (extra, rc, out))
        check(s.stop().get("messages") == 0, "%s: nothing delivered" % extra)


def spki_pin(pem):
    """base64(SHA-256(DER SubjectPublicKeyInfo)) of a certificate, with the
    openssl command line (independent of ringmail's own code)."""
    import base64
    import hashlib
    import subprocess
    pub = subprocess.run(["openssl", "x509", "-in", pem, "-pubkey", "-noout"], check=True,
                         capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, check=True,
                         capture_output=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def case_pin_self_signed(env):
    # A pinned self-signed relay: verification off, the pin is the trust; no
    # insecure warning because the connection is authenticated by the pin.
    s = env.sink(cert="selfsigned")
    rc, out = env.send(s.port, "--insecure-no-verify", "--pin",
                       spki_pin(env.pki.path("selfsigned.pem")), ca=None)
    expect_delivered(env, s, rc, out)
    check("tls_verify_disabled" not in out, "no insecure warning with a pin:\n" + out)


def case_pin_mismatch(env):
    out = refused(env, env.sink(), "cert-verify", "--pin", spki_pin(env.pki.path("selfsigned.pem")))
    check("pin" in out, "the pin named in the reason:\n" + out)


def case_insecure_warns(env):
    # Verification off without a pin works, and says so at start and on
    # every connection.
    s = env.sink(cert="selfsigned")
    rc, out = env.send(s.port, "--insecure-no-verify", count=4, connections=2, ca=None)
    expect_delivered(env, s, rc, out, n=4)
    check(out.count('"event":"tls_verify_disabled"') >= 3,
          "a warning at start and one per connection:\n" + out)


def session_limit(env, *flags):
    """OpenSMTPD's max-mails: after 100 messages a session's MAIL gets
    "452 4.5.3 Too many messages sent". ringmail send retires the session
    with QUIT and sends the refused transactions on a fresh one: all 200
    delivered once each, exit 0, and every session the sink saw ended with
    QUIT (none was reset)."""
    s = env.sink("--max-mails", "100")
    rc, out = env.send(s.port, *flags, count=200)
    stats = expect_delivered(env, s, rc, out, n=200)
    # (send repeats one message, Message-ID and all: the engine case checks
    # for duplicates.)
    check(stats.get("connections", 0) >= 2, "a fresh session after the limit: %s" % stats)
    check(stats.get("quits") == stats.get("connections"),
          "every session ends with QUIT (%s of %s did)" % (stats.get("quits"), stats.get("connections")))


def case_session_limit_pipelined(env):
    session_limit(env)


def case_session_limit_lockstep(env):
    session_limit(env, "--pipeline-depth", "1")


def case_session_limit_every_mail(env):
    """A relay that says 452 4.5.3 to every first MAIL: the transaction is
    moved once, then deferred with the server's reply (exit 75), without
    looping; each session still ends with QUIT."""
    s = env.sink("--reply", "MAIL=452:4.5.3 Too many messages sent", store=False)
    rc, out = env.send(s.port, count=1, timeout=60)
    check(rc == 75, "temporary failure (75) expected, got %d:\n%s" % (rc, out))
    check("Too many messages" in out, "the server's reply is reported:\n%s" % out)
    stats = s.stop()
    check(stats.get("messages") == 0, "nothing accepted: %s" % stats)
    # Moved once, to one fresh session (a third may open while send exits).
    check(2 <= stats.get("connections", 0) <= 3, "no loop: %s" % stats)
    check(stats.get("quits", 0) >= 2, "QUIT on both refusing sessions: %s" % stats)


def case_pool_breaker(env):
    # The pool's circuit breaker, driven by a small C program over the real
    # pool (tests/integration/pool_breaker.c), against an expired certificate.
    s = env.sink(cert="expired", store=False)
    probe = os.path.join(os.path.dirname(env.ringmail), "..", "tests", "pool_breaker")
    rc, out = harness.run([probe, str(s.port), env.pki.path("root.pem")])
    print(out)
    check(rc == 0, "pool_breaker failed (%d)" % rc)
    stats = s.stop()
    check(stats.get("connections") == 3, "three attempts, then none: %s" % stats)


if __name__ == "__main__":
    sys.exit(harness.run_case(__doc__, globals(), Env, failures))
