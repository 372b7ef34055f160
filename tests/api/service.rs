//! `/`, `/health`, unknown routes, wrong methods, OpenAPI and docs.

use serde_json::json;

use crate::helpers::{spawn_app, status_json};

#[tokio::test]
async fn root_describes_the_service_and_its_endpoints() {
    let app = spawn_app().await;
    let (status, body) = status_json(app.get("/").await).await;
    assert_eq!(status, 200);
    assert_eq!(body["service"], "Coinsphere ML");
    assert_eq!(body["status"], "running");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    for path in [
        "/health",
        "/predict",
        "/risk-score",
        "/models/{symbol}",
        "/backtest",
    ] {
        assert!(body["endpoints"][path].is_string(), "{path} missing");
    }
}

#[tokio::test]
async fn health_has_the_contract_keys() {
    let app = spawn_app().await;
    let (status, body) = status_json(app.get("/health").await).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["pytorch_available"], false);
    assert_eq!(body["device"], "cpu");
    let kernel = body["lstm_kernel"].as_str().unwrap();
    assert!(
        ["int16-avx512vnni", "int16-avx2", "f32-avx2", "f32-scalar"].contains(&kernel),
        "{kernel}"
    );
    assert_eq!(body["models_loaded"], 0);
    assert_eq!(body["training"]["trainings_total"], 0);
}

#[tokio::test]
async fn unknown_routes_get_a_json_404() {
    let app = spawn_app().await;
    let (status, body) = status_json(app.get("/nope").await).await;
    assert_eq!((status, body["detail"].clone()), (404, json!("Not Found")));
    let (status, _) = status_json(app.get("/models/BTC/nope").await).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn wrong_methods_get_a_json_405() {
    let app = spawn_app().await;
    let (status, body) = status_json(app.get("/predict").await).await;
    assert_eq!(
        (status, body["detail"].clone()),
        (405, json!("Method Not Allowed"))
    );
    let (status, _) = status_json(app.post_json("/health", &json!({})).await).await;
    assert_eq!(status, 405);
    let (status, _) =
        status_json(app.client.put(app.url("/models/BTC")).send().await.unwrap()).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn openapi_describes_every_endpoint() {
    let app = spawn_app().await;
    let (status, doc) = status_json(app.get("/openapi.json").await).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (path, method) in [
        ("/", "get"),
        ("/health", "get"),
        ("/predict", "post"),
        ("/risk-score", "post"),
        ("/risk-score-batch", "post"),
        ("/models/{symbol}", "get"),
        ("/models/{symbol}", "delete"),
        ("/predict-batch", "post"),
        ("/backtest", "post"),
        ("/models/{symbol}/train", "post"),
        ("/models/{symbol}/update", "post"),
        ("/health/live", "get"),
        ("/health/ready", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/docs", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    for schema in [
        "PredictRequest",
        "PredictResponse",
        "RiskRequest",
        "RiskResponse",
        "RiskMeasures",
        "RiskBatchRequest",
        "ValidationError",
        "BacktestRequest",
        "BacktestRow",
        "ForecastPoint",
        "ModelInfo",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}

#[tokio::test]
async fn docs_render_offline() {
    let app = spawn_app().await;
    let response = app.get("/docs").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("/openapi.json"));
    assert!(
        !html.contains("src=\"http"),
        "the docs page loads a remote script"
    );
    assert!(
        !html.contains("href=\"http"),
        "the docs page loads a remote stylesheet"
    );
}
