//! How an [`ApiError`] is sent: its status, `{"detail": ..., "code": ...}`, and the
//! `Retry-After` or `WWW-Authenticate` header it calls for.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

pub use crate::contract::error::{ApiError, BatchItemError, ErrorBody, FieldError};
use crate::registry::TrainingRefusal;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause) => tracing::error!(%cause, "internal error"),
            Self::DatabaseUnavailable { cause } => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        let (status, code, detail) = self.parts();
        let mut response = (status, axum::Json(ErrorBody { code, detail })).into_response();
        match self {
            Self::Overloaded { retry_after_secs } | Self::BacktestBusy { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            Self::DatabaseUnavailable { .. } => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(crate::contract::error::DATABASE_RETRY_SECS),
                );
            }
            Self::Unauthorized
            | Self::TrainingRefused {
                refusal: TrainingRefusal::MissingKey,
                ..
            } => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
