"""The suite's output: targets with pass/miss, the terminal table, the
JSON file and the gnuplot charts."""
import json
import os
import shutil
import subprocess

MB = 1e6


def _find(rows, **kw):
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def targets(res):
    """The issue's targets, each next to its measured value. A run that
    failed its delivery check yields no value (the target reads 'failed')."""
    out = []

    def add(name, value, limit, unit, higher=True, note=""):
        if value is None:
            status = "n/a"
        elif limit is None:
            status = "info"  # a figure shown beside a target, not one itself
        else:
            status = "pass" if (value >= limit if higher else value <= limit) else "miss"
        out.append({"target": name, "value": value, "limit": limit, "unit": unit,
                    "better": "higher" if higher else "lower", "status": status, "note": note})

    def ok_val(row, key):
        return row.get(key) if row and row.get("ok") else None

    tr = res.get("transport", [])
    add("transport alone at 2 KB", ok_val(_find(tr, size=2048), "msg_s"), 120000, "msg/s")
    add("transport alone at 100 KB", ok_val(_find(tr, size=102400), "msg_s"), 15000, "msg/s")
    dr = res.get("drain", [])
    add("main job at 2 KB", ok_val(_find(dr, size=2048), "msg_s"), 50000, "msg/s")
    aes = (res.get("crypto_limit") or {}).get("aes_128_gcm_bytes_s")

    def share(row, mb_s):
        return round(100.0 * mb_s * MB / aes, 1) if row and row.get("ok") and aes else None

    # The 1 MB target is ringmail's sender on its one core: the transport.
    t1 = _find(tr, size=1048576)
    add("1 MB, share of 1-core AES-128-GCM, transport", share(t1, (t1 or {}).get("payload_mb_s")),
        35, "%", note="ringmail send on one core")
    # The main job beside it: every job also crosses Redis, which shares the
    # sink's core, so that core caps it. The cap is measured in the same run:
    # Redis's and the sink's CPU per job.
    d1 = _find(dr, size=1048576)
    note = "main job, Redis and sink"
    suite = res.get("suite") or {}
    if d1 and d1.get("ok") and d1.get("redis_cpu_pct") is not None and \
            suite.get("redis_cpu") == suite.get("sink_cpu"):
        per_job = (d1["redis_cpu_pct"] + d1["sink_cpu_pct"]) / 100.0 / d1["msg_s"]
        if per_job > 0:
            cap = share(d1, d1["size"] / per_job / MB)
            note = "their shared core caps it at %s %%: Redis + sink %.2f ms per job" % (
                fmt(cap, 1), 1000 * per_job)
    add("1 MB, share of 1-core AES-128-GCM, main job", share(d1, (d1 or {}).get("payload_mb_s")),
        None, "%", note=note)
    for peer, limit in (("postfix", 30), ("nodemailer", 10)):
        row = _find(res.get("peers", []), sender=peer, size=2048)
        ratio = None
        if row and row.get("ok") and row.get("ringmail_over_peer"):
            ratio = row["ringmail_over_peer"]
        add("main job at 2 KB vs %s" % peer, ratio, limit, "x")
    ol = res.get("open_loop") or {}
    half = ol.get("half_peak_point")
    add("p99 enqueue-to-250 at half of peak", half.get("latency_ms_p99") if half and
        half.get("ok") else None, 5, "ms", higher=False,
        note="offered %s msg/s" % (half or {}).get("offered_msg_s"))
    idle = res.get("idle_engine") or {}
    add("RSS per idle TLS connection, worker (%s)" % idle.get("connections", "?"),
        idle.get("rss_kib_per_idle_connection") if idle.get("ok") else None, 64, "KiB",
        higher=False, note="ringmail run, one worker")
    idle = res.get("idle") or {}
    add("RSS per idle TLS connection, send (%s)" % idle.get("connections", "?"),
        idle.get("rss_kib_per_idle_connection") if idle.get("ok") else None, 64, "KiB",
        higher=False, note="ringmail send --hold, one process")
    return out


def fmt(v, digits=0):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return ("%%.%df" % digits) % v
    return str(v)


