"""Reference answers for the CB-05 risk score (SPEC section 4), computed with numpy.

Run: /opt/pyref/bin/python bench/risk_reference.py
It prints one Rust tuple per case; the output is pasted into the tests of src/risk.rs
(`matches_numpy_reference_cases`). The formula is transcribed from SPEC section 4, independently
of the Rust code: population std (ddof=0), np.polyfit for the least-squares slope.
"""

import csv
import math
import os

import numpy as np


def cb05(prices):
    p = np.asarray(prices, dtype=np.float64)
    p30 = p[-30:]
    p7 = p[-7:]
    volatility = np.std(p30) / np.mean(p30)
    swing = (np.max(p7) - np.min(p7)) / np.mean(p7)
    slope = np.polyfit(np.arange(30, dtype=np.float64), p30, 1)[0]
    trend = slope / np.mean(p30)
    raw = (
        0.5 * min(100.0, 200.0 * volatility)
        + 0.3 * min(100.0, 150.0 * swing)
        + 0.2 * min(100.0, 500.0 * abs(trend))
    )
    score = int(min(100, max(0, math.trunc(raw))))
    level = "conservative" if score < 30 else ("moderate" if score < 70 else "degen")
    return score, level, float(volatility), float(raw)


def closes(name):
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "data", "prices", name + ".csv")) as f:
        return [float(r["close"]) for r in csv.DictReader(f)]


def main():
    cases = []
    cases.append(("constant_100", [100.0] * 30))
    cases.append(("one_to_thirty", [float(i) for i in range(1, 31)]))
    cases.append(("thirty_to_one", [float(i) for i in range(30, 0, -1)]))
    rng = np.random.default_rng(7)
    walk = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, 40)))
    cases.append(("calm_random_walk_40", [float(x) for x in walk]))
    wild = 2.0 * np.exp(np.cumsum(rng.normal(0.0, 0.15, 35)))
    cases.append(("wild_random_walk_35", [float(x) for x in wild]))
    cases.append(("alternating_1_3", [1.0 if i % 2 == 0 else 3.0 for i in range(30)]))
    for coin in ["BTC", "DOGE", "SOL"]:
        c = closes(coin)
        # A fixed 60-day window of real data: the prices themselves go into the Rust test
        # through the CSV, identified by its first row index.
        for start in [0, 500]:
            cases.append((f"{coin}_rows_{start}_to_{start + 60}", c[start:start + 60]))
    for name, prices in cases:
        score, level, vol, raw = cb05(prices)
        print(f'("{name}", {score}, "{level}", {vol!r}),  // raw score {raw!r}')
    print()
    print("# the random walks, for pasting:")
    print("calm =", [float(x) for x in walk])
    print("wild =", [float(x) for x in wild])


if __name__ == "__main__":
    main()
