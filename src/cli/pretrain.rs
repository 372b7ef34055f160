//! `coinsphere-ml train --all`: trains every `SYMBOL.csv` of a directory in parallel (one
//! engine thread per job, `--jobs` jobs), with a progress bar per symbol on a terminal, and
//! prints a summary table. A symbol that fails is reported in the table; the others still train.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::domain::{ModelVersion, PriceSeries, Symbol};
use crate::forecast::lstm::{self, LstmConfig};
use crate::store::{FsModelStore, ModelStore};

/// Why bulk pretraining could not start, or what failed for one symbol.
#[derive(Debug, thiserror::Error)]
pub enum PretrainError {
    /// The data directory cannot be listed.
    #[error("cannot read the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `--symbols` names a symbol without a CSV.
    #[error("no {0}.csv in the data directory")]
    MissingCsv(Symbol),
    /// No CSV to train.
    #[error("no SYMBOL.csv file to train in {0}")]
    Nothing(PathBuf),
    /// The CSV could not be read or holds bad prices.
    #[error("{0}")]
    Input(String),
    /// The engine failed.
    #[error("training failed: {0}")]
    Training(#[from] lstm::LstmError),
    /// The model could not be stored.
    #[error("cannot store the model: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// The flags of bulk mode (`train --all`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct PretrainArgs {
    /// Train every SYMBOL.csv of --data-dir instead of one --symbol/--csv.
    #[arg(long, requires = "data_dir")]
    pub all: bool,
    /// Directory of SYMBOL.csv files (with --all).
    #[arg(long, requires = "all")]
    pub data_dir: Option<PathBuf>,
    /// Only these symbols (comma-separated; with --all).
    #[arg(long, value_delimiter = ',', requires = "all")]
    pub symbols: Vec<Symbol>,
    /// Symbols trained at once (default: the number of cores); each uses one engine thread.
    #[arg(long, requires = "all")]
    pub jobs: Option<NonZeroUsize>,
}

/// One CSV to train.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Symbol (the file stem, upper-cased).
    pub symbol: Symbol,
    /// The CSV.
    pub csv: PathBuf,
}

/// One row of the summary table.
#[derive(Clone, Debug)]
pub struct Row {
    /// Symbol.
    pub symbol: Symbol,
    /// Prices trained on (0 when reading failed).
    pub points: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Final training loss and 1-step validation MAPE (0.05 = 5%), or the error.
    pub result: Result<(f64, f64), String>,
}

/// The CSVs to train: every `*.csv` whose stem is a valid symbol, or exactly `only`.
///
/// # Errors
/// [`PretrainError::DataDir`], [`PretrainError::MissingCsv`], [`PretrainError::Nothing`].
pub fn discover(dir: &Path, only: &[Symbol]) -> Result<Vec<Job>, PretrainError> {
    let entries = std::fs::read_dir(dir).map_err(|source| PretrainError::DataDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut jobs: Vec<Job> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")))
        .filter_map(|csv| {
            let symbol = Symbol::parse(csv.file_stem()?.to_str()?).ok()?;
            Some(Job { symbol, csv })
        })
        .collect();
    jobs.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    if !only.is_empty() {
        if let Some(missing) = only.iter().find(|s| !jobs.iter().any(|j| &j.symbol == *s)) {
            return Err(PretrainError::MissingCsv(missing.clone()));
        }
        jobs.retain(|j| only.contains(&j.symbol));
    }
    if jobs.is_empty() {
        return Err(PretrainError::Nothing(dir.to_path_buf()));
    }
    Ok(jobs)
}

/// Trains `jobs` with `parallel` workers, one engine thread each, storing every model under
/// `version`; returns one row per job, in the order of `jobs`. Progress bars are drawn when
/// `progress` is set.
pub fn pretrain(
    jobs: &[Job],
    config: &LstmConfig,
    store: &FsModelStore,
    version: &ModelVersion,
    parallel: usize,
    progress: bool,
) -> Vec<Row> {
    let config = LstmConfig {
        threads: 1,
        ..config.clone()
    };
    let bars = if progress {
        MultiProgress::new()
    } else {
        MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    };
    let style = ProgressStyle::with_template(
        "{prefix:>8} {bar:30} {pos:>3}/{len} epochs {elapsed:>4} {msg}",
    )
    .expect("valid template");
    let queue: Mutex<VecDeque<(usize, &Job)>> = Mutex::new(jobs.iter().enumerate().collect());
    let rows: Mutex<Vec<Option<Row>>> = Mutex::new(vec![None; jobs.len()]);
    let next = || queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
    std::thread::scope(|s| {
        for _ in 0..parallel.clamp(1, jobs.len().max(1)) {
            s.spawn(|| {
                while let Some((i, job)) = next() {
                    let bar = bars.add(ProgressBar::new(config.epochs as u64));
                    bar.set_style(style.clone());
                    bar.set_prefix(job.symbol.to_string());
                    let row = train_one(job, &config, store, version, &bar);
                    bar.finish_with_message(match &row.result {
                        Ok((loss, mape)) => format!("loss {loss:.6}, MAPE {:.2}%", mape * 100.0),
                        Err(e) => format!("failed: {e}"),
                    });
                    rows.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(row);
                }
            });
        }
    });
    rows.into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.expect("every job ran"))
        .collect()
}

