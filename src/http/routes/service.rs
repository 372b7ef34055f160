//! `GET /` (what this service is) and `GET /health`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::http::AppState;

/// The service's name, in `GET /` and `GET /health`.
pub const SERVICE_NAME: &str = "Coinsphere ML";

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(describe_service))
        .route("/health", get(check_health))
}

async fn describe_service() -> Json<Value> {
    Json(json!({
        "service": SERVICE_NAME,
        "status": "running",
        "version": env!("CARGO_PKG_VERSION"),
        "endpoints": {
            "/health": "GET: service health and training activity",
            "/predict": "POST: forecast a symbol's price days_ahead steps ahead with intervals (model: lstm, trained on demand, or a statistical model)",
            "/risk-score": "POST: CB-05 risk score of a price history, with volatility, drawdown, VaR, ES and beta",
            "/risk-score-batch": "POST: several risk-score requests in one, answered in order",
            "/models": "GET: the models in memory and in the store",
            "/models/{symbol}": "GET: whether a symbol's model is in memory; DELETE: unload it (?purge=true also deletes the stored model)",
            "/predict-batch": "POST: several predict requests in one, answered in order",
            "/backtest": "POST: rolling-origin backtest of forecasting models on a price history (MAE, MAPE, MASE, interval coverage)",
            "/models/{symbol}/train": "POST: retrain a symbol's model from posted prices",
            "/models/{symbol}/update": "POST: fine-tune a symbol's model on newer prices",
            "/health/live": "GET: liveness probe",
            "/health/ready": "GET: readiness probe (503 until warm-up is done)",
            "/metrics": "GET: Prometheus metrics",
            "/openapi.json": "GET: OpenAPI 3.1 description of this API",
            "/docs": "GET: API documentation (works offline)",
        },
    }))
}

/// Answers from counters only: never waits on a lock held by training.
async fn check_health(State(state): State<AppState>) -> Json<Value> {
    let stats = state.registry.stats();
    Json(json!({
        "status": "healthy",
        "service": SERVICE_NAME,
        "pytorch_available": false,
        "device": "cpu",
        "lstm_kernel": state.registry.precision().kernel(),
        "training_mode": state.ops.training_mode.as_str(),
        "models_loaded": stats.models_loaded,
        "version": env!("CARGO_PKG_VERSION"),
        "model_version": state.registry.version().as_str(),
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        "training": {
            "trainings_total": stats.trainings_total,
            "trainings_running": stats.trainings_running,
            "trainings_waiting": stats.trainings_waiting,
            "trainings_failed_total": stats.trainings_failed_total,
            "overloaded_total": stats.overloaded_total,
        },
        "models_loaded_from_store_total": stats.models_loaded_from_store_total,
        "cache_hits_total": stats.cache_hits_total,
    }))
}
