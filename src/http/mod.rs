//! The HTTP API (SPEC section 1): routes, DTOs, errors and the OpenAPI document.
//!
//! [`router`] assembles one router per resource; [`AppState`] is cheap to clone (it holds
//! `Arc`s); [`server::Application`] binds a listener and serves it with graceful shutdown.

pub mod body;
pub mod error;
pub mod middleware;
pub mod routes;
pub mod server;
pub mod state;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::{Extension, Router};
use serde_json::{json, Value};

use crate::domain::{PriceSeries, Symbol};
use crate::forecast::{model_by_name, ForecastError};
use crate::registry::Registry;
use crate::settings::Settings;
use error::{ApiError, FieldError};
use middleware::{limits, logging};
use routes::{docs, metrics};

/// Limits checked at the boundary.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest accepted `days_ahead`.
    pub max_days_ahead: usize,
    /// Most prices in one request.
    pub max_prices: usize,
    /// Largest body in bytes.
    pub body_limit_bytes: usize,
    /// Time for a whole body to arrive.
    pub body_read_timeout: std::time::Duration,
}

impl Limits {
    /// The limits of `settings`.
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            max_days_ahead: settings.max_days_ahead.get(),
            max_prices: settings.max_prices.get(),
            body_limit_bytes: settings.body_limit_bytes.get(),
            body_read_timeout: std::time::Duration::from_secs(
                settings.body_read_timeout_secs.get(),
            ),
        }
    }
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// Models in memory, loading and training.
    pub registry: Arc<Registry>,
    /// Boundary limits.
    pub limits: Arc<Limits>,
    /// When the service started.
    pub started: Instant,
    /// Readiness, access control, batch and time limits, retraining.
    pub ops: Arc<state::OpsState>,
    /// Statistical forecasts of requests seen before.
    pub stats_cache: Arc<crate::registry::stats_cache::StatsCache>,
    /// Prices by symbol and the prediction log: `None` without `DATABASE_URL`.
    pub data: Option<Arc<state::DataState>>,
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let body_limit = state.limits.body_limit_bytes;
    let (router, api) = routes::api().split_for_parts();
    let document = docs::document(api, state.limits.max_days_ahead, state.limits.max_prices);
    let router = router
        .layer(Extension(docs::Document(Arc::new(document))))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        // Innermost first: declared body size and time limit, then request metrics and the log
        // line. Keys are checked by the handlers, on the request they parsed (see `auth`).
        .layer(from_fn_with_state(state.clone(), limits::enforce_limits))
        .layer(from_fn_with_state(state.clone(), metrics::track_requests))
        .layer(axum::middleware::from_fn(logging::log_requests));
    let router = match limits::cors_layer(&state.ops.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.with_state(state)
}

/// Validates a symbol, recording a field error at `loc` if it is bad.
fn check_symbol(raw: &str, loc: Vec<Value>, errors: &mut Vec<FieldError>) -> Option<Symbol> {
    Symbol::parse(raw)
        .map_err(|e| errors.push(value_error(loc, e)))
        .ok()
}

/// The `{symbol}` of a route's path, validated (422 at `["path", "symbol"]`) and recorded for
/// the request log.
fn path_symbol(
    path: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
    logged: &logging::RequestSymbol,
) -> Result<Symbol, ApiError> {
    let loc = vec![json!("path"), json!("symbol")];
    let raw = path.map_err(|e| {
        ApiError::Validation(vec![FieldError::new(
            loc.clone(),
            e.body_text(),
            "path_error",
        )])
    })?;
    let mut errors = Vec::new();
    let symbol = check_symbol(&raw.0, loc, &mut errors).ok_or(ApiError::Validation(errors))?;
    logged.set(&symbol);
    Ok(symbol)
}

/// Validates prices: the count against the limit (400), then each price (422, naming the
/// first bad index).
fn check_prices(
    prices: Vec<f64>,
    limits: &Limits,
    errors: &mut Vec<FieldError>,
) -> Result<Option<PriceSeries>, ApiError> {
    check_price_list(prices, "historical_prices", limits, errors)
}

/// [`check_prices`] for the prices of body field `field` (`benchmark_prices`...): a bad price
/// is a 422 at `["body", field, index]`.
fn check_price_list(
    prices: Vec<f64>,
    field: &str,
    limits: &Limits,
    errors: &mut Vec<FieldError>,
) -> Result<Option<PriceSeries>, ApiError> {
    if prices.len() > limits.max_prices {
        return Err(ApiError::TooManyPrices {
            got: prices.len(),
            max: limits.max_prices,
        });
    }
    Ok(PriceSeries::parse(prices)
        .map_err(|e| {
            let index = match &e {
                crate::domain::DomainError::BadPrice { index, .. } => json!(index),
                _ => json!(null),
            };
            errors.push(value_error(vec![json!("body"), json!(field), index], e));
        })
        .ok())
}

/// Validates a model name against [`crate::forecast::MODEL_NAMES`], recording a field error
/// that lists the valid names at `loc` if it is unknown.
fn check_model(raw: &str, loc: Vec<Value>, errors: &mut Vec<FieldError>) -> Option<&'static str> {
    model_by_name(raw)
        .map(|m| m.name())
        .map_err(|e| errors.push(value_error(loc, e)))
        .ok()
}

/// Validates an interval level, strictly between 0 and 1.
fn check_level(level: f64, loc: Vec<Value>, errors: &mut Vec<FieldError>) -> Option<f64> {
    if level > 0.0 && level < 1.0 {
        Some(level)
    } else {
        errors.push(value_error(loc, ForecastError::InvalidLevel(level)));
        None
    }
}

fn value_error(loc: Vec<Value>, e: impl std::fmt::Display) -> FieldError {
    FieldError::new(loc, format!("Value error, {e}"), "value_error")
}
