#!/usr/bin/env python3
"""What the stats caches buy (issue 18): POST /predict of each statistical model on BTC's
last N closes, 7 days. For each model it times

  * a request whose history changes every time early on (a price 300 days back nudged), so
    the model is fitted and measured at every calibration cutoff afresh, as every request was
    before the caches;
  * a request whose last price changes every time (today's live price of a daily history):
    its calibration paths come from the path cache (STATS_PATH_CACHE_MB), the model is fitted
    once and its errors are measured against the new price;
  * the same request repeated, answered from the stats cache (STATS_CACHE_SIZE).

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

        print("| model | prices | an earlier price changes (ms) | the last price changes (ms) | same request repeated (ms) |")
        print("|---|---:|---:|---:|---:|")
        sent = 0

        def nudged(prices, at):
            # A history no earlier request held: models that share paths (the ensemble's
            # members are SES and theta) find none from another model's request.
            nonlocal sent
            sent += 1
            prices = list(prices)
            prices[at] *= 1 + 1e-7 * sent
            return prices

        for n in a.prices:
            base = closes[-n:]
            for model in a.models:
                cold = [post(nudged(base, -300), model) for _ in range(a.n + 1)]
                # The live price moves on a history calibrated once before (one cold request).
                day = nudged(base, -300)
                post(day, model)
                live = [post(nudged(day, -1), model) for _ in range(a.n + 1)]
                repeated = [post(base, model) for _ in range(a.n + 1)]
                print(f"| {model} | {n} | {statistics.median(cold[1:]):.2f} | {statistics.median(live[1:]):.2f} "
                      f"| {statistics.median(repeated[1:]):.2f} |")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
