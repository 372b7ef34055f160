//! `POST /predict-batch`: `{"requests": [<predict request>, ...]}` answered by
//! `{"results": [...]}` in the same order. Each result is what `POST /predict` would answer, or
//! `{"symbol", "error": {"status", "detail"}}`; one bad item never fails the batch.
//!
//! Items run as separate tasks, so their forecasts (on the blocking pool) and any trainings (in
//! the bounded training pool) spread over the cores; items for one symbol share one model load
//! or training through the registry's single flight.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::predict::predict;
use super::responses::BatchErrors;
use crate::contract::PredictResponse;
use crate::domain::Symbol;
use crate::http::body::dto::{PredictRequest, RiskRequest};
use crate::http::body::extract::{ApiJson, FromJson};
use crate::http::error::{ApiError, BatchItemError, FieldError};
use crate::http::middleware::auth::training_permission;
use crate::http::AppState;
use crate::registry::TrainingPermission;

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(predict_batch))
}

/// The batch body: the items stay raw JSON so that a malformed item fails alone.
#[derive(Clone, Debug, PartialEq, ToSchema)]
pub struct BatchRequest {
    /// At most MAX_BATCH_SIZE items, each a `POST /predict` body.
    #[schema(value_type = Vec<PredictRequest>)]
    pub requests: Vec<Value>,
}

/// The `POST /risk-score-batch` body: as [`BatchRequest`], of `POST /risk-score` bodies.
#[derive(ToSchema)]
#[allow(dead_code)] // A schema of the document: the route reads a `BatchRequest`.
pub struct RiskBatchRequest {
    /// At most MAX_BATCH_SIZE items, each a `POST /risk-score` body.
    requests: Vec<RiskRequest>,
}

/// One result per item, in order.
#[derive(Serialize, ToSchema)]
pub struct BatchResponse {
    /// What `POST /predict` answers for the item, or why it failed. Each answer is a map with
    /// its keys in alphabetical order, as the service has always sent them.
    #[schema(value_type = Vec<PredictBatchItem>)]
    results: Vec<Value>,
}

/// One result of a `/predict-batch`: a schema of the document, the answers are maps.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum PredictBatchItem {
    /// What `POST /predict` answers.
    Answer(PredictResponse),
    /// Why the item failed.
    Error(BatchItemError),
}

impl FromJson for BatchRequest {
    fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        let error = |msg: &str, kind: &str| {
            vec![FieldError::new(
                vec![json!("body"), json!("requests")],
                msg,
                kind,
            )]
        };
        match value.as_object().map(|o| o.get("requests")) {
            None => Err(vec![FieldError::new(
                vec![json!("body")],
                "Input should be a valid dictionary or object to extract fields from",
                "model_attributes_type",
            )]),
            Some(None) => Err(error("Field required", "missing")),
            Some(Some(Value::Array(items))) => Ok(Self {
                requests: items.clone(),
            }),
            Some(Some(_)) => Err(error("Input should be a valid list", "list_type")),
        }
    }
}

/// Several predict requests in one, answered in order.
///
/// Each result is what POST /predict would answer for that item, or
/// {symbol, error: {status, detail, code}}; one bad item never fails the batch.
#[utoipa::path(post, path = "/predict-batch", request_body = BatchRequest, responses(
    (status = 200, description = "One result per item, in order", body = BatchResponse),
    BatchErrors,
))]
async fn predict_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(batch): ApiJson<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    check_batch_size(&state, &batch)?;
    let permission = training_permission(&state, &headers);
    let results = answer_in_order(batch.requests, move |i, item| {
        let state = state.clone();
        async move { answer_item(&state, i, &item, permission).await }
    })
    .await;
    Ok(Json(BatchResponse { results }))
}

