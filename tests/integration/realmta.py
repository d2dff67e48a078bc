"""Private instances of Debian 12's OpenSMTPD 6.8 and Exim 4.96 on loopback.

Debian's MTAs Conflict with each other (all Provide mail-transport-agent)
and postfix is installed for the other tests, so neither package is ever
installed: `apt-get download` fetches the .debs into <build>/mta-cache
(kept between runs), `dpkg-deb -x` unpacks them there, and the binaries run
from that tree with a configuration, spool, log and certificate of their
own. The libraries they link against that are not MTAs (libidn12 for Exim;
libevent, libdb5.3 are there already) come from tests/setup.sh.

OpenSMTPD compiles in its spool (/var/spool/smtpd), control socket
(/run/smtpd.sock), chroot (/var/lib/opensmtpd/empty) and delivery agents
(/usr/libexec/opensmtpd): it runs in a mount namespace of its own where
private directories are bound over those paths, so nothing of the host is
written and two instances do not meet. Exim takes everything from -C.

OpenSMTPD 6.8's server-side TLS does not work with OpenSSL 3 (Debian 12):
its privilege-separated key (the "pony" process signs through an RSA/ECDSA
method that forwards to the "ca" process) fails every handshake with
"missing private key" / "EVP lib" (OpenSMTPD issues #1171, #1239, fixed in
7.x by PR #1208). ringmail always requires STARTTLS, so to reach the real
OpenSMTPD session logic it goes through StartTlsShim: a proxy that offers
STARTTLS and terminates TLS itself, then passes the bytes through
unchanged to OpenSMTPD's plaintext listener, recording every reply.
"""
import os
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time

from postfix import free_port  # noqa: F401  (one free-port helper for the real servers)

PACKAGES = {
    "opensmtpd": ["opensmtpd"],
    "exim": ["exim4-daemon-light", "exim4-base"],
}
# The system users the packages' maintainer scripts would have made; the
# binaries look them up by the names compiled in.
USERS = {"opensmtpd": ["opensmtpd", "opensmtpq"], "exim": ["Debian-exim"]}


class Unavailable(Exception):
    pass


def unpacked(cache, which):
    """The root of the unpacked packages for which ("opensmtpd" or "exim"),
    downloading and unpacking them into cache the first time."""
    root = os.path.join(cache, which)
    if os.path.isdir(root):
        return root
    dl = os.path.join(cache, "download")
    os.makedirs(dl, exist_ok=True)
    tmp = root + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for pkg in PACKAGES[which]:
        debs = [f for f in os.listdir(dl) if f.startswith(pkg + "_") and f.endswith(".deb")]
        if not debs:
            r = subprocess.run(["apt-get", "download", pkg], cwd=dl, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=300)
            debs = [f for f in os.listdir(dl) if f.startswith(pkg + "_") and f.endswith(".deb")]
            if r.returncode != 0 or not debs:
                raise Unavailable("apt-get download %s failed (%d): %s" %
                                  (pkg, r.returncode, r.stdout.strip()))
        subprocess.run(["dpkg-deb", "-x", os.path.join(dl, sorted(debs)[-1]), tmp], check=True)
    os.rename(tmp, root)
    return root


def ensure_users(which):
    for u in USERS[which]:
        if subprocess.run(["getent", "passwd", u], stdout=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir",
                            "/nonexistent", "--shell", "/usr/sbin/nologin", u], check=True)


def open_path(path):
    """Daemons drop to their own users: the path down to their files must
    be searchable (test temp dirs are made 0700)."""
    while path not in ("/", ""):
        os.chmod(path, os.stat(path).st_mode | 0o711)
        path = os.path.dirname(path)


