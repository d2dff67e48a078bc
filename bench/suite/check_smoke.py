#!/usr/bin/env python3
"""ctest 'bench_smoke': run the benchmark harness's smoke mode
(bench/run.sh --smoke: 2 KB only, small counts, ringmail only) and check
that the JSON it writes is complete: every expected figure present and
positive, every delivery count right. Exit 77 (skip) where redis-server or
openssl is missing or we are not root (taskset, perf); under CI=true
each of those fails instead (tests/skip.py)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from skip import skip  # noqa: E402  (tests/skip.py: under CI=true a skip fails)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    for tool in ("redis-server", "openssl", "taskset"):
        if not shutil.which(tool):
            skip("%s is not installed (tests/setup.sh installs it)" % tool)
    if len(os.sched_getaffinity(0)) < 2 or not {0, 1} <= os.sched_getaffinity(0):
        skip("the harness pins to cores 0 and 1; this machine offers %s" %
             sorted(os.sched_getaffinity(0)))
    out = tempfile.mkdtemp(prefix="ringmail-bench-smoke.")
    env = dict(os.environ, BUILD_DIR=build)
    r = subprocess.run(["sh", os.path.join(ROOT, "bench", "run.sh"), "--smoke", "--out", out],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=280)
    print(r.stdout[-6000:])
    problems = []
    if r.returncode != 0:
        problems.append("bench/run.sh --smoke exited %d" % r.returncode)
    try:
        with open(os.path.join(out, "results.json")) as f:
            res = json.load(f)
    except (OSError, ValueError) as e:
        print("FAIL: no results.json: %s" % e)
        return 1
    problems += check(res)
    for name in ("table.txt",):
        if not os.path.exists(os.path.join(out, name)):
            problems.append("%s missing" % name)
    if problems:
        print("FAIL:\n  " + "\n  ".join(problems))
        print("results kept in %s" % out)
        return 1
    shutil.rmtree(out, ignore_errors=True)
    print("PASS: the smoke run's JSON is complete and every count matched")
    return 0


def positive(problems, where, row, keys):
    for k in keys:
        v = row.get(k) if row else None
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
            problems.append("%s: %s is %r, not a positive number" % (where, k, v))


def check(res):
    p = []
    for k in ("suite", "machine", "crypto_limit", "transport", "drain", "open_loop", "idle",
              "idle_engine", "peers", "targets", "failures"):
        if k not in res:
            p.append("key %s missing" % k)
    m = res.get("machine", {})
    for k in ("cpu_model", "cores", "kernel", "openssl"):
        if not m.get(k):
            p.append("machine.%s missing" % k)
    positive(p, "crypto_limit", res.get("crypto_limit"), ["aes_128_gcm_bytes_s", "block_bytes"])
    if res.get("failures"):
        p.append("failed runs: %s" % res["failures"])
    for section, extra in (("transport", []), ("drain", ["engine_cpu_s"])):
        rows = res.get(section) or []
        if len(rows) != 1:
            p.append("%s: %d runs, expected 1 (2 KB)" % (section, len(rows)))
        for r in rows:
            where = "%s %s" % (section, r.get("size"))
            if not r.get("ok"):
                p.append("%s failed: %s" % (where, r.get("problems")))
            positive(p, where, r, ["messages", "seconds", "msg_s", "payload_mb_s",
                                   "cpu_s_per_1k", "peak_rss_kib"] + extra)
            # a smoke run is short: the sink's CPU may be under one clock tick
            if not isinstance(r.get("sink_cpu_pct"), (int, float)) or r["sink_cpu_pct"] < 0:
                p.append("%s: sink_cpu_pct is %r" % (where, r.get("sink_cpu_pct")))
            if r.get("sink_messages") != r.get("messages"):
                p.append("%s: the sink counted %s of %s" % (where, r.get("sink_messages"),
                                                           r.get("messages")))
            if r.get("ktls") not in ("on", "off", "partial"):
                p.append("%s: kTLS state %r" % (where, r.get("ktls")))
            if "sink_bound" not in r:
                p.append("%s: sink_bound missing" % where)
            if section == "drain":
                if r.get("delivered") != r.get("messages"):
                    p.append("%s: %s delivered outcomes of %s" % (where, r.get("delivered"),
                                                                  r.get("messages")))
                if r.get("syscall_method") != "unavailable":
                    positive(p, where, r, ["syscalls_per_msg", "io_uring_enter_per_msg"])
    ol = res.get("open_loop") or {}
    pts = ol.get("points") or []
    if len(pts) < 2:
        p.append("open_loop: %d points, expected 2" % len(pts))
    for pt in pts:
        where = "open_loop %s/s" % pt.get("rate")
        if not pt.get("ok"):
            p.append("%s failed: %s" % (where, pt.get("problems")))
        positive(p, where, pt, ["offered_msg_s", "messages"])
        for k in ("latency_ms_p50", "latency_ms_p99", "latency_ms_p999", "recorded_ms_p99"):
            if not isinstance(pt.get(k), int) or pt[k] < 0:
                p.append("%s: %s is %r" % (where, k, pt.get(k)))
        if pt.get("sink_messages") != pt.get("messages"):
            p.append("%s: the sink counted %s of %s" % (where, pt.get("sink_messages"),
                                                       pt.get("messages")))
    idle = res.get("idle") or {}
    if not idle.get("ok"):
        p.append("idle failed: %s" % idle.get("problems"))
    positive(p, "idle", idle, ["rss_kib_per_idle_connection", "idle_connections"])
    ie = res.get("idle_engine") or {}
    if not ie.get("ok"):
        p.append("idle_engine failed: %s" % ie.get("problems"))
    positive(p, "idle_engine", ie, ["rss_kib_per_idle_connection", "worker_rss_kib_n"])
    names = [t.get("target") for t in res.get("targets", [])]
    if len(names) != 10:
        p.append("targets: %d entries, expected 10" % len(names))
    for t in res.get("targets", []):
        if t.get("status") not in ("pass", "miss", "n/a", "info"):
            p.append("target %s: status %r" % (t.get("target"), t.get("status")))
    return p


if __name__ == "__main__":
    sys.exit(main())
