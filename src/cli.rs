//! The command line: `serve`, `train` (one symbol or `--all`), `predict`, `healthcheck` and
//! `backtest`. Each subcommand is a variant of [`Command`] with its own settings struct and a
//! `run_*` function, so adding one touches only this file.

use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::domain::{Horizon, PriceSeries, Symbol};
use crate::forecast::lstm;
use crate::http::dto::PredictResponse;
use crate::http::error::ApiError;
use crate::http::server::Application;
use crate::ops::logwriter::BufferedStderr;
use crate::registry::{Registry, RegistryConfig, TrainingPermission};
use crate::settings::{
    defaults, InferenceSettings, LogFormat, LogSettings, Settings, StoreSettings, TrainingSettings,
};
use crate::store::{FsModelStore, ModelStore};

/// coinsphere-ml: per-symbol LSTM price forecasts and CB-05 risk scores.
#[derive(Debug, Parser)]
#[command(name = "coinsphere-ml", version, about)]
pub struct Cli {
    /// Logging.
    #[command(flatten)]
    pub log: LogSettings,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service.
    Serve(Box<Settings>),
    /// Train a model on a CSV's `close` column and store it.
    Train(TrainArgs),
    /// Forecast from a CSV's `close` column; prints what `POST /predict` answers.
    Predict(PredictArgs),
    /// Probe a running service (for container health checks): exit 0 on HTTP 200, 1 otherwise.
    Healthcheck(crate::ops::healthcheck::HealthcheckArgs),
    /// Rolling-origin backtest of forecasting models on CSV price histories.
    Backtest(BacktestArgs),
}

/// How `backtest` prints its results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// One row per series, model and horizon, then the means over series.
    Table,
    /// A list of `{"symbol","model","horizon","n","mae","mape","mase","coverage"}`.
    Json,
    /// The tables of ACCURACY.md.
    Markdown,
}

/// `coinsphere-ml backtest`.
#[derive(Debug, clap::Args)]
pub struct BacktestArgs {
    /// CSV files with a header and a `close` column, oldest row first; a file's symbol is its
    /// name without extension.
    #[arg(long, required = true, num_args = 1..)]
    pub csv: Vec<PathBuf>,
    /// Models, comma-separated (naive, drift, moving_average, ses, ets, theta, ensemble,
    /// auto, lstm). The naive forecast always runs too: MASE divides by its error.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "naive,drift,moving_average,ses,ets,theta,ensemble,auto"
    )]
    pub models: Vec<String>,
    /// Forecast horizons in days, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,7,30")]
    pub horizons: Vec<usize>,
    /// Cutoffs per series, spread evenly from the 365th price to the last one that leaves the
    /// longest horizon to score.
    #[arg(long, default_value_t = 20)]
    pub folds: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// Write an SVG chart of the first series' last 180 prices, the first model's forecast
    /// over the longest horizon and its interval.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Interval level behind `coverage`, in (0, 1).
    #[arg(long, default_value_t = crate::forecast::intervals::DEFAULT_LEVEL)]
    pub level: f64,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Input prices of `train` and `predict`.
#[derive(Debug, clap::Args)]
pub struct CsvInput {
    /// Symbol of the series.
    #[arg(long)]
    pub symbol: Symbol,
    /// CSV file with a header and a `close` column, oldest row first.
    #[arg(long)]
    pub csv: PathBuf,
    /// Use only the last N rows.
    #[arg(long)]
    pub last: Option<NonZeroUsize>,
}

/// `coinsphere-ml train`: one `--symbol` from one `--csv`, or `--all` CSVs of `--data-dir`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Symbol of the series.
    #[arg(long, required_unless_present = "all", conflicts_with = "all")]
    pub symbol: Option<Symbol>,
    /// CSV file with a header and a `close` column, oldest row first.
    #[arg(long, required_unless_present = "all", conflicts_with = "all")]
    pub csv: Option<PathBuf>,
    /// Use only the last N rows.
    #[arg(long)]
    pub last: Option<NonZeroUsize>,
    /// Bulk mode.
    #[command(flatten)]
    pub bulk: crate::ops::pretrain::PretrainArgs,
    /// Models directory and version.
    #[command(flatten)]
    pub store: StoreSettings,
    /// Epochs, batch size, threads.
    #[command(flatten)]
    pub training: TrainingSettings,
}

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

/// Runs a parsed command line.
///
/// # Errors
/// Whatever stopped the command, with context.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let buffered = init_logging(&cli.log)?;
    let result = match cli.command {
        Command::Serve(settings) => run_serve(*settings),
        Command::Train(args) => run_train(args),
        Command::Predict(args) => run_predict(args),
        Command::Healthcheck(args) => crate::ops::healthcheck::run(&args),
        Command::Backtest(args) => run_backtest(&args),
    };
    if let Some(buffered) = buffered {
        buffered.flush();
    }
    result
}

/// Installs the logger; returns the buffered writer when stderr is not a terminal (see
/// [`BufferedStderr`]), for the final flush.
fn init_logging(log: &LogSettings) -> anyhow::Result<Option<BufferedStderr>> {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.log_filter)
        .with_context(|| format!("invalid log filter {:?}", log.log_filter))?;
    let terminal = std::io::stderr().is_terminal();
    let buffered = if terminal {
        None
    } else {
        Some(BufferedStderr::with_flusher().context("cannot start the log flusher")?)
    };
    let writer = match &buffered {
        Some(b) => BoxMakeWriter::new(b.clone()),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(terminal);
    match log.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
    Ok(buffered)
}

fn run_serve(settings: Settings) -> anyhow::Result<()> {
    crate::ops::memory::limit_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let app = Application::build(settings)
            .await
            .context("cannot start the service")?;
        app.run_until_stopped().await.context("server failed")
    })?;
    // Trainings run on blocking threads; do not wait for them forever on the way out.
    runtime.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}

