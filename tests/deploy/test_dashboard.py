#!/usr/bin/env python3
"""Checks deploy/grafana/ringmail-dashboard.json: valid JSON, a Grafana
dashboard (schemaVersion, a ${datasource} variable of type prometheus, a
relay variable), unique panel ids, every panel with a datasource and
targets, and every PromQL expression naming only metrics the engine serves;
the same for every expression of the alert rules and every series of their
unit tests (deploy/prometheus/). What the engine serves is read from the
code's own output: METRICS_EXPOSITION (metrics_exposition, built with the
tests) prints the exposition metrics_render writes, every family present.
Every dashboard expression is also parsed by promtool (as a recording rule);
without promtool that part is a note, or a failure under CI=true.
  python3 tests/deploy/test_dashboard.py build/tests/metrics_exposition
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "ringmail-dashboard.json")
RULES = os.path.join(ROOT, "deploy", "prometheus", "ringmail.rules.yml")
RULES_TEST = os.path.join(ROOT, "deploy", "prometheus", "ringmail.rules.test.yml")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from skip import missing, skip  # noqa: E402  (tests/skip.py)

METRICS = set()  # families, from the exposition's "# TYPE" lines
ALLOWED = set()  # the sample names they serve (a histogram's _bucket, _sum, _count)
# Series Prometheus adds itself to every scrape (an alert on the target
# being down needs "up").
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                  "scrape_samples_post_metric_relabeling", "scrape_series_added"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "inf", "nan", "atan2"}

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


def metric_names(expr):
    """The metric names an expression selects: drop strings, label matchers,
    range/subquery brackets, grouping clauses and Grafana variables, then any
    identifier not followed by '(' (a function) and not a keyword is one."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^{}]*\}", " ", e)
    e = re.sub(r"\[[^\[\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def grafana_to_promql(expr):
    e = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return re.sub(r"\$\{?\w+\}?", ".*", e)


def served(program):
    """The families and sample names in the exposition program prints."""
    r = subprocess.run([program], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (program, r.returncode, r.stderr))
    families = {}
    for m in re.finditer(r"^# TYPE (\S+) (\S+)$", r.stdout, re.M):
        families[m.group(1)] = m.group(2)
    samples = set()
    for name, kind in families.items():
        samples |= ({name + s for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else
                    {name + s for s in ("", "_sum", "_count")} if kind == "summary" else {name})
    seen = set(re.findall(r"^([A-Za-z_:][\w:]*)(?:\{| )", r.stdout, re.M))
    return families, samples, seen


def check_names(where, names):
    unknown = names - ALLOWED - PROMETHEUS_OWN
    check(names and not unknown, "%s: metrics %s%s" % (
        where, sorted(names), " not served by the engine: %s" % sorted(unknown) if unknown else ""))


def check_rules():
    """Every alert or recording rule's expression and every input series of
    the rule tests names only served metrics."""
    try:
        import yaml
    except ImportError:
        skip("PyYAML is not installed (Debian: python3-yaml; tests/setup.sh installs it)")
    with open(RULES, encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    n = 0
    for g in rules.get("groups", []):
        for r in g.get("rules", []):
            n += 1
            check_names("rule %s" % (r.get("alert") or r.get("record")), metric_names(r["expr"]))
    check(n > 0, "%d rules in ringmail.rules.yml" % n)
    with open(RULES_TEST, encoding="utf-8") as f:
        tests = yaml.safe_load(f)
    for i, t in enumerate(tests.get("tests", [])):
        for s in t.get("input_series", []):
            # Another program's series (a test's bystander) cannot be our typo.
            name = re.match(r"[A-Za-z_:][\w:]*", s["series"]).group(0)
            if name.startswith("ringmail_"):
                check(name in ALLOWED, "rule test %d: input series %s is served" % (i, name))


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 64
    families, samples, seen = served(sys.argv[1])
    METRICS.update(families)
    ALLOWED.update(samples)
    check(len(families) >= 20 and seen <= ALLOWED, "the exposition: %d families, samples %s" % (
        len(families), "all typed" if seen <= ALLOWED else "untyped: %s" % sorted(seen - ALLOWED)))
    check_rules()
    try:
        with open(DASHBOARD, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as err:
        check(False, "valid JSON: %s" % err)
        print("%d passed, %d failed" % (passed, failed))
        return 1
    check(True, "valid JSON")
    check(isinstance(dash.get("schemaVersion"), int) and 36 <= dash["schemaVersion"] <= 41,
          "schemaVersion %r" % dash.get("schemaVersion"))
    check(bool(dash.get("title")) and bool(dash.get("uid")), "title and uid")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource", {})
    check(ds.get("type") == "datasource" and ds.get("query") == "prometheus",
          "${datasource} variable of type prometheus")
    relay = variables.get("relay", {})
    check(relay.get("type") == "query" and "relay" in json.dumps(relay.get("query")), "relay variable")

    exprs = []
    for name, v in variables.items():
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.match(r"label_values\((\w+),\s*\w+\)$", q or "")
            check(m is not None and m.group(1) in METRICS, "variable %s: %s" % (name, q))

    panels = []
    stack = list(dash.get("panels", []))
    while stack:
        p = stack.pop(0)
        panels.append(p)
        stack.extend(p.get("panels", []))
    check(len(panels) > 0, "%d panels" % len(panels))
    ids = [p.get("id") for p in panels]
    check(len(ids) == len(set(ids)) and None not in ids, "panel ids unique")
    for p in panels:
        title = "panel %s %r" % (p.get("id"), p.get("title"))
        if p.get("type") == "row":
            continue
        check(isinstance(p.get("datasource"), dict) and
              p["datasource"].get("uid") == "${datasource}", title + ": datasource ${datasource}")
        targets = p.get("targets") or []
        check(len(targets) > 0, title + ": targets")
        refs = [t.get("refId") for t in targets]
        check(len(refs) == len(set(refs)), title + ": refIds unique")
        for t in targets:
            expr = t.get("expr", "")
            if not check(bool(expr.strip()), title + " " + str(t.get("refId")) + ": expr"):
                continue
            exprs.append(expr)
            check_names("%s %s" % (title, t.get("refId")), metric_names(expr))
    wanted = ["ringmail_messages_total", "histogram_quantile", "ringmail_connection_info",
              "tls_version", "cipher", "ringmail_connection_peer_cert_not_after_seconds",
              "ringmail_relay_ktls_connections", "ringmail_queue_length",
              "ringmail_dead_letter_length", "ringmail_tls_failures_total",
              "ringmail_worker_restarts_total", "ringmail_connection_age_seconds"]
    blob = "\n".join(exprs)
    for w in wanted:
        check(w in blob, "some panel uses " + w)

    promtool = shutil.which("promtool")
    if promtool:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "exprs.yml")
            with open(path, "w") as f:
                f.write("groups:\n  - name: dashboard\n    rules:\n")
                for i, e in enumerate(exprs):
                    f.write("      - record: dashboard:expr%d\n        expr: %s\n"
                            % (i, json.dumps(grafana_to_promql(e))))
            r = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
            check(r.returncode == 0, "promtool parses all %d expressions%s" % (
                len(exprs), "" if r.returncode == 0 else ":\n" + r.stdout + r.stderr))
    elif missing("promtool is not installed (tests/setup.sh installs it): expressions not parsed"):
        check(False, "promtool parses the expressions: promtool is not installed")

    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
