"""Reference values for the statistical forecasters (src/forecast/{theta,ets,drift}.rs).

Run: /opt/pyref/bin/python bench/stats_reference.py > tests/fixtures/stats/reference.json
(statsforecast 2.1.1, numpy 2.4.6). The models in Rust work on log prices, so every model here
is fitted to np.log(close) and its forecast exponentiated, exactly as the Rust code does.
Input: the last 200 daily BTC closes of data/prices/BTC.csv.
"""

import csv
import json
import math

import numpy as np
from statsforecast.models import AutoETS, RandomWalkWithDrift, Theta
from statsforecast.theta import auto_theta, forecast_theta

H = 10

with open("data/prices/BTC.csv") as f:
    close = np.array([float(r["close"]) for r in csv.DictReader(f)])[-200:]
y = np.log(close)

# Theta (STM) with its two parameters fixed: checks the filter and the forecast recursion.
fixed = auto_theta(y, m=1, model="STM", initial_smoothed=10.0, alpha=0.7)
fixed_fc = forecast_theta(fixed, H)["mean"]

# Theta with statsforecast's own optimisation.
theta = Theta(season_length=1).fit(y)
opt = auto_theta(y, m=1, model="STM")

ets = AutoETS(season_length=1, model="AZN").fit(y)
drift = RandomWalkWithDrift().fit(y)

out = {
    "source": "bench/stats_reference.py, statsforecast 2.1.1, last 200 closes of BTC.csv",
    "btc_close_last_200": close.tolist(),
    "theta_fixed": {
        "initial_smoothed": 10.0,
        "alpha": 0.7,
        "log_forecast": fixed_fc.tolist(),
    },
    "theta_optimised": {
        "alpha": float(opt["par"]["alpha"]),
        "initial_smoothed": float(opt["par"]["initial_smoothed"]),
        "forecast": np.exp(theta.predict(H)["mean"]).tolist(),
    },
    "ets_azn": {
        "model": str(ets.model_["method"]),
        "forecast": np.exp(ets.predict(H)["mean"]).tolist(),
    },
    "drift": {"forecast": np.exp(drift.predict(H)["mean"]).tolist()},
}
assert all(math.isfinite(v) for v in out["theta_optimised"]["forecast"])
print(json.dumps(out, indent=1))
