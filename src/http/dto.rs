//! Request and response bodies of the contract (SPEC section 1), snake_case JSON.

use serde::Serialize;
use serde_json::Value;

use super::error::FieldError;
use super::extract::{Fields, FromJson};
use super::fastjson::{self, Field};
use crate::domain::Symbol;
use crate::forecast::intervals::{banded_path, IntervalForecast, PathPoint, DEFAULT_LEVEL};
use crate::registry::Forecast;
use crate::risk::measures::RiskMeasures;
use crate::risk::RiskScore;

/// Default `days_ahead` of `/predict`.
pub const DEFAULT_DAYS_AHEAD: i64 = 7;
/// Default `model` of `/predict`: the LSTM, as the old service had only that one.
pub const DEFAULT_MODEL: &str = "lstm";

/// `POST /predict` body, typed but not yet validated.
///
/// Well-formed bodies take a fast path ([`FromJson::from_json_fast`]): the [`fastjson`] scanner
/// for the usual shape, else `Deserialize`. Absent fields take their defaults; `null`, a
/// mistyped value or a repeated field fails both, and such a body takes `from_json`, which
/// reports the error or takes the last repeat.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct PredictRequest {
    /// Raw symbol.
    pub symbol: String,
    /// Prices, oldest first.
    pub historical_prices: Vec<f64>,
    /// Steps ahead; 7 when absent.
    #[serde(default = "default_days_ahead")]
    pub days_ahead: i64,
    /// Raw model name; `"lstm"` when absent.
    #[serde(default = "default_model")]
    pub model: String,
    /// Raw interval level; [`DEFAULT_LEVEL`] when absent.
    #[serde(default = "default_level")]
    pub interval_level: f64,
}

fn default_days_ahead() -> i64 {
    DEFAULT_DAYS_AHEAD
}

fn default_model() -> String {
    DEFAULT_MODEL.to_owned()
}

fn default_level() -> f64 {
    DEFAULT_LEVEL
}

impl FromJson for PredictRequest {
    fn from_json_fast(bytes: &[u8]) -> Option<Self> {
        Self::scan(bytes).or_else(|| serde_json::from_slice(bytes).ok())
    }

    fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        let mut f = Fields::new(value);
        let symbol = f.string("symbol");
        let historical_prices = f.number_list("historical_prices");
        let days_ahead = f.integer_or("days_ahead", DEFAULT_DAYS_AHEAD);
        let model = f.string_or("model", DEFAULT_MODEL);
        let interval_level = f.number_or("interval_level", DEFAULT_LEVEL);
        f.finish()?;
        Ok(Self {
            symbol: symbol.expect("checked by finish"),
            historical_prices: historical_prices.expect("checked by finish"),
            days_ahead: days_ahead.expect("checked by finish"),
            model: model.expect("checked by finish"),
            interval_level: interval_level.expect("checked by finish"),
        })
    }
}

impl PredictRequest {
    /// The body through [`fastjson`]: the usual shape, each field at most once.
    fn scan(bytes: &[u8]) -> Option<Self> {
        let (mut days, mut model, mut level) = (None, None, None);
        let (symbol, historical_prices) = scan_prices(bytes, |key, value| match (key, value) {
            ("days_ahead", Field::Number(n)) => Some(days.replace(n.integer?).is_none()),
            ("model", Field::Str(s)) => Some(model.replace(s.to_owned()).is_none()),
            ("interval_level", Field::Number(n)) => Some(level.replace(n.value).is_none()),
            _ => None,
        })?;
        Some(Self {
            symbol,
            historical_prices,
            days_ahead: days.unwrap_or(DEFAULT_DAYS_AHEAD),
            model: model.unwrap_or_else(default_model),
            interval_level: level.unwrap_or(DEFAULT_LEVEL),
        })
    }
}

