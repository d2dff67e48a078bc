"""Shared pieces of the integration tests: the sink as a subprocess, a
recording TCP proxy, and running the ringmail binary.
"""
import json
import os
import signal
import socket
import subprocess
import threading
import time


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
    """Forwards 127.0.0.1:port to the upstream port and records every byte
    the client sends, so a test can prove what crossed the wire in clear."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.streams = []  # one bytearray per connection, client -> server
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
            rec = bytearray()
            with self.lock:
                self.streams.append(rec)
            threading.Thread(target=self._pipe, args=(c, u, rec), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, None), daemon=True).start()

    @staticmethod
    def _pipe(src, dst, rec):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                if rec is not None:
                    rec.extend(b)
                dst.sendall(b)
        except OSError:
            pass
        for s in (dst, src):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def plaintext(self):
        """What each connection sent before its first TLS record: everything
        up to the first byte 0x16 that follows "STARTTLS\\r\\n" (or the
        start, for implicit TLS)."""
        out = []
        with self.lock:
            for rec in self.streams:
                data = bytes(rec)
                i = data.find(b"STARTTLS\r\n")
                if i < 0:
                    j = data.find(b"\x16\x03")
                    out.append(data if j < 0 else data[:j])
                else:
                    out.append(data[:i + len(b"STARTTLS\r\n")])
        return out

    def close(self):
        self.stopping = True
        self.sock.close()


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
