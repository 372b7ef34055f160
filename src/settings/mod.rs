//! Every setting of the service, from command-line flags or environment variables (SPEC
//! section 5), parsed once at start-up into typed, validated values. Nothing else in the crate
//! reads the environment.

use std::net::IpAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::ModelVersion;
use crate::forecast::lstm::{LstmConfig, Precision};
use crate::registry::RegistryConfig;

pub mod ops;

/// Defaults, shared by the flags and by [`Settings::default`].
pub mod defaults {
    /// `HOST`.
    pub const HOST: &str = "0.0.0.0";
    /// `PORT`.
    pub const PORT: u16 = 8000;
    /// `MODELS_DIR`.
    pub const MODELS_DIR: &str = "./models";
    /// `MODEL_VERSION`.
    pub const MODEL_VERSION: &str = "v1.0.0";
    /// `TRAINING_BATCH_SIZE` (SPEC section 3).
    pub const TRAINING_BATCH_SIZE: usize = 32;
    /// `STATS_CACHE_SIZE`: at 1,600 prices an entry holds 13 kB of them, so 3 MB at most.
    pub const STATS_CACHE_SIZE: usize = 256;
    /// `STATS_PATH_CACHE_MB`: auto's paths on 1,600 prices hold about 0.4 MB, ETS's 70 kB.
    pub const STATS_PATH_CACHE_MB: usize = 64;
    /// `PRICES_CACHE_SECS`.
    pub const PRICES_CACHE_SECS: u64 = 60;
    /// `PRICE_HISTORY_DAYS`: what the LSTM trains on (SPEC's 1,000-price model).
    pub const PRICE_HISTORY_DAYS: usize = 1_000;
    /// `PREDICTION_LOG_QUEUE`.
    pub const PREDICTION_LOG_QUEUE: usize = crate::store::predictions::QUEUE_CAPACITY;
    /// `TRAINING_EPOCHS` (SPEC section 3).
    pub const TRAINING_EPOCHS: usize = 50;
    /// `MAX_DAYS_AHEAD` (SPEC section 2).
    pub const MAX_DAYS_AHEAD: usize = 90;
    /// `MAX_PRICES`: about 55 years of daily prices or 2 years of hourly ones.
    pub const MAX_PRICES: usize = 20_000;
    /// `BODY_LIMIT_BYTES`: 1 MiB, room for `MAX_PRICES` prices written with full precision.
    pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;
    /// `MAX_CONCURRENT_TRAININGS`.
    pub const MAX_CONCURRENT_TRAININGS: usize = 2;
    /// `TRAINING_QUEUE`: trainings that may wait for a slot before requests get 503.
    pub const TRAINING_QUEUE: usize = 16;
    /// `MODEL_CACHE_SIZE`: models kept in memory (about 0.2 MB each).
    pub const MODEL_CACHE_SIZE: usize = 256;
    /// `MAX_CONNECTIONS`: open client connections; one more is answered 503 and closed. The
    /// soft file limit is raised to fit at start-up (it is often 1,024).
    pub const MAX_CONNECTIONS: usize = 1000;
    /// `HEADER_READ_TIMEOUT_SECS`: time for a request's headers to arrive, counted from when the
    /// connection is ready for one, so also the idle time a keep-alive connection is kept.
    pub const HEADER_READ_TIMEOUT_SECS: u64 = 10;
    /// `BODY_READ_TIMEOUT_SECS`: time for a whole request body to arrive (1 MiB at 100 KB/s
    /// takes 10 s).
    pub const BODY_READ_TIMEOUT_SECS: u64 = 20;
}

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging, common to every subcommand.
#[derive(Clone, Debug, clap::Args)]
pub struct LogSettings {
    /// Which log lines to keep (tracing's EnvFilter syntax, e.g. `info,coinsphere_ml=debug`).
    #[arg(long, global = true, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
    /// Log line format on stderr.
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Where models are stored and under which version tag.
#[derive(Clone, Debug, clap::Args)]
pub struct StoreSettings {
    /// Directory of stored models (created if missing).
    #[arg(long, env = "MODELS_DIR", default_value = defaults::MODELS_DIR)]
    pub models_dir: PathBuf,
    /// Version tag that is part of every model's key and file name.
    #[arg(long, env = "MODEL_VERSION", default_value = defaults::MODEL_VERSION)]
    pub model_version: ModelVersion,
}

/// How models are trained (the rest of SPEC section 3 is fixed).
#[derive(Clone, Debug, clap::Args)]
pub struct TrainingSettings {
    /// Epochs of training.
    #[arg(long = "training-epochs", visible_alias = "epochs", env = "TRAINING_EPOCHS", default_value_t = nz(defaults::TRAINING_EPOCHS))]
    pub epochs: NonZeroUsize,
    /// Mini-batch size of training.
    #[arg(long = "training-batch-size", visible_alias = "batch-size", env = "TRAINING_BATCH_SIZE", default_value_t = nz(defaults::TRAINING_BATCH_SIZE))]
    pub batch_size: NonZeroUsize,
    /// Worker threads per training; 0 lets the engine choose.
    #[arg(
        long = "training-threads",
        env = "TRAINING_THREADS",
        default_value_t = 0
    )]
    pub threads: usize,
}

