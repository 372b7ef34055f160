//! The answers of the contract (SPEC section 1) as types: what `POST /predict` and
//! `POST /risk-score` return, built from the forecast and the risk measures of the core, and
//! every way a request fails ([`error::ApiError`]). The
//! HTTP layer serialises them, and so does the `predict` command, which prints what the route
//! answers without depending on HTTP.

pub mod error;

use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::Object;
use utoipa::ToSchema;

use crate::domain::Symbol;
use crate::forecast::intervals::{IntervalForecast, PathPoint};
use crate::forecast::MODEL_NAMES;
use crate::risk::measures::RiskMeasures;
use crate::risk::{RiskLevel, RiskScore};

/// `POST /predict` answer. New fields go at the end and are additive; the contract's fields
/// never change.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct PredictResponse {
    /// Upper-case symbol.
    pub symbol: String,
    /// The last price sent.
    pub current_price: f64,
    /// Forecast `days_ahead` steps after the last price: the last `forecast[].price`.
    pub predicted_price: f64,
    /// `predicted_price - current_price`.
    pub prediction_change: f64,
    /// `prediction_change / current_price * 100`.
    pub prediction_change_percent: f64,
    /// 1 - the model's out-of-sample MAPE at this horizon, clamped to [0, 1]: from the LSTM's
    /// validation tail, or from refitting a statistical model at recent cutoffs (see the
    /// README).
    #[schema(minimum = 0, maximum = 1)]
    pub confidence: f64,
    /// Steps ahead.
    pub days_ahead: usize,
    /// RFC 3339 UTC.
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// The model asked for and what produced the forecast.
    pub model: ModelInfo,
    /// The interval level of `forecast[].lower` and `upper`, in (0, 1).
    #[schema(exclusive_minimum = 0, exclusive_maximum = 1)]
    pub level: f64,
    /// Days 1..=`days_ahead`: point forecast and interval.
    pub forecast: Vec<PathPoint>,
}

/// The `model` object of a `/predict` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ModelInfo {
    /// The model name the request asked for (`"lstm"`, `"auto"`...).
    #[schema(schema_with = model_name)]
    pub name: String,
    /// The registry's model version for the LSTM, else the statistical models' version.
    pub version: String,
    /// What produced the forecast, e.g. `"auto(theta)"`, `"ets(AAdN)"` or `"lstm"`.
    pub label: String,
}

impl PredictResponse {
    /// The answer for a forecast `path` (day 1 first) after `current_price`.
    /// `predicted_price` is the path's last price, so the two always agree.
    pub fn new(
        symbol: &Symbol,
        current_price: f64,
        path: Vec<PathPoint>,
        confidence: f64,
        level: f64,
        model: ModelInfo,
        timestamp: String,
    ) -> Self {
        let forecast: Vec<PathPoint> = path.into_iter().map(finite_band).collect();
        let predicted_price = forecast.last().map_or(current_price, |p| p.price);
        let change = predicted_price - current_price;
        Self {
            symbol: symbol.to_string(),
            current_price,
            predicted_price,
            prediction_change: change,
            // A finite path from a price near the smallest double can move by more than the
            // largest one in per cent; JSON has no infinity (it would print null), so the
            // number saturates, as an unbounded band's `upper` does.
            prediction_change_percent: (change / current_price * 100.0).clamp(-f64::MAX, f64::MAX),
            confidence: if confidence.is_finite() {
                confidence.clamp(0.0, 1.0)
            } else {
                0.0
            },
            days_ahead: forecast.len(),
            timestamp,
            model,
            level,
            forecast,
        }
    }

    /// The answer for `forecast` (of any model, the LSTM's included) after `current_price`;
    /// `name` is the model asked for, `version` the version of what answered.
    pub fn from_forecast(
        symbol: &Symbol,
        current_price: f64,
        name: &str,
        version: &str,
        forecast: IntervalForecast,
        timestamp: String,
    ) -> Self {
        Self::new(
            symbol,
            current_price,
            forecast.path,
            forecast.confidence,
            forecast.level,
            ModelInfo {
                name: name.into(),
                version: version.into(),
                label: forecast.model,
            },
            timestamp,
        )
    }
}

/// The schema of a string that is one of `values`.
pub fn one_of_strings(values: impl IntoIterator<Item = &'static str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .build()
}

/// The schema of a model name: one of [`MODEL_NAMES`].
pub fn model_name() -> Object {
    one_of_strings(MODEL_NAMES.iter().copied())
}

