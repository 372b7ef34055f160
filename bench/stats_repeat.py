#!/usr/bin/env python3
"""What the stats cache buys (issue 18, first step): POST /predict of each statistical model
on BTC's last N closes, 7 days. For each model it times

  * a request whose history changes every time (the last price nudged), so it is fitted
    each time, as every request was before the cache;
  * the same request repeated, as a client polling daily closes sends it until the next close.

Median of 9 sequential keep-alive requests after one warm-up, release binary, no database:

    cargo build --release && python3 bench/stats_repeat.py [--prices 365 1600] [--bin OTHER]
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
MODELS = ["naive", "drift", "moving_average", "ses", "theta", "ensemble", "auto", "ets"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prices", type=int, nargs="+", default=[365, 1600])
    ap.add_argument("--n", type=int, default=9)
    ap.add_argument("--bin", default=BIN, help="the binary to serve (default: the release build)")
    ap.add_argument("--models", nargs="+", default=MODELS)
    a = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"HOST": "127.0.0.1", "PORT": str(port), "WARMUP_SYMBOLS": "", "RUST_LOG": "warn",
           "MODELS_DIR": "/tmp/bench-stats-models"}
    proc = subprocess.Popen([a.bin, "serve"], env=env, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health/ready")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        closes = [float(r["close"]) for r in csv.DictReader(open(os.path.join(ROOT, "data/prices/BTC.csv")))]
        conn = http.client.HTTPConnection("127.0.0.1", port)

        def post(prices, model):
            body = json.dumps({"symbol": "btc", "historical_prices": prices, "model": model, "days_ahead": 7})
            t = time.perf_counter()
            conn.request("POST", "/predict", body=body, headers={"content-type": "application/json"})
            r = conn.getresponse()
            r.read()
            assert r.status == 200, r.status
            return (time.perf_counter() - t) * 1000

        print("| model | prices | history changes every request (ms) | same request repeated (ms) |")
        print("|---|---:|---:|---:|")
        for n in a.prices:
            base = closes[-n:]
            for model in a.models:
                changing = []
                for i in range(a.n + 1):
                    prices = base[:-1] + [base[-1] * (1 + 1e-6 * (i + 1))]
                    changing.append(post(prices, model))
                repeated = [post(base, model) for _ in range(a.n + 1)]
                print(f"| {model} | {n} | {statistics.median(changing[1:]):.2f} | {statistics.median(repeated[1:]):.2f} |")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
