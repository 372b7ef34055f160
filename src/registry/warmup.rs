//! Warm-up: loads the stored models of `WARMUP_SYMBOLS` into memory at start-up so that the
//! first requests for them do not pay for reading and verifying artefacts. A missing or
//! unreadable model is logged, never fatal.

use std::sync::Arc;
use std::time::Instant;

use crate::domain::Symbol;
use crate::registry::Registry;

/// What warm-up did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WarmupReport {
    /// Symbols whose model is now in memory.
    pub loaded: Vec<Symbol>,
    /// Symbols with no stored model (or one that did not verify).
    pub missing: Vec<Symbol>,
    /// Symbols whose store could not be read.
    pub failed: Vec<Symbol>,
}

/// Loads each symbol's stored model, one after the other (loading is I/O-bound and short; the
/// service already answers meanwhile).
pub async fn warm_up(registry: &Arc<Registry>, symbols: &[Symbol]) -> WarmupReport {
    let started = Instant::now();
    let mut report = WarmupReport::default();
    for symbol in symbols {
        match registry.warm(symbol).await {
            Ok(true) => report.loaded.push(symbol.clone()),
            Ok(false) => {
                tracing::warn!(%symbol, "warm-up: no stored model, it will be trained on demand");
                report.missing.push(symbol.clone());
            }
            Err(e) => {
                tracing::error!(%symbol, error = %crate::telemetry::error_chain(&e), "warm-up: cannot load the model");
                report.failed.push(symbol.clone());
            }
        }
    }
    tracing::info!(
        loaded = report.loaded.len(),
        missing = report.missing.len(),
        failed = report.failed.len(),
        seconds = started.elapsed().as_secs_f64(),
        "warm-up finished"
    );
    report
}
