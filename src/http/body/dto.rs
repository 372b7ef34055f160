//! Request bodies of the contract (SPEC section 1), snake_case JSON, and how they are read:
//! the fast scanner for the usual shape, else `serde`. The answers are [`crate::contract`]'s.

use serde_json::Value;

use super::extract::{Fields, FromJson};
use super::fastjson::{self, Field};
use super::schema;
use crate::forecast::intervals::DEFAULT_LEVEL;
use crate::http::error::FieldError;
use crate::http::AppState;

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
#[derive(Clone, Debug, PartialEq, serde::Deserialize, utoipa::ToSchema)]
#[schema(description = "The body of POST /predict")]
pub struct PredictRequest {
    /// Raw symbol.
    #[schema(schema_with = schema::symbol)]
    pub symbol: String,
    /// Prices, oldest first. On a server with a database (`POST /predict` only) they may be
    /// left out: the symbol's stored closes are used.
    #[schema(schema_with = schema::forecast_prices)]
    pub historical_prices: Vec<f64>,
    /// Steps ahead; 7 when absent (at most MAX_DAYS_AHEAD).
    #[serde(default = "default_days_ahead")]
    #[schema(minimum = 1, default = json!(DEFAULT_DAYS_AHEAD))]
    pub days_ahead: i64,
    /// Raw model name; `"lstm"` when absent.
    #[serde(default = "default_model")]
    #[schema(schema_with = schema::requested_model)]
    pub model: String,
    /// Raw interval level; `DEFAULT_LEVEL` when absent.
    #[serde(default = "default_level")]
    #[schema(schema_with = schema::level)]
    pub interval_level: f64,
    /// `POST /predict` without `historical_prices` on a server with a database: the prices
    /// are the symbol's stored closes (`historical_prices` is empty until they are read).
    #[serde(skip)]
    #[schema(ignore)]
    pub prices_from_database: bool,
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
            prices_from_database: false,
        })
    }

    fn from_json_in(value: &Value, state: &AppState) -> Result<Self, Vec<FieldError>> {
        let omitted = value
            .as_object()
            .is_some_and(|o| !o.contains_key("historical_prices"));
        if !(omitted && state.data.is_some()) {
            return Self::from_json(value);
        }
        // With a database the prices may be left out: read every other field as usual.
        let mut with_prices = value.clone();
        with_prices["historical_prices"] = Value::Array(Vec::new());
        let mut request = Self::from_json(&with_prices)?;
        request.prices_from_database = true;
        Ok(request)
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
            prices_from_database: false,
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
#[derive(Clone, Debug, PartialEq, serde::Deserialize, utoipa::ToSchema)]
#[schema(description = "The body of POST /risk-score")]
pub struct RiskRequest {
    /// Raw symbol.
    #[schema(schema_with = schema::symbol)]
    pub symbol: String,
    /// Prices, oldest first.
    #[schema(schema_with = schema::risk_prices)]
    pub historical_prices: Vec<f64>,
    /// A benchmark's prices (BTC's, say), oldest first, aligned with `historical_prices` at
    /// the end; absent or `null` for none.
    #[serde(default)]
    #[schema(schema_with = schema::benchmark_prices)]
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
        let got = crate::contract::error::locs_and_kinds(&errors);
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
