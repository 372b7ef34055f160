//! coinsphere-ml: per-symbol LSTM price forecasts and CB-05 risk scores.

pub mod forecast;
