//! Models in PostgreSQL, shared by every replica of the service: the [`PgModelStore`].
//!
//! # Tables
//!
//! Everything lives in the service's own schema (`DATABASE_SCHEMA`, default `coinsphere_ml`),
//! created by the embedded migrations ([`MIGRATIONS`]) at start-up; nothing outside it is
//! touched. `models` holds one row per (symbol, model version): the sidecar (JSON), the
//! weights (bytes, or the key of an object in the object store), their SHA-256 and size, the
//! generation, when and by which replica the model was trained.
//!
//! # Why a reader never sees a mix
//!
//! Publishing is one statement: an upsert of the whole row, with the next value of the
//! `model_generation` sequence, and the notification of it. A reader's one `SELECT` sees the old
//! row or the new one. With an object store, the bytes are uploaded first under a key named by
//! their checksum, so the row only ever names an object that is complete.
//!
//! # One training per symbol
//!
//! [`ModelStore::training_lock`] gives a session-level advisory lock on its own connection: a
//! replica that dies (even by SIGKILL) drops the connection and PostgreSQL releases the lock.
//!
//! # Changes reach every replica
//!
//! Publishing and purging notify the channel `{schema}_models` in the same transaction, so a
//! notification is sent exactly when the change commits. [`ModelStore::subscribe`] listens on
//! its own connection and thread, reconnecting with back-off; after a reconnection it sends
//! [`StoreEvent::Resync`], since notifications sent meanwhile are lost.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Config, NoTls};
use r2d2_postgres::PostgresConnectionManager;
use serde::{Deserialize, Serialize};

use super::objects::ObjectBlobs;
use super::{EventHandler, ModelStore, Sidecar, StoreError, StoreEvent, Stored, TrainingLock};
use crate::domain::{ModelVersion, Symbol};
use crate::forecast::lstm::TrainedLstm;

/// The schema the service owns when `DATABASE_SCHEMA` is not set.
pub const DEFAULT_SCHEMA: &str = "coinsphere_ml";

/// Connections kept for loads and saves; the advisory locks and the listener have their own.
const POOL_SIZE: u32 = 4;
/// How long connecting may take before the store reports the database unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause between two reconnections of the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the listener checks that its handler still wants events.
const LISTEN_TICK: Duration = Duration::from_millis(500);
/// Reads of a row whose object vanished (a newer publication removed it in between).
const READ_ATTEMPTS: usize = 3;

/// The embedded migrations, applied in order, each once, inside the service's schema (`{s}`
/// stands for it). Never edit one that has shipped: add the next.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "models",
        "CREATE SEQUENCE {s}.model_generation;
     CREATE TABLE {s}.models (
         symbol        text        NOT NULL,
         model_version text        NOT NULL,
         generation    bigint      NOT NULL UNIQUE,
         format_version integer    NOT NULL,
         sidecar       jsonb       NOT NULL,
         weights       bytea,
         object_key    text,
         sha256        text        NOT NULL,
         size_bytes    bigint      NOT NULL,
         trained_at    timestamptz NOT NULL,
         trained_by    text        NOT NULL,
         PRIMARY KEY (symbol, model_version),
         CHECK ((weights IS NULL) <> (object_key IS NULL))
     );",
    ),
    (
        2,
        "prices",
        "CREATE TABLE {s}.prices (
             symbol text             NOT NULL,
             day    date             NOT NULL,
             close  double precision NOT NULL CHECK (close > 0 AND close < 'Infinity'),
             PRIMARY KEY (symbol, day)
         );",
    ),
    (
        3,
        "predictions",
        "CREATE TABLE {s}.predictions (
             id            bigserial        PRIMARY KEY,
             symbol        text             NOT NULL,
             model         text             NOT NULL,
             label         text             NOT NULL,
             model_version text             NOT NULL,
             generation    bigint,
             horizon       integer          NOT NULL CHECK (horizon > 0),
             predicted     double precision NOT NULL,
             lower         double precision NOT NULL,
             upper         double precision NOT NULL,
             level         double precision NOT NULL,
             confidence    double precision NOT NULL,
             current_price double precision NOT NULL,
             served_at     timestamptz      NOT NULL,
             base_day      date             NOT NULL,
             target_day    date             NOT NULL,
             replica       text             NOT NULL
         );
         CREATE INDEX predictions_symbol_target ON {s}.predictions (symbol, target_day);",
    ),
];

