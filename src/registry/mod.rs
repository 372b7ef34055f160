//! Models in memory and how they get there: an LRU cache keyed by symbol and model version,
//! loading from the [`ModelStore`], and on-demand training.
//!
//! Training is expensive (seconds to minutes of CPU), so three rules hold:
//! - **single flight**: concurrent requests for one symbol share one load-or-train task; the task
//!   is spawned, so a client that disconnects does not cancel the others' training;
//! - **off the runtime**: training and file I/O run on the blocking pool, never on async workers;
//! - **bounded**: at most `max_concurrent` trainings run and at most `queue` more wait; beyond
//!   that [`RegistryError::Overloaded`] asks the client to retry later;
//! - **nobody waits, nothing queues**: an on-demand training still waiting for a slot when
//!   every request that wanted it has gone is cancelled ([`RegistryError::Abandoned`]), so
//!   clients that give up cannot keep the queue full; one already running finishes and is
//!   stored, and the next request for the symbol is served from it;
//! - **permission**: a request trains from its own prices only with a
//!   [`TrainingPermission::Granted`] (the server's `TRAINING_MODE` decides).
//!
//! Explicit retraining, fine-tuning and warm-up live in the `tuning` submodule.

mod pool;
pub mod retrain;
pub mod stats_cache;
mod tuning;
pub mod warmup;

#[cfg(test)]
pub(crate) use tuning::tests::registry as test_registry;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};

use crate::domain::{Horizon, ModelVersion, PriceSeries, Symbol};
use crate::forecast::intervals::{
    forecast_fitted, forecast_with_intervals, naive_calibration, CalibrationSettings,
    IntervalForecast,
};
use crate::forecast::lstm::forecaster::FittedLstm;
use crate::forecast::lstm::{self, LstmConfig, LstmError, Precision, TrainedLstm};
use crate::forecast::naive::Naive;
use crate::forecast::ForecastError;
use crate::store::{self, ModelStore, StoreError, StoreEvent, Stored, TrainingLock};
use crate::telemetry::metrics::{BuildInfo, Metrics};

/// Fewest prices a forecast needs (the LSTM window of SPEC section 3; the contract's 400).
pub const MIN_FORECAST_PRICES: usize = 60;
/// Fewest prices on-demand training accepts (the contract's 404).
pub const MIN_TRAINING_PRICES: usize = 200;

/// Why a model or a forecast could not be produced. `Clone` because one outcome is shared by
/// every request waiting on the same training.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RegistryError {
    /// Fewer prices than the forecast window.
    #[error("need at least {needed} prices to forecast, got {got}")]
    HistoryTooShort { needed: usize, got: usize },
    /// No stored model, and too few prices to train one.
    #[error("no model for {symbol} and only {got} prices, fewer than the {needed} training needs")]
    NoModel {
        symbol: Symbol,
        needed: usize,
        got: usize,
    },
    /// The training queue is full.
    #[error("the training queue is full; retry in {retry_after_secs} s")]
    Overloaded { retry_after_secs: u64 },
    /// The series cannot give a finite model or forecast (for example a constant series).
    #[error("cannot model {symbol}: {reason}")]
    Degenerate { symbol: Symbol, reason: String },
    /// The engine failed for another reason.
    #[error("training failed")]
    Training(#[source] Arc<LstmError>),
    /// The store failed to read.
    #[error("model store failed")]
    Store(#[source] Arc<StoreError>),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    TaskFailed(String),
    /// No stored model, and this request may not train one from its prices.
    #[error("no model for {symbol}, and on-demand training is refused: {refusal:?}")]
    TrainingRefused {
        symbol: Symbol,
        refusal: TrainingRefusal,
    },
    /// A queued training was cancelled because every request waiting for it went away.
    #[error("the training was cancelled: nobody waits for it any more")]
    Abandoned,
}

/// Whether a request may train a model from the prices it brings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainingPermission {
    /// It may.
    Granted,
    /// It may not, for this reason.
    Refused(TrainingRefusal),
}

/// Why a request may not train from its own prices (`TRAINING_MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainingRefusal {
    /// `TRAINING_MODE=off`: models come from the store (pretraining, `POST .../train`) only.
    Disabled,
    /// `TRAINING_MODE=authenticated` and the request carries no API key.
    MissingKey,
    /// `TRAINING_MODE=authenticated` and the request's API key is wrong.
    WrongKey,
}

