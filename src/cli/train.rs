//! `coinsphere-ml train`: one symbol from one CSV, or every CSV of a directory ([`super::pretrain`]).

use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};

use super::{load_series, CsvInput};
use crate::domain::Symbol;
use crate::forecast::lstm;
use crate::settings::{StoreSettings, TrainingSettings};
use crate::store::{FsModelStore, ModelStore};

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
    pub bulk: super::pretrain::PretrainArgs,
    /// Models directory and version.
    #[command(flatten)]
    pub store: StoreSettings,
    /// Epochs, batch size, threads.
    #[command(flatten)]
    pub training: TrainingSettings,
}

/// Trains and stores the model(s) that `args` name.
///
/// # Errors
/// Bad input, a failed training or an unwritable store.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    if args.bulk.all {
        return super::pretrain::run(
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