/// The service's schema on a PostgreSQL server, with a pool of connections: what the price
/// reader and the prediction log share with the model store ([`PgModelStore::database`]).
#[derive(Clone)]
pub struct Database {
    pool: OffRuntime<Pool>,
    schema: SchemaName,
    replica: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("schema", &self.schema)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// The schema the service owns.
    pub fn schema(&self) -> &SchemaName {
        &self.schema
    }

    /// The replica id recorded with what this process writes.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// A pooled connection. Blocking: call it off the async runtime.
    ///
    /// # Errors
    /// [`StoreError::Database`] when none can be had within the connect timeout.
    pub fn client(
        &self,
    ) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, StoreError> {
        self.pool.get().map_err(db)
    }

    /// The channel of the service's notifications (models and prices).
    pub fn channel(&self) -> String {
        format!("{}_models", self.schema)
    }
}

/// A schema name that is safe to write into SQL: a lower-case identifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaName(String);

impl SchemaName {
    /// Accepts `[a-z_][a-z0-9_]*`, at most 50 characters (so `{schema}_models` stays a valid
    /// channel name); anything else is refused.
    ///
    /// # Errors
    /// A sentence saying what is allowed.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 50
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok && !s.starts_with("pg_") {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "{s:?} is not a schema name: use lower-case letters, digits and _ (at most 50, not starting with a digit or pg_)"
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for SchemaName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl std::fmt::Display for SchemaName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The payload of a notification on `{schema}_models`.
#[derive(Debug, Serialize, Deserialize)]
struct Notice {
    event: String,
    symbol: String,
    #[serde(default)]
    model_version: String,
    #[serde(default)]
    generation: Option<i64>,
    replica: String,
}

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// A value holding `postgres` connections, dropped off the async runtime. The blocking client
/// closes a connection by running a runtime of its own, which panics on a thread that drives
/// async tasks; a store or a lock may well be dropped on one (a training lock given up while
/// waiting, the registry at shutdown). There the value goes to a short-lived thread to drop.
#[derive(Clone)]
struct OffRuntime<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> OffRuntime<T> {
    fn new(value: T) -> Self {
        Self(Some(value))
    }
}

impl<T: Send + 'static> std::ops::Deref for OffRuntime<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0.as_ref().expect("taken only when dropped")
    }
}

impl<T: Send + 'static> std::ops::DerefMut for OffRuntime<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("taken only when dropped")
    }
}

impl<T: Send + 'static> Drop for OffRuntime<T> {
    fn drop(&mut self) {
        let Some(value) = self.0.take() else { return };
        if tokio::runtime::Handle::try_current().is_ok() {
            let spawned = std::thread::Builder::new()
                .name("pg-close".into())
                .spawn(move || drop(value));
            if let Err(e) = spawned {
                // Without a thread the connections are left to the operating system to close.
                tracing::warn!(error = %e, "could not close database connections");
            }
        }
    }
}

/// A [`ModelStore`] in PostgreSQL (and, optionally, an object store for the weights).
#[derive(Clone)]
pub struct PgModelStore {
    config: Config,
    db: Database,
    objects: Option<Arc<ObjectBlobs>>,
}

impl std::fmt::Debug for PgModelStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("PgModelStore")
            .field("db", &self.db)
            .field("objects", &self.objects.is_some())
            .finish_non_exhaustive()
    }
}

