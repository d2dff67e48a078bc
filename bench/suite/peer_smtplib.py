#!/usr/bin/env python3
"""Peer sender: Python's smtplib, one persistent connection per thread,
STARTTLS with a verifying context (the CA given, host name checked), one
message after another on each connection until the deadline. Prints one
JSON line: sent, errors, seconds."""
import argparse
import json
import os
import smtplib
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--count", type=int, default=0, help="stop after this many (0: deadline)")
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--run", required=True)
    a = ap.parse_args()
    body = common.message_body(a.size)
    ctx = ssl.create_default_context(cafile=a.ca)  # CERT_REQUIRED, check_hostname
    lock = threading.Lock()
    state = {"next": 0, "sent": 0, "errors": 0, "first_error": None}
    deadline = [0.0]

    def take():
        with lock:
            if a.count and state["next"] >= a.count:
                return None
            if not a.count and time.time() >= deadline[0]:
                return None
            i = state["next"]
            state["next"] += 1
            return i

    def worker():
        try:
            s = smtplib.SMTP("localhost", a.port, local_hostname="bench.localhost", timeout=60)
            s.starttls(context=ctx)
            s.ehlo("bench.localhost")
        except Exception as e:  # noqa: BLE001
            with lock:
                state["errors"] += 1
                state["first_error"] = state["first_error"] or repr(e)
            return
        while True:
            i = take()
            if i is None:
                break
            try:
                s.sendmail("bench@example.org", ["rcpt@example.net"],
                           common.message(a.run, i, body))
                with lock:
                    state["sent"] += 1
            except Exception as e:  # noqa: BLE001
                with lock:
                    state["errors"] += 1
                    state["first_error"] = state["first_error"] or repr(e)
                break
        try:
            s.quit()
        except Exception:  # noqa: BLE001
            pass

    t0 = time.time()
    deadline[0] = t0 + a.seconds
    threads = [threading.Thread(target=worker) for _ in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"sent": state["sent"], "errors": state["errors"],
                      "first_error": state["first_error"], "seconds": time.time() - t0}))


if __name__ == "__main__":
    main()
