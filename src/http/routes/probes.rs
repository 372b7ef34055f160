//! `GET /health/live` (the process answers) and `GET /health/ready` (start-up and warm-up are
//! done and the service is not shutting down: 503 otherwise), for orchestrators, with the
//! KServe / Open Inference Protocol V2 paths `/v2/health/live` and `/v2/health/ready` as aliases;
//! and [`Readiness`], the state they report.

use std::sync::atomic::{AtomicU8, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::responses::ReadinessAnswers;
use crate::contract::one_of_strings;
use crate::http::AppState;

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(check_liveness))
        .routes(routes!(check_readiness))
        .routes(routes!(check_liveness_v2))
        .routes(routes!(check_readiness_v2))
}

/// Where the service is in its life, for `GET /health/ready`.
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;
/// The names of the states, by their number.
const STATES: [&str; 3] = ["starting", "ready", "draining"];

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
        STATES[usize::from(self.0.load(Ordering::SeqCst).min(DRAINING))]
    }

    /// Whether traffic should be sent here.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst) == READY
    }
}

/// `{"status": "alive"}`.
#[derive(Serialize, ToSchema)]
pub struct Liveness {
    /// `alive`.
    #[schema(schema_with = alive)]
    status: &'static str,
}

fn alive() -> utoipa::openapi::Object {
    one_of_strings(["alive"])
}

/// Readiness and the models in memory (alphabetical, as always sent).
#[derive(Serialize, ToSchema)]
#[schema(as = Readiness)]
pub struct ReadinessReport {
    /// Models in memory.
    models_loaded: usize,
    /// `starting`, `ready` or `draining`.
    #[schema(schema_with = readiness_state)]
    status: &'static str,
}

fn readiness_state() -> utoipa::openapi::Object {
    one_of_strings(STATES)
}

/// Liveness probe: the process answers.
#[utoipa::path(get, path = "/health/live", responses((status = 200, description = "Alive", body = Liveness)))]
async fn check_liveness() -> Json<Liveness> {
    Json(Liveness { status: "alive" })
}

/// Readiness probe: start-up and warm-up are done.
#[utoipa::path(get, path = "/health/ready", responses(ReadinessAnswers))]
async fn check_readiness(State(state): State<AppState>) -> (StatusCode, Json<ReadinessReport>) {
    let readiness = &state.ops.readiness;
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(ReadinessReport {
            status: readiness.state(),
            models_loaded: state.registry.stats().models_loaded,
        }),
    )
}

/// Liveness probe at the KServe / Open Inference Protocol V2 path.
#[utoipa::path(get, path = "/v2/health/live", responses((status = 200, description = "Alive", body = Liveness)))]
async fn check_liveness_v2() -> Json<Liveness> {
    check_liveness().await
}

/// Readiness probe at the KServe / Open Inference Protocol V2 path.
#[utoipa::path(get, path = "/v2/health/ready", responses(ReadinessAnswers))]
async fn check_readiness_v2(state: State<AppState>) -> (StatusCode, Json<ReadinessReport>) {
    check_readiness(state).await
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
