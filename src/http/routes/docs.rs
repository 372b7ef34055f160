//! `GET /openapi.json` (hand-written OpenAPI 3.1 of every endpoint and schema) and `GET /docs`,
//! a self-contained page that renders it: inline HTML and JavaScript, no CDN, so it works on an
//! air-gapped host. A unit test reads the routers' sources so that a route missing from the
//! document fails the build's tests.

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::backtest::{default_models, MAX_FOLDS, MAX_HORIZONS, MAX_MODELS};
use super::training::MIN_UPDATE_PRICES;
use crate::backtest::BacktestConfig;
use crate::forecast::intervals::DEFAULT_LEVEL;
use crate::forecast::MODEL_NAMES;
use crate::http::AppState;
use crate::registry::MIN_FORECAST_PRICES;
use crate::risk::RISK_WINDOW;

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
    json!({"description": "Missing, mistyped or invalid field (FastAPI shape: `detail` is a list), or a series that cannot give a finite model (`degenerate_series`: `detail` is a sentence)",
           "content": {"application/json": {"schema": {"anyOf": [{"$ref": "#/components/schemas/ValidationError"}, {"$ref": "#/components/schemas/ErrorDetail"}]}}}})
}

fn ok(schema: &str, description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn unavailable(description: &str) -> Value {
    json!({"description": description, "headers": {"Retry-After": {"schema": {"type": "integer"}}},
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}})
}