/// A database failure as a [`StoreError`] (for every part of the store on PostgreSQL).
pub(super) fn db(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

impl PgModelStore {
    /// Connects to `url`, applies the migrations to `schema` and returns the store; `replica`
    /// is recorded with every model this process publishes. Weights go into `objects` when
    /// given, else into the database.
    ///
    /// Blocking: call it off the async runtime.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the URL is invalid, the database unreachable or a
    /// migration fails.
    pub fn connect(
        url: &str,
        schema: SchemaName,
        replica: &str,
        objects: Option<ObjectBlobs>,
    ) -> Result<Self, StoreError> {
        let mut config: Config = url
            .parse()
            .map_err(|e| db(format!("DATABASE_URL is not a PostgreSQL URL: {e}")))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name(&format!("coinsphere-ml {replica}"));
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            .error_handler(Box::new(r2d2::LoggingErrorHandler))
            .build(PostgresConnectionManager::new(config.clone(), NoTls))
            .map_err(db)?;
        let store = Self {
            config,
            db: Database {
                pool: OffRuntime::new(pool),
                schema,
                replica: replica.to_owned(),
            },
            objects: objects.map(Arc::new),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The schema the store owns.
    pub fn schema(&self) -> &SchemaName {
        self.db.schema()
    }

    /// The replica id recorded with this process's publications.
    pub fn replica(&self) -> &str {
        self.db.replica()
    }

    /// The schema and connection pool, shared with the prices and the prediction log.
    pub fn database(&self) -> Database {
        self.db.clone()
    }

    fn client(
        &self,
    ) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, StoreError> {
        self.db.client()
    }

    fn channel(&self) -> String {
        self.db.channel()
    }

    /// Applies the migrations not yet applied, under a transaction-scoped advisory lock so that
    /// replicas starting together apply each once.
    fn migrate(&self) -> Result<(), StoreError> {
        let s = self.db.schema().as_str();
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(db)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&format!("{s}:migrate")],
        )
        .map_err(db)?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
                 version    integer     PRIMARY KEY,
                 name       text        NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );"
        ))
        .map_err(db)?;
        let applied: Vec<i32> = tx
            .query(&format!("SELECT version FROM {s}.schema_migrations"), &[])
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            tx.batch_execute(&sql.replace("{s}", s))
                .map_err(|e| db(format!("migration {version} ({name}): {e}")))?;
            tx.execute(
                &format!("INSERT INTO {s}.schema_migrations (version, name) VALUES ($1, $2)"),
                &[version, name],
            )
            .map_err(db)?;
            tracing::info!(schema = s, version, name, "database migration applied");
        }
        tx.commit().map_err(db)
    }

    /// One read of the model's row; `Err(Some(reason))` when it does not verify,
    /// `Err(None)` when its object is gone (replaced since the row was read).
    fn fetch_once(
        &self,
        symbol: &Symbol,
        version: &ModelVersion,
    ) -> Result<Result<Option<Stored>, Option<String>>, StoreError> {
        let s = self.db.schema().as_str();
        let row = self
            .client()?
            .query_opt(
                &format!(
                    "SELECT generation, sidecar::text, weights, object_key
                     FROM {s}.models WHERE symbol = $1 AND model_version = $2"
                ),
                &[&symbol.as_str(), &version.as_str()],
            )
            .map_err(db)?;
        let Some(row) = row else {
            return Ok(Ok(None));
        };
        let generation: i64 = row.get(0);
        let sidecar: String = row.get(1);
        let inline: Option<Vec<u8>> = row.get(2);
        let object_key: Option<String> = row.get(3);
        let weights = match (inline, object_key, &self.objects) {
            (Some(bytes), _, _) => bytes,
            (None, Some(key), Some(objects)) => match objects.get(&key)? {
                Some(bytes) => bytes,
                None => return Ok(Err(None)),
            },
            (None, Some(key), None) => {
                return Ok(Err(Some(format!(
                    "its weights are in the object store ({key}), and MODEL_STORE is not set"
                ))))
            }
            (None, None, _) => return Ok(Err(Some("the row holds no weights".into()))),
        };
        let checked = serde_json::from_str::<Sidecar>(&sidecar)
            .map_err(|e| format!("not a valid sidecar: {e}"))
            .and_then(|sidecar| {
                sidecar.check_owner(symbol, version)?;
                sidecar.into_model(&weights)
            });
        Ok(match checked {
            Ok(model) => Ok(Some(Stored {
                model,
                generation: u64::try_from(generation).ok(),
            })),
            Err(reason) => Err(Some(reason)),
        })
    }
}

