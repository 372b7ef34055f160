//! The targets of issue 4 on the real prices in `data/prices/`, out of sample (slow: about a
//! minute in release; run with `cargo test --release --test accuracy -- --ignored --nocapture`).
//! ACCURACY.md reports the same backtest (`scripts/accuracy-report.sh`).

use std::path::Path;

use coinsphere_ml::backtest::report::{overall, render_overall_table};
use coinsphere_ml::backtest::{models_from_names, run_backtest, BacktestConfig};
use coinsphere_ml::prices::read_csv;

#[test]
#[ignore = "backtests ten coins at 100 folds (about a minute in release)"]
fn auto_and_ensemble_are_never_worse_than_naive_and_intervals_are_calibrated() {
    let mut files: Vec<_> = std::fs::read_dir("data/prices")
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 10, "every coin of data/prices");
    let series: Vec<_> = files
        .iter()
        .map(|p| read_csv(Path::new(p)).unwrap())
        .collect();
    let config = BacktestConfig {
        folds: std::env::var("FOLDS").map_or(100, |f| f.parse().unwrap()),
        extra_levels: vec![0.95],
        ..BacktestConfig::default()
    };
    let models = models_from_names(&["naive", "ses", "theta", "ensemble", "auto"]).unwrap();
    let rows = run_backtest(&series, &models, &config, &|_| {}).unwrap();
    let summary = overall(&rows);
    println!("{}", render_overall_table(&summary));
    for r in &summary {
        let [(_, c80), (_, c95)] = r.mean_coverage_by_level[..] else {
            panic!("two levels");
        };
        assert!(
            (0.77..=0.83).contains(&c80),
            "{} h={}: 80% covers {c80}",
            r.model,
            r.horizon
        );
        assert!(
            (0.93..=0.97).contains(&c95),
            "{} h={}: 95% covers {c95}",
            r.model,
            r.horizon
        );
        if r.model == "auto" || r.model == "ensemble" {
            // "At most 1.00", at the two decimals of the target: at 30 days auto keeps naive
            // on nearly every fold, so its mean is 1.000 up to +-0.0002 of noise from the
            // few folds where it does not.
            assert!(
                r.mean_mase < 1.0005,
                "{} h={}: MASE {}",
                r.model,
                r.horizon,
                r.mean_mase
            );
        }
    }
}
