//! `POST /backtest`: a rolling-origin backtest of forecasting models on one posted series,
//! answered with exactly the rows `coinsphere-ml backtest --format json` prints
//! ([`crate::backtest::render_json`]).
//!
//! A backtest refits every model at every fold (the LSTM trains once per fold), so it runs on
//! the blocking pool, one at a time: a second request while one runs gets 503 with
//! `Retry-After`. When the request goes away (the client disconnects, or the time limit answers
//! 504), a drop guard flags the run as cancelled and it stops before its next fold.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::{Array, Object};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::responses::{InvalidFields, TooLarge};
use crate::backtest::report::render_json;
use crate::backtest::BacktestRow;
use crate::backtest::{run_backtest_cancellable, BacktestConfig, BacktestError};
use crate::contract::model_name;
use crate::domain::{PriceSeries, Symbol};
use crate::forecast::intervals::DEFAULT_LEVEL;
use crate::forecast::{model_by_name, MODEL_NAMES};
use crate::http::body::extract::{ApiJson, Fields, FromJson};
use crate::http::body::schema;
use crate::http::error::{ApiError, ErrorBody, FieldError};
use crate::http::middleware::logging::RequestSymbol;
use crate::http::{check_level, check_model, check_prices, check_symbol, value_error, AppState};
use crate::prices::Series;
use crate::telemetry::error_chain;

/// The models backtested when the request names none: every statistical model of
/// [`MODEL_NAMES`]. The LSTM only when named, since it trains once per fold.
pub fn default_models() -> Vec<&'static str> {
    MODEL_NAMES
        .iter()
        .copied()
        .filter(|&name| name != "lstm")
        .collect()
}
/// Most models in one backtest.
pub const MAX_MODELS: usize = 8;
/// Most horizons in one backtest.
pub const MAX_HORIZONS: usize = 10;
/// Most folds in one backtest.
pub const MAX_FOLDS: i64 = 50;
/// `Retry-After` of the 503 answered while another backtest runs.
pub const BUSY_RETRY_AFTER_SECS: u64 = 5;

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(run_backtest))
}

/// `POST /backtest` body, typed but not yet validated.
#[derive(Clone, Debug, PartialEq, ToSchema)]
#[schema(description = "The body of POST /backtest")]
pub struct BacktestRequest {
    /// Raw symbol.
    #[schema(schema_with = schema::symbol)]
    pub symbol: String,
    /// Prices, oldest first.
    #[schema(schema_with = schema::backtest_prices)]
    pub historical_prices: Vec<f64>,
    /// Model names; every statistical model when absent (lstm only when named: it trains once
    /// per fold).
    #[schema(schema_with = models, required = false)]
    pub models: Vec<String>,
    /// Horizons in days, each at most MAX_DAYS_AHEAD.
    #[schema(schema_with = horizons, required = false)]
    pub horizons: Vec<i64>,
    /// Folds: cutoffs scored.
    #[schema(schema_with = folds, required = false)]
    pub folds: i64,
    /// Raw interval level; `DEFAULT_LEVEL` when absent.
    #[schema(schema_with = schema::level, required = false)]
    pub interval_level: f64,
}

fn models() -> Array {
    ArrayBuilder::new()
        .items(model_name())
        .min_items(Some(1))
        .max_items(Some(MAX_MODELS))
        .unique_items(true)
        .default(Some(json!(default_models())))
        .description(Some(
            "Model names; lstm only when named: it trains once per fold",
        ))
        .build()
}

fn horizons() -> Array {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        )
        .min_items(Some(1))
        .max_items(Some(MAX_HORIZONS))
        .unique_items(true)
        .default(Some(json!(BacktestConfig::default().horizons)))
        .build()
}

fn folds() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(MAX_FOLDS))
        .default(Some(json!(BacktestConfig::default().folds)))
        .build()
}