/// `symbol` and `historical_prices` of a body read through [`fastjson`]; every other field goes
/// to `other`, which answers `Some(true)` when it took the field for the first time. `None`
/// when a field is repeated, unknown or mistyped, or one of the two is missing.
fn scan_prices<'a>(
    bytes: &'a [u8],
    mut other: impl FnMut(&'a str, Field<'a>) -> Option<bool>,
) -> Option<(String, Vec<f64>)> {
    let (mut symbol, mut prices) = (None, None);
    fastjson::object(bytes, |key, value| {
        let first = match (key, value) {
            ("symbol", Field::Str(s)) => symbol.replace(s.to_owned()).is_none(),
            ("historical_prices", Field::Numbers(v)) => prices.replace(v).is_none(),
            (key, value) => other(key, value)?,
        };
        first.then_some(())
    })?;
    Some((symbol?, prices?))
}

/// `POST /risk-score` body, typed but not yet validated (`Deserialize`: the fast path, as for
/// [`PredictRequest`]).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct RiskRequest {
    /// Raw symbol.
    pub symbol: String,
    /// Prices, oldest first.
    pub historical_prices: Vec<f64>,
    /// A benchmark's prices (BTC's, say), oldest first, aligned with `historical_prices` at
    /// the end; absent or `null` for none.
    #[serde(default)]
    pub benchmark_prices: Option<Vec<f64>>,
}

impl FromJson for RiskRequest {
    fn from_json_fast(bytes: &[u8]) -> Option<Self> {
        Self::scan(bytes).or_else(|| serde_json::from_slice(bytes).ok())
    }

    fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        let mut f = Fields::new(value);
        let symbol = f.string("symbol");
        let historical_prices = f.number_list("historical_prices");
        // Optional, and `null` is absent (pydantic's `Optional[List[float]] = None`).
        let benchmark_prices = match value.get("benchmark_prices") {
            None | Some(Value::Null) => None,
            Some(_) => Some(f.number_list("benchmark_prices")),
        };
        f.finish()?;
        Ok(Self {
            symbol: symbol.expect("checked by finish"),
            historical_prices: historical_prices.expect("checked by finish"),
            benchmark_prices: benchmark_prices.map(|b| b.expect("checked by finish")),
        })
    }
}

impl RiskRequest {
    /// The body through [`fastjson`]: the usual shape, each field at most once.
    fn scan(bytes: &[u8]) -> Option<Self> {
        let mut benchmark = None;
        let (symbol, historical_prices) = scan_prices(bytes, |key, value| match (key, value) {
            ("benchmark_prices", Field::Numbers(v)) => Some(benchmark.replace(v).is_none()),
            _ => None,
        })?;
        Some(Self {
            symbol,
            historical_prices,
            benchmark_prices: benchmark,
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
    /// Forecast `days_ahead` steps after the last price: the last `forecast[].price`.
    pub predicted_price: f64,
    /// `predicted_price - current_price`.
    pub prediction_change: f64,
    /// `prediction_change / current_price * 100`.
    pub prediction_change_percent: f64,
    /// `1 - out-of-sample MAPE at this horizon`, in [0, 1] (see the README).
    pub confidence: f64,
    /// Steps ahead.
    pub days_ahead: usize,
    /// RFC 3339 UTC.
    pub timestamp: String,
    /// The model asked for and what produced the forecast.
    pub model: ModelInfo,
    /// The interval level of `forecast[].lower` and `upper`, in (0, 1).
    pub level: f64,
    /// Days 1..=`days_ahead`: point forecast and interval.
    pub forecast: Vec<PathPoint>,
}

/// The `model` object of a `/predict` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// The model name the request asked for (`"lstm"`, `"auto"`...).
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

    /// The answer for an LSTM forecast of the registry: the path banded at `level` by the
    /// forecast's calibration ([`crate::forecast::lstm::TrainedLstm::calibration`]).
    /// `version` is the registry's model version.
    pub fn from_lstm(
        symbol: &Symbol,
        forecast: &Forecast,
        level: f64,
        version: &str,
        timestamp: String,
    ) -> Self {
        Self::new(
            symbol,
            forecast.current_price,
            banded_path(&forecast.path, &forecast.calibration, level),
            forecast.confidence,
            level,
            ModelInfo {
                name: "lstm".into(),
                version: version.into(),
                label: forecast.model.label(forecast.path.len()),
            },
            timestamp,
        )
    }

    /// The answer for a statistical model's forecast; `name` is the model asked for.
    pub fn from_intervals(
        symbol: &Symbol,
        current_price: f64,
        name: &str,
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
                version: crate::forecast::STATS_MODEL_VERSION.into(),
                label: forecast.model,
            },
            timestamp,
        )
    }
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

