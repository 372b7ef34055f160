//! `GET /accuracy/{symbol}` and `GET /accuracy`: the logged predictions whose target day has
//! come, scored against the closes of that day (`store::predictions::score`), overall and by
//! (model, horizon). Needs `DATABASE_URL`.

use std::collections::BTreeMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::Symbol;
use crate::http::body::schema::SymbolPath;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::middleware::logging::RequestSymbol;
use crate::http::state::DataState;
use crate::http::{path_symbol, value_error, AppState};
use crate::store::predictions::{self, score, Accuracy, AccuracyFilter, Logged};
use crate::store::prices::{format_day, parse_day, today};

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(symbol_accuracy))
        .routes(routes!(all_accuracy))
}

/// Closes read to score a symbol's log: all of them, as far back as the log goes.
const SCORING_CLOSES: usize = 100_000;

/// `?model=&horizon=&from=&to=`.
#[derive(Debug, Default, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccuracyQuery {
    /// Only predictions of this model (as asked for: lstm, naive, auto...).
    model: Option<String>,
    /// Only predictions this many days ahead.
    #[param(minimum = 1)]
    horizon: Option<u32>,
    /// Only predictions served on or after this day (YYYY-MM-DD, UTC).
    from: Option<String>,
    /// Only predictions served on or before this day (YYYY-MM-DD, UTC).
    to: Option<String>,
}

/// The filter the answer applied, echoed.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppliedFilter {
    model: Option<String>,
    horizon: Option<u32>,
    from: Option<String>,
    to: Option<String>,
}

/// The accuracy of one (model, horizon).
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupAccuracy {
    /// The model asked for.
    model: String,
    /// Days ahead.
    horizon: u32,
    /// Its scores.
    #[serde(flatten)]
    accuracy: Accuracy,
}

/// A symbol's live accuracy.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccuracyReport {
    /// Upper-case symbol.
    symbol: String,
    /// Predictions with a target day up to this one (today, UTC) are scored.
    until: String,
    /// The filter applied.
    filter: AppliedFilter,
    /// Every scored prediction together.
    overall: Accuracy,
    /// By (model, horizon), in that order.
    groups: Vec<GroupAccuracy>,
}

/// Every symbol in the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllAccuracy {
    /// One report per symbol with logged predictions, by symbol.
    symbols: Vec<AccuracyReport>,
}

/// Live accuracy of the forecasts served for a symbol.
///
/// Scores every logged prediction of the symbol whose target day has come against the close
/// stored for that day: count, MAE, MAPE, MASE against the naive forecast made at the same
/// time (the price when served), band coverage, direction hit rate, and the confidence
/// earned (1 - MAPE) next to the confidence served. Overall and by (model, horizon).
#[utoipa::path(get, path = "/accuracy/{symbol}", params(SymbolPath, AccuracyQuery), responses(
    (status = 200, description = "The scores (count 0 when nothing can be scored yet)", body = AccuracyReport),
    (status = 404, description = "No database configured (`no_database`)", body = ErrorBody),
    (status = 422, description = "An invalid symbol or query parameter", body = ErrorBody),
    (status = 503, description = "The database unavailable (`database_unavailable`, with Retry-After)", body = ErrorBody),
))]
async fn symbol_accuracy(
    State(state): State<AppState>,
    Extension(logged): Extension<RequestSymbol>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<AccuracyQuery>, QueryRejection>,
) -> Result<Json<AccuracyReport>, ApiError> {
    let symbol = path_symbol(path, &logged)?;
    let filter = filter(query)?;
    let data = state.data.clone().ok_or(ApiError::NoDatabase)?;
    blocking(move || report(&data, &symbol, &filter))
        .await
        .map(Json)
}

/// Live accuracy of the forecasts served, for every symbol in the log.
///
/// GET /accuracy/{symbol} for each symbol with logged predictions.
#[utoipa::path(get, path = "/accuracy", params(AccuracyQuery), responses(
    (status = 200, description = "One report per symbol", body = AllAccuracy),
    (status = 404, description = "No database configured (`no_database`)", body = ErrorBody),
    (status = 422, description = "An invalid query parameter", body = ErrorBody),
    (status = 503, description = "The database unavailable (`database_unavailable`, with Retry-After)", body = ErrorBody),
))]
async fn all_accuracy(
    State(state): State<AppState>,
    query: Result<Query<AccuracyQuery>, QueryRejection>,
) -> Result<Json<AllAccuracy>, ApiError> {
    let filter = filter(query)?;
    let data = state.data.clone().ok_or(ApiError::NoDatabase)?;
    blocking(move || {
        let symbols = predictions::logged_symbols(&data.db)?;
        let reports = symbols
            .iter()
            .map(|s| report(&data, s, &filter))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AllAccuracy { symbols: reports })
    })
    .await
    .map(Json)
}

/// Runs a database job off the runtime; its failure is a 503.
async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| ApiError::Internal(format!("accuracy task failed: {e}")))?
        .map_err(|e| ApiError::DatabaseUnavailable {
            cause: e.to_string(),
        })
}

/// The query as a filter; bad dates are a 422.
fn filter(query: Result<Query<AccuracyQuery>, QueryRejection>) -> Result<AccuracyFilter, ApiError> {
    let bad = |field: &str, msg: &str| {
        ApiError::Validation(vec![value_error(vec![json!("query"), json!(field)], msg)])
    };
    let Ok(Query(query)) = query else {
        return Err(bad("horizon", "horizon must be a positive integer"));
    };
    let day = |field: &str, raw: Option<String>| match raw {
        None => Ok(None),
        Some(raw) => parse_day(&raw)
            .map(Some)
            .ok_or_else(|| bad(field, "must be a date YYYY-MM-DD")),
    };
    if query.horizon == Some(0) {
        return Err(bad("horizon", "horizon must be a positive integer"));
    }
    Ok(AccuracyFilter {
        model: query.model,
        horizon: query.horizon,
        from: day("from", query.from)?,
        to: day("to", query.to)?,
    })
}

/// The report of `symbol`. Blocking.
fn report(
    data: &DataState,
    symbol: &Symbol,
    filter: &AccuracyFilter,
) -> Result<AccuracyReport, crate::store::StoreError> {
    let until = today();
    let logged = predictions::logged(&data.db, symbol, until, filter)?;
    let closes = if logged.is_empty() {
        Default::default()
    } else {
        data.prices.closes(symbol, SCORING_CLOSES)?
    };
    let mut by_group: BTreeMap<(String, u32), Vec<Logged>> = BTreeMap::new();
    for p in &logged {
        by_group
            .entry((p.model.clone(), p.horizon))
            .or_default()
            .push(p.clone());
    }
    let groups = by_group
        .into_iter()
        .map(|((model, horizon), rows)| GroupAccuracy {
            accuracy: score(&rows, &closes),
            model,
            horizon,
        })
        .collect();
    Ok(AccuracyReport {
        symbol: symbol.as_str().to_owned(),
        until: format_day(until),
        filter: AppliedFilter {
            model: filter.model.clone(),
            horizon: filter.horizon,
            from: filter.from.map(format_day),
            to: filter.to.map(format_day),
        },
        overall: score(&logged, &closes),
        groups,
    })
}
