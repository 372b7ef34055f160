//! Security and limits (the hardening issue): keys decided on the parsed request, connection
//! and body limits, poisoned models, training modes, abandoned trainings, secrets, metric
//! cardinality and the drop-in gaps.

use std::time::{Duration, Instant};

use coinsphere_ml::registry::OUT_OF_RANGE_LABEL;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{closes, spawn_app_on, spawn_app_with, status_json, TestApp};

async fn keyed_app(adjust: impl FnOnce(&mut coinsphere_ml::settings::Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.ops.api_keys = Some("k1".parse().unwrap());
        adjust(s);
    })
    .await
}

async fn train_with_key(app: &TestApp, symbol: &str) {
    let body = json!({"historical_prices": closes(symbol, 220)});
    let response = app
        .client
        .post(app.url(&format!("/models/{symbol}/train")))
        .bearer_auth("k1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

fn stored_files(app: &TestApp, symbol: &str) -> usize {
    std::fs::read_dir(&app.models_dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with(&format!("{symbol}_")) && !name.starts_with('.')
        })
        .count()
}

#[tokio::test]
async fn a_purge_in_any_spelling_needs_the_key() {
    let app = keyed_app(|_| {}).await;
    train_with_key(&app, "LTC").await;
    assert!(stored_files(&app, "LTC") >= 2);
    // Each of these is decoded by the handler as purge=true: each must need the key.
    for query in [
        "purge=true",
        "%70urge=true",
        "purg%65=true",
        "p%75rge=1",
        "purge=%74rue",
        "purge=TRUE",
        "purge=yes",
        "purge=false&purge=true",
        "other=1&purge=1",
    ] {
        let url = app.url(&format!("/models/LTC?{query}"));
        let (status, body) = status_json(app.client.delete(&url).send().await.unwrap()).await;
        assert_eq!(
            (status, body["code"].clone()),
            (401, json!("unauthorized")),
            "{query}"
        );
        let wrong = app
            .client
            .delete(&url)
            .bearer_auth("nope")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 403, "{query}");
        assert!(stored_files(&app, "LTC") >= 2, "{query} deleted the model");
    }
    // A value that is no boolean is refused before anything happens.
    let bad = app.delete("/models/LTC?purge=maybe").await;
    assert_eq!(bad.status(), 422);
    let ok = app
        .client
        .delete(app.url("/models/LTC?%70urge=true"))
        .bearer_auth("k1")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(stored_files(&app, "LTC"), 0);
}

