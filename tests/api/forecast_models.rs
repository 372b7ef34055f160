//! `POST /predict` with the statistical models and intervals, and `POST /backtest`.

use coinsphere_ml::forecast::{MODEL_NAMES, STATS_MODEL_VERSION};
use coinsphere_ml::http::server::Application;
use serde_json::{json, Value};

use crate::helpers::{closes, locs, spawn_app, spawn_app_with, status_json, test_settings};

/// The contract's keys of a `/predict` answer, in their order, then the additive ones.
const PREDICT_KEYS: [&str; 11] = [
    "symbol",
    "current_price",
    "predicted_price",
    "prediction_change",
    "prediction_change_percent",
    "confidence",
    "days_ahead",
    "timestamp",
    "model",
    "level",
    "forecast",
];

/// A reproducible random walk: daily log returns uniform in +-2%.
fn random_walk(n: usize) -> Vec<f64> {
    let mut seed: u64 = 42;
    let mut price = 100.0_f64;
    (0..n)
        .map(|_| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            price *= (0.04 * u).exp();
            price
        })
        .collect()
}

/// Checks the path of a `/predict` answer: days 1..=days_ahead, finite, banded, and ending at
/// `predicted_price`. Returns the widths `upper - lower`.
fn check_path(body: &Value) -> Vec<f64> {
    let days = body["days_ahead"].as_u64().unwrap() as usize;
    let path = body["forecast"].as_array().expect("a forecast list");
    assert_eq!(path.len(), days, "{body}");
    let mut widths = Vec::new();
    for (i, point) in path.iter().enumerate() {
        assert_eq!(point["day"], i + 1);
        let [price, lower, upper] =
            ["price", "lower", "upper"].map(|k| point[k].as_f64().expect("a finite number"));
        assert!(price.is_finite() && price > 0.0, "{point}");
        assert!(lower.is_finite() && upper.is_finite(), "{point}");
        assert!(lower <= price && price <= upper, "{point}");
        widths.push(upper - lower);
    }
    assert_eq!(
        path.last().unwrap()["price"].as_f64(),
        body["predicted_price"].as_f64(),
        "predicted_price is the last point of the path"
    );
    let current = body["current_price"].as_f64().unwrap();
    let change = body["prediction_change"].as_f64().unwrap();
    // serde_json's parser is not correctly rounded in the last bit: compare to 1e-12.
    let expected = body["predicted_price"].as_f64().unwrap() - current;
    assert!(
        (change - expected).abs() <= 1e-12 * current.abs(),
        "{change} vs {expected}"
    );
    let confidence = body["confidence"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&confidence), "{confidence}");
    widths
}

