//! One file per resource, each with a `router()` of its routes, documented where they are
//! declared (`#[utoipa::path]`); [`api`] merges them into one router and one OpenAPI document.

pub mod accuracy;
pub mod backtest;
pub mod batch;
pub mod docs;
pub mod metrics;
pub mod models;
pub mod predict;
pub mod probes;
pub mod responses;
pub mod risk;
pub mod service;
pub mod training;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::http::AppState;

/// Every route, with the OpenAPI document they describe.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .merge(service::router())
        .merge(predict::router())
        .merge(risk::router())
        .merge(models::router())
        .merge(docs::router())
        .merge(batch::router())
        .merge(backtest::router())
        .merge(training::router())
        .merge(probes::router())
        .merge(metrics::router())
        .merge(accuracy::router())
}
