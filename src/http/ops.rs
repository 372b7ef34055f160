//! State and errors of the operations endpoints ([`OpsState`], [`OpsError`]), and the hook that
//! every prediction passes through (metrics, stale-model retraining).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::Semaphore;

use super::error::ApiError;
use super::probes::Readiness;
use super::AppState;
use crate::domain::{PriceSeries, Symbol};
use crate::registry::retrain::Retrainer;
use crate::settings::ops::{ApiKeys, OpsSettings, TrainingMode};

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

/// Records a finished prediction in the metrics.
pub fn record_prediction(
    state: &AppState,
    symbol: Option<&Symbol>,
    result: &Result<super::dto::PredictResponse, ApiError>,
    elapsed: Duration,
) {
    let metrics = state.registry.metrics();
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    };
    // A series per symbol that has a model, not per symbol a client can make up.
    let model = match symbol {
        Some(s) if state.registry.loaded(s).is_some() => s.as_str(),
        Some(_) => "other",
        None => "_invalid",
    };
    metrics.predictions.inc(&[model, outcome]);
    metrics
        .prediction_seconds
        .observe(&[], elapsed.as_secs_f64());
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

/// Errors of the operations endpoints; everything else is an [`ApiError`].
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// A protected route without `Authorization: Bearer <key>`: 401.
    #[error("missing bearer token")]
    Unauthorized,
    /// A key that is not in `API_KEYS`: 403.
    #[error("invalid API key")]
    Forbidden,
    /// More batch items than `MAX_BATCH_SIZE`: 413.
    #[error("batch of {got}, more than {max}")]
    BatchTooLarge { got: usize, max: usize },
    /// Fewer prices than training or fine-tuning needs: 400.
    #[error("{got} prices, {needed} needed")]
    NotEnoughPricesForTraining { needed: usize, got: usize },
    /// The request ran past its time limit: 504. `may_train`: the route may have started a
    /// training, which goes on.
    #[error("timed out after {secs} s")]
    Timeout { secs: u64, may_train: bool },
    /// Not ready (starting or shutting down): 503.
    #[error("not ready: {state}")]
    NotReady { state: &'static str },
    /// Any error of the core API.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl IntoResponse for OpsError {
    fn into_response(self) -> Response {
        let api = match self {
            Self::Api(e) => return e.into_response(),
            other => other,
        };
        let (status, code, detail) = match &api {
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Missing API key: send Authorization: Bearer <key>".to_owned(),
            ),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Invalid API key".to_owned(),
            ),
            Self::BatchTooLarge { got, max } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch_too_large",
                format!("Batch of {got} requests is larger than the limit of {max}"),
            ),
            Self::NotEnoughPricesForTraining { needed, got } => (
                StatusCode::BAD_REQUEST,
                "not_enough_prices",
                format!("Need at least {needed} historical price points for training, got {got}"),
            ),
            Self::Timeout { secs, may_train } => (
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                if *may_train {
                    format!("The request did not finish within {secs} seconds; any training it started goes on in the background")
                } else {
                    format!("The request did not finish within {secs} seconds")
                },
            ),
            Self::NotReady { state } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                format!("The service is {state}"),
            ),
            Self::Api(_) => unreachable!("answered above"),
        };
        let mut response =
            (status, axum::Json(json!({"detail": detail, "code": code}))).into_response();
        if matches!(api, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<crate::registry::RegistryError> for OpsError {
    fn from(e: crate::registry::RegistryError) -> Self {
        Self::Api(e.into())
    }
}
