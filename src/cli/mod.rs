//! The command line: `serve`, `train` (one symbol or `--all`), `predict`, `healthcheck`,
//! `backtest` and `import`. Each subcommand is a variant of [`Command`] with a file of its own holding its
//! arguments and its `run`; this file parses, installs the logger and dispatches.

pub mod backtest;
pub mod healthcheck;
pub mod import;
pub mod predict;
pub mod pretrain;
pub mod serve;
pub mod train;

use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::domain::{PriceSeries, Symbol};
use crate::prices::read_csv;
use crate::settings::{LogFormat, LogSettings, Settings};
use crate::telemetry::logwriter::BufferedStderr;

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
    Train(train::TrainArgs),
    /// Forecast from a CSV's `close` column; prints what `POST /predict` answers.
    Predict(predict::PredictArgs),
    /// Probe a running service (for container health checks): exit 0 on HTTP 200, 1 otherwise.
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Rolling-origin backtest of forecasting models on CSV price histories.
    Backtest(backtest::BacktestArgs),
    /// Import daily closes from CSV files into the database (for GET /predict/{symbol} and
    /// the accuracy of the prediction log).
    Import(import::ImportArgs),
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

/// Runs a parsed command line.
///
/// # Errors
/// Whatever stopped the command, with context.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let buffered = init_logging(&cli.log)?;
    let result = match cli.command {
        Command::Serve(settings) => serve::run(*settings),
        Command::Train(args) => train::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Healthcheck(args) => healthcheck::run(&args),
        Command::Backtest(args) => backtest::run(&args),
        Command::Import(args) => import::run(&args),
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

/// The closes of `input`'s CSV, the last `--last` of them when given.
fn load_series(input: &CsvInput) -> anyhow::Result<PriceSeries> {
    let series = PriceSeries::parse(read_csv(&input.csv)?.prices)
        .with_context(|| format!("bad prices in {}", input.csv.display()))?;
    Ok(match input.last {
        Some(n) => series.last_n(n.get()),
        None => series,
    })
}
