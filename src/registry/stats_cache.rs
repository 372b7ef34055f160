//! Statistical forecasts of a history seen before, answered from memory.
//!
//! A statistical forecast refits its model at 80 (auto: 140) earlier cutoffs to calibrate its
//! band, which costs milliseconds to hundreds of them, and the answer depends on nothing but
//! the model, the prices, the horizon and the level. A client asking every few minutes for a
//! symbol's daily closes sends the same history until the next close: that history is answered
//! from here, bit for bit what refitting would give. Entries are compared in full (the prices
//! too), never by hash alone, and the cache is a bounded LRU (`STATS_CACHE_SIZE` entries).
//!
//! Below it, [`PathCache`] keeps each model's rolling paths at its calibration cutoffs. A path
//! reads only the prices before its cutoff, so a history that differs from one seen before only
//! in its last price (today's live price, which moves until the close) reuses all of them: the
//! model is fitted once, on the whole history, and its errors are measured again against the
//! new price, bit for bit what refitting would give. It is bounded in bytes
//! (`STATS_PATH_CACHE_MB`).

use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::forecast::intervals::IntervalForecast;
use crate::forecast::{ForecastError, PathKey, PathStore, RollingPaths};
use crate::telemetry::metrics::Metrics;

/// One cached answer and everything it was computed from.
struct Entry {
    model: &'static str,
    horizon: usize,
    level: f64,
    prices: Arc<[f64]>,
    forecast: IntervalForecast,
}

impl Entry {
    fn answers(&self, model: &str, prices: &[f64], horizon: usize, level: f64) -> bool {
        self.model == model
            && self.horizon == horizon
            && self.level.to_bits() == level.to_bits()
            && *self.prices == *prices
    }
}

/// The bounded cache of statistical forecasts.
pub struct StatsCache {
    entries: Mutex<LruCache<u64, Entry>>,
    paths: Arc<dyn PathStore>,
    metrics: Arc<Metrics>,
}

/// Rolling calibration paths by [`PathKey`], least recently used first out once they hold more
/// than the budget.
pub struct PathCache {
    inner: Mutex<PathEntries>,
    budget: usize,
    metrics: Arc<Metrics>,
}

struct PathEntries {
    entries: LruCache<u64, (PathKey, Arc<RollingPaths>, usize)>,
    bytes: usize,
}

impl PathCache {
    /// A cache holding at most `budget` bytes of paths (with their keys), counting hits and
    /// misses in `ml_stats_path_cache_requests_total{result}` and its size in
    /// `ml_stats_path_cache_bytes`.
    pub fn new(budget: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Mutex::new(PathEntries {
                entries: LruCache::unbounded(),
                bytes: 0,
            }),
            budget,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PathEntries> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

impl PathStore for PathCache {
    fn get(&self, key: &PathKey) -> Option<Arc<RollingPaths>> {
        let found = self
            .lock()
            .entries
            .get(&key.hash_value())
            .filter(|(k, _, _)| k == key)
            .map(|(_, paths, _)| Arc::clone(paths));
        let result = if found.is_some() { "hit" } else { "miss" };
        self.metrics.stats_paths.inc(&[result]);
        found
    }

    fn put(&self, key: PathKey, paths: Arc<RollingPaths>) {
        let size = key.bytes_with(&paths);
        if size > self.budget {
            return;
        }
        let mut inner = self.lock();
        if let Some((_, _, old)) = inner.entries.put(key.hash_value(), (key, paths, size)) {
            inner.bytes -= old;
        }
        inner.bytes += size;
        while inner.bytes > self.budget {
            let Some((_, (_, _, freed))) = inner.entries.pop_lru() else {
                break;
            };
            inner.bytes -= freed;
        }
        self.metrics.stats_path_bytes.set(inner.bytes as f64);
    }
}

impl std::fmt::Debug for StatsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsCache").finish_non_exhaustive()
    }
}

fn key(model: &str, prices: &[f64], horizon: usize, level: f64) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    model.hash(&mut h);
    horizon.hash(&mut h);
    level.to_bits().hash(&mut h);
    prices.len().hash(&mut h);
    for p in prices {
        p.to_bits().hash(&mut h);
    }
    h.finish()
}

