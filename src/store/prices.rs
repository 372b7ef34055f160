//! Daily closes in PostgreSQL: read by symbol for `GET /predict/{symbol}` and for scoring the
//! prediction log, written by `coinsphere-ml import`.
//!
//! The source is the service's own table `{schema}.prices(symbol, day, close)` unless
//! `PRICES_QUERY` names another: any SQL whose first two columns are the day (`date`) and the
//! close, with the symbol as `$1` (for example the app's
//! `SELECT date, close FROM price_data WHERE symbol = $1`). It is checked by preparing it at
//! start-up.
//!
//! Reading 1,000 closes costs a query of about a millisecond, more than a cached forecast, so
//! reads are cached per symbol for `PRICES_CACHE_SECS` and dropped at once when an import (on
//! any replica) notifies new prices.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::postgres::{db as db_error, Database};
use super::StoreError;
use crate::domain::Symbol;
use crate::telemetry::metrics::Metrics;

/// A day as the number of days since 1970-01-01 (what PostgreSQL's `date - DATE '1970-01-01'`
/// gives).
pub type Day = i32;

fn epoch() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date")
}

fn day_of(date: chrono::NaiveDate) -> Option<Day> {
    Day::try_from(date.signed_duration_since(epoch()).num_days()).ok()
}

/// The day of a `YYYY-MM-DD` date; `None` if it is not one.
pub fn parse_day(s: &str) -> Option<Day> {
    day_of(chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?)
}

/// `YYYY-MM-DD` of `day`.
pub fn format_day(day: Day) -> String {
    (epoch() + chrono::Duration::days(i64::from(day)))
        .format("%Y-%m-%d")
        .to_string()
}

/// Today (UTC) as a [`Day`].
pub fn today() -> Day {
    day_of(chrono::Utc::now().date_naive()).unwrap_or(0)
}

/// A symbol's closes, oldest first, with their days (strictly increasing).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Closes {
    /// The day of each close.
    pub days: Vec<Day>,
    /// The closes.
    pub closes: Vec<f64>,
}

impl Closes {
    /// The close of `day`, if there is one.
    pub fn on(&self, day: Day) -> Option<f64> {
        self.days.binary_search(&day).ok().map(|i| self.closes[i])
    }
}

/// Where the closes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PriceSource {
    /// `{schema}.prices`, which `coinsphere-ml import` fills.
    Table,
    /// `PRICES_QUERY`: day and close of the symbol `$1`.
    Query(String),
}

struct Cached {
    read_at: Instant,
    /// How many closes the read asked for (it found fewer if the symbol has fewer).
    limit: usize,
    closes: Closes,
}

/// Reads (and writes) the closes, with a per-symbol cache.
pub struct PriceDb {
    db: Database,
    source: PriceSource,
    ttl: Duration,
    cache: Mutex<HashMap<Symbol, Cached>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for PriceDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PriceDb")
            .field("source", &self.source)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl PriceDb {
    /// A reader of `source` on `db`, caching reads for `ttl`; checks the query by preparing it.
    /// Blocking.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the query does not prepare.
    pub fn new(
        db: Database,
        source: PriceSource,
        ttl: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let prices = Self {
            db,
            source,
            ttl,
            cache: Mutex::new(HashMap::new()),
            metrics,
        };
        prices
            .db
            .client()?
            .prepare(&prices.select())
            .map_err(|e| db_error(format!("PRICES_QUERY does not prepare: {e}")))?;
        Ok(prices)
    }

    /// The statement reading the last `$2` closes of `$1`, oldest first.
    fn select(&self) -> String {
        let inner = match &self.source {
            PriceSource::Table => format!(
                "SELECT day, close FROM {}.prices WHERE symbol = $1",
                self.db.schema()
            ),
            PriceSource::Query(q) => q.clone(),
        };
        format!(
            "SELECT d, c FROM (
                 SELECT (p.day::date - DATE '1970-01-01')::int4 AS d, p.close::float8 AS c
                 FROM ({inner}) AS p(day, close)
                 ORDER BY 1 DESC LIMIT $2
             ) AS last ORDER BY d"
        )
    }

