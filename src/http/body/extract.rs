//! Request bodies: [`ApiJson`] reads a body within the configured limit, parses it as JSON
//! (400 if it is not JSON) and hands it to the DTO's [`FromJson`], which reports every
//! missing or mistyped field at once, FastAPI-style (422).
//!
//! Any content type is accepted: the old service's clients sometimes omit the header, and a body
//! that parses as JSON is unambiguous.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde_json::{json, Map, Value};

use crate::http::error::{ApiError, FieldError};
use crate::http::AppState;

/// At most this many errors are reported for one list field.
const MAX_ERRORS_PER_LIST: usize = 10;

/// A DTO that can be read from a JSON value, collecting every field error.
pub trait FromJson: Sized {
    /// Reads `value`.
    ///
    /// # Errors
    /// The field errors, FastAPI-shaped.
    fn from_json(value: &Value) -> Result<Self, Vec<FieldError>>;

    /// Reads a well-formed body straight into `Self`, without building a [`Value`] first;
    /// `None` for anything else, which then takes [`FromJson::from_json`]'s path and gets its
    /// exact errors. Where it answers, it must answer what `from_json` would.
    ///
    /// The hot endpoints implement it: a `Value` of 365 prices costs one allocation per
    /// number, and building and dropping it was a quarter of `/risk-score`'s CPU (perf).
    fn from_json_fast(bytes: &[u8]) -> Option<Self> {
        let _ = bytes;
        None
    }

    /// [`FromJson::from_json`] on a server with `state`: where the server's configuration
    /// allows a field to be left out (a database to read prices from), the DTO says so here.
    ///
    /// # Errors
    /// The field errors, FastAPI-shaped.
    fn from_json_in(value: &Value, state: &AppState) -> Result<Self, Vec<FieldError>> {
        let _ = state;
        Self::from_json(value)
    }
}

/// A JSON body read into `T`.
pub struct ApiJson<T>(pub T);

impl<T: FromJson> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        // The whole body must arrive within its time limit: a body dribbled a byte at a time
        // would otherwise hold the connection for the route's whole time limit.
        let read = Bytes::from_request(req, state);
        let Ok(read) = tokio::time::timeout(state.limits.body_read_timeout, read).await else {
            return Err(ApiError::BodyTimeout {
                secs: state.limits.body_read_timeout.as_secs(),
            });
        };
        let bytes = read.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: state.limits.body_limit_bytes,
                }
            } else {
                ApiError::MalformedJson(FieldError::new(
                    vec![json!("body")],
                    format!("Could not read the body: {}", rejection.body_text()),
                    "body_read_error",
                ))
            }
        })?;
        if let Some(fast) = T::from_json_fast(&bytes) {
            return Ok(ApiJson(fast));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::MalformedJson(FieldError::new(
                vec![json!("body"), json!(e.column())],
                format!("JSON decode error: {e}"),
                "json_invalid",
            ))
        })?;
        T::from_json_in(&value, state)
            .map(ApiJson)
            .map_err(ApiError::Validation)
    }
}

/// `v` as an `i64` the way pydantic reads an `int` field: integers, and floats with no
/// fractional part (`7.0`, which the old service accepted as `days_ahead`).
fn as_integer(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        let f = v.as_f64()?;
        // 2^63 itself is not an i64; every float below it with no fraction is.
        (f.fract() == 0.0 && f.abs() < 9_223_372_036_854_775_808.0).then_some(f as i64)
    })
}

/// pydantic's message and kind for a value that is not an `i64`.
fn integer_error(v: &Value) -> (&'static str, &'static str) {
    match v {
        Value::Number(_) if v.as_u64().is_some() => (
            "Input should be a valid integer, unable to parse number as an integer",
            "int_parsing",
        ),
        Value::Number(_) => (
            "Input should be a valid integer, got a number with a fractional part",
            "int_from_float",
        ),
        _ => ("Input should be a valid integer", "int_type"),
    }
}

/// Reads the fields of a JSON object body, remembering every error.
pub struct Fields<'a> {
    object: Option<&'a Map<String, Value>>,
    errors: Vec<FieldError>,
}

fn loc(field: &str) -> Vec<Value> {
    vec![json!("body"), json!(field)]
}

impl<'a> Fields<'a> {
    /// Starts reading `value`, which must be an object.
    pub fn new(value: &'a Value) -> Self {
        let object = value.as_object();
        let errors = if object.is_none() {
            vec![FieldError::new(
                vec![json!("body")],
                "Input should be a valid dictionary or object to extract fields from",
                "model_attributes_type",
            )]
        } else {
            Vec::new()
        };
        Self { object, errors }
    }

