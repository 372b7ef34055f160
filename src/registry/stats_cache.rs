//! Statistical forecasts of a history seen before, answered from memory.
//!
//! A statistical forecast refits its model at 80 (auto: 140) earlier cutoffs to calibrate its
//! band, which costs milliseconds to hundreds of them, and the answer depends on nothing but
//! the model, the prices, the horizon and the level. A client asking every few minutes for a
//! symbol's daily closes sends the same history until the next close: that history is answered
//! from here, bit for bit what refitting would give. Entries are compared in full (the prices
//! too), never by hash alone, and the cache is a bounded LRU (`STATS_CACHE_SIZE` entries).

use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::forecast::intervals::IntervalForecast;
use crate::forecast::ForecastError;
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
    metrics: Arc<Metrics>,
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
    pub fn new(capacity: NonZeroUsize, metrics: Arc<Metrics>) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            metrics,
        }
    }

    /// The forecast of `model` on `prices`, from memory when this exact request was answered
    /// before, else from `compute` (which is then remembered if it succeeds). Blocking when
    /// it computes: call it off the async runtime.
    ///
    /// # Errors
    /// Whatever `compute` returns.
    pub fn get_or_compute(
        &self,
        model: &'static str,
        prices: &[f64],
        horizon: usize,
        level: f64,
        compute: impl FnOnce() -> Result<IntervalForecast, ForecastError>,
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
        let forecast = compute()?;
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
    use crate::forecast::intervals::forecast_with_intervals;
    use crate::forecast::model_by_name;
    use crate::telemetry::metrics::BuildInfo;

    fn cache(capacity: usize) -> StatsCache {
        StatsCache::new(
            NonZeroUsize::new(capacity).unwrap(),
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
            c.get_or_compute("theta", prices, horizon, level, || {
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
            c.get_or_compute("naive", &prices, horizon, 0.8, || {
                Ok(fit("naive", &prices, horizon, 0.8))
            })
            .unwrap();
        }
        assert_eq!(c.entries.lock().unwrap().len(), 2);
        let failed = c.get_or_compute("naive", &prices, 9, 0.8, || Err(ForecastError::NotFinite));
        assert!(failed.is_err());
        assert_eq!(c.entries.lock().unwrap().len(), 2);
    }
}
