"""The servers a benchmark run needs, each pinned to its core: a private
redis-server, ringmail-sink with a test PKI, and `ringmail run` with its
configuration.
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import common

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import pki  # noqa: E402  (tests/integration/pki.py: the PKI the tests use)


def taskset(cpu):
    """Pin to one core; None: every core (the harness itself is pinned,
    and children would inherit that)."""
    if cpu is None:
        return ["taskset", "-c", "0-%d" % (os.cpu_count() - 1)]
    return ["taskset", "-c", str(cpu)]


def make_pki(work):
    """Root CA, intermediate, and a leaf for localhost / 127.0.0.1: the
    sink serves leaf+intermediate, clients trust the root only, so chain
    building and host-name checks run as they would in production."""
    p = pki.Pki(os.path.join(work, "pki"))
    p.root_ca("root")
    p.sign("inter", "root", "bench intermediate", ext="v3_ca", days=30)
    p.sign("sink", "inter", "localhost", ["DNS:localhost", "IP:127.0.0.1"], days=30)
    return {"ca": p.path("root.pem"), "cert": p.chain("sink", "sink", "inter"),
            "key": p.path("sink.key")}


def stop(proc, sig=signal.SIGTERM, timeout=30):
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc else None
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


class Redis:
    def __init__(self, work, cpu):
        self.dir = os.path.join(work, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.port = common.free_port()
        self.log = open(os.path.join(self.dir, "redis.log"), "w")
        self.proc = subprocess.Popen(
            taskset(cpu) + ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                            "--dir", self.dir, "--save", "", "--appendonly", "no",
                            "--daemonize", "no", "--loglevel", "warning"],
            stdout=self.log, stderr=subprocess.STDOUT)
        if not common.wait_port(self.port):
            raise RuntimeError("redis-server did not start (see %s)" % self.log.name)
        self.pid = self.proc.pid

    def client(self):
        return common.Resp(self.port)

    def cpu(self):
        st = common.proc_stat(self.pid)
        return st[0] + st[1] if st else 0.0

    def flush(self):
        c = self.client()
        c.call("FLUSHALL")
        c.call("CONFIG", "RESETSTAT")
        c.close()

    def commandstats(self):
        """{command: (calls, usec)} since the last flush (INFO commandstats)."""
        c = self.client()
        text = c.call("INFO", "commandstats")
        c.close()
        out = {}
        for line in (text.decode() if isinstance(text, bytes) else text or "").splitlines():
            if not line.startswith("cmdstat_"):
                continue
            name, _, rest = line[len("cmdstat_"):].partition(":")
            kv = dict(x.split("=", 1) for x in rest.split(",") if "=" in x)
            out[name] = (int(kv.get("calls", 0)), int(kv.get("usec", 0)))
        return out

    def close(self):
        stop(self.proc)
        self.log.close()


class Sink:
    """ringmail-sink; stats JSON on stop."""

    def __init__(self, binary, work, name, pki_files, cpu, extra=()):
        self.stats_path = os.path.join(work, name + ".sink.json")
        self.err = open(os.path.join(work, name + ".sink.err"), "w")
        args = taskset(cpu) + [binary, "--listen", "127.0.0.1:0", "--cert", pki_files["cert"],
                               "--key", pki_files["key"], "--stats", self.stats_path,
                               "--hostname", "localhost"] + list(extra)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.err, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            self.proc.kill()
            raise RuntimeError("ringmail-sink did not start: %r" % line)
        self.port = int(line.split()[1].rsplit(":", 1)[1])
        self.pid = self.proc.pid

    def cpu(self):
        st = common.proc_stat(self.pid)
        return st[0] + st[1] if st else 0.0

    def stop(self):
        stop(self.proc, timeout=60)
        self.proc.stdout.close()
        self.err.close()
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None


ENGINE_YAML = """\
workers: 1
ehlo_name: bench.localhost
log_level: {log_level}
shutdown_timeout: 10
redis:
  url: redis://127.0.0.1:{redis_port}
  events_maxlen: 0
metrics:
  listen: 127.0.0.1:{metrics_port}
  per_connection: {per_connection}
relays:
  - name: sink
    host: localhost
    port: {sink_port}
    tls: starttls
    ca_file: {ca}
    connections: {connections}
retry:
  schedule: [5, 30, 300]
"""


class Engine:
    """`ringmail run` with one worker, master and worker pinned to one core."""

    def __init__(self, ringmail, work, name, redis, sink, pki_files, cpu, connections,
                 wrap=(), log_level="warn", per_connection=True):
        self.metrics_port = common.free_port()
        self.config = os.path.join(work, name + ".yaml")
        with open(self.config, "w") as f:
            f.write(ENGINE_YAML.format(log_level=log_level, redis_port=redis.port,
                                       metrics_port=self.metrics_port, sink_port=sink.port,
                                       ca=pki_files["ca"], connections=connections,
                                       per_connection="true" if per_connection else "false"))
        self.log_path = os.path.join(work, name + ".engine.log")
        self.log = open(self.log_path, "w")
        self.t_start = time.time()
        self.proc = subprocess.Popen(list(wrap) + taskset(cpu) + [ringmail, "run", "-c",
                                                                   self.config],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.wrapped = bool(wrap)

    def master_pid(self):
        """The ringmail master (under perf, the child of perf)."""
        if not self.wrapped:
            return self.proc.pid
        for _ in range(100):
            kids = common.children(self.proc.pid)
            if kids:
                return kids[0]
            time.sleep(0.01)
        return self.proc.pid

    def pids(self):
        return common.tree(self.master_pid())

    def cpu(self):
        return common.tree_cpu(self.master_pid())

    def alive(self):
        return self.proc.poll() is None

    def metrics(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port,
                                        timeout=5) as r:
                return r.read().decode()
        except OSError:
            return ""

    def gauge(self, text, name):
        total = 0.0
        found = False
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
                found = True
        return total if found else None

    def stop(self):
        if self.wrapped and self.proc.poll() is None:
            # perf/strace write their counts once ringmail itself has exited
            try:
                os.kill(self.master_pid(), signal.SIGTERM)
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                pass
        rc = stop(self.proc, timeout=60)
        self.log.close()
        return rc

    def log_tail(self, n=5):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""
