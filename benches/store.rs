//! The cost of loading (and publishing) one model from each store: the models directory,
//! PostgreSQL with the weights in the row, and PostgreSQL with the weights in an S3-protocol
//! object store (`s3s-fs` on localhost, as in `tests/object_store.rs`). A load is what a
//! replica does on a cache miss or after another replica's publication: read, verify the
//! SHA-256, parse the sidecar and the safetensors, build the model.
//!
//! `cargo bench --bench store`. PostgreSQL and s3s-fs are found as the tests find them
//! (`tests/common/`); a store that is not there is left out, with a `SKIPPED` line.

use coinsphere_ml::domain::{ModelVersion, Symbol};
use coinsphere_ml::forecast::lstm::{self, LstmConfig, TrainedLstm};
use coinsphere_ml::prices::repository_last_closes;
use coinsphere_ml::store::postgres::PgModelStore;
use coinsphere_ml::store::{FsModelStore, ModelStore};
use criterion::{criterion_group, criterion_main, Criterion};

#[path = "../tests/common/postgres.rs"]
mod pg;
#[path = "../tests/common/s3s.rs"]
mod s3s;
use pg::{url, Schema};
use s3s::S3Server;

/// The SPEC model (2 x 64 units), one epoch on 400 BTC closes: the weights' size is what
/// matters here, not their quality.
fn spec_model() -> TrainedLstm {
    let config = LstmConfig {
        epochs: 1,
        ..LstmConfig::default()
    };
    lstm::train(&config, &repository_last_closes("BTC", 400), &mut |_| {}).unwrap()
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
    let inline = Schema::new("bench_inline");
    if let Some(schema) = &inline {
        let pg = PgModelStore::connect(&url(), schema.name.clone(), "bench", None).unwrap();
        stores.push(("postgres", Box::new(pg)));
    }
    // s3s-fs leaves Nagle's algorithm on, so on a reused connection a response's last
    // segment waits for the client's delayed ACK, about 40 ms (BENCHMARKS.md shows it with
    // curl): that row measures the test server as much as the store.
    let with_objects = Schema::new("bench_s3");
    let s3 = with_objects.as_ref().and_then(|_| S3Server::start("bench"));
    if let (Some(schema), Some(s3)) = (&with_objects, &s3) {
        let objects = Some(s3.blobs());
        let pg = PgModelStore::connect(&url(), schema.name.clone(), "bench", objects).unwrap();
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
