//! The prediction log: every served forecast, written to `{schema}.predictions` in batches by a
//! thread of its own, through a bounded queue, so that a slow or absent database never slows a
//! request. What cannot be written is counted (`/metrics`) and logged, never silently lost:
//! a full queue drops the newest record, a batch the database refuses is retried with back-off
//! and dropped after [`WRITE_ATTEMPTS`].
//!
//! [`score`] compares logged predictions whose target day has come with the closes of that day:
//! what `GET /accuracy` answers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::postgres::{db as db_error, Database};
use super::prices::{Closes, Day};
use super::StoreError;
use crate::domain::Symbol;
use crate::telemetry::metrics::Metrics;

/// Records waiting to be written; beyond, new ones are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 10_000;
/// Most records in one insert.
const BATCH: usize = 500;
/// How long the writer gathers a batch.
const GATHER: Duration = Duration::from_millis(200);
/// Tries of one batch before it is dropped (and counted).
pub const WRITE_ATTEMPTS: u32 = 8;
/// Longest pause between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One served forecast.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictionRecord {
    /// The symbol.
    pub symbol: Symbol,
    /// The model asked for.
    pub model: String,
    /// What produced the forecast (`model.label`).
    pub label: String,
    /// `model.version`.
    pub model_version: String,
    /// The LSTM's published generation, if it has one.
    pub generation: Option<u64>,
    /// Days ahead.
    pub horizon: u32,
    /// The predicted price at the horizon.
    pub predicted: f64,
    /// The band at the horizon.
    pub lower: f64,
    /// The band at the horizon.
    pub upper: f64,
    /// The band's level.
    pub level: f64,
    /// The stated confidence.
    pub confidence: f64,
    /// The last price of the history (the naive forecast made at the same time).
    pub current_price: f64,
    /// When it was served, seconds since the epoch.
    pub served_at: f64,
    /// The day of the last price.
    pub base_day: Day,
    /// `base_day + horizon`.
    pub target_day: Day,
}

/// The log's handle: `record` queues, a thread writes. Outcomes are counted in
/// `ml_prediction_log_total{outcome}`.
#[derive(Debug)]
pub struct PredictionLog {
    queue: SyncSender<PredictionRecord>,
    metrics: Arc<Metrics>,
    dropped: AtomicU64,
}

