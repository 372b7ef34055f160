//! `GET /openapi.json` (hand-written OpenAPI 3.1 of every endpoint and schema) and `GET /docs`,
//! a self-contained page that renders it: inline HTML and JavaScript, no CDN, so it works on an
//! air-gapped host.

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(serve_openapi))
        .route("/docs", get(serve_docs))
}

async fn serve_openapi(State(state): State<AppState>) -> Json<Value> {
    Json(openapi(
        state.limits.max_days_ahead,
        state.limits.max_prices,
    ))
}

async fn serve_docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}})
}

fn validation_response() -> Value {
    json!({"description": "Missing, mistyped or invalid field (FastAPI shape)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ValidationError"}}}})
}

fn ok(schema: &str, description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn symbol_param() -> Value {
    json!({"name": "symbol", "in": "path", "required": true, "description": "1-32 characters of A-Z a-z 0-9 _ -; case-insensitive",
           "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}})
}

/// The OpenAPI 3.1 document of the API with these limits.
pub fn openapi(max_days_ahead: usize, max_prices: usize) -> Value {
    let prices = json!({"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}, "maxItems": max_prices,
                        "description": "Prices, oldest first; each finite and > 0"});
    let symbol = json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$", "description": "Case-insensitive; answered upper-case"});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Coinsphere ML",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Per-symbol LSTM price forecasts and CB-05 risk scores."
        },
        "paths": {
            "/": {"get": {"summary": "What this service is", "operationId": "describe_service",
                "responses": {"200": ok("ServiceInfo", "Service name, version and endpoints")}}},
            "/health": {"get": {"summary": "Health and training activity", "operationId": "check_health",
                "responses": {"200": ok("Health", "Always healthy while the process serves")}}},
            "/predict": {"post": {
                "summary": "Forecast a price days_ahead steps ahead",
                "description": "Uses the symbol's model from memory or the models directory; without one, trains on the posted prices (at least 200) first.",
                "operationId": "predict_price",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}}},
                "responses": {
                    "200": ok("PredictResponse", "The forecast"),
                    "400": error_response("Fewer than 60 prices, too many prices, or a body that is not JSON"),
                    "404": error_response("No stored model and fewer than 200 prices to train one"),
                    "413": error_response("Body larger than the limit"),
                    "422": validation_response(),
                    "503": {"description": "Training queue full; see Retry-After", "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}}
                }}},
            "/risk-score": {"post": {
                "summary": "CB-05 risk score of a price history",
                "operationId": "score_risk",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RiskRequest"}}}},
                "responses": {
                    "200": ok("RiskResponse", "The score"),
                    "400": error_response("Fewer than 30 prices, too many prices, or a body that is not JSON"),
                    "413": error_response("Body larger than the limit"),
                    "422": validation_response()
                }}},
            "/models/{symbol}": {
                "get": {"summary": "Whether the symbol's model is in memory", "operationId": "describe_model",
                    "parameters": [symbol_param()],
                    "responses": {"200": ok("ModelStatus", "Loaded or not"), "422": validation_response()}},
                "delete": {"summary": "Unload the symbol's model; purge=true also deletes the stored model", "operationId": "unload_model",
                    "parameters": [symbol_param(), {"name": "purge", "in": "query", "required": false, "schema": {"type": "boolean", "default": false}}],
                    "responses": {"200": ok("Unloaded", "Unloaded"), "404": error_response("Model not loaded (nor stored, with purge)"), "422": validation_response()}}
            },
            "/openapi.json": {"get": {"summary": "This document", "operationId": "serve_openapi", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/docs": {"get": {"summary": "Human-readable documentation", "operationId": "serve_docs", "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}}}}
        },
        "components": {"schemas": {
            "PredictRequest": {"type": "object", "required": ["symbol", "historical_prices"], "properties": {
                "symbol": symbol,
                "historical_prices": prices,
                "days_ahead": {"type": "integer", "minimum": 1, "maximum": max_days_ahead, "default": 7}}},
            "PredictResponse": {"type": "object", "required": ["symbol", "current_price", "predicted_price", "prediction_change", "prediction_change_percent", "confidence", "days_ahead", "timestamp"], "properties": {
                "symbol": {"type": "string"},
                "current_price": {"type": "number", "description": "The last price sent"},
                "predicted_price": {"type": "number", "description": "The forecast days_ahead steps after the last price"},
                "prediction_change": {"type": "number", "description": "predicted_price - current_price"},
                "prediction_change_percent": {"type": "number", "description": "prediction_change / current_price * 100"},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1, "description": "1 - the model's validation MAPE at this horizon, clamped to [0, 1]"},
                "days_ahead": {"type": "integer"},
                "timestamp": {"type": "string", "format": "date-time"}}},
            "RiskRequest": {"type": "object", "required": ["symbol", "historical_prices"], "properties": {
                "symbol": symbol, "historical_prices": prices}},
            "RiskResponse": {"type": "object", "required": ["symbol", "risk_score", "risk_level", "volatility", "timestamp"], "properties": {
                "symbol": {"type": "string"},
                "risk_score": {"type": "integer", "minimum": 0, "maximum": 100},
                "risk_level": {"type": "string", "enum": ["conservative", "moderate", "degen"]},
                "volatility": {"type": "number", "description": "std / mean of the last 30 prices"},
                "timestamp": {"type": "string", "format": "date-time"}}},
            "ModelStatus": {"type": "object", "required": ["symbol", "status", "model_version"], "properties": {
                "symbol": {"type": "string"}, "status": {"type": "string", "enum": ["loaded", "not_loaded"]},
                "model_version": {"type": "string"}, "sequence_length": {"type": "integer"}, "device": {"type": "string"}}},
            "Unloaded": {"type": "object", "required": ["message"], "properties": {
                "message": {"type": "string"}, "purged": {"type": "boolean", "description": "Present with ?purge: whether a stored model was deleted"}}},
            "ServiceInfo": {"type": "object", "required": ["service", "status", "version", "endpoints"], "properties": {
                "service": {"type": "string"}, "status": {"type": "string"}, "version": {"type": "string"},
                "endpoints": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "Health": {"type": "object", "required": ["status", "pytorch_available", "device", "models_loaded"], "properties": {
                "status": {"type": "string", "enum": ["healthy"]}, "pytorch_available": {"type": "boolean"},
                "device": {"type": "string", "enum": ["cpu", "cuda"]}, "models_loaded": {"type": "integer"},
                "version": {"type": "string"}, "model_version": {"type": "string"}, "uptime_seconds": {"type": "number"},
                "training": {"type": "object", "properties": {
                    "trainings_total": {"type": "integer"}, "trainings_running": {"type": "integer"},
                    "trainings_waiting": {"type": "integer"}, "trainings_failed_total": {"type": "integer"},
                    "overloaded_total": {"type": "integer"}}},
                "models_loaded_from_store_total": {"type": "integer"}, "cache_hits_total": {"type": "integer"}}},
            "ErrorDetail": {"type": "object", "required": ["detail"], "properties": {
                "detail": {"type": "string"}, "code": {"type": "string", "description": "Stable machine-readable error code"}}},
            "ValidationError": {"type": "object", "required": ["detail"], "properties": {
                "detail": {"type": "array", "items": {"type": "object", "required": ["loc", "msg", "type"], "properties": {
                    "loc": {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"}, "type": {"type": "string"}}}},
                "code": {"type": "string"}}}
        }}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_reference_resolves() {
        let doc = openapi(90, 100);
        let text = doc.to_string();
        for piece in text.split("#/components/schemas/").skip(1) {
            let name: String = piece.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(
                doc["components"]["schemas"][&name].is_object(),
                "{name} is missing"
            );
        }
    }
}
