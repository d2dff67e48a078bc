"""Peer senders against the same sink, the same messages (same body, one
Message-ID each), STARTTLS required with the certificate verified against
the same test CA, persistent connections where the peer has them, pinned
to the core ringmail had:

- postfix: a private instance (tests/integration/postfix.py: its own
  config, queue and log directories; /etc/postfix and the system instance
  are never touched) relaying to the sink: smtp_tls_security_level =
  secure, smtp_tls_connection_reuse = yes (tlsproxy), concurrency = the
  connection count. Drain like ringmail's: the messages are injected into
  its smtpd with delivery deferred (defer_transports = smtp), then
  released (postqueue -f) and timed until the queue is empty.
- nodemailer: pool: true, maxConnections, requireTLS, the CA given; and
  nodemailer-nodelay, the same with TCP_NODELAY forced on its sockets
  (nodelay.js), since stock nodemailer's small writes wait for delayed ACKs.
- smtplib: one persistent connection per thread, starttls with a verifying
  context.

nodemailer and smtplib send until a deadline; the sink must then hold
exactly what the sender counted as delivered (no duplicates). Postfix is
given a count from a short probe so that its drain takes about as long.
"""
import json
import os
import re
import shutil
import smtplib
import subprocess
import sys
import threading
import time

import common
import runs
import services

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(services.ROOT, "tests", "integration"))
import postfix as pfmod  # noqa: E402  (tests/integration/postfix.py)

_instances = []


def run(peer, ctx, size, seconds):
    if peer == "smtplib":
        return _client(ctx, "smtplib", size, seconds)
    if peer in ("nodemailer", "nodemailer-nodelay"):
        return _client(ctx, peer, size, seconds)
    if peer == "postfix":
        return _postfix(ctx, size, seconds)
    return {"ok": False, "problems": ["unknown peer %s" % peer]}


def cleanup(ctx):
    while _instances:
        try:
            _instances.pop().stop()
        except Exception:  # noqa: BLE001
            pass


def node_modules(ctx):
    return os.path.join(ctx.build, "bench-cache", "node", "node_modules")


def _client(ctx, peer, size, seconds):
    run_name = "%s%d" % (peer[:4] + ("nd" if peer.endswith("-nodelay") else ""), size)
    sink = services.Sink(ctx.sink_bin, ctx.work, run_name, ctx.pki, ctx.sink_cpu)
    env = dict(os.environ)
    if peer == "smtplib":
        cmd = [sys.executable, os.path.join(HERE, "peer_smtplib.py"), "--port", str(sink.port),
               "--ca", ctx.pki["ca"], "--threads", str(ctx.connections), "--seconds",
               str(seconds), "--size", str(size), "--run", run_name + ctx.run_id]
        version = "Python %s smtplib" % sys.version.split()[0]
    else:
        node = shutil.which("node") or shutil.which("nodejs")
        nm = node_modules(ctx)
        if not node or not os.path.isdir(os.path.join(nm, "nodemailer")):
            sink.stop()
            return {"ok": False, "problems": ["node or nodemailer missing (bench/run.sh installs "
                                              "them; nodemailer under %s)" % nm]}
        body = os.path.join(ctx.work, run_name + ".body")
        with open(body, "wb") as f:
            f.write(common.message_body(size))
        env["NODE_PATH"] = nm
        pre = ["-r", os.path.join(HERE, "nodelay.js")] if peer.endswith("-nodelay") else []
        cmd = [node] + pre + [os.path.join(HERE, "peer_nodemailer.js"), "--port", str(sink.port), "--ca",
               ctx.pki["ca"], "--connections", str(ctx.connections), "--seconds", str(seconds),
               "--body", body, "--run", run_name + ctx.run_id]
        try:
            with open(os.path.join(nm, "nodemailer", "package.json")) as f:
                version = "nodemailer %s, node %s%s" % (json.load(f)["version"], subprocess.run(
                    [node, "--version"], capture_output=True, text=True).stdout.strip(),
                    ", TCP_NODELAY forced" if pre else "")
        except (OSError, ValueError, KeyError):
            version = "nodemailer"
    meter = common.CoreMeter()
    s0, r0 = sink.cpu(), ctx.redis.cpu()
    ctx.progress.update("sending for %.0f s" % seconds)
    try:
        with open(os.path.join(ctx.work, run_name + ".out"), "w") as out:
            proc = subprocess.Popen(services.taskset(ctx.engine_cpu) + cmd, stdout=out,
                                    stderr=subprocess.STDOUT, env=env)
            _, cpu, hwm = runs.wait_measured(proc)
        cores = meter.busy()
        s1, r1 = sink.cpu(), ctx.redis.cpu()
    finally:
        stats = sink.stop()
    with open(os.path.join(ctx.work, run_name + ".out"), errors="replace") as f:
        text = f.read()
    rep = None
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                rep = json.loads(line)
            except ValueError:
                pass
    res = {"sender": peer, "mode": "peer", "size": size, "connections": ctx.connections,
           "peer_version": version}
    bad = []
    if proc.returncode != 0:
        bad.append("%s exited %d: %s" % (peer, proc.returncode, text.strip()[-300:]))
    if not rep:
        bad.append("no report from the %s sender" % peer)
        rep = {"sent": 0, "errors": 0, "seconds": 0}
    if rep.get("errors"):
        bad.append("%d send errors, first: %s" % (rep["errors"], rep.get("first_error")))
    if not rep.get("sent"):
        bad.append("nothing sent")
    bad += runs.sink_check(stats, rep["sent"])
    secs = max(rep.get("seconds") or 0.001, 0.001)
    n = max(rep["sent"], 1)
    res.update({
        "ok": not bad, "problems": bad, "messages": rep["sent"], "delivered":
        stats.get("messages") if stats else 0, "seconds": round(secs, 3),
        "msg_s": round(rep["sent"] / secs, 1), "payload_mb_s": round(rep["sent"] * size / secs /
                                                                    1e6, 2),
        "cpu_s_per_1k": round(cpu / n * 1000, 4), "peak_rss_kib": hwm,
        "ktls": "off", "tls": "userspace (OpenSSL in the peer)",
        "engine_core_busy_pct": round(100 * cores.get(ctx.engine_cpu, (0, 0))[1], 1),
    })
    runs.sink_figures(res, stats, s1 - s0, cores, ctx.sink_cpu, secs, r1 - r0,
                      ctx.redis_cpu == ctx.sink_cpu)
    runs.sender_other(res, cores, ctx.engine_cpu, cpu)
    return res


