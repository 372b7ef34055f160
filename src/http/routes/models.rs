//! `GET /models` (a listing), `GET /models/{symbol}` and `DELETE /models/{symbol}[?purge=true]`.

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use crate::http::error::{ApiError, FieldError};
use crate::http::middleware::auth::check_key;
use crate::http::middleware::logging::RequestSymbol;
use crate::http::{path_symbol, AppState};

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/models", get(list_models))
        .route("/models/{symbol}", get(describe_model).delete(unload_model))
}

/// Every model of this model version, in memory (`"loaded"`) or only in the store
/// (`"stored"`), by symbol.
async fn list_models(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let listing = state.registry.listing().await?;
    let version = state.registry.version().as_str();
    let models: Vec<Value> = listing
        .iter()
        .map(|(symbol, loaded)| {
            json!({
                "symbol": symbol.as_str(),
                "status": if *loaded { "loaded" } else { "stored" },
                "model_version": version,
            })
        })
        .collect();
    Ok(Json(json!({"count": models.len(), "models": models})))
}

async fn describe_model(
    State(state): State<AppState>,
    Extension(logged): Extension<RequestSymbol>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let symbol = path_symbol(path, &logged)?;
    let version = state.registry.version().as_str();
    Ok(Json(match state.registry.loaded(&symbol) {
        Some(model) => json!({
            "symbol": symbol.as_str(),
            "status": "loaded",
            "model_version": version,
            "sequence_length": model.config().sequence_length,
            "device": "cpu",
        }),
        None => json!({
            "symbol": symbol.as_str(),
            "status": "not_loaded",
            "model_version": version,
        }),
    }))
}

/// Unloads from memory; with `?purge=true` also deletes the stored artefact so the next
/// request retrains. 404 only when there was nothing to remove.
async fn unload_model(
    State(state): State<AppState>,
    Extension(logged): Extension<RequestSymbol>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let symbol = path_symbol(path, &logged)?;
    let purge_loc = vec![json!("query"), json!("purge")];
    let query = query.map_err(|e| {
        ApiError::Validation(vec![FieldError::new(
            purge_loc.clone(),
            e.body_text(),
            "query_error",
        )])
    })?;
    let purge = match query
        .get("purge")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("false" | "0" | "no") => false,
        Some("true" | "1" | "yes") => true,
        Some(_) => {
            return Err(ApiError::Validation(vec![FieldError::new(
                purge_loc,
                "Input should be a valid boolean",
                "bool_parsing",
            )]))
        }
    };
    // Decided on the decoded, typed value the handler acts on (`?%70urge=true` is a purge).
    if purge {
        check_key(&state, &headers)?;
    }
    let unloaded = state.registry.unload(&symbol);
    let purged = if purge {
        state.registry.purge(&symbol).await?
    } else {
        false
    };
    if !unloaded && !purged {
        return Err(ApiError::ModelNotLoaded { symbol });
    }
    let mut body = json!({"message": format!("Model {symbol} unloaded")});
    if purge {
        body["purged"] = json!(purged);
    }
    Ok(Json(body))
}
