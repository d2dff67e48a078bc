#!/usr/bin/env python3
"""The main job end to end: redis-server, ringmail-sink and `ringmail run`
as real processes on loopback.

usage: test_engine.py RINGMAIL SINK CASE
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import pki  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Redis:
    def __init__(self, workdir, aof=False):
        self.dir = os.path.join(workdir, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.aof = aof
        self.start()

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                self.dir, "--save", "", "--daemonize", "no", "--loglevel", "warning"]
        if self.aof:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not harness.wait_for(lambda: self.ping(), 10):
            raise RuntimeError("redis-server did not start")

    def cli(self, *args):
        p = subprocess.run(["redis-cli", "-p", str(self.port), "--no-auth-warning"] + list(args),
                           capture_output=True, text=True, timeout=30)
        return p.stdout.strip()

    def ping(self):
        try:
            return self.cli("PING") == "PONG"
        except Exception:
            return False

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()

    def events(self):
        """Every events-stream entry as a dict."""
        out = []
        raw = subprocess.run(["redis-cli", "-p", str(self.port), "--raw", "XRANGE",
                              "ringmail:events", "-", "+"], capture_output=True, text=True,
                             timeout=60).stdout.split("\n")
        i = 0
        while i < len(raw):
            if re.match(r"^\d+-\d+$", raw[i]):
                i += 1
                fields = {}
                while i + 1 < len(raw) and not re.match(r"^\d+-\d+$", raw[i]):
                    fields[raw[i]] = raw[i + 1]
                    i += 2
                out.append(fields)
            else:
                i += 1
        return out


CONFIG = """
workers: {workers}
ehlo_name: client.test
shutdown_timeout: 20
log_level: info
redis:
  url: redis://127.0.0.1:{redis_port}
  claim_min_idle_ms: 3000
  command_timeout_ms: 2000
metrics:
  listen: 127.0.0.1:{metrics_port}
relays:
  - name: default
    host: localhost
    port: {sink_port}
    tls: starttls
    ca_file: {ca}
    connections: {connections}
    timeouts: {{command: 10, data_done: 10}}
retry:
  schedule: [1, 1, 1]
  max_age: 3600