# ---- Postfix ---------------------------------------------------------------------

QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")


def queue_files(pf):
    n = {}
    for q in QUEUES:
        c = 0
        for _, _, files in os.walk(os.path.join(pf.dir, "queue", q)):
            c += len(files)
        n[q] = c
    return n


def inject(port, run, start, count, body, threads=4):
    """count messages into Postfix's smtpd (plain SMTP on loopback: the
    submission leg is not what is measured)."""
    errors = []
    per = [list(range(start + k, start + count, threads)) for k in range(threads)]

    def worker(ids):
        try:
            s = smtplib.SMTP("127.0.0.1", port, local_hostname="bench.localhost", timeout=60)
            for i in ids:
                s.sendmail("bench@example.org", ["rcpt@example.net"], common.message(run, i, body))
            s.quit()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    ts = [threading.Thread(target=worker, args=(ids,)) for ids in per]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return errors


def _pf_master_pid(pf):
    try:
        with open(os.path.join(pf.dir, "queue", "pid", "master.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _postconf(pf, *settings):
    subprocess.run(["postconf", "-c", pf.conf, "-e"] + list(settings), check=True,
                   capture_output=True)


def _postfix_drain(ctx, pf, sink, run_name, start, count, body, progress):
    """Inject count messages with delivery deferred, release them, time the
    drain. Returns the measurements (or raises runs.RunFailed)."""
    _postconf(pf, "defer_transports = smtp")
    r = pf._postfix("reload")
    if r.returncode != 0:
        raise runs.RunFailed("postfix reload: " + r.stdout)
    time.sleep(0.5)
    progress.update("injecting %d messages into postfix" % count)
    errs = inject(pf.port, run_name + ctx.run_id, start, count, body)
    if errs:
        raise runs.RunFailed("injection into postfix failed: %s" % errs[0])
    deadline = time.time() + 120
    while True:  # every message parked in the deferred queue
        q = queue_files(pf)
        if q["deferred"] >= count and q["incoming"] + q["active"] + q["maildrop"] == 0:
            break
        if time.time() > deadline:
            raise runs.RunFailed("postfix did not park the injected messages: %s" % q)
        progress.update("parking %s" % q)
        time.sleep(0.1)
    _postconf(pf, "defer_transports =")
    r = pf._postfix("reload")
    if r.returncode != 0:
        raise runs.RunFailed("postfix reload: " + r.stdout)
    time.sleep(1.0)  # the new qmgr is up
    master = _pf_master_pid(pf)
    meter = common.CoreMeter()
    c0, s0, r0 = common.tree_cpu(master), sink.cpu(), ctx.redis.cpu()
    t0 = time.time()
    subprocess.run(["postqueue", "-c", pf.conf, "-f"], check=True, capture_output=True)
    last, last_change = None, time.time()
    while True:
        q = queue_files(pf)
        left = sum(q.values())
        if left == 0:
            break
        now = time.time()
        if left != last:
            last, last_change = left, now
        if now - last_change > 60:
            raise runs.RunFailed("postfix stalled with %s; maillog: %s" % (q, pf.tail_log(5)))
        progress.update("postfix: %d of %d left" % (left, count))
        time.sleep(0.05)
    t1 = time.time()
    return {"seconds": t1 - t0, "cpu": common.tree_cpu(master) - c0,
            "hwm": common.tree_hwm_kib(master), "pss": common.tree_pss_kib(master),
            "cores": meter.busy(),
            "sink_cpu": sink.cpu() - s0, "redis_cpu": ctx.redis.cpu() - r0}


def _postfix(ctx, size, seconds):
    why = pfmod.available()
    if why:
        return {"ok": False, "problems": [why]}
    run_name = "pf%d" % size
    body = common.message_body(size)
    sink = services.Sink(ctx.sink_bin, ctx.work, run_name, ctx.pki, ctx.sink_cpu)
    port = common.free_port()
    c = ctx.connections
    pf = pfmod.Postfix(ctx.work, port, overrides={
        "relayhost": "[localhost]:%d" % sink.port,
        "smtp_host_lookup": "native",
        "smtp_tls_security_level": "secure",
        "smtp_tls_connection_reuse": "yes",
        "smtp_tls_loglevel": "1",
        "smtp_helo_name": "bench.localhost",
        "smtp_destination_concurrency_limit": str(c),
        "default_destination_concurrency_limit": str(c),
        "initial_destination_concurrency": str(c),
        "default_process_limit": str(c + 50),
        "in_flow_delay": "0s",
        "message_size_limit": "0",
        "smtpd_client_connection_count_limit": "0",
        "smtpd_client_message_rate_limit": "0",
    })
    ca = pf.copy_file(ctx.pki["ca"])
    _postconf(pf, "smtp_tls_CAfile = " + ca)
    res = {"sender": "postfix", "mode": "peer", "size": size, "connections": c,
           "peer_version": "Postfix " + subprocess.run(
               ["postconf", "-d", "-h", "mail_version"], capture_output=True,
               text=True).stdout.strip()}
    _instances.append(pf)
    # the whole instance (master and every daemon it forks) on the sender's core
    r = subprocess.run(services.taskset(ctx.engine_cpu) + [pfmod.POSTFIX, "-c", pf.conf, "start"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    if r.returncode != 0 or not common.wait_port(port, 20):
        cleanup(ctx)
        sink.stop()
        raise runs.RunFailed("postfix start: %s %s" % (r.stdout, pf.tail_log()))
    try:
        # a short probe sizes the measured run to about `seconds`
        probe_n = {2048: 300, 102400: 200}.get(size, 60)
        if getattr(ctx, "smoke", False):
            probe_n = 50
        pr = _postfix_drain(ctx, pf, sink, run_name, 0, probe_n, body, ctx.progress)
        rate = probe_n / max(pr["seconds"], 0.01)
        count = int(max(probe_n, min(100000, rate * seconds)))
        m = _postfix_drain(ctx, pf, sink, run_name, probe_n, count, body, ctx.progress)
    finally:
        cleanup(ctx)
        stats = sink.stop()
    log = ""
    try:
        with open(pf.log, errors="replace") as f:
            log = f.read()
    except OSError:
        pass
    sent = len(re.findall(r"status=sent", log))
    verified = len(re.findall(r"Verified TLS connection established to localhost", log))
    untrusted = len(re.findall(r"(Untrusted|Anonymous|Trusted) TLS connection established", log))
    total = probe_n + count
    bad = runs.sink_check(stats, total)
    if sent != total:
        bad.append("postfix logged %d status=sent of %d" % (sent, total))
    if verified == 0 or untrusted:
        bad.append("postfix TLS: %d verified, %d unverified connections" % (verified, untrusted))
    secs = max(m["seconds"], 0.001)
    res.update({
        "ok": not bad, "problems": bad, "messages": count, "probe_messages": probe_n,
        "delivered": stats.get("messages") if stats else 0, "seconds": round(secs, 3),
        "msg_s": round(count / secs, 1), "payload_mb_s": round(count * size / secs / 1e6, 2),
        "cpu_s_per_1k": round(m["cpu"] / count * 1000, 4), "peak_rss_kib": m["hwm"],
        "pss_kib_end": m["pss"],
        "tls_connections_verified": verified, "ktls": "off", "tls": "userspace (OpenSSL in the peer)",
        "engine_core_busy_pct": round(100 * m["cores"].get(ctx.engine_cpu, (0, 0))[1], 1),
    })
    runs.sender_other(res, m["cores"], ctx.engine_cpu, m["cpu"])
    runs.sink_figures(res, stats, m["sink_cpu"], m["cores"], ctx.sink_cpu, secs,
                      m["redis_cpu"], ctx.redis_cpu == ctx.sink_cpu)
    return res
