//! `POST /risk-score`.

use serde_json::json;

use crate::helpers::{closes, locs, spawn_app, spawn_app_with, status_json};

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

#[tokio::test]
async fn thirty_huge_equal_prices_score_zero() {
    // Issue 12: sums of 1.7e308 overflowed and the answer was 70, degen, volatility null.
    let app = spawn_app().await;
    let body = json!({"symbol": "BIG", "historical_prices": vec![1.7e308; 30]});
    let (status, body) = status_json(app.post_json("/risk-score", &body).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["risk_score"], 0);
    assert_eq!(body["risk_level"], "conservative");
    assert_eq!(body["volatility"], 0.0);
    assert_eq!(body["measures"]["max_drawdown"]["value"], 0.0);
    assert_eq!(body["measures"]["var_1d"]["historical"]["99"], 0.0);
}

#[tokio::test]
async fn the_contract_fields_come_first_and_unchanged_then_the_measures() {
    let app = spawn_app().await;
    let prices: Vec<f64> = (1..=30).map(f64::from).collect();
    let response = app
        .post_json(
            "/risk-score",
            &json!({"symbol": "eth", "historical_prices": prices}),
        )
        .await;
    let text = response.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Key order as sent: the five contract fields, then "measures".
    let mut at = Vec::new();
    for key in [
        "symbol",
        "risk_score",
        "risk_level",
        "volatility",
        "timestamp",
        "measures",
    ] {
        at.push(text.find(&format!("\"{key}\":")).expect(key));
    }
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert_eq!(body.as_object().unwrap().len(), 6);
    assert_eq!(
        (&body["symbol"], &body["risk_score"], &body["risk_level"]),
        (&json!("ETH"), &json!(66), &json!("moderate"))
    );
    assert!((body["volatility"].as_f64().unwrap() - 0.558416).abs() < 1e-6);
    let m = &body["measures"];
    assert_eq!(m["returns"], "log");
    assert_eq!(m["annualisation_days"], 365);
    assert_eq!(m["volatility_ddof"], 1);
    // 30 prices are 29 returns: no window of 30 returns or more.
    assert_eq!(
        m["volatility_annualised"],
        json!({"30d": null, "90d": null, "365d": null})
    );
    assert_eq!(m["window_days"], 29);
    // A rising series never falls.
    assert_eq!(
        m["max_drawdown"],
        json!({"value": 0.0, "peak_index": 0, "trough_index": 0, "duration_days": 0, "recovery_index": 0})
    );
    assert_eq!(m["current_drawdown"], 0.0);
    // Every return is a gain, so even the 99% quantile loses nothing.
    assert!(m["var_1d"]["historical"]["99"].as_f64().unwrap() < 0.0);
    assert!(m["es_1d"]["historical"]["95"].is_number());
    assert!(m.get("benchmark").is_some_and(|b| b.is_null()));
}

#[tokio::test]
async fn a_year_of_btc_gets_every_window_and_a_benchmark_its_beta() {
    let app = spawn_app().await;
    let eth = closes("ETH", 400);
    let btc = closes("BTC", 200);
    let body = json!({"symbol": "ETH", "historical_prices": eth, "benchmark_prices": btc});
    let (status, body) = status_json(app.post_json("/risk-score", &body).await).await;
    assert_eq!(status, 200, "{body}");
    let m = &body["measures"];
    for w in ["30d", "90d", "365d"] {
        let v = m["volatility_annualised"][w].as_f64().unwrap();
        assert!(v > 0.1 && v < 3.0, "{w}: {v}");
    }
    assert_eq!(m["window_days"], 365);
    let dd = &m["max_drawdown"];
    let value = dd["value"].as_f64().unwrap();
    assert!(value > 0.0 && value < 1.0);
    assert_eq!(
        dd["duration_days"].as_u64().unwrap(),
        dd["trough_index"].as_u64().unwrap() - dd["peak_index"].as_u64().unwrap()
    );
    for method in ["historical", "cornish_fisher"] {
        if m["var_1d"][method].is_null() {
            // Cornish-Fisher may be undefined for a series; historical never is.
            assert_eq!(method, "cornish_fisher");
            assert!(m["es_1d"][method].is_null());
            continue;
        }
        for level in ["95", "99"] {
            let var = m["var_1d"][method][level].as_f64().unwrap();
            let es = m["es_1d"][method][level].as_f64().unwrap();
            assert!(var > 0.0 && var <= es && es < 1.0, "{method} {level}");
        }
    }
    let b = &m["benchmark"];
    assert_eq!(b["overlap_days"], 199);
    assert!(b["beta"]["90d"].as_f64().unwrap() > 0.3);
    let corr = b["correlation"]["30d"].as_f64().unwrap();
    assert!(corr > 0.3 && corr <= 1.0, "{corr}");
    assert!(b["beta"]["365d"].is_null() && b["correlation"]["365d"].is_null());
}

