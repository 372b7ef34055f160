#!/usr/bin/env python3
"""Byte-for-byte comparison of two builds' HTTP answers (for refactors that must not change
behaviour): starts OLD and NEW on fresh models directories, sends both the same requests in the
same order (every model, horizons, levels, LSTM training and the cached path, the out-of-range
fallback, batches, risk, backtest, errors of every kind), and compares status, content type and
body with timestamps and durations masked. Prints the differences; exits 1 if there are any.

Usage: scripts/compare-answers.py OLD_BIN NEW_BIN [--skip PATH ...]
"""
import csv, json, os, re, socket, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def closes(coin, n):
    with open(os.path.join(ROOT, "data/prices", coin + ".csv")) as f:
        rows = [float(r["close"]) for r in csv.DictReader(f)]
    return rows[-n:]


def start(binary, models):
    # A format-1 (level) model of BTC, as an earlier release stored it.
    os.makedirs(models)
    fixtures = os.path.join(ROOT, "tests/fixtures/old_model")
    for name in os.listdir(fixtures):
        if name.startswith("BTC_v1.0.0"):
            with open(os.path.join(fixtures, name), "rb") as src, open(os.path.join(models, name), "wb") as dst:
                dst.write(src.read())
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = dict(os.environ, MODELS_DIR=models, WARMUP_SYMBOLS="", TRAINING_EPOCHS="3", RUST_LOG="warn")
    proc = subprocess.Popen([binary, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live").read()
            break
        except Exception:
            time.sleep(0.05)
    return proc, port


def call(port, method, path, body=None, raw=None, headers=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = {"content-type": "application/json"} if data is not None else {}
    h.update(headers or {})
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=h)
    try:
        r = urllib.request.urlopen(req)
        return r.status, r.headers.get("content-type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type"), e.read()


MASK = re.compile(rb'"(timestamp|trained_at|uptime_seconds|train_seconds|seconds|elapsed_seconds|started_at)":\s*("[^"]*"|[0-9.eE+-]+)')


def masked(body):
    return MASK.sub(rb'"\1":"*"', body)


def requests():
    btc, eth, sol = closes("BTC", 400), closes("ETH", 220), closes("SOL", 365)
    with open(os.path.join(ROOT, "tests/fixtures/old_model/BTC_last400.csv")) as f:
        old = [float(r["close"]) for r in csv.DictReader(f)]
    out = []
    for model in ["naive", "drift", "moving_average", "ses", "ets", "theta", "ensemble", "auto"]:
        for days, level in [(1, 0.8), (7, 0.8), (30, 0.95)]:
            out.append(("POST", "/predict", {"symbol": "btc", "historical_prices": btc, "days_ahead": days,
                                              "model": model, "interval_level": level}))
    out += [
        ("POST", "/predict", {"symbol": "ETH", "historical_prices": eth}),            # trains
        ("POST", "/predict", {"symbol": "ETH", "historical_prices": eth, "days_ahead": 30}),  # cached
        ("POST", "/predict", {"symbol": "ETH", "historical_prices": eth, "days_ahead": 1, "interval_level": 0.5}),
        ("POST", "/predict", {"symbol": "ETH", "historical_prices": [p * (3 if i % 2 else 1) for i, p in enumerate(eth)]}),  # out of range
        ("POST", "/predict", {"symbol": "BTC", "historical_prices": old, "days_ahead": 7}),  # level model
        ("POST", "/predict", {"symbol": "BTC", "historical_prices": old, "days_ahead": 90, "interval_level": 0.95}),
        ("POST", "/predict", {"symbol": "BTC", "historical_prices": [p * 5 for p in old]}),  # outside its range
        ("POST", "/predict?format=svg", {"symbol": "ETH", "historical_prices": eth, "days_ahead": 7}),
        ("POST", "/predict", {"symbol": "DOGE", "historical_prices": eth[:80]}),          # no model
        ("POST", "/predict", {"symbol": "DOGE", "historical_prices": eth[:30]}),          # too short
        ("POST", "/predict", {"symbol": "a/b", "historical_prices": eth, "model": "x", "days_ahead": 0}),
        ("POST", "/predict", {"symbol": "BTC", "historical_prices": [1.0] * 100, "model": "theta"}),
        ("POST", "/predict", {"symbol": "BTC", "historical_prices": eth, "days_ahead": 3.5}),
        ("POST", "/predict", None, b'{"symbol": "BTC", "historical_prices": [1, 2'),
        ("POST", "/predict-batch", {"requests": [
            {"symbol": "eth", "historical_prices": eth, "days_ahead": 2},
            {"symbol": "SOL", "historical_prices": sol, "model": "theta"},
            {"symbol": "SOL", "historical_prices": sol[:10]},
            {"symbol": "bad/one", "historical_prices": sol}]}),
        ("POST", "/risk-score", {"symbol": "sol", "historical_prices": sol}),
        ("POST", "/risk-score", {"symbol": "sol", "historical_prices": sol, "benchmark_prices": btc[-365:]}),
        ("POST", "/risk-score", {"symbol": "sol", "historical_prices": sol[:10]}),
        ("POST", "/risk-score-batch", {"requests": [{"symbol": "sol", "historical_prices": sol},
                                                     {"symbol": "x", "historical_prices": "no"}]}),
        ("POST", "/backtest", {"symbol": "btc", "historical_prices": btc, "models": ["naive", "theta"],
                               "horizons": [1, 7], "folds": 5}),
        ("GET", "/models/eth", None),
        ("GET", "/models/nope", None),
        ("GET", "/models", None),
        ("GET", "/", None),
        ("GET", "/health/live", None),
        ("GET", "/health/ready", None),
        ("GET", "/v2/health/live", None),
        ("GET", "/v2/health/ready", None),
        ("GET", "/health", None),
        ("POST", "/models/ada/train", {"historical_prices": eth[-300:]}),
        ("POST", "/models/ada/train", {"historical_prices": eth[:50]}),
        ("POST", "/models/ada/update", {"historical_prices": eth[-120:], "epochs": 2}),
        ("POST", "/models/ada/update", {"historical_prices": eth[-120:], "epochs": 99}),
        ("POST", "/models/none/update", {"historical_prices": eth[-120:]}),
        ("GET", "/models/ada", None),
        ("DELETE", "/models/ada?purge=true", None),
        ("DELETE", "/models/ada?purge=maybe", None),
        ("GET", "/no/such/path", None),
        ("PUT", "/predict", None),
        ("DELETE", "/models/eth", None),
        ("DELETE", "/models/eth", None),
    ]
    return out


def main():
    old, new = sys.argv[1], sys.argv[2]
    skip = set(sys.argv[sys.argv.index("--skip") + 1:]) if "--skip" in sys.argv else set()
    servers = []
    with tempfile.TemporaryDirectory() as d:
        for i, b in enumerate([old, new]):
            servers.append(start(b, os.path.join(d, str(i))))
        diffs, n = 0, 0
        try:
            for method, path, *rest in requests():
                body = rest[0]
                raw = rest[1] if len(rest) > 1 else None
                if path in skip:
                    continue
                a = call(servers[0][1], method, path, body, raw)
                b = call(servers[1][1], method, path, body, raw)
                n += 1
                if (a[0], a[1], masked(a[2])) != (b[0], b[1], masked(b[2])):
                    diffs += 1
                    print(f"DIFF {method} {path}: {a[0]} {a[1]} vs {b[0]} {b[1]}")
                    print("  old:", masked(a[2])[:400])
                    print("  new:", masked(b[2])[:400])
        finally:
            for p, _ in servers:
                p.kill()
    print(f"{n} requests, {diffs} differ")
    sys.exit(1 if diffs else 0)


main()
