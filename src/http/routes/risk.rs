//! `POST /risk-score`: the CB-05 score of SPEC section 4, then the further measures of
//! [`crate::risk::measures`]; and `POST /risk-score-batch`, several of them answered in order
//! the way `POST /predict-batch` answers (its pieces are reused from [`super::batch`]).

use axum::extract::State;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::batch::{check_batch_size, item_error, point_at_item, read_item, BatchRequest};
use crate::contract::RiskResponse;
use crate::http::body::dto::RiskRequest;
use crate::http::body::extract::ApiJson;
use crate::http::error::ApiError;
use crate::http::middleware::logging::RequestSymbol;
use crate::http::{check_price_list, check_prices, check_symbol, AppState, Limits};
use crate::risk::measures::risk_measures;
use crate::risk::{self, RiskError};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/risk-score", post(score_risk))
        .route("/risk-score-batch", post(score_risk_batch))
}

async fn score_risk(
    State(state): State<AppState>,
    Extension(logged): Extension<RequestSymbol>,
    ApiJson(request): ApiJson<RiskRequest>,
) -> Result<Json<RiskResponse>, ApiError> {
    score(&state.limits, request, Some(&logged)).map(Json)
}

/// The answer to one request, as `POST /risk-score` gives it; records the symbol in `logged`.
fn score(
    limits: &Limits,
    request: RiskRequest,
    logged: Option<&RequestSymbol>,
) -> Result<RiskResponse, ApiError> {
    let mut errors = Vec::new();
    let symbol = check_symbol(
        &request.symbol,
        vec![json!("body"), json!("symbol")],
        &mut errors,
    );
    if let (Some(symbol), Some(logged)) = (&symbol, logged) {
        logged.set(symbol);
    }
    let prices = check_prices(request.historical_prices, limits, &mut errors)?;
    let benchmark = request
        .benchmark_prices
        .map(|b| check_price_list(b, "benchmark_prices", limits, &mut errors))
        .transpose()?;
    let (Some(symbol), Some(prices), true) = (symbol, prices, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let not_enough = |e| match e {
        RiskError::NotEnoughPrices { got, .. } => ApiError::NotEnoughPricesForRisk { got },
    };
    let score = risk::cb05(prices.as_slice()).map_err(not_enough)?;
    let benchmark = benchmark.flatten();
    let measures = risk_measures(prices.as_slice(), benchmark.as_ref().map(|b| b.as_slice()))
        .map_err(not_enough)?;
    Ok(RiskResponse::new(
        &symbol,
        score,
        measures,
        crate::domain::now_rfc3339(),
    ))
}

/// `{"requests": [<risk-score body>, ...]}` answered by `{"results": [...]}` in order: each
/// result what `POST /risk-score` answers, or `{"symbol", "error": {"status", "detail",
/// "code"}}`. Scoring is CPU work of microseconds an item, so the batch runs as one blocking
/// task rather than a task an item.
async fn score_risk_batch(
    State(state): State<AppState>,
    ApiJson(batch): ApiJson<BatchRequest>,
) -> Result<Json<RiskBatchResponse>, ApiError> {
    check_batch_size(&state, &batch)?;
    let limits = std::sync::Arc::clone(&state.limits);
    let results = tokio::task::spawn_blocking(move || {
        batch
            .requests
            .iter()
            .enumerate()
            .map(|(i, item)| answer_item(&limits, i, item))
            .collect::<Vec<BatchItem>>()
    })
    .await
    .map_err(|e| ApiError::Internal(format!("risk batch task failed: {e}")))?;
    Ok(Json(RiskBatchResponse { results }))
}

/// `{"results": [...]}`, each answer serialised as `/risk-score` does (fields in its order,
/// which a detour through `Value` would sort).
#[derive(serde::Serialize)]
pub struct RiskBatchResponse {
    results: Vec<BatchItem>,
}

/// One result of a batch.
#[derive(serde::Serialize)]
#[serde(untagged)]
pub enum BatchItem {
    /// What `POST /risk-score` answers.
    Answer(Box<RiskResponse>),
    /// `{"symbol", "error"}`.
    Error(Value),
}

fn answer_item(limits: &Limits, index: usize, item: &Value) -> BatchItem {
    let (symbol, request) = match read_item::<RiskRequest>(index, item) {
        Ok(read) => read,
        Err(error) => return BatchItem::Error(error),
    };
    BatchItem::Error(match score(limits, request, None) {
        Ok(answer) => return BatchItem::Answer(Box::new(answer)),
        Err(ApiError::Validation(mut errors)) => {
            // Value errors (a bad price, a bad symbol) name the item too.
            point_at_item(index, &mut errors);
            item_error(symbol, &ApiError::Validation(errors))
        }
        Err(e) => item_error(symbol, &e),
    })
}
