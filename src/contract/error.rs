//! [`ApiError`]: every way a request can fail, mapped to a status, a code and a `detail` by one
//! exhaustive `match` (no `_` arm: a new variant does not compile until it has a status). The
//! HTTP layer sends it as `{"detail": ..., "code": ...}` ([`crate::http::error`]); the CLI
//! prints its `detail`.

use http::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::{Array, Ref, Schema};
use utoipa::ToSchema;

use crate::domain::Symbol;
use crate::registry::{RegistryError, TrainingRefusal, MIN_FORECAST_PRICES, MIN_TRAINING_PRICES};
use crate::risk::RISK_WINDOW;
use crate::telemetry::error_chain;

/// One entry of a FastAPI-style validation `detail` list.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct FieldError {
    /// Where: `["body", "historical_prices", 3]`, `["path", "symbol"]`...
    #[schema(schema_with = location)]
    pub loc: Vec<Value>,
    /// What is wrong, for people.
    pub msg: String,
    /// What is wrong, for programs (pydantic's names: `missing`, `float_type`, `value_error`...).
    #[serde(rename = "type")]
    pub kind: String,
}

/// A location: names and list indices.
fn location() -> Array {
    ArrayBuilder::new()
        .items(
            OneOfBuilder::new()
                .item(ObjectBuilder::new().schema_type(Type::String))
                .item(ObjectBuilder::new().schema_type(Type::Integer)),
        )
        .build()
}

/// The body of every error answer: `{"code", "detail"}` (keys in the order the service has
/// always sent them).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(as = ErrorDetail)]
pub struct ErrorBody {
    /// Stable machine-readable error code.
    pub code: &'static str,
    /// A sentence; a list of field errors for a body that is not JSON (400) or fields that do
    /// not validate.
    #[schema(schema_with = detail)]
    pub detail: Value,
}

/// `detail`: a sentence or a list of field errors.
fn detail() -> Schema {
    Schema::OneOf(
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ArrayBuilder::new().items(Ref::from_schema_name(FieldError::name())))
            .description(Some(
                "A sentence; a list of field errors for a body that is not JSON (400) or fields \
             that do not validate",
            ))
            .build(),
    )
}

/// The [`ErrorBody`] of a 422 for fields that do not validate ([`ApiError::Validation`]):
/// `detail` is the list. A schema of the document only; the answer is an `ErrorBody`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ValidationError {
    /// `validation_error`.
    code: String,
    /// What failed, field by field.
    detail: Vec<FieldError>,
}

/// A batch item that failed: `{"error": {"code", "detail", "status"}, "symbol"}` (keys in the
/// order the service has always sent them).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct BatchItemError {
    /// What the single route would have answered.
    pub error: ItemErrorBody,
    /// The item's symbol: validated and upper-case when possible, else as sent.
    #[schema(value_type = Value)]
    pub symbol: Value,
}

/// The `error` of a [`BatchItemError`]: an [`ErrorBody`] and its status.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ItemErrorBody {
    /// What the single route would have answered.
    #[serde(flatten)]
    pub body: ErrorBody,
    /// The HTTP status the single route would have answered.
    pub status: u16,
}

/// `(loc, type)` of each error, for tests that state which fields failed and how.
#[cfg(test)]
pub(crate) fn locs_and_kinds(errors: &[FieldError]) -> Vec<(Value, &str)> {
    errors
        .iter()
        .map(|e| (json!(e.loc), e.kind.as_str()))
        .collect()
}

impl FieldError {
    /// An error at `loc`.
    pub fn new(loc: Vec<Value>, msg: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            loc,
            msg: msg.into(),
            kind: kind.into(),
        }
    }
}

/// `Retry-After` of [`ApiError::DatabaseUnavailable`].
pub const DATABASE_RETRY_SECS: u64 = 5;

