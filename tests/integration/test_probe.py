#!/usr/bin/env python3
"""Probe tests: `ringmail probe` against ringmail-sink in each fault
configuration (and one deliberately injectable STARTTLS server), over real
sockets, real OpenSSL and a throwaway PKI made at test time.

usage: test_probe.py RINGMAIL SINK CASE
Each CASE is one ctest test; it checks the grade, the reasons and the exit
status (0 grade >= --min-grade, 1 below, 2 unreachable, 64 usage).
"""
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import pki  # noqa: E402
import postfix  # noqa: E402

# A sink configured as a relay should be: AEAD and forward secrecy only for
# TLS 1.2. OpenSSL's default server list also offers CBC suites, which the
# probe rightly grades B.
GOOD_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


class Env:
    def __init__(self, ringmail, sink):
        self.ringmail = ringmail
        self.sink_bin = sink
        self.dir = tempfile.mkdtemp(prefix="ringmail-probe-")
        self.pki = pki.make_all(os.path.join(self.dir, "pki"))
        self.sinks = []
        self.postfixes = []

    def sink(self, *flags, cert="good"):
        s = harness.Sink(self.sink_bin, self.dir, *flags, cert=self.pki.path(cert + ".chain.pem"),
                         key=self.pki.path(cert + ".key"), store=False)
        self.sinks.append(s)
        return s

    def probe(self, port, *extra):
        """Run the probe with --json; returns (exit status, parsed JSON or None, raw output)."""
        rc, out = harness.ringmail(self.ringmail, "probe", "localhost:%d" % port, "--ca",
                                   self.pki.path("root.pem"), "--timeout", "5", "--json",
                                   *extra, timeout=120)
        try:
            doc = json.loads(out)
        except ValueError:
            doc = None
        return rc, doc, out

    def close(self):
        for s in self.sinks:
            if s.proc.poll() is None:
                s.proc.kill()
        for pf in self.postfixes:
            pf.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def expect(env, port, grade, rc_want, reason=None, *extra):
    rc, doc, out = env.probe(port, *extra)
    check(doc is not None, "JSON output expected:\n" + out)
    if doc is None:
        return None
    check(doc["grade"] == grade, "grade %s expected, got %s: %s" % (grade, doc["grade"],
                                                                      doc["reasons"]))
    check(rc == rc_want, "exit %d expected, got %d" % (rc_want, rc))
    if reason:
        texts = [r["reason"] for r in doc["reasons"] if r["grade"] == grade]
        check(any(reason.lower() in t.lower() for t in texts),
              "a %s reason mentioning %r expected: %s" % (grade, reason, doc["reasons"]))
    return doc


class InjectableServer:
    """A deliberately vulnerable STARTTLS server (the CVE-2011-0411 bug): it
    keeps what it read after STARTTLS and answers it inside TLS. The sink
    cannot be made injectable: it drops pipelined input after STARTTLS."""

    def __init__(self, cert, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_ciphers(GOOD_CIPHERS)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, conn):
        try:
            self._dialog(conn)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def _dialog(self, conn):
        conn.sendall(b"220 vulnerable ESMTP\r\n")
        buf, tls = b"", False
        while True:
            while b"\r\n" not in buf:
                d = conn.recv(4096)
                if not d:
                    return
                buf += d
            line, buf = buf.split(b"\r\n", 1)
            cmd = line.upper()
            if cmd.startswith(b"EHLO"):
                conn.sendall(b"250-vulnerable\r\n250-PIPELINING\r\n" +
                             (b"250 SIZE 1000000\r\n" if tls else b"250 STARTTLS\r\n"))
            elif cmd == b"STARTTLS" and not tls:
                conn.sendall(b"220 go ahead\r\n")
                conn = self.ctx.wrap_socket(conn, server_side=True)
                tls = True  # the bug: buf is kept across the switch
            elif cmd == b"NOOP":
                conn.sendall(b"250 2.0.0 OK\r\n")
            elif cmd == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"500 unknown\r\n")

    def close(self):
        self.sock.close()


# ---- cases ----------------------------------------------------------------

def case_healthy(env):
    s = env.sink("--ciphers", GOOD_CIPHERS)
    doc = expect(env, s.port, "A", 0, None, "--min-grade", "A")
    if doc:
        t = doc["tls"]
        check(t["protocol"] == "TLSv1.3" and t["verify"] == "ok" and t["host_match"],
              "TLS facts: %s" % t)
        check(len(t["chain"]) == 2 and t["chain"][0]["subject"] == "CN=localhost",
              "chain: %s" % t["chain"])
        check(t["key_type"] == "EC" and t["key_bits"] == 256 and t["days_left"] > 300,
              "key and expiry: %s" % t)
        check(doc["ehlo_pre_tls"]["starttls"] and doc["ehlo_post_tls"]["pipelining"],
              "capabilities recorded")
        check(doc["accepts"]["TLSv1.0"]["result"] == "refused" and
              doc["accepts"]["cbc"]["result"] == "refused", "enumeration: %s" % doc["accepts"])
        check(doc["injectable"] is False, "the sink is not injectable")
        check(doc["reasons"] == [], "no reasons for an A: %s" % doc["reasons"])
    # The human report too.
    rc, out = harness.ringmail(env.ringmail, "probe", "localhost:%d" % s.port, "--ca",
                               env.pki.path("root.pem"))
    check(rc == 0 and "Grade A" in out and "TLSv1.3" in out, "human report:\n" + out)


