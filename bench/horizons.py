#!/usr/bin/env python3
"""How the cost of a forecast grows with the horizon and the history (issue 18), side by side with
the references, on one machine, in one run.

For every model, at 365 and 1,600 BTC closes and at 1, 7, 30 and 90 days, it prints the median
latency of N sequential keep-alive requests after one warm-up, and the CPU time per request (the
server's threads' time on CPU, from /proc/PID/task/*/schedstat, over those requests).

  * Ours: the release binary, one server, no database. The statistical models get a history that
    changes on every request, so none is answered from the stats cache: by default its last close
    moves (today's live price) on a history calibrated once before, so the calibration paths come
    from the path cache and this is the cost of a fit with its errors measured again; with --cold
    a price 300 days back moves, so every calibration path is computed: the cost of a history
    never seen. The LSTM is the repository's
    format-1 BTC model (tests/fixtures/old_model), loaded from the models directory: a level model
    runs its network at every day of the path, so this is the cost of the network kernels (the
    kernel name from /health is printed). A model trained today on BTC serves naive where its
    validation finds no skill, which costs what naive costs.
  * The Python reference service (bench/reference/app.py, PyTorch), same requests, same
    measurements, for the cached LSTM (its model is trained by the first request, REF_EPOCHS=1).
  * statsforecast, in process (no HTTP, no JSON, so its figures lack the ~0.3-1 ms a request
    costs ours before any model runs), for the statistical models it has, with 80% conformal
    intervals (`ConformalIntervals`) from as many h-day windows as the history holds, at most 20;
    ours calibrate at 80 origins. It has no counterpart of `ensemble` or `auto`.

Only one server runs at a time.

    cargo build --release && python3 bench/horizons.py [--n 9] [--prices 365 1600] [--days 1 7 30 90]
        [--models lstm ...]

LSTM_PRECISION=f32 serves the f32 kernel; LSTM_INT16_KERNEL=avx2 the int16 AVX2 kernel on a VNNI
CPU (what an AVX2-only CPU runs).

REF_PYTHON (default /opt/pyref/bin/python) must have torch, numpy, fastapi, uvicorn and
statsforecast; without it only ours is measured.
"""
import argparse
import csv
import glob
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/coinsphere-ml")
REF_PYTHON = os.environ.get("REF_PYTHON", "/opt/pyref/bin/python")
MODELS = ["naive", "drift", "moving_average", "ses", "theta", "ensemble", "auto", "ets", "lstm"]
OLD_MODEL = os.path.join(ROOT, "tests/fixtures/old_model")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ns(pid):
    """Time on CPU of every live thread of pid, in ns."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            total += int(open(path).read().split()[0])
        except (OSError, ValueError):
            pass
    return total


class Server:
    def __init__(self, argv, env):
        self.port = free_port()
        env = dict(os.environ, HOST="127.0.0.1", PORT=str(self.port), **env)
        self.proc = subprocess.Popen(argv + ["--port", str(self.port)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            sys.exit(f"{argv[0]} did not start")
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def get(self, path):
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        return json.loads(r.read())

    def post(self, body):
        """POST /predict; `body` is a dict or its JSON text (encode outside a timed call)."""
        if not isinstance(body, str):
            body = json.dumps(body)
        self.conn.request("POST", "/predict", body=body,
                          headers={"content-type": "application/json"})
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            sys.exit(f"POST /predict: {r.status} {data[:300]}")
        return json.loads(data)

    def measure(self, bodies):
        """Median latency (ms) and CPU per request (ms) over bodies[1:], bodies[0] a warm-up."""
        model = self.post(bodies[0]).get("model", "")
        label = model.get("label", model.get("name", "")) if isinstance(model, dict) else model
        times = []
        encoded = [json.dumps(b) for b in bodies[1:]]
        cpu0 = cpu_ns(self.proc.pid)
        for body in encoded:
            t = time.perf_counter()
            self.post(body)
            times.append((time.perf_counter() - t) * 1000)
        cpu = (cpu_ns(self.proc.pid) - cpu0) / 1e6 / len(times)
        return statistics.median(times), cpu, label

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


SENT = [0]


def bodies(model, history, days, n, at=-1):
    out = []
    for _ in range(n + 1):
        # A history no earlier request held, the price at `at` nudged.
        SENT[0] += 1
        prices = list(history)
        prices[at] *= 1 + 1e-7 * SENT[0]
        out.append({"symbol": "BTC", "historical_prices": prices, "days_ahead": days,
                    "model": model})
    return out


def ours(closes, a):
    models_dir = tempfile.mkdtemp(prefix="bench-horizons-")
    for f in os.listdir(OLD_MODEL):
        if f.startswith("BTC_v1.0.0"):
            shutil.copy(os.path.join(OLD_MODEL, f), models_dir)
    server = Server([a.bin, "serve", "--host", "127.0.0.1", "--models-dir", models_dir],
                    {"WARMUP_SYMBOLS": "", "RUST_LOG": "warn", "STATS_CACHE_SIZE": "256"})
    try:
        health = server.get("/health")
        kernel = json.dumps(health.get("lstm_kernel", health.get("model", {}).get("lstm_kernel")))
        out = {}
        for n in a.prices:
            for model in a.models:
                for days in a.days:
                    # A day's history never seen; without --cold it is calibrated once, then its
                    # live price moves.
                    day = bodies(model, closes[-n:], days, 0, at=-300)[0]
                    if not a.cold:
                        server.post(day)
                    history = day["historical_prices"]
                    out[(model, n, days)] = server.measure(
                        bodies(model, history, days, a.n, at=-300 if a.cold else -1))
        return out, kernel
    finally:
        server.stop()
        shutil.rmtree(models_dir, ignore_errors=True)


def reference_lstm(closes, a):
    models_dir = tempfile.mkdtemp(prefix="bench-horizons-ref-")
    server = Server([REF_PYTHON, os.path.join(ROOT, "bench/reference/app.py"), "--host", "127.0.0.1",
                     "--models-dir", models_dir], {"REF_EPOCHS": "1", "REF_THREADS": "1"})
    try:
        server.post({"symbol": "BTC", "historical_prices": closes[-365:], "days_ahead": 1})
        return {(n, days): server.measure(bodies("lstm", closes[-n:], days, a.n))
                for n in a.prices for days in a.days}
    finally:
        server.stop()
        shutil.rmtree(models_dir, ignore_errors=True)


STATSFORECAST = r"""
import json, statistics, sys, time
import numpy as np
from statsforecast.models import (AutoETS, Naive, RandomWalkWithDrift, SimpleExponentialSmoothingOptimized,
                                  Theta, WindowAverage)
