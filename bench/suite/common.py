"""Shared pieces of the benchmark suite: processes and their CPU, cores,
free ports, messages, a pipelined Redis client, progress output.

Everything here reads the kernel's own accounting (/proc/PID/stat,
/proc/stat, /proc/PID/status) so that every figure has one definition for
ringmail and for the peer senders alike.
"""
import os
import socket
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")
ORIGINAL_AFFINITY = sorted(os.sched_getaffinity(0))  # before the harness pins itself
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


# ---- CPU and memory ---------------------------------------------------------

def proc_stat(pid):
    """(utime, stime, cutime, cstime) in seconds, or None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    # fields[0] is field 3 (state): utime is field 14 -> index 11
    return tuple(int(fields[i]) / HZ for i in (11, 12, 13, 14))


def children(pid):
    """Direct children of pid (every thread's children list)."""
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def tree(pid):
    """pid and all its live descendants."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo += children(p)
    return seen


def tree_cpu(pid):
    """CPU seconds of a process tree: every live process's user+system,
    plus what reaped children left in their parents' cutime/cstime."""
    total = 0.0
    for p in tree(pid):
        st = proc_stat(p)
        if st:
            total += sum(st)
    return total


def status_kib(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_hwm_kib(pid):
    """Sum of the peak RSS (VmHWM) of a process tree's live processes."""
    return sum(status_kib(p, "VmHWM") for p in tree(pid))


def tree_pss_kib(pid):
    """Proportional set size of a process tree now: shared pages divided
    among the processes that map them (fair to many-process senders)."""
    total = 0
    for p in tree(pid):
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def tree_rss_kib(pid):
    return sum(status_kib(p, "VmRSS") for p in tree(pid))


class CoreDict(dict):
    detail = None
    harness_cpu = 0.0


class CoreMeter:
    """Busy time of each CPU over an interval, from /proc/stat."""

    def __init__(self):
        self.t0 = self._read()
        t = os.times()
        self.self0 = t.user + t.system

    @staticmethod
    def _read():
        out = {}
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu") and line[3].isdigit():
                    parts = line.split()
                    v = [int(x) for x in parts[1:]]
                    idle = v[3] + (v[4] if len(v) > 4 else 0)
                    out[int(parts[0][3:])] = (sum(v[:8]) - idle, sum(v[:8]), v[:8])
        return out

    def busy(self):
        """{cpu: (busy seconds, fraction busy)} since construction; .detail
        has each core's user/system/softirq/steal/idle shares."""
        out = CoreDict()
        out.detail = self.breakdown()
        t = os.times()
        out.harness_cpu = t.user + t.system - self.self0  # this process, all threads
        t1 = self._read()
        for cpu, (b1, a1, _) in t1.items():
            b0, a0, _ = self.t0.get(cpu, (0, 0, None))
            out[cpu] = ((b1 - b0) / HZ, (b1 - b0) / (a1 - a0) if a1 > a0 else 0.0)
        return out

    def breakdown(self):
        """{cpu: {user, nice, system, idle, iowait, irq, softirq, steal}} shares."""
        t1 = self._read()
        names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
        out = {}
        for cpu, (_, a1, v1) in t1.items():
            _, a0, v0 = self.t0.get(cpu, (0, 0, [0] * 8))
            tot = max(a1 - a0, 1)
            out[str(cpu)] = {n: round((v1[i] - v0[i]) / tot, 3) for i, n in enumerate(names)}
        return out


def machine():
    """The machine's description for the JSON report."""
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = status = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1])
    flags = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = line
                break
    del status
    ktls = os.path.exists("/proc/net/tls_stat")
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "cpus_allowed": ORIGINAL_AFFINITY,
        "kernel": os.uname().release,
        "kernel_tls_module": ktls,
        "aes_ni": " aes " in flags,
        "vaes": " vaes " in flags,
        "memory_kib": mem,
        "openssl": subprocess.run(["openssl", "version"], capture_output=True,
                                  text=True).stdout.strip(),
        "python": sys.version.split()[0],
        "hostname": os.uname().nodename,
    }


