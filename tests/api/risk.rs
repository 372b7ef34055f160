//! `POST /risk-score`.

use serde_json::json;

use crate::helpers::{locs, spawn_app, status_json};

#[tokio::test]
async fn thirty_equal_prices_score_zero() {
    let app = spawn_app().await;
    let body = json!({"symbol": "btc", "historical_prices": vec![100.0; 30]});
    let (status, body) = status_json(app.post_json("/risk-score", &body).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["symbol"], "BTC");
    assert_eq!(body["risk_score"], 0);
    assert_eq!(body["risk_level"], "conservative");
    assert_eq!(body["volatility"], 0.0);
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn one_to_thirty_scores_66_moderate() {
    let app = spawn_app().await;
    let prices: Vec<f64> = (1..=30).map(f64::from).collect();
    let body = json!({"symbol": "ETH", "historical_prices": prices});
    let (status, body) = status_json(app.post_json("/risk-score", &body).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["risk_score"], 66);
    assert_eq!(body["risk_level"], "moderate");
    assert!((body["volatility"].as_f64().unwrap() - 0.558416).abs() < 1e-6);
}

#[tokio::test]
async fn fewer_than_thirty_prices_is_a_400() {
    let app = spawn_app().await;
    let body = json!({"symbol": "BTC", "historical_prices": vec![1.0; 29]});
    let (status, body) = status_json(app.post_json("/risk-score", &body).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["detail"],
        "Need at least 30 historical price points for risk scoring"
    );
}

#[tokio::test]
async fn missing_fields_are_a_fastapi_422() {
    let app = spawn_app().await;
    let (status, body) = status_json(app.post_json("/risk-score", &json!({})).await).await;
    assert_eq!(status, 422);
    assert_eq!(
        locs(&body),
        vec![
            json!(["body", "symbol"]),
            json!(["body", "historical_prices"])
        ]
    );
    assert_eq!(body["detail"][0]["type"], "missing");
}