impl TrainingSettings {
    /// SPEC section 3's hyper-parameters with these epochs, batch size and threads.
    pub fn lstm_config(&self) -> LstmConfig {
        LstmConfig {
            epochs: self.epochs.get(),
            batch_size: self.batch_size.get(),
            threads: self.threads,
            ..LstmConfig::default()
        }
    }
}

/// How served LSTM forecasts compute (`serve` and `predict`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct InferenceSettings {
    /// Arithmetic of cached LSTM forecasts: `int16` (int16 gate matrices on AVX-512 VNNI, ~3x
    /// faster, forecasts within ~1e-4 of f32; f32 where the CPU lacks VNNI) or `f32` (as PyTorch).
    #[arg(long, env = "LSTM_PRECISION", value_enum, default_value_t = Precision::default())]
    pub lstm_precision: Precision,
}

/// Prices by symbol and the prediction log, with `DATABASE_URL`.
#[derive(Clone, Debug, clap::Args)]
pub struct DataSettings {
    /// SQL reading one symbol's daily closes: first column the day (a date), second the close,
    /// the symbol as $1 (for example `SELECT date, close FROM price_data WHERE symbol = $1`).
    /// Default: the service's own `prices` table, which `coinsphere-ml import` fills.
    #[arg(long, env = "PRICES_QUERY")]
    pub prices_query: Option<String>,
    /// Seconds a symbol's closes read from the database are reused; an import drops them at
    /// once on every replica.
    #[arg(long, env = "PRICES_CACHE_SECS", default_value_t = defaults::PRICES_CACHE_SECS)]
    pub prices_cache_secs: u64,
    /// Closes read for a forecast by symbol (`GET /predict/{symbol}`): the last N days.
    #[arg(long, env = "PRICE_HISTORY_DAYS", default_value_t = nz(defaults::PRICE_HISTORY_DAYS))]
    pub price_history_days: NonZeroUsize,
    /// Served forecasts the prediction log holds while the database is slow or away; beyond,
    /// records are dropped and counted (`ml_prediction_log_total`).
    #[arg(long, env = "PREDICTION_LOG_QUEUE", default_value_t = nz(defaults::PREDICTION_LOG_QUEUE))]
    pub prediction_log_queue: NonZeroUsize,
}

impl Default for DataSettings {
    fn default() -> Self {
        Self {
            prices_query: None,
            prices_cache_secs: defaults::PRICES_CACHE_SECS,
            price_history_days: nz(defaults::PRICE_HISTORY_DAYS),
            prediction_log_queue: nz(defaults::PREDICTION_LOG_QUEUE),
        }
    }
}