/// The schema of a risk level: one of [`RiskLevel::ALL`]'s names.
fn risk_level() -> Object {
    one_of_strings(RiskLevel::ALL.iter().map(|l| l.as_str()))
}

/// A band that is finite and holds its price, whatever the model did: an upper end that
/// overflowed becomes the largest finite number, a lower end above the price the price.
fn finite_band(p: PathPoint) -> PathPoint {
    let upper = if p.upper.is_finite() {
        p.upper.max(p.price)
    } else {
        f64::MAX
    };
    let lower = if p.lower.is_finite() && p.lower >= 0.0 {
        p.lower.min(p.price)
    } else {
        p.price
    };
    PathPoint { upper, lower, ..p }
}

/// `POST /risk-score` answer: the contract's five fields first, then the further measures.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct RiskResponse {
    /// Upper-case symbol.
    pub symbol: String,
    /// 0..=100.
    #[schema(maximum = 100)]
    pub risk_score: u8,
    /// `conservative`, `moderate` or `degen`.
    #[schema(schema_with = risk_level)]
    pub risk_level: &'static str,
    /// std/mean of the last 30 prices.
    pub volatility: f64,
    /// RFC 3339 UTC.
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// Return volatility, drawdown, VaR, ES and beta (see [`crate::risk::measures`]).
    pub measures: RiskMeasures,
}

impl RiskResponse {
    /// The answer for a score and the measures of the same prices.
    pub fn new(
        symbol: &Symbol,
        score: RiskScore,
        measures: RiskMeasures,
        timestamp: String,
    ) -> Self {
        Self {
            symbol: symbol.to_string(),
            risk_score: score.score,
            risk_level: score.level.as_str(),
            volatility: score.volatility,
            timestamp,
            measures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_change_beyond_the_largest_double_saturates_instead_of_printing_null() {
        let point = PathPoint {
            day: 1,
            price: 3.2e103,
            lower: 1e-200,
            upper: f64::INFINITY,
        };
        let symbol: Symbol = "BTC".parse().unwrap();
        let info = ModelInfo {
            name: "moving_average".into(),
            version: "v".into(),
            label: "moving_average".into(),
        };
        let r = PredictResponse::new(&symbol, 1.4e-225, vec![point], 0.0, 0.8, info, "t".into());
        assert_eq!(r.prediction_change_percent, f64::MAX);
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["prediction_change_percent"].is_number(), "{json}");
        assert!(json["forecast"][0]["upper"].is_number(), "{json}");
    }

    fn point(day: usize, price: f64, lower: f64, upper: f64) -> PathPoint {
        PathPoint {
            day,
            price,
            lower,
            upper,
        }
    }

    fn info() -> ModelInfo {
        ModelInfo {
            name: "theta".into(),
            version: "stats-1.0.0".into(),
            label: "theta".into(),
        }
    }

    #[test]
    fn the_predicted_price_is_the_last_point_of_the_path() {
        let symbol = Symbol::parse("btc").unwrap();
        let path = vec![point(1, 101.0, 99.0, 103.0), point(2, 102.5, 98.0, 107.0)];
        let r = PredictResponse::new(&symbol, 100.0, path, 0.9, 0.8, info(), "t".into());
        assert_eq!(r.predicted_price, 102.5);
        assert_eq!(r.prediction_change, 2.5);
        assert_eq!(r.prediction_change_percent, 2.5);
        assert_eq!(r.days_ahead, 2);
        let keys: Vec<String> = serde_json::to_value(&r)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys.len(), 11);
        assert_eq!(
            serde_json::to_value(&r).unwrap()["forecast"][1],
            json!({"day": 2, "price": 102.5, "lower": 98.0, "upper": 107.0})
        );
    }

    #[test]
    fn bands_are_made_finite_and_around_their_price() {
        let symbol = Symbol::parse("btc").unwrap();
        let path = vec![
            point(1, 10.0, f64::NAN, f64::INFINITY),
            point(2, 10.0, 11.0, 9.0),
        ];
        let r = PredictResponse::new(&symbol, 10.0, path, f64::NAN, 0.8, info(), "t".into());
        for p in &r.forecast {
            assert!(p.lower.is_finite() && p.upper.is_finite());
            assert!(p.lower <= p.price && p.price <= p.upper, "{p:?}");
        }
        assert_eq!(r.confidence, 0.0);
    }
}
