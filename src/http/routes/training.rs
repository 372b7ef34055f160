//! `POST /models/{symbol}/train` (retrain from scratch on the posted prices) and
//! `POST /models/{symbol}/update` (fine-tune the existing model on newer prices). Both replace
//! the model only once the new one is trained, checked and stored; the old one serves until
//! then. Both are protected by `API_KEYS` when it is set (see [`crate::http::middleware::auth`]).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use crate::domain::{PriceSeries, Symbol};
use crate::forecast::lstm::TrainedLstm;
use crate::http::body::extract::{ApiJson, Fields, FromJson};
use crate::http::error::{ApiError, FieldError};
use crate::http::middleware::auth::RequireKey;
use crate::http::middleware::logging::RequestSymbol;
use crate::http::{check_prices, path_symbol, AppState};
use crate::registry::MIN_TRAINING_PRICES;

/// Fewest prices `update` accepts: one window and a validation tail worth measuring.
pub const MIN_UPDATE_PRICES: usize = 80;
/// Most epochs one `update` may ask for.
pub const MAX_UPDATE_EPOCHS: i64 = 50;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/models/{symbol}/train", post(train_model))
        .route("/models/{symbol}/update", post(update_model))
}

/// Body of `train` and `update`: prices, and for `update` optional epochs.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainRequest {
    /// Prices, oldest first.
    pub historical_prices: Vec<f64>,
    /// Epochs (update only; `None`: the configured default).
    pub epochs: Option<i64>,
}

impl FromJson for TrainRequest {
    fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        let mut f = Fields::new(value);
        let historical_prices = f.number_list("historical_prices");
        let epochs = f.integer_or("epochs", i64::MIN);
        f.finish()?;
        Ok(Self {
            historical_prices: historical_prices.expect("checked by finish"),
            epochs: epochs.filter(|&e| e != i64::MIN),
        })
    }
}

fn prices(state: &AppState, raw: Vec<f64>, needed: usize) -> Result<PriceSeries, ApiError> {
    let mut errors = Vec::new();
    let series = check_prices(raw, &state.limits, &mut errors)?;
    let Some(series) = series else {
        return Err(ApiError::Validation(errors));
    };
    if series.len() < needed {
        return Err(ApiError::NotEnoughPricesForTraining {
            needed,
            got: series.len(),
        });
    }
    Ok(series)
}

fn describe(state: &AppState, symbol: &Symbol, status: &str, model: &TrainedLstm) -> Value {
    let s = model.summary();
    json!({
        "symbol": symbol.as_str(),
        "status": status,
        "model_version": state.registry.version().as_str(),
        "points": s.n_prices,
        "epochs": s.epochs_run,
        "train_seconds": s.train_seconds,
        "final_train_loss": s.final_train_loss,
        "validation_loss": s.validation_loss,
        "validation_mape": model.validation_mape(1),
        "timestamp": crate::domain::now_rfc3339(),
    })
}

async fn train_model(
    _: RequireKey,
    State(state): State<AppState>,
    Extension(logged): Extension<RequestSymbol>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<TrainRequest>,
) -> Result<Json<Value>, ApiError> {
    let symbol = path_symbol(path, &logged)?;
    let series = prices(&state, request.historical_prices, MIN_TRAINING_PRICES)?;
    let model = state.registry.retrain(&symbol, series).await?;
    Ok(Json(describe(&state, &symbol, "trained", &model)))
}

async fn update_model(
    _: RequireKey,
    State(state): State<AppState>,
    Extension(logged): Extension<RequestSymbol>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<TrainRequest>,
) -> Result<Json<Value>, ApiError> {
    let symbol = path_symbol(path, &logged)?;
    let epochs = match request.epochs {
        None => state.ops.update_epochs,
        Some(e) if (1..=MAX_UPDATE_EPOCHS).contains(&e) => e as usize,
        Some(_) => {
            return Err(ApiError::Validation(vec![FieldError::new(
                vec![json!("body"), json!("epochs")],
                format!("Value error, epochs must be between 1 and {MAX_UPDATE_EPOCHS}"),
                "value_error",
            )]))
        }
    };
    let series = prices(&state, request.historical_prices, MIN_UPDATE_PRICES)?;
    let model = state.registry.fine_tune(&symbol, series, epochs).await?;
    Ok(Json(describe(&state, &symbol, "updated", &model)))
}
