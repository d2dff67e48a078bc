"""Throwaway PKI for integration tests, made with the openssl command line.

Everything is generated at test time into a temporary directory: a root CA,
an intermediate, and server certificates that are good, expired, not yet
valid, for the wrong host, self-signed, signed by an untrusted CA, or whose
chain lacks the intermediate.
"""
import os
import subprocess

CA_CONF = """
[ ca ]
default_ca = ca_default
[ ca_default ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/newcerts
serial = {dir}/serial
default_md = sha256
policy = policy_any
copy_extensions = copy
unique_subject = no
[ policy_any ]
commonName = supplied
[ v3_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ v3_leaf ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def run(*args, cwd=None):
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Pki:
    def __init__(self, root):
        self.root = root
        os.makedirs(root, exist_ok=True)

    def path(self, name):
        return os.path.join(self.root, name)

    def _ca_dir(self, name):
        d = self.path(name + ".d")
        os.makedirs(os.path.join(d, "newcerts"), exist_ok=True)
        open(os.path.join(d, "index.txt"), "a").close()
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(d, "ca.cnf"), "w") as f:
            f.write(CA_CONF.format(dir=d))
        return d

    def key(self, name):
        run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", self.path(name + ".key"))

    def root_ca(self, name):
        self.key(name)
        d = self._ca_dir(name)
        run("openssl", "req", "-x509", "-new", "-key", self.path(name + ".key"), "-subj",
            "/CN=" + name, "-days", "3650", "-out", self.path(name + ".pem"), "-config",
            os.path.join(d, "ca.cnf"), "-extensions", "v3_ca")

    def sign(self, name, ca, cn, sans=None, ext="v3_leaf", start=None, end=None, days=365):
        """A certificate for name's key, signed by CA ca (a root_ca or intermediate)."""
        self.key(name)
        csr = self.path(name + ".csr")
        req = ["openssl", "req", "-new", "-key", self.path(name + ".key"), "-subj", "/CN=" + cn,
               "-out", csr]
        if sans:
            req += ["-addext", "subjectAltName=" + ",".join(sans)]
        run(*req)
        d = self.path(ca + ".d")
        cmd = ["openssl", "ca", "-batch", "-config", os.path.join(d, "ca.cnf"), "-cert",
               self.path(ca + ".pem"), "-keyfile", self.path(ca + ".key"), "-in", csr, "-out",
               self.path(name + ".pem"), "-extensions", ext, "-notext"]
        if start:
            cmd += ["-startdate", start]
        if end:
            cmd += ["-enddate", end]
        if not end:
            cmd += ["-days", str(days)]
        run(*cmd)
        if ext == "v3_ca":
            self._ca_dir(name)

    def self_signed(self, name, cn, sans):
        self.key(name)
        run("openssl", "req", "-x509", "-new", "-key", self.path(name + ".key"), "-subj",
            "/CN=" + cn, "-days", "365", "-addext", "subjectAltName=" + ",".join(sans),
            "-out", self.path(name + ".pem"))

    def chain(self, name, *parts):
        with open(self.path(name + ".chain.pem"), "w") as out:
            for p in parts:
                with open(self.path(p + ".pem")) as f:
                    out.write(f.read())
        return self.path(name + ".chain.pem")


def make_all(root):
    """The whole set the transport tests use. Returns the Pki."""
    p = Pki(root)
    sans = ["DNS:localhost", "IP:127.0.0.1"]
    p.root_ca("root")
    p.sign("inter", "root", "intermediate", ext="v3_ca", days=3000)
    p.sign("good", "inter", "localhost", sans)
    p.chain("good", "good", "inter")
    p.sign("expired", "inter", "localhost", sans, start="20200101000000Z", end="20210101000000Z")
    p.chain("expired", "expired", "inter")
    p.sign("future", "inter", "localhost", sans, start="20990101000000Z", end="20991231000000Z")
    p.chain("future", "future", "inter")
    p.sign("wronghost", "inter", "mx.other.example", ["DNS:mx.other.example"])
    p.chain("wronghost", "wronghost", "inter")
    p.self_signed("selfsigned", "localhost", sans)
    p.chain("selfsigned", "selfsigned")
    p.root_ca("rogue")
    p.sign("untrusted", "rogue", "localhost", sans)
    p.chain("untrusted", "untrusted")
    p.chain("nointer", "good")  # the leaf alone: the intermediate is missing
    return p