"""


class Engine:
    def __init__(self, env, workers=2, connections=4, instance=None, log_level="info",
                 edit=None):
        self.path = os.path.join(env.dir, "ringmail-%d.yaml" % len(env.engines))
        self.metrics_port = free_port()
        text = CONFIG.format(workers=workers, redis_port=env.redis.port,
                             sink_port=env.sink.port, ca=env.pki.path("root.pem"),
                             connections=connections, metrics_port=self.metrics_port)
        text = text.replace("log_level: info", "log_level: " + log_level)
        with open(self.path, "w") as f:
            f.write(edit(text) if edit else text)
        self.log = open(os.path.join(env.dir, "engine-%d.log" % len(env.engines)), "w+")
        args = [env.ringmail, "run", "-c", self.path]
        if instance:
            args += ["--instance", instance]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        env.engines.append(self)

    def workers(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return -9
        return self.proc.returncode

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()


class Env:
    def __init__(self, ringmail, sink, sink_flags=(), aof=False):
        self.ringmail = ringmail
        self.sink_bin = sink
        self.dir = tempfile.mkdtemp(prefix="ringmail-engine-")
        self.pki = pki.make_all(os.path.join(self.dir, "pki"))
        self.redis = Redis(self.dir, aof=aof)
        self.ids = os.path.join(self.dir, "ids.txt")
        self.sink = harness.Sink(sink, self.dir, "--ids", self.ids, *sink_flags,
                                 cert=self.pki.path("good.chain.pem"),
                                 key=self.pki.path("good.key"), store=False)
        self.engines = []

    def enqueue(self, count, *extra, to="rcpt@example.net"):
        rc, out = harness.ringmail(self.ringmail, "enqueue", "-c", self.config(), "--from",
                                   "sender@example.org", "--to", to, "--count", str(count),
                                   "--size", "1024", "--quiet", *extra)
        check(rc == 0, "enqueue: %d %s" % (rc, out))
        return out

    def config(self):
        if not self.engines:
            # enqueue before any engine: a config for the same Redis
            path = os.path.join(self.dir, "enqueue.yaml")
            with open(path, "w") as f:
                f.write(CONFIG.format(workers=1, redis_port=self.redis.port,
                                      sink_port=self.sink.port, ca=self.pki.path("root.pem"),
                                      connections=1, metrics_port=free_port()))
            return path
        return self.engines[0].path

    def delivered_ids(self):
        self.sink.proc.poll()
        try:
            with open(self.ids) as f:
                return [line.strip() for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def wait_events(self, n, status="delivered", timeout=120):
        def done():
            return self.count_events(status) >= n
        harness.wait_for(done, timeout)
        return self.count_events(status)

    def count_events(self, status):
        return sum(1 for e in self.redis.events() if e.get("status") == status)

    def close(self):
        for e in self.engines:
            if e.proc.poll() is None:
                e.proc.kill()
        if self.sink.proc.poll() is None:
            self.sink.proc.kill()
        self.redis.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def sink_ids(env):
    """Message-IDs the sink accepted, after it flushed them (SIGTERM)."""
    env.sink.stop()
    return env.delivered_ids()


# ---- cases --------------------------------------------------------------------

def case_smoke(env):
    e = Engine(env, workers=2, connections=2, log_level="debug")
    env.enqueue(200)
    # And two jobs from message files (the 'data' field).
    files = []
    for i in (1, 2):
        path = os.path.join(env.dir, "file%d.eml" % i)
        with open(path, "w") as f:
            f.write("From: a@example.org\nMessage-ID: <file-%d@example.org>\n"
                    "Subject: file %d\n\nbody %d\n" % (i, i, i))
        files.append(path)
    rc, out = harness.ringmail(env.ringmail, "enqueue", "-c", e.path, "--from", "a@example.org",
                               "--to", "b@example.net", "--quiet", *files)
    check(rc == 0 and "enqueued 2 jobs" in out, "enqueue files: %d %s" % (rc, out))
    n = env.wait_events(202, timeout=30)
    check(n == 202, "202 delivered events, got %d" % n)
    rc = e.stop()
    check(rc == 0, "exit 0 after SIGTERM, got %s" % rc)
    ids = sink_ids(env)
    check(len(ids) == 202 and len(set(ids)) == 202, "sink ids %d/%d" % (len(ids), len(set(ids))))
    # Logs: one JSON object per line with a level and an event; handshakes
    # with their facts, outcomes at debug; never a message body.
    import json
    events = []
    for line in e.output().splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            check(False, "a log line that is not JSON: %r" % line)
            continue
        check("level" in obj and "event" in obj and "ts" in obj, "structured: %r" % line)
        events.append(obj["event"])
    for ev in ("master_started", "worker_ready", "tls_handshake", "connection_opened",
               "delivery", "worker_stopped"):
        check(ev in events, "a %s log line" % ev)
    check("abcdefghijklmnopqrstuvwxyz0123456789" not in e.output(), "no message body in the logs")
    check("body 1" not in e.output(), "no message body in the logs")
    check("<file-1@example.org>" in ids and "<file-2@example.org>" in ids,
          "the files' own Message-IDs arrived")
    print("\n".join(e.output().splitlines()[-8:]))


def case_exactly_once_10k(env):
    e = Engine(env, workers=2, connections=4)
    env.enqueue(10000)
    n = env.wait_events(10000, timeout=240)
    check(n == 10000, "10000 delivered events, got %d" % n)
    rc = e.stop()
    check(rc == 0, "ringmail run exits 0 after SIGTERM, got %s" % rc)
    ids = sink_ids(env)
    print("events delivered: %d, sink messages: %d, unique: %d" % (n, len(ids), len(set(ids))))
    check(len(ids) == 10000, "the sink got %d messages, want 10000" % len(ids))
    check(len(set(ids)) == len(ids), "duplicates: %d" % (len(ids) - len(set(ids))))
    check(env.redis.cli("XLEN", "ringmail:jobs") == "0", "the stream is empty")
    fields = env.redis.events()[0]
    for k in ("id", "rcpt", "status", "code", "enhanced", "reply", "relay", "attempt",
              "latency_ms", "tls_version", "cipher", "ktls"):
        check(k in fields, "events carry %s: %s" % (k, fields))


def case_sigkill_workers(env):
    # The sink answers the end of data slowly, so a kill lands mid-DATA often.
    e = Engine(env, workers=2, connections=4)
    total = 3000
    env.enqueue(total)
    kills = 0
    deadline = time.time() + 120
    harness.wait_for(lambda: env.count_events("delivered") > 50, 30)
    while kills < 20 and time.time() < deadline:
        time.sleep(0.4)
        ws = e.workers()
        if ws:
            os.kill(ws[kills % len(ws)], signal.SIGKILL)
            kills += 1
    check(kills >= 20, "killed workers %d times" % kills)
    during = env.count_events("delivered")
    check(during < total, "the kills happened under load (%d of %d done)" % (during, total))
    n = env.wait_events(total, timeout=240)
    rc = e.stop()
    check(rc == 0, "exit 0, got %s" % rc)
    ids = sink_ids(env)
    uniq = set(ids)
    check(len(uniq) == total, "every job delivered: %d of %d" % (len(uniq), total))
    dups = len(ids) - len(uniq)
    resent = len(re.findall(r'"event":"job_resent"', e.output()))
    print("kills=%d delivered=%d duplicates=%d resent_after_data_sent=%d events=%d" %
          (kills, len(uniq), dups, resent, n))
    check(dups <= resent, "every duplicate was a counted data-sent resend (%d > %d)" % (dups, resent))


def case_redis_kill9(env):
    e = Engine(env, workers=2, connections=4)
    total = 4000
    out = env.enqueue(total)
    check("enqueued %d" % total in out, out)
    harness.wait_for(lambda: env.count_events("delivered") > 200, 30)
    env.redis.kill9()
    time.sleep(1.0)
    env.redis.start()
    n = env.wait_events(total, timeout=240)
    rc = e.stop()
    check(rc == 0, "exit 0, got %s" % rc)
    ids = set(sink_ids(env))
    check(len(ids) == total, "no acknowledged job lost: %d of %d delivered" % (len(ids), total))
    print("events after restart: %d" % n)


def case_retry_then_deliver(env_factory):
    env = env_factory(("--reply", "RCPT=451@2"))
    try:
        e = Engine(env, workers=1, connections=1)
        env.enqueue(4)
        n = env.wait_events(4, timeout=60)
        check(n == 4, "all delivered in the end: %d" % n)
        check(env.count_events("deferred") >= 1, "some deferred first")
        e.stop()
    finally:
        env.close()


def case_bounce_5yz(env_factory):
    env = env_factory(("--reply", "RCPT=550"))
    try:
        e = Engine(env, workers=1, connections=1)
        env.enqueue(3)
        n = env.wait_events(3, status="bounced", timeout=60)
        check(n == 3, "3 bounced: %d" % n)
        time.sleep(2.5)
        check(env.redis.cli("ZCARD", "ringmail:retry") == "0", "never retried")
        check(env.count_events("deferred") == 0, "no deferral")
        e.stop()
    finally:
        env.close()


def case_poison_job(env):
    e = Engine(env, workers=1, connections=2)
    env.redis.cli("XADD", "ringmail:jobs", "*", "from", "a@example.org", "subject", "no to")
    env.redis.cli("XADD", "ringmail:jobs", "*", "from", "a@example.org", "to",
                  "b@example.net", "subject", "bad\r\nBcc: x@evil", "text", "x")
    env.redis.cli("XADD", "ringmail:jobs", "*", "from", "a@example.org", "to",
                  "b@example.net", "relay", "nope", "subject", "s", "text", "x")
    env.enqueue(50)
    n = env.wait_events(50, timeout=60)
    check(n == 50, "the others flowed: %d" % n)
    harness.wait_for(lambda: env.redis.cli("XLEN", "ringmail:dead") == "3", 10)
    dead = subprocess.run(["redis-cli", "-p", str(env.redis.port), "--raw", "XRANGE",
                           "ringmail:dead", "-", "+"], capture_output=True, text=True).stdout
    print(dead)
    check(env.redis.cli("XLEN", "ringmail:dead") == "3", "three dead letters")
    check("reason" in dead, "dead letters carry a reason: " + dead)
    check("relay: not a configured relay" in dead, "the unknown relay is the reason: " + dead)
    check("missing" in dead or "no 'to'" in dead or "to:" in dead, "the missing 'to' is named")
    check(env.count_events("dead") == 3, "a dead event each")
    e.stop()


def case_sigterm_drain(env):
    e = Engine(env, workers=2, connections=4)
    env.enqueue(3000)
    harness.wait_for(lambda: env.count_events("delivered") > 100, 30)
    rc = e.stop()
    check(rc == 0, "clean drain exits 0, got %s" % rc)
    pending = env.redis.cli("XPENDING", "ringmail:jobs", "ringmail")
    done_before = env.count_events("delivered")
    e2 = Engine(env, workers=2, connections=4)
    n = env.wait_events(3000, timeout=120)
    e2.stop()
    ids = sink_ids(env)
    check(len(set(ids)) == 3000, "nothing lost across the drain: %d" % len(set(ids)))
    check(len(ids) == len(set(ids)), "no duplicates after a clean drain")
    check(done_before < 3000, "SIGTERM came under load (%d of 3000 done)" % done_before)
    print("delivered before SIGTERM: %d, pending then: %s, total: %d" %
          (done_before, pending.split()[:1], n))


def case_two_instances(env):
    a = Engine(env, workers=1, connections=4, instance="host-a")
    b = Engine(env, workers=1, connections=4, instance="host-b")
    env.enqueue(4000)
    n = env.wait_events(4000, timeout=180)
    a.stop()
    b.stop()
    ids = sink_ids(env)
    check(len(ids) == 4000 and len(set(ids)) == 4000,
          "4000 delivered once across two hosts: %d/%d" % (len(ids), len(set(ids))))
    both = subprocess.run(["redis-cli", "-p", str(env.redis.port), "XINFO", "CONSUMERS",
                           "ringmail:jobs", "ringmail"], capture_output=True, text=True).stdout
    check("host-a" in both and "host-b" in both, "both instances consumed: " + both)
    print("events: %d" % n)


def case_sighup_reload(env):
    e = Engine(env, workers=2, connections=2)
    env.enqueue(2000)
    harness.wait_for(lambda: env.count_events("delivered") > 100, 30)
    with open(e.path) as f:
        text = f.read()
    with open(e.path, "w") as f:
        f.write(text.replace("connections: 2", "connections: 3"))
    e.proc.send_signal(signal.SIGHUP)
    n = env.wait_events(2000, timeout=120)
    check(n == 2000, "all delivered across the reload: %d" % n)
    rc = e.stop()
    check(rc == 0, "exit 0, got %s" % rc)
    out = e.output()
    check('"event":"config_reloaded"' in out, "the reload finished")
    check(out.count('"event":"worker_replaced"') == 2, "both workers replaced")
    ids = sink_ids(env)
    check(len(ids) == len(set(ids)) == 2000, "once each: %d/%d" % (len(ids), len(set(ids))))


def case_long_send_not_stolen(env):
    # Each end of data is answered after 7 s, longer than claim_min_idle_ms
    # (3 s here): the worker keeps its entries fresh, so the other worker's
    # XAUTOCLAIM never steals one that is still being sent.
    e = Engine(env, workers=2, connections=1)
    env.enqueue(4)
    n = env.wait_events(4, timeout=90)
    check(n == 4, "4 delivered: %d" % n)
    rc = e.stop()
    check(rc == 0, "exit 0, got %s" % rc)
    ids = sink_ids(env)
    check(len(ids) == 4 and len(set(ids)) == 4, "each once: %s" % ids)
    check('"event":"job_resent"' not in e.output(), "nothing was claimed and resent")


def http_get(port, path):
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, "", e.read().decode()


def case_metrics_scrape(env):
    e = Engine(env, workers=2, connections=2)
    env.enqueue(300)
    n = env.wait_events(300, timeout=60)
    check(n == 300, "300 delivered: %d" % n)
    harness.wait_for(lambda: http_get(e.metrics_port, "/readyz")[0] == 200, 10)
    status, ctype, body = http_get(e.metrics_port, "/metrics")
    check(status == 200 and ctype.startswith("text/plain; version=0.0.4"), "scrape %s %s" % (status, ctype))
    info = [l for l in body.splitlines() if l.startswith("ringmail_connection_info{")]
    check(len(info) == 4, "one info series per live connection (4): %d\n%s" % (len(info), "\n".join(info)))
    for line in info:
        for label in ('relay="default"', "worker=", "conn=", 'tls_version="TLSv1.3"', "cipher=",
                      "group=", 'ktls_tx="0"', 'verify="ok"'):
            check(label in line, "%s in %s" % (label, line))
    m = re.search(r'^ringmail_messages_total\{relay="default",status="delivered"\} (\d+)', body, re.M)
    check(m and int(m.group(1)) == 300, "delivered counter = 300: %s" % (m and m.group(0)))
    for name in ("ringmail_tls_handshakes_total", "ringmail_delivery_latency_seconds_bucket",
                 "ringmail_smtp_transaction_duration_seconds_count", "ringmail_worker_restarts_total",
                 "ringmail_relay_verified_connections", "ringmail_connection_peer_cert_not_after_seconds"):
        check(name in body, "%s in the scrape" % name)
    check(http_get(e.metrics_port, "/healthz")[0] == 200, "healthz")
    # The format check always runs: without promtool the test fails, as it
    # does without prometheus below (tests/setup.sh installs both).
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True)
        check(p.returncode == 0, "promtool check metrics: %s %s" % (p.stdout, p.stderr))
    else:
        check(False, "promtool is not installed (tests/setup.sh installs it): no format check")
    # The monitoring path end to end: a real Prometheus scrapes the engine.
    if shutil.which("prometheus"):
        prom_port = free_port()
        pdir = os.path.join(env.dir, "prom")
        os.makedirs(pdir)
        with open(os.path.join(pdir, "prometheus.yml"), "w") as f:
            f.write("global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: ringmail\n"
                    "    static_configs: [{targets: ['127.0.0.1:%d']}]\n" % e.metrics_port)
        prom = subprocess.Popen(["prometheus", "--config.file", os.path.join(pdir, "prometheus.yml"),
                                 "--storage.tsdb.path", os.path.join(pdir, "data"),
                                 "--web.listen-address", "127.0.0.1:%d" % prom_port],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import json
        import urllib.parse
        q = urllib.parse.quote('sum(ringmail_messages_total{status="delivered"})')
        value = [None]

        def answered():
            try:
                st, _, b = http_get(prom_port, "/api/v1/query?query=" + q)
                r = json.loads(b)["data"]["result"] if st == 200 else []
                value[0] = r[0]["value"][1] if r else None
            except Exception:
                value[0] = None
            return value[0] is not None
        harness.wait_for(answered, 60)
        prom.terminate()
        prom.wait()
        check(value[0] == "300", "PromQL through a real Prometheus gives 300: %s" % value[0])
    else:
        check(False, "prometheus is not installed (tests/setup.sh installs it)")
    rc = e.stop()
    check(rc == 0, "exit 0, got %s" % rc)
    stats = env.sink.stop()
    check(stats.get("messages") == 300, "the sink received what the counters say: %s" % stats.get("messages"))


def case_many_recipients(env):
    # 100 recipients a job, every 7th RCPT answered 451: the deferred ones
    # (beyond the first 64 too) are retried until every one is delivered.
    e = Engine(env, workers=1, connections=2)
    rcpts = []
    for i in range(100):
        rcpts += ["--to", "r%d@example.net" % i]
    rc, out = harness.ringmail(env.ringmail, "enqueue", "-c", e.path, "--from", "a@example.org",
                               "--count", "2", "--size", "512", "--quiet", *rcpts)
    check(rc == 0, "enqueue: %s" % out)
    n = env.wait_events(200, timeout=90)
    check(n == 200, "every recipient delivered in the end: %d of 200" % n)
    check(env.count_events("deferred") > 0, "some were deferred first")
    evs = env.redis.events()
    late = [x for x in evs if x.get("status") == "delivered" and x.get("rcpt") in
            ("r90@example.net", "r97@example.net")]
    check(len(late) == 4, "recipients past the 64th are delivered too: %d" % len(late))
    e.stop()


def pending_of(env, consumer):
    """The entry IDs pending to one consumer of the group."""
    out = subprocess.run(["redis-cli", "-p", str(env.redis.port), "--raw", "XPENDING",
                          "ringmail:jobs", "ringmail", "-", "+", "100000", consumer],
                         capture_output=True, text=True, timeout=30).stdout.split()
    return [x for x in out if re.match(r"^\d+-\d+$", x)]


def case_drain_hands_back(env):
    # Engine A takes every job and sends them slowly (each BDAT answered 1 s
    # late, one connection); SIGTERM A while it holds them. The jobs it never
    # started go back to the group at once: B delivers each of them within
    # 10 s of A's exit, though claim_min_idle_ms is 10 minutes (as by default).
    def edit(text):
        return text.replace("claim_min_idle_ms: 3000", "claim_min_idle_ms: 600000")
    total = 16  # one read: A's first look at the jobs takes 16
    env.enqueue(total)
    a = Engine(env, workers=1, connections=1, instance="host-a", edit=edit)
    harness.wait_for(lambda: len(pending_of(env, "host-a:worker-0")) == total, 20)
    held = pending_of(env, "host-a:worker-0")
    check(len(held) == total, "A took every job: %d of %d" % (len(held), total))
    # B has a connection per job, so the slow relay costs it one reply's
    # delay, not a queue of them: what is measured is the hand-back.
    b = Engine(env, workers=1, connections=16, instance="host-b", edit=edit)
    harness.wait_for(lambda: '"event":"worker_ready"' in b.output(), 20)
    before = env.count_events("delivered")
    rc = a.stop()
    exited = time.time()
    check(rc == 0, "A drains and exits 0, got %s" % rc)
    check(before < total, "SIGTERM came while A held jobs (%d of %d delivered)" % (before, total))
    harness.wait_for(lambda: env.count_events("delivered") >= total, 30)
    took = time.time() - exited
    n = env.count_events("delivered")
    check(n == total, "every job delivered: %d of %d" % (n, total))
    check(took <= 10, "B delivered them within 10 s of A's exit: %.1f s" % took)
    rc = b.stop()
    check(rc == 0, "B exits 0, got %s" % rc)
    ids = sink_ids(env)
    check(len(ids) == total and len(set(ids)) == total,
          "each exactly once at the sink: %d messages, %d distinct" % (len(ids), len(set(ids))))
    m = re.search(r'"event":"worker_stopped".*"handed_back":"(\d+)"', a.output())
    handed = int(m.group(1)) if m else 0
    check(handed > 0, "A handed jobs back: %s" % (m and m.group(0)))
    # What A never started had only A's own data-sent record, deleted with
    # the hand-back: B sends them as first attempts, not as resends.
    check('"event":"job_resent"' not in b.output(), "B resent nothing")
    print("held by A: %d, delivered by A before its exit: %d, handed back: %d, "
          "all delivered %.1f s after A's exit" % (len(held), total - handed, handed, took))


# A host name no lookup can succeed for and that sends nothing off this
# host: under .invalid (RFC 2606), with a label over 63 octets, which a DNS
# query cannot carry, so glibc fails it (EAI_NONAME) before it opens any
# socket (checked under strace: no socket but nscd's). A plain name.invalid
# would be asked of the resolver in /etc/resolv.conf, which may be remote.
UNRESOLVABLE = "unresolvable-" + "x" * 64 + ".invalid"


def case_unresolvable_relay(env):
    # Two relays, one whose name does not resolve: the engine keeps running,
    # the good relay delivers, the bad relay's jobs are deferred as temporary
    # with the host and the resolver's error, and /readyz names that relay.
    def edit(text):
        broken = ("  - name: broken\n    host: %s\n    port: %d\n    tls: starttls\n"
                  "    ca_file: %s\n    connections: 2\n" %
                  (UNRESOLVABLE, env.sink.port, env.pki.path("root.pem")))
        return text.replace("retry:\n", broken + "retry:\n", 1)
    e = Engine(env, workers=2, connections=2, edit=edit)
    env.enqueue(20)
    env.enqueue(5, "--relay", "broken")
    n = env.wait_events(20, timeout=60)
    check(n == 20, "the good relay delivered its 20: %d" % n)
    harness.wait_for(lambda: env.count_events("deferred") >= 5, 30)
    deferred = [x for x in env.redis.events() if x.get("status") == "deferred"]
    check(len(deferred) >= 5, "the broken relay's jobs were deferred: %d" % len(deferred))
    want = "4.4.3 relay host %s does not resolve: " % UNRESOLVABLE
    check(all(x.get("relay") == "broken" and x.get("reply", "").startswith(want) and
              x.get("enhanced") == "4.4.3" for x in deferred),
          "each deferral names the host and the resolver's error: %s" % deferred[:1])
    check(env.redis.cli("ZCARD", "ringmail:retry") != "0" or env.count_events("deferred") > 5,
          "they wait in the retry schedule")
    check(e.proc.poll() is None, "the engine is still running")
    check('"event":"worker_failed"' not in e.output(), "no worker failed")
    check('"event":"relay_unresolved"' in e.output(), "the lookup failure is logged")
    status, _, body = http_get(e.metrics_port, "/readyz")
    check(status == 503 and "relay broken" in body and "resolve" in body,
          "/readyz names the relay that is not ready: %s %s" % (status, body))
    rc = e.stop()
    check(rc == 0, "exit 0 after SIGTERM, got %s" % rc)
    ids = sink_ids(env)
    check(len(ids) == 20 and len(set(ids)) == 20, "the sink got the 20 once each: %d" % len(ids))
    print("deferred: %d, readyz: %s %s" % (len(deferred), status, body.strip()))


def main():
    ringmail, sink, case = sys.argv[1:4]
    if not shutil.which("redis-server"):
        harness.skip("redis-server is not installed (tests/setup.sh installs it)")
    fn = globals().get("case_" + case)
    if not fn:
        print("unknown case", case)
        return 64
    if case in ("retry_then_deliver", "bounce_5yz", "session_limit"):
        fn(lambda flags: Env(ringmail, sink, flags))
    else:
        # A slow reply to the end of data keeps the load going while the test
        # kills things, and makes a SIGKILL land mid-DATA often.
        flags = {"sigkill_workers": ("--delay", "BDAT=50"),
                 "sigterm_drain": ("--delay", "BDAT=50"),
                 "redis_kill9": ("--delay", "BDAT=20"),
                 "sighup_reload": ("--delay", "BDAT=20"),
                 "long_send_not_stolen": ("--delay", "BDAT=7000"),
                 "drain_hands_back": ("--delay", "BDAT=1000"),
                 "many_recipients": ("--reply", "RCPT=451@7")}.get(case, ())
        env = Env(ringmail, sink, flags, aof=(case == "redis_kill9"))
        try:
            fn(env)
        finally:
            if failures:
                for e in env.engines:
                    print("---- engine log (tail) ----")
                    print("\n".join(e.output().splitlines()[-30:]))
            env.close()
    print("%d passed, %d failed" % (0 if failures else 1, 1 if failures else 0))
    return 1 if failures else 0


def case_session_limit(env_factory):
    # The sink ends a session's transactions after 40 messages with
    # OpenSMTPD's max-mails reply (452 4.5.3 to MAIL): the engine retires
    # the connection with QUIT and sends the refused transactions on fresh
    # ones, as no delivery attempt: all delivered once, none deferred, and
    # every session the sink saw ended with QUIT (the drain's too).
    env = env_factory(("--max-mails", "40"))
    try:
        e = Engine(env, workers=1, connections=2)
        env.enqueue(300)
        n = env.wait_events(300, timeout=60)
        check(n == 300, "300 delivered events, got %d" % n)
        check(env.count_events("deferred") == 0, "a retirement is no deferral")
        rc = e.stop()
        check(rc == 0, "exit 0 after SIGTERM, got %s" % rc)
        stats = env.sink.stop()
        ids = env.delivered_ids()
        check(len(ids) == 300 and len(set(ids)) == 300, "sink ids %d/%d" % (len(ids), len(set(ids))))
        check(stats.get("connections", 0) >= 300 // 40, "fresh sessions: %s" % stats)
        check(stats.get("quits") == stats.get("connections"),
              "QUIT on every session (%s of %s)" % (stats.get("quits"), stats.get("connections")))
    finally:
        env.close()

# ---- outcomes Redis refuses, jobs over the limits (A) --------------------------

def engine_with(env, redis_extra="", url_user=None, root_extra="", **kw):
    """An Engine whose config has redis_extra under redis:, root_extra at the
    end, and (url_user) an ACL user:password in the URL."""
    global CONFIG
    saved = CONFIG
    text = CONFIG.replace("  claim_min_idle_ms: 3000\n",
                          "  claim_min_idle_ms: 3000\n" + redis_extra) + root_extra
    if url_user:
        text = text.replace("redis://127.0.0.1", "redis://%s@127.0.0.1" % url_user)
    CONFIG = text
    try:
        return Engine(env, **kw)
    finally:
        CONFIG = saved


def dead_entries(env):
    """The dead-letter stream's entries as dicts."""
    out = subprocess.run(["redis-cli", "-p", str(env.redis.port), "--raw", "XRANGE",
                          "ringmail:dead", "-", "+"], capture_output=True, text=True).stdout
    entries, cur = [], None
    lines = out.split("\n")
    i = 0
    while i < len(lines):
        if re.match(r"^\d+-\d+$", lines[i]):
            cur = {}
            entries.append(cur)
            i += 1
        elif cur is not None and i + 1 < len(lines):
            cur[lines[i]] = lines[i + 1]
            i += 2
        else:
            i += 1
    return entries


