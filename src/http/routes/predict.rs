//! `POST /predict`: validate, then forecast with the model asked for: the symbol's LSTM
//! (memory, store or training) by default, or a statistical model fitted on the spot, which
//! needs no training and so answers any symbol with at least 60 prices. Either way the answer
//! carries the path with conformal bands at the requested level.
//! [`predict`] is the shared logic, also used by `POST /predict-batch`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::ObjectBuilder;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::responses::{QueueFull, TooLarge};
use crate::contract::{one_of_strings, PredictResponse};
use crate::domain::{Horizon, PriceSeries, Symbol};
use crate::forecast::intervals::DEFAULT_LEVEL;
use crate::forecast::intervals::{forecast_with_store, CalibrationSettings};
use crate::forecast::{model_by_name, ForecastError, MODEL_NAMES, STATS_MODEL_VERSION};
use crate::http::body::dto::{PredictRequest, DEFAULT_DAYS_AHEAD, DEFAULT_MODEL};
use crate::http::body::extract::ApiJson;
use crate::http::body::schema::{parameter, SymbolPath};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::middleware::auth::training_permission;
use crate::http::middleware::logging::RequestSymbol;
use crate::http::state;
use crate::http::{
    check_level, check_model, check_prices, check_symbol, path_symbol, value_error, AppState,
};
use crate::registry::{TrainingPermission, MIN_FORECAST_PRICES};
use crate::store::prices::{today, Day};
use crate::telemetry::error_chain;

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(predict_price))
        .routes(routes!(predict_by_symbol))
}

/// `?format=svg` (or `json`, the default).
#[derive(Debug, Default, serde::Deserialize)]
pub struct PredictQuery {
    format: Option<String>,
}

impl IntoParams for PredictQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let formats =
            ObjectBuilder::from(one_of_strings(["json", "svg"])).default(Some("json".into()));
        vec![parameter(
            "format",
            ParameterIn::Query,
            "json (default) or svg: a picture of the last 180 prices, the forecast path and \
             its band (also chosen by Accept: image/svg+xml)",
            formats,
        )]
    }
}

/// Whether the answer is the SVG picture: `?format=svg`, or an `Accept` header that names
/// `image/svg+xml` and not `application/json` (browsers' `*/*` stays JSON).
fn wants_svg(query: &PredictQuery, headers: &HeaderMap) -> bool {
    match query.format.as_deref() {
        Some(f) => f.eq_ignore_ascii_case("svg"),
        None => headers
            .get_all(axum::http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("image/svg+xml") && !v.contains("application/json")),
    }
}

