//! Answers that several routes document alike, each once, for their `#[utoipa::path]`
//! `responses(...)` lists. A schema of the document only: the handlers answer [`ApiError`]s
//! (and [`ReadinessReport`]s), never these enums.
//!
//! [`ApiError`]: crate::http::error::ApiError

use utoipa::IntoResponses;

use super::probes::ReadinessReport;
use crate::http::error::ErrorBody;

/// 413 for a body over `BODY_LIMIT_BYTES`.
#[derive(IntoResponses)]
pub enum TooLarge {
    #[response(status = 413, description = "Body larger than the limit")]
    Body(ErrorBody),
}

/// 422 for fields that do not validate.
#[derive(IntoResponses)]
pub enum InvalidFields {
    #[response(status = 422, description = "Missing, mistyped or invalid field")]
    Fields(ErrorBody),
}

/// 401 and 403 of the routes that need a key when `API_KEYS` is set.
#[derive(IntoResponses)]
pub enum KeyErrors {
    #[response(
        status = 401,
        description = "Needs `Authorization: Bearer <key>` when API_KEYS is set"
    )]
    Missing(ErrorBody),
    #[response(status = 403, description = "A key that is not in API_KEYS")]
    Wrong(ErrorBody),
}

/// 503 of the routes that may train.
#[derive(IntoResponses)]
pub enum QueueFull {
    #[response(
        status = 503,
        description = "Training queue full; see Retry-After",
        headers(("Retry-After" = u64))
    )]
    Training(ErrorBody),
}

/// 422 of the routes that train: fields, or a series no finite model comes from.
#[derive(IntoResponses)]
pub enum Untrainable {
    #[response(
        status = 422,
        description = "Missing, mistyped or invalid field, or a series that cannot give a finite model"
    )]
    Fields(ErrorBody),
}

/// The errors of a batch route as a whole (an item's own error is one of its results).
#[derive(IntoResponses)]
pub enum BatchErrors {
    #[response(status = 400, description = "A body that is not JSON")]
    NotJson(ErrorBody),
    #[response(
        status = 413,
        description = "Body larger than the limit, or more items than MAX_BATCH_SIZE"
    )]
    TooLarge(ErrorBody),
    #[response(status = 422, description = "Missing, mistyped or invalid field")]
    Fields(ErrorBody),
}

/// The answers of a readiness probe.
#[derive(IntoResponses)]
pub enum ReadinessAnswers {
    #[response(status = 200, description = "Ready for traffic")]
    Ready(ReadinessReport),
    #[response(status = 503, description = "Starting, warming up or shutting down")]
    NotReady(ReadinessReport),
}