/// How the registry is sized and what it trains.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Part of every model's key.
    pub version: ModelVersion,
    /// Hyper-parameters of on-demand training.
    pub lstm: LstmConfig,
    /// Models kept in memory.
    pub cache_size: NonZeroUsize,
    /// Trainings that may run at once.
    pub max_concurrent_trainings: NonZeroUsize,
    /// Trainings that may wait for a slot.
    pub training_queue: usize,
    /// Arithmetic of forecasts (training and validation always run in f32).
    pub precision: Precision,
    /// How long a training waits for another replica that trains the same symbol (the
    /// training timeout); beyond it, [`RegistryError::Overloaded`].
    pub cluster_wait: Duration,
    /// This process's replica id (`REPLICA_ID`): events it published itself are not applied
    /// twice.
    pub replica: String,
}

/// Cache key: a model is only reused under the same symbol and model version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelKey {
    /// Upper-case symbol.
    pub symbol: Symbol,
    /// Model version tag.
    pub version: ModelVersion,
}

/// Counters for `/health` and tests.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RegistryStats {
    /// Models in memory.
    pub models_loaded: usize,
    /// Trainings started since start-up.
    pub trainings_total: u64,
    /// Trainings running now.
    pub trainings_running: usize,
    /// Trainings admitted and waiting for a slot.
    pub trainings_waiting: usize,
    /// Trainings that failed or were refused as degenerate.
    pub trainings_failed_total: u64,
    /// Models loaded from the store since start-up.
    pub models_loaded_from_store_total: u64,
    /// Requests answered from the in-memory cache.
    pub cache_hits_total: u64,
    /// Requests refused because the training queue was full.
    pub overloaded_total: u64,
}

/// `label` of an LSTM forecast answered by the naive forecast because the posted prices lie
/// far outside the range the symbol's model was trained on.
pub const OUT_OF_RANGE_LABEL: &str = "lstm(fallback: naive, input outside the training range)";

type Outcome = Result<Arc<TrainedLstm>, RegistryError>;

#[derive(Default)]
struct Counters {
    trainings_total: AtomicU64,
    trainings_running: AtomicUsize,
    trainings_waiting: AtomicUsize,
    trainings_failed_total: AtomicU64,
    loaded_from_store_total: AtomicU64,
    cache_hits_total: AtomicU64,
    overloaded_total: AtomicU64,
    /// Duration of the last finished training, for Retry-After.
    last_training_millis: AtomicU64,
}

/// The in-memory model registry. Share it as `Arc<Registry>`.
pub struct Registry {
    config: RegistryConfig,
    store: Arc<dyn ModelStore>,
    cache: Mutex<LruCache<ModelKey, Arc<TrainedLstm>>>,
    /// The published generation of models in memory, where the store numbers them (entries
    /// of models evicted from the cache are ignored, and dropped when seen).
    generations: Mutex<HashMap<ModelKey, u64>>,
    /// One sender per load-or-train task; every waiting request holds one of its receivers,
    /// so the task can tell when nobody waits any more.
    inflight: Mutex<HashMap<ModelKey, Arc<watch::Sender<Option<Outcome>>>>>,
    run_slots: Arc<Semaphore>,
    admissions: Arc<Semaphore>,
    counters: Counters,
    metrics: Arc<Metrics>,
    /// Runs cached forecasts, one thread per core.
    pool: pool::ForecastPool,
}

/// The work a training slot runs: trains (or fine-tunes) and checks the model.
type TrainingJob =
    Box<dyn FnOnce(&Symbol, &LstmConfig) -> Result<TrainedLstm, RegistryError> + Send>;

