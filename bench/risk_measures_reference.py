"""Reference values for the risk measures of src/risk/measures.rs (issue 17), computed with
numpy, pandas and scipy from the definitions written in that module's docs, independently of
the Rust code.

Run: python3 -m venv /tmp/pyref && /tmp/pyref/bin/pip install numpy pandas scipy quantstats
     /tmp/pyref/bin/python bench/risk_measures_reference.py > bench/risk_measures_reference.out
It prints one Rust `Case` per series, pasted into the tests of src/risk/measures.rs
(`matches_the_numpy_reference_cases`), then the normal quantiles that module keeps as constants,
then cross-checks against quantstats (where installed) with the convention differences noted.

Conventions (see the module docs): daily log returns; windows count returns ("30d" = last 30
returns); volatility = sample std (ddof=1) * sqrt(365); VaR/ES over the last 365 returns as
positive simple-return losses 1 - exp(r); historical quantile = np.quantile's default (linear);
Cornish-Fisher with population moments (scipy skew/kurtosis bias=True, PerformanceAnalytics'
convention); CF ES = mean CF loss over 20 midpoint tail levels; beta = cov/var(benchmark).
"""

import csv
import math
import os

import numpy as np
import pandas as pd
from scipy import integrate, stats

WINDOWS = [30, 90, 365]
TAIL = 365
LEVELS = [0.95, 0.99]
M = 20


def closes(name):
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "data", "prices", name + ".csv")) as f:
        return [float(r["close"]) for r in csv.DictReader(f)]


