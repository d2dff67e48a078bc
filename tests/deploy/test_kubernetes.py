#!/usr/bin/env python3
"""Checks deploy/kubernetes/: every YAML file parses, the kinds are there,
the Deployment is locked down (non-root, read-only root, no privilege
escalation, all capabilities dropped, RuntimeDefault seccomp), probes hit
/healthz and /readyz on the metrics port, the grace period exceeds the
drain deadline, the Service carries the prometheus.io annotations, the
Secret's keys are the files the ConfigMap's password_file paths name, and
`ringmail check-config` accepts the ConfigMap's ringmail.yaml (with the
Secret's files written to a temporary directory).
  python3 tests/deploy/test_kubernetes.py /path/to/ringmail
Exit 77 (skip; a failure under CI=true) where PyYAML is missing (Debian: python3-yaml).
"""
import glob
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from skip import skip  # noqa: E402  (tests/skip.py)

try:
    import yaml
except ImportError:
    skip("PyYAML is not installed (Debian: python3-yaml; tests/setup.sh installs it)")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KDIR = os.path.join(ROOT, "deploy", "kubernetes")
SECRETS_DIR = "/run/secrets/ringmail"
passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print("ok: " + what)
    else:
        failed += 1
        print("FAIL: " + what)
    return cond


def dig(obj, *path):
    for p in path:
        if isinstance(obj, dict):
            obj = obj.get(p)
        elif isinstance(obj, list) and isinstance(p, int) and p < len(obj):
            obj = obj[p]
        else:
            return None
    return obj


