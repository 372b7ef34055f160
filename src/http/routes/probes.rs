//! `GET /health/live` (the process answers) and `GET /health/ready` (start-up and warm-up are
//! done and the service is not shutting down: 503 otherwise), for orchestrators, with the
//! KServe / Open Inference Protocol V2 paths `/v2/health/live` and `/v2/health/ready` as aliases;
//! and [`Readiness`], the state they report.

use std::sync::atomic::{AtomicU8, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::http::AppState;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(check_liveness))
        .route("/health/ready", get(check_readiness))
        .route("/v2/health/live", get(check_liveness))
        .route("/v2/health/ready", get(check_readiness))
}

/// Where the service is in its life, for `GET /health/ready`.
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;

impl Readiness {
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
        match self.0.load(Ordering::SeqCst) {
            STARTING => "starting",
            READY => "ready",
            _ => "draining",
        }
    }

    /// Whether traffic should be sent here.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst) == READY
    }
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
