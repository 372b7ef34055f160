//! Access control: when `API_KEYS` is set, the routes that change models (train, update, and
//! `DELETE /models/{symbol}?purge=true`) need `Authorization: Bearer <key>`: 401 without one,
//! 403 with a wrong one. Reads, predictions and plain unloading stay open.
//!
//! Keys are compared by their SHA-256 digests with a constant-time equality, so neither the
//! length nor the content of a key leaks through timing.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::ops::OpsError;
use super::AppState;

/// Whether a request needs a key: `method` on the route template `route` with `query`.
pub fn is_protected(method: &Method, route: &str, query: Option<&str>) -> bool {
    match (method, route) {
        (&Method::POST, "/models/{symbol}/train" | "/models/{symbol}/update") => true,
        (&Method::DELETE, "/models/{symbol}") => query.is_some_and(|q| {
            q.split('&').any(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                k == "purge" && !matches!(v.to_ascii_lowercase().as_str(), "false" | "0" | "no")
            })
        }),
        _ => false,
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

/// Middleware enforcing `API_KEYS` on the protected routes.
pub async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(keys) = &state.ops.api_keys else {
        return next.run(request).await;
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let protected = route
        .as_deref()
        .is_some_and(|r| is_protected(request.method(), r, request.uri().query()));
    if !protected {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return OpsError::Unauthorized.into_response();
    };
    // Every key is compared, so the time does not say which one matched.
    let valid = keys.0.iter().fold(false, |ok, key| {
        constant_time_eq(key.as_bytes(), token.as_bytes()) | ok
    });
    if !valid {
        tracing::warn!(
            route = route.as_deref().unwrap_or("-"),
            "rejected a wrong API key"
        );
        return OpsError::Forbidden.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_train_update_and_purge_are_protected() {
        assert!(is_protected(&Method::POST, "/models/{symbol}/train", None));
        assert!(is_protected(&Method::POST, "/models/{symbol}/update", None));
        assert!(is_protected(
            &Method::DELETE,
            "/models/{symbol}",
            Some("purge=true")
        ));
        assert!(is_protected(
            &Method::DELETE,
            "/models/{symbol}",
            Some("a=1&purge=TRUE")
        ));
        assert!(!is_protected(
            &Method::DELETE,
            "/models/{symbol}",
            Some("purge=false")
        ));
        assert!(!is_protected(&Method::DELETE, "/models/{symbol}", None));
        assert!(!is_protected(&Method::POST, "/predict", None));
        assert!(!is_protected(&Method::GET, "/models/{symbol}", None));
    }

    #[test]
    fn keys_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