def case_auth_after_tls(env):
    s = env.sink("--ciphers", GOOD_CIPHERS, "--auth", "tester:secret")
    doc = expect(env, s.port, "A", 0)
    if doc:
        check(not doc["ehlo_pre_tls"]["auth"], "no AUTH before TLS")
        check(doc["ehlo_post_tls"]["auth_plain"] and doc["ehlo_post_tls"]["auth_login"],
              "AUTH PLAIN LOGIN after TLS: %s" % doc["ehlo_post_tls"])


def case_servername(env):
    # The good certificate names localhost; asking for another name fails it.
    s = env.sink("--ciphers", GOOD_CIPHERS)
    doc = expect(env, s.port, "F", 1, "mismatch", "--servername", "mx.other.example")
    if doc:
        check(doc["servername"] == "mx.other.example", "servername recorded")


def case_implicit(env):
    s = env.sink("--implicit", "--ciphers", GOOD_CIPHERS)
    doc = expect(env, s.port, "A", 0, None, "--implicit-tls")
    if doc:
        check(doc["banner_code"] == 220 and doc["ehlo_post_tls_code"] == 250,
              "banner and EHLO inside TLS: %s" % doc)


def case_default_ciphers_cbc(env):
    # OpenSSL's default server cipher list still offers CBC for TLS 1.2.
    expect(env, env.sink().port, "B", 0, "cbc")


def case_no_starttls(env):
    expect(env, env.sink("--no-starttls").port, "F", 1, "STARTTLS")


def case_tls10(env):
    # The default cipher list: TLS 1.0 and 1.1 have no AEAD suites at all.
    s = env.sink("--tls-versions", "1.0-1.3")
    doc = expect(env, s.port, "C", 1, "TLSv1.0")
    if doc:
        check(doc["accepts"]["TLSv1.1"]["result"] == "accepted", "TLS 1.1 seen too")


