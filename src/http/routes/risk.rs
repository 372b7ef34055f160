//! `POST /risk-score`: the CB-05 score of SPEC section 4, then the further measures of
//! [`crate::risk::measures`]; and `POST /risk-score-batch`, several of them answered in order
//! the way `POST /predict-batch` answers (its pieces are reused from [`super::batch`]).

use axum::extract::State;
use axum::{Extension, Json};
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::batch::{
    check_batch_size, item_error, point_at_item, read_item, BatchRequest, RiskBatchRequest,
};
use super::responses::{BatchErrors, InvalidFields, TooLarge};
use crate::contract::RiskResponse;
use crate::http::body::dto::RiskRequest;
use crate::http::body::extract::ApiJson;
use crate::http::error::{ApiError, BatchItemError, ErrorBody};
use crate::http::middleware::logging::RequestSymbol;
use crate::http::{check_price_list, check_prices, check_symbol, AppState, Limits};
use crate::risk::measures::risk_measures;
use crate::risk::{self, RiskError};

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(score_risk))
        .routes(routes!(score_risk_batch))
}

/// CB-05 risk score of a price history, with volatility, drawdown, VaR, ES and beta.
///
/// The five contract fields come first and are the CB-05 score of SPEC section 4 exactly;
/// `measures` adds risk measures on daily log returns (definitions in the README). Windows
/// count returns: 30d needs 31 prices; a window without enough prices is null.
#[utoipa::path(post, path = "/risk-score", request_body = RiskRequest, responses(
    (status = 200, description = "The score and the measures", body = RiskResponse),
    (status = 400, description = "Fewer than 30 prices, too many prices, or a body that is not JSON", body = ErrorBody),
    TooLarge,
    InvalidFields,
))]
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

/// Several risk-score requests in one, answered in order.
///
/// `{"requests": [<risk-score body>, ...]}` answered by `{"results": [...]}` in order: each
/// result what `POST /risk-score` answers, or `{"symbol", "error": {"status", "detail",
/// "code"}}`. Scoring is CPU work of microseconds an item, so the batch runs as one blocking
/// task rather than a task an item.
#[utoipa::path(post, path = "/risk-score-batch", request_body = RiskBatchRequest, responses(
    (status = 200, description = "One result per item, in order", body = RiskBatchResponse),
    BatchErrors,
))]
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
#[derive(serde::Serialize, ToSchema)]
pub struct RiskBatchResponse {
    /// One result per item, in order.
    results: Vec<BatchItem>,
}

/// One result of a batch.
#[derive(serde::Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = RiskBatchItem)]
pub enum BatchItem {
    /// What `POST /risk-score` answers.
    Answer(Box<RiskResponse>),
    /// `{"symbol", "error"}`.
    Error(BatchItemError),
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
