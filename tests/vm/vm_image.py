"""The kTLS guest's boot files: Debian's packaged kernel (which has tls.ko,
unlike the CONFIG_TLS-less development and CI kernels) and an initramfs that
holds busybox, the ringmail binaries, redis, their shared libraries, a test
PKI and the guest scripts.

The kernel package is fetched with `apt-get download` (the version that
linux-image-amd64 depends on) and unpacked with `dpkg -x`, never installed;
downloads are kept in the cache directory between runs.
"""
import gzip
import io
import os
import re
import shutil
import stat
import subprocess

# What the kTLS checks need in the guest, in load order after dependencies.
# Nothing auto-loads modules in a busybox initramfs: the AEAD pieces must be
# there before tls.ko, or TLS_TX fails and OpenSSL silently stays in
# userspace (docs/architecture.md). A module that is built in, or that refuses this CPU,
# is skipped; tls.ko itself must load.
MODULES = ["gf128mul", "ghash-generic", "cryptd", "crypto_simd", "ghash-clmulni-intel",
           "aesni-intel", "ctr", "gcm", "libchacha", "chacha_generic", "chacha-x86_64",
           "poly1305_generic", "poly1305-x86_64", "chacha20poly1305", "tls"]


class Unavailable(Exception):
    """Something the guest needs cannot be had here (the test exits 77)."""


def run(args, **kw):
    return subprocess.run(args, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kw).stdout


def kernel_package():
    """linux-image-X-amd64, the package linux-image-amd64 depends on."""
    try:
        out = run(["apt-cache", "depends", "linux-image-amd64"])
    except (OSError, subprocess.CalledProcessError) as e:
        raise Unavailable("apt-cache cannot resolve linux-image-amd64: %s" % e)
    m = re.search(r"Depends:\s*(linux-image-[0-9][^\s]*-amd64)\b", out)
    if not m:
        raise Unavailable("linux-image-amd64 names no kernel package:\n" + out)
    return m.group(1)