#[tokio::test]
async fn train_and_update_need_the_key_whatever_the_path_spelling() {
    let app = keyed_app(|_| {}).await;
    let body = json!({"historical_prices": closes("LTC", 220)});
    for path in [
        "/models/LTC/train",
        "/models/ltc/train",
        "/models/%4CTC/train",
        "/models/LTC/update",
    ] {
        let response = app
            .client
            .post(app.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }
    assert_eq!(app.trainings_total().await, 0);
}

/// Sends `head` (and nothing more) on a raw connection and reads what comes back within
/// `wait`: the answer, and whether the server closed the connection.
async fn raw_exchange(app: &TestApp, head: &str, wait: Duration) -> (String, bool) {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

#[tokio::test]
async fn a_declared_huge_body_is_refused_before_it_is_read() {
    let app = spawn_app_with(|_| {}).await;
    for path in ["/risk-score", "/predict"] {
        let started = Instant::now();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 10000000000\r\n\r\n"
        );
        let (answer, _) = raw_exchange(&app, &head, Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path} waited for the body"
        );
    }
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let app = spawn_app_with(|s| s.body_read_timeout_secs = 1.try_into().unwrap()).await;
    let head = "POST /risk-score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"symbol\"";
    let (answer, _) = raw_exchange(&app, head, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
}

#[tokio::test]
async fn silent_and_slow_header_connections_are_closed() {
    let app = spawn_app_with(|s| s.header_read_timeout_secs = 1.try_into().unwrap()).await;
    for head in ["", "GET /health HTTP/1.1\r\nhost: x\r\n"] {
        let started = Instant::now();
        let (_, closed) = raw_exchange(&app, head, Duration::from_secs(10)).await;
        assert!(closed, "{head:?}: the connection was kept open");
        assert!(started.elapsed() < Duration::from_secs(8), "{head:?}");
    }
    // A connection that sends its request in time is answered as usual.
    let (answer, _) = raw_exchange(
        &app,
        "GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n",
        Duration::from_millis(500),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn connections_beyond_the_cap_get_503_and_the_server_recovers() {
    let app = spawn_app_with(|s| s.max_connections = 4.try_into().unwrap()).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    // Let the server accept them before the next one comes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (answer, closed) = raw_exchange(
        &app,
        "GET /health HTTP/1.1\r\nhost: x\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert!(closed);
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (answer, _) = raw_exchange(
            &app,
            "GET /health HTTP/1.1\r\nhost: x\r\n\r\n",
            Duration::from_millis(500),
        )
        .await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// 200 made-up prices around 100, as the old `/docs` example posted them.
fn made_up_prices() -> Vec<f64> {
    (0..200)
        .map(|i| 100.0 + (i as f64 / 7.0).sin() * 3.0)
        .collect()
}

#[tokio::test]
async fn a_model_trained_on_made_up_prices_does_not_answer_the_real_coin() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_on(dir.path()).await;
    let poison = json!({"symbol": "BTC", "historical_prices": made_up_prices()});
    let (status, answer) = status_json(app.post_json("/predict", &poison).await).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["model"]["label"]
        .as_str()
        .unwrap()
        .starts_with("lstm"));
    let real = json!({"symbol": "BTC", "historical_prices": closes("BTC", 365), "days_ahead": 7});
    for app in [app, spawn_app_on(dir.path()).await] {
        let (status, answer) = status_json(app.post_json("/predict", &real).await).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["model"]["name"], "lstm");
        assert_eq!(answer["model"]["label"], OUT_OF_RANGE_LABEL);
        // The naive forecast: no made-up -99% move.
        assert_eq!(answer["predicted_price"], answer["current_price"]);
        let confidence = answer["confidence"].as_f64().unwrap();
        assert!(confidence > 0.5 && confidence < 1.0, "{confidence}");
        let last = &answer["forecast"][6];
        assert!(last["lower"].as_f64() < last["price"].as_f64());
    }
}

#[tokio::test]
async fn training_mode_off_never_trains_from_request_data() {
    let app = spawn_app_with(|s| {
        s.ops.training_mode = coinsphere_ml::settings::ops::TrainingMode::Off;
    })
    .await;
    let body = json!({"symbol": "ETH", "historical_prices": closes("ETH", 220)});
    let (status, answer) = status_json(app.post_json("/predict", &body).await).await;
    assert_eq!(
        (status, answer["code"].clone()),
        (404, json!("no_model")),
        "{answer}"
    );
    assert!(answer["detail"]
        .as_str()
        .unwrap()
        .contains("does not train"));
    // Fewer than 200 prices keeps the contract's text.
    let short = json!({"symbol": "ETH", "historical_prices": closes("ETH", 100)});
    let (_, answer) = status_json(app.post_json("/predict", &short).await).await;
    assert_eq!(
        answer["detail"],
        "No pre-trained model for ETH. Provide at least 200 data points for training."
    );
    // Statistical models need no training.
    let stats = json!({"symbol": "ETH", "historical_prices": closes("ETH", 220), "model": "naive"});
    assert_eq!(app.post_json("/predict", &stats).await.status(), 200);
    assert_eq!(app.trainings_total().await, 0);
    assert_eq!(app.health().await["training_mode"], "off");
}

#[tokio::test]
async fn training_mode_authenticated_trains_only_for_a_key() {
    let app = keyed_app(|s| {
        s.ops.training_mode = coinsphere_ml::settings::ops::TrainingMode::Authenticated;
    })
    .await;
    let body = json!({"symbol": "ETH", "historical_prices": closes("ETH", 220), "days_ahead": 2});
    let url = app.url("/predict");
    let anonymous = app.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let wrong = app
        .client
        .post(&url)
        .bearer_auth("x")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let batch = json!({"requests": [body.clone()]});
    let (_, answer) = status_json(app.post_json("/predict-batch", &batch).await).await;
    assert_eq!(answer["results"][0]["error"]["status"], 401);
    assert_eq!(app.trainings_total().await, 0);
    let keyed = app
        .client
        .post(&url)
        .bearer_auth("k1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 200);
    // Once the model exists, everyone is served from it.
    assert_eq!(app.post_json("/predict", &body).await.status(), 200);
    assert_eq!(app.trainings_total().await, 1);
}

#[tokio::test]
async fn authenticated_training_without_keys_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::helpers::test_settings(dir.path());
    settings.ops.training_mode = coinsphere_ml::settings::ops::TrainingMode::Authenticated;
    let started = coinsphere_ml::http::server::Application::build(settings).await;
    assert!(started.is_err());
}

/// A `/predict` whose client gives up after half a second.
async fn predict_giving_up(
    app: &TestApp,
    body: &serde_json::Value,
) -> reqwest::Result<reqwest::Response> {
    app.client
        .post(app.url("/predict"))
        .timeout(Duration::from_millis(500))
        .json(body)
        .send()
        .await
}

#[tokio::test]
async fn queued_trainings_whose_clients_left_are_cancelled() {
    let app = spawn_app_with(|s| {
        s.max_concurrent_trainings = 1.try_into().unwrap();
        s.training_queue = 2;
        // Long enough to hold the slot through the test on any machine (~10x what it needs).
        s.training.epochs = 60.try_into().unwrap();
    })
    .await;
    // One long training occupies the only slot.
    let long = json!({"symbol": "BTC", "historical_prices": closes("BTC", 800)});
    let client = app.client.clone();
    let url = app.url("/predict");
    let running = tokio::spawn(async move { client.post(url).json(&long).send().await });
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.health().await["training"]["trainings_running"] != 1 {
        assert!(Instant::now() < deadline, "the training never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Two more fill the queue, and their clients give up.
    for symbol in ["ETH", "SOL"] {
        let body = json!({"symbol": symbol, "historical_prices": closes(symbol, 220)});
        let gave_up = predict_giving_up(&app, &body).await;
        assert!(
            gave_up.is_err(),
            "{symbol} was answered while the slot was taken"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.health().await["training"]["trainings_waiting"] != 0 {
        assert!(Instant::now() < deadline, "abandoned trainings stay queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The queue has room again: a new request waits instead of getting 503.
    let body = json!({"symbol": "ADA", "historical_prices": closes("ADA", 220)});
    let waiting = predict_giving_up(&app, &body).await;
    assert!(
        waiting.is_err(),
        "expected to wait, got {:?}",
        waiting.map(|r| r.status())
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"ml_trainings_total{kind="train",outcome="abandoned"}"#),
        "{metrics}"
    );
    running.abort();
}

#[tokio::test]
async fn secrets_stay_out_of_the_help() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_coinsphere-ml"))
        .args(["serve", "--help"])
        .env("DATABASE_URL", "postgres://app:hunter2@db/prices")
        .env("API_KEYS", "sekrit-key")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("DATABASE_URL"), "{help}");
    assert!(!help.contains("hunter2"), "{help}");
    assert!(!help.contains("sekrit-key"), "{help}");
}

#[tokio::test]
async fn made_up_symbols_do_not_grow_the_metrics() {
    let app = spawn_app_with(|_| {}).await;
    for i in 0..20 {
        let body = json!({"symbol": format!("RND{i}"), "historical_prices": closes("BTC", 60), "model": "naive"});
        assert_eq!(app.post_json("/predict", &body).await.status(), 200);
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("ml_predictions_total{"))
        .collect();
    assert_eq!(
        series,
        vec![r#"ml_predictions_total{symbol="other",model="naive",outcome="ok"} 20"#]
    );
}

#[tokio::test]
async fn a_browser_preflight_is_allowed_by_default() {
    let app = spawn_app_with(|_| {}).await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/predict"))
        .header("origin", "https://app.coinsphere.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let narrowed = spawn_app_with(|s| s.ops.cors_origins = vec!["none".into()]).await;
    let answer = narrowed
        .client
        .get(narrowed.url("/health"))
        .header("origin", "https://app.coinsphere.example")
        .send()
        .await
        .unwrap();
    assert!(answer
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test]
async fn days_ahead_may_be_written_as_a_float_with_no_fraction() {
    let app = spawn_app_with(|_| {}).await;
    let body = json!({"symbol": "BTC", "historical_prices": closes("BTC", 60), "model": "naive", "days_ahead": 3.0});
    let (status, answer) = status_json(app.post_json("/predict", &body).await).await;
    assert_eq!(
        (status, answer["days_ahead"].clone()),
        (200, json!(3)),
        "{answer}"
    );
    let fraction =
        json!({"symbol": "BTC", "historical_prices": closes("BTC", 60), "days_ahead": 3.5});
    let (status, answer) = status_json(app.post_json("/predict", &fraction).await).await;
    assert_eq!(
        (status, answer["detail"][0]["type"].clone()),
        (422, json!("int_from_float"))
    );
}

#[tokio::test]
async fn models_are_listed_and_health_names_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_on(dir.path()).await;
    let (status, listing) = status_json(app.get("/models").await).await;
    assert_eq!((status, listing), (200, json!({"count": 0, "models": []})));
    let body = json!({"symbol": "bnb", "historical_prices": closes("BNB", 220), "days_ahead": 1});
    assert_eq!(app.post_json("/predict", &body).await.status(), 200);
    let (_, listing) = status_json(app.get("/models").await).await;
    assert_eq!(
        listing["models"],
        json!([{"symbol": "BNB", "status": "loaded", "model_version": "v1.0.0"}])
    );
    let restarted = spawn_app_on(dir.path()).await;
    let (_, listing) = status_json(restarted.get("/models").await).await;
    assert_eq!(listing["models"][0]["status"], "stored");
    assert_eq!(app.health().await["service"], "Coinsphere ML");
}
