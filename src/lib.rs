//! coinsphere-ml: per-symbol LSTM price forecasts and CB-05 risk scores.

pub mod backtest;
pub mod forecast;
