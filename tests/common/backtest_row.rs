//! One row of the JSON backtest as clients read it: the same for `POST /backtest` and for
//! `coinsphere-ml backtest --format json`, so both tests check it here.

use serde_json::Value;

/// Asserts that `row` has exactly the keys of a backtest row, no more and no fewer.
pub fn assert_row_keys(row: &Value) {
    let mut keys: Vec<&str> = row
        .as_object()
        .expect("a row is an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "coverage",
            "horizon",
            "mae",
            "mape",
            "mase",
            "mean_confidence",
            "model",
            "n",
            "symbol"
        ]
    );
}
