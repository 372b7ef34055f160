//! `POST /models/{symbol}/train` (retrain from scratch on the posted prices) and
//! `POST /models/{symbol}/update` (fine-tune the existing model on newer prices). Both replace
//! the model only once the new one is trained, checked and stored; the old one serves until
//! then. Both are protected by `API_KEYS` when it is set (see [`crate::http::middleware::auth`]).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::responses::{KeyErrors, QueueFull, TooLarge, Untrainable};
use crate::contract::one_of_strings;
use crate::domain::{PriceSeries, Symbol};
use crate::forecast::lstm::TrainedLstm;
use crate::http::body::extract::{ApiJson, Fields, FromJson};
use crate::http::body::schema::{prices_at_least, SymbolPath};
use crate::http::error::{ApiError, ErrorBody, FieldError};
use crate::http::middleware::auth::RequireKey;
use crate::http::middleware::logging::RequestSymbol;
use crate::http::{check_prices, path_symbol, AppState};
use crate::registry::MIN_TRAINING_PRICES;

/// Fewest prices `update` accepts: one window and a validation tail worth measuring.
pub const MIN_UPDATE_PRICES: usize = 80;
/// Most epochs one `update` may ask for.
pub const MAX_UPDATE_EPOCHS: i64 = 50;

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(train_model))
        .routes(routes!(update_model))
}

/// Body of `train` and `update`: prices, and for `update` optional epochs.
#[derive(Clone, Debug, PartialEq, ToSchema)]
pub struct TrainRequest {
    /// Prices, oldest first.
    #[schema(schema_with = training_prices)]
    pub historical_prices: Vec<f64>,
    /// Update only; UPDATE_EPOCHS by default.
    #[schema(value_type = i64, required = false, minimum = 1, maximum = 50)]
    pub epochs: Option<i64>,
}

/// The prices of a training or fine-tuning: at least [`MIN_UPDATE_PRICES`].
fn training_prices() -> utoipa::openapi::Array {
    prices_at_least(MIN_UPDATE_PRICES)
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

/// A model trained or fine-tuned and stored (alphabetical, as always sent).
#[derive(Serialize, ToSchema)]
pub struct TrainResponse {
    /// Epochs run (early stopping may end before the most asked for).
    epochs: usize,
    /// Training loss of the last epoch.
    final_train_loss: f64,
    /// MODEL_VERSION.
    model_version: String,
    /// Prices trained on.
    points: usize,
    /// `trained` or `updated`.
    #[schema(schema_with = trained_or_updated)]
    status: &'static str,
    /// Upper-case symbol.
    symbol: String,
    /// When it finished, RFC 3339 UTC.
    #[schema(format = DateTime)]
    timestamp: String,
    /// Seconds training took.
    train_seconds: f64,
    /// Loss on the validation tail.
    validation_loss: f64,
    /// MAPE one day ahead on the validation tail (0.05 = 5%).
    validation_mape: f64,
}

fn trained_or_updated() -> utoipa::openapi::Object {
    one_of_strings(["trained", "updated"])
}

fn describe(
    state: &AppState,
    symbol: &Symbol,
    status: &'static str,
    model: &TrainedLstm,
) -> TrainResponse {
    let s = model.summary();
    TrainResponse {
        symbol: symbol.as_str().to_owned(),
        status,
        model_version: state.registry.version().as_str().to_owned(),
        points: s.n_prices,
        epochs: s.epochs_run,
        train_seconds: s.train_seconds,
        final_train_loss: s.final_train_loss,
        validation_loss: s.validation_loss,
        validation_mape: model.validation_mape(1),
        timestamp: crate::domain::now_rfc3339(),
    }
}

/// Retrain the symbol's LSTM from scratch on the posted prices.
///
/// The old model serves until the new one is trained, checked and stored.
#[utoipa::path(post, path = "/models/{symbol}/train", params(SymbolPath), request_body = TrainRequest,
    security(("bearer" = [])), responses(
    (status = 200, description = "Trained and stored", body = TrainResponse),
    (status = 400, description = "Fewer than 200 prices, too many prices, or a body that is not JSON", body = ErrorBody),
    KeyErrors,
    TooLarge,
    Untrainable,
    QueueFull,
))]
async fn train_model(
    _: RequireKey,
    State(state): State<AppState>,
    Extension(logged): Extension<RequestSymbol>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<TrainRequest>,
) -> Result<Json<TrainResponse>, ApiError> {
    let symbol = path_symbol(path, &logged)?;
    let series = prices(&state, request.historical_prices, MIN_TRAINING_PRICES)?;
    let model = state.registry.retrain(&symbol, series).await?;
    Ok(Json(describe(&state, &symbol, "trained", &model)))
}

/// Fine-tune the symbol's LSTM on newer prices.
///
/// Continues training the existing model (epochs 1..=50, UPDATE_EPOCHS by default).
#[utoipa::path(post, path = "/models/{symbol}/update", params(SymbolPath), request_body = TrainRequest,
    security(("bearer" = [])), responses(
    (status = 200, description = "Fine-tuned and stored", body = TrainResponse),
    (status = 400, description = "Fewer than 80 prices, too many prices, or a body that is not JSON", body = ErrorBody),
    KeyErrors,
    (status = 404, description = "No model to update", body = ErrorBody),
    TooLarge,
    Untrainable,
    QueueFull,
))]
async fn update_model(
    _: RequireKey,
    State(state): State<AppState>,
    Extension(logged): Extension<RequestSymbol>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<TrainRequest>,
) -> Result<Json<TrainResponse>, ApiError> {
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
