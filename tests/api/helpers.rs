//! `spawn_app()` and request helpers.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use coinsphere_ml::http::server::Application;
use coinsphere_ml::settings::Settings;
use serde_json::Value;

/// A running server and what the test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub models_dir: PathBuf,
    /// Keeps the temporary models directory alive (None when the caller owns the directory).
    _dir: Option<tempfile::TempDir>,
}

/// Settings for tests: port 0, short single-threaded trainings.
pub fn test_settings(models_dir: &Path) -> Settings {
    let mut s = Settings {
        host: "127.0.0.1".parse().unwrap(),
        port: 0,
        ..Settings::default()
    };
    s.store.models_dir = models_dir.to_path_buf();
    s.training.epochs = NonZeroUsize::new(3).unwrap();
    s.training.threads = 1;
    s
}

/// A server with a fresh temporary models directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server with a fresh temporary models directory and adjusted settings.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    adjust(&mut settings);
    let mut app = start(settings).await;
    app._dir = Some(dir);
    app
}

/// A server over an existing models directory (to test persistence across restarts).
pub async fn spawn_app_on(models_dir: &Path) -> TestApp {
    start(test_settings(models_dir)).await
}

async fn start(settings: Settings) -> TestApp {
    let models_dir = settings.store.models_dir.clone();
    let app = Application::build(settings).await.expect("the app starts");
    let address = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        models_dir,
        _dir: None,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client.delete(self.url(path)).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn health(&self) -> Value {
        self.get("/health").await.json().await.unwrap()
    }

    pub async fn trainings_total(&self) -> u64 {
        self.health().await["training"]["trainings_total"]
            .as_u64()
            .unwrap()
    }
}

/// Status and JSON body of a response.
pub async fn status_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.expect("a JSON body");
    (status, body)
}

/// The last `n` daily closes of a coin from `data/prices`.
pub fn closes(coin: &str, n: usize) -> Vec<f64> {
    coinsphere_ml::prices::repository_last_closes(coin, n)
}

/// The `loc` of every entry of a FastAPI-style `detail` list.
pub fn locs(body: &Value) -> Vec<Value> {
    body["detail"]
        .as_array()
        .expect("a detail list")
        .iter()
        .map(|e| {
            assert!(e["msg"].is_string() && e["type"].is_string(), "{e}");
            e["loc"].clone()
        })
        .collect()
}
