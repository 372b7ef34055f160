//! coinsphere-ml: per-symbol LSTM price forecasts and CB-05 risk scores.
//!
//! Dependencies only point down (ARCHITECTURE.md draws the layers): [`domain`], [`telemetry`]
//! and [`prices`] at the bottom; the models ([`forecast`], [`risk`]) and their evaluation
//! ([`backtest`], [`chart`]); [`store`] and [`registry`] keep trained models; [`settings`]; only
//! [`http`] sees axum; [`cli`] wires it together.

pub mod backtest;
pub mod chart;
pub mod cli;
pub mod contract;
pub mod domain;
pub mod forecast;
pub mod http;
pub mod prices;
pub mod registry;
pub mod risk;
pub mod settings;
pub mod store;
pub mod telemetry;