/// Everything the API answers with other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, mistyped or invalid fields: 422 with a `detail` list.
    #[error("validation failed: {0:?}")]
    Validation(Vec<FieldError>),
    /// The body is not JSON: 400 with a `detail` list.
    #[error("malformed JSON: {0:?}")]
    MalformedJson(FieldError),
    /// The body exceeds the configured limit: 413.
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body did not arrive within `BODY_READ_TIMEOUT_SECS`: 408.
    #[error("body not received within {secs} s")]
    BodyTimeout { secs: u64 },
    /// More prices than the configured limit: 400.
    #[error("{got} prices, more than {max}")]
    TooManyPrices { got: usize, max: usize },
    /// `/predict` with fewer than 60 prices: 400 (contract text).
    #[error("{got} prices to predict")]
    NotEnoughPricesForPrediction { got: usize },
    /// `/risk-score` with fewer than 30 prices: 400 (contract text).
    #[error("{got} prices to score")]
    NotEnoughPricesForRisk { got: usize },
    /// No stored model and too few prices to train: 404 (contract text).
    #[error("no model for {symbol}")]
    NoPretrainedModel { symbol: Symbol },
    /// No stored model, and `TRAINING_MODE` refuses to train one from this request: 404 when
    /// training is off, 401 or 403 when it needs an API key.
    #[error("no model for {symbol}, training refused: {refusal:?}")]
    TrainingRefused {
        symbol: Symbol,
        refusal: TrainingRefusal,
    },
    /// `DELETE /models/{symbol}` for a model not in memory: 404 (contract text).
    #[error("model {symbol} not loaded")]
    ModelNotLoaded { symbol: Symbol },
    /// The series cannot be modelled (constant history...): 422.
    #[error("degenerate series for {symbol}: {reason}")]
    Degenerate { symbol: Symbol, reason: String },
    /// The training queue is full: 503 with `Retry-After`.
    #[error("training queue full")]
    Overloaded { retry_after_secs: u64 },
    /// `/backtest` on a series too short for one fold: 400 with the backtester's message.
    #[error("{message}")]
    SeriesTooShort { message: String },
    /// Another backtest is running: 503 with `Retry-After`.
    #[error("a backtest is already running")]
    BacktestBusy { retry_after_secs: u64 },
    /// No such route: 404.
    #[error("route not found")]
    RouteNotFound,
    /// Route exists, method does not: 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A protected route without `Authorization: Bearer <key>`: 401.
    #[error("missing bearer token")]
    Unauthorized,
    /// A key that is not in `API_KEYS`: 403.
    #[error("invalid API key")]
    Forbidden,
    /// More batch items than `MAX_BATCH_SIZE`: 413.
    #[error("batch of {got}, more than {max}")]
    BatchTooLarge { got: usize, max: usize },
    /// Fewer prices than training or fine-tuning needs: 400.
    #[error("{got} prices, {needed} needed")]
    NotEnoughPricesForTraining { needed: usize, got: usize },
    /// The request ran past its time limit: 504. `may_train`: the route may have started a
    /// training, which goes on.
    #[error("timed out after {secs} s")]
    Timeout { secs: u64, may_train: bool },
    /// Prices by symbol, the prediction log or accuracy without `DATABASE_URL`: 404, not 503
    /// (retrying never helps: this server has no such resource).
    #[error("no database configured")]
    NoDatabase,
    /// No closes of the symbol in the database: 404.
    #[error("no prices for {symbol}")]
    NoPrices { symbol: Symbol },
    /// The database did not answer: 503 with `Retry-After`.
    #[error("database unavailable: {cause}")]
    DatabaseUnavailable { cause: String },
    /// Not ready (starting or shutting down): 503.
    #[error("not ready: {state}")]
    NotReady { state: &'static str },
    /// A bug or an I/O failure: 500; the cause is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// Status, machine-readable code and `detail` value of this error.
    pub(crate) fn parts(&self) -> (StatusCode, &'static str, Value) {
        match self {
            Self::Validation(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                json!(errors),
            ),
            Self::MalformedJson(error) => (StatusCode::BAD_REQUEST, "malformed_json", json!([error])),
            Self::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                json!(format!("Request body is larger than the limit of {limit} bytes")),
            ),
            Self::BodyTimeout { secs } => (
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                json!(format!("The request body did not arrive within {secs} seconds")),
            ),
            Self::TooManyPrices { got, max } => (
                StatusCode::BAD_REQUEST,
                "too_many_prices",
                json!(format!(
                    "Too many historical price points: got {got}, the limit is {max}"
                )),
            ),
            Self::NotEnoughPricesForPrediction { .. } => (
                StatusCode::BAD_REQUEST,
                "not_enough_prices",
                json!(format!(
                    "Need at least {MIN_FORECAST_PRICES} historical price points for prediction"
                )),
            ),
            Self::NotEnoughPricesForRisk { .. } => (
                StatusCode::BAD_REQUEST,
                "not_enough_prices",
                json!(format!(
                    "Need at least {RISK_WINDOW} historical price points for risk scoring"
                )),
            ),
            Self::NoPretrainedModel { symbol } => (
                StatusCode::NOT_FOUND,
                "no_model",
                json!(format!(
                    "No pre-trained model for {symbol}. Provide at least {MIN_TRAINING_PRICES} data points for training."
                )),
            ),
            Self::TrainingRefused { symbol, refusal } => match refusal {
                TrainingRefusal::Disabled => (
                    StatusCode::NOT_FOUND,
                    "no_model",
                    json!(format!(
                        "No pre-trained model for {symbol}. This server does not train models from request data."
                    )),
                ),
                TrainingRefusal::MissingKey => (
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    json!(format!(
                        "No pre-trained model for {symbol}. Training one from request data needs an API key: send Authorization: Bearer <key>"
                    )),
                ),
                TrainingRefusal::WrongKey => (
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    json!(format!(
                        "No pre-trained model for {symbol}. Training one from request data needs a valid API key"
                    )),
                ),
            },
            Self::ModelNotLoaded { symbol } => (
                StatusCode::NOT_FOUND,
                "model_not_loaded",
                json!(format!("Model {symbol} not loaded")),
            ),
            Self::Degenerate { symbol, reason } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "degenerate_series",
                json!(format!(
                    "Cannot forecast {symbol}: {reason}. A constant or nearly constant price history has nothing to learn from."
                )),
            ),
            Self::Overloaded { retry_after_secs } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                json!(format!(
                    "Too many models are training; retry in {retry_after_secs} seconds"
                )),
            ),
            Self::SeriesTooShort { message } => {
                (StatusCode::BAD_REQUEST, "series_too_short", json!(message))
            }
            Self::BacktestBusy { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "backtest_busy",
                json!("A backtest is already running; retry later"),
            ),
            Self::RouteNotFound => (StatusCode::NOT_FOUND, "not_found", json!("Not Found")),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                json!("Method Not Allowed"),
            ),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                json!("Missing API key: send Authorization: Bearer <key>"),
            ),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden", json!("Invalid API key")),
            Self::BatchTooLarge { got, max } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch_too_large",
                json!(format!(
                    "Batch of {got} requests is larger than the limit of {max}"
                )),
            ),
            Self::NotEnoughPricesForTraining { needed, got } => (
                StatusCode::BAD_REQUEST,
                "not_enough_prices",
                json!(format!(
                    "Need at least {needed} historical price points for training, got {got}"
                )),
            ),
            Self::Timeout { secs, may_train } => (
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                json!(if *may_train {
                    format!("The request did not finish within {secs} seconds; any training it started goes on in the background")
                } else {
                    format!("The request did not finish within {secs} seconds")
                }),
            ),
            Self::NoDatabase => (
                StatusCode::NOT_FOUND,
                "no_database",
                json!("No database is configured: prices by symbol, the prediction log and accuracy need DATABASE_URL"),
            ),
            Self::NoPrices { symbol } => (
                StatusCode::NOT_FOUND,
                "no_prices",
                json!(format!("No prices for {symbol} in the database")),
            ),
            Self::DatabaseUnavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                json!(format!(
                    "The database is unavailable; retry in {DATABASE_RETRY_SECS} seconds"
                )),
            ),
            Self::NotReady { state } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                json!(format!("The service is {state}")),
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                json!("Internal Server Error"),
            ),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The machine-readable code (`no_model`, `validation_error`...), also a metrics label.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    /// The `detail` value of the body (a string, or a list of field errors).
    pub fn detail(&self) -> Value {
        self.parts().2
    }

    /// This error as a failed batch item of `symbol`.
    pub fn batch_item(&self, symbol: Value) -> BatchItemError {
        let (status, code, detail) = self.parts();
        BatchItemError {
            error: ItemErrorBody {
                body: ErrorBody { code, detail },
                status: status.as_u16(),
            },
            symbol,
        }
    }

    /// The `detail` as text (the CLI prints it).
    pub fn detail_text(&self) -> String {
        match self.parts().2 {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::HistoryTooShort { got, .. } => {
                Self::NotEnoughPricesForPrediction { got }
            }
            RegistryError::NoModel { symbol, .. } => Self::NoPretrainedModel { symbol },
            RegistryError::Overloaded { retry_after_secs } => Self::Overloaded { retry_after_secs },
            RegistryError::Degenerate { symbol, reason } => Self::Degenerate { symbol, reason },
            RegistryError::TrainingRefused { symbol, refusal } => {
                Self::TrainingRefused { symbol, refusal }
            }
            // Only a request that already went away can be abandoned; say "retry" if one is not.
            RegistryError::Abandoned => Self::Overloaded {
                retry_after_secs: 1,
            },
            e @ (RegistryError::Training(_)
            | RegistryError::Store(_)
            | RegistryError::TaskFailed(_)) => Self::Internal(error_chain(&e)),
        }
    }
}
