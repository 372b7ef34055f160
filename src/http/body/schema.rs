//! OpenAPI schemas of request fields whose bounds are the crate's constants (`utoipa`'s
//! attributes take literals only): each field names one of these with `schema_with`, so the
//! bound is declared once, where the code enforces it. Bounds set by settings (`MAX_PRICES`,
//! `MAX_DAYS_AHEAD`) are stated by [`crate::http::routes::docs::openapi`] when it serves.

use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::{Array, Object, Required, Schema};
use utoipa::IntoParams;

use crate::backtest::BacktestConfig;
use crate::contract::model_name;
use crate::forecast::intervals::DEFAULT_LEVEL;
use crate::registry::MIN_FORECAST_PRICES;
use crate::risk::RISK_WINDOW;

/// What a symbol looks like ([`crate::domain::Symbol::parse`]).
pub const SYMBOL_PATTERN: &str = "^[A-Za-z0-9_-]{1,32}$";

/// A symbol in a body.
pub fn symbol() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(SYMBOL_PATTERN))
        .description(Some("Case-insensitive; answered upper-case"))
        .build()
}

/// `model` of `/predict`: a model name, the LSTM by default.
pub fn requested_model() -> Object {
    ObjectBuilder::from(model_name())
        .default(Some(super::dto::DEFAULT_MODEL.into()))
        .description(Some(
            "lstm: the symbol's LSTM (trained on demand); any other: a statistical model fitted \
             to the posted prices, no training needed; auto picks the best of them by backtest",
        ))
        .build()
}

/// `interval_level`: in (0, 1).
pub fn level() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .exclusive_minimum(Some(0))
        .exclusive_maximum(Some(1))
        .default(Some(DEFAULT_LEVEL.into()))
        .description(Some("Level of the conformal intervals"))
        .build()
}

/// Prices, oldest first, at least `min`.
pub fn prices_at_least(min: usize) -> Array {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .exclusive_minimum(Some(0)),
        )
        .min_items(Some(min))
        .description(Some(format!(
            "Prices, oldest first; each finite and > 0; at least {min}"
        )))
        .build()
}

/// The prices of a forecast: [`MIN_FORECAST_PRICES`].
pub fn forecast_prices() -> Array {
    prices_at_least(MIN_FORECAST_PRICES)
}

/// The prices of a risk score: [`RISK_WINDOW`].
pub fn risk_prices() -> Array {
    prices_at_least(RISK_WINDOW)
}

/// `benchmark_prices` of a risk score: a price list (as long as the asset's, to matter), or
/// `null` for none.
pub fn benchmark_prices() -> Schema {
    Schema::OneOf(
        OneOfBuilder::new()
        .item(risk_prices())
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "Optional: a benchmark's closes (BTC's, say), aligned with historical_prices at the \
             end (the last price of each is the same day); each finite and > 0",
        ))
        .build(),
    )
}

/// The prices of a backtest: one fold's training length.
pub fn backtest_prices() -> Array {
    prices_at_least(BacktestConfig::default().min_train)
}

/// The `{symbol}` of a route's path (the handlers read it as a `String`).
pub struct SymbolPath;

impl IntoParams for SymbolPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![parameter(
            "symbol",
            ParameterIn::Path,
            "1-32 characters of A-Z a-z 0-9 _ -; case-insensitive",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(SYMBOL_PATTERN)),
        )]
    }
}

/// A parameter: required in a path, optional in a query.
pub fn parameter(
    name: &str,
    place: ParameterIn,
    description: &str,
    schema: impl Into<Object>,
) -> Parameter {
    let required = if matches!(place, ParameterIn::Path) {
        Required::True
    } else {
        Required::False
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(place)
        .required(required)
        .description(Some(description))
        .schema(Some(schema.into()))
        .build()
}

/// The query of `DELETE /models/{symbol}` (the handler reads it as a map, to answer a bad
/// boolean with the field's error).
pub struct PurgeQuery;

impl IntoParams for PurgeQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![parameter(
            "purge",
            ParameterIn::Query,
            "Also delete the stored model (needs an API key when API_KEYS is set)",
            ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .default(Some(false.into())),
        )]
    }
}