impl ModelStore for PgModelStore {
    fn load(
        &self,
        symbol: &Symbol,
        version: &ModelVersion,
    ) -> Result<Option<TrainedLstm>, StoreError> {
        Ok(self.fetch(symbol, version)?.map(|stored| stored.model))
    }

    fn fetch(&self, symbol: &Symbol, version: &ModelVersion) -> Result<Option<Stored>, StoreError> {
        let mut attempt = 1;
        loop {
            match self.fetch_once(symbol, version)? {
                Ok(found) => return Ok(found),
                Err(None) if attempt < READ_ATTEMPTS => {
                    tracing::debug!(%symbol, %version, "object replaced while reading, reading the row again");
                    attempt += 1;
                }
                Err(reason) => {
                    let reason = reason.unwrap_or_else(|| "its object is missing".into());
                    tracing::warn!(%symbol, %version, %reason, "stored model rejected, treating it as missing");
                    return Ok(None);
                }
            }
        }
    }

    fn save(
        &self,
        symbol: &Symbol,
        version: &ModelVersion,
        model: &TrainedLstm,
    ) -> Result<Option<u64>, StoreError> {
        let s = self.db.schema().as_str();
        let (weights, sidecar) = Sidecar::describe(symbol, version, model, |sha256| {
            format!("{symbol}_{version}.{sha256}.safetensors")
        })?;
        // The bytes first, under a name that only these bytes can have: the row below is the
        // commit point, and it never names an incomplete object.
        let object_key = match &self.objects {
            Some(objects) => Some(objects.put(symbol, version, &sidecar.sha256, &weights)?),
            None => None,
        };
        let inline = object_key.is_none().then_some(weights.as_slice());
        let sidecar_json = serde_json::to_string(&sidecar).expect("sidecar serialises");
        let size = i64::try_from(weights.len()).unwrap_or(i64::MAX);
        let format = i32::try_from(sidecar.format_version).unwrap_or(i32::MAX);
        let row = self
            .client()?
            .query_one(
                &format!(
                    "WITH old AS (
                         SELECT object_key FROM {s}.models
                         WHERE symbol = $1 AND model_version = $2
                     ), up AS (
                         INSERT INTO {s}.models AS m (symbol, model_version, generation,
                             format_version, sidecar, weights, object_key, sha256, size_bytes,
                             trained_at, trained_by)
                         VALUES ($1, $2, nextval('{s}.model_generation'), $3, $4::text::jsonb,
                             $5, $6, $7, $8, now(), $9)
                         ON CONFLICT (symbol, model_version) DO UPDATE SET
                             generation = EXCLUDED.generation,
                             format_version = EXCLUDED.format_version,
                             sidecar = EXCLUDED.sidecar,
                             weights = EXCLUDED.weights,
                             object_key = EXCLUDED.object_key,
                             sha256 = EXCLUDED.sha256,
                             size_bytes = EXCLUDED.size_bytes,
                             trained_at = EXCLUDED.trained_at,
                             trained_by = EXCLUDED.trained_by
                         RETURNING generation
                     )
                     SELECT up.generation, (SELECT object_key FROM old),
                         pg_notify($10, json_build_object('event', 'published',
                             'symbol', $1::text, 'model_version', $2::text,
                             'generation', up.generation, 'replica', $9::text)::text)::text
                     FROM up"
                ),
                &[
                    &symbol.as_str(),
                    &version.as_str(),
                    &format,
                    &sidecar_json,
                    &inline,
                    &object_key,
                    &sidecar.sha256,
                    &size,
                    &self.db.replica(),
                    &self.channel(),
                ],
            )
            .map_err(db)?;
        let generation: i64 = row.get(0);
        let previous: Option<String> = row.get(1);
        if let (Some(objects), Some(previous)) = (&self.objects, previous) {
            if Some(&previous) != object_key.as_ref() {
                objects.delete_quietly(&previous);
            }
        }
        Ok(u64::try_from(generation).ok())
    }

    fn purge(&self, symbol: &Symbol, version: &ModelVersion) -> Result<bool, StoreError> {
        let s = self.db.schema().as_str();
        let rows = self
            .client()?
            .query(
                &format!(
                    "WITH del AS (
                         DELETE FROM {s}.models WHERE symbol = $1 AND model_version = $2
                         RETURNING object_key
                     )
                     SELECT object_key, pg_notify($3, json_build_object('event', 'purged',
                         'symbol', $1::text, 'model_version', $2::text,
                         'replica', $4::text)::text)::text
                     FROM del"
                ),
                &[
                    &symbol.as_str(),
                    &version.as_str(),
                    &self.channel(),
                    &self.db.replica(),
                ],
            )
            .map_err(db)?;
        if let Some(objects) = &self.objects {
            for row in &rows {
                if let Some(key) = row.get::<_, Option<String>>(0) {
                    objects.delete_quietly(&key);
                }
            }
        }
        Ok(!rows.is_empty())
    }

    fn trained_at(&self, symbol: &Symbol, version: &ModelVersion) -> Option<SystemTime> {
        let s = self.db.schema().as_str();
        let row = self
            .client()
            .ok()?
            .query_opt(
                &format!(
                    "SELECT extract(epoch FROM trained_at)::float8 FROM {s}.models
                     WHERE symbol = $1 AND model_version = $2"
                ),
                &[&symbol.as_str(), &version.as_str()],
            )
            .ok()??;
        let seconds: f64 = row.get(0);
        (seconds.is_finite() && seconds >= 0.0)
            .then(|| UNIX_EPOCH + Duration::from_secs_f64(seconds))
    }

    fn list(&self, version: &ModelVersion) -> Result<Vec<Symbol>, StoreError> {
        let s = self.db.schema().as_str();
        let rows = self
            .client()?
            .query(
                &format!("SELECT symbol FROM {s}.models WHERE model_version = $1 ORDER BY symbol"),
                &[&version.as_str()],
            )
            .map_err(db)?;
        Ok(rows
            .iter()
            .filter_map(|r| Symbol::parse(r.get::<_, &str>(0)).ok())
            .collect())
    }

    fn kind(&self) -> &'static str {
        if self.objects.is_some() {
            "postgres+s3"
        } else {
            "postgres"
        }
    }

    fn shared(&self) -> bool {
        true
    }

    fn training_lock(
        &self,
        symbol: &Symbol,
        version: &ModelVersion,
    ) -> Result<Box<dyn TrainingLock>, StoreError> {
        Ok(Box::new(AdvisoryLock {
            config: self.config.clone(),
            client: None,
            key: format!("{}:train:{symbol}:{version}", self.db.schema()),
        }))
    }

    fn subscribe(&self, handler: EventHandler) -> bool {
        let config = self.config.clone();
        let channel = self.channel();
        std::thread::Builder::new()
            .name("store-listener".into())
            .spawn(move || listen(&config, &channel, &handler))
            .is_ok()
    }
}