    /// The last `limit` closes of `symbol` (cached). Blocking.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the database cannot be read.
    pub fn closes(&self, symbol: &Symbol, limit: usize) -> Result<Closes, StoreError> {
        if let Some(hit) = self.cached(symbol, limit) {
            self.metrics.price_reads.inc(&["cache"]);
            return Ok(hit);
        }
        let read = self.read(symbol, limit)?;
        self.metrics.price_reads.inc(&["database"]);
        self.lock().insert(
            symbol.clone(),
            Cached {
                read_at: Instant::now(),
                limit,
                closes: read.clone(),
            },
        );
        Ok(read)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Symbol, Cached>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh cached read that answers `limit` closes: one that asked for as many or more,
    /// or found fewer than it asked for (the symbol has no more).
    fn cached(&self, symbol: &Symbol, limit: usize) -> Option<Closes> {
        let cache = self.lock();
        let entry = cache.get(symbol)?;
        let fresh = entry.read_at.elapsed() < self.ttl;
        let enough = entry.limit >= limit || entry.closes.days.len() < entry.limit;
        if !(fresh && enough) {
            return None;
        }
        Some(tail(&entry.closes, limit))
    }

    fn read(&self, symbol: &Symbol, limit: usize) -> Result<Closes, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .db
            .client()?
            .query(&self.select(), &[&symbol.as_str(), &limit])
            .map_err(db_error)?;
        let mut closes = Closes::default();
        for row in rows {
            let (day, close): (Day, f64) = (row.get(0), row.get(1));
            // A custom query could return junk: keep what a forecast can take.
            if close.is_finite() && close > 0.0 && closes.days.last().is_none_or(|&d| d < day) {
                closes.days.push(day);
                closes.closes.push(close);
            }
        }
        Ok(closes)
    }

    /// Drops the cached closes of `symbol` (new prices were written).
    pub fn invalidate(&self, symbol: &Symbol) {
        self.lock().remove(symbol);
    }

    /// Drops every cached read.
    pub fn invalidate_all(&self) {
        self.lock().clear();
    }
}

/// The last `limit` closes of `closes`.
fn tail(closes: &Closes, limit: usize) -> Closes {
    let from = closes.days.len().saturating_sub(limit);
    Closes {
        days: closes.days[from..].to_vec(),
        closes: closes.closes[from..].to_vec(),
    }
}

/// Writes `rows` (day, close) of `symbol` into `{schema}.prices`: a day already there takes
/// the new close, so importing a file twice changes nothing. Notifies every replica, in the
/// same transaction. Returns the number of rows written. Blocking.
///
/// # Errors
/// [`StoreError::Database`] when the database refuses them.
pub fn import(db: &Database, symbol: &Symbol, rows: &[(Day, f64)]) -> Result<u64, StoreError> {
    let s = db.schema();
    let mut client = db.client()?;
    let mut tx = client.transaction().map_err(db_error)?;
    let mut written = 0;
    for chunk in rows.chunks(5_000) {
        let days: Vec<Day> = chunk.iter().map(|r| r.0).collect();
        let closes: Vec<f64> = chunk.iter().map(|r| r.1).collect();
        written += tx
            .execute(
                &format!(
                    "INSERT INTO {s}.prices (symbol, day, close)
                     SELECT $1, DATE '1970-01-01' + t.d, t.c
                     FROM unnest($2::int4[], $3::float8[]) AS t(d, c)
                     ON CONFLICT (symbol, day) DO UPDATE SET close = EXCLUDED.close"
                ),
                &[&symbol.as_str(), &days, &closes],
            )
            .map_err(db_error)?;
    }
    tx.execute(
        "SELECT pg_notify($1, json_build_object('event', 'prices', 'symbol', $2::text,
             'replica', $3::text)::text)",
        &[&db.channel(), &symbol.as_str(), &db.replica()],
    )
    .map_err(db_error)?;
    tx.commit().map_err(db_error)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_through_dates() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2024-03-01"), Some(19_783));
        assert_eq!(format_day(19_783), "2024-03-01");
        assert_eq!(parse_day("2024-02-30"), None);
        assert_eq!(parse_day("yesterday"), None);
        assert!(today() > 20_000);
    }

    #[test]
    fn closes_find_a_day_and_keep_the_tail() {
        let closes = Closes {
            days: vec![1, 2, 4],
            closes: vec![10.0, 20.0, 40.0],
        };
        assert_eq!(closes.on(4), Some(40.0));
        assert_eq!(closes.on(3), None);
        assert_eq!(tail(&closes, 2).closes, vec![20.0, 40.0]);
        assert_eq!(tail(&closes, 9), closes);
    }
}
