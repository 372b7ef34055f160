//! `coinsphere-ml backtest` as a user runs it: the real binary on CSV files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

#[path = "common/backtest_row.rs"]
mod backtest_row;

fn backtest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coinsphere-ml"))
        .arg("backtest")
        .args(args)
        .output()
        .expect("the binary runs")
}

/// The last `n` rows of a real price file, written as `dir/<symbol>.csv`.
fn real_csv(dir: &Path, symbol: &str, n: usize) -> PathBuf {
    let text = std::fs::read_to_string(format!("data/prices/{symbol}.csv")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines.remove(0);
    let body = &lines[lines.len() - n..];
    let path = dir.join(format!("{symbol}.csv"));
    std::fs::write(&path, format!("{header}\n{}\n", body.join("\n"))).unwrap();
    path
}

#[test]
fn json_rows_name_the_symbol_from_the_file_and_score_every_fold() {
    let dir = tempfile::tempdir().unwrap();
    let btc = real_csv(dir.path(), "BTC", 500);
    let eth = real_csv(dir.path(), "ETH", 450);
    let out = backtest(&[
        "--csv",
        btc.to_str().unwrap(),
        eth.to_str().unwrap(),
        "--models",
        "naive,theta,ensemble",
        "--horizons",
        "1,7",
        "--folds",
        "4",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 2 * 3 * 2);
    for row in &rows {
        backtest_row::assert_row_keys(row);
        assert!(["BTC", "ETH"].contains(&row["symbol"].as_str().unwrap()));
        assert_eq!(row["n"], 4);
        let coverage = row["coverage"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&coverage));
        if row["model"] == "naive" {
            assert_eq!(row["mase"], 1.0);
        } else {
            assert!(row["mase"].as_f64().unwrap() > 0.0);
        }
    }
}

#[test]
fn the_table_ends_with_the_means_and_the_plot_is_an_svg() {
    let dir = tempfile::tempdir().unwrap();
    let sol = real_csv(dir.path(), "SOL", 420);
    let svg = dir.path().join("chart.svg");
    let out = backtest(&[
        "--csv",
        sol.to_str().unwrap(),
        "--models",
        "auto",
        "--horizons",
        "7",
        "--folds",
        "2",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("mean_mase"), "{table}");
    assert!(table
        .lines()
        .any(|l| l.starts_with("SOL") && l.contains("auto")));
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(
        chart.starts_with("<svg"),
        "{}",
        &chart[..100.min(chart.len())]
    );
    assert!(chart.contains("SOL: auto("), "the title names the model");
}

#[test]
fn the_markdown_report_has_the_summary_and_a_table_per_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let ada = real_csv(dir.path(), "ADA", 420);
    let out = backtest(&[
        "--csv",
        ada.to_str().unwrap(),
        "--models",
        "ses,drift",
        "--horizons",
        "1,30",
        "--folds",
        "2",
        "--format",
        "markdown",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.contains("### Mean over 1 series"), "{md}");
    assert!(md.contains("### 1 day ahead"), "{md}");
    assert!(md.contains("### 30 days ahead"), "{md}");
    assert!(md.lines().any(|l| l.starts_with("| ses |")));
}

#[test]
fn bad_arguments_fail_with_a_message_that_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let btc = real_csv(dir.path(), "BTC", 400);
    let btc = btc.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--csv", btc, "--models", "prophet"],
            "valid models: naive",
        ),
        (&["--csv", btc, "--horizons", "0"], "horizon"),
        (&["--csv", btc, "--horizons", "1", "--folds", "0"], "folds"),
        (&["--csv", "/nonexistent/X.csv"], "/nonexistent/X.csv"),
    ];
    for (args, expected) in cases {
        let out = backtest(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // Too short for one fold at 30 days after the 365 training prices.
    let short = real_csv(dir.path(), "ETH", 380);
    let out = backtest(&["--csv", short.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("need at least 395 prices"));
}
