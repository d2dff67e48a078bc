#!/usr/bin/env python3
"""The recording proxy's proof of "nothing in plaintext" (client_wire),
tested with hand-made clients through the proxy to ringmail-sink: each bad
client must be flagged, each good one must pass.

usage: test_proxy.py SINK
"""
import os
import shutil
import socket
import ssl
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import pki  # noqa: E402

failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


class Client:
    """A scripted SMTP client: each send waits for the server's whole reply."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.s.makefile("rb")
        self.greeting = self.reply()

    def reply(self):
        out = b""
        while True:
            line = self.f.readline()
            out += line
            if not line or len(line) < 4 or line[3:4] != b"-":
                return out

    def cmd(self, line):
        self.s.sendall(line)
        return self.reply()

    def tls(self, ctx):
        self.f.close()
        self.s = ctx.wrap_socket(self.s, server_hostname="localhost")
        self.f = self.s.makefile("rb")

    def close(self):
        self.f.close()
        self.s.close()


def run(name, sink, script, want_bad, implicit=False, expect=""):
    proxy = harness.RecordingProxy(sink.port, implicit=implicit)
    try:
        script(proxy.port)
    except (OSError, ssl.SSLError) as e:
        print("%s: the client stopped: %s" % (name, e))
    check(harness.wait_for(lambda: proxy.logs, 5), "%s: the proxy recorded the connection" % name)
    bad = proxy.violations()
    proxy.close()
    if want_bad:
        check(len(bad) == 1 and expect in bad[0], "%s flagged (%s): %s" % (name, expect, bad))
    else:
        check(bad == [], "%s passes: %s" % (name, bad))


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 64
    tmp = tempfile.mkdtemp(prefix="ringmail-proxy-")
    p = pki.make_all(os.path.join(tmp, "pki"))
    ctx = ssl.create_default_context(cafile=p.path("root.pem"))
    sinks = []

    def sink(*flags):
        s = harness.Sink(sys.argv[1], tmp, *flags, cert=p.path("good.chain.pem"),
                         key=p.path("good.key"), store=False)
        sinks.append(s)
        return s

    good, s454 = sink(), sink("--starttls-reply", "454 4.7.0 TLS not available")
    garbage, implicit = sink("--starttls-reply", "garbage without a code"), sink("--implicit")

    def starttls_then(after, ehlo=b"EHLO client.test\r\n", starttls=b"STARTTLS\r\n"):
        def script(port):
            c = Client(port)
            c.cmd(ehlo)
            c.cmd(starttls)
            after(c)
            c.close()
        return script

    def deliver_over_tls(c):
        c.tls(ctx)
        c.cmd(b"EHLO client.test\r\n")
        c.cmd(b"MAIL FROM:<a@example.org>\r\n")
        c.cmd(b"QUIT\r\n")

    def plain_after_tls(c):
        c.tls(ctx)
        c.cmd(b"EHLO client.test\r\n")
        # Past the TLS layer, on the same connection.
        with socket.socket(fileno=os.dup(c.s.fileno())) as raw:
            raw.sendall(b"MAIL FROM:<a@example.org>\r\n")

    def implicit_ok(port):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                            server_hostname="localhost")
        s.recv(4096)
        s.sendall(b"QUIT\r\n")
        s.recv(4096)
        s.close()

    def implicit_plain(port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"EHLO client.test\r\n")

    def plain_script(*lines, last_unanswered=False):
        def script(port):
            c = Client(port)
            for i, line in enumerate(lines):
                if last_unanswered and i == len(lines) - 1:
                    c.s.sendall(line)
                else:
                    c.cmd(line)
            c.close()
        return script

    def pipelined(port):
        c = Client(port)
        c.cmd(b"EHLO client.test\r\n")
        c.s.sendall(b"STARTTLS\r\nMAIL FROM:<a@example.org>\r\n")
        c.close()

    def hello_after_refusal(c):
        c.tls(ctx)  # the sink answered 454: this ClientHello is not invited

    # Good clients: the proof must not refuse what a correct client sends.
    run("STARTTLS then TLS", good, starttls_then(deliver_over_tls), False)
    run("starttls in lower case", good,
        starttls_then(deliver_over_tls, b"ehlo client.test\r\n", b"StartTls\r\n"), False)
    run("454 then QUIT", s454, starttls_then(lambda c: c.cmd(b"QUIT\r\n")), False)
    run("454 then close", s454, starttls_then(lambda c: None), False)
    run("garbage then QUIT", garbage, starttls_then(lambda c: c.cmd(b"quit\r\n")), False)
    run("implicit TLS", implicit, implicit_ok, False, implicit=True)
    run("no STARTTLS, QUIT", good, plain_script(b"HELO client.test\r\n", b"QUIT\r\n"), False)
    # Bad clients, each of which the old proxy (cut at "STARTTLS\r\n") passed.
    run("MAIL after 454", s454, starttls_then(lambda c: c.cmd(b"MAIL FROM:<a@example.org>\r\n")),
        True, expect="only QUIT may follow")
    run("AUTH after garbage", garbage,
        starttls_then(lambda c: c.cmd(b"AUTH PLAIN AHRlc3RlcgBzM2NyZXQtcGFzcw==\r\n")),
        True, expect="only QUIT may follow")
    run("a non-TLS octet after 220", good, starttls_then(lambda c: c.s.sendall(b"X")), True,
        expect="not a TLS record header")
    run("EHLO again after 220", good, starttls_then(lambda c: c.cmd(b"EHLO client.test\r\n")),
        True, expect="not a TLS record header")
    run("plaintext after the handshake", good, starttls_then(plain_after_tls), True,
        expect="not a TLS record header")
    run("ClientHello after 454", s454, starttls_then(hello_after_refusal), True,
        expect="only QUIT may follow")
    run("QUIT then more", s454, starttls_then(lambda c: c.cmd(b"QUIT\r\nRSET\r\n")),
        True,
        expect="after QUIT")
    run("MAIL before STARTTLS", good,
        plain_script(b"EHLO client.test\r\n", b"MAIL FROM:<a@example.org>\r\n"), True,
        expect="plaintext command")
    run("NOOP before STARTTLS", good, plain_script(b"EHLO client.test\r\n", b"NOOP\r\n"), True,
        expect="plaintext command")
    run("bare LF", good, plain_script(b"EHLO client.test\nMAIL FROM:<a@example.org>\r\n"), True,
        expect="bare CR or LF")
    run("unterminated line", good, plain_script(b"EHLO client.test\r\n", b"AUTH", last_unanswered=True),
        True,
        expect="unterminated")
    run("pipelined past STARTTLS", good, pipelined, True, expect="without waiting")
    run("plaintext on implicit TLS", implicit, implicit_plain, True, implicit=True,
        expect="not a TLS record header")

    for s in sinks:
        s.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (0 if failures else 1, 1 if failures else 0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
