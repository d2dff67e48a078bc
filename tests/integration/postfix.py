"""A private Postfix instance on loopback, for tests and benchmarks.

Debian's `postfix` package is used as it is shipped; only the configuration
is ours. Everything lives under one directory (config, queue, data, log), the
system instance and /etc/postfix are never touched, and `postfix -c DIR`
starts and stops it. Needs root (Postfix's master drops to the `postfix`
user itself).

    pf = Postfix(workdir, port, server_chain=(key, chain), overrides={...})
    pf.start(); ...; pf.stop()

As a server it listens on 127.0.0.1:port with smtpd; as a client (relayhost
in overrides) it relays whatever it accepts there.
"""
import os
import shutil
import socket
import subprocess
import time

from harness import skip

POSTFIX = "/usr/sbin/postfix"

# The daemons Postfix needs, none chrooted (a chroot would need copies of
# the libraries and certificates inside the queue directory).
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
tlsproxy  unix  -       -       n       -       0       tlsproxy
"""


def free_port():
    """A loopback port nothing listens on now (Postfix cannot be given 0)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def available():
    """Why a private Postfix cannot run here, or None when it can."""
    if not os.path.exists(POSTFIX):
        return "Debian's postfix package is not installed (tests/setup.sh installs it)"
    if os.geteuid() != 0:
        return "a private Postfix instance must be started as root"
    return None


def require():
    """None when a private Postfix can run here. Otherwise the test ends
    through tests/skip.py: skipped (77), or failed under CI=true (CI installs
    postfix and runs as root)."""
    why = available()
    if why:
        skip(why)
    return None


def count_in_log(pf, needle, want, timeout=10):
    """Lines of the instance's maillog containing needle, waiting up to
    timeout seconds for want of them (Postfix logs asynchronously)."""
    deadline = time.time() + timeout
    while True:
        try:
            with open(pf.log, errors="replace") as f:
                n = sum(1 for line in f if needle in line)
        except OSError:
            n = 0
        if n >= want or time.time() >= deadline:
            return n
        time.sleep(0.2)


class Postfix:
    def __init__(self, workdir, port, server_chain=None, overrides=None):
        self.dir = os.path.join(workdir, "postfix-%d" % port)
        self.port = port
        self.conf = os.path.join(self.dir, "conf")
        self.log = os.path.join(self.dir, "maillog")
        for d in ("conf", "queue", "data", "tls"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        # Postfix's daemons run as the postfix user: the path down to the
        # queue must be searchable (test temp dirs are made 0700).
        path = self.dir
        while path not in ("/", ""):
            os.chmod(path, os.stat(path).st_mode | 0o711)
            path = os.path.dirname(path)
        shutil.chown(os.path.join(self.dir, "data"), "postfix")
        main = {
            "compatibility_level": "3.6",
            "myhostname": "localhost",
            "mydomain": "localdomain",
            "myorigin": "localhost",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "alias_maps": "",
            "alias_database": "",
            "queue_directory": os.path.join(self.dir, "queue"),
            "data_directory": os.path.join(self.dir, "data"),
            "maillog_file": self.log,
            "maillog_file_prefixes": self.dir,
        }
        if server_chain:
            key, chain = (self._copy(p) for p in server_chain)
            main["smtpd_tls_chain_files"] = "%s, %s" % (key, chain)
            main["smtpd_tls_security_level"] = "encrypt"
            main["smtpd_tls_loglevel"] = "1"
        main.update(overrides or {})
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            for k, v in main.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=port))

    def _copy(self, path):
        """Certificates and keys go into the instance's own directory, so
        their permissions are ours to set."""
        dst = os.path.join(self.dir, "tls", os.path.basename(path))
        shutil.copyfile(path, dst)
        os.chmod(dst, 0o640)
        shutil.chown(dst, group="postfix")
        return dst

    def copy_file(self, path):
        """Put a file (a CA bundle, say) where the postfix user can read it."""
        return self._copy(path)

    def _postfix(self, *args):
        # postfix(1) reports to syslog only, unless stderr is a terminal;
        # the reason for a failure is in the instance's maillog.
        return subprocess.run([POSTFIX, "-c", self.conf, *args], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=60)

    def tail_log(self, n=20):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no maillog)"

    def start(self, timeout=20):
        r = self._postfix("start")
        if r.returncode != 0:
            raise RuntimeError("postfix -c %s start failed (%d): %s\n%s" %
                               (self.conf, r.returncode, r.stdout, self.tail_log()))
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("postfix did not listen on 127.0.0.1:%d\n%s" %
                           (self.port, self.tail_log()))

    def stop(self):
        r = self._postfix("stop")
        if r.returncode != 0:
            # The master's pid file, so nothing outlives the test.
            try:
                with open(os.path.join(self.dir, "queue", "pid", "master.pid")) as f:
                    os.kill(int(f.read().strip()), 9)
            except (OSError, ValueError):
                pass
