//! `POST /predict` with on-demand training.

use serde_json::json;

use crate::helpers::{closes, spawn_app, status_json};

#[tokio::test]
async fn a_new_symbol_with_enough_prices_is_trained_stored_and_answered() {
    let app = spawn_app().await;
    let prices = closes("BTC", 250);
    let body = json!({"symbol": "btc", "historical_prices": prices, "days_ahead": 5});
    let (status, body) = status_json(app.post_json("/predict", &body).await).await;
    assert_eq!(status, 200, "{body}");

    assert_eq!(body["symbol"], "BTC");
    assert_eq!(body["days_ahead"], 5);
    let current = body["current_price"].as_f64().unwrap();
    let predicted = body["predicted_price"].as_f64().unwrap();
    let change = body["prediction_change"].as_f64().unwrap();
    let percent = body["prediction_change_percent"].as_f64().unwrap();
    let confidence = body["confidence"].as_f64().unwrap();
    assert_eq!(current, *prices.last().unwrap());
    assert!(predicted.is_finite() && predicted > 0.0);
    assert!((change - (predicted - current)).abs() < 1e-9);
    assert!((percent - change / current * 100.0).abs() < 1e-9);
    assert!((0.0..=1.0).contains(&confidence));
    let ts = body["timestamp"].as_str().unwrap();
    assert!(
        ts.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
        "{ts}"
    );
    // The contract's eight keys, then the additive model, level and forecast.
    let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), 11, "{keys:?}");
    assert_eq!(body["forecast"].as_array().unwrap().len(), 5);

    assert!(app.models_dir.join("BTC_v1.0.0.json").is_file());
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(app.models_dir.join("BTC_v1.0.0.json")).unwrap())
            .unwrap();
    assert_eq!(sidecar["format_version"], 2);
    assert_eq!(sidecar["metadata"]["transform"]["kind"], "log_returns");
    let sha256 = sidecar["sha256"].as_str().unwrap();
    assert_eq!(sha256.len(), 64);
    // The weights are named by their hash, and the sidecar names them.
    let weights_file = format!("BTC_v1.0.0.{}.safetensors", &sha256[..16]);
    assert_eq!(sidecar["weights_file"], weights_file.as_str());
    assert!(app.models_dir.join(&weights_file).is_file());
    let health = app.health().await;
    assert_eq!(health["models_loaded"], 1);
    assert_eq!(health["training"]["trainings_total"], 1);
}

#[tokio::test]
async fn a_loaded_model_answers_every_horizon_without_retraining() {
    let app = spawn_app().await;
    let prices = closes("ETH", 220);
    let mut answers = Vec::new();
    let mut labels = Vec::new();
    for days in [1, 7, 30, 90] {
        let body = json!({"symbol": "ETH", "historical_prices": prices, "days_ahead": days});
        let (status, body) = status_json(app.post_json("/predict", &body).await).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["days_ahead"], days);
        answers.push(body["predicted_price"].as_f64().unwrap());
        labels.push(body["model"]["label"].as_str().unwrap().to_string());
    }
    // A stored model also answers short histories (60..200 prices).
    let body = json!({"symbol": "eth", "historical_prices": &prices[..60]});
    let (status, _) = status_json(app.post_json("/predict", &body).await).await;
    assert_eq!(status, 200);
    assert_eq!(app.trainings_total().await, 1);
    // The recursive forecast reaches different points at different horizons, unless the model
    // answers naive everywhere (its validation origins did not let it beat naive) and says so.
    if labels.iter().all(|l| l == "lstm(fallback: naive)") {
        assert!(answers.iter().all(|&a| a == *prices.last().unwrap()));
    } else {
        assert!(
            answers.windows(2).any(|w| w[0] != w[1]),
            "{answers:?} {labels:?}"
        );
    }
}
