//! Request and response bodies of the contract (SPEC section 1), snake_case JSON.

use serde::Serialize;
use serde_json::Value;

use super::error::FieldError;
use super::extract::{Fields, FromJson};
use crate::domain::Symbol;
use crate::registry::Forecast;
use crate::risk::RiskScore;

/// Default `days_ahead` of `/predict`.
pub const DEFAULT_DAYS_AHEAD: i64 = 7;

/// `POST /predict` body, typed but not yet validated.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictRequest {
    /// Raw symbol.
    pub symbol: String,
    /// Prices, oldest first.
    pub historical_prices: Vec<f64>,
    /// Steps ahead; 7 when absent.
    pub days_ahead: i64,
}

impl FromJson for PredictRequest {
    fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        let mut f = Fields::new(value);
        let symbol = f.string("symbol");
        let historical_prices = f.number_list("historical_prices");
        let days_ahead = f.integer_or("days_ahead", DEFAULT_DAYS_AHEAD);
        f.finish()?;
        Ok(Self {
            symbol: symbol.expect("checked by finish"),
            historical_prices: historical_prices.expect("checked by finish"),
            days_ahead: days_ahead.expect("checked by finish"),
        })
    }
}

/// `POST /risk-score` body, typed but not yet validated.
#[derive(Clone, Debug, PartialEq)]
pub struct RiskRequest {
    /// Raw symbol.
    pub symbol: String,
    /// Prices, oldest first.
    pub historical_prices: Vec<f64>,
}

impl FromJson for RiskRequest {
    fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        let mut f = Fields::new(value);
        let symbol = f.string("symbol");
        let historical_prices = f.number_list("historical_prices");
        f.finish()?;
        Ok(Self {
            symbol: symbol.expect("checked by finish"),
            historical_prices: historical_prices.expect("checked by finish"),
        })
    }
}

/// `POST /predict` answer. New fields go at the end and are additive; the contract's fields
/// never change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PredictResponse {
    /// Upper-case symbol.
    pub symbol: String,
    /// Last price sent.
    pub current_price: f64,
    /// Forecast `days_ahead` steps after the last price.
    pub predicted_price: f64,
    /// `predicted_price - current_price`.
    pub prediction_change: f64,
    /// `prediction_change / current_price * 100`.
    pub prediction_change_percent: f64,
    /// `1 - validation MAPE at this horizon`, in [0, 1] (see the README).
    pub confidence: f64,
    /// Steps ahead.
    pub days_ahead: usize,
    /// RFC 3339 UTC.
    pub timestamp: String,
}

impl PredictResponse {
    /// The answer for a forecast.
    pub fn new(symbol: &Symbol, forecast: &Forecast, days_ahead: usize, timestamp: String) -> Self {
        let change = forecast.predicted_price - forecast.current_price;
        Self {
            symbol: symbol.to_string(),
            current_price: forecast.current_price,
            predicted_price: forecast.predicted_price,
            prediction_change: change,
            prediction_change_percent: change / forecast.current_price * 100.0,
            confidence: forecast.confidence,
            days_ahead,
            timestamp,
        }
    }
}

/// `POST /risk-score` answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RiskResponse {
    /// Upper-case symbol.
    pub symbol: String,
    /// 0..=100.
    pub risk_score: u8,
    /// `conservative`, `moderate` or `degen`.
    pub risk_level: &'static str,
    /// std/mean of the last 30 prices.
    pub volatility: f64,
    /// RFC 3339 UTC.
    pub timestamp: String,
}

impl RiskResponse {
    /// The answer for a score.
    pub fn new(symbol: &Symbol, score: RiskScore, timestamp: String) -> Self {
        Self {
            symbol: symbol.to_string(),
            risk_score: score.score,
            risk_level: score.level.as_str(),
            volatility: score.volatility,
            timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_missing_field_is_reported_at_once() {
        let errors = PredictRequest::from_json(&json!({})).unwrap_err();
        let locs: Vec<_> = errors.iter().map(|e| e.loc.clone()).collect();
        assert_eq!(
            locs,
            vec![
                vec![json!("body"), json!("symbol")],
                vec![json!("body"), json!("historical_prices")]
            ]
        );
        assert!(errors.iter().all(|e| e.kind == "missing"));
    }

    #[test]
    fn mistyped_prices_name_their_index() {
        let errors = PredictRequest::from_json(
            &json!({"symbol": "BTC", "historical_prices": [1, "NaN", 3]}),
        )
        .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].loc,
            vec![json!("body"), json!("historical_prices"), json!(1)]
        );
        assert_eq!(errors[0].kind, "float_type");
    }

    #[test]
    fn days_ahead_defaults_to_seven_and_must_be_an_integer() {
        let ok =
            PredictRequest::from_json(&json!({"symbol": "x", "historical_prices": []})).unwrap();
        assert_eq!(ok.days_ahead, 7);
        let err = PredictRequest::from_json(
            &json!({"symbol": "x", "historical_prices": [], "days_ahead": 1.5}),
        )
        .unwrap_err();
        assert_eq!(err[0].loc, vec![json!("body"), json!("days_ahead")]);
    }

    #[test]
    fn a_non_object_body_is_one_error() {
        let errors = RiskRequest::from_json(&json!([1, 2])).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].kind, "model_attributes_type");
    }
}