/// Answers every item as its own task (so their forecasts and trainings spread over the
/// cores) and returns the answers in item order. The tasks live in a `JoinSet`, which aborts
/// them when dropped: a client that goes away takes its items with it, so their queued
/// trainings are cancelled like a single request's.
async fn answer_in_order<F, Fut>(items: Vec<Value>, answer: F) -> Vec<Value>
where
    F: Fn(usize, Value) -> Fut,
    Fut: std::future::Future<Output = Value> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    let mut results = vec![Value::Null; items.len()];
    for (i, item) in items.into_iter().enumerate() {
        let task = answer(i, item);
        tasks.spawn(async move { (i, task.await) });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, result)) => results[i] = result,
            Err(e) => tracing::error!(error = %e, "batch item task failed"),
        }
    }
    // A result is never null: a task that panicked leaves its slot to an internal error.
    for slot in results.iter_mut().filter(|r| r.is_null()) {
        *slot = json!(item_error(
            Value::Null,
            &ApiError::Internal("batch item task failed".into()),
        ));
    }
    results
}

/// 413 for more items than `MAX_BATCH_SIZE`.
pub(super) fn check_batch_size(state: &AppState, batch: &BatchRequest) -> Result<(), ApiError> {
    let max = state.ops.max_batch_size;
    if batch.requests.len() > max {
        return Err(ApiError::BatchTooLarge {
            got: batch.requests.len(),
            max,
        });
    }
    Ok(())
}

async fn answer_item(
    state: &AppState,
    index: usize,
    item: &Value,
    permission: TrainingPermission,
) -> Value {
    let (symbol, request) = match read_item::<PredictRequest>(index, item) {
        Ok(read) => read,
        Err(error) => return json!(error),
    };
    match predict(state, request, None, permission).await {
        Ok(answer) => serde_json::to_value(answer).unwrap_or(Value::Null),
        Err(e) => json!(item_error(symbol, &e)),
    }
}

/// The symbol an item's errors name (validated and upper-case when possible, else as sent),
/// and the item read as a `T`; a malformed item is its 422 result, with each location
/// pointing at the item: `["body", "requests", index, ...]`.
pub(super) fn read_item<T: FromJson>(
    index: usize,
    item: &Value,
) -> Result<(Value, T), BatchItemError> {
    let raw_symbol = item.get("symbol").cloned().unwrap_or(Value::Null);
    let symbol = raw_symbol
        .as_str()
        .and_then(|s| Symbol::parse(s).ok())
        .map_or(raw_symbol.clone(), |s| json!(s.as_str()));
    match T::from_json(item) {
        Ok(request) => Ok((symbol, request)),
        Err(mut errors) => {
            point_at_item(index, &mut errors);
            Err(item_error(symbol, &ApiError::Validation(errors)))
        }
    }
}

/// Rewrites `["body", rest...]` locations to `["body", "requests", index, rest...]`.
pub(super) fn point_at_item(index: usize, errors: &mut [FieldError]) {
    for e in errors {
        let rest: Vec<Value> = e.loc.drain(1..).collect();
        e.loc.extend([json!("requests"), json!(index)]);
        e.loc.extend(rest);
    }
}

/// The result of a failed item: `{"symbol", "error": {"status", "detail", "code"}}`.
pub(super) fn item_error(symbol: Value, e: &ApiError) -> BatchItemError {
    if let ApiError::Internal(cause) = e {
        tracing::error!(%cause, "batch item failed");
    }
    e.batch_item(symbol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_needs_a_requests_list() {
        assert_eq!(
            BatchRequest::from_json(&json!({"requests": [1, {}]}))
                .unwrap()
                .requests
                .len(),
            2
        );
        let missing = BatchRequest::from_json(&json!({})).unwrap_err();
        assert_eq!(missing[0].kind, "missing");
        let wrong = BatchRequest::from_json(&json!({"requests": {}})).unwrap_err();
        assert_eq!(wrong[0].kind, "list_type");
        let not_object = BatchRequest::from_json(&json!([])).unwrap_err();
        assert_eq!(not_object[0].kind, "model_attributes_type");
    }
}
