//! The PostgreSQL model store against a real server: `TEST_DATABASE_URL`, else CI's
//! `postgres://postgres@127.0.0.1:5432/test`. Each test works in a schema of its own and drops
//! it. Without a reachable server the tests skip with a message, unless
//! `COINSPHERE_REQUIRE_POSTGRES=1` (set by `.ci/run`), where they fail.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use coinsphere_ml::domain::{ModelVersion, Symbol};
use coinsphere_ml::store::postgres::PgModelStore;
use coinsphere_ml::store::{ModelStore, StoreEvent};

#[path = "common/models.rs"]
mod models;
#[path = "common/postgres.rs"]
mod pg;
use models::tiny_model;
use pg::{url, Schema};

fn open(schema: &Schema, replica: &str) -> PgModelStore {
    PgModelStore::connect(&url(), schema.name.clone(), replica, None).unwrap()
}

fn key() -> (Symbol, ModelVersion) {
    (
        Symbol::parse("BTC").unwrap(),
        ModelVersion::parse("v1.0.0").unwrap(),
    )
}

#[test]
fn publish_load_list_and_purge_with_increasing_generations() {
    let Some(schema) = Schema::new("publish") else {
        return;
    };
    let store = open(&schema, "r1");
    // A second connect applies no migration twice.
    let again = open(&schema, "r2");
    let (sym, ver) = key();
    assert!(store.fetch(&sym, &ver).unwrap().is_none());
    let first = tiny_model(1);
    let g1 = store.save(&sym, &ver, &first).unwrap().unwrap();
    let loaded = again
        .fetch(&sym, &ver)
        .unwrap()
        .expect("the other replica loads it");
    assert_eq!(loaded.generation, Some(g1));
    assert_eq!(
        loaded.model.weights_safetensors(),
        first.weights_safetensors()
    );
    assert!(again.trained_at(&sym, &ver).is_some());
    assert_eq!(store.list(&ver).unwrap(), vec![sym.clone()]);

    let second = tiny_model(2);
    let g2 = again.save(&sym, &ver, &second).unwrap().unwrap();
    assert!(g2 > g1);
    let loaded = store.fetch(&sym, &ver).unwrap().unwrap();
    assert_eq!(loaded.generation, Some(g2));
    assert_eq!(
        loaded.model.weights_safetensors(),
        second.weights_safetensors()
    );

    assert!(store.purge(&sym, &ver).unwrap());
    assert!(!store.purge(&sym, &ver).unwrap());
    assert!(again.fetch(&sym, &ver).unwrap().is_none());
    assert!(store.list(&ver).unwrap().is_empty());
}

#[test]
fn a_corrupted_row_loads_as_missing() {
    let Some(schema) = Schema::new("corrupt") else {
        return;
    };
    let store = open(&schema, "r1");
    let (sym, ver) = key();
    store.save(&sym, &ver, &tiny_model(1)).unwrap();
    let mut client = schema.client();
    client
        .batch_execute(&format!(
            "UPDATE {}.models SET weights = overlay(weights placing '\\x00'::bytea from 200)",
            schema.name
        ))
        .unwrap();
    assert!(store.fetch(&sym, &ver).unwrap().is_none());
}

#[test]
fn the_training_lock_is_exclusive_and_freed_when_its_holder_goes() {
    let Some(schema) = Schema::new("lock") else {
        return;
    };
    let (a, b) = (open(&schema, "a"), open(&schema, "b"));
    let (sym, ver) = key();
    let mut held = a.training_lock(&sym, &ver).unwrap();
    assert!(held.try_acquire().unwrap());
    let mut other = b.training_lock(&sym, &ver).unwrap();
    assert!(!other.try_acquire().unwrap());
    let eth = Symbol::parse("ETH").unwrap();
    assert!(b.training_lock(&eth, &ver).unwrap().try_acquire().unwrap());
    // Dropping the holder closes its connection, as a killed process would.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !other.try_acquire().unwrap() {
        assert!(Instant::now() < deadline, "the lock was never released");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_lock_and_a_store_dropped_on_an_async_thread_close_quietly() {
    let Some(schema) = Schema::new("drop") else {
        return;
    };
    let store = open(&schema, "a");
    let (sym, ver) = key();
    let mut held = store.training_lock(&sym, &ver).unwrap();
    assert!(held.try_acquire().unwrap());
    // The blocking client cannot close a connection on a runtime thread by itself (it
    // panicked there); the lock, given up while waiting, and the registry's store at shutdown
    // are dropped on one.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async move {
        drop(held);
        drop(store);
    });
    let mut other = open(&schema, "b").training_lock(&sym, &ver).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !other.try_acquire().unwrap() {
        assert!(Instant::now() < deadline, "the lock was never released");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_replica_hears_publications_and_purges() {
    let Some(schema) = Schema::new("notify") else {
        return;
    };
    let (publisher, listener) = (open(&schema, "pub"), open(&schema, "sub"));
    let (tx, rx) = mpsc::channel();
    assert!(listener.subscribe(Box::new(move |event| match event {
        Some(event) => tx.send(event).is_ok(),
        None => true,
    })));
    // The listener connects on its own thread: publish until it hears one.
    let (sym, ver) = key();
    let model = tiny_model(1);
    let started = Instant::now();
    let generation = loop {
        let g = publisher.save(&sym, &ver, &model).unwrap().unwrap();
        if let Ok(event) = rx.recv_timeout(Duration::from_millis(300)) {
            break (event, g);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no notification"
        );
    };
    let (event, g) = generation;
    assert!(matches!(
        event,
        StoreEvent::Published { generation, ref replica, .. } if generation <= g && replica == "pub"
    ));
    while rx.try_recv().is_ok() {}
    let sent = Instant::now();
    publisher.purge(&sym, &ver).unwrap();
    let event = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the purge is heard");
    eprintln!("notification delay: {:?}", sent.elapsed());
    assert_eq!(
        event,
        StoreEvent::Purged {
            symbol: sym,
            version: ver,
            replica: "pub".into()
        }
    );
}
