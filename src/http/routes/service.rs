//! `GET /` (what this service is) and `GET /health`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::contract::one_of_strings;
use crate::http::AppState;
use crate::settings::ops::TrainingMode;

/// The service's name, in `GET /` and `GET /health`.
pub const SERVICE_NAME: &str = "Coinsphere ML";

/// Routes of this resource.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(describe_service))
        .routes(routes!(check_health))
}

/// What this service is. Fields in alphabetical order, as the service has always sent them.
#[derive(Serialize, ToSchema)]
pub struct ServiceInfo {
    /// Each route with what it does.
    endpoints: BTreeMap<&'static str, &'static str>,
    /// `Coinsphere ML`.
    service: &'static str,
    /// `running`.
    status: &'static str,
    /// The service's version.
    version: &'static str,
}

/// What this service is.
#[utoipa::path(get, path = "/", responses((status = 200, description = "Service name, version and endpoints", body = ServiceInfo)))]
async fn describe_service() -> Json<ServiceInfo> {
    Json(ServiceInfo {
        service: SERVICE_NAME,
        status: "running",
        version: env!("CARGO_PKG_VERSION"),
        endpoints: BTreeMap::from([
            ("/health", "GET: service health and training activity"),
            ("/predict", "POST: forecast a symbol's price days_ahead steps ahead with intervals (model: lstm, trained on demand, or a statistical model)"),
            ("/risk-score", "POST: CB-05 risk score of a price history, with volatility, drawdown, VaR, ES and beta"),
            ("/risk-score-batch", "POST: several risk-score requests in one, answered in order"),
            ("/models", "GET: the models in memory and in the store"),
            ("/models/{symbol}", "GET: whether a symbol's model is in memory; DELETE: unload it (?purge=true also deletes the stored model)"),
            ("/predict-batch", "POST: several predict requests in one, answered in order"),
            ("/backtest", "POST: rolling-origin backtest of forecasting models on a price history (MAE, MAPE, MASE, interval coverage)"),
            ("/models/{symbol}/train", "POST: retrain a symbol's model from posted prices"),
            ("/models/{symbol}/update", "POST: fine-tune a symbol's model on newer prices"),
            ("/health/live", "GET: liveness probe"),
            ("/health/ready", "GET: readiness probe (503 until warm-up is done)"),
            ("/metrics", "GET: Prometheus metrics"),
            ("/openapi.json", "GET: OpenAPI 3.1 description of this API"),
            ("/docs", "GET: API documentation (works offline)"),
            ("/predict/{symbol}", "GET: forecast a symbol from the closes stored in the database (needs DATABASE_URL)"),
            ("/accuracy", "GET: live accuracy of the served forecasts, every symbol (needs DATABASE_URL)"),
            ("/accuracy/{symbol}", "GET: live accuracy of a symbol's served forecasts: MAE, MAPE, MASE, coverage, direction (needs DATABASE_URL)"),
        ]),
    })
}

/// Health and training activity. Fields in alphabetical order, as the service has always sent
/// them.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Requests answered from the in-memory cache.
    cache_hits_total: u64,
    /// `cpu`.
    #[schema(schema_with = device)]
    device: &'static str,
    /// What cached LSTM forecasts run on: int16-avx512vnni, int16-avx2, f32-avx2 or f32-scalar
    /// (LSTM_PRECISION).
    lstm_kernel: &'static str,
    /// MODEL_VERSION.
    model_version: String,
    /// Models in memory.
    models_loaded: usize,
    /// Models loaded from the store since start-up.
    models_loaded_from_store_total: u64,
    /// Always false: the service has no Python.
    pytorch_available: bool,
    /// `Coinsphere ML`.
    service: &'static str,
    /// Always `healthy` while the process serves.
    #[schema(schema_with = healthy)]
    status: &'static str,
    /// Where models are stored, which replica answers, and the generation of each model it
    /// serves.
    store: StoreStatus,
    /// Training activity since start-up.
    training: TrainingActivity,
    /// Who may train a model from request data (TRAINING_MODE).
    #[schema(schema_with = training_modes)]
    training_mode: &'static str,
    /// Seconds since start-up.
    uptime_seconds: f64,
    /// The service's version.
    version: &'static str,
}

/// The `store` object of [`Health`].
#[derive(Serialize, ToSchema)]
pub struct StoreStatus {
    /// Published generation of each model in memory, by symbol (stores that number them:
    /// PostgreSQL; empty for the models directory).
    generations: std::collections::BTreeMap<String, u64>,
    /// `filesystem` (MODELS_DIR), `postgres` (DATABASE_URL) or `postgres+s3` (and MODEL_STORE).
    #[schema(schema_with = store_kinds)]
    kind: &'static str,
    /// This process's id among the replicas (REPLICA_ID).
    replica_id: String,
}

fn store_kinds() -> utoipa::openapi::Object {
    one_of_strings(["filesystem", "postgres", "postgres+s3"])
}

/// The `training` object of [`Health`] (alphabetical, as always sent).
#[derive(Serialize, ToSchema)]
pub struct TrainingActivity {
    /// Requests refused because the training queue was full.
    overloaded_total: u64,
    /// Trainings that failed or were refused as degenerate.
    trainings_failed_total: u64,
    /// Trainings running now.
    trainings_running: usize,
    /// Trainings started since start-up.
    trainings_total: u64,
    /// Trainings admitted and waiting for a slot.
    trainings_waiting: usize,
}

fn device() -> utoipa::openapi::Object {
    one_of_strings(["cpu"])
}

fn healthy() -> utoipa::openapi::Object {
    one_of_strings(["healthy"])
}

fn training_modes() -> utoipa::openapi::Object {
    one_of_strings(TrainingMode::ALL.map(TrainingMode::as_str))
}

/// Health and training activity.
///
/// Answers from counters only: never waits on a lock held by training.
#[utoipa::path(get, path = "/health", responses((status = 200, description = "Always healthy while the process serves", body = Health)))]
async fn check_health(State(state): State<AppState>) -> Json<Health> {
    let stats = state.registry.stats();
    Json(Health {
        status: "healthy",
        store: StoreStatus {
            generations: state
                .registry
                .served_generations()
                .into_iter()
                .map(|(symbol, g)| (symbol.to_string(), g))
                .collect(),
            kind: state.registry.store_kind(),
            replica_id: state.registry.replica().to_owned(),
        },
        service: SERVICE_NAME,
        pytorch_available: false,
        device: "cpu",
        lstm_kernel: state.registry.precision().kernel(),
        training_mode: state.ops.training_mode.as_str(),
        models_loaded: stats.models_loaded,
        version: env!("CARGO_PKG_VERSION"),
        model_version: state.registry.version().as_str().to_owned(),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        training: TrainingActivity {
            trainings_total: stats.trainings_total,
            trainings_running: stats.trainings_running,
            trainings_waiting: stats.trainings_waiting,
            trainings_failed_total: stats.trainings_failed_total,
            overloaded_total: stats.overloaded_total,
        },
        models_loaded_from_store_total: stats.models_loaded_from_store_total,
        cache_hits_total: stats.cache_hits_total,
    })
}