#[tokio::test]
async fn bad_benchmark_prices_are_a_422_naming_their_index() {
    let app = spawn_app().await;
    let prices = closes("BTC", 40);
    for (bad, loc) in [
        (
            json!([1.0, 2.0, -3.0, 0.0]),
            json!(["body", "benchmark_prices", 2]),
        ),
        (json!([1.0, 0.0]), json!(["body", "benchmark_prices", 1])),
        (json!([1.0, "x"]), json!(["body", "benchmark_prices", 1])),
        (json!("BTC"), json!(["body", "benchmark_prices"])),
    ] {
        let body = json!({"symbol": "ETH", "historical_prices": prices, "benchmark_prices": bad});
        let (status, body) = status_json(app.post_json("/risk-score", &body).await).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(locs(&body), vec![loc], "{bad}");
    }
    // A bad benchmark and a bad price are reported together.
    let mut bad_prices = prices.clone();
    bad_prices[3] = -1.0;
    let body = json!({"symbol": "ETH", "historical_prices": bad_prices, "benchmark_prices": [0.0]});
    let (status, body) = status_json(app.post_json("/risk-score", &body).await).await;
    assert_eq!(status, 422);
    assert_eq!(
        locs(&body),
        vec![
            json!(["body", "historical_prices", 3]),
            json!(["body", "benchmark_prices", 0])
        ]
    );
    // null is no benchmark.
    let body = json!({"symbol": "ETH", "historical_prices": prices, "benchmark_prices": null});
    let (status, body) = status_json(app.post_json("/risk-score", &body).await).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["measures"]["benchmark"].is_null());
}

#[tokio::test]
async fn a_risk_batch_answers_in_order_with_errors_in_place() {
    let app = spawn_app().await;
    let btc = closes("BTC", 100);
    let single = json!({"symbol": "btc", "historical_prices": btc});
    let batch = json!({"requests": [
        single,
        {"symbol": "ETH", "historical_prices": closes("ETH", 100), "benchmark_prices": btc},
        {"symbol": "SOL", "historical_prices": vec![1.0; 29]},
        {"symbol": "bad/one", "historical_prices": btc},
        {"symbol": "DOGE", "historical_prices": "nope"},
        {"symbol": "XRP", "historical_prices": btc, "benchmark_prices": [1.0, -2.0]},
        7,
    ]});
    let (status, body) = status_json(app.post_json("/risk-score-batch", &batch).await).await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    // Item 0 is what /risk-score answers, to the timestamp.
    let (_, mut alone) = status_json(app.post_json("/risk-score", &single).await).await;
    let mut first = results[0].clone();
    first["timestamp"] = json!(null);
    alone["timestamp"] = json!(null);
    assert_eq!(first, alone);
    assert_eq!(results[1]["symbol"], "ETH");
    assert!(results[1]["measures"]["benchmark"]["beta"]["30d"].is_number());
    assert_eq!(results[2]["symbol"], "SOL");
    assert_eq!(results[2]["error"]["status"], 400);
    assert_eq!(
        results[2]["error"]["detail"],
        "Need at least 30 historical price points for risk scoring"
    );
    assert_eq!(results[3]["symbol"], "bad/one");
    assert_eq!(results[3]["error"]["status"], 422);
    assert_eq!(
        results[3]["error"]["detail"][0]["loc"],
        json!(["body", "requests", 3, "symbol"])
    );
    assert_eq!(
        results[4]["error"]["detail"][0]["loc"],
        json!(["body", "requests", 4, "historical_prices"])
    );
    assert_eq!(results[5]["symbol"], "XRP");
    assert_eq!(
        results[5]["error"]["detail"][0]["loc"],
        json!(["body", "requests", 5, "benchmark_prices", 1])
    );
    assert_eq!(results[6]["error"]["status"], 422);
    assert!(results[6]["error"]["code"].is_string());
}

#[tokio::test]
async fn an_oversized_risk_batch_is_a_413() {
    let app = spawn_app_with(|s| s.ops.max_batch_size = 2.try_into().unwrap()).await;
    let item = json!({"symbol": "BTC", "historical_prices": [1.0]});
    let (status, body) = status_json(
        app.post_json(
            "/risk-score-batch",
            &json!({"requests": [item, item, item]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "batch_too_large");
    let (status, body) = status_json(
        app.post_json("/risk-score-batch", &json!({"requests": []}))
            .await,
    )
    .await;
    assert_eq!((status, body), (200, json!({"results": []})));
    let (status, _) = status_json(app.post_json("/risk-score-batch", &json!({})).await).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn batch_answers_keep_the_contract_fields_first() {
    let app = spawn_app().await;
    let batch = json!({"requests": [{"symbol": "btc", "historical_prices": closes("BTC", 30)}]});
    let text = app
        .post_json("/risk-score-batch", &batch)
        .await
        .text()
        .await
        .unwrap();
    let at: Vec<usize> = [
        "\"symbol\":",
        "\"risk_score\":",
        "\"timestamp\":",
        "\"measures\":",
    ]
    .iter()
    .map(|k| text.find(k).expect(k))
    .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
}
