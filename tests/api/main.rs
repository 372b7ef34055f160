//! Integration tests: a real server on port 0 with a temporary models directory.
//!
//! One binary (this file and its modules) so the crate is linked once.

#[path = "../common/backtest_row.rs"]
mod backtest_row;
mod forecast_models;
mod helpers;
mod models;
mod ops;
mod predict;
mod risk;
mod security;
mod service;
mod training;
mod validation;
