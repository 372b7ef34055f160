//! Training behaviour: persistence, single flight, bounded pool, a responsive /health,
//! corrupt artefacts and degenerate series.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use coinsphere_ml::domain::{ModelVersion, Symbol};
use coinsphere_ml::store::{FsModelStore, ModelStore};
use serde_json::json;

use crate::helpers::{closes, spawn_app, spawn_app_on, spawn_app_with, status_json, TestApp};

async fn wait_until_training(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.health().await["training"]["trainings_running"] != 1 {
        assert!(Instant::now() < deadline, "training never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_stored_model_survives_a_restart_without_training() {
    let dir = tempfile::tempdir().unwrap();
    let body = json!({"symbol": "BNB", "historical_prices": closes("BNB", 230), "days_ahead": 3});
    let first = spawn_app_on(dir.path()).await;
    let (status, before) = status_json(first.post_json("/predict", &body).await).await;
    assert_eq!(status, 200);
    assert_eq!(first.trainings_total().await, 1);

    let second = spawn_app_on(dir.path()).await;
    let (status, after) = status_json(second.post_json("/predict", &body).await).await;
    assert_eq!(status, 200);
    assert_eq!(after["predicted_price"], before["predicted_price"]);
    assert_eq!(after["confidence"], before["confidence"]);
    let health = second.health().await;
    assert_eq!(health["training"]["trainings_total"], 0);
    assert_eq!(health["models_loaded_from_store_total"], 1);
}

#[tokio::test]
async fn a_corrupt_artefact_is_treated_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let body = json!({"symbol": "XRP", "historical_prices": closes("XRP", 210)});
    let first = spawn_app_on(dir.path()).await;
    assert_eq!(first.post_json("/predict", &body).await.status(), 200);

    let weights = FsModelStore::open(dir.path())
        .unwrap()
        .weights_path(
            &Symbol::parse("XRP").unwrap(),
            &ModelVersion::parse("v1.0.0").unwrap(),
        )
        .expect("the sidecar names the weights");
    let mut bytes = std::fs::read(&weights).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xFF;
    std::fs::write(&weights, bytes).unwrap();

    let second = spawn_app_on(dir.path()).await;
    let short = json!({"symbol": "XRP", "historical_prices": closes("XRP", 100)});
    let (status, _) = status_json(second.post_json("/predict", &short).await).await;
    assert_eq!(status, 404, "a corrupt model was served");
    let (status, _) = status_json(second.post_json("/predict", &body).await).await;
    assert_eq!(status, 200);
    assert_eq!(second.trainings_total().await, 1, "it retrained");
}

#[tokio::test]
async fn concurrent_first_requests_share_one_training() {
    let app = spawn_app().await;
    let body = json!({"symbol": "ADA", "historical_prices": closes("ADA", 240), "days_ahead": 2});
    let requests = (0..8).map(|_| {
        let (client, url, body) = (app.client.clone(), app.url("/predict"), body.clone());
        tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap() })
    });
    let mut answers = Vec::new();
    for r in requests.collect::<Vec<_>>() {
        let (status, body) = status_json(r.await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        answers.push(body["predicted_price"].clone());
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(app.trainings_total().await, 1);
}

#[tokio::test]
async fn health_answers_in_milliseconds_while_a_model_trains() {
    let app = spawn_app_with(|s| s.training.epochs = NonZeroUsize::new(10).unwrap()).await;
    let body = json!({"symbol": "TRX", "historical_prices": closes("TRX", 400)});
    let (client, url) = (app.client.clone(), app.url("/predict"));
    let training = tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap() });
    wait_until_training(&app).await;

    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(app.get("/health").await.status(), 200);
        slowest = slowest.max(started.elapsed());
    }
    // Still training, so every measurement above was taken during training.
    assert_eq!(
        app.health().await["training"]["trainings_running"],
        1,
        "training ended too soon to measure"
    );
    // Generous: a blocked runtime would take seconds (the whole training).
    assert!(
        slowest < Duration::from_millis(500),
        "slowest /health took {slowest:?}"
    );
    assert_eq!(training.await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_full_training_queue_answers_503_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.training.epochs = NonZeroUsize::new(10).unwrap();
        s.max_concurrent_trainings = NonZeroUsize::MIN;
        s.training_queue = 0;
    })
    .await;
    let busy = json!({"symbol": "BCH", "historical_prices": closes("BCH", 400)});
    let (client, url) = (app.client.clone(), app.url("/predict"));
    let training = tokio::spawn(async move { client.post(url).json(&busy).send().await.unwrap() });
    wait_until_training(&app).await;

    let other = json!({"symbol": "SOL", "historical_prices": closes("SOL", 250)});
    let response = app.post_json("/predict", &other).await;
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["detail"].is_string());
    assert_eq!(training.await.unwrap().status(), 200);
    // Once the slot is free, the same request trains.
    assert_eq!(app.post_json("/predict", &other).await.status(), 200);
}

#[tokio::test]
async fn a_constant_series_gives_finite_numbers_and_no_poisoned_artefact() {
    let app = spawn_app().await;
    let body = json!({"symbol": "STABLE", "historical_prices": vec![100.0; 250], "days_ahead": 7});
    let (status, body) = status_json(app.post_json("/predict", &body).await).await;
    let store = FsModelStore::open(&app.models_dir).unwrap();
    let (sym, ver) = (
        Symbol::parse("STABLE").unwrap(),
        ModelVersion::parse("v1.0.0").unwrap(),
    );
    match status {
        200 => {
            for key in [
                "current_price",
                "predicted_price",
                "prediction_change",
                "prediction_change_percent",
                "confidence",
            ] {
                assert!(
                    body[key].as_f64().is_some_and(f64::is_finite),
                    "{key}: {body}"
                );
            }
            assert!(
                store.load(&sym, &ver).unwrap().is_some(),
                "the stored model must verify"
            );
        }
        422 => {
            assert!(body["detail"].is_string());
            assert!(
                store.load(&sym, &ver).unwrap().is_none(),
                "nothing may be stored"
            );
        }
        other => panic!("constant series got {other}: {body}"),
    }
}