impl StatsCache {
    /// A cache of at most `capacity` forecasts, counting hits and misses in
    /// `ml_stats_cache_requests_total{result}`.
    /// Below it, a [`PathCache`] of at most `path_budget` bytes.
    pub fn new(capacity: NonZeroUsize, path_budget: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            paths: Arc::new(PathCache::new(path_budget, Arc::clone(&metrics))),
            metrics,
        }
    }

    /// The forecast of `model` on `prices`, from memory when this exact request was answered
    /// before, else from `compute` given the [`PathCache`] (the forecast is then remembered if
    /// it succeeds). Blocking when it computes: call it off the async runtime.
    ///
    /// # Errors
    /// Whatever `compute` returns.
    pub fn get_or_compute(
        &self,
        model: &'static str,
        prices: &[f64],
        horizon: usize,
        level: f64,
        compute: impl FnOnce(&Arc<dyn PathStore>) -> Result<IntervalForecast, ForecastError>,
    ) -> Result<IntervalForecast, ForecastError> {
        let k = key(model, prices, horizon, level);
        {
            let mut entries = self
                .entries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(entry) = entries.get(&k) {
                if entry.answers(model, prices, horizon, level) {
                    self.metrics.stats_cache.inc(&["hit"]);
                    return Ok(entry.forecast.clone());
                }
            }
        }
        self.metrics.stats_cache.inc(&["miss"]);
        // Outside the lock: a fit takes milliseconds, and other requests go on meanwhile.
        let forecast = compute(&self.paths)?;
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .put(
                k,
                Entry {
                    model,
                    horizon,
                    level,
                    prices: Arc::from(prices),
                    forecast: forecast.clone(),
                },
            );
        Ok(forecast)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::intervals::{
        forecast_with_intervals, forecast_with_store, CalibrationSettings,
    };
    use crate::forecast::{model_by_name, MODEL_NAMES};
    use crate::telemetry::metrics::BuildInfo;

    fn cache(capacity: usize) -> StatsCache {
        StatsCache::new(
            NonZeroUsize::new(capacity).unwrap(),
            1 << 20,
            Arc::new(Metrics::new(&BuildInfo::current("f32-scalar"))),
        )
    }

    fn fit(name: &'static str, prices: &[f64], horizon: usize, level: f64) -> IntervalForecast {
        forecast_with_intervals(
            model_by_name(name).unwrap().as_ref(),
            prices,
            horizon,
            level,
        )
        .unwrap()
    }

    #[test]
    fn a_repeated_request_is_answered_from_memory_with_the_same_forecast() {
        let prices = crate::prices::repository_last_closes("BTC", 365);
        let c = cache(8);
        let computed = std::cell::Cell::new(0);
        let ask = |prices: &[f64], horizon, level| {
            c.get_or_compute("theta", prices, horizon, level, |_| {
                computed.set(computed.get() + 1);
                Ok(fit("theta", prices, horizon, level))
            })
            .unwrap()
        };
        let first = ask(&prices, 7, 0.8);
        assert_eq!(ask(&prices, 7, 0.8), first);
        assert_eq!(computed.get(), 1, "the second came from memory");
        assert_eq!(first, fit("theta", &prices, 7, 0.8), "as refitting gives");
        // Any difference is a new fit: horizon, level, one price.
        ask(&prices, 8, 0.8);
        ask(&prices, 7, 0.9);
        let mut moved = prices.clone();
        *moved.last_mut().unwrap() *= 1.000_001;
        ask(&moved, 7, 0.8);
        assert_eq!(computed.get(), 4);
        assert_eq!(c.metrics.stats_cache.get(&["hit"]), 1);
        assert_eq!(c.metrics.stats_cache.get(&["miss"]), 4);
    }

    #[test]
    fn the_cache_is_bounded_and_failures_are_not_kept() {
        let prices: Vec<f64> = (1..=100).map(f64::from).collect();
        let c = cache(2);
        for horizon in 1..=3 {
            c.get_or_compute("naive", &prices, horizon, 0.8, |_| {
                Ok(fit("naive", &prices, horizon, 0.8))
            })
            .unwrap();
        }
        assert_eq!(c.entries.lock().unwrap().len(), 2);
        let failed = c.get_or_compute("naive", &prices, 9, 0.8, |_| Err(ForecastError::NotFinite));
        assert!(failed.is_err());
        assert_eq!(c.entries.lock().unwrap().len(), 2);
    }

    /// A path cache of `budget` bytes, its metrics, and the cache as a store.
    fn path_cache(budget: usize) -> (Arc<Metrics>, Arc<PathCache>, Arc<dyn PathStore>) {
        let metrics = Arc::new(Metrics::new(&BuildInfo::current("f32-scalar")));
        let paths = Arc::new(PathCache::new(budget, Arc::clone(&metrics)));
        (metrics, Arc::clone(&paths), paths)
    }

    fn with_paths(
        name: &str,
        prices: &[f64],
        horizon: usize,
        store: &Arc<dyn PathStore>,
    ) -> IntervalForecast {
        forecast_with_store(
            model_by_name(name).unwrap().as_ref(),
            prices,
            horizon,
            0.8,
            &CalibrationSettings::default(),
            Some(store),
        )
        .unwrap()
    }

    #[test]
    fn a_new_last_price_reuses_every_path_and_answers_as_refitting_does() {
        let prices = crate::prices::repository_last_closes("BTC", 400);
        let (metrics, paths, store) = path_cache(64 << 20);
        for &name in MODEL_NAMES.iter().filter(|&&m| m != "lstm") {
            let first = with_paths(name, &prices, 7, &store);
            assert_eq!(first, fit(name, &prices, 7, 0.8), "{name}");
            let misses = metrics.stats_paths.get(&["miss"]);
            let hits = metrics.stats_paths.get(&["hit"]);
            // Today's price moves: every path is reused, and the answer is the refitted one.
            for nudge in [1.0001, 0.97] {
                let mut live = prices.clone();
                *live.last_mut().unwrap() *= nudge;
                let answer = with_paths(name, &live, 7, &store);
                assert_eq!(answer, fit(name, &live, 7, 0.8), "{name} {nudge}");
                assert_ne!(answer, first, "{name}: the new price is measured");
            }
            assert_eq!(metrics.stats_paths.get(&["miss"]), misses, "{name}");
            assert!(metrics.stats_paths.get(&["hit"]) > hits, "{name}");
        }
        assert!(paths.bytes() > 0);
        assert_eq!(metrics.stats_path_bytes.get(), paths.bytes() as f64);
    }

    #[test]
    fn an_earlier_price_changed_or_another_setting_is_computed_afresh() {
        let prices = crate::prices::repository_last_closes("ETH", 365);
        let (metrics, _, store) = path_cache(64 << 20);
        with_paths("theta", &prices, 7, &store);
        let mut changed = prices.clone();
        changed[200] *= 1.01;
        let hits = metrics.stats_paths.get(&["hit"]);
        assert_eq!(
            with_paths("theta", &changed, 7, &store),
            fit("theta", &changed, 7, 0.8)
        );
        assert_eq!(
            with_paths("theta", &prices, 30, &store),
            fit("theta", &prices, 30, 0.8)
        );
        assert_eq!(
            with_paths("ses", &prices, 7, &store),
            fit("ses", &prices, 7, 0.8)
        );
        assert_eq!(
            with_paths("theta", &prices[1..], 7, &store),
            fit("theta", &prices[1..], 7, 0.8)
        );
        assert_eq!(metrics.stats_paths.get(&["hit"]), hits, "nothing reused");
    }

    #[test]
    fn the_path_cache_stays_within_its_budget() {
        let (_, paths, store) = path_cache(200_000);
        let prices = crate::prices::repository_last_closes("BTC", 600);
        for days in 1..=12 {
            with_paths("theta", &prices, days * 7, &store);
            assert!(paths.bytes() <= 200_000, "{}", paths.bytes());
        }
        assert!(paths.bytes() > 100_000, "{}", paths.bytes());
        // An entry bigger than the whole budget is not kept.
        let (_, tiny, tiny_store) = path_cache(100);
        with_paths("theta", &prices, 7, &tiny_store);
        assert_eq!(tiny.bytes(), 0);
    }
}
