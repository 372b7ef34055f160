//! `POST /predict`: validate, get the symbol's model (memory, store or training), forecast.
//! [`predict`] is the shared logic, also used by `POST /predict-batch`.

use std::time::Instant;

use axum::extract::State;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::json;

use super::dto::{PredictRequest, PredictResponse};
use super::error::ApiError;
use super::extract::ApiJson;
use super::logging::RequestSymbol;
use super::{check_prices, check_symbol, ops, value_error, AppState};
use crate::domain::{Horizon, Symbol};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/predict", post(predict_price))
}

async fn predict_price(
    State(state): State<AppState>,
    Extension(logged): Extension<RequestSymbol>,
    ApiJson(request): ApiJson<PredictRequest>,
) -> Result<Json<PredictResponse>, ApiError> {
    predict(&state, request, Some(&logged)).await.map(Json)
}

/// Validates and answers one predict request: the logic of `POST /predict`, shared with
/// `POST /predict-batch`. Records the prediction metrics and, when `MODEL_MAX_AGE` is set,
/// may start a background retraining of a stale model.
///
/// # Errors
/// [`ApiError::Validation`] for bad fields, then any error of the registry's forecast.
pub async fn predict(
    state: &AppState,
    request: PredictRequest,
    logged: Option<&RequestSymbol>,
) -> Result<PredictResponse, ApiError> {
    let started = Instant::now();
    let mut symbol = None;
    let result = validate_and_forecast(state, request, logged, &mut symbol).await;
    ops::record_prediction(state, symbol.as_ref(), &result, started.elapsed());
    result
}

async fn validate_and_forecast(
    state: &AppState,
    request: PredictRequest,
    logged: Option<&RequestSymbol>,
    seen: &mut Option<Symbol>,
) -> Result<PredictResponse, ApiError> {
    let mut errors = Vec::new();
    let symbol = check_symbol(
        &request.symbol,
        vec![json!("body"), json!("symbol")],
        &mut errors,
    );
    if let Some(symbol) = &symbol {
        if let Some(logged) = logged {
            logged.set(symbol);
        }
        *seen = Some(symbol.clone());
    }
    let prices = check_prices(request.historical_prices, &state.limits, &mut errors)?;
    let horizon = Horizon::parse(request.days_ahead, state.limits.max_days_ahead)
        .map_err(|e| errors.push(value_error(vec![json!("body"), json!("days_ahead")], e)))
        .ok();
    let (Some(symbol), Some(prices), Some(horizon)) = (symbol, prices, horizon) else {
        return Err(ApiError::Validation(errors));
    };
    let keep = state
        .ops
        .retrainer
        .wants(prices.len())
        .then(|| prices.clone());
    let forecast = state.registry.forecast(&symbol, prices, horizon).await?;
    ops::after_forecast(state, &symbol, keep);
    Ok(PredictResponse::new(
        &symbol,
        &forecast,
        horizon.get(),
        crate::now_rfc3339(),
    ))
}