def closes_from(coin, start, n):
    """`n` closes of `coin` from the date `start` on (ISO dates compare as strings), and the
    date of the last one."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "data", "prices", coin + ".csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["date"] >= start][:n]
    assert len(rows) == n
    return [float(r["close"]) for r in rows], rows[-1]["date"]


def log_returns(p):
    s = pd.Series(p, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        ratio = s / s.shift(1)
    with np.errstate(divide="ignore"):
        r = np.log(ratio)
    # Where the ratio over/underflows (extreme synthetic prices), the difference of logs.
    bad = ~np.isfinite(r) | (ratio.abs() < np.finfo(float).tiny)
    r[bad] = np.log(s)[bad] - np.log(s.shift(1))[bad]
    return r.iloc[1:].to_numpy()


def volatility(r, w):
    if len(r) < w:
        return None
    return float(pd.Series(r).tail(w).std(ddof=1) * math.sqrt(365))


def drawdown(p):
    s = pd.Series(p, dtype=np.float64)
    high = s.cummax()
    dd = 1.0 - s / high
    value = float(dd.max())
    if value == 0.0:
        return value, 0, 0, 0, 0, float(dd.iloc[-1])
    trough = int(dd.idxmax())  # first occurrence
    at_high = np.nonzero(s.iloc[: trough + 1].to_numpy() == high.iloc[trough])[0]
    peak = int(at_high[-1])  # the last index at that high
    after = np.nonzero(s.iloc[trough + 1 :].to_numpy() >= s.iloc[peak])[0]
    recovery = int(trough + 1 + after[0]) if len(after) else None
    return value, peak, trough, trough - peak, recovery, float(dd.iloc[-1])


def loss(r):
    return -np.expm1(r)


def historical(x):
    var, es = [], []
    for a in LEVELS:
        q = np.quantile(x, 1.0 - a)  # method="linear"
        var.append(float(loss(q)))
        es.append(float(np.mean(loss(x[x <= q]))))
    return var, es


def cf_parts(x):
    mu = float(np.mean(x))
    m2 = float(np.mean((x - mu) ** 2))
    if m2 > 0:
        s = float(stats.skew(x, bias=True))
        k = float(stats.kurtosis(x, fisher=True, bias=True))
    else:
        s = k = 0.0
    return mu, math.sqrt(m2), s, k


def z_cf(z, s, k):
    return z + (z**2 - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s**2 / 36


def cornish_fisher(x):
    mu, sd, s, k = cf_parts(x)
    lo = stats.norm.ppf((1 - LEVELS[1]) * 0.5 / M)
    hi = stats.norm.ppf(1 - LEVELS[0])
    zs = np.linspace(lo, hi, 20001)
    if np.any(np.diff(z_cf(zs, s, k)) < 0):  # not increasing over the levels used
        return None, None, None
    var, es, quad = [], [], []
    for a in LEVELS:
        var.append(float(loss(mu + sd * z_cf(stats.norm.ppf(1 - a), s, k))))
        u = (1 - a) * (np.arange(1, M + 1) - 0.5) / M
        es.append(float(np.mean(loss(mu + sd * z_cf(stats.norm.ppf(u), s, k)))))
        # The integral the 20-point mean approximates, for the record.
        f = lambda v: float(loss(mu + sd * z_cf(stats.norm.ppf(v), s, k)))
        quad.append(integrate.quad(f, 0, 1 - a, limit=200)[0] / (1 - a))
    return var, es, quad


def beta_corr(ra, rb, w):
    if len(ra) < w or len(rb) < w:
        return None, None
    x, y = ra[-w:], rb[-w:]
    vy = np.var(y, ddof=1)
    if vy == 0:
        return None, None
    cov = np.cov(x, y, ddof=1)[0, 1]
    corr = None if np.var(x) == 0 else float(np.corrcoef(x, y)[0, 1])
    return float(cov / vy), corr


def opt(v):
    return "None" if v is None else f"Some({v!r})"


def arr(v):
    return "[" + ", ".join(repr(x) for x in v) + "]"


def cases():
    out = [
        ("constant_100_x40", [100.0] * 40, None),
        ("rising_1_to_40", [float(i) for i in range(1, 41)], None),
    ]
    crash = [100.0] * 5 + [100.0 * 0.9**k for k in range(1, 11)]
    crash += [crash[-1] * 1.1**k for k in range(1, 16)]
    out.append(("crash_and_recovery", crash, None))
    sine = [100.0 * math.exp(0.1 * math.sin(0.3 * i) + 0.002 * i) for i in range(120)]
    bench = [50.0 * math.exp(0.05 * math.sin(0.3 * i + 0.5)) for i in range(150)]
    out.append(("sine_wave_120_vs_sine_bench_150", sine, bench))
    out.append(("extreme_alternating_30", [1e-300 if i % 2 == 0 else 1e308 for i in range(30)], None))
    # Real closes, named "{COIN}_{first date}_{count}"; a benchmark ends on the same day.
    for coin, start, n, bench in [
        ("BTC", "2024-03-01", 400, None),
        ("ETH", "2024-03-01", 400, ("BTC", "2024-03-01", 400)),
        ("DOGE", "2022-04-11", 100, ("BTC", "2022-01-01", 200)),
        ("SOL", "2020-08-11", 30, None),
        ("XRP", "2023-01-01", 500, ("BTC", "2023-04-11", 400)),
    ]:
        name = f"{coin}_{start}_{n}"
        p, last = closes_from(coin, start, n)
        bp = None
        if bench:
            bp, blast = closes_from(*bench)
            assert blast == last, (name, bench, last, blast)
            name += "_vs_{}_{}_{}".format(*bench)
        out.append((name, p, bp))
    return out


def main():
    quads = []
    for name, p, bench in cases():
        r = log_returns(p)
        tail = r[-TAIL:]
        vols = [volatility(r, w) for w in WINDOWS]
        mdd, peak, trough, dur, rec, cur = drawdown(p)
        vh, eh = historical(tail)
        vc, ec, quad = cornish_fisher(tail)
        quads.append((name, ec, quad))
        if bench is None:
            b = "None"
        else:
            rb = log_returns(bench)
            bc = [beta_corr(r, rb, w) for w in WINDOWS]
            b = (f"Some(({min(len(r), len(rb))}, [{', '.join(opt(x[0]) for x in bc)}], "
                 f"[{', '.join(opt(x[1]) for x in bc)}]))")
        print(
            f'Case {{ name: "{name}", vol: [{", ".join(opt(v) for v in vols)}], '
            f"mdd: ({mdd!r}, {peak}, {trough}, {dur}, {opt(rec)}), current: {cur!r}, "
            f"var_h: {arr(vh)}, es_h: {arr(eh)}, "
            f"var_cf: {'None' if vc is None else 'Some(' + arr(vc) + ')'}, "
            f"es_cf: {'None' if ec is None else 'Some(' + arr(ec) + ')'}, "
            f"window: {len(tail)}, bench: {b} }},"
        )
    print()
    print("# normal quantiles kept as constants in src/risk/measures.rs (scipy.stats.norm.ppf):")
    for a in LEVELS:
        print(f"z({1 - a:.2f}) =", repr(float(stats.norm.ppf(1 - a))))
        u = (1 - a) * (np.arange(1, M + 1) - 0.5) / M
        print("tail z =", arr([float(z) for z in stats.norm.ppf(u)]))
    print()
    print("# Cornish-Fisher ES: the 20-point mean (what the service answers) against the integral")
    for name, ec, quad in quads:
        if ec is not None:
            print(f"{name}: ES95 {ec[0]:.6f} vs {quad[0]:.6f}, ES99 {ec[1]:.6f} vs {quad[1]:.6f}")
    quantstats_checks()


def quantstats_checks():
    try:
        import quantstats as qs
    except ImportError:
        print("\n# quantstats not installed: cross-checks skipped")
        return
    print(f"\n# quantstats {qs.__version__} on BTC_2024-03-01_400, converted to our conventions")
    p = pd.Series(closes_from("BTC", "2024-03-01", 400)[0],
                  index=pd.date_range("2020-01-01", periods=400, freq="D"))
    simple = p.pct_change().dropna()
    logr = pd.Series(log_returns(p.to_numpy()), index=simple.index)
    # volatility: quantstats annualises with periods=252 by default; we pass 365 and log returns.
    print("volatility 365d:", repr(float(qs.stats.volatility(logr.tail(365), periods=365, annualize=True))),
          "ours", repr(volatility(logr.to_numpy(), 365)))
    # max_drawdown: quantstats answers a negative fraction (prices / cummax - 1).
    print("max_drawdown:", repr(float(-qs.stats.max_drawdown(p))), "ours", repr(drawdown(p.to_numpy())[0]))
    # value_at_risk: quantstats' is parametric (normal, mean + sigma * z) on the returns it is
    # given, negative for a loss; ours is historical and Cornish-Fisher, so only the normal one
    # is comparable: on log returns, as a loss 1 - exp(q).
    tail = logr.tail(365)
    v = float(qs.stats.value_at_risk(tail, sigma=1, confidence=0.95))
    print("parametric normal VaR95 (quantstats, log-return quantile):", repr(v),
          "as our loss:", repr(float(loss(v))),
          "our CF VaR95 with S=K=0 would be", repr(float(loss(tail.mean() + tail.std() * stats.norm.ppf(0.05)))))
    # quantstats' cvar: mean of returns below its (normal) VaR, negative; ours is historical.


if __name__ == "__main__":
    main()