def metric(e, name):
    """A sample's value from the engine's /metrics, or None."""
    import urllib.request
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % e.metrics_port,
                                      timeout=5).read().decode()
    except Exception:
        return None
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def refused_outcomes(env, e, total, reason_has):
    """Every job sent once, dead-lettered with the Redis error, none pending,
    even after three claim_min_idle_ms (3 s) more."""
    env.enqueue(total)
    harness.wait_for(lambda: env.redis.cli("XLEN", "ringmail:dead") == str(total), 60)
    time.sleep(10)  # past claim_min_idle_ms three times: no XAUTOCLAIM resend
    dead = dead_entries(env)
    check(len(dead) == total, "%d dead letters, want %d" % (len(dead), total))
    check(all(reason_has in d.get("reason", "") and
              d["reason"].startswith("outcome write refused by Redis: ") for d in dead),
          "each dead letter's reason is the Redis error (%s): %s" % (reason_has, dead[:1]))
    check(all(d.get("outcome") == "delivered" and d.get("id") and d.get("entry") for d in dead),
          "each dead letter names its entry, id and refused outcome: %s" % dead[:1])
    pend = env.redis.cli("XPENDING", "ringmail:jobs", "ringmail").split()
    check(pend[:1] == ["0"], "nothing left pending: %s" % pend[:1])
    perm = metric(e, 'ringmail_outcome_write_failures_total{kind="permanent"}')
    check(perm == total, "ringmail_outcome_write_failures_total{kind=\"permanent\"} %s" % perm)
    check('"event":"outcome_refused"' in e.output(), "an outcome_refused log line")
    rc = e.stop()
    check(rc == 0, "exit 0 after SIGTERM, got %s" % rc)
    check('"event":"worker_drain_in_hand"' not in e.output(), "nothing in hand at the drain")
    ids = sink_ids(env)
    check(len(ids) == total and len(set(ids)) == total,
          "the sink got each message exactly once: %d messages, %d unique, want %d" %
          (len(ids), len(set(ids)), total))


