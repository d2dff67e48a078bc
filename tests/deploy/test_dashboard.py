#!/usr/bin/env python3
"""Checks deploy/grafana/ringmail-dashboard.json: valid JSON, a Grafana
dashboard (schemaVersion, a ${datasource} variable of type prometheus, a
relay variable), unique panel ids, every panel with a datasource and
targets, and every PromQL expression naming only ringmail's metrics (the
list below, the one the metrics endpoint serves). Where promtool is
installed, every expression is also parsed by it (as a recording rule).
  python3 tests/deploy/test_dashboard.py
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

METRICS = {
    "ringmail_connection_info", "ringmail_connection_messages_total",
    "ringmail_connection_sent_bytes_total", "ringmail_connection_errors_total",
    "ringmail_connection_handshake_seconds", "ringmail_connection_session_resumed",
    "ringmail_connection_peer_cert_not_after_seconds", "ringmail_connection_age_seconds",
    "ringmail_messages_total", "ringmail_tls_handshakes_total", "ringmail_tls_failures_total",
    "ringmail_delivery_latency_seconds", "ringmail_smtp_transaction_duration_seconds",
    "ringmail_queue_length", "ringmail_queue_pending", "ringmail_retry_set_size",
    "ringmail_dead_letter_length", "ringmail_redis_errors_total", "ringmail_worker_restarts_total",
    "ringmail_relay_verified_connections", "ringmail_relay_connections",
    "ringmail_relay_ktls_connections", "ringmail_relay_ktls_expected",
    "ringmail_kernel_tls_tx_sw_current", "ringmail_kernel_tls_rx_sw_current",
    "ringmail_ktls_count_mismatch", "ringmail_up", "ringmail_build_info",
}
HISTOGRAMS = {"ringmail_delivery_latency_seconds", "ringmail_smtp_transaction_duration_seconds"}
ALLOWED = set(METRICS)
for h in HISTOGRAMS:
    ALLOWED |= {h + "_bucket", h + "_sum", h + "_count"}
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


def main():
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
            names = metric_names(expr)
            unknown = names - ALLOWED
            check(names and not unknown, "%s %s: metrics %s%s" % (
                title, t.get("refId"), sorted(names),
                " unknown: %s" % sorted(unknown) if unknown else ""))
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
    else:
        print("note: promtool not installed, expressions not parsed")

    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