def fetch_kernel(cache):
    """(vmlinuz path, modules dir) of the unpacked kernel package in cache."""
    try:
        return _fetch_kernel(cache)
    except Unavailable:
        # Stale package lists name a kernel the mirror no longer has: as
        # root, refresh them once (apt only) and try again.
        if os.geteuid() != 0:
            raise
        subprocess.run(["apt-get", "update", "-qq"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return _fetch_kernel(cache)


def _fetch_kernel(cache):
    pkg = kernel_package()
    root = os.path.join(cache, pkg)
    if not os.path.isdir(os.path.join(root, "boot")):
        dl = os.path.join(cache, "download")
        os.makedirs(dl, exist_ok=True)
        debs = [f for f in os.listdir(dl) if f.startswith(pkg + "_") and f.endswith(".deb")]
        if not debs:
            try:
                run(["apt-get", "download", pkg], cwd=dl)
            except (OSError, subprocess.CalledProcessError) as e:
                err = getattr(e, "stderr", "") or str(e)
                raise Unavailable("apt-get download %s failed: %s" % (pkg, err.strip()))
            debs = [f for f in os.listdir(dl) if f.startswith(pkg + "_") and f.endswith(".deb")]
        tmp = root + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        run(["dpkg", "-x", os.path.join(dl, sorted(debs)[-1]), tmp])
        _prune(tmp)
        os.rename(tmp, root)
        # The pruned tree is the cache now: drop the package and older
        # kernels' trees.
        for f in os.listdir(dl):
            os.unlink(os.path.join(dl, f))
        for d in os.listdir(cache):
            if d.startswith("linux-image-") and d != pkg:
                shutil.rmtree(os.path.join(cache, d), ignore_errors=True)
    boot = os.path.join(root, "boot")
    vmlinuz = [f for f in os.listdir(boot) if f.startswith("vmlinuz-")]
    mods = os.path.join(root, "lib", "modules")
    if not vmlinuz or not os.path.isdir(mods):
        raise Unavailable("%s has no vmlinuz or no modules" % pkg)
    release = vmlinuz[0][len("vmlinuz-"):]
    return os.path.join(boot, vmlinuz[0]), os.path.join(mods, release)


# Where MODULES and their dependencies live in the package's module tree.
KEEP_MODULE_DIRS = ("net/tls", "crypto", "arch/x86/crypto", "lib")


def _prune(root):
    """Keep vmlinuz and the module directories the guest can need: the
    unpacked package is ~400 MiB, this ~20."""
    for dirpath, _, files in os.walk(os.path.join(root, "lib", "modules")):
        for f in files:
            path = os.path.join(dirpath, f)
            rel = path.split("/kernel/", 1)[1] if "/kernel/" in path else None
            if rel is None or not any(rel.startswith(k + "/") for k in KEEP_MODULE_DIRS):
                os.unlink(path)
    for d in ("usr", "etc"):
        shutil.rmtree(os.path.join(root, d), ignore_errors=True)
    boot = os.path.join(root, "boot")
    for f in os.listdir(boot):
        if not f.startswith("vmlinuz-"):
            os.unlink(os.path.join(boot, f))


def _modinfo(data, key):
    """Values of key in a module's .modinfo strings ("depends=a,b")."""
    out = []
    for m in re.finditer(rb"(?:^|\x00)" + key.encode() + rb"=([^\x00]*)", data):
        out.append(m.group(1).decode())
    return out


def _read_module(path):
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        import lzma
        data = lzma.decompress(data)
    elif path.endswith(".zst"):
        raise Unavailable("zstd-compressed modules: not handled (%s)" % path)
    return data


def modules_in_order(moddir, wanted):
    """[(name, bytes)] for wanted and their dependencies, dependencies first,
    decompressed (busybox insmod takes plain .ko only). The package has no
    modules.dep (depmod runs at install), so the .modinfo depends= lines are
    read directly."""
    index = {}
    for dirpath, _, files in os.walk(os.path.join(moddir, "kernel")):
        for f in files:
            m = re.match(r"^(.*)\.ko(\.xz|\.zst)?$", f)
            if m:
                index[m.group(1).replace("-", "_")] = os.path.join(dirpath, f)
    order, seen = [], set()

    def visit(name):
        key = name.replace("-", "_")
        if key in seen or key not in index:
            return  # built in (or absent): nothing to load
        seen.add(key)
        data = _read_module(index[key])
        for deps in _modinfo(data, "depends"):
            for d in filter(None, deps.split(",")):
                visit(d)
        order.append((key, data))

    for w in wanted:
        visit(w)
    if "tls" not in seen:
        raise Unavailable("the kernel package has no tls module")
    return order


class Cpio:
    """A newc archive built in memory (no cpio tool needed)."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1
        self.dirs = set()

    def _entry(self, name, mode, data=b"", nlink=1, rdev=(0, 0)):
        name_b = name.encode() + b"\0"
        hdr = "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X" % (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0)
        self.ino += 1
        self.buf.write(hdr.encode() + name_b)
        self.buf.write(b"\0" * (-(110 + len(name_b)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def mkdir(self, path):
        path = path.strip("/")
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.dirs:
                self.dirs.add(d)
                self._entry(d, stat.S_IFDIR | 0o755, nlink=2)

    def file(self, path, data, mode=0o644):
        path = path.strip("/")
        self.mkdir(os.path.dirname(path))
        self._entry(path, stat.S_IFREG | mode, data)

    def symlink(self, path, target):
        path = path.strip("/")
        self.mkdir(os.path.dirname(path))
        self._entry(path, stat.S_IFLNK | 0o777, target.encode())

    def copy(self, src, dst=None, mode=None):
        with open(src, "rb") as f:
            data = f.read()
        self.file(dst or src, data, mode if mode is not None else (os.stat(src).st_mode & 0o777))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def shared_libs(binaries):
    """Absolute paths of the shared libraries (and the loader) the binaries
    need, as ldd resolves them here."""
    libs = set()
    for b in binaries:
        # A static binary (busybox-static) makes ldd fail: it needs nothing.
        out = subprocess.run(["ldd", b], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True).stdout
        for line in out.splitlines():
            m = re.search(r"=>\s*(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
            if m:
                libs.add(m.group(1))
    return sorted(libs)


def which(name):
    p = shutil.which(name)
    if not p:
        raise Unavailable("%s is not installed (tests/setup.sh installs it)" % name)
    return p


def build_initramfs(out_path, moddir, binaries, files):
    """Write the gzip'd initramfs.

    binaries: {guest path: host path} of executables (their libraries come
    along); files: {guest path: (bytes, mode)}."""
    busybox = which("busybox")
    a = Cpio()
    for d in ("dev", "proc", "sys", "tmp", "run", "etc", "root", "bin", "sbin", "usr/bin",
              "var/lib", "mods"):
        a.mkdir(d)
    a.copy(busybox, "bin/busybox", 0o755)
    a.symlink("bin/sh", "busybox")
    # The kernel needs a console before /init opens anything.
    a._entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    for guest, host in binaries.items():
        a.copy(host, guest, 0o755)
    for lib in shared_libs(list(binaries.values()) + [busybox]):
        a.copy(lib, lib, 0o755)
        real = os.path.realpath(lib)
        if real != lib:  # e.g. /lib64 -> /usr/lib64 on a merged-/usr host
            a.copy(real, real, 0o755)
    order = []
    for name, data in modules_in_order(moddir, MODULES):
        a.file("mods/%s.ko" % name, data)
        order.append(name)
    a.file("mods/order", ("\n".join(order) + "\n").encode())
    for guest, (data, mode) in files.items():
        a.file(guest, data, mode)
    with open(out_path, "wb") as f:
        f.write(gzip.compress(a.finish(), 6))
    return order