#[tokio::test]
async fn the_default_model_is_the_lstm_with_a_banded_path() {
    let app = spawn_app().await;
    let prices = closes("BTC", 250);
    let body = json!({"symbol": "btc", "historical_prices": prices, "days_ahead": 6});
    let response = app.post_json("/predict", &body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    // The contract's fields keep their order; the new ones come after them.
    let positions: Vec<usize> = PREDICT_KEYS
        .iter()
        .map(|k| {
            text.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body.as_object().unwrap().len(), PREDICT_KEYS.len());
    assert_eq!(body["model"]["name"], "lstm");
    assert_eq!(body["model"]["version"], "v1.0.0");
    // lstm, lstm(shrunk w) or lstm(fallback: naive): what its validation origins allowed.
    assert!(body["model"]["label"].as_str().unwrap().starts_with("lstm"));
    assert_eq!(body["level"], 0.8);
    assert_eq!(body["days_ahead"], 6);
    assert_eq!(body["current_price"], *prices.last().unwrap());
    check_path(&body);
    assert_eq!(app.trainings_total().await, 1);
}

#[tokio::test]
async fn a_statistical_model_answers_a_new_symbol_without_training() {
    let app = spawn_app().await;
    let prices = closes("SOL", 100);
    // The LSTM has no model and too few prices to train one...
    let lstm = json!({"symbol": "sol", "historical_prices": prices});
    let (status, _) = status_json(app.post_json("/predict", &lstm).await).await;
    assert_eq!(status, 404);
    // ...a statistical model needs no training.
    let naive = json!({"symbol": "sol", "historical_prices": prices, "model": "naive"});
    let (status, body) = status_json(app.post_json("/predict", &naive).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["symbol"], "SOL");
    assert_eq!(body["predicted_price"], *prices.last().unwrap());
    assert_eq!(body["prediction_change"], 0.0);
    assert_eq!(
        body["model"],
        json!({"name": "naive", "version": STATS_MODEL_VERSION, "label": "naive"})
    );
    assert_eq!(body["days_ahead"], 7);
    let widths = check_path(&body);
    // The naive model's uncertainty grows with the horizon.
    assert!(widths[6] > widths[0], "{widths:?}");
    assert_eq!(app.trainings_total().await, 0);
    assert_eq!(std::fs::read_dir(&app.models_dir).unwrap().count(), 0);
}

#[tokio::test]
async fn auto_ensemble_and_theta_give_finite_banded_paths_on_real_prices() {
    let app = spawn_app().await;
    let prices = closes("ETH", 300);
    for model in ["auto", "ensemble", "theta"] {
        let body =
            json!({"symbol": "eth", "historical_prices": prices, "days_ahead": 14, "model": model});
        let (status, body) = status_json(app.post_json("/predict", &body).await).await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["model"]["name"], model);
        assert_eq!(body["model"]["version"], STATS_MODEL_VERSION);
        let label = body["model"]["label"].as_str().unwrap();
        assert!(label.starts_with(model), "{model}: {label}");
        check_path(&body);
        // Fourteen days of ETH move: a sane forecast stays within a factor of two.
        let ratio = body["predicted_price"].as_f64().unwrap() / prices.last().unwrap();
        assert!((0.5..2.0).contains(&ratio), "{model}: {ratio}");
    }
    assert_eq!(app.trainings_total().await, 0);
}

#[tokio::test]
async fn a_higher_level_gives_bands_at_least_as_wide() {
    let app = spawn_app().await;
    let prices = closes("BNB", 250);
    for model in ["theta", "lstm"] {
        let mut widths = Vec::new();
        for level in [0.8, 0.95] {
            let body = json!({"symbol": "bnb", "historical_prices": prices, "days_ahead": 10,
                              "model": model, "interval_level": level});
            let (status, body) = status_json(app.post_json("/predict", &body).await).await;
            assert_eq!(status, 200, "{model} {level}: {body}");
            assert_eq!(body["level"], level);
            widths.push((check_path(&body), body["predicted_price"].clone()));
        }
        let ((narrow, p80), (wide, p95)) = (&widths[0], &widths[1]);
        assert_eq!(
            p80, p95,
            "{model}: the level changes the band, not the forecast"
        );
        for (n, w) in narrow.iter().zip(wide) {
            assert!(w >= n, "{model}: {narrow:?} vs {wide:?}");
        }
        assert!(
            wide.iter().zip(narrow).any(|(w, n)| w > n),
            "{model}: {narrow:?} vs {wide:?}"
        );
    }
}

#[tokio::test]
async fn an_unknown_model_is_refused_with_the_valid_names() {
    let app = spawn_app().await;
    let body =
        json!({"symbol": "btc", "historical_prices": closes("BTC", 100), "model": "prophet"});
    let (status, body) = status_json(app.post_json("/predict", &body).await).await;
    assert_eq!(status, 422);
    assert_eq!(locs(&body), vec![json!(["body", "model"])]);
    let detail = &body["detail"][0];
    assert_eq!(detail["type"], "value_error");
    let msg = detail["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("Value error, unknown model \"prophet\""),
        "{msg}"
    );
    for name in MODEL_NAMES {
        assert!(msg.contains(name), "{msg}");
    }
}

