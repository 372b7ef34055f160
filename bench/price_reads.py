#!/usr/bin/env python3
"""The cost of reading closes from PostgreSQL for GET /predict/{symbol}, against the same
forecast from the cache and from posted prices (issue 16).

Imports data/prices/BTC.csv into a schema of its own, starts the release binary twice
(PRICES_CACHE_SECS=60, and 0 so that every request reads the database), and times sequential
keep-alive requests of the naive model (the cheapest forecast, so the read shows):

    cargo build --release && python3 bench/price_reads.py [--n 300] [--history 1600]

Needs the local PostgreSQL (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test).
"""
import argparse
import csv
import http.client
import json
import os
import socket
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/coinsphere-ml")
URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
SCHEMA = "bench_price_reads"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(cache_secs, history):
    port = free_port()
    env = {
        "DATABASE_URL": URL, "DATABASE_SCHEMA": SCHEMA, "HOST": "127.0.0.1", "PORT": str(port),
        "PRICES_CACHE_SECS": str(cache_secs), "PRICE_HISTORY_DAYS": str(history),
        "WARMUP_SYMBOLS": "", "RUST_LOG": "warn", "MODELS_DIR": "/tmp/bench-price-models",
    }
    proc = subprocess.Popen([BIN, "serve"], env=env, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health/ready")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("server did not start")


def timed(port, n, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"content-type": "application/json"} if body else {}
    out = []
    for i in range(n + 5):
        t = time.perf_counter()
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status
        if i >= 5:
            out.append((time.perf_counter() - t) * 1000)
    out.sort()
    return statistics.median(out), out[int(len(out) * 0.9)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--history", type=int, default=1600)
    a = ap.parse_args()
    subprocess.run(["psql", URL, "-qc", f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"], check=True)
    env = dict(os.environ, DATABASE_URL=URL, DATABASE_SCHEMA=SCHEMA)
    subprocess.run([BIN, "import", "--csv", os.path.join(ROOT, "data/prices/BTC.csv")],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    closes = [float(r["close"]) for r in csv.DictReader(open(os.path.join(ROOT, "data/prices/BTC.csv")))]
    body = json.dumps({"symbol": "btc", "historical_prices": closes[-a.history:], "model": "naive"})
    path = "/predict/BTC?model=naive"
    rows = []
    for cache_secs, label in [(60, "GET /predict/BTC, closes cached"), (0, "GET /predict/BTC, closes read every time")]:
        proc, port = serve(cache_secs, a.history)
        try:
            rows.append((label, *timed(port, a.n, "GET", path)))
            if cache_secs:
                rows.append((f"POST /predict, {a.history} prices posted", *timed(port, a.n, "POST", "/predict", body)))
        finally:
            proc.terminate()
            proc.wait()
    subprocess.run(["psql", URL, "-qc", f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"], check=True)
    print(f"naive model, {a.history} closes, {a.n} sequential keep-alive requests after 5 warm-ups")
    print("| request | median ms | p90 ms |\n|---|---:|---:|")
    for label, med, p90 in rows:
        print(f"| {label} | {med:.3f} | {p90:.3f} |")


if __name__ == "__main__":
    main()
