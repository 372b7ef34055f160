//! `GET /health/live` (the process answers) and `GET /health/ready` (start-up and warm-up are
//! done and the service is not shutting down: 503 otherwise), for orchestrators, with the
//! KServe / Open Inference Protocol V2 paths `/v2/health/live` and `/v2/health/ready` as aliases;
//! the state they report is [`Readiness`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::responses::ReadinessAnswers;
use crate::contract::one_of_strings;
use crate::http::state::Readiness;
use crate::http::AppState;

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(check_liveness))
        .routes(routes!(check_readiness))
        .routes(routes!(check_liveness_v2))
        .routes(routes!(check_readiness_v2))
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
    one_of_strings(Readiness::STATES)
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
