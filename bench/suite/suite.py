#!/usr/bin/env python3
"""ringmail benchmark suite: throughput, latency and CPU per message of the
engine, the transport alone, and peer senders (Postfix, nodemailer, Python
smtplib) against the same sink, beside the single-core crypto limit.

    bench/run.sh [--smoke] [--out DIR] [options]      (see bench/README.md)

Figures, not tests: targets are printed with pass/miss; only a run whose
delivery counts are wrong is a failure.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback

import common
import peers
import report
import runs
import services

SIZES = [2048, 102400, 1048576]
# Messages per run, by size: about 3-10 s each for ringmail on one core.
DRAIN = {2048: 150000, 102400: 15000, 1048576: 2000}
TRANSPORT = {2048: 200000, 102400: 25000, 1048576: 3000}
RATES = [0.1, 0.25, 0.5, 0.75, 0.9, 1.0]


def parse(argv):
    ap = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="output directory (default build/bench-results/<timestamp>)")
    ap.add_argument("--build", default=os.environ.get("BUILD_DIR", "build"),
                    help="build directory with workers/ringmail and bench/ringmail-sink")
    ap.add_argument("--smoke", action="store_true",
                    help="small counts, 2 KB only, ringmail only, no charts needed")
    ap.add_argument("--connections", type=int, default=64, help="persistent connections")
    ap.add_argument("--sizes", default=None, help="message sizes in octets, comma-separated")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every message count")
    ap.add_argument("--peers", default=None,
                    help="comma-separated: postfix,nodemailer,nodemailer-nodelay,smtplib "
                         "(default all; 'none')")
    ap.add_argument("--peer-seconds", type=float, default=12.0,
                    help="aim each peer run at about this long (count from a short probe)")
    ap.add_argument("--skip", default="",
                    help="comma-separated parts to leave out: transport, drain, syscalls, "
                         "open-loop, idle, crypto, peers")
    ap.add_argument("--rates", default=None,
                    help="open-loop rates as fractions of the 2 KB drain peak "
                         "(default %s)" % ",".join(str(r) for r in RATES))
    ap.add_argument("--open-loop-seconds", type=float, default=4.0)
    ap.add_argument("--open-loop-size", type=int, default=2048)
    ap.add_argument("--idle", type=int, default=10000, help="idle connections for the RSS figure")
    ap.add_argument("--engine-cpu", type=int, default=1, help="core of the sender under test")
    ap.add_argument("--sink-cpu", type=int, default=0, help="core of the sink")
    ap.add_argument("--redis-cpu", default="0", help="core of redis-server ('none': unpinned)")
    ap.add_argument("--syscalls", choices=("auto", "perf", "strace"), default="auto",
                    help="how to count system calls (auto: perf tracepoints where they work)")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="first wait up to this long for both cores to be under 15%% busy "
                         "(a shared machine)")
    ap.add_argument("--jobs", choices=("data", "generated"), default="data",
                    help="drain jobs: 'data' = the peers' exact message in a data field "
                         "(XADD), 'generated' = ringmail enqueue --count --size (ringmail "
                         "builds the message)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    return ap.parse_args(argv)


class Ctx:
    pass


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through every cleanup


def main(argv):
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    a = parse(argv)
    root = services.ROOT
    build = a.build if os.path.isabs(a.build) else os.path.join(root, a.build)
    ringmail = os.path.join(build, "workers", "ringmail")
    sink_bin = os.path.join(build, "bench", "ringmail-sink")
    for b in (ringmail, sink_bin):
        if not os.access(b, os.X_OK):
            sys.exit("bench: %s is missing; build first (bench/run.sh builds)" % b)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = a.out or os.path.join(build, "bench-results", stamp)
    os.makedirs(out, exist_ok=True)
    for cpu in (a.engine_cpu, a.sink_cpu):
        if cpu not in os.sched_getaffinity(0):
            sys.exit("bench: core %d is not available here (cores: %s)" %
                     (cpu, sorted(os.sched_getaffinity(0))))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 2 * a.idle + 1000))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    # The harness itself stays off the sender's core: on the sink's, where
    # its (small) share is visible in that core's busy time.
    os.sched_setaffinity(0, {a.sink_cpu})
    skip = set(x.strip() for x in a.skip.split(",") if x.strip())
    if a.smoke:
        sizes = [2048]
        scale = a.scale * 0.04
        peer_list = []
        rates = [float(x) for x in a.rates.split(",")] if a.rates else [0.1, 0.25]
        a.open_loop_seconds = min(a.open_loop_seconds, 1.5)
        a.idle = min(a.idle, 200)
        a.connections = min(a.connections, 16)
    else:
        sizes = [int(x) for x in a.sizes.split(",")] if a.sizes else SIZES
        scale = a.scale
        peer_list = ["postfix", "nodemailer", "nodemailer-nodelay", "smtplib"]
        rates = [float(x) for x in a.rates.split(",")] if a.rates else RATES
    if a.peers is not None:
        peer_list = [] if a.peers == "none" else [p for p in a.peers.split(",") if p]
    if "peers" in skip:
        peer_list = []

    ctx = Ctx()
    ctx.ringmail, ctx.sink_bin = ringmail, sink_bin
    ctx.engine_cpu, ctx.sink_cpu = a.engine_cpu, a.sink_cpu
    ctx.redis_cpu = None if a.redis_cpu == "none" else int(a.redis_cpu)
    ctx.connections = a.connections
    ctx.run_id = "r" + stamp.replace("-", "")[-10:]
    ctx.work = tempfile.mkdtemp(prefix="ringmail-bench.")
    ctx.build = build
    ctx.smoke = a.smoke
    ctx.jobs = a.jobs

    steps = (("crypto" not in skip) + len(sizes) * (("transport" not in skip) +
             ("drain" not in skip) + ("syscalls" not in skip)) +
             (len(rates) if "open-loop" not in skip else 0) + 2 * ("idle" not in skip) +
             len(peer_list) * len(sizes))
    p = ctx.progress = common.Progress(steps)
    if a.wait_quiet > 0:
        end = time.time() + a.wait_quiet
        while time.time() < end:
            m = common.CoreMeter()
            time.sleep(2)
            busy = m.busy()
            worst = max(100 * busy.get(c, (0, 0))[1] for c in (a.engine_cpu, a.sink_cpu))
            if worst < 15:
                break
            sys.stderr.write("\rbench: waiting for quiet cores (busiest %.0f%%, %.0f s left) " %
                             (worst, end - time.time()))
            sys.stderr.flush()
        sys.stderr.write("\n")
    res = {
        "suite": {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "command": "bench/run.sh " + " ".join(argv), "smoke": a.smoke,
                  "connections": a.connections, "sizes": sizes, "peers": peer_list,
                  "engine_cpu": a.engine_cpu, "sink_cpu": a.sink_cpu,
                  "redis_cpu": ctx.redis_cpu, "workers": 1, "jobs": a.jobs,
                  "ringmail_version": os.popen(ringmail + " --version").read().strip()},
        "machine": dict(common.machine(), background=common.background(
            [a.engine_cpu, a.sink_cpu])),
        "crypto_limit": None, "transport": [], "drain": [], "open_loop": None, "idle": None,
        "idle_engine": None,
        "peers": [], "targets": [], "failures": [],
    }
    t_start = time.time()
    sys.stderr.write("ringmail bench: %s, results into %s\n" % (
        "smoke run" if a.smoke else "full suite", out))
    ctx.pki = services.make_pki(ctx.work)
    ctx.redis = None

    def attempt(label, fn, *args):
        p.begin(label)
        try:
            r = fn(*args)
        except Exception as e:  # a broken run is reported, the suite goes on
            r = {"ok": False, "problems": ["%s: %s" % (type(e).__name__, e)]}
            with open(os.path.join(ctx.work, "errors.log"), "a") as f:
                f.write(label + "\n" + traceback.format_exc() + "\n")
        if not r.get("ok"):
            res["failures"].append("%s: %s" % (label, "; ".join(r.get("problems", []))))
            p.note("FAILED %s: %s" % (label, "; ".join(r.get("problems", []))[:200]))
        else:
            p.done(summary(label, r))
        return r

    try:
        ctx.redis = services.Redis(ctx.work, ctx.redis_cpu)
        if "crypto" not in skip:
            res["crypto_limit"] = attempt("crypto limit: openssl speed -evp aes-128-gcm",
                                          runs.crypto_limit, a.engine_cpu, 1)
        perf_events = (runs.syscall_events() if "syscalls" not in skip and
                       a.syscalls != "strace" else None)
        if "syscalls" not in skip and not perf_events and not shutil.which("strace"):
            skip.add("syscalls")
            p.note("neither perf tracepoints nor strace here: no syscall counts")
            no_syscalls = True
        else:
            no_syscalls = False
        for size in sizes:
            if "transport" not in skip:
                n = max(100, int(TRANSPORT.get(size, 2000) * scale))
                r = attempt("transport alone (ringmail send) %s" % report.size_name(size),
                            runs.transport, ctx, size, n)
                r.setdefault("sender", "ringmail-transport")
                r.setdefault("mode", "transport")
                r.setdefault("size", size)
                res["transport"].append(r)
            if "drain" not in skip:
                n = max(100, int(DRAIN.get(size, 2000) * scale))
                r = attempt("main job drain %s: %d jobs" % (report.size_name(size), n),
                            runs.drain, ctx, size, n)
                r.setdefault("sender", "ringmail")
                r.setdefault("mode", "drain")
                r.setdefault("size", size)
                if no_syscalls:
                    r["syscall_method"] = "unavailable"
                if "syscalls" not in skip:
                    k = max(100, n // 4)
                    if perf_events:
                        s = attempt("syscalls per message %s (perf stat)" %
                                    report.size_name(size), runs.drain, ctx, size, k, perf_events)
                    else:
                        s = attempt("syscalls per message %s (strace -c)" %
                                    report.size_name(size), runs.strace_counts, ctx, size, k)
                    for key in ("syscall_method", "syscalls_per_msg", "io_uring_enter_per_msg",
                                "sqes_per_msg", "perf_counts", "perf_messages"):
                        if key in s:
                            r[key] = s[key]
                    if not s.get("ok", True):
                        r["syscall_problems"] = s.get("problems")
                res["drain"].append(r)
        if "open-loop" not in skip:
            size = a.open_loop_size
            peak_row = report._find(res["drain"], size=size)
            peak = peak_row.get("msg_s") if peak_row and peak_row.get("ok") else None
            if not peak:
                n = max(100, int(DRAIN.get(size, 2000) * scale))
                pk = attempt("open loop: drain peak %s" % report.size_name(size), runs.drain,
                             ctx, size, n)
                peak = pk.get("msg_s") if pk.get("ok") else None
            ol = {"size": size, "peak_msg_s": peak, "seconds_per_rate": a.open_loop_seconds,
                  "points": []}
            if peak:
                for frac in rates:
                    rate = max(10, int(peak * frac))
                    # The target's point runs three times as long: on a
                    # shared machine a passing disturbance (another
                    # tenant, a kernel thread) then weighs a third as much
                    # in its p99. The p99 of every second is in the JSON.
                    secs = a.open_loop_seconds * (3 if frac == 0.5 else 1)
                    pt = attempt("open loop %s at %d msg/s (%.0f%% of peak)" % (
                        report.size_name(size), rate, frac * 100), runs.open_loop, ctx, size,
                        rate, secs)
                    pt["duration_s"] = secs
                    pt["fraction_of_peak"] = frac
                    pt.setdefault("rate", rate)
                    ol["points"].append(pt)
                half = [x for x in ol["points"] if x["fraction_of_peak"] == 0.5]
                ol["half_peak_point"] = half[0] if half else None
            res["open_loop"] = ol
        if "idle" not in skip:
            res["idle"] = attempt("idle connections: %d held by ringmail send" % a.idle,
                                  runs.idle, ctx, a.idle)
            res["idle_engine"] = attempt("idle connections: %d held by ringmail run's worker" %
                                         a.idle, runs.engine_idle, ctx, a.idle)
        for peer in peer_list:
            for size in sizes:
                r = attempt("peer %s %s" % (peer, report.size_name(size)), peers.run, peer,
                            ctx, size, a.peer_seconds)
                r.setdefault("sender", peer)
                r.setdefault("mode", "peer")
                r.setdefault("size", size)
                ring = report._find(res["drain"], size=size)
                if r.get("ok") and ring and ring.get("ok") and r.get("msg_s"):
                    r["ringmail_over_peer"] = round(ring["msg_s"] / r["msg_s"], 2)
                    if r.get("cpu_s_per_1k") and ring.get("cpu_s_per_1k"):
                        r["peer_cpu_over_ringmail"] = round(r["cpu_s_per_1k"] /
                                                            ring["cpu_s_per_1k"], 2)
                res["peers"].append(r)
    finally:
        if ctx.redis:
            ctx.redis.close()
        peers.cleanup(ctx)
    cl = res.get("crypto_limit") or {}
    for r in res["drain"] + res["transport"]:
        if r.get("ok") and cl.get("aes_128_gcm_bytes_s"):
            r["share_of_aes_limit_pct"] = round(100.0 * r["payload_mb_s"] * 1e6 /
                                                cl["aes_128_gcm_bytes_s"], 1)
    res["targets"] = report.targets(res)
    res["suite"]["seconds"] = round(time.time() - t_start, 1)
    res["suite"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    res["charts"] = [os.path.basename(x) for x in report.charts(res, out)]
    report.write_json(res, os.path.join(out, "results.json"))
    text = report.table(res)
    with open(os.path.join(out, "table.txt"), "w") as f:
        f.write(text + "\n")
    print(text)
    print("\nresults: %s (JSON: results.json, table.txt%s); %.0f s" % (
        out, "".join(", " + c for c in res["charts"]), res["suite"]["seconds"]))
    if a.keep or res["failures"]:
        keep = os.path.join(out, "work")
        shutil.copytree(ctx.work, keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            "*.eml", "*.body", "redis", "queue", "data", "tls"))
        print("work directory (logs, configs) copied to %s" % keep)
    shutil.rmtree(ctx.work, ignore_errors=True)
    return 1 if res["failures"] else 0


def summary(label, r):
    if r.get("mode") == "open_loop":
        return "offered %s msg/s: p50 %s ms, p99 %s ms, p99.9 %s ms" % (
            r.get("offered_msg_s"), r.get("latency_ms_p50"), r.get("latency_ms_p99"),
            r.get("latency_ms_p999"))
    if r.get("mode") == "idle":
        return "%s KiB per idle connection" % r.get("rss_kib_per_idle_connection")
    if "aes_128_gcm_mb_s" in r:
        return "AES-128-GCM %s MB/s on one core" % r["aes_128_gcm_mb_s"]
    extra = ""
    if r.get("msg_s") is None and r.get("syscalls_per_msg") is not None:
        return "%s syscalls/msg, %s io_uring_enter/msg" % (r["syscalls_per_msg"],
                                                          r.get("io_uring_enter_per_msg"))
    if r.get("syscalls_per_msg") is not None:
        extra = ", %s syscalls/msg, %s io_uring_enter/msg" % (r["syscalls_per_msg"],
                                                              r.get("io_uring_enter_per_msg"))
    return "%s msg/s, %s MB/s, %s CPU s/1k msgs%s%s" % (
        r.get("msg_s"), r.get("payload_mb_s"), r.get("cpu_s_per_1k"), extra,
        " (sink-bound)" if r.get("sink_bound") else "")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
