#!/usr/bin/env python3
"""ringmail send against Debian 12's real OpenSMTPD 6.8 and Exim 4.96
(private instances on loopback, unpacked from their .debs: realmta.py).

usage: test_realmta.py RINGMAIL CACHE_DIR CASE

The session limits are the servers' own: OpenSMTPD's default max-mails
(100) answers MAIL with "452 4.5.3 Too many messages sent"; Exim's
smtp_accept_max_per_connection (set to 50 here) answers MAIL with
"421 too many messages in this connection". 200 messages must all arrive,
exit 0, and every session must end with QUIT, in the server's own log.
"""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import pki  # noqa: E402
import realmta  # noqa: E402
from skip import skip  # noqa: E402

MESSAGE = (b"From: Sender <sender@example.org>\nTo: rcpt@example.net\n"
           b"Subject: real MTA test\nMessage-ID: <realmta@example.org>\n\nHello.\n")

failures = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


class Env:
    def __init__(self, ringmail, cache):
        self.ringmail = ringmail
        self.cache = cache
        self.dir = tempfile.mkdtemp(prefix="ringmail-realmta-")
        p = pki.Pki(os.path.join(self.dir, "pki"))
        p.root_ca("root")
        p.sign("good", "root", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
        self.pki = p
        self.msg = os.path.join(self.dir, "message.eml")
        with open(self.msg, "wb") as f:
            f.write(MESSAGE)
        self.servers = []

    def root(self, which):
        if os.geteuid() != 0:
            skip("the private %s must be started as root" % which)
        if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
            skip("apt-get and dpkg-deb are needed to fetch and unpack %s" % which)
        if which == "opensmtpd":
            r = harness.run(["unshare", "-m", "true"], timeout=10)
            if r[0] != 0:
                skip("OpenSMTPD needs a private mount namespace (unshare -m): %s" % r[1].strip())
        try:
            root = realmta.unpacked(self.cache, which)
        except realmta.Unavailable as e:
            skip(str(e))
        realmta.ensure_users(which)
        return root

    def send(self, port, *extra, count=1):
        return harness.ringmail(self.ringmail, "send", "--relay", "localhost:%d" % port,
                                "--from", "sender@example.org", "--to", "rcpt@example.net",
                                "--count", str(count), "--ehlo", "client.test", "--ca",
                                self.pki.path("root.pem"), *extra, self.msg, timeout=60)

    def close(self):
        for s in self.servers:
            s.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def opensmtpd(env, tls=False):
    srv = realmta.OpenSmtpd(env.root("opensmtpd"), env.dir, realmta.free_port(),
                            cert=env.pki.path("good.pem"), key=env.pki.path("good.key"), tls=tls)
    env.servers.append(srv)
    srv.start()
    return srv


def exim(env, max_mails=1000):
    srv = realmta.Exim(env.root("exim"), env.dir, realmta.free_port(), env.pki.path("good.pem"),
                       env.pki.path("good.key"), max_mails=max_mails)
    env.servers.append(srv)
    srv.start()
    return srv


def settle(cond, timeout=15):
    harness.wait_for(cond, timeout)


# ---- OpenSMTPD ---------------------------------------------------------------

def case_opensmtpd_max_mails(env):
    """200 messages on one connection to OpenSMTPD at its default max-mails
    (100): the 452 4.5.3 retires the session with QUIT and the rest go on a
    fresh one; all 200 reach the maildir, exit 0, no session is reset."""
    srv = opensmtpd(env)
    shim = realmta.StartTlsShim(srv.port, env.pki.path("good.pem"), env.pki.path("good.key"))
    try:
        rc, out = env.send(shim.port, "--connections", "1", count=200)
        print(out[-3000:])
        check(rc == 0, "exit 0, got %d" % rc)
        check("sent 200 of 200" in out, "all 200 accepted")
        settle(lambda: srv.delivered() >= 200)
        check(srv.delivered() == 200, "200 in OpenSMTPD's maildir, found %d" % srv.delivered())
        settle(lambda: len(srv.lines("smtp disconnected")) >= len(srv.lines("smtp connected")))
        sessions = len(srv.lines("smtp connected"))
        quits = len(srv.lines("smtp disconnected reason=quit"))
        ended = srv.lines("smtp disconnected")
        replies = b"".join(shim.replies)
        limit = re.findall(rb"452 4\.5\.3 [^\r]*", replies)
        print("OpenSMTPD's limit replies: %r; sessions %d, ends %s" %
              (sorted(set(limit)), sessions, sorted(set(ln.split(" ", 1)[1] for ln in ended))))
        check(b"452 4.5.3 Too many recipients: Too many messages sent" in replies,
              "OpenSMTPD answered MAIL with its max-mails reply")
        check(sessions >= 2, "the limit moved the rest to a fresh session (%d sessions)" % sessions)
        check(quits == sessions,
              "every session ended by QUIT in OpenSMTPD's log (%d of %d):\n%s" %
              (quits, sessions, "\n".join(ended)))
        check(len(limit) <= 8 * (sessions - 1) + 8,
              "no MAIL/452/RSET loop on a retired session (%d limit replies)" % len(limit))
        check(len(srv.lines("smtp message msgid=")) == 200, "OpenSMTPD logged 200 messages")
    finally:
        shim.close()


def case_opensmtpd_tls_broken(env):
    """The real OpenSMTPD 6.8 STARTTLS of Debian 12 fails every handshake
    (OpenSSL 3, see realmta.py): ringmail defers (temporary, not a bounce)
    and sends no envelope."""
    srv = opensmtpd(env, tls=True)
    rc, out = env.send(srv.port, count=2)
    print(out[-2000:])
    check(rc not in (0, 69), "not delivered and not bounced, got %d" % rc)
    check("2 temporary" in out and "handshake" in out, "both deferred by the handshake")
    settle(lambda: srv.lines("smtp disconnected"))
    check(srv.lines("SSL routines") != [], "OpenSMTPD logged the TLS failure:\n" + srv.tail())
    check(srv.lines("smtp message") == [], "no message reached OpenSMTPD")


# ---- Exim --------------------------------------------------------------------

def case_exim_max_per_connection(env):
    """200 messages on one connection to Exim with
    smtp_accept_max_per_connection = 50: each 421 to MAIL retires the
    session (QUIT) and the transactions go on fresh ones; all 200 spooled,
    exit 0, every session closed by QUIT."""
    srv = exim(env, max_mails=50)
    rc, out = env.send(srv.port, "--connections", "1", count=200)
    print(out[-3000:])
    check(rc == 0, "exit 0, got %d" % rc)
    check("sent 200 of 200" in out, "all 200 accepted")
    check('"event":"connection_retired"' in out and '"code":"421"' in out
          and "too many messages in this connection" in out,
          "Exim's 421 to MAIL reached ringmail and retired the session (the limit was exercised)")
    check(srv.spooled() == 200, "200 in Exim's spool, found %d" % srv.spooled())
    check(len(srv.lines(" <= sender@example.org")) == 200, "Exim logged 200 receptions")
    settle(lambda: len(srv.lines("closed by QUIT")) + len(srv.lines(" lost")) >=
           len(srv.lines("SMTP connection from [127.0.0.1]")))
    sessions = len(srv.lines("SMTP connection from [127.0.0.1]"))
    quits = len(srv.lines("closed by QUIT"))
    print("Exim's rejections: %s" % sorted(set(
        ln.split("]: ", 1)[-1] for ln in srv.lines("rejected MAIL"))))
    check(sessions >= 4, "at most 50 messages a session: %d sessions" % sessions)
    ends = "\n".join(ln for ln in srv.lines("") if " <= " not in ln)
    check(quits == sessions, "every session closed by QUIT (%d of %d):\n%s" %
          (quits, sessions, ends))
    check(srv.lines(" lost") == [] and srv.lines("dropped") == [],
          "no session lost or dropped")
    # Exim does not close after its 421: it answers every pipelined command
    # behind the refused MAIL. ringmail reads those replies and then QUITs;
    # closing with them unread reset the connection under Exim, which logged
    # TLS write errors.
    errors = srv.lines("TLS error") + srv.lines("reset by peer")
    check(errors == [], "no TLS write error or reset in Exim's log:\n%s" % "\n".join(errors[:5]))


def case_exim_starttls(env):
    """One message over STARTTLS with the certificate verified: Exim logs
    our EHLO name and the TLS version and cipher."""
    srv = exim(env)
    rc, out = env.send(srv.port)
    print(out[-2000:])
    check(rc == 0, "exit 0, got %d" % rc)
    check(srv.spooled() == 1, "1 in Exim's spool, found %d" % srv.spooled())
    got = srv.lines(" <= sender@example.org")
    print("\n".join(got))
    check(len(got) == 1 and "H=(client.test) [127.0.0.1]" in got[0] and
          re.search(r"P=esmtps X=TLS1\.[23]:", got[0]) is not None,
          "Exim logged the EHLO name and TLS: %r" % got)
    settle(lambda: srv.lines("closed by QUIT"))
    check(len(srv.lines("closed by QUIT")) == 1, "the session closed by QUIT:\n" + srv.tail())


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 64
    ringmail, cache, case = sys.argv[1:]
    fn = globals().get("case_" + case)
    if not fn:
        print("unknown case", case)
        return 64
    env = Env(ringmail, cache)
    try:
        fn(env)
    finally:
        env.close()
    print("%d passed, %d failed" % (0 if failures else 1, 1 if failures else 0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