/// The settings of `coinsphere-ml serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = defaults::HOST)]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = defaults::PORT)]
    pub port: u16,
    /// Models directory and version.
    #[command(flatten)]
    pub store: StoreSettings,
    /// On-demand training.
    #[command(flatten)]
    pub training: TrainingSettings,
    /// Largest accepted `days_ahead`.
    #[arg(long, env = "MAX_DAYS_AHEAD", default_value_t = nz(defaults::MAX_DAYS_AHEAD))]
    pub max_days_ahead: NonZeroUsize,
    /// Most prices accepted in one request (more: 400).
    #[arg(long, env = "MAX_PRICES", default_value_t = nz(defaults::MAX_PRICES))]
    pub max_prices: NonZeroUsize,
    /// Largest accepted request body in bytes (more: 413, at once when the declared
    /// Content-Length says so).
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = nz(defaults::BODY_LIMIT_BYTES))]
    pub body_limit_bytes: NonZeroUsize,
    /// Most open client connections; beyond, a new one is answered 503 with Retry-After and
    /// closed.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = nz(defaults::MAX_CONNECTIONS))]
    pub max_connections: NonZeroUsize,
    /// Seconds for a request's headers to arrive (also the keep-alive idle time); a connection
    /// that sends none in time is closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = nz64(defaults::HEADER_READ_TIMEOUT_SECS))]
    pub header_read_timeout_secs: NonZeroU64,
    /// Seconds for a whole request body to arrive (beyond: 408).
    #[arg(long, env = "BODY_READ_TIMEOUT_SECS", default_value_t = nz64(defaults::BODY_READ_TIMEOUT_SECS))]
    pub body_read_timeout_secs: NonZeroU64,
    /// Trainings that may run at once.
    #[arg(long, env = "MAX_CONCURRENT_TRAININGS", default_value_t = nz(defaults::MAX_CONCURRENT_TRAININGS))]
    pub max_concurrent_trainings: NonZeroUsize,
    /// Trainings that may wait for a free slot; beyond that, 503 with Retry-After.
    #[arg(long, env = "TRAINING_QUEUE", default_value_t = defaults::TRAINING_QUEUE)]
    pub training_queue: usize,
    /// Models kept in memory (least recently used ones are dropped first).
    #[arg(long, env = "MODEL_CACHE_SIZE", default_value_t = nz(defaults::MODEL_CACHE_SIZE))]
    pub model_cache_size: NonZeroUsize,
    /// Statistical forecasts kept in memory, answered again when the same request (model,
    /// prices, horizon, level) comes back.
    #[arg(long, env = "STATS_CACHE_SIZE", default_value_t = nz(defaults::STATS_CACHE_SIZE))]
    pub stats_cache_size: NonZeroUsize,
    /// Megabytes of statistical models' rolling calibration paths kept in memory, reused by a
    /// request whose history differs from one seen before only in its last price (0: none).
    #[arg(long, env = "STATS_PATH_CACHE_MB", default_value_t = defaults::STATS_PATH_CACHE_MB)]
    pub stats_path_cache_mb: usize,
    /// Arithmetic of served forecasts.
    #[command(flatten)]
    pub inference: InferenceSettings,
    /// PostgreSQL URL (`postgres://user:password@host:5432/db`). Unset: models live in the
    /// models directory (one process). Set: models live in the database, shared by every
    /// replica, which train each symbol once between them and hear each other's changes.
    /// Never printed (it may hold a password): not by `--help`, logs, `/health` or errors.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// The database schema the service owns (created and migrated at start-up).
    #[arg(long, env = "DATABASE_SCHEMA", default_value = crate::store::postgres::DEFAULT_SCHEMA)]
    pub database_schema: crate::store::postgres::SchemaName,
    /// With DATABASE_URL: `s3://bucket/prefix` keeps model weights in an S3-protocol object
    /// store (configured by the AWS_* variables) and their rows in the database.
    #[arg(long, env = "MODEL_STORE")]
    pub model_store: Option<crate::store::objects::ObjectLocation>,
    /// This replica's id, recorded with the models it trains and shown by /health and /metrics
    /// (default: host name and process id).
    #[arg(long, env = "REPLICA_ID")]
    pub replica_id: Option<String>,
    /// Prices by symbol and the prediction log (with DATABASE_URL).
    #[command(flatten)]
    pub data: DataSettings,
    /// Warm-up, retraining, batch, access control, CORS and timeouts.
    #[command(flatten)]
    pub ops: ops::OpsSettings,
}

