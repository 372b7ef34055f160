//! `coinsphere-ml predict`: the answer of `POST /predict` for a CSV's closes, and its chart.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};

use super::{load_series, CsvInput};
use crate::contract::error::ApiError;
use crate::contract::PredictResponse;
use crate::domain::Horizon;
use crate::forecast::intervals::DEFAULT_LEVEL;
use crate::registry::{Registry, RegistryConfig, TrainingPermission};
use crate::settings::{defaults, InferenceSettings, StoreSettings, TrainingSettings};
use crate::store::FsModelStore;

/// `coinsphere-ml predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// Prices.
    #[command(flatten)]
    pub input: CsvInput,
    /// Steps ahead.
    #[arg(long, default_value_t = 7)]
    pub days_ahead: i64,
    /// Largest accepted days ahead.
    #[arg(long, env = "MAX_DAYS_AHEAD", default_value_t = NonZeroUsize::new(defaults::MAX_DAYS_AHEAD).expect("non-zero"))]
    pub max_days_ahead: NonZeroUsize,
    /// Models directory and version.
    #[command(flatten)]
    pub store: StoreSettings,
    /// Training, when no model is stored.
    #[command(flatten)]
    pub training: TrainingSettings,
    /// Arithmetic of the forecast, as for `serve`.
    #[command(flatten)]
    pub inference: InferenceSettings,
    /// Also draw the recent history, the forecast and its band into this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Prints the forecast as JSON (and draws it when asked).
///
/// # Errors
/// Bad input, no model and no permission to train, or an unwritable chart.
pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let series = load_series(&args.input)?;
    let symbol = args.input.symbol.clone();
    let horizon = Horizon::parse(args.days_ahead, args.max_days_ahead.get())?;
    let store = FsModelStore::open(&args.store.models_dir)?;
    let registry = Registry::new(
        RegistryConfig {
            version: args.store.model_version.clone(),
            lstm: args.training.lstm_config(),
            cache_size: NonZeroUsize::MIN,
            max_concurrent_trainings: NonZeroUsize::MIN,
            training_queue: 0,
            precision: args.inference.lstm_precision,
            cluster_wait: std::time::Duration::ZERO,
            replica: "cli".into(),
        },
        Arc::new(store),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let history = series.clone();
    let current_price = series.last();
    let forecast = runtime.block_on(registry.forecast(
        &symbol,
        series,
        horizon,
        DEFAULT_LEVEL,
        TrainingPermission::Granted,
    ));
    let forecast = match forecast {
        Ok(f) => f,
        // The same text the HTTP API answers.
        Err(e) => bail!("{}", ApiError::from(e).detail_text()),
    };
    // A forecast needs 60 prices, so there is a last one.
    let current_price = current_price.context("no prices")?;
    let response = PredictResponse::from_forecast(
        &symbol,
        current_price,
        "lstm",
        registry.version().as_str(),
        forecast,
        crate::domain::now_rfc3339(),
    );
    println!("{}", serde_json::to_string(&response)?);
    if let Some(plot) = &args.plot {
        let title = format!("{symbol}: {} days ahead", response.days_ahead);
        let svg = crate::chart::forecast_svg(
            &title,
            history.as_slice(),
            &response.forecast,
            response.level,
            &response.model.label,
            crate::chart::SHOWN_HISTORY,
        )
        .map_err(|e| anyhow::anyhow!("cannot draw the chart: {e}"))?;
        std::fs::write(plot, svg).with_context(|| format!("cannot write {}", plot.display()))?;
        eprintln!("chart written to {}", plot.display());
    }
    Ok(())
}
