//! The object-store path (`MODEL_STORE=s3://bucket/prefix`) against a real S3-protocol server:
//! `s3s-fs` from crates.io (`.ci/run` installs it; `S3S_FS` may name the binary), started on a
//! free port over a temporary directory, with the test PostgreSQL holding the rows.
//!
//! The server runs without credentials (its anonymous mode) and the clients skip signing
//! (`AWS_SKIP_SIGNATURE`), so that a test can also send a raw PUT and cut it off halfway, as a
//! replica dying mid-upload would.
//!
//! Without `s3s-fs` (or PostgreSQL) the tests skip with a message, unless
//! `COINSPHERE_REQUIRE_S3=1` (or `COINSPHERE_REQUIRE_POSTGRES=1`), set by `.ci/run`.

use std::time::{Duration, Instant};

use coinsphere_ml::domain::{ModelVersion, Symbol};
use coinsphere_ml::prices::repository_last_closes;
use coinsphere_ml::store::postgres::PgModelStore;
use coinsphere_ml::store::ModelStore;

#[path = "common/models.rs"]
mod models;
#[path = "common/postgres.rs"]
mod pg;
#[path = "common/replica.rs"]
mod replica;
#[path = "common/s3s.rs"]
mod s3s;
use models::tiny_model;
use pg::{url, Schema};
use replica::{generation, predict, runtime, trainings, Replica};
use s3s::S3Server;