/// Forecast a price days_ahead steps ahead, with a path and intervals.
///
/// With model lstm (the default), uses the symbol's LSTM from memory or the models directory;
/// without one, trains on the posted prices (at least 200) first. Any other model is a
/// statistical model fitted to the posted prices on the spot: it needs no training, so any
/// symbol with at least 60 prices is answered. Every answer carries the path for days
/// 1..=days_ahead with conformal intervals at interval_level.
#[utoipa::path(post, path = "/predict", params(PredictQuery), request_body = PredictRequest, responses(
    (status = 200, description = "The forecast (JSON), or its picture with format=svg", content(
        (PredictResponse = "application/json"),
        (String = "image/svg+xml"),
    )),
    (status = 400, description = "Fewer than 60 prices, too many prices, or a body that is not JSON", body = ErrorBody),
    (status = 401, description = "Model lstm only, TRAINING_MODE=authenticated: no stored model, and no API key to train one", body = ErrorBody),
    (status = 403, description = "Model lstm only, TRAINING_MODE=authenticated: no stored model, and a wrong API key", body = ErrorBody),
    (status = 404, description = "Model lstm only: no stored model and fewer than 200 prices to train one (or TRAINING_MODE=off)", body = ErrorBody),
    (status = 408, description = "The body did not arrive within BODY_READ_TIMEOUT_SECS", body = ErrorBody),
    TooLarge,
    (status = 422, description = "Missing, mistyped or invalid field (FastAPI shape: `detail` is a list), or a series that cannot give a finite model (`degenerate_series`: `detail` is a sentence)", body = ErrorBody),
    QueueFull,
))]
async fn predict_price(
    State(state): State<AppState>,
    Extension(logged): Extension<RequestSymbol>,
    query: Result<Query<PredictQuery>, QueryRejection>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<PredictRequest>,
) -> Result<Response, ApiError> {
    let permission = training_permission(&state, &headers);
    let Ok(Query(query)) = query else {
        return Err(ApiError::Validation(vec![value_error(
            vec![json!("query"), json!("format")],
            "the query string does not parse",
        )]));
    };
    if let Some(format) = query.format.as_deref() {
        if !(format.eq_ignore_ascii_case("svg") || format.eq_ignore_ascii_case("json")) {
            return Err(ApiError::Validation(vec![value_error(
                vec![json!("query"), json!("format")],
                "format must be json or svg",
            )]));
        }
    }
    if !wants_svg(&query, &headers) {
        return predict(&state, request, Some(&logged), permission)
            .await
            .map(|r| Json(r).into_response());
    }
    let (request, base_day) = resolve_prices(&state, request).await?;
    let history = request.historical_prices.clone();
    let answer = predict_on(&state, request, Some(&logged), permission, base_day).await?;
    let title = format!("{}: {} days ahead", answer.symbol, answer.days_ahead);
    let svg = tokio::task::spawn_blocking(move || {
        crate::chart::forecast_svg(
            &title,
            &history,
            &answer.forecast,
            answer.level,
            &answer.model.label,
            crate::chart::SHOWN_HISTORY,
        )
    })
    .await
    .map_err(|e| ApiError::Internal(format!("chart task failed: {e}")))?
    .map_err(|e| ApiError::Internal(format!("cannot draw the chart: {e}")))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

/// `?days_ahead=&model=&interval_level=` of `GET /predict/{symbol}`: the fields of the POST
/// body other than the prices.
#[derive(Debug, Default, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PredictBySymbolQuery {
    /// Steps ahead (default 7, at most MAX_DAYS_AHEAD).
    #[param(minimum = 1)]
    days_ahead: Option<i64>,
    /// The model (default lstm), as in POST /predict.
    model: Option<String>,
    /// Level of the intervals, strictly between 0 and 1 (default 0.8).
    interval_level: Option<f64>,
}