from statsforecast.utils import ConformalIntervals
closes, prices, days, n = json.loads(sys.stdin.read())
models = {"naive": Naive, "drift": RandomWalkWithDrift, "moving_average": lambda **k: WindowAverage(7, **k),
          "ses": SimpleExponentialSmoothingOptimized, "theta": Theta,
          "ets": lambda **k: AutoETS(model="ZZN", **k)}
out = {}
for name, make in models.items():
    for m in prices:
        y = np.log(np.array(closes[-m:]))
        for h in days:
            # 80% conformal intervals from as many windows of h days as fit, at most 20 (what
            # statsforecast documents); ours calibrate at 80 origins.
            windows = max(2, min(20, (m - 30) // h))
            make_one = lambda: make(prediction_intervals=ConformalIntervals(h=h, n_windows=windows))
            make_one().forecast(y=y, h=h, level=[80])  # warm-up (numba compiles on first use)
            times, cpu0 = [], time.process_time()
            for i in range(n):
                y[-1] += 1e-6
                t = time.perf_counter()
                make_one().forecast(y=y, h=h, level=[80])
                times.append((time.perf_counter() - t) * 1000)
            out[f"{name}|{m}|{h}"] = [statistics.median(times), (time.process_time() - cpu0) * 1000 / n,
                                      windows]
print(json.dumps(out))
"""


def reference_stats(closes, a):
    run = subprocess.run([REF_PYTHON, "-c", STATSFORECAST], capture_output=True, text=True,
                         input=json.dumps([closes, a.prices, a.days, a.n]))
    if run.returncode:
        print(f"statsforecast failed: {run.stderr[-500:]}", file=sys.stderr)
        return {}
    return {tuple(int(x) if x.isdigit() else x for x in k.split("|")): v
            for k, v in json.loads(run.stdout).items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=9)
    ap.add_argument("--prices", type=int, nargs="+", default=[365, 1600])
    ap.add_argument("--days", type=int, nargs="+", default=[1, 7, 30, 90])
    ap.add_argument("--bin", default=BIN)
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--cold", action="store_true",
                    help="statistical models: nudge a price 300 days back, so that no calibration path is reused")
    a = ap.parse_args()
    closes = [float(r["close"]) for r in csv.DictReader(open(os.path.join(ROOT, "data/prices/BTC.csv")))]
    flags = open("/proc/cpuinfo").read().split("flags\t\t: ", 1)[1].split("\n", 1)[0].split()
    model = [l for l in open("/proc/cpuinfo") if l.startswith("model name")][0].split(":", 1)[1].strip()
    print(f"CPU: {model}, {os.cpu_count()} CPUs, flags: "
          + " ".join(f for f in flags if f.startswith(("avx", "fma"))))
    have_ref = shutil.which(REF_PYTHON) is not None or os.path.exists(REF_PYTHON)
    mine, kernel = ours(closes, a)
    ref_lstm = reference_lstm(closes, a) if have_ref and "lstm" in a.models else {}
    ref_stats = reference_stats(closes, a) if have_ref and set(a.models) - {"lstm"} else {}
    print(f"ours: lstm kernel {kernel}; median of {a.n} sequential requests (ms), CPU per request (ms)")
    print()
    print("| model | prices | days | ours (ms) | ours CPU (ms) | served as | reference | reference (ms) "
          "| reference CPU (ms) | latency ratio |")
    print("|---|---:|---:|---:|---:|---|---|---:|---:|---:|")
    for n in a.prices:
        for model in a.models:
            for days in a.days:
                ms, cpu, label = mine[(model, n, days)]
                if model == "lstm":
                    ref, name = ref_lstm.get((n, days)), "PyTorch service"
                else:
                    ref = ref_stats.get((model, n, days))
                    name = f"statsforecast, {ref[2]} conformal windows" if ref else ""
                if ref:
                    cells = f"{name} | {ref[0]:.2f} | {ref[1]:.2f} | {ref[0] / ms:.1f}x"
                else:
                    cells = "- | - | - | -"
                print(f"| {model} | {n} | {days} | {ms:.2f} | {cpu:.2f} | {label} | {cells} |")


if __name__ == "__main__":
    main()