def case_outcome_noperm(env):
    # An ACL user that may read the events stream but not write it (Redis 7
    # selectors: %R~); everything else it may do.
    env.redis.cli("ACL", "SETUSER", "eng", "on", ">pw", "resetkeys", "~ringmail:jobs",
                  "~ringmail:dead", "~ringmail:retry", "~ringmail:state:*",
                  "%R~ringmail:events", "+@all")
    e = engine_with(env, url_user="eng:pw", workers=1, connections=2)
    refused_outcomes(env, e, 30, "NOPERM")


def case_outcome_wrongtype(env):
    env.redis.cli("SET", "ringmail:events", "not-a-stream")
    e = engine_with(env, workers=2, connections=2)
    refused_outcomes(env, e, 30, "WRONGTYPE")


def case_outcome_stuck(env):
    # Neither the events nor the dead stream writable: the jobs stay in
    # hand (never sent again), counted and logged; at outcome_stuck_max the
    # worker takes no new work.
    env.redis.cli("ACL", "SETUSER", "eng", "on", ">pw", "resetkeys", "~ringmail:jobs",
                  "~ringmail:retry", "~ringmail:state:*", "%R~ringmail:events",
                  "%R~ringmail:dead", "+@all")
    e = engine_with(env, redis_extra="  outcome_stuck_max: 5\n", url_user="eng:pw",
                    workers=1, connections=2)
    env.enqueue(10)
    harness.wait_for(lambda: metric(e, "ringmail_outcome_stuck_jobs") == 10, 60)
    check(metric(e, "ringmail_outcome_stuck_jobs") == 10,
          "10 jobs stuck: %s" % metric(e, "ringmail_outcome_stuck_jobs"))
    env.enqueue(10)
    time.sleep(10)  # past claim_min_idle_ms three times
    check(metric(e, "ringmail_outcome_stuck_jobs") == 10, "paused: no new job taken")
    perm = metric(e, 'ringmail_outcome_write_failures_total{kind="permanent"}')
    check(perm is not None and perm >= 10, "permanent outcome failures counted: %s" % perm)
    out = e.output()
    for ev in ("outcome_refused", "outcome_stuck", "worker_paused"):
        check('"event":"%s"' % ev in out, "a %s log line" % ev)
    pend = env.redis.cli("XPENDING", "ringmail:jobs", "ringmail").split()
    check(pend[:1] and int(pend[0]) >= 10, "the stuck jobs stay pending: %s" % pend[:1])
    check(env.redis.cli("XLEN", "ringmail:dead") == "0", "no dead letter could be written")
    e.stop()
    check('"event":"worker_drain_in_hand"' in e.output(),
          "the drain says what is still in hand")
    ids = sink_ids(env)
    check(len(ids) == 10 and len(set(ids)) == 10,
          "the first 10 sent exactly once, the other 10 not taken: %d messages, %d unique" %
          (len(ids), len(set(ids))))