/// Locks a mutex, ignoring poisoning: every critical section here leaves its data consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    /// A registry over `store`.
    pub fn new(config: RegistryConfig, store: Arc<dyn ModelStore>) -> Arc<Self> {
        let admitted = config.max_concurrent_trainings.get() + config.training_queue;
        Arc::new(Self {
            cache: Mutex::new(LruCache::new(config.cache_size)),
            generations: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            run_slots: Arc::new(Semaphore::new(config.max_concurrent_trainings.get())),
            admissions: Arc::new(Semaphore::new(admitted)),
            counters: Counters::default(),
            metrics: Arc::new(Metrics::new(&BuildInfo {
                store: store.kind(),
                replica: config.replica.clone(),
                ..BuildInfo::current(config.precision.kernel())
            })),
            pool: pool::ForecastPool::per_core(),
            store,
            config,
        })
    }

    /// The model version every key carries.
    pub fn version(&self) -> &ModelVersion {
        &self.config.version
    }

    /// The arithmetic of forecasts.
    pub fn precision(&self) -> Precision {
        self.config.precision
    }

    /// The hyper-parameters of on-demand training.
    pub fn lstm_config(&self) -> &LstmConfig {
        &self.config.lstm
    }

    fn key(&self, symbol: &Symbol) -> ModelKey {
        ModelKey {
            symbol: symbol.clone(),
            version: self.config.version.clone(),
        }
    }

    /// The in-memory model of `symbol`, if any (does not touch the store or the LRU order).
    pub fn loaded(&self, symbol: &Symbol) -> Option<Arc<TrainedLstm>> {
        lock(&self.cache).peek(&self.key(symbol)).cloned()
    }

    /// Every symbol with a model of this version, sorted, each with whether it is in memory
    /// (else it is only stored). The store is read off the runtime.
    ///
    /// # Errors
    /// [`RegistryError::Store`] when the store cannot be listed.
    pub async fn listing(&self) -> Result<Vec<(Symbol, bool)>, RegistryError> {
        let loaded: Vec<Symbol> = lock(&self.cache)
            .iter()
            .filter(|(k, _)| k.version == self.config.version)
            .map(|(k, _)| k.symbol.clone())
            .collect();
        let store = Arc::clone(&self.store);
        let version = self.config.version.clone();
        let stored = tokio::task::spawn_blocking(move || store.list(&version))
            .await
            .map_err(|e| RegistryError::TaskFailed(e.to_string()))?
            .map_err(|e| RegistryError::Store(Arc::new(e)))?;
        let mut all: std::collections::BTreeMap<Symbol, bool> =
            stored.into_iter().map(|s| (s, false)).collect();
        all.extend(loaded.into_iter().map(|s| (s, true)));
        Ok(all.into_iter().collect())
    }

    /// Drops `symbol`'s model from memory; `true` if it was there.
    pub fn unload(&self, symbol: &Symbol) -> bool {
        let key = self.key(symbol);
        self.remember(&key, None);
        lock(&self.cache).pop(&key).is_some()
    }

    /// Where models are stored (`filesystem`, `postgres`, `postgres+s3`).
    pub fn store_kind(&self) -> &'static str {
        self.store.kind()
    }

    /// This process's replica id.
    pub fn replica(&self) -> &str {
        &self.config.replica
    }

    /// The published generation of every model in memory whose store numbers them, by symbol.
    pub fn served_generations(&self) -> std::collections::BTreeMap<Symbol, u64> {
        let cache = lock(&self.cache);
        lock(&self.generations)
            .iter()
            .filter(|(k, _)| k.version == self.config.version && cache.contains(k))
            .map(|(k, g)| (k.symbol.clone(), *g))
            .collect()
    }

    /// The published generation of `symbol`'s model in memory, if its store numbers them.
    pub fn generation(&self, symbol: &Symbol) -> Option<u64> {
        lock(&self.generations).get(&self.key(symbol)).copied()
    }

    /// Records the generation of the model of `key` now going into memory (`None`: unknown,
    /// or the model leaves memory).
    fn remember(&self, key: &ModelKey, generation: Option<u64>) {
        let mut generations = lock(&self.generations);
        match generation {
            Some(g) => generations.insert(key.clone(), g),
            None => generations.remove(key),
        };
        self.metrics.set_generation(key.symbol.as_str(), generation);
    }

    /// Applies a change that another replica made to the shared store: a model published
    /// there replaces the one in memory (it is dropped, and reloaded in the background if it
    /// was in memory), a purged one is dropped; after [`StoreEvent::Resync`] every model is
    /// dropped, to be loaded again on demand. Needs the async runtime (it spawns the reload).
    pub fn apply_store_event(self: &Arc<Self>, event: StoreEvent) {
        let (event_name, key) = match event {
            StoreEvent::Published {
                symbol,
                version,
                generation,
                replica,
            } => {
                if version != self.config.version || replica == self.config.replica {
                    return;
                }
                let key = ModelKey { symbol, version };
                let cached = lock(&self.generations).get(&key).copied();
                if cached.is_some_and(|g| g >= generation) {
                    return;
                }
                ("published", key)
            }
            StoreEvent::Purged {
                symbol,
                version,
                replica,
            } => {
                if version != self.config.version || replica == self.config.replica {
                    return;
                }
                ("purged", ModelKey { symbol, version })
            }
            StoreEvent::PricesChanged { .. } => return,
            StoreEvent::Resync => {
                self.metrics.store_events.inc(&["resync"]);
                let mut cache = lock(&self.cache);
                for (key, _) in cache.iter() {
                    self.remember(key, None);
                }
                cache.clear();
                return;
            }
        };
        self.metrics.store_events.inc(&[event_name]);
        let was_loaded = {
            let mut cache = lock(&self.cache);
            self.remember(&key, None);
            cache.pop(&key).is_some()
        };
        tracing::info!(symbol = %key.symbol, event = event_name, was_loaded, "model changed by another replica");
        if was_loaded && event_name == "published" {
            let this = Arc::clone(self);
            tokio::spawn(async move {
                match this.warm(&key.symbol).await {
                    Ok(true) => this.metrics.store_events.inc(&["reloaded"]),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(symbol = %key.symbol, error = %e, "cannot reload a model another replica published")
                    }
                }
            });
        }
    }

    /// Removes `symbol`'s stored artefact (off the runtime); `true` if there was one.
    ///
    /// # Errors
    /// [`RegistryError::Store`] when a file cannot be removed.
    pub async fn purge(&self, symbol: &Symbol) -> Result<bool, RegistryError> {
        let store = Arc::clone(&self.store);
        let (symbol, version) = (symbol.clone(), self.config.version.clone());
        tokio::task::spawn_blocking(move || store.purge(&symbol, &version))
            .await
            .map_err(|e| RegistryError::TaskFailed(e.to_string()))?
            .map_err(|e| RegistryError::Store(Arc::new(e)))
    }

    /// Puts a model in memory (used by the CLI after training, and by tests).
    pub fn insert(&self, symbol: &Symbol, model: Arc<TrainedLstm>) {
        lock(&self.cache).put(self.key(symbol), model);
    }

    /// Current counters.
    pub fn stats(&self) -> RegistryStats {
        let c = &self.counters;
        RegistryStats {
            models_loaded: lock(&self.cache).len(),
            trainings_total: c.trainings_total.load(Ordering::Relaxed),
            trainings_running: c.trainings_running.load(Ordering::Relaxed),
            trainings_waiting: c.trainings_waiting.load(Ordering::Relaxed),
            trainings_failed_total: c.trainings_failed_total.load(Ordering::Relaxed),
            models_loaded_from_store_total: c.loaded_from_store_total.load(Ordering::Relaxed),
            cache_hits_total: c.cache_hits_total.load(Ordering::Relaxed),
            overloaded_total: c.overloaded_total.load(Ordering::Relaxed),
        }
    }

    /// Forecasts `horizon` steps after `prices` with `symbol`'s model, loading or training it
    /// first if needed, banded at `level` ([`serve_lstm`]). The forecast itself runs on the
    /// forecast pool, off the runtime.
    ///
    /// # Errors
    /// [`RegistryError::HistoryTooShort`] under 60 prices, then any error of
    /// [`Registry::model_for`], and [`RegistryError::Degenerate`] for a non-finite forecast.
    pub async fn forecast(
        self: &Arc<Self>,
        symbol: &Symbol,
        prices: PriceSeries,
        horizon: Horizon,
        level: f64,
        permission: TrainingPermission,
    ) -> Result<IntervalForecast, RegistryError> {
        if prices.len() < MIN_FORECAST_PRICES {
            return Err(RegistryError::HistoryTooShort {
                needed: MIN_FORECAST_PRICES,
                got: prices.len(),
            });
        }
        let prices: Arc<[f64]> = prices.into_inner().into();
        let model = self
            .model_for(symbol, Arc::clone(&prices), permission)
            .await?;
        let precision = self.config.precision;
        let (horizon, served) = (horizon.get(), symbol.clone());
        self.pool
            .run(move || serve_lstm(&served, model, prices, horizon, level, precision))
            .await
            .ok_or_else(|| RegistryError::TaskFailed("the forecast panicked".into()))?
            .map_err(|e| forecast_error(symbol, e))
    }

    /// `symbol`'s model: from memory, else from the store, else trained on `prices` (at least
    /// [`MIN_TRAINING_PRICES`]) when `permission` allows. Concurrent calls for one symbol
    /// share one load-or-train task; the task is cancelled while it waits for a training slot
    /// once none of them waits any more.
    ///
    /// # Errors
    /// [`RegistryError::NoModel`], [`RegistryError::TrainingRefused`],
    /// [`RegistryError::Overloaded`], [`RegistryError::Degenerate`],
    /// [`RegistryError::Training`], [`RegistryError::Store`], [`RegistryError::TaskFailed`].
    pub async fn model_for(
        self: &Arc<Self>,
        symbol: &Symbol,
        prices: Arc<[f64]>,
        permission: TrainingPermission,
    ) -> Outcome {
        let key = self.key(symbol);
        let can_train =
            prices.len() >= MIN_TRAINING_PRICES && permission == TrainingPermission::Granted;
        loop {
            let (mut rx, leader) = {
                let mut inflight = lock(&self.inflight);
                // Checked under the in-flight lock: a finished task fills the cache before it
                // leaves the in-flight map, so one of the two always sees the model.
                if let Some(model) = lock(&self.cache).get(&key).cloned() {
                    self.counters
                        .cache_hits_total
                        .fetch_add(1, Ordering::Relaxed);
                    self.metrics.cache.inc(&["hit"]);
                    return Ok(model);
                }
                self.metrics.cache.inc(&["miss"]);
                match inflight.get(&key) {
                    Some(tx) => (tx.subscribe(), false),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        let tx = Arc::new(tx);
                        inflight.insert(key.clone(), Arc::clone(&tx));
                        let this = Arc::clone(self);
                        let (key, prices) = (key.clone(), Arc::clone(&prices));
                        tokio::spawn(async move {
                            let guard = InflightGuard {
                                registry: &this,
                                key: &key,
                            };
                            let outcome = this.load_or_train(&key, prices, permission, &tx).await;
                            if let Ok(model) = &outcome {
                                lock(&this.cache).put(key.clone(), Arc::clone(model));
                            }
                            drop(guard);
                            tx.send_replace(Some(outcome));
                        });
                        (rx, true)
                    }
                }
            };
            let outcome = match rx.wait_for(Option::is_some).await {
                Ok(v) => v.clone().expect("waited for Some"),
                Err(_) => Err(RegistryError::TaskFailed(
                    "model task ended without a result".into(),
                )),
            };
            match outcome {
                // The leader had too few prices to train (a warm-up has none), and this
                // caller has enough: its own answer may differ (a training, or a refusal).
                Err(RegistryError::NoModel { .. })
                    if !leader && prices.len() >= MIN_TRAINING_PRICES => {}
                // The leader was not allowed to train, and this caller is: go again.
                Err(RegistryError::TrainingRefused { .. }) if !leader && can_train => {}
                // Everyone else gave up on that task just as this caller joined it.
                Err(RegistryError::Abandoned) if !leader => {}
                other => return other,
            }
        }
    }

    async fn load_or_train(
        self: &Arc<Self>,
        key: &ModelKey,
        prices: Arc<[f64]>,
        permission: TrainingPermission,
        waiters: &watch::Sender<Option<Outcome>>,
    ) -> Outcome {
        let symbol = &key.symbol;
        if let Some(model) = self.load_stored(key).await? {
            return Ok(model);
        }
        if prices.len() < MIN_TRAINING_PRICES {
            return Err(RegistryError::NoModel {
                symbol: symbol.clone(),
                needed: MIN_TRAINING_PRICES,
                got: prices.len(),
            });
        }
        if let TrainingPermission::Refused(refusal) = permission {
            return Err(RegistryError::TrainingRefused {
                symbol: symbol.clone(),
                refusal,
            });
        }
        let job: TrainingJob = Box::new(move |sym, config| train_checked(sym, config, &prices));
        let result = self
            .run_training(key, "train", job, Some(waiters), true)
            .await;
        if matches!(&result, Err(e) if !matches!(e, RegistryError::Overloaded { .. } | RegistryError::Abandoned))
        {
            self.counters
                .trainings_failed_total
                .fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Trains in the bounded pool, checks the model is finite, stores it.
    async fn train(self: &Arc<Self>, key: &ModelKey, prices: Arc<[f64]>) -> Outcome {
        let job: TrainingJob = Box::new(move |sym, config| train_checked(sym, config, &prices));
        self.run_training(key, "train", job, None, false).await
    }

    /// The stored model of `key`, read off the runtime, its generation remembered.
    async fn load_stored(&self, key: &ModelKey) -> Result<Option<Arc<TrainedLstm>>, RegistryError> {
        let store = Arc::clone(&self.store);
        let k = key.clone();
        let loaded = tokio::task::spawn_blocking(move || store.fetch(&k.symbol, &k.version))
            .await
            .map_err(|e| RegistryError::TaskFailed(e.to_string()))?
            .map_err(|e| RegistryError::Store(Arc::new(e)))?;
        let Some(Stored { model, generation }) = loaded else {
            return Ok(None);
        };
        self.counters
            .loaded_from_store_total
            .fetch_add(1, Ordering::Relaxed);
        self.remember(key, generation);
        tracing::info!(symbol = %key.symbol, version = %key.version, generation, "model loaded from the store");
        Ok(Some(Arc::new(model)))
    }

    /// Takes the store's training lock of `key`, waiting (polling every [`LOCK_POLL`]) while
    /// another replica holds it, at most [`RegistryConfig::cluster_wait`]; with `waiters`, gives
    /// up once all of them are gone.
    async fn cluster_lock(
        &self,
        key: &ModelKey,
        waiters: Option<&watch::Sender<Option<Outcome>>>,
    ) -> Result<Box<dyn TrainingLock>, RegistryError> {
        let blocking_failed = |e: tokio::task::JoinError| RegistryError::TaskFailed(e.to_string());
        let store_failed = |e: StoreError| RegistryError::Store(Arc::new(e));
        let store = Arc::clone(&self.store);
        let k = key.clone();
        let mut lock =
            tokio::task::spawn_blocking(move || store.training_lock(&k.symbol, &k.version))
                .await
                .map_err(blocking_failed)?
                .map_err(store_failed)?;
        let deadline = Instant::now() + self.config.cluster_wait;
        let mut waited = false;
        loop {
            let (back, taken) = tokio::task::spawn_blocking(move || {
                let taken = lock.try_acquire();
                (lock, taken)
            })
            .await
            .map_err(blocking_failed)?;
            lock = back;
            if taken.map_err(store_failed)? {
                return Ok(lock);
            }
            if !waited {
                waited = true;
                self.metrics.store_events.inc(&["lock_wait"]);
                tracing::info!(symbol = %key.symbol, "another replica is training this model: waiting for it");
            }
            if Instant::now() >= deadline {
                return Err(RegistryError::Overloaded {
                    retry_after_secs: self.retry_after_secs(),
                });
            }
            let pause = tokio::time::sleep(LOCK_POLL);
            match waiters {
                Some(waiters) => tokio::select! {
                    () = pause => {}
                    () = waiters.closed() => return Err(RegistryError::Abandoned),
                },
                None => pause.await,
            }
        }
    }

    /// Takes the cluster lock of `key`; with `reuse`, on a shared store, answers the model
    /// another replica published while this one waited instead.
    async fn cluster_turn(
        &self,
        key: &ModelKey,
        waiters: Option<&watch::Sender<Option<Outcome>>>,
        reuse: bool,
    ) -> Result<ClusterTurn, RegistryError> {
        let lock = self.cluster_lock(key, waiters).await?;
        if reuse && self.store.shared() {
            if let Some(model) = self.load_stored(key).await? {
                return Ok(ClusterTurn::Published(model));
            }
        }
        Ok(ClusterTurn::Train(lock))
    }

    /// Runs `job` (of metrics kind `kind`) in the bounded pool and stores its model. With
    /// `waiters`, the job is dropped while it waits for a slot if all their receivers go.
    ///
    /// The store's training lock of `key` is held from before the slot to after the model is
    /// stored, so replicas sharing a store train a symbol one at a time. With `reuse`, a model
    /// found in the store once the lock is taken (another replica trained it meanwhile) is
    /// answered instead of training.
    async fn run_training(
        self: &Arc<Self>,
        key: &ModelKey,
        kind: &'static str,
        job: TrainingJob,
        waiters: Option<&watch::Sender<Option<Outcome>>>,
        reuse: bool,
    ) -> Outcome {
        let symbol = key.symbol.clone();
        let Ok(admission) = Arc::clone(&self.admissions).try_acquire_owned() else {
            self.counters
                .overloaded_total
                .fetch_add(1, Ordering::Relaxed);
            self.metrics.trainings.inc(&[kind, "rejected"]);
            return Err(RegistryError::Overloaded {
                retry_after_secs: self.retry_after_secs(),
            });
        };
        self.counters
            .trainings_waiting
            .fetch_add(1, Ordering::Relaxed);
        let cluster = match self.cluster_turn(key, waiters, reuse).await {
            Ok(ClusterTurn::Train(lock)) => lock,
            Ok(ClusterTurn::Published(model)) => {
                self.counters
                    .trainings_waiting
                    .fetch_sub(1, Ordering::Relaxed);
                return Ok(model);
            }
            Err(e) => {
                self.counters
                    .trainings_waiting
                    .fetch_sub(1, Ordering::Relaxed);
                if matches!(e, RegistryError::Abandoned) {
                    self.metrics.trainings.inc(&[kind, "abandoned"]);
                }
                return Err(e);
            }
        };
        let acquire = Arc::clone(&self.run_slots).acquire_owned();
        let slot = match waiters {
            Some(waiters) => tokio::select! {
                slot = acquire => Some(slot),
                () = waiters.closed() => None,
            },
            None => Some(acquire.await),
        };
        self.counters
            .trainings_waiting
            .fetch_sub(1, Ordering::Relaxed);
        let Some(slot) = slot else {
            drop(admission);
            self.metrics.trainings.inc(&[kind, "abandoned"]);
            tracing::info!(%symbol, kind, "queued training cancelled: nobody waits for it");
            return Err(RegistryError::Abandoned);
        };
        let slot = slot.map_err(|e| RegistryError::TaskFailed(e.to_string()))?;
        self.counters
            .trainings_total
            .fetch_add(1, Ordering::Relaxed);
        self.counters
            .trainings_running
            .fetch_add(1, Ordering::Relaxed);

        let config = self.config.lstm.clone();
        let store = Arc::clone(&self.store);
        let version = key.version.clone();
        let this = Arc::clone(self);
        let sym = symbol.clone();
        let joined = tokio::task::spawn_blocking(move || {
            // The permits and the lock live as long as the training and its saving, even if
            // every waiter went away.
            let _permits = (admission, slot, cluster);
            let started = Instant::now();
            tracing::info!(symbol = %sym, kind, epochs = config.epochs, "training started");
            let result = job(&sym, &config);
            // Training freed tens of MB on this thread; give them back to the OS.
            crate::telemetry::memory::release_free_memory();
            this.metrics
                .training_finished(kind, result.is_ok(), started.elapsed());
            let seconds = started.elapsed().as_secs_f64();
            this.counters
                .last_training_millis
                .store((seconds * 1000.0) as u64, Ordering::Relaxed);
            this.counters
                .trainings_running
                .fetch_sub(1, Ordering::Relaxed);
            let model = match result {
                Ok(model) => model,
                Err(e) => {
                    tracing::warn!(symbol = %sym, seconds, error = %e, "training failed");
                    return Err(e);
                }
            };
            let s = model.summary();
            tracing::info!(
                symbol = %sym,
                seconds,
                final_train_loss = s.final_train_loss,
                validation_loss = s.validation_loss,
                "training finished"
            );
            match store.save(&sym, &version, &model) {
                Ok(generation) => this.remember(
                    &ModelKey {
                        symbol: sym.clone(),
                        version: version.clone(),
                    },
                    generation,
                ),
                Err(StoreError::NonFinite(what)) => {
                    return Err(RegistryError::Degenerate {
                        symbol: sym,
                        reason: format!("training produced non-finite {what}"),
                    })
                }
                // The model is sound; serve it from memory and say loudly that it is not saved.
                Err(e) => tracing::error!(symbol = %sym, error = %e, "could not store the model"),
            }
            Ok(Arc::new(model))
        })
        .await;
        joined.unwrap_or_else(|e| {
            self.counters
                .trainings_running
                .fetch_sub(1, Ordering::Relaxed);
            Err(RegistryError::TaskFailed(e.to_string()))
        })
    }

    /// Seconds a refused client should wait: about one training, at least 1.
    fn retry_after_secs(&self) -> u64 {
        let millis = self.counters.last_training_millis.load(Ordering::Relaxed);
        if millis == 0 {
            10
        } else {
            millis.div_ceil(1000).max(1)
        }
    }
}

/// What taking the cluster lock of a model led to.
enum ClusterTurn {
    /// This replica trains, holding the lock.
    Train(Box<dyn TrainingLock>),
    /// Another replica published the model meanwhile.
    Published(Arc<TrainedLstm>),
}

/// How often a training waiting for another replica's lock asks for it again.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// Removes a key from the in-flight map when the task ends, even by panic.
struct InflightGuard<'a> {
    registry: &'a Registry,
    key: &'a ModelKey,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        lock(&self.registry.inflight).remove(self.key);
    }
}