fn train_one(
    job: &Job,
    config: &LstmConfig,
    store: &FsModelStore,
    version: &ModelVersion,
    bar: &ProgressBar,
) -> Row {
    let started = Instant::now();
    let mut points = 0;
    let result = (|| {
        let closes = crate::prices::read_csv(&job.csv)
            .map(|s| s.prices)
            .map_err(|e| PretrainError::Input(format!("{e:#}")))?;
        let series = PriceSeries::parse(closes)
            .map_err(|e| PretrainError::Input(format!("{}: {e}", job.csv.display())))?;
        points = series.len();
        let model = lstm::train(config, series.as_slice(), &mut |p| {
            bar.set_position(p.epoch as u64);
            bar.set_message(format!("loss {:.6}", p.train_loss));
        })?;
        store.save(&job.symbol, version, &model)?;
        Ok::<_, PretrainError>((model.summary().final_train_loss, model.validation_mape(1)))
    })();
    Row {
        symbol: job.symbol.clone(),
        points,
        seconds: started.elapsed().as_secs_f64(),
        result: result.map_err(|e| e.to_string()),
    }
}

/// The summary table: symbol, points, seconds, final loss, validation error (1-step MAPE).
pub fn summary_table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<10} {:>7} {:>9} {:>12} {:>16}\n",
        "symbol", "points", "seconds", "final loss", "validation MAPE"
    );
    for r in rows {
        let tail = match &r.result {
            Ok((loss, mape)) => format!("{loss:>12.6} {:>15.2}%", mape * 100.0),
            Err(e) => format!("failed: {e}"),
        };
        out.push_str(&format!(
            "{:<10} {:>7} {:>9.2} {tail}\n",
            r.symbol.as_str(),
            r.points,
            r.seconds
        ));
    }
    out
}

/// Runs `train --all`: discovers, trains, prints the table to stdout.
///
/// # Errors
/// When nothing can be trained, or when any symbol failed (after printing the table).
pub fn run(
    args: &PretrainArgs,
    config: &LstmConfig,
    models_dir: &Path,
    version: &ModelVersion,
) -> anyhow::Result<()> {
    let dir = args
        .data_dir
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("--all needs --data-dir"))?;
    let jobs = discover(dir, &args.symbols)?;
    let store = FsModelStore::open(models_dir)?;
    let parallel = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        NonZeroUsize::get,
    );
    let rows = pretrain(
        &jobs,
        config,
        &store,
        version,
        parallel,
        std::io::stderr().is_terminal(),
    );
    print!("{}", summary_table(&rows));
    let failed = rows.iter().filter(|r| r.result.is_err()).count();
    if failed > 0 {
        anyhow::bail!("{failed} of {} symbols failed", rows.len());
    }
    println!("{} models saved to {}", rows.len(), models_dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_csv(dir: &Path, name: &str, closes: &[f64]) {
        let mut text = String::from("date,open,high,low,close,volume\n");
        for (i, c) in closes.iter().enumerate() {
            text.push_str(&format!("d{i},{c},{c},{c},{c},1\n"));
        }
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn wave(n: usize, period: f64) -> Vec<f64> {
        (0..n)
            .map(|i| 50.0 + 5.0 * (i as f64 / period).sin())
            .collect()
    }

    #[test]
    fn every_csv_is_trained_in_parallel_and_failures_are_reported() {
        let data = tempfile::tempdir().unwrap();
        write_csv(data.path(), "AAA.csv", &wave(220, 4.0));
        write_csv(data.path(), "bbb.csv", &wave(230, 6.0));
        write_csv(data.path(), "CCC.csv", &[1.0; 10]);
        std::fs::write(data.path().join("notes.txt"), "ignored").unwrap();
        let jobs = discover(data.path(), &[]).unwrap();
        let names: Vec<&str> = jobs.iter().map(|j| j.symbol.as_str()).collect();
        assert_eq!(names, ["AAA", "BBB", "CCC"]);

        let models = tempfile::tempdir().unwrap();
        let store = FsModelStore::open(models.path()).unwrap();
        let version = ModelVersion::parse("v1.0.0").unwrap();
        let config = LstmConfig {
            epochs: 1,
            hidden_size: 8,
            ..LstmConfig::default()
        };
        let rows = pretrain(&jobs, &config, &store, &version, 2, false);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].points, 220);
        assert_eq!(rows[1].points, 230);
        assert!(rows[0].result.is_ok() && rows[1].result.is_ok());
        assert!(rows[2].result.is_err(), "10 prices cannot train");
        for sym in ["AAA", "BBB"] {
            let loaded = store.load(&Symbol::parse(sym).unwrap(), &version).unwrap();
            assert!(loaded.is_some(), "{sym} not stored");
        }
        let table = summary_table(&rows);
        assert!(table.starts_with("symbol"));
        assert_eq!(table.lines().count(), 4);
        assert!(table.contains("failed"));
    }

    #[test]
    fn symbols_filter_the_files_and_a_missing_one_is_an_error() {
        let data = tempfile::tempdir().unwrap();
        write_csv(data.path(), "AAA.csv", &wave(70, 4.0));
        write_csv(data.path(), "BBB.csv", &wave(70, 4.0));
        let only = [Symbol::parse("bbb").unwrap()];
        let jobs = discover(data.path(), &only).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].symbol.as_str(), "BBB");
        let missing = [Symbol::parse("ZZZ").unwrap()];
        assert!(matches!(
            discover(data.path(), &missing),
            Err(PretrainError::MissingCsv(_))
        ));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            discover(empty.path(), &[]),
            Err(PretrainError::Nothing(_))
        ));
    }
}