def size_name(size):
    if size is None:
        return "-"
    if size >= 1 << 20:
        return "%d MB" % (size >> 20)
    if size >= 1024:
        return "%d KB" % (size >> 10)
    return "%d B" % size


def table(res):
    lines = []
    m = res["machine"]
    lines.append("machine: %s, %s cores, kernel %s, %s, kTLS module %s" % (
        m["cpu_model"], m["cores"], m["kernel"], m["openssl"],
        "present" if m["kernel_tls_module"] else "absent"))
    bg = m.get("background") or {}
    if bg:
        lines.append("before the suite: core busy %s, load %s%s" % (
            ", ".join("cpu%s %s%%" % kv for kv in bg.get("core_busy_pct", {}).items()),
            " ".join(bg.get("loadavg", [])),
            ("; busy processes: " + ", ".join("%s %s%%" % (p["comm"], p["cpu_pct"])
                                              for p in bg["busy_processes"]))
            if bg.get("busy_processes") else ""))
    cl = res.get("crypto_limit") or {}
    if cl.get("ok"):
        lines.append("crypto limit: AES-128-GCM on one core, %d-byte blocks: %.0f MB/s "
                     "(a perfect sender's payload rate on one core)" % (
                         cl["block_bytes"], cl["aes_128_gcm_mb_s"]))
    lines.append("")
    hdr = ("%-19s %-9s %-6s %8s %10s %9s %10s %8s %6s %8s %8s %9s %8s %9s %6s %-5s %-9s %s" % (
        "sender", "mode", "size", "msgs", "msg/s", "MB/s", "cpu s/1k", "snd core", "other",
        "sys/msg", "sqe/msg",
        "uring/msg", "peakRSS", "sink cpu", "redis", "kTLS", "ring/peer", "check"))
    lines.append(hdr)
    lines.append("-" * len(hdr))
    rows = res.get("transport", []) + res.get("drain", []) + res.get("peers", [])
    for r in rows:
        ratio = r.get("ringmail_over_peer")
        lines.append("%-19s %-9s %-6s %8s %10s %9s %10s %8s %6s %8s %8s %9s %8s %9s %6s %-5s %-9s %s" % (
            r["sender"], r["mode"], size_name(r.get("size")), fmt(r.get("messages")),
            fmt(r.get("msg_s")), fmt(r.get("payload_mb_s"), 1), fmt(r.get("cpu_s_per_1k"), 3),
            fmt(r.get("engine_core_busy_pct"), 0) + "%" if r.get("engine_core_busy_pct")
            is not None else "-",
            fmt(r.get("sender_core_other_pct"), 0) + "%" if r.get("sender_core_other_pct")
            is not None else "-",
            fmt(r.get("syscalls_per_msg"), 1), fmt(r.get("sqes_per_msg"), 1),
            fmt(r.get("io_uring_enter_per_msg"), 2),
            fmt((r.get("peak_rss_kib") or 0) // 1024) + "M" if r.get("peak_rss_kib") else "-",
            fmt(r.get("sink_cpu_pct"), 0) + "%" + ("!" if r.get("sink_bound") else ""),
            fmt(r.get("redis_cpu_pct"), 0) + "%" if r.get("redis_cpu_pct") is not None else "-",
            r.get("ktls", "-"), ("%.1fx" % ratio) if ratio else "-",
            "ok" if r.get("ok") else "FAILED: " + "; ".join(r.get("problems", []))[:120]))
    lines.append("(snd core: how busy the sender's core was; other: the part of it not used by "
                 "the sender (other load: a high value makes the figure pessimistic);")
    lines.append(" sink cpu / redis: the process's "
                 "share of a core; '!' = the sink's core (shared with Redis by default) was "
                 ">= 95% busy: sink-bound; peers encrypt in userspace)")
    pr = [r for r in res.get("peers", []) if r.get("ringmail_over_peer")]
    if pr:
        lines.append("")
        lines.append("peers against ringmail's main job at the same size (ringmail / peer; "
                     ">1 favours ringmail):")
        lines.append("%-19s %-6s %10s %14s %14s" % ("peer", "size", "msg/s", "CPU per msg",
                                                   "peak RSS"))
        for r in pr:
            ring = _find(res.get("drain", []), size=r["size"]) or {}
            rss = (round(r["peak_rss_kib"] / ring["peak_rss_kib"], 1)
                   if r.get("peak_rss_kib") and ring.get("peak_rss_kib") else None)
            lines.append("%-19s %-6s %9.1fx %13sx %13sx" % (
                r["sender"], size_name(r["size"]), r["ringmail_over_peer"],
                fmt(r.get("peer_cpu_over_ringmail"), 1), fmt(rss, 1)))
    caps = [r for r in res.get("transport", []) if r.get("ok") and r.get("sink_capacity_msg_s")]
    if caps:
        lines.append("")
        lines.append("sink capacity (messages per CPU-second of the sink, from the transport "
                     "runs): " + ", ".join("%s %s msg/s" % (size_name(r["size"]),
                                                            fmt(r["sink_capacity_msg_s"]))
                                           for r in caps))
    ol = res.get("open_loop") or {}
    if ol.get("points"):
        lines.append("")
        lines.append("open loop, %s, enqueue-to-250 latency (1 ms resolution; 'recorded': "
                     "to the outcome written in Redis); peak = drain rate %s msg/s" % (
                         size_name(ol.get("size")), fmt(ol.get("peak_msg_s"))))
        lines.append("%10s %10s %8s %8s %8s %8s %12s %8s %6s %9s %s" % (
            "target/s", "offered/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "recorded p99",
            "snd core", "other", "sink cpu", "check"))
        for pt in ol["points"]:
            lines.append("%10s %10s %8s %8s %8s %8s %12s %8s %6s %9s %s" % (
                fmt(pt.get("rate")), fmt(pt.get("offered_msg_s")), fmt(pt.get("latency_ms_p50")),
                fmt(pt.get("latency_ms_p99")), fmt(pt.get("latency_ms_p999")),
                fmt(pt.get("latency_ms_max")), fmt(pt.get("recorded_ms_p99")),
                fmt(pt.get("engine_core_busy_pct"), 0) + "%",
                fmt(pt.get("sender_core_other_pct"), 0) + "%",
                fmt(pt.get("sink_cpu_pct"), 0) + "%" + ("!" if pt.get("sink_bound") else ""),
                "ok" if pt.get("ok") else "FAILED: " + "; ".join(pt.get("problems", []))[:100]))
    idle = res.get("idle")
    if idle:
        lines.append("")
        lines.append("idle: %s verified STARTTLS connections held by one ringmail send: "
                     "%s KiB per connection (RSS %s -> %s KiB) %s" % (
                         idle.get("connections"), fmt(idle.get("rss_kib_per_idle_connection"), 1),
                         fmt(idle.get("rss_before_kib")), fmt(idle.get("rss_after_kib")),
                         "ok" if idle.get("ok") else "FAILED: " + "; ".join(idle["problems"])))
    ie = res.get("idle_engine")
    if ie:
        lines.append("idle: %s verified STARTTLS connections held by ringmail run's worker: "
                     "%s KiB per connection (worker RSS %s KiB with 1, %s KiB with %s) %s" % (
                         ie.get("connections"), fmt(ie.get("rss_kib_per_idle_connection"), 1),
                         fmt(ie.get("worker_rss_kib_1")), fmt(ie.get("worker_rss_kib_n")),
                         ie.get("connections"),
                         "ok" if ie.get("ok") else "FAILED: " + "; ".join(ie["problems"])))
    sm = [r for r in res.get("drain", []) if r.get("syscall_method")]
    if sm:
        lines.append("syscalls per message: %s, separate drain of %s messages" % (
            sm[0]["syscall_method"], sm[0].get("perf_messages")))
    lines.append("")
    lines.append("%-48s %12s %10s  %s" % ("target", "measured", "target", "result"))
    for t in res.get("targets", []):
        lim = ("%s%s %s" % (">=" if t["better"] == "higher" else "<=", fmt(t["limit"]), t["unit"])
               if t["limit"] is not None else "-")
        lines.append("%-48s %12s %10s  %s%s" % (
            t["target"], fmt(t["value"], 1) + " " + t["unit"] if t["value"] is not None else "-",
            lim, t["status"].upper() if t["status"] != "n/a" else "n/a (not measured or failed)",
            ("  (" + t["note"] + ")") if t.get("note") else ""))
    if res.get("failures"):
        lines.append("")
        lines.append("FAILED runs (reported, not used as figures):")
        for f in res["failures"]:
            lines.append("  " + f)
    return "\n".join(lines)


def write_json(res, path):
    with open(path, "w") as f:
        json.dump(res, f, indent=2, sort_keys=False)
        f.write("\n")


def charts(res, out):
    """PNG charts with gnuplot: throughput by size per sender, latency by
    offered rate. Returns the files written (none without gnuplot)."""
    gp = shutil.which("gnuplot")
    if not gp:
        return []
    written = []
    rows = [r for r in res.get("drain", []) + res.get("transport", []) + res.get("peers", [])
            if r.get("ok") and r.get("mode") in ("drain", "transport", "peer")]
    senders = []
    for r in rows:
        if r["sender"] not in senders:
            senders.append(r["sender"])
    sizes = sorted({r["size"] for r in rows})
    if rows:
        dat = os.path.join(out, "throughput.dat")
        with open(dat, "w") as f:
            f.write("size " + " ".join('"%s"' % s for s in senders) + "\n")
            for size in sizes:
                vals = []
                for s in senders:
                    r = _find(rows, sender=s, size=size)
                    vals.append(str(r["msg_s"]) if r else "NaN")
                f.write('"%s" %s\n' % (size_name(size), " ".join(vals)))
        png = os.path.join(out, "throughput.png")
        plot = ", ".join("'%s' using %d:xtic(1) title columnheader(%d)" % (dat, i + 2, i + 2)
                         for i in range(len(senders)))
        script = """set terminal pngcairo size 1000,600 noenhanced
set output '%s'
set title 'Throughput by message size (msg/s, log scale; same sink, STARTTLS, verified)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set yrange [1:*]
set ylabel 'messages per second'
set xlabel 'message size'
set key outside right
set grid ytics
plot %s
""" % (png, plot)
        if _gnuplot(gp, script, out, "throughput"):
            written.append(png)
    ol = res.get("open_loop") or {}
    pts = [p for p in ol.get("points", []) if p.get("ok") and p.get("latency_ms_p50") is not None]
    if pts:
        dat = os.path.join(out, "latency.dat")
        with open(dat, "w") as f:
            f.write("offered p50 p99 p999\n")
            for p in pts:
                f.write("%s %s %s %s\n" % (p["offered_msg_s"], p["latency_ms_p50"],
                                          p["latency_ms_p99"], p["latency_ms_p999"]))
        png = os.path.join(out, "latency.png")
        script = """set terminal pngcairo size 1000,600 noenhanced
set output '%s'
set title 'ringmail enqueue-to-250 latency vs offered rate (%s messages; ms, log scale, 1 ms resolution)'
set xlabel 'offered rate (msg/s)'
set ylabel 'latency (ms)'
set logscale y
set yrange [0.4:*]
set grid
set key left top
set label 1 'under 1 ms is drawn at 0.5' at graph 0.02, graph 0.04
clamp(v) = v < 0.5 ? 0.5 : v
plot '%s' using 1:(clamp($2)) with linespoints title 'p50', \\
     '%s' using 1:(clamp($3)) with linespoints title 'p99', \\
     '%s' using 1:(clamp($4)) with linespoints title 'p99.9', \\
     5 with lines dashtype 2 title 'target: p99 <= 5 ms at half of peak'
""" % (png, size_name(ol.get("size")), dat, dat, dat)
        if _gnuplot(gp, script, out, "latency"):
            written.append(png)
    return written


def _gnuplot(gp, script, out, name):
    path = os.path.join(out, name + ".gp")
    with open(path, "w") as f:
        f.write(script)
    r = subprocess.run([gp, path], capture_output=True, text=True)
    if r.returncode != 0:
        with open(os.path.join(out, name + ".gp.err"), "w") as f:
            f.write(r.stderr)
        return False
    return True
