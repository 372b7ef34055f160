//! Access control: when `API_KEYS` is set, the routes that change models (train, update, and
//! `DELETE /models/{symbol}?purge=true`) need `Authorization: Bearer <key>`: 401 without one,
//! 403 with a wrong one. Reads, predictions and plain unloading stay open; on-demand training
//! from request data follows `TRAINING_MODE` (see [`crate::settings::ops::TrainingMode`]).
//!
//! The decision is taken by the handler, from the same parsed and typed request it acts on
//! ([`RequireKey`] for train and update, [`check_key`] once `purge` is parsed), never from the
//! raw URI: a key check that read the raw query string let `?%70urge=true` through while the
//! handler decoded it and purged.
//!
//! Keys are compared by their SHA-256 digests with a constant-time equality, so neither the
//! length nor the content of a key leaks through timing.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

use crate::http::error::ApiError;
use crate::http::AppState;
use crate::registry::{TrainingPermission, TrainingRefusal};
use crate::settings::ops::TrainingMode;

/// What a request's `Authorization` header proves against `API_KEYS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    /// `API_KEYS` is unset: every request is as good as authenticated.
    Open,
    /// A key of `API_KEYS` was sent.
    Valid,
    /// No bearer key was sent.
    Missing,
    /// A bearer key was sent that is not in `API_KEYS`.
    Wrong,
}

impl KeyStatus {
    /// The status of `headers` under the server's keys.
    pub fn of(state: &AppState, headers: &HeaderMap) -> Self {
        let Some(keys) = &state.ops.api_keys else {
            return Self::Open;
        };
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Self::Missing;
        };
        // Every key is compared, so the time does not say which one matched.
        let valid = keys.0.iter().fold(false, |ok, key| {
            constant_time_eq(key.as_bytes(), token.as_bytes()) | ok
        });
        if valid {
            Self::Valid
        } else {
            tracing::warn!("rejected a wrong API key");
            Self::Wrong
        }
    }

    /// `Ok` when the request may change models, else the 401 or 403 to answer.
    ///
    /// # Errors
    /// [`ApiError::Unauthorized`] without a key, [`ApiError::Forbidden`] with a wrong one.
    pub fn require(self) -> Result<(), ApiError> {
        match self {
            Self::Open | Self::Valid => Ok(()),
            Self::Missing => Err(ApiError::Unauthorized),
            Self::Wrong => Err(ApiError::Forbidden),
        }
    }
}

/// Whether a request with `headers` may train a model from its own prices under the server's
/// `TRAINING_MODE`.
pub fn training_permission(state: &AppState, headers: &HeaderMap) -> TrainingPermission {
    match state.ops.training_mode {
        TrainingMode::Open => TrainingPermission::Granted,
        TrainingMode::Off => TrainingPermission::Refused(TrainingRefusal::Disabled),
        TrainingMode::Authenticated => match KeyStatus::of(state, headers) {
            KeyStatus::Valid => TrainingPermission::Granted,
            KeyStatus::Wrong => TrainingPermission::Refused(TrainingRefusal::WrongKey),
            // Start-up refuses `authenticated` without keys; should it happen, nobody trains.
            KeyStatus::Missing | KeyStatus::Open => {
                TrainingPermission::Refused(TrainingRefusal::MissingKey)
            }
        },
    }
}

/// Checks that `headers` carry a valid key when `API_KEYS` is set.
///
/// # Errors
/// As [`KeyStatus::require`].
pub fn check_key(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    KeyStatus::of(state, headers).require()
}

/// Extractor of the handlers that always change models: rejects the request (401/403) before
/// its body is read unless it carries a valid key.
#[derive(Clone, Copy, Debug)]
pub struct RequireKey;

impl FromRequestParts<AppState> for RequireKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check_key(state, &parts.headers).map(|()| Self)
    }
}

/// Compares two byte strings in time independent of where they differ and of their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