    /// Bodies as the benchmark and the old service's clients write them (Python's `json.dumps`
    /// of real closes), plus every optional field and odd spacing.
    fn bodies() -> Vec<String> {
        // Python's `repr` of a float, as `json.dumps` writes it, is Rust's `{:?}`.
        let closes: Vec<String> = crate::prices::repository_closes("BTC")
            .iter()
            .map(|p| format!("{p:?}"))
            .collect();
        let mut out = Vec::new();
        for (k, w) in closes.chunks(365).enumerate() {
            let list = w.join(", ");
            out.push(format!(
                r#"{{"symbol": "S{k}", "historical_prices": [{list}]}}"#
            ));
            out.push(format!(
                "{{\n \"days_ahead\": {k},\"historical_prices\":[{}] ,\"symbol\":\"x\",\
                 \"model\": \"theta\", \"interval_level\": 0.{k}5 }}",
                w.join(",")
            ));
        }
        out
    }

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

    #[test]
    fn the_scanner_reads_bodies_exactly_as_serde_json_does() {
        for body in bodies() {
            let scanned = PredictRequest::scan(body.as_bytes()).expect("scans");
            let serde: PredictRequest = serde_json::from_str(&body).unwrap();
            assert_eq!(scanned, serde);
            for (a, b) in scanned
                .historical_prices
                .iter()
                .zip(&serde.historical_prices)
            {
                assert_eq!(a.to_bits(), b.to_bits());
            }
            if !body.contains("days_ahead") {
                let risk: RiskRequest = serde_json::from_str(&body).unwrap();
                assert_eq!(RiskRequest::scan(body.as_bytes()), Some(risk));
            }
        }
    }

