//! `POST /predict`: validate, get the symbol's model (memory, store or training), forecast.

use axum::extract::State;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::json;

use super::dto::{PredictRequest, PredictResponse};
use super::error::ApiError;
use super::extract::ApiJson;
use super::logging::RequestSymbol;
use super::{check_prices, check_symbol, value_error, AppState};
use crate::domain::Horizon;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/predict", post(predict_price))
}

async fn predict_price(
    State(state): State<AppState>,
    Extension(logged): Extension<RequestSymbol>,
    ApiJson(request): ApiJson<PredictRequest>,
) -> Result<Json<PredictResponse>, ApiError> {
    let mut errors = Vec::new();
    let symbol = check_symbol(
        &request.symbol,
        vec![json!("body"), json!("symbol")],
        &mut errors,
    );
    if let Some(symbol) = &symbol {
        logged.set(symbol);
    }
    let prices = check_prices(request.historical_prices, &state.limits, &mut errors)?;
    let horizon = Horizon::parse(request.days_ahead, state.limits.max_days_ahead)
        .map_err(|e| errors.push(value_error(vec![json!("body"), json!("days_ahead")], e)))
        .ok();
    let (Some(symbol), Some(prices), Some(horizon)) = (symbol, prices, horizon) else {
        return Err(ApiError::Validation(errors));
    };
    let forecast = state.registry.forecast(&symbol, prices, horizon).await?;
    Ok(Json(PredictResponse::new(
        &symbol,
        &forecast,
        horizon.get(),
        crate::now_rfc3339(),
    )))
}
