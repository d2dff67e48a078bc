#!/usr/bin/env python3
"""kTLS proven on a real kernel: boot Debian's packaged kernel (it has tls.ko;
the development and CI kernels lack CONFIG_TLS) under qemu, software
emulated (TCG), with an initramfs holding ringmail, ringmail-sink and redis,
and run tests/vm/guest_checks.sh there. The guest reports over the serial
console; this script decides.

usage: test_ktls_vm.py RINGMAIL SINK TEST_LOOP [--no-figures] [--cache DIR] [--keep]

Exit 0: every check passed; 1: a check failed or never reported; 77: the
guest cannot run here (no qemu, no kernel package), with the reason; under
CI=true that is a failure instead (tests/skip.py), as kTLS has no other proof.
Figures from the guest come from an emulated CPU: they show the direction
of kTLS's effect on the sender's CPU time, never real speed.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import vm_image  # noqa: E402
sys.path.insert(0, os.path.join(HERE, ".."))
from skip import skip  # noqa: E402  (tests/skip.py: under CI=true a skip fails)
import pki  # noqa: E402

# Sizes of the batches: TCG runs maybe 20-50x slower than the host, and the
# whole test must stay well under 10 minutes on CI's 2 cores.
PARAMS = {
    "N": 30,          # messages per cipher case
    "CONNS": 3,       # connections per cipher case
    "N_LARGE": 4,     # 1 MiB messages
    "N_ENGINE": 40,   # 2 KB jobs through `ringmail run`
    "N_ENGINE_BIG": 6,  # and 512 KB ones
    # Enough messages that the handshake (~0.1 s of emulated CPU) fades and
    # busybox time's 10 ms resolution does not matter.
    "FIG_2K": 600,
    "FIG_100K": 100,
    "FIG_1M": 12,
    "FIG_ROUNDS": 3,
    "SINK_RX_FLAGS": "",
}

EXPECTED = ["loop_kernel", "no_module_tls13", "no_module_tls12", "no_module_quit_order",
            "insmod_tls"] + [
    "ktls_tls3_" + c for c in ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                               "TLS_CHACHA20_POLY1305_SHA256")] + [
    "ktls_tls2_" + c for c in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                               "ECDHE-ECDSA-CHACHA20-POLY1305")] + [
    "ktls_large_1m", "ktls_slow_reader", "ktls_quit_order", "ktls_key_update",
    "ktls_key_update_pipelined", "ktls_engine"]

QEMU_TIMEOUT = 780


def message(size, tag):
    """A CRLF message of exactly size octets (lines well under 998), with a
    Message-ID, a dot-leading line and a 'From ' line, so that any
    transformation on the way would show."""
    head = ("From: sender@example.org\r\nTo: rcpt@example.net\r\nSubject: kTLS guest %s\r\n"
            "Message-ID: <%s@ringmail-vm.test>\r\nMIME-Version: 1.0\r\n\r\n"
            ".a line that starts with a dot\r\nFrom the body, a line that mbox would mangle\r\n"
            % (tag, tag))
    out = [head]
    n = len(head)
    i = 0
    while n + 78 <= size:
        line = ("%06d %s" % (i, ("ringmail kTLS body %d " % (i % 97)) * 3))[:76] + "\r\n"
        out.append(line)
        n += len(line)
        i += 1
    rest = size - n
    if rest >= 2:
        out.append("x" * (rest - 2) + "\r\n")
    elif rest == 1:  # one octet short of a line: lengthen the last one
        out[-1] = out[-1][:-2] + "y\r\n"
    data = "".join(out).encode()
    assert len(data) == size, (len(data), size)
    return data


def guest_files(work):
    p = pki.Pki(os.path.join(work, "pki"))
    p.root_ca("root")
    p.sign("good", "root", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
    files = {}
    for name in ("root.pem", "good.pem", "good.key"):
        with open(p.path(name), "rb") as f:
            files["vm/pki/" + name] = (f.read(), 0o644)
    for name, size in (("small", 2048), ("large", 1 << 20), ("fig2k", 2048),
                       ("fig100k", 102400), ("fig1m", 1 << 20), ("huge", 8 << 20)):
        files["vm/msg/%s.eml" % name] = (message(size, name), 0o644)
    for name in ("guest_init.sh", "guest_checks.sh"):
        with open(os.path.join(HERE, name), "rb") as f:
            files["init" if name == "guest_init.sh" else "vm/" + name] = (f.read(), 0o755)
    return files


def boot(vmlinuz, initrd, log_path, timeout):
    """Run the guest; yield console lines as they come; the full console goes
    to log_path."""
    cmd = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "1G",
           "-nographic", "-nic", "none", "-no-reboot", "-kernel", vmlinuz, "-initrd", initrd,
           "-append", "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off"]
    deadline = time.monotonic() + timeout
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            for raw in iter(proc.stdout.readline, b""):
                log.write(raw)
                log.flush()
                yield raw.decode("utf-8", "replace").rstrip("\r\n")
                if time.monotonic() > deadline:
                    yield "RMVM HOST-TIMEOUT after %d s" % timeout
                    break
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def figures_table(figs):
    """CPU per message, kTLS off vs on, per size: the smallest of the rounds
    (the emulated CPU's time stretches when the host is busy), and the
    largest in brackets to show the spread."""
    rows = {}
    for f in figs:
        if f.get("rc") != "0":
            continue  # a failed run is reported as a failure, not a figure
        cpu = sum(float(x) for x in f["cpu"].split()) / int(f["count"])
        rows.setdefault(int(f["size"]), {}).setdefault(f["ktls"], []).append(cpu * 1000)
    lines = ["figures from an EMULATED CPU (qemu TCG): direction only, not real speed",
             "sender CPU (user+sys) per message in ms, best of %d rounds [worst], one "
             "connection, %s:" % (PARAMS["FIG_ROUNDS"],
                                  ", ".join(sorted(set(f.get("tls", "?") for f in figs)))),
             "%10s %20s %20s %8s" % ("size", "kTLS off", "kTLS on", "on/off")]
    for size in sorted(rows):
        off, on = rows[size].get("0"), rows[size].get("1")
        if not off or not on:
            continue
        ratio = min(on) / min(off) if min(off) else float("nan")
        lines.append("%10s %9.3f [%8.3f] %9.3f [%8.3f] %8.2f" % (
            "%d B" % size, min(off), max(off), min(on), max(on), ratio))
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ringmail")
    ap.add_argument("sink")
    ap.add_argument("test_loop", help="the loop's unit test, run on the guest's kernel")
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--cache", default=os.environ.get("RINGMAIL_VM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ringmail-vm"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--guest-script", help="run this instead of guest_checks.sh (debugging)")
    a = ap.parse_args()

    for tool in ("qemu-system-x86_64", "busybox", "redis-server", "redis-cli"):
        if not shutil.which(tool):
            skip("%s is not installed (sh tests/setup.sh installs it)" % tool)
    t0 = time.monotonic()
    os.makedirs(a.cache, exist_ok=True)
    try:
        vmlinuz, moddir = vm_image.fetch_kernel(a.cache)
    except vm_image.Unavailable as e:
        skip(str(e))
    work = tempfile.mkdtemp(prefix="ringmail-vm-")
    params = dict(PARAMS, FIGURES=0 if a.no_figures else 1)
    files = guest_files(work)
    if a.guest_script:
        with open(a.guest_script, "rb") as f:
            files["vm/guest_checks.sh"] = (f.read(), 0o755)
    files["vm/params"] = ("".join("%s='%s'\n" % kv for kv in params.items()).encode(), 0o644)
    binaries = {"usr/bin/ringmail": a.ringmail, "usr/bin/ringmail-sink": a.sink,
                "usr/bin/redis-server": os.path.realpath(shutil.which("redis-server")),
                "usr/bin/redis-cli": os.path.realpath(shutil.which("redis-cli")),
                "usr/bin/test_loop": a.test_loop}
    initrd = os.path.join(work, "initrd.gz")
    try:
        mods = vm_image.build_initramfs(initrd, moddir, binaries, files)
    except vm_image.Unavailable as e:
        skip(str(e))
    print("guest: %s, initramfs %.1f MiB, modules: %s (built in %.1f s)" % (
        os.path.basename(vmlinuz), os.path.getsize(initrd) / 1048576, " ".join(mods),
        time.monotonic() - t0), flush=True)

    console = os.path.join(work, "console.log")
    checks, summaries, figs, done = {}, [], [], False
    for line in boot(vmlinuz, initrd, console, QEMU_TIMEOUT):
        i = line.find("RMVM ")
        if i < 0:
            continue
        line = line[i:]
        print(line, flush=True)
        parts = line.split(" ", 3)
        if parts[1] == "CHECK":
            checks.setdefault(parts[2], []).append(parts[3] if len(parts) > 3 else "")
        elif parts[1] == "SUMMARY":
            summaries.append(line[len("RMVM SUMMARY "):])
        elif parts[1] == "FIGURE":
            figs.append(dict(kv.split("=", 1) for kv in line.split()[2:]
                             if "=" in kv and not kv.startswith("cpu=")))
            figs[-1]["cpu"] = line.split("cpu=", 1)[1] if "cpu=" in line else ""
        elif parts[1] == "DONE":
            done = True
    elapsed = time.monotonic() - t0

    failed = []
    for name in EXPECTED:
        res = checks.get(name)
        if not res:
            failed.append("%s: never reported" % name)
        elif any(not r.startswith("PASS") for r in res):
            failed.append("%s: %s" % (name, "; ".join(res)))
    for name, res in checks.items():
        if name not in EXPECTED and any(not r.startswith("PASS") for r in res):
            failed.append("%s: %s" % (name, "; ".join(res)))
    if not done:
        failed.append("the guest did not finish (see %s)" % console)
    if not a.no_figures:
        for f in figs:
            if f.get("rc") != "0" or f.get("sent") != f.get("count") or \
                    f.get("conn_ktls_tx") != f.get("ktls"):
                failed.append("figure run failed: %s" % f)
        # Every size needs a kTLS-off and a kTLS-on figure (a round whose
        # rmmod tls failed has no off ones; the guest logged why).
        for size in ("2048", "102400", "1048576"):
            for k in ("0", "1"):
                if not any(f.get("size") == size and f.get("ktls") == k for f in figs):
                    failed.append("no figure for %s B with kTLS %s" % (size, "on" if k == "1"
                                                                         else "off"))

    print("\n== kTLS guest summary (%.0f s in all)" % elapsed)
    for s in summaries:
        print("  " + s)
    if figs:
        print("== " + "\n   ".join(figures_table(figs)))
    if failed:
        print("== FAILED:")
        for f in failed:
            print("  " + f)
        print("== console log kept in %s" % console)
        with open(console, "rb") as f:
            tail = f.read()[-3000:].decode("utf-8", "replace")
        print("== console tail:\n" + tail)
        return 1
    print("== every check passed")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("work directory: %s" % work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
