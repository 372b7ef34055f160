//! State of the operations endpoints ([`OpsState`]), and the hook that every prediction passes
//! through (metrics, stale-model retraining).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::error::ApiError;
use super::AppState;
use crate::domain::{PriceSeries, Symbol};
use crate::registry::retrain::Retrainer;
use crate::settings::ops::{ApiKeys, OpsSettings, TrainingMode};
use crate::store::postgres::Database;
use crate::store::predictions::{PredictionLog, PredictionRecord};
use crate::store::prices::PriceDb;

/// Where the service is in its life, for `GET /health/ready`.
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;

impl Readiness {
    /// The names of the states, by their number.
    pub const STATES: [&'static str; 3] = ["starting", "ready", "draining"];

    /// Start-up and warm-up are done.
    pub fn set_ready(&self) {
        // Never leave draining for ready: a warm-up finishing during shutdown must not revive it.
        let _ = self
            .0
            .compare_exchange(STARTING, READY, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Shutting down: finish in-flight requests, take no new traffic.
    pub fn set_draining(&self) {
        self.0.store(DRAINING, Ordering::SeqCst);
    }

    /// `starting`, `ready` or `draining`.
    pub fn state(&self) -> &'static str {
        Self::STATES[usize::from(self.0.load(Ordering::SeqCst).min(DRAINING))]
    }

    /// Whether traffic should be sent here.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst) == READY
    }
}

/// With `DATABASE_URL`: the closes by symbol and the prediction log.
#[derive(Debug)]
pub struct DataState {
    /// The service's schema and connections.
    pub db: Database,
    /// Closes by symbol, cached.
    pub prices: PriceDb,
    /// Every served forecast, written in the background.
    pub log: PredictionLog,
    /// Closes read for a forecast by symbol (`PRICE_HISTORY_DAYS`).
    pub history_days: usize,
}

/// What the operations endpoints and middleware share.
#[derive(Debug)]
pub struct OpsState {
    /// Start-up, warm-up, shutdown.
    pub readiness: Readiness,
    /// Background retraining of stale models.
    pub retrainer: Arc<Retrainer>,
    /// Keys for train, update and purge (`None`: open).
    pub api_keys: Option<ApiKeys>,
    /// Who may train from request data.
    pub training_mode: TrainingMode,
    /// Most requests in one batch.
    pub max_batch_size: usize,
    /// Limit of ordinary requests.
    pub request_timeout: Duration,
    /// Limit of requests that may train.
    pub training_timeout: Duration,
    /// Default epochs of `POST /models/{symbol}/update`.
    pub update_epochs: usize,
    /// Origins allowed by CORS (empty: no CORS headers).
    pub cors_origins: Vec<String>,
    /// One permit: `POST /backtest` runs one backtest at a time (it uses every core).
    pub backtests: Arc<Semaphore>,
}

impl OpsState {
    /// The state for `settings`.
    pub fn new(settings: &OpsSettings) -> Self {
        Self {
            readiness: Readiness::default(),
            retrainer: Arc::new(Retrainer::new(settings.model_max_age.map(|a| a.0))),
            api_keys: settings.api_keys.clone(),
            training_mode: settings.training_mode,
            max_batch_size: settings.max_batch_size.get(),
            request_timeout: Duration::from_secs(settings.request_timeout_secs.get()),
            training_timeout: Duration::from_secs(settings.training_timeout_secs.get()),
            update_epochs: settings.update_epochs.get(),
            cors_origins: settings.cors_origins.clone(),
            backtests: Arc::new(Semaphore::new(1)),
        }
    }
}

/// Records a finished prediction of `model` (the name asked for, `_invalid` if unknown) in the
/// metrics.
pub fn record_prediction(
    state: &AppState,
    symbol: Option<&Symbol>,
    model: &str,
    result: &Result<crate::contract::PredictResponse, ApiError>,
    elapsed: Duration,
) {
    let metrics = state.registry.metrics();
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    };
    // A series per symbol that has a model, not per symbol a client can make up.
    let symbol = match symbol {
        Some(s) if state.registry.loaded(s).is_some() => s.as_str(),
        Some(_) => "other",
        None => "_invalid",
    };
    metrics.predictions.inc(&[symbol, model, outcome]);
    metrics
        .prediction_seconds
        .observe(&[model], elapsed.as_secs_f64());
}

/// Hands the forecast served for `symbol` to the prediction log (with a database; never
/// blocks). `base_day` is the day of the history's last price.
pub fn log_prediction(
    state: &AppState,
    symbol: &Symbol,
    answer: &crate::contract::PredictResponse,
    base_day: crate::store::prices::Day,
) {
    let (Some(data), Some(last)) = (&state.data, answer.forecast.last()) else {
        return;
    };
    let generation = if answer.model.name == "lstm" {
        state.registry.generation(symbol)
    } else {
        None
    };
    let horizon = u32::try_from(answer.days_ahead).unwrap_or(u32::MAX);
    data.log.record(PredictionRecord {
        symbol: symbol.clone(),
        model: answer.model.name.clone(),
        label: answer.model.label.clone(),
        model_version: answer.model.version.clone(),
        generation,
        horizon,
        predicted: answer.predicted_price,
        lower: last.lower,
        upper: last.upper,
        level: answer.level,
        confidence: answer.confidence,
        current_price: answer.current_price,
        served_at: crate::store::predictions::now_secs(),
        base_day,
        target_day: base_day.saturating_add(i32::try_from(horizon).unwrap_or(i32::MAX)),
    });
}

/// After a successful forecast: retrains `symbol`'s model in the background if it is stale.
pub fn after_forecast(state: &AppState, symbol: &Symbol, prices: Option<PriceSeries>) {
    let Some(prices) = prices else { return };
    let (retrainer, registry, symbol) = (
        Arc::clone(&state.ops.retrainer),
        Arc::clone(&state.registry),
        symbol.clone(),
    );
    tokio::spawn(async move {
        let _ = retrainer.consider(&registry, &symbol, prices).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_goes_starting_ready_draining_and_never_back() {
        let r = Readiness::default();
        assert_eq!(r.state(), "starting");
        r.set_ready();
        assert!(r.is_ready());
        r.set_draining();
        r.set_ready();
        assert_eq!(r.state(), "draining");
        assert!(!r.is_ready());
    }
}
