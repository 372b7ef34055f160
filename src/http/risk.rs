//! `POST /risk-score`: the CB-05 score of SPEC section 4.

use axum::extract::State;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::json;

use super::dto::{RiskRequest, RiskResponse};
use super::error::ApiError;
use super::extract::ApiJson;
use super::logging::RequestSymbol;
use super::{check_prices, check_symbol, AppState};
use crate::risk::{self, RiskError};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/risk-score", post(score_risk))
}

async fn score_risk(
    State(state): State<AppState>,
    Extension(logged): Extension<RequestSymbol>,
    ApiJson(request): ApiJson<RiskRequest>,
) -> Result<Json<RiskResponse>, ApiError> {
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
    let (Some(symbol), Some(prices)) = (symbol, prices) else {
        return Err(ApiError::Validation(errors));
    };
    let score = risk::cb05(prices.as_slice()).map_err(|e| match e {
        RiskError::NotEnoughPrices { got, .. } => ApiError::NotEnoughPricesForRisk { got },
    })?;
    Ok(Json(RiskResponse::new(
        &symbol,
        score,
        crate::now_rfc3339(),
    )))
}
