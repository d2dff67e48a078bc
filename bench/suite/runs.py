"""ringmail's own runs: the main job draining a preloaded queue, the main
job under an open-loop offered rate, the transport alone (`ringmail send`),
idle persistent connections, and the crypto limit (`openssl speed`).

Every run gets a fresh sink (its statistics are the delivery check) and,
for the main job, a flushed Redis and a fresh engine.
"""
import os
import re
import subprocess
import time

import common
import services

STREAM, EVENTS = "ringmail:jobs", "ringmail:events"
FROM, TO = "bench@example.org", "rcpt@example.net"


class RunFailed(Exception):
    pass


def sink_check(stats, expected, unique_ids=True):
    """The sink's statistics against what a run should have delivered:
    a list of problems (empty: the counts are right)."""
    if stats is None:
        return ["the sink wrote no statistics"]
    bad = []
    if stats.get("messages") != expected:
        bad.append("sink received %s messages, expected %d" % (stats.get("messages"), expected))
    if unique_ids and stats.get("duplicates_by_message_id"):
        bad.append("%d duplicate Message-IDs at the sink" % stats["duplicates_by_message_id"])
    if unique_ids and stats.get("messages_without_message_id"):
        bad.append("%d messages without Message-ID" % stats["messages_without_message_id"])
    if stats.get("tls_handshake_failures"):
        bad.append("%d TLS handshake failures at the sink" % stats["tls_handshake_failures"])
    return bad


def sink_figures(res, stats, sink_cpu, cores, sink_core, seconds, redis_cpu=None,
                 redis_on_sink_core=True):
    """Sink-side figures; a run whose sink core was busy >= 95% is sink-bound
    (the sink's own share and Redis's, which shares that core by default,
    say who used it)."""
    busy = cores.get(sink_core, (0.0, 0.0))[1] if sink_core is not None else 0.0
    res["sink_cpu_pct"] = round(100.0 * sink_cpu / seconds, 1) if seconds > 0 else 0.0
    if hasattr(cores, "detail"):
        res["cores"] = cores.detail
    if redis_cpu is not None:
        res["redis_cpu_pct"] = round(100.0 * redis_cpu / seconds, 1) if seconds > 0 else 0.0
    b = cores.get(sink_core)
    if b and b[1] > 0:
        # the harness (pinned to the sink's core: the open-loop generator,
        # polling) and, by default, Redis share that core with the sink
        elapsed = b[0] / b[1]
        harness = getattr(cores, "harness_cpu", 0.0)
        res["harness_cpu_pct"] = round(100.0 * harness / elapsed, 1)
        shared = sink_cpu + harness + ((redis_cpu or 0.0) if redis_on_sink_core else 0.0)
        res["sink_core_other_pct"] = round(max(0.0, 100.0 * (b[0] - shared) / elapsed), 1)
    res["sink_core_busy_pct"] = round(100.0 * busy, 1)
    res["sink_bound"] = busy >= 0.95
    if stats:
        res["sink_messages"] = stats.get("messages")
        res["sink_connections"] = stats.get("connections")
        res["sink_ktls_rx_connections"] = stats.get("ktls_rx_connections")
    if sink_cpu > 0 and res.get("messages"):
        res["sink_capacity_msg_s"] = round(res["messages"] / sink_cpu)


def sender_other(res, cores, core, sender_cpu):
    """How much of the sender's core went to anything but the sender
    (other people's work on a shared machine, kernel softirq work not
    charged to a process): its busy time minus the sender's CPU time over
    the same window, as % of the window. A high value means the sender did
    not have its core to itself and its figure is pessimistic."""
    b = cores.get(core)
    if b and b[1] > 0:
        elapsed = b[0] / b[1]
        res["sender_core_other_pct"] = round(max(0.0, 100.0 * (b[0] - sender_cpu) / elapsed), 1)


# ---- Redis loading ------------------------------------------------------------

def xadd(run, i, body):
    return common.Resp.encode("XADD", STREAM, "*", "from", FROM, "to", TO, "data",
                              common.message(run, i, body))


