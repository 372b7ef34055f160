"""Python reference server for bench/compare: FastAPI + PyTorch + numpy.

A baseline only, not part of the product. It speaks the contract in SPEC.md the way the old Python
service did: async handlers that run PyTorch inline (so a training blocks the event loop), an LSTM
trained on demand on the request's prices, models cached in a dict per symbol, recursive forecasts.
Models are persisted with torch.save(state_dict) and loaded on demand after a restart.

Settings (flag or environment variable):
  --host / HOST (127.0.0.1), --port / PORT (8000), --models-dir / MODELS_DIR (./models),
  REF_EPOCHS or TRAINING_EPOCHS (50), MODEL_VERSION (v1.0.0), REF_THREADS (2 torch threads),
  REF_ACCESS_LOG=1 to turn uvicorn's access log on (off by default: it costs the baseline speed).
"""

import argparse
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# SPEC section 3 defaults.
SEQUENCE_LENGTH = 60
HIDDEN_SIZE = 64
NUM_LAYERS = 2
DROPOUT = 0.2
LEARNING_RATE = 1e-3
BATCH_SIZE = int(os.environ.get("TRAINING_BATCH_SIZE", "32"))
EPOCHS = int(os.environ.get("REF_EPOCHS") or os.environ.get("TRAINING_EPOCHS") or "50")
MIN_TRAINING_POINTS = 200
MODEL_VERSION = os.environ.get("MODEL_VERSION", "v1.0.0")
SYMBOL_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

torch.set_num_threads(int(os.environ.get("REF_THREADS", "2")))
DEVICE = torch.device("cpu")


class LSTMModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(1, HIDDEN_SIZE, NUM_LAYERS, batch_first=True, dropout=DROPOUT)
        self.fc = nn.Linear(HIDDEN_SIZE, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1, :])


class Entry:
    """A trained model with its min-max scaler and confidence."""

    def __init__(self, model, lo, hi, confidence):
        self.model, self.lo, self.hi, self.confidence = model, lo, hi, confidence

    def scale(self, prices):
        return (np.asarray(prices, dtype=np.float32) - self.lo) / (self.hi - self.lo)

    def unscale(self, value):
        return value * (self.hi - self.lo) + self.lo


models: dict[str, Entry] = {}
models_dir = Path(os.environ.get("MODELS_DIR", "./models"))


def model_path(symbol):
    return models_dir / f"{symbol}_{MODEL_VERSION}.pt"


