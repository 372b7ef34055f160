//! The PostgreSQL model store against a real server: `TEST_DATABASE_URL`, else CI's
//! `postgres://postgres@127.0.0.1:5432/test`. Each test works in a schema of its own and drops
//! it. Without a reachable server the tests skip with a message, unless
//! `COINSPHERE_REQUIRE_POSTGRES=1` (set by `.ci/run`), where they fail.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use coinsphere_ml::domain::{ModelVersion, Symbol};
use coinsphere_ml::forecast::lstm::{self, LstmConfig, TrainedLstm};
use coinsphere_ml::store::postgres::{PgModelStore, SchemaName};
use coinsphere_ml::store::{ModelStore, StoreEvent};

const CI_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| CI_DATABASE_URL.into())
}

/// A fresh schema on the test server, dropped when the guard goes; `None` (skip) without a
/// server, unless one is required.
struct Schema {
    name: SchemaName,
}

impl Schema {
    fn new(test: &str) -> Option<Self> {
        let required = std::env::var("COINSPHERE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        match postgres::Client::connect(&url(), postgres::NoTls) {
            Ok(_) => {}
            Err(e) if required => {
                panic!(
                    "PostgreSQL is required (COINSPHERE_REQUIRE_POSTGRES=1) and unreachable: {e}"
                )
            }
            Err(e) => {
                eprintln!(
                    "SKIPPED {test}: no PostgreSQL at {} ({e}); set TEST_DATABASE_URL",
                    url()
                );
                return None;
            }
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("t_{test}_{}_{nanos}", std::process::id());
        Some(Self {
            name: SchemaName::parse(&name[..name.len().min(50)]).unwrap(),
        })
    }

    fn store(&self, replica: &str) -> PgModelStore {
        PgModelStore::connect(&url(), self.name.clone(), replica, None).unwrap()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&url(), postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

fn key() -> (Symbol, ModelVersion) {
    (
        Symbol::parse("BTC").unwrap(),
        ModelVersion::parse("v1.0.0").unwrap(),
    )
}

fn tiny_model(seed: u64) -> TrainedLstm {
    let prices: Vec<f64> = (0..200)
        .map(|i| 100.0 + 10.0 * (f64::from(i) / 7.0).sin())
        .collect();
    let config = LstmConfig {
        epochs: 1,
        hidden_size: 8,
        threads: 1,
        seed,
        ..LstmConfig::default()
    };
    lstm::train(&config, &prices, &mut |_| {}).unwrap()
}

#[test]
fn publish_load_list_and_purge_with_increasing_generations() {
    let Some(schema) = Schema::new("publish") else {
        return;
    };
    let store = schema.store("r1");
    // A second connect applies no migration twice.
    let again = schema.store("r2");
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
    let store = schema.store("r1");
    let (sym, ver) = key();
    store.save(&sym, &ver, &tiny_model(1)).unwrap();
    let mut client = postgres::Client::connect(&url(), postgres::NoTls).unwrap();
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
    let (a, b) = (schema.store("a"), schema.store("b"));
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
fn every_replica_hears_publications_and_purges() {
    let Some(schema) = Schema::new("notify") else {
        return;
    };
    let (publisher, listener) = (schema.store("pub"), schema.store("sub"));
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