    fn get(&mut self, field: &str) -> Option<&'a Value> {
        let object = self.object?;
        let value = object.get(field);
        if value.is_none() {
            self.errors
                .push(FieldError::new(loc(field), "Field required", "missing"));
        }
        value
    }

    /// A required string.
    pub fn string(&mut self, field: &str) -> Option<String> {
        match self.get(field)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.errors.push(FieldError::new(
                    loc(field),
                    "Input should be a valid string",
                    "string_type",
                ));
                None
            }
        }
    }

    /// A required list of numbers; errors name each bad index (the first few of them).
    pub fn number_list(&mut self, field: &str) -> Option<Vec<f64>> {
        let value = self.get(field)?;
        self.list_items(field, value, |item| {
            item.as_f64()
                .ok_or(("Input should be a valid number", "float_type"))
        })
    }

    /// An integer, `default` when absent.
    pub fn integer_or(&mut self, field: &str, default: i64) -> Option<i64> {
        let object = self.object?;
        match object.get(field) {
            None => Some(default),
            Some(v) => match as_integer(v) {
                Some(n) => Some(n),
                None => {
                    let (msg, kind) = integer_error(v);
                    self.errors.push(FieldError::new(loc(field), msg, kind));
                    None
                }
            },
        }
    }

    /// A string, `default` when absent (`null` is mistyped, as in pydantic).
    pub fn string_or(&mut self, field: &str, default: &str) -> Option<String> {
        let object = self.object?;
        match object.get(field) {
            None => Some(default.to_owned()),
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.errors.push(FieldError::new(
                    loc(field),
                    "Input should be a valid string",
                    "string_type",
                ));
                None
            }
        }
    }

    /// A number, `default` when absent (`null` and strings are mistyped).
    pub fn number_or(&mut self, field: &str, default: f64) -> Option<f64> {
        let object = self.object?;
        match object.get(field) {
            None => Some(default),
            Some(v) => match v.as_f64() {
                Some(x) => Some(x),
                None => {
                    self.errors.push(FieldError::new(
                        loc(field),
                        "Input should be a valid number",
                        "float_type",
                    ));
                    None
                }
            },
        }
    }

    /// A list of strings, `default` when absent; errors name each bad index.
    pub fn string_list_or(&mut self, field: &str, default: &[&str]) -> Option<Vec<String>> {
        self.list_or(field, default, |item| match item {
            Value::String(s) => Ok(s.clone()),
            _ => Err(("Input should be a valid string", "string_type")),
        })
    }

    /// A list of integers, `default` when absent; errors name each bad index.
    pub fn integer_list_or(&mut self, field: &str, default: &[i64]) -> Option<Vec<i64>> {
        self.list_or(field, default, |item| {
            item.as_i64().ok_or_else(|| integer_error(item))
        })
    }

    /// A list read item by item with `read`, `default` when absent.
    fn list_or<T, D>(
        &mut self,
        field: &str,
        default: &[D],
        read: impl Fn(&Value) -> Result<T, (&'static str, &'static str)>,
    ) -> Option<Vec<T>>
    where
        D: Clone + Into<T>,
    {
        let object = self.object?;
        let Some(value) = object.get(field) else {
            return Some(default.iter().cloned().map(Into::into).collect());
        };
        self.list_items(field, value, read)
    }

    /// The items of the list `value` at `field`, each read with `read`; a value that is not a
    /// list is one error, and each bad item one error naming its index (the first
    /// [`MAX_ERRORS_PER_LIST`] of them).
    fn list_items<T>(
        &mut self,
        field: &str,
        value: &Value,
        read: impl Fn(&Value) -> Result<T, (&'static str, &'static str)>,
    ) -> Option<Vec<T>> {
        let Value::Array(items) = value else {
            self.errors.push(FieldError::new(
                loc(field),
                "Input should be a valid list",
                "list_type",
            ));
            return None;
        };
        let mut values = Vec::with_capacity(items.len());
        let mut bad = 0;
        for (i, item) in items.iter().enumerate() {
            match read(item) {
                Ok(v) => values.push(v),
                Err((msg, kind)) => {
                    bad += 1;
                    if bad <= MAX_ERRORS_PER_LIST {
                        self.errors.push(FieldError::new(
                            vec![json!("body"), json!(field), json!(i)],
                            msg,
                            kind,
                        ));
                    }
                }
            }
        }
        (bad == 0).then_some(values)
    }

    /// Records a value error found after typing (a symbol with a slash, a negative price...).
    pub fn value_error(&mut self, loc: Vec<Value>, error: impl std::fmt::Display) {
        self.errors.push(FieldError::new(
            loc,
            format!("Value error, {error}"),
            "value_error",
        ));
    }

    /// The collected errors, if any.
    ///
    /// # Errors
    /// Every error recorded so far.
    pub fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_fields_take_their_default_only_when_absent() {
        let absent = json!({});
        let mut f = Fields::new(&absent);
        assert_eq!(f.string_or("m", "lstm"), Some("lstm".into()));
        assert_eq!(f.number_or("l", 0.8), Some(0.8));
        assert_eq!(
            f.string_list_or("s", &["a", "b"]),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(f.integer_list_or("h", &[1, 7]), Some(vec![1, 7]));
        assert!(f.finish().is_ok());

        let given = json!({"m": "auto", "l": 1, "s": [], "h": [30]});
        let mut f = Fields::new(&given);
        assert_eq!(f.string_or("m", "lstm"), Some("auto".into()));
        assert_eq!(f.number_or("l", 0.8), Some(1.0));
        assert_eq!(f.string_list_or("s", &["a"]), Some(vec![]));
        assert_eq!(f.integer_list_or("h", &[1]), Some(vec![30]));
        assert!(f.finish().is_ok());
    }

    #[test]
    fn mistyped_optional_fields_get_pydantic_kinds() {
        let bad = json!({"m": null, "l": "0.9", "s": "naive", "h": [1, -2, 1.5]});
        let mut f = Fields::new(&bad);
        assert_eq!(f.string_or("m", "lstm"), None);
        assert_eq!(f.number_or("l", 0.8), None);
        assert_eq!(f.string_list_or("s", &[]), None);
        assert_eq!(f.integer_list_or("h", &[]), None);
        let errors = f.finish().unwrap_err();
        let got = crate::contract::error::locs_and_kinds(&errors);
        assert_eq!(
            got,
            vec![
                (json!(["body", "m"]), "string_type"),
                (json!(["body", "l"]), "float_type"),
                (json!(["body", "s"]), "list_type"),
                (json!(["body", "h", 2]), "int_from_float"),
            ]
        );
    }
}