def train(prices):
    arr = np.asarray(prices, dtype=np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        raise HTTPException(400, "Price history is constant; cannot fit a min-max scaled model")
    scaled = (arr - lo) / (hi - lo)
    windows = np.lib.stride_tricks.sliding_window_view(scaled[:-1], SEQUENCE_LENGTH).copy()
    x = torch.from_numpy(windows).unsqueeze(-1)
    y = torch.from_numpy(scaled[SEQUENCE_LENGTH:].copy()).unsqueeze(-1)
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH_SIZE, shuffle=True)

    model = LSTMModel().to(DEVICE)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.MSELoss()
    model.train()
    for _ in range(EPOCHS):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
    model.eval()
    # Confidence: a heuristic from the fit on the most recent 20% of windows (baseline only).
    tail = max(1, len(x) // 5)
    with torch.no_grad():
        rmse = math.sqrt(loss_fn(model(x[-tail:]), y[-tail:]).item())
    return Entry(model, lo, hi, max(0.0, min(1.0, 1.0 / (1.0 + 10.0 * rmse))))


def save(symbol, entry):
    models_dir.mkdir(parents=True, exist_ok=True)
    path = model_path(symbol)
    tmp = path.with_suffix(".pt.tmp")
    torch.save(
        {
            "state_dict": entry.model.state_dict(),
            "min": entry.lo,
            "max": entry.hi,
            "confidence": entry.confidence,
            "model_version": MODEL_VERSION,
        },
        tmp,
    )
    os.replace(tmp, path)


def load(symbol):
    path = model_path(symbol)
    if not path.exists():
        return None
    blob = torch.load(path, map_location=DEVICE, weights_only=True)
    model = LSTMModel()
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return Entry(model, blob["min"], blob["max"], blob["confidence"])


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_symbol(symbol):
    if not SYMBOL_RE.match(symbol):
        raise HTTPException(422, "symbol must be 1-32 characters of A-Z a-z 0-9 _ -")
    return symbol.upper()


def check_prices(prices):
    for i, p in enumerate(prices):
        if not (math.isfinite(p) and p > 0):
            raise HTTPException(422, f"historical_prices[{i}] must be a finite number > 0")


class PredictRequest(BaseModel):
    symbol: str
    historical_prices: list[float]
    days_ahead: int = 7


class RiskRequest(BaseModel):
    symbol: str
    historical_prices: list[float]


app = FastAPI(title="Coinsphere ML (Python reference)")


@app.get("/")
async def root():
    return {
        "service": "Coinsphere ML",
        "status": "running",
        "version": "reference",
        "endpoints": {
            "/health": "Health check",
            "/predict": "Price prediction",
            "/risk-score": "Risk score",
            "/models/{symbol}": "Model info (GET) or unload (DELETE)",
        },
    }


@app.get("/health")
async def health():
    return {"status": "healthy", "pytorch_available": False, "device": "cpu", "models_loaded": len(models)}


# Handlers are `async def` with PyTorch inline, as in the original: a training blocks the loop.
@app.post("/predict")
async def predict(req: PredictRequest):
    symbol = check_symbol(req.symbol)
    prices = req.historical_prices
    if len(prices) < SEQUENCE_LENGTH:
        raise HTTPException(400, "Need at least 60 historical price points for prediction")
    check_prices(prices)
    if not 1 <= req.days_ahead <= 90:
        raise HTTPException(422, "days_ahead must be between 1 and 90")
    entry = models.get(symbol)
    if entry is None:
        entry = load(symbol)
        if entry is None:
            if len(prices) < MIN_TRAINING_POINTS:
                raise HTTPException(
                    404,
                    f"No pre-trained model for {symbol}. Provide at least 200 data points for training.",
                )
            entry = train(prices)
            save(symbol, entry)
        models[symbol] = entry

    window = entry.scale(prices[-SEQUENCE_LENGTH:])
    with torch.no_grad():
        for _ in range(req.days_ahead):
            x = torch.from_numpy(window[-SEQUENCE_LENGTH:]).view(1, SEQUENCE_LENGTH, 1)
            window = np.append(window, np.float32(entry.model(x).item()))
    current = float(prices[-1])
    predicted = float(entry.unscale(float(window[-1])))
    change = predicted - current
    return {
        "symbol": symbol,
        "current_price": current,
        "predicted_price": predicted,
        "prediction_change": change,
        "prediction_change_percent": change / current * 100.0,
        "confidence": entry.confidence,
        "days_ahead": req.days_ahead,
        "timestamp": now(),
    }


@app.post("/risk-score")
async def risk_score(req: RiskRequest):
    symbol = check_symbol(req.symbol)
    if len(req.historical_prices) < 30:
        raise HTTPException(400, "Need at least 30 historical price points for risk scoring")
    check_prices(req.historical_prices)
    p = np.asarray(req.historical_prices, dtype=np.float64)
    p30, p7 = p[-30:], p[-7:]
    mean30 = p30.mean()
    volatility = float(p30.std() / mean30)
    swing = float((p7.max() - p7.min()) / p7.mean())
    trend = float(np.polyfit(np.arange(30.0), p30, 1)[0] / mean30)
    score = int(
        0.5 * min(100.0, 200.0 * volatility)
        + 0.3 * min(100.0, 150.0 * swing)
        + 0.2 * min(100.0, 500.0 * abs(trend))
    )
    score = max(0, min(100, score))
    level = "conservative" if score < 30 else "moderate" if score < 70 else "degen"
    return {"symbol": symbol, "risk_score": score, "risk_level": level, "volatility": volatility, "timestamp": now()}


@app.get("/models/{symbol}")
async def model_info(symbol: str):
    symbol = check_symbol(symbol)
    if symbol in models:
        return {
            "symbol": symbol,
            "status": "loaded",
            "model_version": MODEL_VERSION,
            "sequence_length": SEQUENCE_LENGTH,
            "device": "cpu",
        }
    return {"symbol": symbol, "status": "not_loaded", "model_version": MODEL_VERSION}


@app.delete("/models/{symbol}")
async def unload_model(symbol: str, delete_artifact: bool = False):
    symbol = check_symbol(symbol)
    loaded = models.pop(symbol, None) is not None
    removed = False
    if delete_artifact and model_path(symbol).exists():
        model_path(symbol).unlink()
        removed = True
    if not loaded and not removed:
        raise HTTPException(404, f"Model {symbol} not loaded")
    return {"message": f"Model {symbol} unloaded"}


def main():
    global models_dir
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--models-dir", default=str(models_dir))
    args = parser.parse_args()
    models_dir = Path(args.models_dir)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=os.environ.get("REF_ACCESS_LOG") == "1",
    )


if __name__ == "__main__":
    main()