#[tokio::test]
async fn interval_levels_outside_zero_and_one_are_refused() {
    let app = spawn_app().await;
    let prices = closes("BTC", 100);
    for (level, kind) in [
        (json!(1.0), "value_error"),
        (json!(0), "value_error"),
        (json!(-0.5), "value_error"),
        (json!(80), "value_error"),
        (json!("x"), "float_type"),
        (json!(null), "float_type"),
    ] {
        let body = json!({"symbol": "btc", "historical_prices": prices, "model": "naive",
                          "interval_level": level});
        let (status, body) = status_json(app.post_json("/predict", &body).await).await;
        assert_eq!(status, 422, "{level}: {body}");
        assert_eq!(locs(&body), vec![json!(["body", "interval_level"])]);
        assert_eq!(body["detail"][0]["type"], kind, "{level}");
    }
    let mistyped = json!({"symbol": "btc", "historical_prices": prices, "model": 7});
    let (status, body) = status_json(app.post_json("/predict", &mistyped).await).await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["type"], "string_type");
    assert_eq!(locs(&body), vec![json!(["body", "model"])]);
}

#[tokio::test]
async fn every_bad_field_is_reported_at_once() {
    let app = spawn_app().await;
    let body = json!({"symbol": "a/b", "historical_prices": [1, -2], "days_ahead": 0,
                      "model": "arima", "interval_level": 1});
    let (status, body) = status_json(app.post_json("/predict", &body).await).await;
    assert_eq!(status, 422);
    assert_eq!(
        locs(&body),
        vec![
            json!(["body", "symbol"]),
            json!(["body", "historical_prices", 1]),
            json!(["body", "days_ahead"]),
            json!(["body", "model"]),
            json!(["body", "interval_level"]),
        ]
    );
}

#[tokio::test]
async fn a_statistical_model_under_sixty_prices_gets_the_contract_400() {
    let app = spawn_app().await;
    for model in ["naive", "auto", "lstm"] {
        let body = json!({"symbol": "btc", "historical_prices": closes("BTC", 59), "model": model});
        let (status, body) = status_json(app.post_json("/predict", &body).await).await;
        assert_eq!(status, 400, "{model}");
        assert_eq!(
            body["detail"],
            "Need at least 60 historical price points for prediction"
        );
    }
    // Sixty is enough for every statistical model.
    for model in MODEL_NAMES.iter().filter(|m| **m != "lstm") {
        let body = json!({"symbol": "btc", "historical_prices": closes("BTC", 60), "model": model});
        let (status, body) = status_json(app.post_json("/predict", &body).await).await;
        assert_eq!(status, 200, "{model}: {body}");
        check_path(&body);
    }
}

#[tokio::test]
async fn batch_items_may_name_a_model() {
    let app = spawn_app().await;
    let prices = closes("DOGE", 120);
    let body = json!({"requests": [
        {"symbol": "doge", "historical_prices": prices, "model": "drift", "days_ahead": 3},
        {"symbol": "doge", "historical_prices": prices, "model": "prophet"},
        {"symbol": "doge", "historical_prices": prices, "model": "theta", "interval_level": 0.5},
    ]});
    let (status, body) = status_json(app.post_json("/predict-batch", &body).await).await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["model"]["name"], "drift");
    assert_eq!(results[0]["days_ahead"], 3);
    check_path(&results[0]);
    assert_eq!(results[1]["error"]["status"], 422);
    assert_eq!(
        results[1]["error"]["detail"][0]["loc"],
        json!(["body", "model"])
    );
    assert_eq!(results[2]["level"], 0.5);
    check_path(&results[2]);
}

fn backtest_body(prices: &[f64]) -> Value {
    json!({"symbol": "synth", "historical_prices": prices, "models": ["naive", "theta"],
           "horizons": [1, 7], "folds": 5})
}

