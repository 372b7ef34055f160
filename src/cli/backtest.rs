//! `coinsphere-ml backtest`: rolling-origin backtests of CSV histories, printed as a table, JSON
//! or the markdown of ACCURACY.md.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;

use crate::backtest::{self, report, BacktestConfig};
use crate::prices::read_csv;

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

/// Runs the backtest and prints its report.
///
/// # Errors
/// Unknown models, unreadable files or a failed backtest.
pub fn run(args: &BacktestArgs) -> anyhow::Result<()> {
    let models = backtest::models_from_names(&args.models)?;
    let series = args
        .csv
        .iter()
        .map(|p| read_csv(p))
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
            println!("{}", report::render_table(&rows));
            println!("{}", report::render_overall_table(&report::overall(&rows)));
            println!(
                "{} series, {} folds, {:.1} s",
                series.len(),
                args.folds,
                started.elapsed().as_secs_f64()
            );
        }
        ReportFormat::Json => println!("{}", report::render_json(&rows)),
        ReportFormat::Markdown => print!("{}", report::render_markdown(&rows)),
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
        report::render_chart_svg(plot, &title, &first.prices, &forecast, 180)?;
        eprintln!("chart written to {}", plot.display());
    }
    Ok(())
}
