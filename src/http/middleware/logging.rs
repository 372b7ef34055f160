//! One log line per request: method, path, status, symbol (when the handler knew it) and
//! duration.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::domain::Symbol;

/// Where a handler notes the request's symbol for the log line.
#[derive(Clone, Debug, Default)]
pub struct RequestSymbol(Arc<OnceLock<String>>);

impl RequestSymbol {
    /// Notes the symbol (the first call wins).
    pub fn set(&self, symbol: &Symbol) {
        let _ = self.0.set(symbol.to_string());
    }
}

/// Middleware writing the request log line.
pub async fn log_requests(mut request: Request, next: Next) -> Response {
    let symbol = RequestSymbol::default();
    request.extensions_mut().insert(symbol.clone());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        target: "coinsphere_ml::http",
        %method,
        path,
        status = response.status().as_u16(),
        symbol = symbol.0.get().map_or("-", String::as_str),
        duration_ms,
        "request"
    );
    response
}
