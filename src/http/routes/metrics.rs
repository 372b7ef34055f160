//! `GET /metrics` (OpenMetrics text, [`crate::telemetry::metrics`]) and the middleware that counts every HTTP request
//! by method, route template (axum's `MatchedPath`, so `/models/{symbol}` is one series) and
//! status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;
use crate::telemetry::metrics::{GaugeValues, CONTENT_TYPE};

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(serve_metrics))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, description = "OpenMetrics text format 1.0.0", body = String, content_type = "application/openmetrics-text"),
))]
async fn serve_metrics(State(state): State<AppState>) -> impl IntoResponse {
    let stats = state.registry.stats();
    let values = GaugeValues {
        models_loaded: stats.models_loaded,
        trainings_running: stats.trainings_running,
        trainings_waiting: stats.trainings_waiting,
        ready: state.ops.readiness.is_ready(),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
    };
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.registry.metrics().render(values),
    )
}

/// Middleware recording `ml_http_requests_total` and `ml_http_request_duration_seconds`.
/// Requests that match no route are labelled `unmatched`, so unknown paths add no series.
pub async fn track_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = state.registry.metrics();
    metrics
        .http_requests
        .inc(&[method.as_str(), &route, response.status().as_str()]);
    metrics
        .http_seconds
        .observe(&[&route], started.elapsed().as_secs_f64());
    response
}