#[tokio::test]
async fn a_backtest_answers_the_rows_of_the_json_report() {
    let app = spawn_app().await;
    let response = app
        .post_json("/backtest", &backtest_body(&random_walk(500)))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let rows: Value = response.json().await.unwrap();
    let rows = rows.as_array().expect("a list of rows");
    let order: Vec<(&str, u64)> = rows
        .iter()
        .map(|r| (r["model"].as_str().unwrap(), r["horizon"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        order,
        vec![("naive", 1), ("naive", 7), ("theta", 1), ("theta", 7)]
    );
    for row in rows {
        crate::backtest_row::assert_row_keys(row);
        assert_eq!(row["symbol"], "SYNTH");
        assert_eq!(row["n"], 5);
        let coverage = row["coverage"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&coverage), "{row}");
        assert!(row["mae"].as_f64().unwrap() > 0.0, "{row}");
        if row["model"] == "naive" {
            assert_eq!(row["mase"], 1.0, "{row}");
        } else {
            assert!(row["mase"].as_f64().unwrap() > 0.0, "{row}");
        }
    }
}

#[tokio::test]
async fn a_backtest_by_default_runs_every_statistical_model_at_three_horizons() {
    let app = spawn_app().await;
    let body = json!({"symbol": "btc", "historical_prices": closes("BTC", 400), "folds": 1});
    let (status, rows) = status_json(app.post_json("/backtest", &body).await).await;
    assert_eq!(status, 200, "{rows}");
    let rows = rows.as_array().unwrap();
    let mut models: Vec<&str> = rows.iter().map(|r| r["model"].as_str().unwrap()).collect();
    models.dedup();
    assert_eq!(
        models,
        [
            "naive",
            "drift",
            "moving_average",
            "ses",
            "ets",
            "theta",
            "ensemble",
            "auto"
        ]
    );
    let horizons: Vec<u64> = rows[..3]
        .iter()
        .map(|r| r["horizon"].as_u64().unwrap())
        .collect();
    assert_eq!(horizons, [1, 7, 30]);
    assert!(rows.iter().all(|r| r["n"] == 1 && r["symbol"] == "BTC"));
    assert_eq!(app.trainings_total().await, 0);
}

#[tokio::test]
async fn backtest_fields_are_validated_at_the_boundary() {
    let app = spawn_app().await;
    let prices = random_walk(400);
    let bad = json!({"symbol": "../x", "historical_prices": prices, "models": ["naive", "prophet"],
                     "horizons": [0, 7, 91], "folds": 51, "interval_level": 1.0});
    let (status, body) = status_json(app.post_json("/backtest", &bad).await).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        locs(&body),
        vec![
            json!(["body", "symbol"]),
            json!(["body", "models", 1]),
            json!(["body", "horizons", 0]),
            json!(["body", "horizons", 2]),
            json!(["body", "folds"]),
            json!(["body", "interval_level"]),
        ]
    );
    let unknown = body["detail"][1]["msg"].as_str().unwrap();
    for name in MODEL_NAMES {
        assert!(unknown.contains(name), "{unknown}");
    }
    for (field, value, loc) in [
        ("models", json!([]), json!(["body", "models"])),
        ("models", json!(vec!["naive"; 9]), json!(["body", "models"])),
        (
            "models",
            json!(["naive", "naive"]),
            json!(["body", "models", 1]),
        ),
        ("models", json!("naive"), json!(["body", "models"])),
        ("models", json!([1]), json!(["body", "models", 0])),
        ("horizons", json!([]), json!(["body", "horizons"])),
        ("horizons", json!(vec![1; 11]), json!(["body", "horizons"])),
        ("horizons", json!([1.5]), json!(["body", "horizons", 0])),
        ("folds", json!(0), json!(["body", "folds"])),
        ("folds", json!("5"), json!(["body", "folds"])),
        (
            "interval_level",
            json!(0),
            json!(["body", "interval_level"]),
        ),
        (
            "interval_level",
            json!("x"),
            json!(["body", "interval_level"]),
        ),
    ] {
        let mut body = backtest_body(&prices);
        body[field] = value.clone();
        let (status, body) = status_json(app.post_json("/backtest", &body).await).await;
        assert_eq!(status, 422, "{field} {value}: {body}");
        assert_eq!(locs(&body), vec![loc], "{field} {value}");
    }
    let mut negative = backtest_body(&prices);
    negative["historical_prices"][3] = json!(-1.0);
    let (status, body) = status_json(app.post_json("/backtest", &negative).await).await;
    assert_eq!(status, 422);
    assert_eq!(locs(&body), vec![json!(["body", "historical_prices", 3])]);
}

