//! Out-of-sample accuracy of the statistical models on the real prices in `data/prices/`.
//!
//! `cargo run --release --example backtest_report [-- --folds N] [--models a,b] [--json]`
//! prints per-coin rows and the overall mean MASE and coverage at 80% and 95% per model and
//! horizon (1, 7, 30 days). The LSTM is left out by default: it trains for seconds per fold.

use std::path::Path;
use std::time::Instant;

use coinsphere_ml::backtest::{
    models_from_names, overall, read_csv, render_json, render_overall_table, render_table,
    run_backtest, BacktestConfig,
};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let folds = arg("--folds").map_or(Ok(40), |f| f.parse())?;
    let names = arg("--models")
        .unwrap_or_else(|| "naive,drift,moving_average,ets,theta,ensemble,auto".into());
    let names: Vec<&str> = names.split(',').collect();
    let mut files: Vec<_> = std::fs::read_dir("data/prices")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    let series = files
        .iter()
        .map(|p| read_csv(Path::new(p)))
        .collect::<Result<Vec<_>, _>>()?;
    let config = BacktestConfig {
        folds,
        extra_levels: vec![0.95],
        ..BacktestConfig::default()
    };
    let start = Instant::now();
    let rows = run_backtest(&series, &models_from_names(&names)?, &config, &|p| {
        eprint!(
            "\r{}/{} {} {}          ",
            p.done, p.total, p.symbol, p.model
        );
    })?;
    eprintln!();
    if args.iter().any(|a| a == "--json") {
        println!("{}", render_json(&rows));
        return Ok(());
    }
    println!("{}", render_table(&rows));
    println!("{}", render_overall_table(&overall(&rows)));
    println!(
        "{} series, {folds} folds, {:.1} s",
        series.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
