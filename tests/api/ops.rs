//! Operations: metrics, probes, warm-up, batch, retraining and fine-tuning endpoints, access
//! control, CORS, time limits and graceful shutdown.

use std::time::{Duration, Instant};

use coinsphere_ml::http::server::Application;
use serde_json::json;

use crate::helpers::{closes, spawn_app, spawn_app_with, status_json, test_settings, TestApp};

async fn wait_ready(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.get("/health/ready").await.status() != 200 {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn liveness_answers_and_readiness_follows_warm_up() {
    let app = spawn_app().await;
    let (status, body) = status_json(app.get("/health/live").await).await;
    assert_eq!((status, body["status"].clone()), (200, json!("alive")));
    wait_ready(&app).await;
    let (status, body) = status_json(app.get("/health/ready").await).await;
    assert_eq!((status, body["status"].clone()), (200, json!("ready")));
    // The KServe / Open Inference Protocol V2 paths answer the same.
    for (v2, v1) in [
        ("/v2/health/live", "/health/live"),
        ("/v2/health/ready", "/health/ready"),
    ] {
        assert_eq!(
            status_json(app.get(v2).await).await,
            status_json(app.get(v1).await).await,
            "{v2}"
        );
    }
}

#[tokio::test]
async fn warm_up_loads_stored_models_and_skips_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    {
        let first = spawn_app_with(|s| s.store.models_dir = dir.path().to_path_buf()).await;
        let train = json!({"historical_prices": closes("ETH", 220)});
        let (status, body) = status_json(first.post_json("/models/eth/train", &train).await).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "trained");
        assert_eq!(body["points"], 220);
    }
    let second = spawn_app_with(|s| {
        s.store.models_dir = dir.path().to_path_buf();
        s.ops.warmup_symbols = "ETH,NOPE".parse().unwrap();
    })
    .await;
    wait_ready(&second).await;
    let (_, model) = status_json(second.get("/models/ETH").await).await;
    assert_eq!(model["status"], "loaded");
    assert_eq!(second.health().await["models_loaded"], 1);
}

#[tokio::test]
async fn metrics_count_predictions_cache_and_routes_by_template() {
    let app = spawn_app().await;
    let body = json!({"symbol": "BTC", "historical_prices": closes("BTC", 220), "days_ahead": 3});
    assert_eq!(app.post_json("/predict", &body).await.status(), 200);
    assert_eq!(app.post_json("/predict", &body).await.status(), 200);
    let short = json!({"symbol": "DOGE", "historical_prices": closes("DOGE", 80)});
    assert_eq!(app.post_json("/predict", &short).await.status(), 404);
    assert_eq!(app.get("/models/btc").await.status(), 200);
    assert_eq!(app.get("/no/such/path").await.status(), 404);

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    // The whole scrape parses with a real Prometheus parser.
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("the scrape parses");
    let names: Vec<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for name in [
        "ml_build_info",
        "ml_predictions_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(names.contains(&name), "no {name} in\n{text}");
    }
    for line in [
        "ml_predictions_total{symbol=\"BTC\",model=\"lstm\",outcome=\"ok\"} 2",
        "ml_predictions_total{symbol=\"other\",model=\"lstm\",outcome=\"no_model\"} 1",
        "ml_prediction_duration_seconds_count{model=\"lstm\"} 3",
        "ml_trainings_total{kind=\"train\",outcome=\"ok\"} 1",
        "ml_training_duration_seconds_count{kind=\"train\"} 1",
        "ml_model_cache_requests_total{result=\"hit\"} 1",
        "ml_models_loaded 1",
        "ml_http_requests_total{method=\"POST\",route=\"/predict\",status=\"200\"} 2",
        "ml_http_requests_total{method=\"GET\",route=\"/models/{symbol}\",status=\"200\"} 1",
        "ml_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn a_batch_answers_in_order_and_a_bad_item_fails_alone() {
    let app = spawn_app().await;
    let prices = closes("SOL", 220);
    let batch = json!({"requests": [
        {"symbol": "sol", "historical_prices": prices, "days_ahead": 2},
        {"symbol": "SOL", "historical_prices": prices[..30].to_vec()},
        {"symbol": "bad/one", "historical_prices": prices},
        {"symbol": "SOL", "historical_prices": "nope"},
        {"symbol": "SOL", "historical_prices": prices, "days_ahead": 5},
    ]});
    let (status, body) = status_json(app.post_json("/predict-batch", &batch).await).await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0]["symbol"], "SOL");
    assert_eq!(results[0]["days_ahead"], 2);
    assert_eq!(results[1]["symbol"], "SOL");
    assert_eq!(results[1]["error"]["status"], 400);
    assert_eq!(
        results[1]["error"]["detail"],
        "Need at least 60 historical price points for prediction"
    );
    assert_eq!(results[2]["symbol"], "bad/one");
    assert_eq!(results[2]["error"]["status"], 422);
    assert_eq!(
        results[3]["error"]["detail"][0]["loc"],
        json!(["body", "requests", 3, "historical_prices"])
    );
    assert_eq!(results[4]["days_ahead"], 5);
    // Both good items shared one training.
    assert_eq!(app.trainings_total().await, 1);
}