def case_oversize_job(env):
    # 3001 fields (the outcome scripts take 3000) and an expiry in the past:
    # dead at once, and its dead letter must not carry the fields. Another
    # over job.max_bytes.
    e = engine_with(env, root_extra="job:\n  max_bytes: 100000\n", workers=1, connections=2)
    args = ["XADD", "ringmail:jobs", "*", "from", "a@example.org", "to", "b@example.net",
            "subject", "s", "text", "x", "expires", "1", "id", "wide-1"]
    for i in range(3001 - 6):
        args += ["x-f%d" % i, "1"]
    env.redis.cli(*args)
    # The large value on stdin (-x): over the argument size limit of exec.
    subprocess.run(["redis-cli", "-p", str(env.redis.port), "-x", "XADD", "ringmail:jobs", "*",
                    "from", "a@example.org", "to", "b@example.net", "subject", "s", "id",
                    "big-1", "text"], input="y" * 150000, capture_output=True, text=True,
                   timeout=30)
    env.enqueue(5)
    n = env.wait_events(5, timeout=60)
    check(n == 5, "the others flowed: %d" % n)
    harness.wait_for(lambda: env.redis.cli("XLEN", "ringmail:dead") == "2", 20)
    dead = {d.get("id"): d for d in dead_entries(env)}
    wide, big = dead.get("wide-1", {}), dead.get("big-1", {})
    check(wide.get("reason") == "too many fields: 3001 (job.max_fields is 2000)",
          "the field limit is the reason: %s" % wide.get("reason"))
    check(wide.get("fields") == "3001" and len(wide) < 10,
          "a bounded dead letter: %d fields" % len(wide))
    check(big.get("reason", "").startswith("too large: ") and
          "(job.max_bytes is 100000)" in big.get("reason", ""),
          "the byte limit is the reason: %s" % big.get("reason"))
    check("text" not in big, "the dead letter does not carry the large fields")
    pend = env.redis.cli("XPENDING", "ringmail:jobs", "ringmail").split()
    check(pend[:1] == ["0"], "nothing pending: %s" % pend[:1])
    rc = e.stop()
    check(rc == 0, "exit 0, got %s" % rc)
    check('"event":"worker_drain_in_hand"' not in e.output(), "nothing left in hand at the drain")
    check(len(sink_ids(env)) == 5, "only the five good jobs were sent")



if __name__ == "__main__":
    sys.exit(main())