fn body(schema: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn protected() -> Value {
    json!({"description": "Needs `Authorization: Bearer <key>` when API_KEYS is set"})
}

fn symbol_param() -> Value {
    json!({"name": "symbol", "in": "path", "required": true, "description": "1-32 characters of A-Z a-z 0-9 _ -; case-insensitive",
           "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}})
}

/// The keys of several JSON objects in one object.
fn merge(parts: impl IntoIterator<Item = Value>) -> Value {
    let mut all = serde_json::Map::new();
    for part in parts {
        if let Value::Object(map) = part {
            all.extend(map);
        }
    }
    Value::Object(all)
}

/// The OpenAPI 3.1 document of the API with these limits.
pub fn openapi(max_days_ahead: usize, max_prices: usize) -> Value {
    // Fewer prices than a route needs is a 400 with the contract's text, documented as such.
    let prices_at_least = |min: usize| {
        json!({"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}, "minItems": min, "maxItems": max_prices,
               "description": format!("Prices, oldest first; each finite and > 0; at least {min}")})
    };
    let prices = prices_at_least(MIN_FORECAST_PRICES);
    let symbol = json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$", "description": "Case-insensitive; answered upper-case"});
    let model_name = json!({"type": "string", "enum": MODEL_NAMES, "default": "lstm",
                            "description": "lstm: the symbol's LSTM (trained on demand); any other: a statistical model fitted to the posted prices, no training needed; auto picks the best of them by backtest"});
    let level = json!({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": DEFAULT_LEVEL,
                       "description": "Level of the conformal intervals"});
    let defaults = BacktestConfig::default();
    // Several json! calls: one would exceed the macro recursion limit.
    let core_paths = json!({
            "/": {"get": {"summary": "What this service is", "operationId": "describe_service",
                "responses": {"200": ok("ServiceInfo", "Service name, version and endpoints")}}},
            "/health": {"get": {"summary": "Health and training activity", "operationId": "check_health",
                "responses": {"200": ok("Health", "Always healthy while the process serves")}}},
            "/models": {"get": {"summary": "Every model of this model version, in memory or stored", "operationId": "list_models",
                "responses": {"200": ok("ModelListing", "The models, by symbol")}}},
            "/predict": {"post": {
                "summary": "Forecast a price days_ahead steps ahead, with a path and intervals",
                "description": "With model lstm (the default), uses the symbol's LSTM from memory or the models directory; without one, trains on the posted prices (at least 200) first. Any other model is a statistical model fitted to the posted prices on the spot: it needs no training, so any symbol with at least 60 prices is answered. Every answer carries the path for days 1..=days_ahead with conformal intervals at interval_level.",
                "operationId": "predict_price",
                "parameters": [{"name": "format", "in": "query", "required": false,
                    "description": "json (default) or svg: a picture of the last 180 prices, the forecast path and its band (also chosen by Accept: image/svg+xml)",
                    "schema": {"type": "string", "enum": ["json", "svg"], "default": "json"}}],
                "requestBody": body("PredictRequest"),
                "responses": {
                    "200": {"description": "The forecast (JSON), or its picture with format=svg",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/PredictResponse"}},
                            "image/svg+xml": {"schema": {"type": "string"}}}},
                    "400": error_response("Fewer than 60 prices, too many prices, or a body that is not JSON"),
                    "401": error_response("Model lstm only, TRAINING_MODE=authenticated: no stored model, and no API key to train one"),
                    "403": error_response("Model lstm only, TRAINING_MODE=authenticated: no stored model, and a wrong API key"),
                    "404": error_response("Model lstm only: no stored model and fewer than 200 prices to train one (or TRAINING_MODE=off)"),
                    "408": error_response("The body did not arrive within BODY_READ_TIMEOUT_SECS"),
                    "413": error_response("Body larger than the limit"),
                    "422": validation_response(),
                    "503": unavailable("Training queue full; see Retry-After")
                }}},
            "/predict-batch": {"post": {
                "summary": "Several predict requests in one, answered in order",
                "description": "Each result is what POST /predict would answer for that item, or {symbol, error: {status, detail, code}}; one bad item never fails the batch.",
                "operationId": "predict_batch",
                "requestBody": body("BatchRequest"),
                "responses": {
                    "200": ok("BatchResponse", "One result per item, in order"),
                    "400": error_response("A body that is not JSON"),
                    "413": error_response("Body larger than the limit, or more items than MAX_BATCH_SIZE"),
                    "422": validation_response()
                }}},
            "/backtest": {"post": {
                "summary": "Rolling-origin backtest of forecasting models on a price history",
                "description": "At each of `folds` cutoffs every model is fitted (and its intervals calibrated) on the prices before the cutoff only, then scored on the prices after it. One backtest runs at a time. The answer is what `coinsphere-ml backtest --format json` prints.",
                "operationId": "run_backtest",
                "requestBody": body("BacktestRequest"),
                "responses": {
                    "200": {"description": "One row per model and horizon, in request order", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/BacktestRow"}}}}},
                    "400": error_response("A series too short for one fold (365 prices plus the longest horizon), too many prices, or a body that is not JSON"),
                    "413": error_response("Body larger than the limit"),
                    "422": validation_response(),
                    "503": unavailable("Another backtest is running; see Retry-After"),
                    "504": error_response("The backtest ran past the time limit; it is cancelled")
                }}},
            "/models/{symbol}": {
                "get": {"summary": "Whether the symbol's model is in memory", "operationId": "describe_model",
                    "parameters": [symbol_param()],
                    "responses": {"200": ok("ModelStatus", "Loaded or not"), "422": validation_response()}},
                "delete": {"summary": "Unload the symbol's model; purge=true also deletes the stored model", "operationId": "unload_model",
                    "parameters": [symbol_param(), {"name": "purge", "in": "query", "required": false, "schema": {"type": "boolean", "default": false}}],
                    "responses": {"200": ok("Unloaded", "Unloaded"), "404": error_response("Model not loaded (nor stored, with purge)"), "422": validation_response()}}
            }
    });
    let ops_paths = json!({
            "/models/{symbol}/train": {"post": {
                "summary": "Retrain the symbol's LSTM from scratch on the posted prices",
                "description": "The old model serves until the new one is trained, checked and stored.",
                "operationId": "train_model",
                "parameters": [symbol_param()],
                "requestBody": body("TrainRequest"),
                "security": [{"bearer": []}],
                "responses": {
                    "200": ok("TrainResponse", "Trained and stored"),
                    "400": error_response("Fewer than 200 prices, too many prices, or a body that is not JSON"),
                    "401": protected(), "403": protected(),
                    "413": error_response("Body larger than the limit"),
                    "422": validation_response(),
                    "503": unavailable("Training queue full; see Retry-After")
                }}},
            "/models/{symbol}/update": {"post": {
                "summary": "Fine-tune the symbol's LSTM on newer prices",
                "description": "Continues training the existing model (epochs 1..=50, UPDATE_EPOCHS by default).",
                "operationId": "update_model",
                "parameters": [symbol_param()],
                "requestBody": body("TrainRequest"),
                "security": [{"bearer": []}],
                "responses": {
                    "200": ok("TrainResponse", "Fine-tuned and stored"),
                    "400": error_response("Fewer than 80 prices, too many prices, or a body that is not JSON"),
                    "401": protected(), "403": protected(),
                    "404": error_response("No model to update"),
                    "413": error_response("Body larger than the limit"),
                    "422": validation_response(),
                    "503": unavailable("Training queue full; see Retry-After")
                }}},
            "/health/live": {"get": {"summary": "Liveness probe: the process answers", "operationId": "check_liveness",
                "responses": {"200": ok("Liveness", "Alive")}}},
            "/health/ready": {"get": {"summary": "Readiness probe: start-up and warm-up are done", "operationId": "check_readiness",
                "responses": {"200": ok("Readiness", "Ready for traffic"), "503": ok("Readiness", "Starting, warming up or shutting down")}}},
            "/v2/health/live": {"get": {"summary": "Liveness probe at the KServe / Open Inference Protocol V2 path", "operationId": "check_liveness_v2",
                "responses": {"200": ok("Liveness", "Alive")}}},
            "/v2/health/ready": {"get": {"summary": "Readiness probe at the KServe / Open Inference Protocol V2 path", "operationId": "check_readiness_v2",
                "responses": {"200": ok("Readiness", "Ready for traffic"), "503": ok("Readiness", "Starting, warming up or shutting down")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "serve_metrics",
                "responses": {"200": {"description": "OpenMetrics text format 1.0.0",
                    "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "operationId": "serve_openapi", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/docs": {"get": {"summary": "Human-readable documentation", "operationId": "serve_docs", "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}}}}
    });
    let forecast_schemas = json!({
            "PredictRequest": {"type": "object", "required": ["symbol", "historical_prices"], "properties": {
                "symbol": symbol,
                "historical_prices": prices,
                "days_ahead": {"type": "integer", "minimum": 1, "maximum": max_days_ahead, "default": 7},
                "model": model_name.clone(),
                "interval_level": level.clone()}},
            "PredictResponse": {"type": "object", "required": ["symbol", "current_price", "predicted_price", "prediction_change", "prediction_change_percent", "confidence", "days_ahead", "timestamp", "model", "level", "forecast"], "properties": {
                "symbol": {"type": "string"},
                "current_price": {"type": "number", "description": "The last price sent"},
                "predicted_price": {"type": "number", "description": "The forecast days_ahead steps after the last price: the last forecast[].price"},
                "prediction_change": {"type": "number", "description": "predicted_price - current_price"},
                "prediction_change_percent": {"type": "number", "description": "prediction_change / current_price * 100"},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1, "description": "1 - the model's out-of-sample MAPE at this horizon, clamped to [0, 1]: from the LSTM's validation tail, or from refitting a statistical model at recent cutoffs"},
                "days_ahead": {"type": "integer"},
                "timestamp": {"type": "string", "format": "date-time"},
                "model": {"$ref": "#/components/schemas/ModelInfo"},
                "level": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "description": "The interval level of forecast[].lower and upper"},
                "forecast": {"type": "array", "items": {"$ref": "#/components/schemas/ForecastPoint"}, "description": "Days 1..=days_ahead"}}},
            "ModelInfo": {"type": "object", "required": ["name", "version", "label"], "properties": {
                "name": {"type": "string", "enum": MODEL_NAMES, "description": "The model asked for"},
                "version": {"type": "string", "description": "MODEL_VERSION for lstm, else the statistical models' version"},
                "label": {"type": "string", "description": "What produced the forecast, e.g. auto(theta), ets(AAdN), lstm"}}},
            "ForecastPoint": {"type": "object", "required": ["day", "price", "lower", "upper"], "properties": {
                "day": {"type": "integer", "minimum": 1, "description": "Days after the last price"},
                "price": {"type": "number", "description": "Point forecast"},
                "lower": {"type": "number", "description": "Lower end of the interval (<= price)"},
                "upper": {"type": "number", "description": "Upper end of the interval (>= price)"}}},
            "BatchRequest": {"type": "object", "required": ["requests"], "properties": {
                "requests": {"type": "array", "items": {"$ref": "#/components/schemas/PredictRequest"}, "description": "At most MAX_BATCH_SIZE items"}}},
            "BatchResponse": {"type": "object", "required": ["results"], "properties": {
                "results": {"type": "array", "items": {"oneOf": [
                    {"$ref": "#/components/schemas/PredictResponse"},
                    {"type": "object", "required": ["symbol", "error"], "properties": {
                        "symbol": {"description": "The item's symbol, upper-case when valid"},
                        "error": {"type": "object", "required": ["status", "detail"], "properties": {
                            "status": {"type": "integer"}, "detail": {}, "code": {"type": "string"}}}}}]}}}}
    });
    let backtest_schemas = json!({
            "BacktestRequest": {"type": "object", "required": ["symbol", "historical_prices"], "properties": {
                "symbol": symbol,
                "historical_prices": prices_at_least(defaults.min_train),
                "models": {"type": "array", "items": {"type": "string", "enum": MODEL_NAMES}, "minItems": 1, "maxItems": MAX_MODELS, "uniqueItems": true,
                           "default": default_models(), "description": "lstm only when named: it trains once per fold"},
                "horizons": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": max_days_ahead}, "minItems": 1, "maxItems": MAX_HORIZONS, "uniqueItems": true,
                             "default": defaults.horizons},
                "folds": {"type": "integer", "minimum": 1, "maximum": MAX_FOLDS, "default": defaults.folds},
                "interval_level": level}},
            "BacktestRow": {"type": "object", "required": ["symbol", "model", "horizon", "n", "mae", "mape", "mase", "coverage"], "properties": {
                "symbol": {"type": "string"}, "model": {"type": "string"}, "horizon": {"type": "integer"},
                "n": {"type": "integer", "description": "Folds scored"},
                "mae": {"type": ["number", "null"], "description": "Mean absolute error in price units; null when not a finite number (prices near the largest double overflow it)"},
                "mape": {"type": ["number", "null"], "description": "Mean absolute percentage error (0.05 = 5%); null when not a finite number"},
                "mase": {"type": ["number", "null"], "description": "MAE / the naive forecast's MAE on the same folds (1 = as good as the last price); null when undefined"},
                "coverage": {"type": "number", "description": "Share of actual prices inside the interval at interval_level"}}},
            "TrainRequest": {"type": "object", "required": ["historical_prices"], "properties": {
                "historical_prices": prices_at_least(MIN_UPDATE_PRICES),
                "epochs": {"type": "integer", "minimum": 1, "maximum": 50, "description": "update only; UPDATE_EPOCHS by default"}}},
            "TrainResponse": {"type": "object", "required": ["symbol", "status", "model_version"], "properties": {
                "symbol": {"type": "string"}, "status": {"type": "string", "enum": ["trained", "updated"]},
                "model_version": {"type": "string"}, "points": {"type": "integer"}, "epochs": {"type": "integer"},
                "train_seconds": {"type": "number"}, "final_train_loss": {"type": "number"}, "validation_loss": {"type": "number"},
                "validation_mape": {"type": "number"}, "timestamp": {"type": "string", "format": "date-time"}}},
            "Liveness": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["alive"]}}},
            "Readiness": {"type": "object", "required": ["status", "models_loaded"], "properties": {
                "status": {"type": "string"}, "models_loaded": {"type": "integer"}}}
    });
    let (risk_paths, risk_schemas) = risk_document(&symbol, &prices_at_least(RISK_WINDOW));
    let core_schemas = json!({
            "ModelListing": {"type": "object", "required": ["count", "models"], "properties": {
                "count": {"type": "integer"},
                "models": {"type": "array", "items": {"type": "object", "required": ["symbol", "status", "model_version"], "properties": {
                    "symbol": {"type": "string"}, "status": {"type": "string", "enum": ["loaded", "stored"], "description": "loaded: in memory; stored: in the store only"},
                    "model_version": {"type": "string"}}}}}},
            "ModelStatus": {"type": "object", "required": ["symbol", "status", "model_version"], "properties": {
                "symbol": {"type": "string"}, "status": {"type": "string", "enum": ["loaded", "not_loaded"]},
                "model_version": {"type": "string"}, "sequence_length": {"type": "integer"}, "device": {"type": "string"}}},
            "Unloaded": {"type": "object", "required": ["message"], "properties": {
                "message": {"type": "string"}, "purged": {"type": "boolean", "description": "Present with ?purge: whether a stored model was deleted"}}},
            "ServiceInfo": {"type": "object", "required": ["service", "status", "version", "endpoints"], "properties": {
                "service": {"type": "string"}, "status": {"type": "string"}, "version": {"type": "string"},
                "endpoints": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "Health": {"type": "object", "required": ["status", "pytorch_available", "device", "models_loaded"], "properties": {
                "status": {"type": "string", "enum": ["healthy"]}, "service": {"type": "string"}, "pytorch_available": {"type": "boolean"},
                "training_mode": {"type": "string", "enum": ["open", "authenticated", "off"], "description": "Who may train a model from request data (TRAINING_MODE)"},
                "device": {"type": "string", "enum": ["cpu", "cuda"]}, "models_loaded": {"type": "integer"},
                "lstm_kernel": {"type": "string", "description": "What cached LSTM forecasts run on: int16-avx512vnni, f32-avx2 or f32-scalar (LSTM_PRECISION)"},
                "version": {"type": "string"}, "model_version": {"type": "string"}, "uptime_seconds": {"type": "number"},
                "training": {"type": "object", "properties": {
                    "trainings_total": {"type": "integer"}, "trainings_running": {"type": "integer"},
                    "trainings_waiting": {"type": "integer"}, "trainings_failed_total": {"type": "integer"},
                    "overloaded_total": {"type": "integer"}}},
                "models_loaded_from_store_total": {"type": "integer"}, "cache_hits_total": {"type": "integer"}}},
            "ErrorDetail": {"type": "object", "required": ["detail"], "properties": {
                "detail": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}}],
                           "description": "A sentence; a list of field errors for a body that is not JSON (400) or fields that do not validate"},
                "code": {"type": "string", "description": "Stable machine-readable error code"}}},
            "ValidationError": {"type": "object", "required": ["detail"], "properties": {
                "detail": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}},
                "code": {"type": "string"}}},
            "FieldError": {"type": "object", "required": ["loc", "msg", "type"], "properties": {
                "loc": {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
                "msg": {"type": "string"}, "type": {"type": "string"}}}
    });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Coinsphere ML",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Price forecasts (a per-symbol LSTM or statistical models) with conformal intervals, backtests, and CB-05 risk scores."
        },
        "paths": merge([core_paths, ops_paths, risk_paths]),
        "components": {
            "schemas": merge([forecast_schemas, backtest_schemas, core_schemas, risk_schemas]),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                "description": "One of API_KEYS; only the routes that change models need it, and only when API_KEYS is set"}}
        }
    })
}

