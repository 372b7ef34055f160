//! A level model stored by the previous release (format-1 sidecar, min-max scaled levels, no
//! `transform` field) loads and answers exactly as it did.
//!
//! `tests/fixtures/old_model/` was written by that release:
//! `coinsphere-ml train --symbol BTC --csv data/prices/BTC.csv --last 400 --epochs 10`, then
//! `LSTM_PRECISION=f32 coinsphere-ml predict --symbol BTC --csv ... --last 400 --days-ahead 7`
//! into `predict_7.json`; `BTC_last400.csv` holds the 400 closes it read.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[test]
fn a_format_1_level_model_answers_as_before() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/old_model");
    let dir = tempfile::tempdir().unwrap();
    for name in ["BTC_v1.0.0.json", "BTC_v1.0.0.e070393abfc2f200.safetensors"] {
        std::fs::copy(fixture.join(name), dir.path().join(name)).unwrap();
    }
    let sidecar: Value =
        serde_json::from_slice(&std::fs::read(fixture.join("BTC_v1.0.0.json")).unwrap()).unwrap();
    assert_eq!(sidecar["format_version"], 1);
    assert!(sidecar["metadata"].get("transform").is_none());

    let out = Command::new(env!("CARGO_BIN_EXE_coinsphere-ml"))
        .args(["predict", "--symbol", "BTC", "--days-ahead", "7", "--csv"])
        .arg(fixture.join("BTC_last400.csv"))
        .arg("--models-dir")
        .arg(dir.path())
        .env("LSTM_PRECISION", "f32")
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ours: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut before: Value =
        serde_json::from_slice(&std::fs::read(fixture.join("predict_7.json")).unwrap()).unwrap();
    for v in [&mut ours, &mut before] {
        v.as_object_mut().unwrap().remove("timestamp");
    }
    assert_eq!(ours["model"]["label"], "lstm");
    assert_same(&ours, &before, "");
    // Nothing was retrained: the directory still holds exactly the old pair.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

/// Equal JSON, numbers within 1e-6 relative: the f32 kernels of AVX2 and AVX-512 machines
/// round their sums in different orders.
fn assert_same(a: &Value, b: &Value, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-6 * y.abs().max(1e-9),
                "{at}: {x} now, {y} before"
            );
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}"
            );
            for (k, v) in x {
                assert_same(v, &y[k], &format!("{at}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                assert_same(v, w, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}
