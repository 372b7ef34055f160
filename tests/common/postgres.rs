//! The PostgreSQL server the store tests run against: `TEST_DATABASE_URL`, else CI's
//! `postgres://postgres@127.0.0.1:5432/test`. Each test works in a schema of its own, dropped
//! when its guard goes. Without a reachable server a test skips with a message, unless
//! `COINSPHERE_REQUIRE_POSTGRES=1` (set by `.ci/run`), where it fails. Each includer (the
//! store tests, `benches/store.rs`) uses part of it.
#![allow(dead_code)]

use coinsphere_ml::store::postgres::SchemaName;

const CI_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The test server's URL.
pub fn url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| CI_DATABASE_URL.into())
}

/// Says on the terminal that a test was skipped and why. Straight to stderr: the test harness
/// captures `eprintln!` of passing tests, and a skip must be seen.
pub fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {why}");
}

/// A fresh schema on the test server, dropped with the guard.
pub struct Schema {
    pub name: SchemaName,
}

impl Schema {
    /// `None` (the test skips) without a server, unless one is required.
    pub fn new(test: &str) -> Option<Self> {
        let required = std::env::var("COINSPHERE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        match postgres::Client::connect(&url(), postgres::NoTls) {
            Ok(_) => {}
            Err(e) if required => {
                panic!(
                    "PostgreSQL is required (COINSPHERE_REQUIRE_POSTGRES=1) and unreachable: {e}"
                )
            }
            Err(e) => {
                skipped(&format!(
                    "{test}: no PostgreSQL at {} ({e}); set TEST_DATABASE_URL",
                    url()
                ));
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

    /// A client of the test server, for looking at (or spoiling) what the store wrote.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&url(), postgres::NoTls).unwrap()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&url(), postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}