/// Trains and refuses anything non-finite: weights, metadata, or a one-step forecast on the
/// training series itself (a constant series must not yield a poisoned model).
fn train_checked(
    symbol: &Symbol,
    config: &LstmConfig,
    prices: &[f64],
) -> Result<TrainedLstm, RegistryError> {
    let model = lstm::train(config, prices, &mut |p| {
        tracing::debug!(%symbol, epoch = p.epoch, epochs = p.epochs, train_loss = p.train_loss, validation_loss = p.validation_loss, "epoch");
    })
    .map_err(|e| lstm_error(symbol, e))?;
    check_model(symbol, model, prices)
}

/// Refuses a model with non-finite weights, metadata or one-step forecast on `prices`.
fn check_model(
    symbol: &Symbol,
    model: TrainedLstm,
    prices: &[f64],
) -> Result<TrainedLstm, RegistryError> {
    let degenerate = |reason: &str| RegistryError::Degenerate {
        symbol: symbol.clone(),
        reason: reason.to_owned(),
    };
    if !store::weights_are_finite(&model.weights_safetensors()) {
        return Err(degenerate("training produced non-finite weights"));
    }
    if !store::metadata_is_finite(&model.metadata()) {
        return Err(degenerate(
            "training produced a non-finite loss or error measure",
        ));
    }
    let probe = model
        .forecast(prices, 1)
        .map_err(|e| lstm_error(symbol, e))?;
    if !probe.iter().all(|x| x.is_finite()) {
        return Err(degenerate("the trained model forecasts a non-finite price"));
    }
    Ok(model)
}