/// Reads the `close` column of a CSV (header required), oldest row first: the reader of
/// `backtest` ([`crate::backtest::read_csv`]), so every subcommand accepts the same files.
///
/// # Errors
/// An unreadable file, no `close` column, or a row whose close is not a number > 0.
pub fn read_closes(path: &Path) -> anyhow::Result<Vec<f64>> {
    Ok(crate::backtest::read_csv(path)?.prices)
}

fn load_series(input: &CsvInput) -> anyhow::Result<PriceSeries> {
    let series = PriceSeries::parse(read_closes(&input.csv)?)
        .with_context(|| format!("bad prices in {}", input.csv.display()))?;
    Ok(match input.last {
        Some(n) => series.last_n(n.get()),
        None => series,
    })
}

fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    if args.bulk.all {
        return crate::ops::pretrain::run(
            &args.bulk,
            &args.training.lstm_config(),
            &args.store.models_dir,
            &args.store.model_version,
        );
    }
    let (Some(symbol), Some(csv)) = (args.symbol, args.csv) else {
        bail!("train needs --symbol and --csv, or --all --data-dir DIR");
    };
    let input = CsvInput {
        symbol,
        csv,
        last: args.last,
    };
    let series = load_series(&input)?;
    let symbol = &input.symbol;
    let config = args.training.lstm_config();
    let store = FsModelStore::open(&args.store.models_dir)?;
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(config.epochs as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} epochs {elapsed} {msg}")
            .expect("valid template"),
    );
    let started = Instant::now();
    let model = lstm::train(&config, series.as_slice(), &mut |p| {
        bar.set_position(p.epoch as u64);
        bar.set_message(format!(
            "train loss {:.6}, validation loss {:.6}",
            p.train_loss, p.validation_loss
        ));
    })
    .with_context(|| format!("training {symbol} failed"))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    store
        .save(symbol, &args.store.model_version, &model)
        .with_context(|| format!("cannot store the model of {symbol}"))?;
    let s = model.summary();
    println!(
        "{symbol} {version}: trained on {n} prices ({tw} training / {vw} validation windows), {e} epochs in {seconds:.2} s; final train loss {tl:.6}, validation loss {vl:.6}, 1-step validation MAPE {mape:.2}%; saved to {path}",
        version = args.store.model_version,
        n = s.n_prices,
        tw = s.n_train_windows,
        vw = s.n_validation_windows,
        e = s.epochs_run,
        tl = s.final_train_loss,
        vl = s.validation_loss,
        mape = model.validation_mape(1) * 100.0,
        path = store
            .weights_path(symbol, &args.store.model_version)
            .unwrap_or_else(|| store.sidecar_path(symbol, &args.store.model_version))
            .display(),
    );
    Ok(())
}

fn run_predict(args: PredictArgs) -> anyhow::Result<()> {
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
        },
        Arc::new(store),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let history = series.clone();
    let forecast =
        runtime.block_on(registry.forecast(&symbol, series, horizon, TrainingPermission::Granted));
    let forecast = match forecast {
        Ok(f) => f,
        // The same text the HTTP API answers.
        Err(e) => bail!("{}", ApiError::from(e).detail_text()),
    };
    let response = PredictResponse::from_lstm(
        &symbol,
        &forecast,
        crate::forecast::intervals::DEFAULT_LEVEL,
        registry.version().as_str(),
        crate::now_rfc3339(),
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

fn run_backtest(args: &BacktestArgs) -> anyhow::Result<()> {
    use crate::backtest::{self, BacktestConfig};
    let models = backtest::models_from_names(&args.models)?;
    let series = args
        .csv
        .iter()
        .map(|p| backtest::read_csv(p))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(plot) = &args.plot {
        if plot
            .extension()
            .is_some_and(|e| !e.eq_ignore_ascii_case("svg"))
        {
            bail!("--plot writes SVG; name the file *.svg");
        }
    }
    let config = BacktestConfig {
        horizons: args.horizons.clone(),
        folds: args.folds,
        level: args.level,
        // The Markdown report also states how the 95% interval did.
        extra_levels: if args.level == 0.95 {
            vec![]
        } else {
            vec![0.95]
        },
        threads: args.threads,
        ..BacktestConfig::default()
    };
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} {msg}")
            .expect("valid template"),
    );
    let started = Instant::now();
    let rows = backtest::run_backtest(&series, &models, &config, &|p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(format!("{} {}", p.symbol, p.model));
    })?;
    bar.finish_and_clear();
    match args.format {
        ReportFormat::Table => {
            println!("{}", backtest::render_table(&rows));
            println!(
                "{}",
                backtest::render_overall_table(&backtest::overall(&rows))
            );
            println!(
                "{} series, {} folds, {:.1} s",
                series.len(),
                args.folds,
                started.elapsed().as_secs_f64()
            );
        }
        ReportFormat::Json => println!("{}", backtest::render_json(&rows)),
        ReportFormat::Markdown => print!("{}", backtest::render_markdown(&rows)),
    }
    if let (Some(plot), Some(first), Some(model)) = (&args.plot, series.first(), models.first()) {
        let horizon = args.horizons.iter().copied().max().unwrap_or(1);
        let forecast = crate::forecast::intervals::forecast_with_intervals(
            model.as_ref(),
            &first.prices,
            horizon,
            args.level,
        )?;
        let title = format!(
            "{}: {} forecast, {:.0}% interval",
            first.symbol,
            forecast.model,
            args.level * 100.0
        );
        backtest::render_chart_svg(plot, &title, &first.prices, &forecast, 180)?;
        eprintln!("chart written to {}", plot.display());
    }
    Ok(())
}