def preload(redis, run, count, body, progress=None):
    """count jobs, each one XADD of plain fields with the message as `data`
    (what any producer sends), pipelined in batches of about 16 MiB."""
    c = redis.client()
    per = max(1, min(2000, (16 << 20) // (len(body) + 300)))
    i = 0
    while i < count:
        n = min(per, count - i)
        c.send(b"".join(xadd(run, i + k, body) for k in range(n)))
        for _ in range(n):
            c.reply()
        i += n
        if progress:
            progress.update("loading %d/%d" % (i, count))
    c.close()


def read_events(redis, progress=None):
    """Every events entry: (event ms, entry ms, status, ktls, latency_ms)."""
    c = redis.client()
    out, start = [], "-"
    while True:
        rows = c.call("XRANGE", EVENTS, start, "+", "COUNT", 20000)
        if not rows:
            break
        for eid, fields in rows:
            f = dict(zip(fields[0::2], fields[1::2]))
            out.append((common.stream_ms(eid), common.stream_ms(f.get(b"entry", eid)),
                        f.get(b"status", b"").decode(), f.get(b"ktls", b"0").decode(),
                        int(f.get(b"latency_ms", b"0"))))
        start = "(" + rows[-1][0].decode()
        if len(rows) < 20000:
            break
    c.close()
    return out


def wait_events(redis, engine, count, timeout, progress, label=""):
    """Poll the events stream until it has count entries; fail on a stall."""
    c = redis.client()
    last, last_change = -1, time.time()
    try:
        while True:
            n = c.call("XLEN", EVENTS)
            if n >= count:
                return n
            now = time.time()
            if n != last:
                last, last_change = n, now
            if not engine.alive():
                raise RunFailed("ringmail run stopped: " + engine.log_tail())
            if now - last_change > timeout:
                raise RunFailed("no progress for %d s at %d of %d outcomes" % (timeout, n, count))
            progress.update("%s%d/%d outcomes" % (label, n, count))
            time.sleep(0.02)
    finally:
        c.close()


def engine_outcomes(redis, stats, expected):
    """After a `ringmail run`: its events and the sink's statistics against
    what it should have delivered. (events, delivered, kTLS messages,
    problems)."""
    ev = read_events(redis)
    delivered, ktls, bad = summarise_events(ev, expected)
    return ev, delivered, ktls, bad + sink_check(stats, expected)


def summarise_events(ev, expected):
    delivered = sum(1 for e in ev if e[2] == "delivered")
    other = {}
    for e in ev:
        if e[2] != "delivered":
            other[e[2]] = other.get(e[2], 0) + 1
    bad = []
    if delivered != expected:
        bad.append("%d delivered outcomes of %d (%s)" % (delivered, expected, other or "none else"))
    ktls = sum(1 for e in ev if e[3] == "1")
    return delivered, ktls, bad


def ktls_state(ktls_msgs, total):
    if total == 0:
        return "unknown"
    return "on" if ktls_msgs == total else "off" if ktls_msgs == 0 else "partial"


# ---- the main job: drain -----------------------------------------------------

def enqueue_generated(ctx, run, size, count):
    """`ringmail enqueue --count N --size S`: jobs ringmail builds its
    message from (subject + text body of about S octets), for --jobs
    generated."""
    cfg = os.path.join(ctx.work, run + ".enqueue.yaml")
    with open(cfg, "w") as f:
        f.write(services.ENGINE_YAML.format(
            log_level="warn", redis_port=ctx.redis.port, metrics_port=1, sink_port=1,
            ca=ctx.pki["ca"], connections=1, per_connection="false"))
    ctx.progress.update("ringmail enqueue --count %d --size %d" % (count, size))
    r = subprocess.run([ctx.ringmail, "enqueue", "-c", cfg, "--from", FROM, "--to", TO,
                        "--count", str(count), "--size", str(size), "--quiet"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RunFailed("ringmail enqueue exited %d: %s" % (r.returncode, r.stderr[-300:]))


def drain(ctx, size, count, perf_events=None):
    """Preload count jobs, start the engine, time it to the last outcome."""
    p = ctx.progress
    run = "d%d%s" % (size, "p" if perf_events else "")
    body = common.message_body(size)
    ctx.redis.flush()
    if getattr(ctx, "jobs", "data") == "generated":
        enqueue_generated(ctx, run, size, count)
    else:
        preload(ctx.redis, run + ctx.run_id, count, body, p)
    cs0 = ctx.redis.commandstats()
    sink = services.Sink(ctx.sink_bin, ctx.work, run, ctx.pki, ctx.sink_cpu)
    wrap, perf_out = (), None
    if perf_events:
        perf_out = os.path.join(ctx.work, run + ".perf")
        wrap = ["perf", "stat", "-x", ",", "-o", perf_out, "-e", ",".join(perf_events), "--"]
    meter = common.CoreMeter()
    s0, r0 = sink.cpu(), ctx.redis.cpu()
    engine = services.Engine(ctx.ringmail, ctx.work, run, ctx.redis, sink, ctx.pki,
                             ctx.engine_cpu, ctx.connections, wrap=wrap)
    res = {"sender": "ringmail", "mode": "drain", "size": size, "messages": count,
           "connections": ctx.connections, "jobs": getattr(ctx, "jobs", "data")}
    try:
        wait_events(ctx.redis, engine, count, 60, p)
        t_seen = time.time()
        cpu = engine.cpu()
        hwm = common.tree_hwm_kib(engine.master_pid())
        res["pss_kib_end"] = common.tree_pss_kib(engine.master_pid())
        metrics = engine.metrics()
        cores = meter.busy()
        s1, r1 = sink.cpu(), ctx.redis.cpu()
        cs1 = ctx.redis.commandstats()
        res["engine_pids"] = len(engine.pids())
    finally:
        engine.stop()
        stats = sink.stop()
    ev, delivered, ktls_msgs, bad = engine_outcomes(ctx.redis, stats, count)
    first = min(e[0] for e in ev) if ev else 0
    last = max(e[0] for e in ev) if ev else 0
    seconds = max(last / 1000.0 - engine.t_start, 0.001)
    res.update({
        "ok": not bad, "problems": bad, "delivered": delivered,
        "seconds": round(seconds, 3),
        "first_outcome_s": round(first / 1000.0 - engine.t_start, 3),
        "msg_s": round(count / seconds, 1),
        "steady_msg_s": round((count - 1) / ((last - first) / 1000.0), 1) if last > first else None,
        "payload_mb_s": round(count * size / seconds / 1e6, 2),
        "engine_cpu_s": round(cpu, 3),
        "cpu_s_per_1k": round(cpu / count * 1000, 4),
        "engine_core_busy_pct": round(100 * cores.get(ctx.engine_cpu, (0, 0))[1], 1),
        "peak_rss_kib": hwm,
        "ktls": ktls_state(ktls_msgs, len(ev)),
        "ktls_messages": ktls_msgs,
        "ktls_connections_metric": engine.gauge(metrics, "ringmail_relay_ktls_connections"),
        "verified_connections_metric": engine.gauge(metrics,
                                                    "ringmail_relay_verified_connections"),
        "wall_to_detect_s": round(t_seen - engine.t_start, 3),
    })
    sink_figures(res, stats, s1 - s0, cores, ctx.sink_cpu, t_seen - engine.t_start, r1 - r0,
                 ctx.redis_cpu == ctx.sink_cpu)
    # What the drain asked of Redis, per job: calls and the time Redis spent
    # in each command (INFO commandstats; its own accounting, not the
    # process's CPU, which adds the network and the event loop).
    res["redis_per_job"] = {
        name: {"calls": round((calls - cs0.get(name, (0, 0))[0]) / count, 3),
               "usec": round((usec - cs0.get(name, (0, 0))[1]) / count, 3)}
        for name, (calls, usec) in sorted(cs1.items())
        if calls > cs0.get(name, (0, 0))[0]}
    sender_other(res, cores, ctx.engine_cpu, cpu)
    if perf_events:
        res.update(perf_counts(perf_out, count))
    return res


def perf_counts(path, count):
    out = {"syscall_method": "perf stat tracepoints (ringmail run, master and worker)"}
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return {"syscall_method": "perf stat failed (no output)"}
    counts = {}
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) >= 3 and parts[0].strip().isdigit():
            counts[parts[2]] = int(parts[0])
    names = {"syscalls:sys_enter_io_uring_enter": "io_uring_enter_per_msg",
             "raw_syscalls:sys_enter": "syscalls_per_msg",
             "io_uring:io_uring_submit_req": "sqes_per_msg",
             "io_uring:io_uring_submit_sqe": "sqes_per_msg"}
    for ev, key in names.items():
        if ev in counts:
            out[key] = round(counts[ev] / count, 3)
    out["perf_counts"] = counts
    out["perf_messages"] = count
    return out


def syscall_events():
    """Tracepoints perf can count here, or None (then strace -c is the fallback)."""
    base = "/sys/kernel/tracing/events"
    if not os.path.isdir(base):
        base = "/sys/kernel/debug/tracing/events"
    want = []
    for ev in ("syscalls/sys_enter_io_uring_enter", "raw_syscalls/sys_enter",
               "io_uring/io_uring_submit_req", "io_uring/io_uring_submit_sqe"):
        if os.path.isdir(os.path.join(base, ev)):
            want.append(ev.replace("/", ":"))
    if not want:
        return None
    try:
        r = subprocess.run(["perf", "stat", "-x", ",", "-e", ",".join(want), "--", "true"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0 or "not supported" in r.stderr or "<not" in r.stderr:
        return None
    return want


def strace_counts(ctx, size, count):
    """Fallback: strace -c -f over a separate short drain (slows the engine a
    lot: figures per message only, never its throughput)."""
    p = ctx.progress
    run = "s%d" % size
    body = common.message_body(size)
    ctx.redis.flush()
    preload(ctx.redis, run + ctx.run_id, count, body, p)
    sink = services.Sink(ctx.sink_bin, ctx.work, run, ctx.pki, ctx.sink_cpu)
    out = os.path.join(ctx.work, run + ".strace")
    engine = services.Engine(ctx.ringmail, ctx.work, run, ctx.redis, sink, ctx.pki,
                             ctx.engine_cpu, ctx.connections,
                             wrap=["strace", "-c", "-f", "-o", out])
    try:
        wait_events(ctx.redis, engine, count, 120, p)
    finally:
        engine.stop()
        sink.stop()
    total = enter = 0
    with open(out) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[-1] == "total":
                total = int(parts[3])
            elif len(parts) >= 5 and parts[-1] == "io_uring_enter":
                enter = int(parts[3])
    if not total:
        return {"ok": False, "problems": ["no strace -c summary in %s" % out]}
    return {"ok": True, "problems": [],
            "syscall_method": "strace -c -f (separate run)", "syscalls_per_msg":
            round(total / count, 3), "io_uring_enter_per_msg": round(enter / count, 3),
            "perf_messages": count}


# ---- the main job: open loop --------------------------------------------------

def percentile(sorted_vals, q):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def open_loop(ctx, size, rate, duration):
    """Offer jobs at `rate` per second for `duration` seconds to a running
    engine; latency = the worker's clock at the 250 - the job's enqueue time
    (the event's latency_ms), and beside it enqueue to the outcome written
    (events entry ID - job entry ID); one clock, millisecond resolution."""
    p = ctx.progress
    run = "o%d_%d" % (size, rate)
    ctx.redis.flush()
    sink = services.Sink(ctx.sink_bin, ctx.work, run, ctx.pki, ctx.sink_cpu)
    engine = services.Engine(ctx.ringmail, ctx.work, run, ctx.redis, sink, ctx.pki,
                             ctx.engine_cpu, ctx.connections)
    res = {"sender": "ringmail", "mode": "open_loop", "size": size, "rate": rate,
           "connections": ctx.connections}
    total = int(rate * duration)
    try:
        end = time.time() + 15
        while time.time() < end:  # connections up before the clock starts
            v = engine.gauge(engine.metrics(), "ringmail_relay_verified_connections")
            if v is not None and v >= ctx.connections:
                break
            if not engine.alive():
                raise RunFailed("ringmail run stopped: " + engine.log_tail())
            time.sleep(0.05)
        # The load comes from `ringmail enqueue --rate` (C, a millisecond's
        # worth per write) on the sink's core: a Python generator there took
        # a fifth of the core that Redis and the sink need, and its own
        # latency went into the figures. Generated jobs: ringmail builds
        # each message (subject, a text body of about `size` octets).
        meter = common.CoreMeter()
        c0, s0, r0 = engine.cpu(), sink.cpu(), ctx.redis.cpu()
        t0 = time.time()
        p.update("offering %d jobs at %d/s" % (total, rate))
        gen = subprocess.run(services.taskset(ctx.sink_cpu) + [
            ctx.ringmail, "enqueue", "-c", engine.config, "--from", FROM, "--to", TO,
            "--count", str(total), "--size", str(size), "--rate", str(rate), "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=duration * 3 + 60)
        t_offer = time.time() - t0
        if gen.returncode != 0 or ("enqueued %d jobs" % total) not in gen.stdout:
            raise RunFailed("ringmail enqueue --rate failed (%d): %s" % (gen.returncode,
                                                                          gen.stdout[-500:]))
        wait_events(ctx.redis, engine, total, 60, p, "drain ")
        cpu = engine.cpu() - c0
        cores = meter.busy()
        s1, r1 = sink.cpu(), ctx.redis.cpu()
        t_all = time.time() - t0
    finally:
        engine.stop()
        stats = sink.stop()
    ev, delivered, ktls_msgs, bad = engine_outcomes(ctx.redis, stats, total)
    # Two clocks, both from the same machine's wall time in ms: the worker's
    # at the 250 (the event's latency_ms: enqueue to 250, what the target
    # names) and Redis's when the outcome was written (the events entry ID:
    # enqueue to recorded, which adds the acknowledgement's round trip).
    lat = sorted(e[4] for e in ev)
    rec = sorted(e[0] - e[1] for e in ev)
    per_sec = {}
    if ev:
        base = min(e[1] for e in ev)
        for e in ev:
            per_sec.setdefault((e[1] - base) // 1000, []).append(e[4])
    res["latency_ms_p99_by_second"] = [percentile(sorted(v), 0.99)
                                       for _, v in sorted(per_sec.items())]
    res.update({
        "ok": not bad, "problems": bad, "messages": total, "delivered": delivered,
        "offered_msg_s": round(total / t_offer, 1), "offer_seconds": round(t_offer, 3),
        "latency_ms_p50": percentile(lat, 0.50), "latency_ms_p99": percentile(lat, 0.99),
        "latency_ms_p999": percentile(lat, 0.999), "latency_ms_max": lat[-1] if lat else None,
        "recorded_ms_p50": percentile(rec, 0.50), "recorded_ms_p99": percentile(rec, 0.99),
        "recorded_ms_p999": percentile(rec, 0.999),
        "latency_resolution_ms": 1,
        "cpu_s_per_1k": round(cpu / total * 1000, 4) if total else None,
        "engine_core_busy_pct": round(100 * cores.get(ctx.engine_cpu, (0, 0))[1], 1),
        "ktls": ktls_state(ktls_msgs, len(ev)),
    })
    sink_figures(res, stats, s1 - s0, cores, ctx.sink_cpu, t_all, r1 - r0,
                 ctx.redis_cpu == ctx.sink_cpu)
    sender_other(res, cores, ctx.engine_cpu, cpu)
    return res


# ---- the transport alone -------------------------------------------------------

def wait_measured(proc):
    """Wait for a child: (exit code, user+sys CPU s, peak RSS KiB). The peak
    is the process's own VmHWM polled while it runs: rusage's ru_maxrss
    would start from the harness's RSS, which the child inherits at fork."""
    hwm = 0
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru.ru_utime + ru.ru_stime, hwm
        hwm = max(hwm, common.status_kib(proc.pid, "VmHWM"))
        time.sleep(0.05)


def run_measured(args, out_path):
    """Run a command to completion: (returncode, output, user+sys CPU s,
    peak RSS KiB, wall s)."""
    with open(out_path, "w") as out:
        t0 = time.time()
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        rc, cpu, hwm = wait_measured(proc)
        wall = time.time() - t0
    with open(out_path, errors="replace") as f:
        text = f.read()
    return rc, text, cpu, hwm, wall


def write_message(ctx, size, name):
    path = os.path.join(ctx.work, name)
    with open(path, "wb") as f:
        f.write(common.message(ctx.run_id, 0, common.message_body(size)))
    return path


def transport(ctx, size, count):
    """`ringmail send --count`: the transport without Redis or jobs."""
    run = "t%d" % size
    msg = write_message(ctx, size, run + ".eml")
    sink = services.Sink(ctx.sink_bin, ctx.work, run, ctx.pki, ctx.sink_cpu)
    meter = common.CoreMeter()
    s0 = sink.cpu()
    try:
        ctx.progress.update("%d messages" % count)
        rc, text, cpu, maxrss, wall = run_measured(
            services.taskset(ctx.engine_cpu) + [
                ctx.ringmail, "send", "--relay", "localhost:%d" % sink.port, "--ca",
                ctx.pki["ca"], "--from", FROM, "--to", TO, "--ehlo", "bench.localhost",
                "--count", str(count), "--connections", str(ctx.connections), msg],
            os.path.join(ctx.work, run + ".out"))
        cores = meter.busy()
        s1 = sink.cpu()
    finally:
        stats = sink.stop()
    res = {"sender": "ringmail-transport", "mode": "transport", "size": size,
           "messages": count, "connections": ctx.connections}
    m = re.search(r"^sent (\d+) of (\d+) messages .* in ([0-9.]+) s: ([0-9.]+) msg/s", text,
                  re.M)
    bad = [] if rc == 0 else ["ringmail send exited %d: %s" % (rc, text.strip()[-300:])]
    if not m:
        bad.append("no summary line from ringmail send")
        seconds = wall
    else:
        seconds = float(m.group(3))
        if int(m.group(1)) != count:
            bad.append("ringmail send delivered %s of %d" % (m.group(1), count))
    bad += sink_check(stats, count, unique_ids=False)
    k = re.findall(r"ktls_tx=(\d)", text)
    seconds = max(seconds, 0.001)
    res.update({
        "ok": not bad, "problems": bad, "delivered": stats.get("messages") if stats else 0,
        "seconds": round(seconds, 3), "msg_s": round(count / seconds, 1),
        "payload_mb_s": round(count * size / seconds / 1e6, 2),
        "cpu_s_per_1k": round(cpu / count * 1000, 4), "peak_rss_kib": maxrss,
        "ktls": ("on" if all(x == "1" for x in k) else "off" if not any(x == "1" for x in k)
                 else "partial") if k else "unknown",
        "engine_core_busy_pct": round(100 * cores.get(ctx.engine_cpu, (0, 0))[1], 1),
    })
    sink_figures(res, stats, s1 - s0, cores, ctx.sink_cpu, seconds)
    sender_other(res, cores, ctx.engine_cpu, cpu)
    return res


def idle(ctx, conns, hold=3):
    """RSS per idle persistent TLS connection: `ringmail send --hold` keeps
    conns verified STARTTLS connections open, idle, in one process."""
    run = "idle"
    msg = write_message(ctx, 512, run + ".eml")
    sink = services.Sink(ctx.sink_bin, ctx.work, run, ctx.pki, ctx.sink_cpu)
    try:
        ctx.progress.update("%d connections" % conns)
        rc, text, cpu, maxrss, wall = run_measured(
            services.taskset(ctx.engine_cpu) + [
                ctx.ringmail, "send", "--relay", "localhost:%d" % sink.port, "--ca",
                ctx.pki["ca"], "--from", FROM, "--to", TO, "--ehlo", "bench.localhost",
                "--count", str(conns), "--connections", str(conns), "--hold", str(hold),
                "--quiet", msg],
            os.path.join(ctx.work, run + ".out"))
    finally:
        stats = sink.stop()
    m = re.search(r"^held (\d+) idle connections for \d+ s: rss (\d+) KiB -> (\d+) KiB, "
                  r"([0-9.]+) KiB per", text, re.M)
    bad = [] if rc == 0 else ["ringmail send exited %d: %s" % (rc, text.strip()[-300:])]
    bad += sink_check(stats, conns, unique_ids=False)
    res = {"sender": "ringmail-transport", "mode": "idle", "connections": conns,
           "messages": conns, "peak_rss_kib": maxrss, "seconds": round(wall, 3)}
    if not m:
        bad.append("no 'held' line from ringmail send")
    else:
        res.update({"idle_connections": int(m.group(1)), "rss_before_kib": int(m.group(2)),
                    "rss_after_kib": int(m.group(3)),
                    "rss_kib_per_idle_connection": float(m.group(4))})
        if int(m.group(1)) != conns:
            bad.append("%s of %d connections idle at the end" % (m.group(1), conns))
    res.update({"ok": not bad, "problems": bad})
    return res


# ---- the crypto limit ------------------------------------------------------------

def crypto_limit(cpu, seconds=3):
    """Single-core AES-128-GCM (openssl speed -evp, largest block size)."""
    r = subprocess.run(services.taskset(cpu) + ["openssl", "speed", "-mr", "-evp", "aes-128-gcm",
                                                "-seconds", str(seconds)],
                       capture_output=True, text=True, timeout=120)
    sizes, rates = [], []
    for line in r.stdout.splitlines():
        if line.startswith("+H:"):
            sizes = [int(x) for x in line.split(":")[1:]]
        elif line.startswith("+F:"):
            rates = [float(x) for x in line.split(":")[3:]]
    if not sizes or len(rates) != len(sizes):
        return {"ok": False, "problems": ["cannot parse openssl speed output"]}
    return {"ok": True, "problems": [], "block_bytes": sizes[-1],
            "aes_128_gcm_bytes_s": rates[-1], "aes_128_gcm_mb_s": round(rates[-1] / 1e6, 1),
            "all_blocks": dict(zip([str(s) for s in sizes], rates)),
            "openssl": subprocess.run(["openssl", "version"], capture_output=True,
                                      text=True).stdout.strip()}


def engine_idle(ctx, conns):
    """RSS per idle connection of `ringmail run` itself: the worker's RSS
    with `conns` verified, idle connections minus its RSS with one, each
    after the pool has opened them all and the queue is empty."""
    out = {"sender": "ringmail", "mode": "idle", "connections": conns}
    rss = {}
    for n in (1, conns):
        run = "idle%d" % n
        ctx.redis.flush()
        sink = services.Sink(ctx.sink_bin, ctx.work, run, ctx.pki, ctx.sink_cpu)
        engine = services.Engine(ctx.ringmail, ctx.work, run, ctx.redis, sink, ctx.pki,
                                 ctx.engine_cpu, n, per_connection=False)
        try:
            t0 = time.time()
            v = 0
            while time.time() - t0 < 180:
                v = engine.gauge(engine.metrics(), "ringmail_relay_verified_connections") or 0
                if v >= n:
                    break
                if not engine.alive():
                    raise RunFailed("ringmail run stopped: " + engine.log_tail())
                ctx.progress.update("engine: %d of %d connections verified" % (v, n))
                time.sleep(0.2)
            if v < n:
                raise RunFailed("only %d of %d connections verified after 180 s" % (v, n))
            time.sleep(1.0)
            workers = [p for p in engine.pids() if p != engine.master_pid()]
            rss[n] = sum(common.status_kib(p, "VmRSS") for p in workers)
            out["open_seconds_%d" % n] = round(time.time() - t0 - 1.0, 2)
        finally:
            engine.stop()
            stats = sink.stop()
        if stats and stats.get("tls_handshake_failures"):
            raise RunFailed("%d handshake failures at the sink" % stats["tls_handshake_failures"])
    out.update({"ok": True, "problems": [], "idle_connections": conns,
                "worker_rss_kib_1": rss[1], "worker_rss_kib_n": rss[conns],
                "rss_kib_per_idle_connection": round((rss[conns] - rss[1]) / (conns - 1), 1)})
    return out