/// The forecast of `model` after `prices` through the one path of every model
/// ([`forecast_fitted`]), or naive's, labelled [`OUT_OF_RANGE_LABEL`], where `prices` lie far
/// outside what the model was trained on: serving it there would be confident nonsense.
fn serve_lstm(
    symbol: &Symbol,
    model: Arc<TrainedLstm>,
    prices: Arc<[f64]>,
    horizon: usize,
    level: f64,
    precision: Precision,
) -> Result<IntervalForecast, ForecastError> {
    let fitted = FittedLstm::serving(Arc::clone(&model), Arc::clone(&prices), precision);
    let forecast = forecast_fitted(&fitted, horizon, level, || {
        naive_calibration(&prices, horizon, &CalibrationSettings::default())
    })?;
    if model.covers(&prices) {
        return Ok(forecast);
    }
    tracing::warn!(%symbol, "input outside the stored model's training range: answering naive");
    let mut naive = forecast_with_intervals(&Naive, &prices, horizon, level)?;
    naive.model = OUT_OF_RANGE_LABEL.into();
    Ok(naive)
}

/// A served forecast's failure: the history was validated, so only the network can fail.
fn forecast_error(symbol: &Symbol, e: ForecastError) -> RegistryError {
    match e {
        ForecastError::Lstm(e) => lstm_error(symbol, e),
        ForecastError::NotEnoughPrices { needed, got } => {
            RegistryError::HistoryTooShort { needed, got }
        }
        ForecastError::NotFinite => RegistryError::Degenerate {
            symbol: symbol.clone(),
            reason: "the forecast is not a finite number".into(),
        },
        e @ (ForecastError::InvalidPrice { .. }
        | ForecastError::ZeroHorizon
        | ForecastError::InvalidLevel(_)
        | ForecastError::UnknownModel { .. }) => RegistryError::Degenerate {
            symbol: symbol.clone(),
            reason: e.to_string(),
        },
    }
}

fn lstm_error(symbol: &Symbol, e: LstmError) -> RegistryError {
    match e {
        LstmError::Diverged(reason) => RegistryError::Degenerate {
            symbol: symbol.clone(),
            reason: format!("training diverged ({reason})"),
        },
        LstmError::NotEnoughPrices { needed, got } => RegistryError::NoModel {
            symbol: symbol.clone(),
            needed: needed.max(MIN_TRAINING_PRICES),
            got,
        },
        LstmError::HistoryTooShort { needed, got } => {
            RegistryError::HistoryTooShort { needed, got }
        }
        other @ LstmError::InvalidArtefact(_) => RegistryError::Training(Arc::new(other)),
    }
}
