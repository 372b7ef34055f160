//! `GET /models` (a listing), `GET /models/{symbol}` and `DELETE /models/{symbol}[?purge=true]`.

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::contract::one_of_strings;
use crate::http::body::schema::{PurgeQuery, SymbolPath};
use crate::http::error::{ApiError, ErrorBody, FieldError};
use crate::http::middleware::auth::check_key;
use crate::http::middleware::logging::RequestSymbol;
use crate::http::{path_symbol, AppState};

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_models))
        .routes(routes!(describe_model, unload_model))
}

/// The models of this model version.
#[derive(Serialize, ToSchema)]
pub struct ModelListing {
    /// How many.
    count: usize,
    /// By symbol.
    models: Vec<ListedModel>,
}

/// One model of a [`ModelListing`] (alphabetical, as always sent).
#[derive(Serialize, ToSchema)]
pub struct ListedModel {
    /// MODEL_VERSION.
    model_version: String,
    /// loaded: in memory; stored: in the store only.
    #[schema(schema_with = listed)]
    status: &'static str,
    /// Upper-case symbol.
    symbol: String,
}

fn listed() -> utoipa::openapi::Object {
    one_of_strings(["loaded", "stored"])
}

/// Whether a symbol's model is in memory (alphabetical, as always sent).
#[derive(Serialize, ToSchema)]
pub struct ModelStatus {
    /// `cpu`; present when loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    device: Option<&'static str>,
    /// MODEL_VERSION.
    model_version: String,
    /// Prices the model reads; present when loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = usize, required = false)]
    sequence_length: Option<usize>,
    /// `loaded` or `not_loaded`.
    #[schema(schema_with = loaded)]
    status: &'static str,
    /// Upper-case symbol.
    symbol: String,
}

fn loaded() -> utoipa::openapi::Object {
    one_of_strings(["loaded", "not_loaded"])
}

/// A model unloaded.
#[derive(Serialize, ToSchema)]
pub struct Unloaded {
    /// `Model <symbol> unloaded`.
    message: String,
    /// Present with ?purge: whether a stored model was deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = bool, required = false)]
    purged: Option<bool>,
}

/// Every model of this model version, in memory or stored.
///
/// In memory (`"loaded"`) or only in the store (`"stored"`), by symbol.
#[utoipa::path(get, path = "/models", responses((status = 200, description = "The models, by symbol", body = ModelListing)))]
async fn list_models(State(state): State<AppState>) -> Result<Json<ModelListing>, ApiError> {
    let listing = state.registry.listing().await?;
    let version = state.registry.version().as_str();
    let models: Vec<ListedModel> = listing
        .iter()
        .map(|(symbol, loaded)| ListedModel {
            symbol: symbol.as_str().to_owned(),
            status: if *loaded { "loaded" } else { "stored" },
            model_version: version.to_owned(),
        })
        .collect();
    Ok(Json(ModelListing {
        count: models.len(),
        models,
    }))
}

/// Whether the symbol's model is in memory.
#[utoipa::path(get, path = "/models/{symbol}", params(SymbolPath), responses(
    (status = 200, description = "Loaded or not", body = ModelStatus),
    (status = 422, description = "A symbol that is not one", body = ErrorBody),
))]
async fn describe_model(
    State(state): State<AppState>,
    Extension(logged): Extension<RequestSymbol>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ModelStatus>, ApiError> {
    let symbol = path_symbol(path, &logged)?;
    let sequence_length = state
        .registry
        .loaded(&symbol)
        .map(|model| model.config().sequence_length);
    Ok(Json(ModelStatus {
        device: sequence_length.map(|_| "cpu"),
        model_version: state.registry.version().as_str().to_owned(),
        sequence_length,
        status: if sequence_length.is_some() {
            "loaded"
        } else {
            "not_loaded"
        },
        symbol: symbol.as_str().to_owned(),
    }))
}

/// Unload the symbol's model; purge=true also deletes the stored model.
///
/// Unloads from memory; with `?purge=true` also deletes the stored artefact so the next
/// request retrains. 404 only when there was nothing to remove.
#[utoipa::path(delete, path = "/models/{symbol}", params(SymbolPath, PurgeQuery), responses(
    (status = 200, description = "Unloaded", body = Unloaded),
    (status = 401, description = "purge=true only: needs `Authorization: Bearer <key>` when API_KEYS is set", body = ErrorBody),
    (status = 403, description = "purge=true only: a key that is not in API_KEYS", body = ErrorBody),
    (status = 404, description = "Model not loaded (nor stored, with purge)", body = ErrorBody),
    (status = 422, description = "A symbol that is not one, or a purge that is not a boolean", body = ErrorBody),
))]
async fn unload_model(
    State(state): State<AppState>,
    Extension(logged): Extension<RequestSymbol>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Unloaded>, ApiError> {
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
    Ok(Json(Unloaded {
        message: format!("Model {symbol} unloaded"),
        purged: purge.then_some(purged),
    }))
}