fn key() -> (Symbol, ModelVersion) {
    (
        Symbol::parse("BTC").unwrap(),
        ModelVersion::parse("v1.0.0").unwrap(),
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn store(schema: &Schema, s3: &S3Server, replica: &str) -> PgModelStore {
    PgModelStore::connect(&url(), schema.name.clone(), replica, Some(s3.blobs())).unwrap()
}

/// The object key of the stored row, and whether the row also holds the bytes.
fn row(schema: &Schema) -> (Option<String>, bool) {
    let row = schema
        .client()
        .query_one(
            &format!(
                "SELECT object_key, weights IS NOT NULL FROM {}.models",
                schema.name
            ),
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

/// The superseded object is deleted right after the row commits, by the same call.
fn assert_gone(s3: &S3Server, key: &str) {
    assert!(
        !s3.keys().iter().any(|k| k == key),
        "object {key} left behind: {:?}",
        s3.keys()
    );
}

#[test]
fn publish_load_republish_and_purge_through_a_real_s3_server() {
    let Some(schema) = Schema::new("s3_publish") else {
        return;
    };
    let Some(s3) = S3Server::start("s3_publish") else {
        return;
    };
    let (a, b) = (store(&schema, &s3, "a"), store(&schema, &s3, "b"));
    let (sym, ver) = key();
    let first = tiny_model(1);
    let g1 = a.save(&sym, &ver, &first).unwrap().unwrap();
    let (object, inline) = row(&schema);
    let object = object.expect("the row names an object");
    assert!(!inline, "the bytes are in the bucket, not the row");
    assert!(object.starts_with("models/BTC_v1.0.0/"), "{object}");
    assert_eq!(s3.keys(), vec![object.clone()]);
    let loaded = b
        .fetch(&sym, &ver)
        .unwrap()
        .expect("b loads what a published");
    assert_eq!(loaded.generation, Some(g1));
    assert_eq!(
        loaded.model.weights_safetensors(),
        first.weights_safetensors()
    );

    // A new generation replaces the object; the old one goes.
    let second = tiny_model(2);
    let g2 = b.save(&sym, &ver, &second).unwrap().unwrap();
    assert!(g2 > g1);
    let (newer, _) = row(&schema);
    let newer = newer.unwrap();
    assert_ne!(newer, object);
    assert_gone(&s3, &object);
    assert_eq!(s3.keys(), vec![newer.clone()]);
    let loaded = a.fetch(&sym, &ver).unwrap().unwrap();
    assert_eq!(loaded.generation, Some(g2));
    assert_eq!(
        loaded.model.weights_safetensors(),
        second.weights_safetensors()
    );

    // The same bytes again: the conditional put finds the object (If-None-Match: * answered
    // 412 by the server) and the publish still succeeds, keeping the object.
    let g3 = a.save(&sym, &ver, &second).unwrap().unwrap();
    assert!(g3 > g2);
    assert_eq!(s3.keys(), vec![newer.clone()]);
    assert_eq!(b.fetch(&sym, &ver).unwrap().unwrap().generation, Some(g3));

    assert!(a.purge(&sym, &ver).unwrap());
    assert!(b.fetch(&sym, &ver).unwrap().is_none());
    assert_gone(&s3, &newer);
    assert!(s3.keys().is_empty());
}

#[test]
fn a_torn_or_unpublished_upload_never_becomes_visible() {
    let Some(schema) = Schema::new("s3_torn") else {
        return;
    };
    let Some(s3) = S3Server::start("s3_torn") else {
        return;
    };
    let publisher = store(&schema, &s3, "a");
    let (sym, ver) = key();
    let served = tiny_model(1);
    let g1 = publisher.save(&sym, &ver, &served).unwrap().unwrap();
    let (object, _) = row(&schema);
    let object = object.unwrap();
    let blobs = s3.blobs();
    let next = tiny_model(2);
    let next_bytes = next.weights_safetensors();
    let next_key = blobs.key(&sym, &ver, &sha256_hex(&next_bytes));
    let reader = store(&schema, &s3, "b");

    // An upload cut off halfway (the uploading replica died): no object appears, and the
    // server's temp file goes.
    assert_eq!(
        s3.raw_put(
            &next_key,
            next_bytes.len(),
            &next_bytes[..next_bytes.len() / 2]
        ),
        None
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s3.temp_files().is_empty() {
        assert!(
            Instant::now() < deadline,
            "temp files left: {:?}",
            s3.temp_files()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(blobs.get(&next_key).unwrap(), None);
    assert_eq!(s3.keys(), vec![object.clone()]);
    assert_eq!(
        reader.fetch(&sym, &ver).unwrap().unwrap().generation,
        Some(g1)
    );

    // A complete upload whose row was never written (the replica died in between): still
    // the published generation is served.
    blobs
        .put(&sym, &ver, &sha256_hex(&next_bytes), &next_bytes)
        .unwrap();
    let loaded = reader.fetch(&sym, &ver).unwrap().unwrap();
    assert_eq!(loaded.generation, Some(g1));
    assert_eq!(
        loaded.model.weights_safetensors(),
        served.weights_safetensors()
    );

    // The published object overwritten with other bytes (outside the service): the checksum
    // refuses it, and the model reads as missing rather than wrong.
    let status = s3.raw_put(&object, 64, &[0x5a; 64]).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(blobs.get(&object).unwrap().map(|b| b.len()), Some(64));
    assert!(reader.fetch(&sym, &ver).unwrap().is_none());
}

#[test]
fn a_replica_configured_for_s3_serves_from_it_after_a_restart() {
    let Some(schema) = Schema::new("s3_replica") else {
        return;
    };
    let Some(s3) = S3Server::start("s3_replica") else {
        return;
    };
    runtime().block_on(serve_from_s3_and_restart(&schema, &s3));
}

async fn serve_from_s3_and_restart(schema: &Schema, s3: &S3Server) {
    let client = reqwest::Client::new();
    let prices = repository_last_closes("BTC", 365);
    let env = s3.env();
    let first = Replica::start_with(schema, "s1", 2, &env);
    first.ready(&client).await;
    let trained = predict(&client, &first, &prices).await;
    assert_eq!(trained.0, 200, "{}", trained.1);
    let health = first.health(&client).await;
    assert_eq!(health["store"]["kind"], "postgres+s3");
    assert_eq!(trainings(&health), 1);
    let published = generation(&health).unwrap();
    let (object, inline) = tokio::task::block_in_place(|| row(schema));
    assert!(!inline);
    assert_eq!(s3.keys(), vec![object.unwrap()]);
    drop(first);

    let second = Replica::start_with(schema, "s2", 2, &env);
    second.ready(&client).await;
    assert_eq!(predict(&client, &second, &prices).await, trained);
    let health = second.health(&client).await;
    assert_eq!(trainings(&health), 0, "{health}");
    assert_eq!(generation(&health), Some(published));
}
