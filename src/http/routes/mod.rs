//! One file per resource, each with a `router()` of its routes; [`crate::http::router`] merges
//! them.

pub mod backtest;
pub mod batch;
pub mod docs;
pub mod metrics;
pub mod models;
pub mod predict;
pub mod probes;
pub mod risk;
pub mod service;
pub mod training;
