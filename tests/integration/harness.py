"""Shared pieces of the integration tests: the sink as a subprocess, a
recording TCP proxy, and running the ringmail binary.
"""
import json
import os
import signal
import socket
import subprocess
import threading
import sys
import time

import client_wire

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from skip import missing, skip  # noqa: E402,F401  (tests/skip.py, for every test here)


class Sink:
    """ringmail-sink on 127.0.0.1, port chosen by the kernel."""

    def __init__(self, binary, workdir, *flags, cert=None, key=None, store=True):
        self.stats_path = os.path.join(workdir, "sink-stats-%d.json" % id(self))
        self.store = os.path.join(workdir, "store-%d" % id(self)) if store else None
        args = [binary, "--listen", "127.0.0.1:0", "--stats", self.stats_path]
        if cert:
            args += ["--cert", cert, "--key", key]
        if self.store:
            os.makedirs(self.store, exist_ok=True)
            args += ["--store", self.store]
        args += list(flags)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            self.proc.kill()
            raise RuntimeError("sink did not start: %r %s" % (line, self.proc.stderr.read()))
        self.port = int(line.split()[1].rsplit(":", 1)[1])

    def stop(self):
        """SIGTERM, then the stats the sink wrote."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with open(self.stats_path) as f:
            return json.load(f)

    def messages(self):
        """Stored messages, in arrival order: list of (eml bytes, env text)."""
        out = []
        for name in sorted(os.listdir(self.store)):
            if name.endswith(".eml"):
                base = os.path.join(self.store, name[:-4])
                with open(base + ".eml", "rb") as f:
                    eml = f.read()
                env = ""
                if os.path.exists(base + ".env"):
                    with open(base + ".env") as f:
                        env = f.read()
                out.append((eml, env))
        return out


class RecordingProxy:
    """Forwards 127.0.0.1:port to the upstream port and records, for the
    whole life of each connection, every octet either side sends, in the
    order the proxy saw them, so a test can prove what crossed the wire in
    clear (violations(): the rules are client_wire's). implicit: the client
    speaks TLS from its first octet (port 465 style)."""

    def __init__(self, upstream_port, implicit=False):
        self.upstream = upstream_port
        self.implicit = implicit
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.streams = []  # one bytearray per connection, client -> server
        self.logs = []     # per connection: [(who, bytes)], who "c" or "s"
        self.readers = []  # per connection: the thread reading the client
        self.socks = []
        self.lock = threading.Lock()
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream))
            rec, log = bytearray(), []
            reader = threading.Thread(target=self._pipe, args=(c, u, "c", rec, log), daemon=True)
            with self.lock:
                self.streams.append(rec)
                self.logs.append(log)
                # Started before wait_ended() can see it: joining a thread
                # not yet started raises.
                reader.start()
                self.readers.append(reader)
                self.socks += [c, u]
            threading.Thread(target=self._pipe, args=(u, c, "s", None, log), daemon=True).start()

    def _pipe(self, src, dst, who, rec, log):
        forward = True
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                # Logged before it is forwarded: the other side's answer
                # to these octets is always logged after them.
                with self.lock:
                    log.append((who, b))
                    if rec is not None:
                        rec.extend(b)
                if forward:
                    try:
                        dst.sendall(b)
                    except OSError:
                        forward = False  # the peer is gone; keep recording the sender
        except OSError:
            pass
        # Half-close: the other direction goes on, so whatever the client
        # sends after the server has closed is still recorded and checked.
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def wait_ended(self, timeout=10.0):
        """True once every client has closed its side (its stream is whole)."""
        end = time.time() + timeout
        with self.lock:
            readers = list(self.readers)
        for t in readers:
            t.join(max(0.0, end - time.time()))
        return not any(t.is_alive() for t in readers)

    def _checked(self, timeout):
        ended = self.wait_ended(timeout)
        with self.lock:
            logs = [list(log) for log in self.logs]
            alive = [t.is_alive() for t in self.readers]
        out = []
        for i, log in enumerate(logs):
            clear, bad = client_wire.check(log, self.implicit)
            if not ended and alive[i]:
                bad = bad + ["connection %d: the client had not closed after %.0f s, so its "
                             "stream was not checked to the end" % (i, timeout)]
            out.append((clear, bad))
        return out

    def plaintext(self, timeout=10.0):
        """What each connection sent before its TLS began (all of it where
        TLS never began)."""
        return [clear for clear, _ in self._checked(timeout)]

    def violations(self, timeout=10.0):
        """Every breach of client_wire's rules, "connection N: what"; empty
        when each client's whole stream kept to them."""
        return ["connection %d: %s" % (i, v)
                for i, (_, bad) in enumerate(self._checked(timeout)) for v in bad]

    def close(self):
        self.stopping = True
        self.sock.close()
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def run(argv, timeout=300):
    """Run a program; returns (exit status, stdout + stderr)."""
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout


def ringmail(binary, *args, timeout=300):
    """Run the ringmail binary; returns (exit status, stdout + stderr)."""
    return run([binary] + list(args), timeout=timeout)


def normalise(msg):
    """The wire form a message must arrive in: CRLF line ends, a final CRLF."""
    out = msg.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


def wait_for(cond, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def run_case(doc, scope, env_class, failures):
    """The main() of a test file of cases: argv is BINARY SINK CASE; runs
    scope["case_" + CASE](env) with env_class(BINARY, SINK), closes the env,
    and returns the exit status (0, 1 when failures were recorded, 64 for a
    usage error)."""
    import sys
    if len(sys.argv) != 4:
        print(doc)
        return 64
    ringmail, sink, case = sys.argv[1:]
    fn = scope.get("case_" + case)
    if not fn:
        print("unknown case", case)
        return 64
    env = env_class(ringmail, sink)
    try:
        fn(env)
    finally:
        env.close()
    print("%d passed, %d failed" % (0 if failures else 1, 1 if failures else 0))
    return 1 if failures else 0