/// A session-level advisory lock on a connection of its own: dropping it (or the process
/// dying) closes the connection, which releases the lock.
struct AdvisoryLock {
    config: Config,
    client: Option<OffRuntime<postgres::Client>>,
    key: String,
}

impl TrainingLock for AdvisoryLock {
    fn try_acquire(&mut self) -> Result<bool, StoreError> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = Some(OffRuntime::new(self.config.connect(NoTls).map_err(db)?));
        }
        let client = self.client.as_mut().expect("connected above");
        let row = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&self.key],
            )
            .map_err(db)?;
        Ok(row.get(0))
    }
}

/// The listener thread: LISTEN on `channel`, hand every notification to `handler`, reconnect
/// with back-off when the connection fails, until `handler` answers `false`.
fn listen(config: &Config, channel: &str, handler: &EventHandler) {
    let mut backoff = Duration::from_millis(100);
    let mut connected_before = false;
    loop {
        if !handler(None) {
            return;
        }
        let mut client = match config.connect(NoTls) {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "model store listener cannot connect");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {channel}")) {
            tracing::warn!(error = %e, "model store listener cannot LISTEN");
            std::thread::sleep(backoff);
            continue;
        }
        backoff = Duration::from_millis(100);
        if connected_before {
            tracing::info!("model store listener reconnected: checking every cached model");
            if !handler(Some(StoreEvent::Resync)) {
                return;
            }
        }
        connected_before = true;
        loop {
            if !handler(None) {
                return;
            }
            let next = client.notifications().timeout_iter(LISTEN_TICK).next();
            match next {
                Ok(Some(note)) => {
                    if let Some(event) = parse_notice(note.payload()) {
                        if !handler(Some(event)) {
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "model store listener lost its connection");
                    break;
                }
                Ok(None) if client.is_closed() => break,
                Ok(None) => {}
            }
        }
    }
}