/// The paths and schemas of `POST /risk-score` and `POST /risk-score-batch`.
fn risk_document(symbol: &Value, prices: &Value) -> (Value, Value) {
    let paths = json!({
        "/risk-score": {"post": {
            "summary": "CB-05 risk score of a price history, with volatility, drawdown, VaR, ES and beta",
            "description": "The five contract fields come first and are the CB-05 score of SPEC section 4 exactly; `measures` adds risk measures on daily log returns (definitions in the README). Windows count returns: 30d needs 31 prices; a window without enough prices is null.",
            "operationId": "score_risk",
            "requestBody": body("RiskRequest"),
            "responses": {
                "200": ok("RiskResponse", "The score and the measures"),
                "400": error_response("Fewer than 30 prices, too many prices, or a body that is not JSON"),
                "413": error_response("Body larger than the limit"),
                "422": validation_response()
            }}},
        "/risk-score-batch": {"post": {
            "summary": "Several risk-score requests in one, answered in order",
            "description": "Each result is what POST /risk-score would answer for that item, or {symbol, error: {status, detail, code}}; one bad item never fails the batch, and its error locations start [\"body\", \"requests\", i].",
            "operationId": "score_risk_batch",
            "requestBody": body("RiskBatchRequest"),
            "responses": {
                "200": ok("RiskBatchResponse", "One result per item, in order"),
                "400": error_response("A body that is not JSON"),
                "413": error_response("Body larger than the limit, or more items than MAX_BATCH_SIZE"),
                "422": validation_response()
            }}}
    });
    let maybe = json!({"type": ["number", "null"]});
    let windowed = |what: &str| {
        json!({"type": "object", "required": ["30d", "90d", "365d"], "description": format!("{what} over the last 30, 90 and 365 daily log returns; null where fewer were posted"),
               "properties": {"30d": maybe, "90d": maybe, "365d": maybe}})
    };
    let levels = |what: &str| {
        json!({"type": "object", "required": ["95", "99"], "description": what,
               "properties": {"95": {"type": "number"}, "99": {"type": "number"}}})
    };
    let by_method = |what: &str| {
        json!({"type": "object", "required": ["historical", "cornish_fisher"], "properties": {
            "historical": levels(&format!("{what}, historical: from the empirical 1 - level quantile of the log returns (linear interpolation)")),
            "cornish_fisher": {"oneOf": [levels(&format!("{what}, Cornish-Fisher (modified): the normal quantile corrected for skewness and excess kurtosis (population moments)")), {"type": "null"}],
                               "description": "null where the expansion is not increasing over the tail levels used, or a loss is not finite"}}})
    };
    let schemas = json!({
        "RiskRequest": {"type": "object", "required": ["symbol", "historical_prices"], "properties": {
            "symbol": symbol, "historical_prices": prices,
            "benchmark_prices": {"oneOf": [prices, {"type": "null"}],
                "description": "Optional: a benchmark's closes (BTC's, say), aligned with historical_prices at the end (the last price of each is the same day); each finite and > 0"}}},
        "RiskResponse": {"type": "object", "required": ["symbol", "risk_score", "risk_level", "volatility", "timestamp", "measures"], "properties": {
            "symbol": {"type": "string"},
            "risk_score": {"type": "integer", "minimum": 0, "maximum": 100},
            "risk_level": {"type": "string", "enum": ["conservative", "moderate", "degen"]},
            "volatility": {"type": "number", "description": "std / mean of the last 30 prices"},
            "timestamp": {"type": "string", "format": "date-time"},
            "measures": {"$ref": "#/components/schemas/RiskMeasures"}}},
        "RiskMeasures": {"type": "object", "required": ["returns", "annualisation_days", "volatility_ddof", "volatility_annualised", "max_drawdown", "current_drawdown", "window_days", "var_1d", "es_1d", "benchmark"], "properties": {
            "returns": {"type": "string", "enum": ["log"], "description": "Daily log returns ln(p[i+1] / p[i])"},
            "annualisation_days": {"type": "integer", "description": "365: volatility is the daily one times sqrt(365)"},
            "volatility_ddof": {"type": "integer", "description": "1: the sample standard deviation"},
            "volatility_annualised": windowed("Sample std (ddof 1) of daily log returns times sqrt(365)"),
            "max_drawdown": {"type": "object", "required": ["value", "peak_index", "trough_index", "duration_days", "recovery_index"], "properties": {
                "value": {"type": "number", "minimum": 0, "maximum": 1, "description": "Largest 1 - price / running high over the whole history"},
                "peak_index": {"type": "integer", "description": "Index in historical_prices of the high (the last index at it)"},
                "trough_index": {"type": "integer", "description": "Index of the lowest point of that fall"},
                "duration_days": {"type": "integer", "description": "trough_index - peak_index"},
                "recovery_index": {"type": ["integer", "null"], "description": "First index after the trough back at the peak's price; null if not recovered"}}},
            "current_drawdown": {"type": "number", "minimum": 0, "maximum": 1, "description": "1 - last price / highest price"},
            "window_days": {"type": "integer", "description": "Returns VaR and ES are computed over: the last 365, or all when fewer"},
            "var_1d": by_method("1-day Value at Risk as a positive loss fraction 1 - exp(q); negative when the quantile is a gain"),
            "es_1d": by_method("1-day Expected Shortfall: the mean loss 1 - exp(r) beyond the VaR (Cornish-Fisher: over 20 tail levels)"),
            "benchmark": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["overlap_days", "beta", "correlation"], "properties": {
                "overlap_days": {"type": "integer", "description": "Returns of both series, aligned at the end"},
                "beta": windowed("cov(asset, benchmark) / var(benchmark)"),
                "correlation": windowed("Pearson correlation")}}],
                "description": "null unless benchmark_prices were posted"}}},
        "RiskBatchRequest": {"type": "object", "required": ["requests"], "properties": {
            "requests": {"type": "array", "items": {"$ref": "#/components/schemas/RiskRequest"}, "description": "At most MAX_BATCH_SIZE items"}}},
        "RiskBatchResponse": {"type": "object", "required": ["results"], "properties": {
            "results": {"type": "array", "items": {"oneOf": [
                {"$ref": "#/components/schemas/RiskResponse"},
                {"type": "object", "required": ["symbol", "error"], "properties": {
                    "symbol": {"description": "The item's symbol, upper-case when valid"},
                    "error": {"type": "object", "required": ["status", "detail"], "properties": {
                        "status": {"type": "integer"}, "detail": {}, "code": {"type": "string"}}}}}]}}}}
    });
    (paths, schemas)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `(path, method)` the routers under `src/http` register, read from their source:
    /// axum cannot list a router's routes, and a hand-kept list would not notice a new one.
    fn served_routes() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
        let mut files = Vec::new();
        let mut dirs = vec![root];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let mut routes = Vec::new();
        for path in files {
            let source = std::fs::read_to_string(&path).unwrap();
            for call in source.split(".route(\"").skip(1) {
                let (route, rest) = call.split_once('"').unwrap();
                // The method router is the route call's second argument: up to its `)`.
                let mut depth = 1;
                let end = rest
                    .char_indices()
                    .find(|&(_, c)| {
                        depth += match c {
                            '(' => 1,
                            ')' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map_or(rest.len(), |(i, _)| i);
                let methods = &rest[..end];
                for method in ["get", "post", "put", "patch", "delete"] {
                    let called = methods.match_indices(&format!("{method}(")).any(|(i, _)| {
                        !methods[..i]
                            .chars()
                            .next_back()
                            .is_some_and(|c| c.is_alphanumeric() || c == '_')
                    });
                    if called {
                        routes.push((route.to_owned(), method.to_owned()));
                    }
                }
            }
        }
        routes.sort();
        routes
    }

    #[test]
    fn every_served_route_is_in_the_document() {
        let routes = served_routes();
        // The source reading itself works: it sees routes of several files and methods.
        for expected in [
            ("/predict", "post"),
            ("/models/{symbol}", "delete"),
            ("/backtest", "post"),
            ("/health/ready", "get"),
            ("/v2/health/ready", "get"),
        ] {
            let expected = (expected.0.to_owned(), expected.1.to_owned());
            assert!(
                routes.contains(&expected),
                "{expected:?} not found in {routes:?}"
            );
        }
        let doc = openapi(90, 100);
        for (path, method) in &routes {
            assert!(
                doc["paths"][path][method].is_object(),
                "{} {path} is served but not in the OpenAPI document",
                method.to_uppercase()
            );
        }
        // And nothing is documented that is not served.
        let documented = doc["paths"].as_object().unwrap();
        for (path, item) in documented {
            for method in item.as_object().unwrap().keys() {
                assert!(
                    routes.contains(&(path.clone(), method.clone())),
                    "{method} {path} is documented but not served"
                );
            }
        }
    }

    #[test]
    fn price_lists_state_their_minimum_and_errors_may_list_fields() {
        let doc = openapi(90, 100);
        let schemas = &doc["components"]["schemas"];
        let min =
            |schema: &str| schemas[schema]["properties"]["historical_prices"]["minItems"].clone();
        assert_eq!(min("PredictRequest"), json!(60));
        assert_eq!(min("RiskRequest"), json!(30));
        // A body that is not JSON answers 400 with a list of field errors.
        let detail = &schemas["ErrorDetail"]["properties"]["detail"]["oneOf"];
        assert_eq!(detail[0]["type"], "string");
        assert_eq!(detail[1]["type"], "array");
    }

    #[test]
    fn the_docs_page_example_cannot_plant_a_model_for_a_real_coin() {
        let page = include_str!("docs.html");
        let example = page
            .lines()
            .find(|l| l.trim_start().starts_with("\"/predict\": {"))
            .expect("a /predict example");
        assert!(example.contains(r#"symbol: "DEMO""#), "{example}");
        assert!(example.contains(r#"model: "ensemble""#), "{example}");
        assert!(!page.contains(r#"value: "BTC""#));
    }

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