def background(cpus, seconds=1.0):
    """How busy the cores were before the suite started anything (other
    people's work on a shared machine shows here), and the busiest
    processes then."""
    m = CoreMeter()
    t0 = {}
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        st = proc_stat(pid)
        if st:
            t0[pid] = st[0] + st[1]
    time.sleep(seconds)
    busy = m.busy()
    top = []
    for pid, c0 in t0.items():
        st = proc_stat(pid)
        if st and st[0] + st[1] - c0 > 0.05 * seconds and pid != os.getpid():
            try:
                with open("/proc/%d/comm" % pid) as f:
                    name = f.read().strip()
            except OSError:
                name = "?"
            top.append({"pid": pid, "comm": name,
                        "cpu_pct": round(100 * (st[0] + st[1] - c0) / seconds, 1)})
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    return {"core_busy_pct": {str(c): round(100 * busy.get(c, (0, 0))[1], 1) for c in cpus},
            "loadavg": load, "busy_processes": sorted(top, key=lambda x: -x["cpu_pct"])[:5]}


# ---- messages ---------------------------------------------------------------

LINE = b"The quick brown fox jumps over the lazy dog, again and again. 0123456789\r\n"


def message_body(size):
    """A plain text body, CRLF lines, so that the whole message is `size`
    octets once the headers (message_head) are in front."""
    head = len(message_head("x" * 40))
    n = max(size - head, len(LINE))
    body = (LINE * (n // len(LINE) + 1))[:n - 2]
    if body.endswith(b"\r"):
        body = body[:-1] + b"x"
    return body + b"\r\n"


def message_head(msgid):
    return ("From: bench@example.org\r\nTo: rcpt@example.net\r\n"
            "Subject: ringmail benchmark\r\nMessage-ID: <%s@bench.example.org>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            % msgid).encode()


def message_id(run, i):
    """40 characters, unique per run and index, the same length for all."""
    return ("%-20s%020d" % (run[:20], i)).replace(" ", "x")


def message(run, i, body):
    return message_head(message_id(run, i)) + body


# ---- Redis ------------------------------------------------------------------

class Resp:
    """A minimal pipelined RESP client (the suite needs no redis-py)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pos = 0

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, int):
                a = b"%d" % a
            out.append(b"$%d\r\n" % len(a))
            out.append(a)
            out.append(b"\r\n")
        return b"".join(out)

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, need):
        """At least `need` unread octets in the buffer (read position kept
        as an index: no copy of the rest per reply)."""
        if self.pos:
            self.buf = self.buf[self.pos:]
            self.pos = 0
        parts = [self.buf]
        have = len(self.buf)
        while have < need:
            chunk = self.sock.recv(max(1 << 20, need - have))
            if not chunk:
                raise ConnectionError("redis closed the connection")
            parts.append(chunk)
            have += len(chunk)
        self.buf = b"".join(parts)

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos:i]
                self.pos = i + 2
                return line
            self._fill(len(self.buf) - self.pos + 1)

    def _exact(self, n):
        if len(self.buf) - self.pos < n + 2:
            self._fill(n + 2)
        data = self.buf[self.pos:self.pos + n]
        self.pos += n + 2
        return data

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError("redis: " + rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RuntimeError("redis: unexpected reply %r" % line[:40])

    def call(self, *args):
        self.send(self.encode(*args))
        return self.reply()

    def close(self):
        self.sock.close()


def stream_ms(entry_id):
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    return int(entry_id.split("-", 1)[0])


# ---- output -----------------------------------------------------------------

class Progress:
    """One status line rewritten in place on a terminal; plain lines
    otherwise (ctest, a pipe)."""

    def __init__(self, total):
        self.total = total
        self.step = 0
        self.tty = sys.stderr.isatty()
        self.t0 = time.time()
        self.label = ""

    def begin(self, label):
        self.step += 1
        self.label = label
        self.update("")
        if not self.tty:
            sys.stderr.write("[%d/%d %5.0fs] %s\n" % (self.step, self.total,
                                                     time.time() - self.t0, label))
            sys.stderr.flush()

    def update(self, detail):
        if not self.tty:
            return
        line = "[%d/%d %5.0fs] %s %s" % (self.step, self.total, time.time() - self.t0,
                                         self.label, detail)
        sys.stderr.write("\r\033[K" + line[:150])
        sys.stderr.flush()

    def done(self, summary):
        if self.tty:
            sys.stderr.write("\r\033[K")
        sys.stderr.write("  %s\n" % summary)
        sys.stderr.flush()

    def note(self, text):
        if self.tty:
            sys.stderr.write("\r\033[K")
        sys.stderr.write("  ! %s\n" % text)
        sys.stderr.flush()