impl PredictionLog {
    /// Starts the writer thread on `db`.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the thread cannot start.
    pub fn start(db: Database, capacity: usize, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        let (queue, records) = mpsc::sync_channel(capacity);
        let writer_metrics = Arc::clone(&metrics);
        std::thread::Builder::new()
            .name("prediction-log".into())
            .spawn(move || write_loop(&db, &records, &writer_metrics))
            .map_err(|e| StoreError::Database(format!("cannot start the log writer: {e}")))?;
        Ok(Self {
            queue,
            metrics,
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues `record`; never blocks. A full queue drops it, counted and logged.
    pub fn record(&self, record: PredictionRecord) {
        match self.queue.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(record)) => {
                self.metrics.prediction_log.inc(&["dropped_queue_full"]);
                let n = self.dropped.fetch_add(1, Ordering::Relaxed);
                // Once per 1,000, not once per request: the log must not flood either.
                if n.is_multiple_of(1_000) {
                    tracing::warn!(symbol = %record.symbol, dropped_so_far = n + 1, "prediction log queue full: record dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                self.metrics.prediction_log.inc(&["dropped_write_failed"]);
            }
        }
    }
}

/// Seconds since the epoch, now.
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn write_loop(db: &Database, records: &mpsc::Receiver<PredictionRecord>, metrics: &Metrics) {
    loop {
        let Ok(first) = records.recv() else { return };
        let mut batch = vec![first];
        let deadline = Instant::now() + GATHER;
        while batch.len() < BATCH {
            match records.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(record) => batch.push(record),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let mut backoff = Duration::from_millis(200);
        for attempt in 1..=WRITE_ATTEMPTS {
            match insert(db, &batch) {
                Ok(()) => {
                    metrics
                        .prediction_log
                        .inc_by(&["written"], batch.len() as u64);
                    if attempt > 1 {
                        tracing::info!(
                            records = batch.len(),
                            attempt,
                            "prediction log writing again"
                        );
                    }
                    break;
                }
                Err(e) if attempt < WRITE_ATTEMPTS => {
                    metrics.prediction_log.inc(&["write_error"]);
                    tracing::warn!(error = %e, records = batch.len(), attempt, retry_in_ms = backoff.as_millis() as u64, "prediction log cannot write, retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    metrics.prediction_log.inc(&["write_error"]);
                    metrics
                        .prediction_log
                        .inc_by(&["dropped_write_failed"], batch.len() as u64);
                    tracing::error!(error = %e, records = batch.len(), attempts = WRITE_ATTEMPTS, "prediction log gave up: records dropped");
                }
            }
        }
    }
}

/// One multi-row insert of `batch`, column by column.
fn insert(db: &Database, batch: &[PredictionRecord]) -> Result<(), StoreError> {
    let col = |f: &dyn Fn(&PredictionRecord) -> f64| batch.iter().map(f).collect::<Vec<f64>>();
    let symbols: Vec<&str> = batch.iter().map(|r| r.symbol.as_str()).collect();
    let models: Vec<&str> = batch.iter().map(|r| r.model.as_str()).collect();
    let labels: Vec<&str> = batch.iter().map(|r| r.label.as_str()).collect();
    let versions: Vec<&str> = batch.iter().map(|r| r.model_version.as_str()).collect();
    let generations: Vec<Option<i64>> = batch
        .iter()
        .map(|r| r.generation.and_then(|g| i64::try_from(g).ok()))
        .collect();
    let horizons: Vec<i32> = batch
        .iter()
        .map(|r| i32::try_from(r.horizon).unwrap_or(i32::MAX))
        .collect();
    let base: Vec<Day> = batch.iter().map(|r| r.base_day).collect();
    let target: Vec<Day> = batch.iter().map(|r| r.target_day).collect();
    let s = db.schema();
    db.client()?
        .execute(
            &format!(
                "INSERT INTO {s}.predictions (symbol, model, label, model_version, generation,
                     horizon, predicted, lower, upper, level, confidence, current_price,
                     served_at, base_day, target_day, replica)
                 SELECT t.sym, t.model, t.label, t.ver, t.gen, t.h, t.pred, t.lo, t.hi, t.lvl,
                     t.conf, t.cur, to_timestamp(t.at), DATE '1970-01-01' + t.base,
                     DATE '1970-01-01' + t.target, $16
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[],
                     $6::int4[], $7::float8[], $8::float8[], $9::float8[], $10::float8[],
                     $11::float8[], $12::float8[], $13::float8[], $14::int4[], $15::int4[])
                     AS t(sym, model, label, ver, gen, h, pred, lo, hi, lvl, conf, cur, at,
                          base, target)"
            ),
            &[
                &symbols,
                &models,
                &labels,
                &versions,
                &generations,
                &horizons,
                &col(&|r| r.predicted),
                &col(&|r| r.lower),
                &col(&|r| r.upper),
                &col(&|r| r.level),
                &col(&|r| r.confidence),
                &col(&|r| r.current_price),
                &col(&|r| r.served_at),
                &base,
                &target,
                &db.replica(),
            ],
        )
        .map_err(db_error)?;
    Ok(())
}

/// Which logged predictions to score.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AccuracyFilter {
    /// Only this model (as asked for).
    pub model: Option<String>,
    /// Only this horizon.
    pub horizon: Option<u32>,
    /// Served on or after this day.
    pub from: Option<Day>,
    /// Served on or before this day.
    pub to: Option<Day>,
}

/// A logged prediction, as scored.
#[derive(Clone, Debug, PartialEq)]
pub struct Logged {
    /// The model asked for.
    pub model: String,
    /// Days ahead.
    pub horizon: u32,
    /// Predicted price.
    pub predicted: f64,
    /// Band.
    pub lower: f64,
    /// Band.
    pub upper: f64,
    /// The band's level.
    pub level: f64,
    /// Stated confidence.
    pub confidence: f64,
    /// Price when served.
    pub current_price: f64,
    /// The day it forecast.
    pub target_day: Day,
}

/// The logged predictions of `symbol` whose target day is on or before `until`. Blocking.
///
/// # Errors
/// [`StoreError::Database`] when the log cannot be read.
pub fn logged(
    db: &Database,
    symbol: &Symbol,
    until: Day,
    filter: &AccuracyFilter,
) -> Result<Vec<Logged>, StoreError> {
    let s = db.schema();
    let horizon = filter.horizon.and_then(|h| i32::try_from(h).ok());
    let rows = db
        .client()?
        .query(
            &format!(
                "SELECT model, horizon, predicted, lower, upper, level, confidence,
                     current_price, (target_day - DATE '1970-01-01')::int4
                 FROM {s}.predictions
                 WHERE symbol = $1 AND target_day <= DATE '1970-01-01' + $2::int4
                   AND ($3::text IS NULL OR model = $3)
                   AND ($4::int4 IS NULL OR horizon = $4)
                   AND ($5::int4 IS NULL OR served_at >= to_timestamp($5::int4 * 86400.0))
                   AND ($6::int4 IS NULL OR served_at < to_timestamp(($6::int4 + 1) * 86400.0))"
            ),
            &[
                &symbol.as_str(),
                &until,
                &filter.model,
                &horizon,
                &filter.from,
                &filter.to,
            ],
        )
        .map_err(db_error)?;
    Ok(rows
        .iter()
        .map(|r| Logged {
            model: r.get(0),
            horizon: u32::try_from(r.get::<_, i32>(1)).unwrap_or(0),
            predicted: r.get(2),
            lower: r.get(3),
            upper: r.get(4),
            level: r.get(5),
            confidence: r.get(6),
            current_price: r.get(7),
            target_day: r.get(8),
        })
        .collect())
}

/// Every symbol with logged predictions, sorted. Blocking.
///
/// # Errors
/// [`StoreError::Database`] when the log cannot be read.
pub fn logged_symbols(db: &Database) -> Result<Vec<Symbol>, StoreError> {
    let s = db.schema();
    let rows = db
        .client()?
        .query(
            &format!("SELECT DISTINCT symbol FROM {s}.predictions ORDER BY symbol"),
            &[],
        )
        .map_err(db_error)?;
    Ok(rows
        .iter()
        .filter_map(|r| Symbol::parse(r.get::<_, &str>(0)).ok())
        .collect())
}

/// The accuracy of a set of predictions against what came true.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Accuracy {
    /// Predictions scored (target day passed and its close known).
    pub count: usize,
    /// Predictions whose target day has passed but whose close is not in the database.
    pub unscored: usize,
    /// Mean absolute error of the predicted price.
    pub mae: Option<f64>,
    /// Mean absolute percentage error (a fraction: 0.05 is 5%).
    pub mape: Option<f64>,
    /// MAE over the MAE of the naive forecast made at the same time (the price when served):
    /// below 1 beats naive.
    pub mase: Option<f64>,
    /// Share of actual prices inside the served band.
    pub coverage: Option<f64>,
    /// Mean band level served (compare with `coverage`).
    pub mean_level: Option<f64>,
    /// Share of predictions that moved in the direction the price moved, among those that
    /// predicted a move and saw one.
    pub direction_hit_rate: Option<f64>,
    /// Predictions counted by `direction_hit_rate`.
    pub direction_count: usize,
    /// `1 - mape`: the confidence the predictions earned.
    pub realised_confidence: Option<f64>,
    /// The mean `confidence` served (compare with `realised_confidence`).
    pub mean_confidence: Option<f64>,
}

/// Scores `logged` against `actual` (the symbol's closes).
pub fn score(logged: &[Logged], actual: &Closes) -> Accuracy {
    let mut n = 0usize;
    let (mut abs, mut pct, mut naive_abs, mut inside, mut conf, mut level) =
        (0.0, 0.0, 0.0, 0usize, 0.0, 0.0);
    let (mut hits, mut directional) = (0usize, 0usize);
    let mut unscored = 0;
    for p in logged {
        let Some(truth) = actual.on(p.target_day) else {
            unscored += 1;
            continue;
        };
        n += 1;
        abs += (p.predicted - truth).abs();
        pct += ((p.predicted - truth) / truth).abs();
        naive_abs += (p.current_price - truth).abs();
        inside += usize::from(p.lower <= truth && truth <= p.upper);
        conf += p.confidence;
        level += p.level;
        let (said, went) = (p.predicted - p.current_price, truth - p.current_price);
        if said != 0.0 && went != 0.0 {
            directional += 1;
            hits += usize::from(said.signum() == went.signum());
        }
    }
    if n == 0 {
        return Accuracy {
            unscored,
            ..Accuracy::default()
        };
    }
    let count = n as f64;
    let mape = pct / count;
    Accuracy {
        count: n,
        unscored,
        mae: Some(abs / count),
        mape: Some(mape),
        mase: (naive_abs > 0.0).then(|| abs / naive_abs),
        coverage: Some(inside as f64 / count),
        mean_level: Some(level / count),
        direction_hit_rate: (directional > 0).then(|| hits as f64 / directional as f64),
        direction_count: directional,
        realised_confidence: Some(1.0 - mape),
        mean_confidence: Some(conf / count),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(predicted: f64, current: f64, target_day: Day) -> Logged {
        Logged {
            model: "naive".into(),
            horizon: 1,
            predicted,
            lower: predicted * 0.9,
            upper: predicted * 1.1,
            level: 0.8,
            confidence: 0.9,
            current_price: current,
            target_day,
        }
    }

    #[test]
    fn scores_against_the_close_of_the_target_day() {
        let actual = Closes {
            days: vec![10, 11],
            closes: vec![100.0, 110.0],
        };
        // Predicted 105 from 100 for day 11 (110): error 5, naive error 10, direction hit.
        // Predicted 95 from 100 for day 11: error 15, a miss, outside the band.
        // Day 12 has no close yet.
        let rows = [
            logged(105.0, 100.0, 11),
            logged(95.0, 100.0, 11),
            logged(1.0, 1.0, 12),
        ];
        let a = score(&rows, &actual);
        assert_eq!(a.count, 2);
        assert_eq!(a.unscored, 1);
        assert!((a.mae.unwrap() - 10.0).abs() < 1e-12);
        assert!((a.mape.unwrap() - (5.0 / 110.0 + 15.0 / 110.0) / 2.0).abs() < 1e-12);
        assert!((a.mase.unwrap() - 20.0 / 20.0).abs() < 1e-12);
        assert_eq!(a.coverage, Some(0.5));
        assert_eq!(a.direction_hit_rate, Some(0.5));
        assert_eq!(a.direction_count, 2);
        assert_eq!(a.mean_confidence, Some(0.9));
        assert_eq!(a.mean_level, Some(0.8));
    }

    #[test]
    fn nothing_to_score_gives_counts_only() {
        let a = score(&[logged(1.0, 1.0, 5)], &Closes::default());
        assert_eq!(a.count, 0);
        assert_eq!(a.unscored, 1);
        assert_eq!(a.mae, None);
    }
}