def main():
    ringmail = sys.argv[1] if len(sys.argv) > 1 else None
    docs = {}
    files = sorted(glob.glob(os.path.join(KDIR, "*.yaml")))
    check(len(files) > 0, "%d YAML files" % len(files))
    for f in files:
        name = os.path.basename(f)
        try:
            with open(f, encoding="utf-8") as fh:
                loaded = [d for d in yaml.safe_load_all(fh) if d is not None]
        except yaml.YAMLError as err:
            check(False, "%s parses: %s" % (name, err))
            continue
        check(True, "%s parses" % name)
        for d in loaded:
            ok = check(isinstance(d, dict) and d.get("apiVersion") and d.get("kind"),
                       "%s: apiVersion and kind" % name)
            if not ok:
                continue
            if d["kind"] == "Kustomization":
                for r in d.get("resources", []):
                    check(os.path.exists(os.path.join(KDIR, r)), "kustomization resource %s exists" % r)
                continue
            check(not dig(d, "metadata", "namespace"), "%s %s: namespace-agnostic" % (name, d["kind"]))
            docs.setdefault(d["kind"], []).append(d)

    for kind in ("ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget",
                 "ScaledObject", "TriggerAuthentication"):
        check(kind in docs, "kind %s present" % kind)
    if failed:
        print("%d passed, %d failed" % (passed, failed))
        return 1

    cm = docs["ConfigMap"][0]
    secret = docs["Secret"][0]
    dep = docs["Deployment"][0]
    svc = docs["Service"][0]
    pdb = docs["PodDisruptionBudget"][0]
    so = docs["ScaledObject"][0]

    config_text = dig(cm, "data", "ringmail.yaml") or ""
    check(bool(config_text), "ConfigMap has ringmail.yaml")
    config = yaml.safe_load(config_text) or {}
    drain = config.get("shutdown_timeout", 30)
    listen = dig(config, "metrics", "listen") or "127.0.0.1:9465"
    port = int(listen.rsplit(":", 1)[1])
    check(not listen.startswith("127.") and not listen.startswith("[::1]"),
          "metrics.listen %s reachable by probes" % listen)

    spec = dig(dep, "spec", "template", "spec") or {}
    grace = spec.get("terminationGracePeriodSeconds", 30)
    check(grace > drain, "terminationGracePeriodSeconds %s > shutdown_timeout %s" % (grace, drain))
    pod_sc = spec.get("securityContext") or {}
    check(pod_sc.get("runAsNonRoot") is True, "pod runAsNonRoot")
    check(dig(pod_sc, "seccompProfile", "type") == "RuntimeDefault", "pod seccomp RuntimeDefault")
    containers = spec.get("containers") or []
    check(len(containers) == 1, "one container")
    c = containers[0] if containers else {}
    sc = c.get("securityContext") or {}
    check(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    check(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    check(dig(sc, "capabilities", "drop") == ["ALL"], "capabilities drop ALL")
    check(not dig(sc, "capabilities", "add"), "no capabilities added")
    check(sc.get("privileged") in (None, False), "not privileged")
    check(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, "container runAsNonRoot")
    argv = (c.get("command") or []) + (c.get("args") or [])
    check("run" in argv and "-c" in argv and "--instance" in argv, "runs 'ringmail run -c ... --instance'")
    cfg_arg = argv[argv.index("-c") + 1] if "-c" in argv else ""
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    check(os.path.dirname(cfg_arg) in mounts, "config %s is on a mounted volume" % cfg_arg)
    check(SECRETS_DIR in mounts, "Secret mounted at " + SECRETS_DIR)
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    check(ports.get("metrics") == port, "container port metrics = %d" % port)
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = dig(c, probe, "httpGet") or {}
        check(get.get("path") == path and get.get("port") in ("metrics", port),
              "%s GET %s on the metrics port" % (probe, path))
    res = c.get("resources") or {}
    check(bool(dig(res, "requests", "cpu")) and bool(dig(res, "requests", "memory"))
          and bool(dig(res, "limits", "memory")), "resources: cpu/memory requests, memory limit")
    check(not c.get("lifecycle", {}).get("preStop"), "no preStop hook (SIGTERM drains)")

    sel = dig(dep, "spec", "selector", "matchLabels") or {}
    labels = dig(dep, "spec", "template", "metadata", "labels") or {}
    check(sel and all(labels.get(k) == v for k, v in sel.items()), "Deployment selector matches pod labels")
    check(dig(svc, "spec", "selector") == sel, "Service selects the pods")
    check(dig(pdb, "spec", "selector", "matchLabels") == sel, "PDB selects the pods")
    ann = dig(svc, "metadata", "annotations") or {}
    check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(port)
          and ann.get("prometheus.io/path") == "/metrics", "Service prometheus.io annotations")
    svc_ports = dig(svc, "spec", "ports") or []
    check(any(p.get("port") == port for p in svc_ports), "Service exposes the metrics port")

    check(dig(so, "spec", "scaleTargetRef", "name") == dep["metadata"]["name"],
          "ScaledObject targets the Deployment")
    trig = (dig(so, "spec", "triggers") or [{}])[0]
    md = trig.get("metadata") or {}
    check(trig.get("type") == "redis-streams", "KEDA redis-streams trigger")
    redis = config.get("redis") or {}
    check(md.get("stream") == redis.get("stream", "ringmail:jobs")
          and md.get("consumerGroup") == redis.get("group", "ringmail"),
          "KEDA stream/group match the configuration")
    check(any(k in md for k in ("lagCount", "pendingEntriesCount")), "KEDA scales on lag/pending")

    # The Secret's keys must be exactly the files the configuration names.
    secret_data = dict(secret.get("stringData") or {})
    secret_data.update({k: "(base64)" for k in (secret.get("data") or {})})
    wanted = []
    if redis.get("password_file"):
        wanted.append(redis["password_file"])
    for r in config.get("relays") or []:
        if r.get("password_file"):
            wanted.append(r["password_file"])
    for w in wanted:
        check(os.path.dirname(w) == SECRETS_DIR and os.path.basename(w) in secret_data,
              "password_file %s is a key of the Secret" % w)

    if not ringmail or not os.access(ringmail, os.X_OK):
        print("note: no ringmail binary given, check-config not run")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            sdir = os.path.join(tmp, "secrets")
            os.mkdir(sdir, 0o700)
            for k, v in secret_data.items():
                with open(os.path.join(sdir, k), "w") as fh:
                    fh.write(v + "\n")
            path = os.path.join(tmp, "ringmail.yaml")
            with open(path, "w") as fh:
                fh.write(config_text.replace(SECRETS_DIR, sdir))
            r = subprocess.run([ringmail, "check-config", path], capture_output=True, text=True,
                               timeout=60)
            check(r.returncode == 0, "ringmail check-config accepts the ConfigMap (rc %d) %s%s"
                  % (r.returncode, r.stdout.strip(), r.stderr.strip()))

    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