impl FromJson for BacktestRequest {
    fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        let defaults = BacktestConfig::default();
        let default_horizons: Vec<i64> = defaults.horizons.iter().map(|&h| h as i64).collect();
        let mut f = Fields::new(value);
        let symbol = f.string("symbol");
        let historical_prices = f.number_list("historical_prices");
        let models = f.string_list_or("models", &default_models());
        let horizons = f.integer_list_or("horizons", &default_horizons);
        let folds = f.integer_or("folds", defaults.folds as i64);
        let interval_level = f.number_or("interval_level", DEFAULT_LEVEL);
        f.finish()?;
        Ok(Self {
            symbol: symbol.expect("checked by finish"),
            historical_prices: historical_prices.expect("checked by finish"),
            models: models.expect("checked by finish"),
            horizons: horizons.expect("checked by finish"),
            folds: folds.expect("checked by finish"),
            interval_level: interval_level.expect("checked by finish"),
        })
    }
}

/// A validated backtest: what [`run_backtest_cancellable`] is given.
struct Plan {
    symbol: Symbol,
    prices: PriceSeries,
    models: Vec<&'static str>,
    config: BacktestConfig,
}

/// Sets its flag when dropped: the handler holds one, so a request future dropped by a
/// disconnect or by the time limit cancels the blocking run.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Rolling-origin backtest of forecasting models on a price history.
///
/// At each of `folds` cutoffs every model is fitted (and its intervals calibrated) on the
/// prices before the cutoff only, then scored on the prices after it. One backtest runs at a
/// time. The answer is what `coinsphere-ml backtest --format json` prints.
#[utoipa::path(post, path = "/backtest", request_body = BacktestRequest, responses(
    (status = 200, description = "One row per model and horizon, in request order", body = Vec<BacktestRow>),
    (status = 400, description = "A series too short for one fold (365 prices plus the longest horizon), too many prices, or a body that is not JSON", body = ErrorBody),
    TooLarge,
    InvalidFields,
    (status = 503, description = "Another backtest is running; see Retry-After", body = ErrorBody, headers(("Retry-After" = u64))),
    (status = 504, description = "The backtest ran past the time limit; it is cancelled", body = ErrorBody),
))]
async fn run_backtest(
    State(state): State<AppState>,
    Extension(logged): Extension<RequestSymbol>,
    ApiJson(request): ApiJson<BacktestRequest>,
) -> Result<Response, ApiError> {
    let plan = validate(&state, request, &logged)?;
    let permit = Arc::clone(&state.ops.backtests)
        .try_acquire_owned()
        .map_err(|_| ApiError::BacktestBusy {
            retry_after_secs: BUSY_RETRY_AFTER_SECS,
        })?;
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(Arc::clone(&cancel));
    let rows = tokio::task::spawn_blocking(move || {
        // Held until the run stops, finished or cancelled, not until the handler returns.
        let _permit = permit;
        let models = plan
            .models
            .iter()
            .map(|name| model_by_name(name))
            .collect::<Result<Vec<_>, _>>()?;
        let series = [Series {
            symbol: plan.symbol.to_string(),
            prices: plan.prices.into_inner(),
        }];
        run_backtest_cancellable(&series, &models, &plan.config, &|_| {}, &cancel)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("backtest task failed: {e}")))?
    .map_err(backtest_error)?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        render_json(&rows),
    )
        .into_response())
}

/// Checks every field, reporting all value errors at once.
fn validate(
    state: &AppState,
    request: BacktestRequest,
    logged: &RequestSymbol,
) -> Result<Plan, ApiError> {
    let body = |field: &str| vec![json!("body"), json!(field)];
    let mut errors = Vec::new();
    let symbol = check_symbol(&request.symbol, body("symbol"), &mut errors);
    if let Some(symbol) = &symbol {
        logged.set(symbol);
    }
    let prices = check_prices(request.historical_prices, &state.limits, &mut errors)?;
    let models = check_models(&request.models, &mut errors);
    let horizons = check_horizons(&request.horizons, state.limits.max_days_ahead, &mut errors);
    let folds = if (1..=MAX_FOLDS).contains(&request.folds) {
        Some(request.folds as usize)
    } else {
        errors.push(value_error(
            body("folds"),
            format!(
                "folds must be between 1 and {MAX_FOLDS}, got {}",
                request.folds
            ),
        ));
        None
    };
    let level = check_level(request.interval_level, body("interval_level"), &mut errors);
    let (Some(symbol), Some(prices), Some(models), Some(horizons), Some(folds), Some(level)) =
        (symbol, prices, models, horizons, folds, level)
    else {
        return Err(ApiError::Validation(errors));
    };
    Ok(Plan {
        symbol,
        prices,
        models,
        config: BacktestConfig {
            horizons,
            folds,
            level,
            ..BacktestConfig::default()
        },
    })
}