def case_cbc(env):
    s = env.sink("--tls-versions", "1.2", "--ciphers",
                 "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
    doc = expect(env, s.port, "B", 0, "cbc")
    if doc:
        check(doc["accepts"]["cbc"]["cipher"] == "ECDHE-ECDSA-AES128-SHA", "CBC cipher named")
        check(doc["tls"]["protocol"] == "TLSv1.2", "TLS 1.2 only")


def case_cert_expired(env):
    expect(env, env.sink("--ciphers", GOOD_CIPHERS, cert="expired").port, "F", 1, "expired")


def case_cert_wrong_host(env):
    doc = expect(env, env.sink("--ciphers", GOOD_CIPHERS, cert="wronghost").port, "F", 1,
                 "mismatch")
    if doc:
        check(doc["tls"]["host_match"] is False, "host_match false")


def case_plaintext_after_220(env):
    s = env.sink("--ciphers", GOOD_CIPHERS, "--inject-after-220", "250-INJECTED\\r\\n")
    doc = expect(env, s.port, "F", 1, "plaintext after 220")
    if doc:
        check(doc["plaintext_after_220"] == 14 and "INJECTED" in doc["plaintext_after_220_sample"],
              "the bytes are reported: %s" % doc["plaintext_after_220_sample"])


def case_injectable(env):
    srv = InjectableServer(env.pki.path("good.chain.pem"), env.pki.path("good.key"))
    try:
        doc = expect(env, srv.port, "F", 1, "injection")
        if doc:
            check(doc["injectable"] is True, "injectable true")
    finally:
        srv.close()


# ---- a real Postfix, checked against openssl s_client -----------------------

# What an operator following Postfix's TLS_README would set for a relay that
# only speaks modern TLS.
POSTFIX_HARDENED = {
    "smtpd_tls_protocols": ">=TLSv1.2",
    "smtpd_tls_mandatory_protocols": ">=TLSv1.2",
    "smtpd_tls_mandatory_ciphers": "high",
    "tls_high_cipherlist": GOOD_CIPHERS,
}

S_CLIENT_VERSION = {"TLSv1.0": "-tls1", "TLSv1.1": "-tls1_1", "TLSv1.2": "-tls1_2",
                    "TLSv1.3": "-tls1_3"}


def s_client(env, port, *extra):
    """openssl s_client -starttls smtp -brief: the facts it prints, by name."""
    args = ["openssl", "s_client", "-starttls", "smtp", "-connect", "127.0.0.1:%d" % port,
            "-servername", "localhost", "-verify_hostname", "localhost", "-CAfile",
            env.pki.path("root.pem"), "-brief", *extra]
    r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    facts = {}
    for line in r.stdout.splitlines():
        name, sep, value = line.partition(": ")
        if sep:
            facts[name.strip()] = value.strip()
    return facts, r.stdout


def postfix_instance(env, cert, overrides):
    why = postfix.require()
    if why:
        check(False, why)
        return None
    pf = postfix.Postfix(env.dir, postfix.free_port(),
                         server_chain=(env.pki.path(cert + ".key"),
                                       env.pki.path(cert + ".chain.pem")),
                         overrides=overrides)
    pf.start()
    env.postfixes.append(pf)
    return pf


def agree_with_s_client(env, port, doc):
    """The handshake the probe reports is the one OpenSSL's own client sees."""
    facts, out = s_client(env, port)
    t = doc["tls"]
    check(facts.get("Protocol version") == t["protocol"],
          "protocol: probe %s, s_client %s" % (t["protocol"], facts.get("Protocol version")))
    check(facts.get("Ciphersuite") == t["cipher"],
          "cipher: probe %s, s_client %s" % (t["cipher"], facts.get("Ciphersuite")))
    if "Verification" in facts:
        check(facts["Verification"] == "OK" and t["verify"] == "ok",
              "verify: probe %r, s_client %r" % (t["verify"], facts["Verification"]))
    else:
        err = facts.get("Verification error", "")
        check(err != "" and err.lower() in t["verify"].lower(),
              "verify: probe %r, s_client %r\n%s" % (t["verify"], err, out))
    # Each protocol version: accepted by one means accepted by the other.
    for version, flag in S_CLIENT_VERSION.items():
        extra = [flag] + (["-cipher", "DEFAULT:@SECLEVEL=0"] if version < "TLSv1.2" else [])
        f, _ = s_client(env, port, *extra)
        # s_client names TLS 1.0 "TLSv1".
        s_accepts = {"TLSv1": "TLSv1.0"}.get(f.get("Protocol version"), f.get("Protocol version"))
        probe_accepts = doc["accepts"][version]["result"] == "accepted"
        check(probe_accepts == (s_accepts == version),
              "%s: probe says %s, s_client negotiated %r" %
              (version, doc["accepts"][version]["result"], f.get("Protocol version")))
        if probe_accepts and s_accepts == version:
            check(doc["accepts"][version]["cipher"] == f.get("Ciphersuite"),
                  "%s cipher: probe %s, s_client %s" %
                  (version, doc["accepts"][version]["cipher"], f.get("Ciphersuite")))


def case_postfix_hardened(env):
    pf = postfix_instance(env, "good", POSTFIX_HARDENED)
    if not pf:
        return
    doc = expect(env, pf.port, "A", 0, None, "--min-grade", "A")
    if doc:
        check("Postfix" in doc["banner"], "a Postfix banner: %r" % doc["banner"])
        check(doc["injectable"] is False, "Postfix is not injectable (fixed in 2.8.4)")
        check(doc["plaintext_after_220"] == 0, "no bytes after Postfix's 220")
        agree_with_s_client(env, pf.port, doc)


def case_postfix_defaults(env):
    # Debian's Postfix at "encrypt" with nothing else set still takes TLS 1.0
    # and 1.1, CBC and (as Postfix documents, for clients that do not verify)
    # anonymous suites: the probe names each one.
    pf = postfix_instance(env, "good", {})
    if not pf:
        return
    doc = expect(env, pf.port, "F", 1, "null-anonymous")
    if doc:
        got = {r["reason"].split(" (")[0] for r in doc["reasons"]}
        for want in ("accepts TLSv1.0", "accepts TLSv1.1", "accepts cbc"):
            check(want in got, "reason %r expected: %s" % (want, doc["reasons"]))
        check(doc["tls"]["verify"] == "ok", "the certificate itself is good")
        agree_with_s_client(env, pf.port, doc)


def case_postfix_expired(env):
    pf = postfix_instance(env, "expired", POSTFIX_HARDENED)
    if not pf:
        return
    doc = expect(env, pf.port, "F", 1, "expired")
    if doc:
        agree_with_s_client(env, pf.port, doc)


def case_unreachable(env):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    rc, out = harness.ringmail(env.ringmail, "probe", "127.0.0.1:%d" % port, "--timeout", "3")
    check(rc == 2, "exit 2 expected for an unreachable server, got %d: %s" % (rc, out))
    rc, out = harness.ringmail(env.ringmail, "probe")
    check(rc == 64, "exit 64 without a target, got %d" % rc)
    rc, out = harness.ringmail(env.ringmail, "probe", "x:1", "--min-grade", "Z")
    check(rc == 64, "exit 64 for a bad --min-grade, got %d" % rc)


if __name__ == "__main__":
    sys.exit(harness.run_case(__doc__, globals(), Env, failures))