def wait_listening(port, proc, log, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("exited with %d before listening:\n%s" % (proc.returncode, log()))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("nothing listens on 127.0.0.1:%d:\n%s" % (port, log()))


def harness_wait(cond, timeout=10):
    deadline = time.time() + timeout
    while not cond() and time.time() < deadline:
        time.sleep(0.05)


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class OpenSmtpd:
    """smtpd -d in its own mount namespace. tls=True listens with
    `tls pki` (STARTTLS offered: broken under OpenSSL 3, see above);
    otherwise plaintext, for StartTlsShim. Accepted mail goes to the
    maildir self.maildir (Maildir/new holds one file per message)."""

    def __init__(self, root, workdir, port, cert=None, key=None, tls=False):
        self.root, self.port = root, port
        self.dir = os.path.join(workdir, "opensmtpd-%d" % port)
        self.maildir = os.path.join(self.dir, "Maildir")
        self.log = os.path.join(self.dir, "smtpd.log")
        for d in ("spool", "run", "empty"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        os.chmod(os.path.join(self.dir, "spool"), 0o711)  # smtpd insists
        os.makedirs(self.maildir, exist_ok=True)
        shutil.chown(self.maildir, "nobody")
        open_path(self.dir)
        conf = []
        listen = "listen on 127.0.0.1 port %d hostname localhost" % port
        if tls:
            conf += ['pki localhost cert "%s"' % cert, 'pki localhost key "%s"' % key]
            listen += " tls pki localhost"
        conf += [listen,
                 # Every recipient is nobody's (a virtual catch-all): no
                 # local user named after it is needed, and OpenSMTPD
                 # will not deliver as root.
                 'table everyone { "@" = "nobody" }',
                 'action "box" maildir "%s" virtual <everyone>' % self.maildir,
                 'match from any for any action "box"']
        self.conf = os.path.join(self.dir, "smtpd.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        self.proc = None
        self.skip = 0

    def start(self):
        binds = [(os.path.join(self.dir, "spool"), "/var/spool/smtpd"),
                 (os.path.join(self.dir, "run"), "/run"),
                 (os.path.join(self.dir, "empty"), "/var/lib/opensmtpd/empty"),
                 (os.path.join(self.root, "usr/libexec/opensmtpd"), "/usr/libexec/opensmtpd")]
        script = ["set -e", "mount --make-rprivate /"]
        for src, dst in binds:
            # The mount points, empty, where the package would have made them.
            os.makedirs(dst, exist_ok=True)
            script.append("mount --bind '%s' '%s'" % (src, dst))
        script.append("exec '%s' -d -f '%s'" %
                      (os.path.join(self.root, "usr/sbin/smtpd"), self.conf))
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen(["unshare", "-m", "sh", "-c", "\n".join(script)],
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_listening(self.port, self.proc, self.tail)
        # The probe's own session (connect, close) is not the test's.
        harness_wait(lambda: "smtp disconnected" in read_text(self.log))
        self.skip = len(read_text(self.log))

    def tail(self, n=30):
        return "".join(read_text(self.log).splitlines(True)[-n:])

    def lines(self, needle):
        """Log lines after start() containing needle."""
        return [ln for ln in read_text(self.log)[self.skip:].splitlines() if needle in ln]

    def delivered(self):
        try:
            return len(os.listdir(os.path.join(self.maildir, "new")))
        except OSError:
            return 0

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)
        if self.proc:
            self.logf.close()


EXIM_CONF = """\
primary_hostname = localhost
qualify_domain = localhost
spool_directory = {dir}/spool
log_file_path = {dir}/log/%slog
local_interfaces = 127.0.0.1
tls_certificate = {cert}
tls_privatekey = {key}
tls_advertise_hosts = *
smtp_accept_max_per_connection = {max_mails}
log_selector = +smtp_connection +tls_cipher +smtp_protocol_error +smtp_syntax_error +pid
# Received messages stay in the spool: delivery would re-exec the
# compiled-in /usr/sbin/exim4, which is not installed. The spool count
# (exim -bpc) is what was accepted.
queue_only = true
acl_smtp_rcpt = acl_rcpt
begin acl
acl_rcpt:
  accept hosts = 127.0.0.1
  deny
begin routers
discard:
  driver = redirect
  data = :blackhole:
"""


class Exim:
    def __init__(self, root, workdir, port, cert, key, max_mails=1000):
        self.exim = os.path.join(root, "usr/sbin/exim4")
        self.port = port
        self.dir = os.path.join(workdir, "exim-%d" % port)
        self.log = os.path.join(self.dir, "log", "mainlog")
        for d in ("spool", "log", "tls"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        open_path(self.dir)
        for d in ("spool", "log"):
            shutil.chown(os.path.join(self.dir, d), "Debian-exim", "Debian-exim")
        # The key where Debian-exim (the daemon's user) may read it.
        tls = []
        for p in (cert, key):
            dst = os.path.join(self.dir, "tls", os.path.basename(p))
            shutil.copyfile(p, dst)
            os.chmod(dst, 0o640)
            shutil.chown(dst, group="Debian-exim")
            tls.append(dst)
        self.conf = os.path.join(self.dir, "exim.conf")
        with open(self.conf, "w") as f:
            f.write(EXIM_CONF.format(dir=self.dir, cert=tls[0], key=tls[1], max_mails=max_mails))
        # Exim refuses a configuration that is not root's or is writable by others.
        os.chmod(self.conf, 0o644)
        self.pid = os.path.join(self.dir, "exim.pid")
        self.skip = 0

    def run(self, *args):
        return subprocess.run([self.exim, "-C", self.conf, *args], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=30)

    def start(self):
        r = self.run("-bV")
        if r.returncode != 0:
            raise RuntimeError("exim -bV failed (%d): %s" % (r.returncode, r.stdout))
        r = self.run("-bd", "-oX", str(self.port), "-oP", self.pid)
        if r.returncode != 0:
            raise RuntimeError("exim -bd failed (%d): %s\n%s" %
                               (r.returncode, r.stdout, self.tail()))
        wait_listening(self.port, None, self.tail)
        # The probe's own session (connect, close: "lost") is not the test's.
        harness_wait(lambda: "] lost" in read_text(self.log))
        self.skip = len(read_text(self.log))

    def tail(self, n=30):
        return "".join(read_text(self.log).splitlines(True)[-n:])

    def lines(self, needle):
        """Log lines after start() containing needle."""
        return [ln for ln in read_text(self.log)[self.skip:].splitlines() if needle in ln]

    def spooled(self):
        r = self.run("-bpc")
        return int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip().isdigit() else -1

    def stop(self):
        try:
            with open(self.pid) as f:
                os.kill(int(f.read().strip()), 15)
        except (OSError, ValueError):
            pass


def _read_line(sock, buf):
    while b"\r\n" not in buf:
        d = sock.recv(4096)
        if not d:
            return None, buf
        buf += d
    i = buf.index(b"\r\n") + 2
    return buf[:i], buf[i:]


def _read_reply(sock, buf):
    """A whole (multiline) reply: lines until one with a space after the code."""
    out = b""
    while True:
        line, buf = _read_line(sock, buf)
        if line is None:
            return None, buf
        out += line
        if line[3:4] != b"-":
            return out, buf


class StartTlsShim:
    """127.0.0.1:self.port offers STARTTLS in front of a plaintext SMTP
    server: the greeting is the server's, the EHLO before TLS and
    STARTTLS are answered here and TLS ends here; from then on bytes pass
    through both ways unchanged, and a close on either side is passed on.
    self.replies holds what the server sent inside TLS, each session's
    bytes in order."""

    def __init__(self, backend_port, cert, key):
        self.backend = backend_port
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.replies = []
        self.sessions = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(c,), daemon=True).start()

    def _session(self, c):
        b = socket.create_connection(("127.0.0.1", self.backend))
        rec = bytearray()
        with self.lock:
            self.replies.append(rec)
            self.sessions += 1
        try:
            tls = self._starttls(c, b)
            if tls:
                self._pump(tls, b, rec)
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()
            b.close()

    def _starttls(self, c, b):
        cbuf, bbuf = b"", b""
        greet, bbuf = _read_reply(b, bbuf)
        if greet is None:
            return None
        c.sendall(greet)
        while True:
            line, cbuf = _read_line(c, cbuf)
            if line is None:
                return None
            verb = line[:8].upper()
            if verb.startswith(b"STARTTLS"):
                c.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                return self.ctx.wrap_socket(c, server_side=True)
            if verb.startswith(b"EHLO"):
                # Answered here: the server must see only the EHLO inside
                # TLS (OpenSMTPD refuses a second one: 503 5.5.1 Already
                # identified).
                c.sendall(b"250-localhost\r\n250 STARTTLS\r\n")
                continue
            b.sendall(line)
            rep, bbuf = _read_reply(b, bbuf)
            if rep is None:
                return None
            c.sendall(rep)

    def _pump(self, tls, b, rec):
        while True:
            r = [tls] if tls.pending() else select.select([tls, b], [], [], 30)[0]
            if not r:
                return
            if tls in r:
                d = tls.recv(65536)
                if not d:
                    # The client closed (with or without QUIT): the server
                    # sees the same close.
                    b.shutdown(socket.SHUT_WR)
                    self._drain(b, rec)
                    return
                b.sendall(d)
            if b in r:
                d = b.recv(65536)
                if not d:
                    return
                rec += d
                tls.sendall(d)

    def _drain(self, b, rec):
        b.settimeout(5)
        try:
            while True:
                d = b.recv(65536)
                if not d:
                    return
                rec += d
        except OSError:
            return

    def close(self):
        self.sock.close()