/// 1..=[`MAX_MODELS`] known model names, none twice.
fn check_models(names: &[String], errors: &mut Vec<FieldError>) -> Option<Vec<&'static str>> {
    check_distinct_list(
        names,
        "models",
        || {
            format!(
                "models must name between 1 and {MAX_MODELS} models, got {}",
                names.len()
            )
        },
        MAX_MODELS,
        "model",
        |name, at, errors| check_model(name, at, errors),
        errors,
    )
}

/// 1..=[`MAX_HORIZONS`] horizons, each in 1..=`max_days_ahead`, none twice.
fn check_horizons(
    raw: &[i64],
    max_days_ahead: usize,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<usize>> {
    check_distinct_list(
        raw,
        "horizons",
        || {
            format!(
                "horizons must list between 1 and {MAX_HORIZONS} horizons, got {}",
                raw.len()
            )
        },
        MAX_HORIZONS,
        "horizon",
        |&h, at, errors| match usize::try_from(h) {
            Ok(h) if (1..=max_days_ahead).contains(&h) => Some(h),
            _ => {
                errors.push(value_error(
                    at,
                    format!("horizon must be between 1 and {max_days_ahead}, got {h}"),
                ));
                None
            }
        },
        errors,
    )
}

/// A list `field` of 1..=`max` items, each read by `check` (which records its own error at
/// the item's loc), none twice (`"{noun} {item} is listed twice"`). Every bad item is
/// reported; `None` if any was bad.
fn check_distinct_list<R, T: PartialEq + std::fmt::Display>(
    raw: &[R],
    field: &str,
    count_error: impl Fn() -> String,
    max: usize,
    noun: &str,
    check: impl Fn(&R, Vec<serde_json::Value>, &mut Vec<FieldError>) -> Option<T>,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<T>> {
    let loc = || vec![json!("body"), json!(field)];
    if raw.is_empty() || raw.len() > max {
        errors.push(value_error(loc(), count_error()));
        return None;
    }
    let mut items = Vec::with_capacity(raw.len());
    let mut valid = true;
    for (i, r) in raw.iter().enumerate() {
        let mut at = loc();
        at.push(json!(i));
        match check(r, at.clone(), errors) {
            Some(item) if items.contains(&item) => {
                errors.push(value_error(at, format!("{noun} {item} is listed twice")));
                valid = false;
            }
            Some(item) => items.push(item),
            None => valid = false,
        }
    }
    valid.then_some(items)
}

/// The backtester's failure as an answer: a series too short for one fold is the client's
/// (400); the settings and names were validated above, so the rest cannot happen here.
fn backtest_error(e: BacktestError) -> ApiError {
    match e {
        e @ BacktestError::SeriesTooShort { .. } => ApiError::SeriesTooShort {
            message: e.to_string(),
        },
        e @ (BacktestError::InvalidConfig(_) | BacktestError::Forecast(_)) => {
            ApiError::Validation(vec![value_error(vec![json!("body")], e)])
        }
        // Cancelled only reaches a handler that is gone; files and charts are the CLI's.
        e @ (BacktestError::Cancelled
        | BacktestError::Io { .. }
        | BacktestError::Csv { .. }
        | BacktestError::Chart(_)) => ApiError::Internal(error_chain(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::ForecastError;

    #[test]
    fn absent_fields_take_the_documented_defaults() {
        let r = BacktestRequest::from_json(&json!({"symbol": "x", "historical_prices": [1.0]}))
            .unwrap();
        assert_eq!(r.models.len(), MODEL_NAMES.len() - 1);
        assert!(r
            .models
            .iter()
            .all(|m| m != "lstm" && MODEL_NAMES.contains(&m.as_str())));
        assert!(r.models.len() <= MAX_MODELS);
        assert_eq!(r.horizons, vec![1, 7, 30]);
        assert_eq!(r.folds, BacktestConfig::default().folds as i64);
        assert_eq!(r.interval_level, DEFAULT_LEVEL);
    }

    #[test]
    fn mistyped_list_items_name_their_index() {
        let errors = BacktestRequest::from_json(&json!({
            "symbol": "x", "historical_prices": [1.0],
            "models": ["naive", 3], "horizons": [1, 2.5, "7"], "folds": "5", "interval_level": "x"
        }))
        .unwrap_err();
        let got: Vec<(Vec<Value>, String)> = errors
            .iter()
            .map(|e| (e.loc.clone(), e.kind.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    vec![json!("body"), json!("models"), json!(1)],
                    "string_type".into()
                ),
                (
                    vec![json!("body"), json!("horizons"), json!(1)],
                    "int_from_float".into()
                ),
                (
                    vec![json!("body"), json!("horizons"), json!(2)],
                    "int_type".into()
                ),
                (vec![json!("body"), json!("folds")], "int_type".into()),
                (
                    vec![json!("body"), json!("interval_level")],
                    "float_type".into()
                ),
            ]
        );
    }

    #[test]
    fn models_must_be_known_distinct_and_at_most_eight() {
        let mut errors = Vec::new();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            check_models(&names(&["theta", "lstm"]), &mut errors),
            Some(vec!["theta", "lstm"])
        );
        assert!(errors.is_empty());
        assert_eq!(
            check_models(&names(&["theta", "prophet", "theta"]), &mut errors),
            None
        );
        assert_eq!(errors.len(), 2);
        assert_eq!(
            errors[0].loc,
            vec![json!("body"), json!("models"), json!(1)]
        );
        assert!(
            errors[0].msg.contains("valid models: naive, drift"),
            "{}",
            errors[0].msg
        );
        assert_eq!(
            errors[1].loc,
            vec![json!("body"), json!("models"), json!(2)]
        );
        errors.clear();
        assert_eq!(check_models(&[], &mut errors), None);
        assert_eq!(check_models(&names(&["naive"; 9]), &mut errors), None);
        assert!(errors
            .iter()
            .all(|e| e.loc == vec![json!("body"), json!("models")]));
    }

    #[test]
    fn horizons_must_be_in_range_distinct_and_at_most_ten() {
        let mut errors = Vec::new();
        assert_eq!(check_horizons(&[1, 90], 90, &mut errors), Some(vec![1, 90]));
        assert!(errors.is_empty());
        assert_eq!(check_horizons(&[0, 91, -1, 7, 7], 90, &mut errors), None);
        let indexes: Vec<Value> = errors.iter().map(|e| e.loc[2].clone()).collect();
        assert_eq!(indexes, vec![json!(0), json!(1), json!(2), json!(4)]);
        errors.clear();
        assert_eq!(check_horizons(&[], 90, &mut errors), None);
        assert_eq!(check_horizons(&[1; 11], 90, &mut errors), None);
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn a_short_series_is_a_bad_request_and_nothing_else_is_a_server_error_but_bugs() {
        let short = backtest_error(BacktestError::SeriesTooShort {
            symbol: "BTC".into(),
            needed: 372,
            got: 100,
        });
        assert_eq!(short.status().as_u16(), 400);
        assert_eq!(
            short.detail(),
            json!("BTC: need at least 372 prices for this backtest, got 100")
        );
        let config = backtest_error(BacktestError::InvalidConfig("x".into()));
        assert_eq!(config.status().as_u16(), 422);
        let forecast = backtest_error(BacktestError::Forecast(ForecastError::ZeroHorizon));
        assert_eq!(forecast.status().as_u16(), 422);
    }

    #[test]
    fn dropping_the_guard_cancels() {
        let flag = Arc::new(AtomicBool::new(false));
        drop(CancelOnDrop(Arc::clone(&flag)));
        assert!(flag.load(Ordering::Relaxed));
    }
}