#[tokio::test]
async fn an_oversized_batch_is_refused_and_an_empty_one_is_empty() {
    let app = spawn_app_with(|s| s.ops.max_batch_size = 2.try_into().unwrap()).await;
    let item = json!({"symbol": "BTC", "historical_prices": [1.0]});
    let (status, body) = status_json(
        app.post_json("/predict-batch", &json!({"requests": [item, item, item]}))
            .await,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "batch_too_large");
    let (status, body) = status_json(
        app.post_json("/predict-batch", &json!({"requests": []}))
            .await,
    )
    .await;
    assert_eq!((status, body), (200, json!({"results": []})));
    let (status, _) = status_json(app.post_json("/predict-batch", &json!({})).await).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn update_fine_tunes_an_existing_model_and_train_needs_enough_prices() {
    let app = spawn_app().await;
    let prices = closes("ADA", 320);
    let update = json!({"historical_prices": prices[200..].to_vec(), "epochs": 2});
    let (status, _) = status_json(app.post_json("/models/ADA/update", &update).await).await;
    assert_eq!(status, 404, "no model to update yet");

    let short = json!({"historical_prices": prices[..100].to_vec()});
    let (status, body) = status_json(app.post_json("/models/ADA/train", &short).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["detail"],
        "Need at least 200 historical price points for training, got 100"
    );

    let train = json!({"historical_prices": prices[..220].to_vec()});
    assert_eq!(
        app.post_json("/models/ADA/train", &train).await.status(),
        200
    );
    let (status, body) = status_json(app.post_json("/models/ada/update", &update).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "updated");
    assert_eq!(body["points"], 120);
    assert_eq!(body["epochs"], 2);
    let bad = json!({"historical_prices": prices[200..].to_vec(), "epochs": 0});
    assert_eq!(
        app.post_json("/models/ADA/update", &bad).await.status(),
        422
    );

    // The fine-tuned model serves.
    let predict = json!({"symbol": "ADA", "historical_prices": prices[200..].to_vec()});
    assert_eq!(app.post_json("/predict", &predict).await.status(), 200);
    assert_eq!(app.trainings_total().await, 2);
}

#[tokio::test]
async fn a_stale_model_is_retrained_in_the_background_while_the_old_one_serves() {
    let app = spawn_app_with(|s| s.ops.model_max_age = Some("1s".parse().unwrap())).await;
    let body = json!({"symbol": "XRP", "historical_prices": closes("XRP", 220)});
    assert_eq!(app.post_json("/predict", &body).await.status(), 200);
    assert_eq!(app.trainings_total().await, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Served at once by the old model; the retraining starts behind it.
    assert_eq!(app.post_json("/predict", &body).await.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.trainings_total().await < 2 {
        assert!(Instant::now() < deadline, "no background retraining");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn auth_app() -> TestApp {
    spawn_app_with(|s| s.ops.api_keys = Some("k1,k2".parse().unwrap())).await
}

#[tokio::test]
async fn with_api_keys_train_update_and_purge_need_a_valid_bearer_key() {
    let app = auth_app().await;
    let train = json!({"historical_prices": closes("LTC", 220)});
    let url = app.url("/models/LTC/train");
    let (status, body) =
        status_json(app.client.post(&url).json(&train).send().await.unwrap()).await;
    assert_eq!((status, body["code"].clone()), (401, json!("unauthorized")));
    let wrong = app
        .client
        .post(&url)
        .bearer_auth("nope")
        .json(&train)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let ok = app
        .client
        .post(&url)
        .bearer_auth("k2")
        .json(&train)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    let update = app.url("/models/LTC/update");
    let no_key = app.client.post(&update).json(&train).send().await.unwrap();
    assert_eq!(no_key.status(), 401);

    let purge = app.url("/models/LTC?purge=true");
    assert_eq!(
        app.client.delete(&purge).send().await.unwrap().status(),
        401
    );
    let purged = app
        .client
        .delete(&purge)
        .bearer_auth("k1")
        .send()
        .await
        .unwrap();
    assert_eq!(purged.status(), 200);
}

#[tokio::test]
async fn with_api_keys_reads_predictions_and_unloading_stay_open() {
    let app = auth_app().await;
    assert_eq!(app.get("/health").await.status(), 200);
    assert_eq!(app.get("/models/BTC").await.status(), 200);
    let risk = json!({"symbol": "BTC", "historical_prices": closes("BTC", 30)});
    assert_eq!(app.post_json("/risk-score", &risk).await.status(), 200);
    // Plain unloading is not a purge: 404 because nothing is loaded, not 401.
    assert_eq!(app.delete("/models/BTC").await.status(), 404);
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let app = spawn_app_with(|s| s.ops.cors_origins = vec!["https://app.example".into()]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/predict"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_request_past_its_time_limit_gets_504_and_its_training_goes_on() {
    let app = spawn_app_with(|s| {
        s.ops.training_timeout_secs = 1.try_into().unwrap();
        // Far more work than the 1 s limit on any machine, so the 504 does not depend on speed.
        s.training.epochs = 60.try_into().unwrap();
    })
    .await;
    let body = json!({"symbol": "BNB", "historical_prices": closes("BNB", 500)});
    let started = Instant::now();
    let (status, answer) = status_json(app.post_json("/predict", &body).await).await;
    assert_eq!((status, answer["code"].clone()), (504, json!("timeout")));
    // Generous bound: the answer comes at the limit, not after the training.
    assert!(started.elapsed() < Duration::from_secs(60));
    // The training was not cancelled: its model serves the next request.
    let deadline = Instant::now() + Duration::from_secs(600);
    while app.health().await["models_loaded"] != 1 {
        assert!(Instant::now() < deadline, "the training was lost");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.trainings_total().await, 1);
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    let app = Application::build(test_settings(dir.path())).await.unwrap();
    let address = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    // A first prediction trains a model: long enough to shut down in the middle of it.
    let body = json!({"symbol": "BTC", "historical_prices": closes("BTC", 600)});
    let in_flight = tokio::spawn({
        let (client, url) = (client.clone(), format!("{address}/predict"));
        async move { client.post(url).json(&body).send().await.unwrap().status() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    assert_eq!(in_flight.await.unwrap(), 200);
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    assert!(client
        .get(format!("{address}/health"))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn without_a_database_prices_by_symbol_and_accuracy_say_so() {
    let app = spawn_app().await;
    for path in ["/predict/BTC?days_ahead=3", "/accuracy", "/accuracy/BTC"] {
        let (status, body) = status_json(app.get(path).await).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["code"], "no_database", "{path}");
        assert_eq!(
            body["detail"],
            "No database is configured: prices by symbol, the prediction log and accuracy need DATABASE_URL"
        );
    }
    // The symbol is checked first: a bad one is the usual 422.
    let (status, _) = status_json(app.get("/predict/..%2Fetc").await).await;
    assert_eq!(status, 422);
    let (status, _) = status_json(app.get("/accuracy/BTC?from=yesterday").await).await;
    assert_eq!(status, 422);
    // Without a database, POST /predict still needs its prices (FastAPI's missing field).
    let (status, body) =
        status_json(app.post_json("/predict", &json!({"symbol": "BTC"})).await).await;
    assert_eq!(status, 422);
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["body", "historical_prices"])
    );
    assert_eq!(body["detail"][0]["type"], "missing");
}
