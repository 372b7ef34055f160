//! Request time limits, the declared-body-size check, and CORS. (Connection limits and
//! header timeouts are the server's: see [`crate::http::server`].)
//!
//! Two limits: `REQUEST_TIMEOUT_SECS` (default 30) for ordinary requests, and
//! `TRAINING_TIMEOUT_SECS` (default 900) for the routes that may train a model (`/predict`,
//! `/predict-batch`, `/models/{symbol}/train`, `/models/{symbol}/update`, and `/backtest`,
//! which refits every model at every fold and trains the LSTM once per fold when asked to).
//! A request past its limit gets 504; a training it started is not cancelled (it runs in a
//! spawned task and on the blocking pool) and its model is stored and served to the next
//! request. A backtest is cancelled: nobody is left to read it.

use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::http::error::ApiError;
use crate::http::AppState;

/// Whether requests to this route template may train a model (and get the long limit).
pub fn may_train(route: &str) -> bool {
    matches!(
        route,
        "/predict"
            | "/predict-batch"
            | "/models/{symbol}/train"
            | "/models/{symbol}/update"
            | "/backtest"
    )
}

/// Middleware applying the request limits that come before the handler: 413 at once for a
/// declared `Content-Length` above `BODY_LIMIT_BYTES`, before a byte of the body is read (a
/// client announcing 10 GB and sending nothing would otherwise hold the request until its time
/// limit); then the time limit of the request's route. One middleware, not two: each layer
/// costs a state clone and a boxed future on every request (`/risk-score` answers in tens of
/// microseconds).
pub async fn enforce_limits(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let body_limit = state.limits.body_limit_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > body_limit as u64) {
        return ApiError::PayloadTooLarge { limit: body_limit }.into_response();
    }
    let long = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|m| may_train(m.as_str()));
    let limit: Duration = if long {
        state.ops.training_timeout
    } else {
        state.ops.request_timeout
    };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout {
            secs: limit.as_secs(),
            may_train: long,
        }
        .into_response(),
    }
}

/// The CORS layer for `origins` (`*` allows any origin); `None` when the list is empty or
/// says `none`.
pub fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() || origins.iter().any(|o| o.eq_ignore_ascii_case("none")) {
        return None;
    }
    let allow = if origins.contains(&"*") {
        AllowOrigin::any()
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        AllowOrigin::list(list)
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .max_age(Duration::from_secs(3600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_routes_that_may_train_get_the_long_limit() {
        assert!(may_train("/predict"));
        assert!(may_train("/models/{symbol}/update"));
        assert!(may_train("/backtest"));
        assert!(!may_train("/risk-score"));
        assert!(!may_train("/health"));
    }

    #[test]
    fn cors_is_off_without_origins() {
        assert!(cors_layer(&[]).is_none());
        assert!(cors_layer(&["none".into()]).is_none());
        assert!(cors_layer(&["*".into()]).is_some());
        assert!(cors_layer(&["https://app.example".into()]).is_some());
    }
}
