//! `coinsphere-ml serve` processes on a test schema of PostgreSQL, as replicas: started, probed,
//! asked for forecasts, killed. Each test crate that includes this uses part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::pg::{url, Schema};

/// The runtime the tests drive their HTTP clients on. The tests themselves are plain `#[test]`s:
/// the PostgreSQL client of `common/postgres.rs` blocks, and may not run on a runtime thread.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// How long a replica may take to start, and a request to train.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// One `coinsphere-ml serve` process on the test schema, killed when dropped; its log is
/// printed if the test fails.
pub struct Replica {
    pub id: String,
    pub base: String,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Replica {
    /// Starts replica `id`, training `epochs` epochs on one thread; [`Replica::ready`] waits
    /// for it.
    pub fn start(schema: &Schema, id: &str, epochs: usize) -> Self {
        Self::start_with(schema, id, epochs, &[])
    }

    /// [`Replica::start`] with more environment variables.
    pub fn start_with(schema: &Schema, id: &str, epochs: usize, env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("replica.log");
        // A free port: bound, read and released (the server binds it again at once).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_coinsphere-ml"))
            .arg("serve")
            .env_clear()
            .env("DATABASE_URL", url())
            .env("DATABASE_SCHEMA", schema.name.as_str())
            .env("REPLICA_ID", id)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("MODELS_DIR", dir.path().join("unused"))
            .env("TRAINING_EPOCHS", epochs.to_string())
            .env("TRAINING_THREADS", "1")
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            id: id.into(),
            base: format!("http://127.0.0.1:{port}"),
            child,
            log,
            _dir: dir,
        }
    }

    pub async fn ready(&self, client: &reqwest::Client) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let answer = client
                .get(format!("{}/health/ready", self.base))
                .send()
                .await;
            if answer.is_ok_and(|a| a.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replica {} never got ready",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn health(&self, client: &reqwest::Client) -> Value {
        client
            .get(format!("{}/health", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Stops it as `docker stop` does (SIGTERM) and asserts that it exits cleanly.
    pub fn stop(&mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid, which it stays until reaped below.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "replica {} ignored SIGTERM",
                self.id
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "replica {} exited with {status}", self.id);
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- log of replica {} ---\n{log}", self.id);
        }
    }
}

pub async fn start_all(schema: &Schema, ids: &[&str], epochs: usize) -> Vec<Replica> {
    let replicas: Vec<Replica> = ids
        .iter()
        .map(|id| Replica::start(schema, id, epochs))
        .collect();
    let client = reqwest::Client::new();
    for replica in &replicas {
        replica.ready(&client).await;
    }
    replicas
}

/// `POST /predict` of BTC's `prices`, 7 days: the status and the body with its timestamp
/// masked (the only field that differs between equal answers).
pub async fn predict(client: &reqwest::Client, replica: &Replica, prices: &[f64]) -> (u16, String) {
    predict_at(client.clone(), replica.base.clone(), prices.to_vec()).await
}

pub async fn predict_at(client: reqwest::Client, base: String, prices: Vec<f64>) -> (u16, String) {
    let answer = client
        .post(format!("{base}/predict"))
        .json(&json!({"symbol": "btc", "historical_prices": prices, "days_ahead": 7}))
        .timeout(PATIENCE)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, mask_timestamp(&answer.text().await.unwrap()))
}

pub fn mask_timestamp(body: &str) -> String {
    const FIELD: &str = "\"timestamp\":\"";
    match body.find(FIELD) {
        Some(start) => {
            let from = start + FIELD.len();
            let end = from + body[from..].find('"').unwrap_or(0);
            format!("{}T{}", &body[..from], &body[end..])
        }
        None => body.into(),
    }
}

pub fn trainings(health: &Value) -> u64 {
    health["training"]["trainings_total"].as_u64().unwrap()
}

pub fn generation(health: &Value) -> Option<u64> {
    health["store"]["generations"]["BTC"].as_u64()
}

/// Polls `replica`'s `/health` until `training.{field}` is `value`.
pub async fn wait_for(client: &reqwest::Client, replica: &Replica, field: &str, value: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let health = replica.health(client).await;
        if health["training"][field].as_u64() == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica {}: training.{field} never reached {value}: {health}",
            replica.id
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
