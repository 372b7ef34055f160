//! The cost of loading (and publishing) one model from each store: the models directory,
//! PostgreSQL with the weights in the row, and PostgreSQL with the weights in an S3-protocol
//! object store (`s3s-fs` on localhost, as in `tests/object_store.rs`). A load is what a
//! replica does on a cache miss or after another replica's publication: read, verify the
//! SHA-256, parse the sidecar and the safetensors, build the model.
//!
//! `cargo bench --bench store` (PostgreSQL: `TEST_DATABASE_URL`, else
//! `postgres://postgres@127.0.0.1:5432/test`; s3s-fs: `S3S_FS` or on `PATH`). A store that is
//! not reachable is left out, with a line saying so.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coinsphere_ml::domain::{ModelVersion, Symbol};
use coinsphere_ml::forecast::lstm::{self, LstmConfig, TrainedLstm};
use coinsphere_ml::prices::repository_last_closes;
use coinsphere_ml::store::objects::ObjectBlobs;
use coinsphere_ml::store::postgres::{PgModelStore, SchemaName};
use coinsphere_ml::store::{FsModelStore, ModelStore};
use criterion::{criterion_group, criterion_main, Criterion};
use object_store::aws::AmazonS3Builder;

const BUCKET: &str = "coinsphere-bench";

fn url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The SPEC model (2 x 64 units), one epoch on 400 BTC closes: the weights' size is what
/// matters here, not their quality.
fn spec_model() -> TrainedLstm {
    let config = LstmConfig {
        epochs: 1,
        ..LstmConfig::default()
    };
    lstm::train(&config, &repository_last_closes("BTC", 400), &mut |_| {}).unwrap()
}

/// A schema of its own on the benchmark's PostgreSQL, dropped at the end.
struct BenchSchema(SchemaName);

impl BenchSchema {
    fn new(kind: &str) -> Option<Self> {
        if let Err(e) = postgres::Client::connect(&url(), postgres::NoTls) {
            eprintln!("no PostgreSQL at {} ({e}): its rows are left out", url());
            return None;
        }
        let name = format!("bench_store_{kind}_{}", std::process::id());
        Some(Self(SchemaName::parse(&name).unwrap()))
    }
}

impl Drop for BenchSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&url(), postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0));
        }
    }
}

/// `s3s-fs` over a temporary directory, killed at the end.
struct S3s {
    child: Child,
    endpoint: String,
    _root: tempfile::TempDir,
}

impl S3s {
    fn start() -> Option<Self> {
        let binary = std::env::var("S3S_FS").unwrap_or_else(|_| "s3s-fs".into());
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            eprintln!("no {binary}: the object-store rows are left out");
            return None;
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            _root: root,
        })
    }

    fn blobs(&self) -> ObjectBlobs {
        let s3 = AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(BUCKET)
            .with_skip_signature(true)
            .build()
            .unwrap();
        ObjectBlobs::new(Arc::new(s3), "models").unwrap()
    }
}

impl Drop for S3s {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stores(c: &mut Criterion) {
    let model = spec_model();
    let (sym, ver) = (
        Symbol::parse("BTC").unwrap(),
        ModelVersion::parse("v1.0.0").unwrap(),
    );
    eprintln!(
        "model: {} bytes of safetensors",
        model.weights_safetensors().len()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut stores: Vec<(&str, Box<dyn ModelStore>)> = vec![(
        "filesystem",
        Box::new(FsModelStore::open(dir.path()).unwrap()),
    )];
    let inline = BenchSchema::new("inline");
    if let Some(schema) = &inline {
        let pg = PgModelStore::connect(&url(), schema.0.clone(), "bench", None).unwrap();
        stores.push(("postgres", Box::new(pg)));
    }
    // s3s-fs leaves Nagle's algorithm on, so on a reused connection a response's last
    // segment waits for the client's delayed ACK, about 40 ms (BENCHMARKS.md shows it with
    // curl): that row measures the test server as much as the store.
    let with_objects = BenchSchema::new("s3");
    let s3 = with_objects.as_ref().and_then(|_| S3s::start());
    if let (Some(schema), Some(s3)) = (&with_objects, &s3) {
        let objects = Some(s3.blobs());
        let pg = PgModelStore::connect(&url(), schema.0.clone(), "bench", objects).unwrap();
        stores.push(("postgres+s3", Box::new(pg)));
    }

    let mut load = c.benchmark_group("model_load");
    for (name, store) in &stores {
        store.save(&sym, &ver, &model).unwrap();
        load.bench_function(*name, |b| {
            b.iter(|| store.fetch(&sym, &ver).unwrap().expect("stored"))
        });
    }
    load.finish();
    let mut publish = c.benchmark_group("model_publish");
    for (name, store) in &stores {
        publish.bench_function(*name, |b| {
            b.iter(|| store.save(&sym, &ver, &model).unwrap())
        });
    }
    publish.finish();
    // The stores close their connections before their schemas are dropped.
    drop(stores);
}

criterion_group!(store, stores);
criterion_main!(store);
