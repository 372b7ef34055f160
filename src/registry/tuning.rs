//! Operations on models beyond serving: warm-up from the store, explicit retraining, fine-tuning
//! on newer prices, and the age of a stored model. Every training goes through the same bounded
//! pool as on-demand training, and a new model replaces the old one in memory only once it is
//! trained, checked and stored: the old one keeps serving meanwhile.

use std::sync::Arc;
use std::time::SystemTime;

use super::{
    check_model, lock, lstm_error, Outcome, Registry, RegistryError, TrainingJob,
    TrainingPermission,
};
use crate::domain::{PriceSeries, Symbol};
use crate::forecast::lstm;
use crate::telemetry::metrics::Metrics;

impl Registry {
    /// The service's metrics (the registry records cache and training events in them).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Loads `symbol`'s stored model into memory without ever training; `Ok(false)` when none
    /// is stored (or it does not verify).
    ///
    /// # Errors
    /// [`RegistryError::Store`] or [`RegistryError::TaskFailed`].
    pub async fn warm(self: &Arc<Self>, symbol: &Symbol) -> Result<bool, RegistryError> {
        match self
            .model_for(symbol, Arc::from(Vec::new()), TrainingPermission::Granted)
            .await
        {
            Ok(_) => Ok(true),
            Err(RegistryError::NoModel { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Trains a new model for `symbol` on `prices`, stores it and swaps it in. The work runs in
    /// a spawned task, so a client that goes away does not lose the model.
    ///
    /// # Errors
    /// [`RegistryError::NoModel`] under [`super::MIN_TRAINING_PRICES`] prices, then any
    /// training error, [`RegistryError::Overloaded`] included.
    pub async fn retrain(self: &Arc<Self>, symbol: &Symbol, prices: PriceSeries) -> Outcome {
        if prices.len() < super::MIN_TRAINING_PRICES {
            return Err(RegistryError::NoModel {
                symbol: symbol.clone(),
                needed: super::MIN_TRAINING_PRICES,
                got: prices.len(),
            });
        }
        let prices: Arc<[f64]> = prices.into_inner().into();
        let this = Arc::clone(self);
        let key = self.key(symbol);
        tokio::spawn(async move {
            let outcome = this.train(&key, prices).await;
            this.finish(key, outcome)
        })
        .await
        .map_err(|e| RegistryError::TaskFailed(e.to_string()))?
    }

    /// Fine-tunes `symbol`'s current model (from memory or the store, never trained from
    /// scratch) on `prices` for `epochs` epochs, stores it and swaps it in.
    ///
    /// # Errors
    /// [`RegistryError::NoModel`] when no model exists, [`RegistryError::HistoryTooShort`] for
    /// too few prices, then any training error.
    pub async fn fine_tune(
        self: &Arc<Self>,
        symbol: &Symbol,
        prices: PriceSeries,
        epochs: usize,
    ) -> Outcome {
        let base = self
            .model_for(symbol, Arc::from(Vec::new()), TrainingPermission::Granted)
            .await?;
        let needed = base.config().sequence_length + 2;
        if prices.len() < needed {
            return Err(RegistryError::HistoryTooShort {
                needed,
                got: prices.len(),
            });
        }
        let prices: Arc<[f64]> = prices.into_inner().into();
        let this = Arc::clone(self);
        let key = self.key(symbol);
        let job: TrainingJob = Box::new(move |sym, _config| {
            let tuned = lstm::fine_tune(&base, &prices, epochs).map_err(|e| lstm_error(sym, e))?;
            check_model(sym, tuned, &prices)
        });
        tokio::spawn(async move {
            let outcome = this.run_training(&key, "fine_tune", job, None, false).await;
            this.finish(key, outcome)
        })
        .await
        .map_err(|e| RegistryError::TaskFailed(e.to_string()))?
    }

    /// Puts a successful model in memory; counts a real failure.
    fn finish(&self, key: super::ModelKey, outcome: Outcome) -> Outcome {
        match &outcome {
            Ok(model) => {
                lock(&self.cache).put(key, Arc::clone(model));
            }
            Err(RegistryError::Overloaded { .. }) => {}
            Err(_) => {
                self.counters
                    .trainings_failed_total
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        outcome
    }

    /// When `symbol`'s stored model was written (`None`: no model, or the store cannot say).
    ///
    /// # Errors
    /// [`RegistryError::TaskFailed`] if the blocking read panicked.
    pub async fn trained_at(&self, symbol: &Symbol) -> Result<Option<SystemTime>, RegistryError> {
        let store = Arc::clone(&self.store);
        let key = self.key(symbol);
        tokio::task::spawn_blocking(move || store.trained_at(&key.symbol, &key.version))
            .await
            .map_err(|e| RegistryError::TaskFailed(e.to_string()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::num::NonZeroUsize;

    use super::*;
    use crate::domain::ModelVersion;
    use crate::forecast::lstm::LstmConfig;
    use crate::registry::RegistryConfig;
    use crate::store::FsModelStore;

    /// A small, fast registry on `dir` for unit tests (also used by `retrain`).
    pub(crate) fn registry(dir: &std::path::Path) -> Arc<Registry> {
        Registry::new(
            RegistryConfig {
                version: ModelVersion::parse("v1.0.0").unwrap(),
                lstm: LstmConfig {
                    epochs: 1,
                    hidden_size: 8,
                    threads: 1,
                    ..LstmConfig::default()
                },
                cache_size: NonZeroUsize::new(4).unwrap(),
                max_concurrent_trainings: NonZeroUsize::new(1).unwrap(),
                training_queue: 2,
                precision: lstm::Precision::Int16,
                cluster_wait: std::time::Duration::from_secs(5),
                replica: "test".into(),
            },
            Arc::new(FsModelStore::open(dir).unwrap()),
        )
    }

    fn wave(n: usize) -> PriceSeries {
        PriceSeries::parse(
            (0..n)
                .map(|i| 100.0 + 10.0 * (i as f64 / 7.0).sin())
                .collect(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn retraining_replaces_the_model_and_records_its_age() {
        let dir = tempfile::tempdir().unwrap();
        let reg = registry(dir.path());
        let sym = Symbol::parse("wave").unwrap();
        assert!(!reg.warm(&sym).await.unwrap());
        assert!(reg.trained_at(&sym).await.unwrap().is_none());
        let first = reg.retrain(&sym, wave(220)).await.unwrap();
        let second = reg.retrain(&sym, wave(240)).await.unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(Arc::ptr_eq(&reg.loaded(&sym).unwrap(), &second));
        let age = reg.trained_at(&sym).await.unwrap().unwrap();
        assert!(age.elapsed().unwrap().as_secs() < 60);
        assert_eq!(reg.metrics().trainings.get(&["train", "ok"]), 2);
        // A fresh registry on the same directory warms from the store.
        let again = registry(dir.path());
        assert!(again.warm(&sym).await.unwrap());
        assert_eq!(again.stats().models_loaded, 1);
    }

    #[tokio::test]
    async fn fine_tuning_needs_an_existing_model_and_swaps_in_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let reg = registry(dir.path());
        let sym = Symbol::parse("wave").unwrap();
        assert!(matches!(
            reg.fine_tune(&sym, wave(100), 2).await,
            Err(RegistryError::NoModel { .. })
        ));
        let base = reg.retrain(&sym, wave(220)).await.unwrap();
        let tuned = reg.fine_tune(&sym, wave(120), 2).await.unwrap();
        assert_eq!(tuned.summary().n_prices, 120);
        assert!(!Arc::ptr_eq(&base, &tuned));
        assert!(Arc::ptr_eq(&reg.loaded(&sym).unwrap(), &tuned));
        assert_eq!(reg.metrics().trainings.get(&["fine_tune", "ok"]), 1);
        assert!(matches!(
            reg.fine_tune(&sym, wave(61), 2).await,
            Err(RegistryError::HistoryTooShort { .. })
        ));
    }
}
