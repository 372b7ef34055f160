//! Prices from the database, the prediction log and live accuracy, against the test PostgreSQL
//! (`common/postgres.rs`; skipped without it unless `COINSPHERE_REQUIRE_POSTGRES=1`), through
//! the real binary: `coinsphere-ml import` and `coinsphere-ml serve`.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "common/postgres.rs"]
mod pg;
#[path = "common/replica.rs"]
mod replica;
use pg::{url, Schema};
use replica::{runtime, Replica};

/// The first `n` rows of the repository's BTC file, as a CSV named `BTC.csv` in `dir`.
fn btc_csv(dir: &Path, n: usize) -> std::path::PathBuf {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/prices/BTC.csv"))
            .unwrap();
    let path = dir.join("BTC.csv");
    let lines: Vec<&str> = text.lines().take(n + 1).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn import(schema: &Schema, db_url: &str, csv: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_coinsphere-ml"))
        .args(["import", "--csv"])
        .arg(csv)
        .env_clear()
        .env("DATABASE_URL", db_url)
        .env("DATABASE_SCHEMA", schema.name.as_str())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn importing_twice_keeps_one_row_per_day_and_the_last_close() {
    let Some(schema) = Schema::new("import") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("TST.csv");
    std::fs::write(
        &csv,
        "date,close\n2024-01-01,10\n2024-01-02,11\n2024-01-03,12\n",
    )
    .unwrap();
    import(&schema, &url(), &csv);
    std::fs::write(
        &csv,
        "date,close\n2024-01-02,11.5\n2024-01-03,12\n2024-01-04,13\n",
    )
    .unwrap();
    import(&schema, &url(), &csv);
    let rows = schema
        .client()
        .query(
            &format!(
                "SELECT day::text, close FROM {}.prices WHERE symbol = 'TST' ORDER BY day",
                schema.name
            ),
            &[],
        )
        .unwrap();
    let got: Vec<(String, f64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![
            ("2024-01-01".into(), 10.0),
            ("2024-01-02".into(), 11.5),
            ("2024-01-03".into(), 12.0),
            ("2024-01-04".into(), 13.0),
        ]
    );
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let answer = client.get(url).send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap())
}

/// The value of `ml_prediction_log_total{outcome}`.
async fn log_count(client: &reqwest::Client, replica: &Replica, outcome: &str) -> f64 {
    let text = client
        .get(format!("{}/metrics", replica.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let wanted = format!("ml_prediction_log_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&wanted))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_served_forecast_is_scored_once_its_day_is_imported() {
    let Some(schema) = Schema::new("accuracy") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    import(&schema, &url(), &btc_csv(dir.path(), 400));
    runtime().block_on(async {
        let client = reqwest::Client::new();
        let replica = Replica::start(&schema, "acc", 2);
        replica.ready(&client).await;
        let (status, forecast) = get(
            &client,
            format!("{}/predict/btc?model=naive&days_ahead=1", replica.base),
        )
        .await;
        assert_eq!(status, 200, "{forecast}");
        // The naive forecast of the 400th close (2018-09-20).
        let predicted = forecast["predicted_price"].as_f64().unwrap();
        assert_eq!(predicted, forecast["current_price"].as_f64().unwrap());
        wait_until("the prediction is logged", || async {
            log_count(&client, &replica, "written").await >= 1.0
        })
        .await;
        let (_, report) = get(&client, format!("{}/accuracy/BTC", replica.base)).await;
        assert_eq!(report["overall"]["count"], 0, "{report}");
        assert_eq!(report["overall"]["unscored"], 1, "{report}");

        // The target day's close arrives.
        import(&schema, &url(), &btc_csv(dir.path(), 401));
        let actual = coinsphere_ml::prices::repository_closes("BTC")[400];
        // The import notifies every replica, which drops its cached closes of BTC.
        let deadline = Instant::now() + Duration::from_secs(30);
        let report = loop {
            let report = get(&client, format!("{}/accuracy/BTC", replica.base))
                .await
                .1;
            if report["overall"]["count"] == 1 {
                break report;
            }
            assert!(Instant::now() < deadline, "never scored: {report}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let overall = &report["overall"];
        let mae = overall["mae"].as_f64().unwrap();
        assert!((mae - (predicted - actual).abs()).abs() < 1e-9, "{report}");
        // Naive against itself: MASE 1, no direction to score.
        assert!((overall["mase"].as_f64().unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(overall["direction_count"], 0);
        assert_eq!(report["groups"][0]["model"], "naive");
        assert_eq!(report["groups"][0]["horizon"], 1);
        // Filters: by model, horizon and served day (today, UTC, is when it was served).
        let today = chrono::Utc::now().format("%Y-%m-%d");
        for (query, count) in [
            ("model=naive&horizon=1".to_owned(), 1),
            ("model=theta".to_owned(), 0),
            ("horizon=7".to_owned(), 0),
            (format!("from={today}&to={today}"), 1),
            ("to=2020-01-01".to_owned(), 0),
        ] {
            let (status, r) = get(&client, format!("{}/accuracy/BTC?{query}", replica.base)).await;
            assert_eq!(status, 200, "{query}: {r}");
            assert_eq!(r["overall"]["count"], count, "{query}: {r}");
        }
        let (_, all) = get(&client, format!("{}/accuracy", replica.base)).await;
        assert_eq!(all["symbols"][0]["symbol"], "BTC", "{all}");
        let (status, _) = get(&client, format!("{}/predict/NOPE", replica.base)).await;
        assert_eq!(status, 404);
        // POST /predict without prices takes the stored closes too (now 401 of them).
        let answer = client
            .post(format!("{}/predict", replica.base))
            .json(&json!({"symbol": "btc", "model": "naive", "days_ahead": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["current_price"].as_f64().unwrap(), actual, "{body}");
    });
}

/// A TCP proxy in front of the test PostgreSQL that the test can cut (closing every
/// connection and refusing new ones) and restore; CI's shared server is never touched.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (up2, open2) = (Arc::clone(&up), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming().filter_map(Result::ok) {
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let mut open = open2.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Self { port, up, open }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for conn in self.open.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[test]
fn requests_are_answered_while_the_database_is_cut_off_and_the_loss_is_counted() {
    let Some(schema) = Schema::new("cutoff") else {
        return;
    };
    let upstream: u16 = url()
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next()?.parse().ok())
        .unwrap_or(5432);
    let proxy = Proxy::start(upstream);
    let proxied = {
        let u = url();
        let (head, rest) = u.rsplit_once(':').unwrap();
        let db = rest.split_once('/').map_or("", |(_, db)| db);
        format!("{head}:{}/{db}", proxy.port)
    };
    let prices: Vec<f64> = coinsphere_ml::prices::repository_last_closes("ETH", 100);
    runtime().block_on(async {
        let client = reqwest::Client::new();
        let replica = Replica::start_with(
            &schema,
            "cut",
            2,
            &[
                ("DATABASE_URL", proxied.clone()),
                ("PREDICTION_LOG_QUEUE", "5".into()),
            ],
        );
        replica.ready(&client).await;
        let predict = || {
            let (client, base, prices) = (client.clone(), replica.base.clone(), prices.clone());
            async move {
                client
                    .post(format!("{base}/predict"))
                    .json(&json!({"symbol": "eth", "historical_prices": prices, "model": "naive"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        for _ in 0..3 {
            assert_eq!(predict().await, 200);
        }
        wait_until("three written", || async {
            log_count(&client, &replica, "written").await >= 3.0
        })
        .await;

        proxy.cut();
        // One record, which the writer takes and fails to write, then retries (holding it).
        assert_eq!(predict().await, 200, "answered while the database is away");
        wait_until("a failed write", || async {
            log_count(&client, &replica, "write_error").await >= 1.0
        })
        .await;
        let sent_while_cut = 40;
        for _ in 0..sent_while_cut {
            assert_eq!(predict().await, 200, "answered while the database is away");
        }
        let dropped = log_count(&client, &replica, "dropped_queue_full").await;
        assert!(
            dropped >= f64::from(sent_while_cut - 5),
            "a queue of 5 overflowed and counted it: {dropped}"
        );

        proxy.restore();
        // What was held (the batch being retried and the queue) is written; every record is
        // written or counted as dropped.
        wait_until("every record written or counted", || async {
            let written = log_count(&client, &replica, "written").await;
            let lost = log_count(&client, &replica, "dropped_queue_full").await
                + log_count(&client, &replica, "dropped_write_failed").await;
            written + lost == f64::from(3 + 1 + sent_while_cut) && written > 3.0
        })
        .await;
        let stored: i64 = tokio::task::block_in_place(|| {
            schema
                .client()
                .query_one(
                    &format!("SELECT count(*) FROM {}.predictions", schema.name),
                    &[],
                )
                .unwrap()
                .get(0)
        });
        let written = log_count(&client, &replica, "written").await;
        assert_eq!(stored as f64, written, "the counter matches the table");
    });
}