/// Forecast a symbol from the closes stored in the database.
///
/// Reads the symbol's last PRICE_HISTORY_DAYS daily closes from PostgreSQL (the `prices`
/// table that `coinsphere-ml import` fills, or PRICES_QUERY) and answers exactly as
/// POST /predict does with them. Needs DATABASE_URL.
#[utoipa::path(get, path = "/predict/{symbol}", params(SymbolPath, PredictBySymbolQuery), responses(
    (status = 200, description = "The forecast", body = PredictResponse),
    (status = 400, description = "Fewer than 60 closes stored", body = ErrorBody),
    (status = 401, description = "Model lstm only, TRAINING_MODE=authenticated: no stored model, and no API key to train one", body = ErrorBody),
    (status = 403, description = "Model lstm only, TRAINING_MODE=authenticated: no stored model, and a wrong API key", body = ErrorBody),
    (status = 404, description = "No database configured (`no_database`), no closes of the symbol in the database (`no_prices`), or, for lstm, no stored model and fewer than 200 closes", body = ErrorBody),
    (status = 422, description = "An invalid symbol or query parameter", body = ErrorBody),
    (status = 503, description = "The database unavailable (`database_unavailable`, with Retry-After), or the training queue full", body = ErrorBody),
))]
async fn predict_by_symbol(
    State(state): State<AppState>,
    Extension(logged): Extension<RequestSymbol>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<PredictBySymbolQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<PredictResponse>, ApiError> {
    let permission = training_permission(&state, &headers);
    let symbol = path_symbol(path, &logged)?;
    let Ok(Query(query)) = query else {
        return Err(ApiError::Validation(vec![value_error(
            vec![json!("query")],
            "days_ahead must be an integer, interval_level a number",
        )]));
    };
    let (closes, base_day) = stored_closes(&state, &symbol).await?;
    let request = PredictRequest {
        symbol: symbol.as_str().to_owned(),
        historical_prices: closes,
        days_ahead: query.days_ahead.unwrap_or(DEFAULT_DAYS_AHEAD),
        model: query.model.unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
        interval_level: query.interval_level.unwrap_or(DEFAULT_LEVEL),
        prices_from_database: false,
    };
    predict_on(&state, request, Some(&logged), permission, base_day)
        .await
        .map(Json)
}

/// The last `PRICE_HISTORY_DAYS` stored closes of `symbol` and the day of the last one.
///
/// # Errors
/// [`ApiError::NoDatabase`], [`ApiError::DatabaseUnavailable`], or [`ApiError::NoPrices`].
async fn stored_closes(state: &AppState, symbol: &Symbol) -> Result<(Vec<f64>, Day), ApiError> {
    let Some(data) = state.data.clone() else {
        return Err(ApiError::NoDatabase);
    };
    let (sym, limit) = (symbol.clone(), data.history_days);
    let closes = tokio::task::spawn_blocking(move || data.prices.closes(&sym, limit))
        .await
        .map_err(|e| ApiError::Internal(format!("price task failed: {e}")))?
        .map_err(|e| ApiError::DatabaseUnavailable {
            cause: e.to_string(),
        })?;
    match closes.days.last() {
        Some(&day) => Ok((closes.closes, day)),
        None => Err(ApiError::NoPrices {
            symbol: symbol.clone(),
        }),
    }
}

/// Validates and answers one predict request: the logic of `POST /predict`, shared with
/// `POST /predict-batch`. Records the prediction metrics and, when `MODEL_MAX_AGE` is set and
/// `permission` allows training from the request's prices, may start a background retraining
/// of a stale model.
///
/// # Errors
/// [`ApiError::Validation`] for bad fields, then any error of the registry's forecast.
pub async fn predict(
    state: &AppState,
    request: PredictRequest,
    logged: Option<&RequestSymbol>,
    permission: TrainingPermission,
) -> Result<PredictResponse, ApiError> {
    let (request, base_day) = resolve_prices(state, request).await?;
    predict_on(state, request, logged, permission, base_day).await
}

/// The request with its prices, and the day of the last one: posted prices carry no dates,
/// so the last is taken to be today's (UTC); left out (with a database), they are the
/// symbol's stored closes.
async fn resolve_prices(
    state: &AppState,
    request: PredictRequest,
) -> Result<(PredictRequest, Day), ApiError> {
    if !request.prices_from_database {
        return Ok((request, today()));
    }
    let symbol = Symbol::parse(&request.symbol).map_err(|e| {
        ApiError::Validation(vec![value_error(vec![json!("body"), json!("symbol")], e)])
    })?;
    let (closes, base_day) = stored_closes(state, &symbol).await?;
    let request = PredictRequest {
        historical_prices: closes,
        prices_from_database: false,
        ..request
    };
    Ok((request, base_day))
}

/// [`predict`] of a history whose last price is of `base_day`; a served forecast goes to the
/// prediction log.
async fn predict_on(
    state: &AppState,
    request: PredictRequest,
    logged: Option<&RequestSymbol>,
    permission: TrainingPermission,
    base_day: Day,
) -> Result<PredictResponse, ApiError> {
    let started = Instant::now();
    let mut symbol = None;
    let model = MODEL_NAMES
        .iter()
        .find(|&&m| m == request.model)
        .copied()
        .unwrap_or("_invalid");
    let result = validate_and_forecast(state, request, logged, permission, &mut symbol).await;
    state::record_prediction(state, symbol.as_ref(), model, &result, started.elapsed());
    if let (Ok(answer), Some(symbol)) = (&result, &symbol) {
        state::log_prediction(state, symbol, answer, base_day);
    }
    result
}

async fn validate_and_forecast(
    state: &AppState,
    request: PredictRequest,
    logged: Option<&RequestSymbol>,
    permission: TrainingPermission,
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
    let model = check_model(
        &request.model,
        vec![json!("body"), json!("model")],
        &mut errors,
    );
    let level = check_level(
        request.interval_level,
        vec![json!("body"), json!("interval_level")],
        &mut errors,
    );
    let (Some(symbol), Some(prices), Some(horizon), Some(model), Some(level)) =
        (symbol, prices, horizon, model, level)
    else {
        return Err(ApiError::Validation(errors));
    };
    match model {
        "lstm" => forecast_lstm(state, symbol, prices, horizon, level, permission).await,
        name => forecast_stats(state, symbol, name, prices, horizon, level).await,
    }
}

/// The symbol's LSTM from the registry (cached, stored or trained), banded by the errors it
/// measured on its validation tail. The only model the stale-model retrainer concerns.
async fn forecast_lstm(
    state: &AppState,
    symbol: Symbol,
    prices: PriceSeries,
    horizon: Horizon,
    level: f64,
    permission: TrainingPermission,
) -> Result<PredictResponse, ApiError> {
    let keep = (permission == TrainingPermission::Granted
        && state.ops.retrainer.wants(prices.len()))
    .then(|| prices.clone());
    let current_price = current_price(&prices)?;
    let forecast = state
        .registry
        .forecast(&symbol, prices, horizon, level, permission)
        .await?;
    state::after_forecast(state, &symbol, keep);
    Ok(PredictResponse::from_forecast(
        &symbol,
        current_price,
        "lstm",
        state.registry.version().as_str(),
        forecast,
        crate::domain::now_rfc3339(),
    ))
}

/// A statistical model fitted to the posted prices, with conformal bands from refitting it
/// at recent cutoffs (or the same request's answer from the stats cache). Off the async
/// threads: `auto` refits its candidates some 160 times.
async fn forecast_stats(
    state: &AppState,
    symbol: Symbol,
    name: &'static str,
    prices: PriceSeries,
    horizon: Horizon,
    level: f64,
) -> Result<PredictResponse, ApiError> {
    let current_price = current_price(&prices)?;
    let cache = Arc::clone(&state.stats_cache);
    let forecast = tokio::task::spawn_blocking(move || {
        cache.get_or_compute(name, prices.as_slice(), horizon.get(), level, |paths| {
            let model = model_by_name(name)?;
            forecast_with_store(
                model.as_ref(),
                prices.as_slice(),
                horizon.get(),
                level,
                &CalibrationSettings::default(),
                Some(paths),
            )
        })
    })
    .await
    .map_err(|e| ApiError::Internal(format!("forecast task failed: {e}")))?
    .map_err(|e| forecast_error(&symbol, e))?;
    Ok(PredictResponse::from_forecast(
        &symbol,
        current_price,
        name,
        STATS_MODEL_VERSION,
        forecast,
        crate::domain::now_rfc3339(),
    ))
}

/// The last price, where the history holds the contract's minimum (it holds for every model,
/// so clients see one rule).
fn current_price(prices: &PriceSeries) -> Result<f64, ApiError> {
    match prices.last() {
        Some(p) if prices.len() >= MIN_FORECAST_PRICES => Ok(p),
        _ => Err(ApiError::NotEnoughPricesForPrediction { got: prices.len() }),
    }
}

/// A statistical model's failure as a client error: the inputs were validated above, so
/// each of these names the field that would have caused it.
fn forecast_error(symbol: &Symbol, e: ForecastError) -> ApiError {
    let field = |loc: Vec<serde_json::Value>, e: &ForecastError| {
        ApiError::Validation(vec![value_error(loc, e)])
    };
    match e {
        ForecastError::NotEnoughPrices { got, .. } => {
            ApiError::NotEnoughPricesForPrediction { got }
        }
        ForecastError::InvalidPrice { index, .. } => field(
            vec![json!("body"), json!("historical_prices"), json!(index)],
            &e,
        ),
        ForecastError::ZeroHorizon => field(vec![json!("body"), json!("days_ahead")], &e),
        ForecastError::InvalidLevel(_) => field(vec![json!("body"), json!("interval_level")], &e),
        ForecastError::UnknownModel { .. } => field(vec![json!("body"), json!("model")], &e),
        ForecastError::Lstm(_) | ForecastError::NotFinite => ApiError::Degenerate {
            symbol: symbol.clone(),
            reason: error_chain(&e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::lstm::LstmError;

    #[test]
    fn no_forecast_error_is_a_server_error() {
        let symbol = Symbol::parse("btc").unwrap();
        let errors = [
            ForecastError::NotEnoughPrices { needed: 60, got: 3 },
            ForecastError::InvalidPrice {
                index: 4,
                value: -1.0,
            },
            ForecastError::ZeroHorizon,
            ForecastError::InvalidLevel(1.0),
            ForecastError::UnknownModel {
                name: "x".into(),
                valid: "naive".into(),
            },
            ForecastError::Lstm(LstmError::Diverged("nan".into())),
        ];
        for e in errors {
            let text = e.to_string();
            let status = forecast_error(&symbol, e).status();
            assert!(status.is_client_error(), "{text}: {status}");
        }
        let short = forecast_error(
            &symbol,
            ForecastError::NotEnoughPrices { needed: 60, got: 3 },
        );
        assert_eq!(
            short.detail(),
            json!("Need at least 60 historical price points for prediction")
        );
        let price = forecast_error(
            &symbol,
            ForecastError::InvalidPrice {
                index: 4,
                value: -1.0,
            },
        );
        assert_eq!(
            price.detail()[0]["loc"],
            json!(["body", "historical_prices", 4])
        );
    }
}