#[tokio::test]
async fn a_series_too_short_for_one_fold_is_a_400() {
    let app = spawn_app().await;
    let (status, body) = status_json(
        app.post_json("/backtest", &backtest_body(&random_walk(300)))
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["detail"],
        "SYNTH: need at least 372 prices for this backtest, got 300"
    );
}

#[tokio::test]
async fn too_many_prices_for_a_backtest_is_a_400() {
    let app = spawn_app_with(|s| s.max_prices = std::num::NonZeroUsize::new(450).unwrap()).await;
    let (status, body) = status_json(
        app.post_json("/backtest", &backtest_body(&random_walk(500)))
            .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "too_many_prices");
}

#[tokio::test]
async fn a_second_backtest_while_one_runs_gets_a_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let app = Application::build(test_settings(dir.path())).await.unwrap();
    let state = app.state();
    let url = format!("http://{}/backtest", app.local_addr());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let body = backtest_body(&random_walk(500));

    // Hold the one backtest slot, as a running backtest does.
    let running = state.ops.backtests.clone().try_acquire_owned().unwrap();
    let response = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let (_, detail) = status_json(response).await;
    assert_eq!(
        detail["detail"],
        "A backtest is already running; retry later"
    );
    // Validation does not wait for the slot.
    let mut bad = body.clone();
    bad["folds"] = json!(0);
    let response = client.post(&url).json(&bad).send().await.unwrap();
    assert_eq!(response.status(), 422);

    drop(running);
    let response = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    // The finished backtest gave its slot back.
    assert_eq!(state.ops.backtests.available_permits(), 1);
}

#[tokio::test]
async fn a_repeated_statistical_request_gets_the_same_answer_from_the_cache() {
    let app = spawn_app().await;
    let body = json!({"symbol": "eth", "historical_prices": closes("ETH", 400), "model": "theta"});
    let mut answers = Vec::new();
    for _ in 0..2 {
        let (status, mut answer) = status_json(app.post_json("/predict", &body).await).await;
        assert_eq!(status, 200);
        answer["timestamp"] = Value::Null;
        answers.push(answer);
    }
    assert_eq!(answers[0], answers[1]);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        "ml_stats_cache_requests_total{result=\"miss\"} 1",
        "ml_stats_cache_requests_total{result=\"hit\"} 1",
        // Theta's calibration paths were computed once.
        "ml_stats_path_cache_requests_total{result=\"miss\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn a_new_last_price_reuses_the_calibration_paths_and_changes_the_answer() {
    let app = spawn_app().await;
    let mut prices = closes("ETH", 400);
    let mut answers = Vec::new();
    for _ in 0..2 {
        let body = json!({"symbol": "eth", "historical_prices": prices, "model": "theta"});
        let (status, answer) = status_json(app.post_json("/predict", &body).await).await;
        assert_eq!(status, 200);
        answers.push(answer);
        *prices.last_mut().unwrap() *= 1.02;
    }
    let current = |a: &Value| a["current_price"].as_f64().unwrap();
    assert!((current(&answers[1]) / current(&answers[0]) - 1.02).abs() < 1e-9);
    assert_ne!(answers[0]["forecast"], answers[1]["forecast"]);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        "ml_stats_cache_requests_total{result=\"miss\"} 2",
        "ml_stats_path_cache_requests_total{result=\"miss\"} 1",
        "ml_stats_path_cache_requests_total{result=\"hit\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    assert!(
        !metrics.contains("ml_stats_path_cache_bytes 0\n"),
        "{metrics}"
    );
}
