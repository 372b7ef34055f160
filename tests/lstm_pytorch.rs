//! A model saved by PyTorch (`model.state_dict()` through safetensors, see
//! `bench/torch_lstm_fixtures.py`) loads through the public API and predicts what PyTorch did.

use coinsphere_ml::forecast::lstm::{
    LstmConfig, LstmMetadata, MinMaxScaler, Target, TrainedLstm, TrainingSummary, Transform,
};

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lstm")
        .join(name)
}

#[test]
fn a_pytorch_saved_spec_model_loads_and_predicts_the_same() {
    let weights = std::fs::read(fixture("spec_weights.safetensors")).unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("spec.json")).unwrap()).unwrap();
    // The PyTorch network fed min-max scaled levels: the transform of format-1 models.
    let metadata = LstmMetadata {
        config: LstmConfig {
            target: Target::Levels,
            ..LstmConfig::default()
        },
        // Prices p scale to p - 1, so the PyTorch inputs x are fed as prices x + 1.
        scaler: MinMaxScaler { min: 1.0, max: 2.0 },
        transform: Transform::MinMaxLevels,
        summary: TrainingSummary {
            n_prices: 0,
            n_train_windows: 0,
            n_validation_windows: 0,
            epochs_run: 0,
            final_train_loss: 0.0,
            validation_loss: 0.0,
            validation_mape_by_horizon: vec![0.01],
            validation_abs_log_errors_by_horizon: vec![vec![0.01]],
            train_seconds: 0.0,
            ..TrainingSummary::default()
        },
    };
    let model = TrainedLstm::from_parts(&weights, metadata).unwrap();
    let xs = meta["x"].as_array().unwrap();
    let ys = meta["y"].as_array().unwrap();
    for (x, y) in xs.iter().zip(ys) {
        let prices: Vec<f64> = x
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() + 1.0)
            .collect();
        let ours = model.forecast(&prices, 1).unwrap()[0] - 1.0;
        let theirs = y.as_f64().unwrap();
        assert!(
            (ours - theirs).abs() <= 1e-4 * theirs.abs().max(1e-2),
            "ours {ours}, PyTorch {theirs}"
        );
    }
    let wrong = LstmMetadata {
        config: LstmConfig {
            num_layers: 3,
            ..LstmConfig::default()
        },
        ..model.metadata()
    };
    assert!(TrainedLstm::from_parts(&weights, wrong).is_err());
}
