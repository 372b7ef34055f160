//! `GET /models/{symbol}` and `DELETE /models/{symbol}`.

use serde_json::json;

use crate::helpers::{closes, spawn_app, status_json};

#[tokio::test]
async fn an_unknown_model_is_not_loaded_and_cannot_be_unloaded() {
    let app = spawn_app().await;
    let (status, body) = status_json(app.get("/models/sol").await).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"symbol": "SOL", "status": "not_loaded", "model_version": "v1.0.0"})
    );
    let (status, body) = status_json(app.delete("/models/sol").await).await;
    assert_eq!(
        (status, body["detail"].clone()),
        (404, json!("Model SOL not loaded"))
    );
    let (status, _) = status_json(app.delete("/models/sol?purge=true").await).await;
    assert_eq!(status, 404);
    let (status, _) = status_json(app.delete("/models/sol?purge=maybe").await).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn a_trained_model_is_loaded_unloaded_and_purged() {
    let app = spawn_app().await;
    let body = json!({"symbol": "LTC", "historical_prices": closes("LTC", 210), "days_ahead": 1});
    assert_eq!(app.post_json("/predict", &body).await.status(), 200);

    let (status, info) = status_json(app.get("/models/ltc").await).await;
    assert_eq!(status, 200);
    assert_eq!(
        info,
        json!({"symbol": "LTC", "status": "loaded", "model_version": "v1.0.0", "sequence_length": 60, "device": "cpu"})
    );

    let (status, body) = status_json(app.delete("/models/LTC").await).await;
    assert_eq!(
        (status, body["message"].clone()),
        (200, json!("Model LTC unloaded"))
    );
    assert_eq!(
        app.get("/models/LTC")
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap()["status"],
        "not_loaded"
    );
    assert_eq!(app.delete("/models/LTC").await.status(), 404);

    // Unloaded, still stored: the next request loads it without training.
    let short = json!({"symbol": "LTC", "historical_prices": closes("LTC", 80)});
    assert_eq!(app.post_json("/predict", &short).await.status(), 200);
    assert_eq!(app.trainings_total().await, 1);

    // Purged: gone from memory and disk, so a short history is a 404 again.
    let (status, body) = status_json(app.delete("/models/LTC?purge=true").await).await;
    assert_eq!(status, 200);
    assert_eq!(body["purged"], true);
    assert!(!app.models_dir.join("LTC_v1.0.0.json").exists());
    let left: Vec<_> = std::fs::read_dir(&app.models_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("LTC_v1.0.0"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let (status, _) = status_json(app.post_json("/predict", &short).await).await;
    assert_eq!(status, 404);
}