    #[test]
    fn the_scanner_leaves_repeats_unknowns_and_mistypes_to_serde_json() {
        for body in [
            r#"{"symbol": "A", "symbol": "B", "historical_prices": [1]}"#,
            r#"{"symbol": "A", "historical_prices": [1], "extra": 1}"#,
            r#"{"symbol": "A", "historical_prices": [1], "days_ahead": 7.0}"#,
            r#"{"symbol": 1, "historical_prices": [1]}"#,
            r#"{"historical_prices": [1]}"#,
        ] {
            assert_eq!(PredictRequest::scan(body.as_bytes()), None, "{body}");
        }
        assert_eq!(
            RiskRequest::scan(br#"{"symbol": "A", "historical_prices": [1], "days_ahead": 7}"#),
            None
        );
    }

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
    fn model_and_level_default_to_the_lstm_at_eighty_percent() {
        let ok =
            PredictRequest::from_json(&json!({"symbol": "x", "historical_prices": []})).unwrap();
        assert_eq!(ok.model, "lstm");
        assert_eq!(ok.interval_level, 0.8);
        let ok = PredictRequest::from_json(
            &json!({"symbol": "x", "historical_prices": [], "model": "auto", "interval_level": 0.95}),
        )
        .unwrap();
        assert_eq!((ok.model.as_str(), ok.interval_level), ("auto", 0.95));
    }

    #[test]
    fn mistyped_model_and_level_are_reported_with_the_other_fields() {
        let errors = PredictRequest::from_json(
            &json!({"historical_prices": [], "model": 3, "interval_level": "x"}),
        )
        .unwrap_err();
        let got: Vec<(Value, &str)> = errors
            .iter()
            .map(|e| (json!(e.loc), e.kind.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (json!(["body", "symbol"]), "missing"),
                (json!(["body", "model"]), "string_type"),
                (json!(["body", "interval_level"]), "float_type"),
            ]
        );
        let null = PredictRequest::from_json(
            &json!({"symbol": "x", "historical_prices": [], "model": null}),
        )
        .unwrap_err();
        assert_eq!(null[0].kind, "string_type");
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

    #[test]
    fn the_fast_path_answers_what_the_value_path_answers_or_steps_aside() {
        let bodies = [
            r#"{"symbol": "btc", "historical_prices": [1, 2.5, 3e2]}"#,
            r#"{"symbol": "btc", "historical_prices": [1], "days_ahead": 30, "model": "auto", "interval_level": 0.95, "extra": [1]}"#,
            r#"{"symbol": "btc", "historical_prices": [1], "days_ahead": null}"#,
            r#"{"symbol": "btc", "historical_prices": [1], "days_ahead": 7.0}"#,
            r#"{"symbol": "btc", "historical_prices": [1], "days_ahead": 1, "days_ahead": 2}"#,
            r#"{"symbol": "btc", "historical_prices": [1], "model": null}"#,
            r#"{"symbol": "btc", "historical_prices": [1], "interval_level": "0.9"}"#,
            r#"{"symbol": "btc", "historical_prices": [1, "2"]}"#,
            r#"{"symbol": 3, "historical_prices": [1]}"#,
            r#"{"historical_prices": [1]}"#,
            r#"[1, 2]"#,
        ];
        let mut fast_answers = 0;
        for body in bodies {
            let value: Value = serde_json::from_str(body).unwrap();
            let slow = PredictRequest::from_json(&value);
            if let Some(fast) = PredictRequest::from_json_fast(body.as_bytes()) {
                fast_answers += 1;
                assert_eq!(Ok(fast), slow.map_err(|_| ()), "{body}");
            }
            if let Some(fast) = RiskRequest::from_json_fast(body.as_bytes()) {
                assert_eq!(
                    Ok(fast),
                    RiskRequest::from_json(&value).map_err(|_| ()),
                    "{body}"
                );
            }
        }
        // Only the two well-formed predict bodies take the fast path.
        assert_eq!(fast_answers, 2);
    }

    #[test]
    fn benchmark_prices_are_optional_and_null_is_absent() {
        for body in [
            r#"{"symbol": "a", "historical_prices": [1, 2], "benchmark_prices": [3, 4.5]}"#,
            r#"{"symbol": "a", "historical_prices": [1, 2], "benchmark_prices": null}"#,
            r#"{"symbol": "a", "historical_prices": [1, 2]}"#,
        ] {
            let value: Value = serde_json::from_str(body).unwrap();
            let slow = RiskRequest::from_json(&value).unwrap();
            assert_eq!(
                RiskRequest::from_json_fast(body.as_bytes()),
                Some(slow.clone())
            );
            let expected = body.contains("[3, 4.5]").then(|| vec![3.0, 4.5]);
            assert_eq!(slow.benchmark_prices, expected, "{body}");
        }
        assert!(RiskRequest::scan(
            br#"{"symbol": "a", "historical_prices": [1], "benchmark_prices": [2]}"#
        )
        .is_some());
        let errors = RiskRequest::from_json(
            &json!({"symbol": "a", "historical_prices": [1], "benchmark_prices": [1, "x"]}),
        )
        .unwrap_err();
        assert_eq!(
            errors[0].loc,
            vec![json!("body"), json!("benchmark_prices"), json!(1)]
        );
        let errors = RiskRequest::from_json(
            &json!({"symbol": "a", "historical_prices": [1], "benchmark_prices": "x"}),
        )
        .unwrap_err();
        assert_eq!(errors[0].kind, "list_type");
    }

    #[test]
    fn a_non_object_body_is_one_error() {
        let errors = RiskRequest::from_json(&json!([1, 2])).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].kind, "model_attributes_type");
    }
}
