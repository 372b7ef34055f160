//! Background retraining of stale models: with `MODEL_MAX_AGE` set, a request that brings at
//! least [`MIN_TRAINING_PRICES`] prices for a symbol whose stored model is older than that
//! starts a retraining in the background; the old model keeps serving until the new one is
//! stored and swapped in.
//!
//! [`Retrainer::consider`] is a step function (it returns what it decided), so tests drive it
//! without timing. A symbol is checked at most once per [`CHECK_INTERVAL`] (or a tenth of the
//! maximum age) and retrained by at
//! most one task at a time.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::domain::{PriceSeries, Symbol};
use crate::registry::{Registry, MIN_TRAINING_PRICES};

/// Most time between two age checks of one symbol's stored model (a tenth of
/// `MODEL_MAX_AGE` when that is shorter).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// What [`Retrainer::consider`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No `MODEL_MAX_AGE`, or too few prices to train.
    NotApplicable,
    /// Checked recently, or a retraining of this symbol is already running.
    Skipped,
    /// The stored model is younger than the limit (or the store cannot tell its age).
    Fresh,
    /// A background retraining was started.
    Started,
}

/// Decides and starts background retrainings. Share it as `Arc<Retrainer>`.
#[derive(Debug)]
pub struct Retrainer {
    max_age: Option<Duration>,
    last_check: Mutex<HashMap<Symbol, Instant>>,
    running: Mutex<HashSet<Symbol>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Retrainer {
    /// A retrainer for models older than `max_age` (`None`: never retrain).
    pub fn new(max_age: Option<Duration>) -> Self {
        Self {
            max_age,
            last_check: Mutex::new(HashMap::new()),
            running: Mutex::new(HashSet::new()),
        }
    }

    /// Whether a request with `n` prices could trigger a retraining (so the caller keeps a copy
    /// of its prices only when it might be needed).
    pub fn wants(&self, n: usize) -> bool {
        self.max_age.is_some() && n >= MIN_TRAINING_PRICES
    }

    /// Checks `symbol`'s model age and, if it is stale, starts retraining on `prices` in the
    /// background (the returned handle finishes with the retraining; callers may drop it).
    pub async fn consider(
        self: &Arc<Self>,
        registry: &Arc<Registry>,
        symbol: &Symbol,
        prices: PriceSeries,
    ) -> (Decision, Option<tokio::task::JoinHandle<()>>) {
        let Some(max_age) = self.max_age.filter(|_| prices.len() >= MIN_TRAINING_PRICES) else {
            return (Decision::NotApplicable, None);
        };
        {
            let mut checks = lock(&self.last_check);
            // A short MAX_AGE (tests, aggressive set-ups) shortens the interval too.
            let interval = CHECK_INTERVAL.min(max_age / 10);
            let recent = checks.get(symbol).is_some_and(|t| t.elapsed() < interval);
            if recent || lock(&self.running).contains(symbol) {
                return (Decision::Skipped, None);
            }
            checks.insert(symbol.clone(), Instant::now());
        }
        let trained_at = match registry.trained_at(symbol).await {
            Ok(Some(t)) => t,
            Ok(None) | Err(_) => return (Decision::Fresh, None),
        };
        let age = SystemTime::now()
            .duration_since(trained_at)
            .unwrap_or_default();
        if age < max_age {
            return (Decision::Fresh, None);
        }
        if !lock(&self.running).insert(symbol.clone()) {
            return (Decision::Skipped, None);
        }
        tracing::info!(%symbol, age_seconds = age.as_secs(), "model is stale: retraining in the background");
        let (this, registry, symbol) = (Arc::clone(self), Arc::clone(registry), symbol.clone());
        let handle = tokio::spawn(async move {
            match registry.retrain(&symbol, prices).await {
                Ok(_) => tracing::info!(%symbol, "stale model replaced"),
                Err(e) => {
                    tracing::warn!(%symbol, error = %e, "background retraining failed; the old model keeps serving")
                }
            }
            lock(&this.running).remove(&symbol);
            // Check again soon after a failure, but not in a tight loop.
            lock(&this.last_check).insert(symbol, Instant::now());
        });
        (Decision::Started, Some(handle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::test_registry;

    fn wave(n: usize) -> PriceSeries {
        PriceSeries::parse(
            (0..n)
                .map(|i| 100.0 + 10.0 * (i as f64 / 5.0).sin())
                .collect(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_stale_model_is_retrained_once_and_a_fresh_one_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let reg = test_registry(dir.path());
        let sym = Symbol::parse("WAVE").unwrap();
        let old = reg.retrain(&sym, wave(220)).await.unwrap();

        let never = Arc::new(Retrainer::new(None));
        assert_eq!(
            never.consider(&reg, &sym, wave(220)).await.0,
            Decision::NotApplicable
        );

        let lenient = Arc::new(Retrainer::new(Some(Duration::from_secs(3600))));
        assert_eq!(
            lenient.consider(&reg, &sym, wave(100)).await.0,
            Decision::NotApplicable
        );
        assert_eq!(
            lenient.consider(&reg, &sym, wave(220)).await.0,
            Decision::Fresh
        );

        // Any model is older than a nanosecond.
        let strict = Arc::new(Retrainer::new(Some(Duration::from_nanos(1))));
        let (decision, handle) = strict.consider(&reg, &sym, wave(230)).await;
        assert_eq!(decision, Decision::Started);
        assert_eq!(
            strict.consider(&reg, &sym, wave(230)).await.0,
            Decision::Skipped
        );
        handle.unwrap().await.unwrap();
        let new = reg.loaded(&sym).unwrap();
        assert!(!Arc::ptr_eq(&old, &new));
        assert_eq!(new.summary().n_prices, 230);
    }
}