/// A setting that must never be printed, such as a URL with a password: `Debug` and `Display`
/// show `<redacted>`; [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret value, for the code that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("defaults are non-zero")
}

fn nz64(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).expect("defaults are non-zero")
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            models_dir: PathBuf::from(defaults::MODELS_DIR),
            model_version: ModelVersion::parse(defaults::MODEL_VERSION)
                .expect("valid default version"),
        }
    }
}

impl Default for TrainingSettings {
    fn default() -> Self {
        Self {
            epochs: nz(defaults::TRAINING_EPOCHS),
            batch_size: nz(defaults::TRAINING_BATCH_SIZE),
            threads: 0,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            host: defaults::HOST.parse().expect("valid default host"),
            port: defaults::PORT,
            store: StoreSettings::default(),
            training: TrainingSettings::default(),
            max_days_ahead: nz(defaults::MAX_DAYS_AHEAD),
            max_prices: nz(defaults::MAX_PRICES),
            body_limit_bytes: nz(defaults::BODY_LIMIT_BYTES),
            max_connections: nz(defaults::MAX_CONNECTIONS),
            header_read_timeout_secs: nz64(defaults::HEADER_READ_TIMEOUT_SECS),
            body_read_timeout_secs: nz64(defaults::BODY_READ_TIMEOUT_SECS),
            max_concurrent_trainings: nz(defaults::MAX_CONCURRENT_TRAININGS),
            training_queue: defaults::TRAINING_QUEUE,
            model_cache_size: nz(defaults::MODEL_CACHE_SIZE),
            stats_cache_size: nz(defaults::STATS_CACHE_SIZE),
            stats_path_cache_mb: defaults::STATS_PATH_CACHE_MB,
            inference: InferenceSettings::default(),
            database_url: None,
            database_schema: crate::store::postgres::SchemaName::parse(
                crate::store::postgres::DEFAULT_SCHEMA,
            )
            .expect("the default schema name is valid"),
            model_store: None,
            replica_id: None,
            data: DataSettings::default(),
            ops: ops::OpsSettings::default(),
        }
    }
}

impl Settings {
    /// The registry's sizing and training configuration.
    pub fn registry_config(&self) -> RegistryConfig {
        RegistryConfig {
            version: self.store.model_version.clone(),
            lstm: self.training.lstm_config(),
            cache_size: self.model_cache_size,
            max_concurrent_trainings: self.max_concurrent_trainings,
            training_queue: self.training_queue,
            precision: self.inference.lstm_precision,
            cluster_wait: Duration::from_secs(self.ops.training_timeout_secs.get()),
            replica: self.replica_id(),
        }
    }

    /// `REPLICA_ID`, else the host name and the process id (unique among the replicas on one
    /// host and, in containers, across hosts).
    pub fn replica_id(&self) -> String {
        self.replica_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into());
            format!("{host}-{}", std::process::id())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        settings: Settings,
    }

    #[test]
    fn flag_defaults_equal_the_default_settings() {
        let parsed = Probe::parse_from(["probe"]).settings;
        let default = Settings::default();
        // The environment of the test run may set some variables; compare the ones it won't.
        assert_eq!(parsed.max_days_ahead, default.max_days_ahead);
        assert_eq!(parsed.model_cache_size, default.model_cache_size);
        assert_eq!(parsed.training_queue, default.training_queue);
    }

    #[test]
    fn secrets_are_never_printed() {
        let settings = Probe::parse_from([
            "probe",
            "--database-url",
            "postgres://app:hunter2@db/prices",
        ])
        .settings;
        let url = settings.database_url.as_ref().unwrap();
        assert_eq!(url.expose(), "postgres://app:hunter2@db/prices");
        for shown in [
            format!("{settings:?}"),
            format!("{url}"),
            format!("{url:?}"),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }

    #[test]
    fn invalid_values_are_refused_at_start_up() {
        assert!(Probe::try_parse_from(["probe", "--model-version", "../x"]).is_err());
        assert!(Probe::try_parse_from(["probe", "--max-days-ahead", "0"]).is_err());
        assert!(Probe::try_parse_from(["probe", "--port", "70000"]).is_err());
    }
}