fn parse_notice(payload: &str) -> Option<StoreEvent> {
    let notice: Notice = serde_json::from_str(payload)
        .map_err(|e| tracing::warn!(error = %e, payload, "unreadable model store notification"))
        .ok()?;
    let symbol = Symbol::parse(&notice.symbol).ok()?;
    if notice.event == "prices" {
        return Some(StoreEvent::PricesChanged { symbol });
    }
    let version = ModelVersion::parse(&notice.model_version).ok()?;
    match (notice.event.as_str(), notice.generation) {
        ("published", Some(generation)) => Some(StoreEvent::Published {
            symbol,
            version,
            generation: u64::try_from(generation).ok()?,
            replica: notice.replica,
        }),
        ("purged", _) => Some(StoreEvent::Purged {
            symbol,
            version,
            replica: notice.replica,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_identifiers_only() {
        for good in ["coinsphere_ml", "_x", "t1_2"] {
            assert!(SchemaName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1x",
            "Coinsphere",
            "a-b",
            "a;drop",
            "pg_catalog",
            "x\"y",
            &"a".repeat(51),
        ] {
            assert!(SchemaName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn notices_parse_into_events_and_garbage_is_ignored() {
        let published = r#"{"event":"published","symbol":"btc","model_version":"v1.0.0","generation":7,"replica":"r1"}"#;
        assert_eq!(
            parse_notice(published),
            Some(StoreEvent::Published {
                symbol: Symbol::parse("BTC").unwrap(),
                version: ModelVersion::parse("v1.0.0").unwrap(),
                generation: 7,
                replica: "r1".into(),
            })
        );
        let prices = r#"{"event":"prices","symbol":"sol","replica":"import"}"#;
        assert_eq!(
            parse_notice(prices),
            Some(StoreEvent::PricesChanged {
                symbol: Symbol::parse("SOL").unwrap()
            })
        );
        let purged = r#"{"event":"purged","symbol":"ETH","model_version":"v1","replica":"r2"}"#;
        assert!(matches!(
            parse_notice(purged),
            Some(StoreEvent::Purged { .. })
        ));
        for bad in [
            "not json",
            r#"{"event":"published","symbol":"BTC","model_version":"v1","replica":"r"}"#,
            r#"{"event":"other","symbol":"BTC","model_version":"v1","replica":"r"}"#,
            r#"{"event":"purged","symbol":"../x","model_version":"v1","replica":"r"}"#,
        ] {
            assert_eq!(parse_notice(bad), None, "{bad}");
        }
    }
}
