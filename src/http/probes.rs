//! `GET /health/live` (the process answers) and `GET /health/ready` (start-up and warm-up are
//! done and the service is not shutting down: 503 otherwise), for orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(check_liveness))
        .route("/health/ready", get(check_readiness))
}

async fn check_liveness() -> Json<Value> {
    Json(json!({"status": "alive"}))
}

async fn check_readiness(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let readiness = &state.ops.readiness;
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": readiness.state(),
            "models_loaded": state.registry.stats().models_loaded,
        })),
    )
}
