//! Forecasting models behind one [`Forecaster`] trait, and the registry that names them.
//!
//! Fitting a [`Forecaster`] returns a [`FittedForecaster`], a different type, so a forecast
//! can only come from a fitted model. The statistical models ([`naive`], [`drift`],
//! [`moving_average`], [`ets`], [`theta`], [`ensemble`], [`auto`]) need only a few dozen
//! prices and fit in microseconds to milliseconds; the LSTM of SPEC section 3 lives in
//! [`lstm`] and is wrapped for this trait by [`lstm::forecaster`].
//!
//! The statistical models work on log prices: crypto prices move multiplicatively, so a
//! trend or a drift is a growth rate, forecasts stay positive, and one model fits a coin
//! at 0.002 USDT and one at 60 000 USDT alike. [`intervals`] turns any model into a path
//! with conformal bands and a measured error.

pub mod auto;
pub mod drift;
pub mod ensemble;
pub mod ets;
pub mod intervals;
pub mod lstm;
pub mod moving_average;
pub mod naive;
pub mod theta;

use std::sync::Arc;

use intervals::Calibration;

/// Version of the statistical models' behaviour, reported next to a model's name.
pub const STATS_MODEL_VERSION: &str = "stats-1.0.0";

/// The names [`model_by_name`] knows, in the order they are listed to users.
pub const MODEL_NAMES: [&str; 9] = [
    "naive",
    "drift",
    "moving_average",
    "ses",
    "ets",
    "theta",
    "ensemble",
    "auto",
    "lstm",
];

/// Why fitting or forecasting failed.
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    /// The history is too short for this model.
    #[error("need at least {needed} prices, got {got}")]
    NotEnoughPrices { needed: usize, got: usize },
    /// A price is not a finite number > 0 (logs of it would be meaningless).
    #[error("price at index {index} must be a finite number > 0, got {value}")]
    InvalidPrice { index: usize, value: f64 },
    /// A forecast was asked for zero steps.
    #[error("horizon must be at least 1")]
    ZeroHorizon,
    /// An interval level outside (0, 1).
    #[error("interval level must be strictly between 0 and 1, got {0}")]
    InvalidLevel(f64),
    /// [`model_by_name`] got a name it does not know.
    #[error("unknown model {name:?}; valid models: {valid}")]
    UnknownModel { name: String, valid: String },
    /// The LSTM engine failed (too short a series, divergence...).
    #[error("lstm: {0}")]
    Lstm(#[from] lstm::LstmError),
    /// The model's point forecast holds a value that is not a finite number.
    #[error("the forecast is not a finite number")]
    NotFinite,
}

/// An unfitted model: its settings, and how to fit them to a price series.
///
/// Object safe, so the registry and the backtester can hold `Box<dyn Forecaster>`.
pub trait Forecaster: Send + Sync {
    /// The registry name (`"naive"`, `"ets"`, ...).
    fn name(&self) -> &'static str;

    /// The fewest prices [`Forecaster::fit`] accepts.
    fn min_history(&self) -> usize;

    /// Fits the model to `prices` (oldest first, each finite and > 0).
    ///
    /// # Errors
    /// [`ForecastError::NotEnoughPrices`] below [`Forecaster::min_history`],
    /// [`ForecastError::InvalidPrice`] for a price that is not finite and > 0, and model
    /// specific failures (the LSTM's).
    fn fit(&self, prices: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastError>;

    /// The point paths calibration measures errors from: at each of `cutoffs` (ascending,
    /// each at most `prices.len()`), the forecast of the `min(max_horizon, prices.len() -
    /// cutoff)` days after `prices[..cutoff]`, from that prefix only (`None`: no forecast from
    /// that cutoff). The default is [`refit_forecasts`], a fit at every cutoff; a model may
    /// compute the same paths directly (naive, drift, moving average), or hold its fitted
    /// parameters between periodic refits as a deployed model would (theta, SES and the
    /// ensemble: see [`theta::REFIT_EVERY`]).
    fn rolling_forecasts(
        &self,
        prices: &[f64],
        cutoffs: &[usize],
        max_horizon: usize,
    ) -> Vec<Option<Vec<f64>>> {
        refit_forecasts(self, prices, cutoffs, max_horizon)
    }

    /// What identifies this model's forecasts: its name and every setting that changes them, so
    /// that two models with equal keys forecast alike (`None`: never shared).
    fn forecast_key(&self) -> Option<String> {
        None
    }

    /// [`Forecaster::rolling_forecasts`], taken from `memo` when a model with the same
    /// [`Forecaster::forecast_key`] computed them for the same prices, cutoffs and horizon (or
    /// from its [`PathStore`], for the same prices before the last cutoff), and kept there:
    /// auto's candidates and its ensemble's members (SES and theta) share them, and a request
    /// whose history differs from an earlier one only after its last cutoff reuses them.
    fn rolling_forecasts_in(
        &self,
        prices: &[f64],
        cutoffs: &[usize],
        max_horizon: usize,
        memo: &mut RollingMemo,
    ) -> RollingPaths {
        memo.shared(self.forecast_key(), prices, cutoffs, max_horizon, |_| {
            self.rolling_forecasts(prices, cutoffs, max_horizon)
        })
    }

    /// [`Forecaster::fit`], where the fit measures its own errors (auto) with its rolling paths
    /// taken from, and kept in, `store`.
    ///
    /// # Errors
    /// As [`Forecaster::fit`].
    fn fit_with_store(
        &self,
        prices: &[f64],
        store: Option<&Arc<dyn PathStore>>,
    ) -> Result<Box<dyn FittedForecaster>, ForecastError> {
        let _ = store;
        self.fit(prices)
    }
}

/// A model's point paths from a set of cutoffs ([`Forecaster::rolling_forecasts`]).
pub type RollingPaths = Vec<Option<Vec<f64>>>;

/// Rolling paths kept across requests, by what they were computed from ([`PathKey`]): the
/// service's bounded cache (`registry::stats_cache::PathCache`).
pub trait PathStore: Send + Sync {
    /// The paths stored under a key equal to `key`.
    fn get(&self, key: &PathKey) -> Option<Arc<RollingPaths>>;
    /// Keeps `paths` under `key`.
    fn put(&self, key: PathKey, paths: Arc<RollingPaths>);
}

/// Everything a model's rolling paths depend on: the model ([`Forecaster::forecast_key`]), the
/// cutoffs, the horizon, the history's length (a path reaches at most its end) and the prices
/// before the last cutoff, which is all a path may read. Compared in full, the prices bitwise.
#[derive(Clone, Debug)]
pub struct PathKey {
    model: String,
    cutoffs: Vec<usize>,
    max_horizon: usize,
    len: usize,
    prefix: Arc<[f64]>,
    hash: u64,
}

impl PathKey {
    /// The key of `model`'s paths at `cutoffs` (ascending) on `prices`, whose prefix up to the
    /// last cutoff is `prefix` with hash `prefix_hash` ([`PathKey::prefix_of`]).
    fn new(
        model: String,
        prices_len: usize,
        cutoffs: &[usize],
        max_horizon: usize,
        (prefix, prefix_hash): (Arc<[f64]>, u64),
    ) -> Self {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&model, cutoffs, max_horizon, prices_len, prefix_hash).hash(&mut h);
        Self {
            model,
            cutoffs: cutoffs.to_vec(),
            max_horizon,
            len: prices_len,
            prefix,
            hash: h.finish(),
        }
    }

    /// The prices before the last of `cutoffs`, and their hash.
    fn prefix_of(prices: &[f64], cutoffs: &[usize]) -> (Arc<[f64]>, u64) {
        use std::hash::{Hash, Hasher};
        let prefix = &prices[..cutoffs.last().copied().unwrap_or(0)];
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for p in prefix {
            p.to_bits().hash(&mut h);
        }
        (Arc::from(prefix), h.finish())
    }

    /// A hash of the whole key, for a store's index (equal keys hash alike).
    pub fn hash_value(&self) -> u64 {
        self.hash
    }

    /// Bytes the key and `paths` hold, for a store's budget.
    pub fn bytes_with(&self, paths: &RollingPaths) -> usize {
        let f = std::mem::size_of::<f64>();
        self.prefix.len() * f
            + self.cutoffs.len() * std::mem::size_of::<usize>()
            + self.model.len()
            + paths
                .iter()
                .map(|p| {
                    std::mem::size_of::<Option<Vec<f64>>>() + p.as_ref().map_or(0, |p| p.len() * f)
                })
                .sum::<usize>()
            + std::mem::size_of::<Self>()
    }
}

impl PartialEq for PathKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && self.model == other.model
            && self.cutoffs == other.cutoffs
            && self.max_horizon == other.max_horizon
            && self.len == other.len
            && same_bits(&self.prefix, &other.prefix)
    }
}

/// Whether `a` and `b` hold the same numbers, bit for bit.
fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Rolling paths already computed, by [`Forecaster::forecast_key`], for one history, set of
/// cutoffs and horizon (a memo used with others starts afresh), backed by an optional
/// [`PathStore`] shared across requests.
#[derive(Default)]
pub struct RollingMemo {
    /// The history, the cutoffs and the horizon the paths are for.
    scope: Option<(Vec<f64>, Vec<usize>, usize)>,
    paths: std::collections::HashMap<String, RollingPaths>,
    store: Option<Arc<dyn PathStore>>,
    /// The scope's prices before its last cutoff and their hash, taken once for the store.
    prefix: Option<(Arc<[f64]>, u64)>,
    /// The last prices [`RollingMemo::log_prices`] took the logs of, and those logs.
    logs: Option<(Vec<f64>, Arc<[f64]>)>,
}

impl std::fmt::Debug for RollingMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollingMemo")
            .field("paths", &self.paths.len())
            .field("store", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

impl RollingMemo {
    /// A memo that also looks paths up in, and keeps them in, `store`.
    pub fn with_store(store: Option<&Arc<dyn PathStore>>) -> Self {
        Self {
            store: store.cloned(),
            ..Self::default()
        }
    }

    /// [`log_prices`] of `prices`, taken once for the calibrations of several models on them.
    ///
    /// # Errors
    /// As [`log_prices`].
    pub(crate) fn log_prices(&mut self, prices: &[f64]) -> Result<Arc<[f64]>, ForecastError> {
        if let Some((p, logs)) = &self.logs {
            if same_bits(p, prices) {
                return Ok(Arc::clone(logs));
            }
        }
        let logs: Arc<[f64]> = log_prices(prices, 1)?.into();
        self.logs = Some((prices.to_vec(), Arc::clone(&logs)));
        Ok(logs)
    }

    /// Forgets the paths unless they are for these prices, cutoffs and horizon.
    /// Compared in full (bitwise for the prices): a history of the same length and last price
    /// is not the same history.
    fn scope(&mut self, prices: &[f64], cutoffs: &[usize], max_horizon: usize) {
        let same = self.scope.as_ref().is_some_and(|(p, c, h)| {
            same_bits(p, prices) && c[..] == *cutoffs && *h == max_horizon
        });
        if !same {
            self.paths.clear();
            self.prefix = None;
            self.scope = Some((prices.to_vec(), cutoffs.to_vec(), max_horizon));
        }
    }

    /// The paths of the model with `key` (`None`: never shared, always computed): from this
    /// memo, else from its store, else from `compute`, kept in both.
    fn shared(
        &mut self,
        key: Option<String>,
        prices: &[f64],
        cutoffs: &[usize],
        max_horizon: usize,
        compute: impl FnOnce(&mut Self) -> RollingPaths,
    ) -> RollingPaths {
        let Some(key) = key else {
            return compute(self);
        };
        self.scope(prices, cutoffs, max_horizon);
        if let Some(paths) = self.paths.get(&key) {
            return paths.clone();
        }
        let stored = self.store.clone().map(|store| {
            let prefix = self
                .prefix
                .get_or_insert_with(|| PathKey::prefix_of(prices, cutoffs))
                .clone();
            let key = PathKey::new(key.clone(), prices.len(), cutoffs, max_horizon, prefix);
            (store, key)
        });
        if let Some((store, path_key)) = &stored {
            if let Some(paths) = store.get(path_key) {
                let paths = RollingPaths::clone(&paths);
                self.paths.insert(key, paths.clone());
                return paths;
            }
        }
        let paths = compute(self);
        if let Some((store, path_key)) = stored {
            store.put(path_key, Arc::new(paths.clone()));
        }
        self.paths.insert(key, paths.clone());
        paths
    }
}

/// [`Forecaster::rolling_forecasts`] by fitting `model` at every cutoff.
pub fn refit_forecasts<M: Forecaster + ?Sized>(
    model: &M,
    prices: &[f64],
    cutoffs: &[usize],
    max_horizon: usize,
) -> Vec<Option<Vec<f64>>> {
    cutoffs
        .iter()
        .map(|&cutoff| {
            let reach = max_horizon.min(prices.len() - cutoff);
            Some(model.fit(&prices[..cutoff]).ok()?.predict(reach))
        })
        .collect()
}

/// A model fitted to one history; it forecasts the prices that follow that history.
pub trait FittedForecaster: Send + Sync {
    /// The point forecast for days 1..=`horizon` after the history (`horizon` values, each
    /// finite and > 0; empty for 0).
    fn predict(&self, horizon: usize) -> Vec<f64>;

    /// What produced the forecast at `horizon`, e.g. `"ets(AAdN)"` or `"auto(theta)"`.
    fn label(&self, horizon: usize) -> String;

    /// Out-of-sample errors the model already measured while fitting (auto and the LSTM do),
    /// so that [`intervals`] need not refit it at many origins. `None` means: measure them.
    fn calibration(&self, horizon: usize) -> Option<Calibration> {
        let _ = horizon;
        None
    }

    /// [`FittedForecaster::predict`], or why this model has no forecast (the LSTM's network
    /// can fail on a history it was not trained for); what [`intervals::forecast_fitted`]
    /// serves.
    ///
    /// # Errors
    /// Model-specific; the statistical models always forecast.
    fn try_predict(&self, horizon: usize) -> Result<Vec<f64>, ForecastError> {
        Ok(self.predict(horizon))
    }

    /// The expected MAPE at `horizon` that `confidence` states, from the errors that band the
    /// path (an old level LSTM states its validation MAPE instead).
    fn expected_mape(&self, horizon: usize, calibration: &Calibration) -> f64 {
        calibration.mape(horizon)
    }
}

/// The model registered under `name` with its default settings.
///
/// # Errors
/// [`ForecastError::UnknownModel`], whose message lists the valid names.
pub fn model_by_name(name: &str) -> Result<Box<dyn Forecaster>, ForecastError> {
    Ok(match name {
        "naive" => Box::new(naive::Naive),
        "drift" => Box::new(drift::Drift),
        "moving_average" => Box::new(moving_average::MovingAverage::default()),
        "ses" => Box::new(theta::Theta::ses()),
        "ets" => Box::new(ets::Ets::default()),
        "theta" => Box::new(theta::Theta::default()),
        "ensemble" => Box::new(ensemble::Ensemble::default()),
        "auto" => Box::new(auto::Auto::default()),
        "lstm" => Box::new(lstm::forecaster::LstmForecaster::default()),
        _ => {
            return Err(ForecastError::UnknownModel {
                name: name.to_string(),
                valid: MODEL_NAMES.join(", "),
            })
        }
    })
}

/// [`Forecaster::rolling_forecasts`] of a model whose fit reads only the log prices: `path(logs,
/// reach)` is its forecast of `reach` days after the prefix `logs`, called at each cutoff with
/// at least `min_history` valid prices, so the logs are taken once rather than at every cutoff.
/// What refitting gives, cutoffs after an invalid price included (they have no path).
pub(crate) fn rolling_from_logs(
    prices: &[f64],
    cutoffs: &[usize],
    max_horizon: usize,
    min_history: usize,
    mut path: impl FnMut(&[f64], usize) -> Vec<f64>,
) -> Vec<Option<Vec<f64>>> {
    let valid = prices
        .iter()
        .position(|p| !(p.is_finite() && *p > 0.0))
        .unwrap_or(prices.len());
    let logs: Vec<f64> = prices[..valid].iter().map(|p| p.ln()).collect();
    cutoffs
        .iter()
        .map(|&cutoff| {
            (min_history..=valid)
                .contains(&cutoff)
                .then(|| path(&logs[..cutoff], max_horizon.min(prices.len() - cutoff)))
        })
        .collect()
}

/// Checks `prices` (length and positivity) and returns their natural logs.
pub(crate) fn log_prices(prices: &[f64], needed: usize) -> Result<Vec<f64>, ForecastError> {
    if prices.len() < needed {
        return Err(ForecastError::NotEnoughPrices {
            needed,
            got: prices.len(),
        });
    }
    prices
        .iter()
        .enumerate()
        .map(|(index, &value)| {
            if value.is_finite() && value > 0.0 {
                Ok(value.ln())
            } else {
                Err(ForecastError::InvalidPrice { index, value })
            }
        })
        .collect()
}

/// Turns a log-space path back into prices, replacing anything non-finite by the last
/// price: a model that blows up must degrade to the naive forecast, never to NaN.
pub(crate) fn exp_path(log_path: impl IntoIterator<Item = f64>, last_log: f64) -> Vec<f64> {
    let last = last_log.exp();
    log_path
        .into_iter()
        .map(|l| {
            // Clamp in log space so exp cannot overflow to inf or underflow to 0.
            let p = l.clamp(last_log - 50.0, last_log + 50.0).exp();
            if p.is_finite() && p > 0.0 {
                p
            } else {
                last
            }
        })
        .collect()
}

/// The last `window` values of `y` (all of them when shorter).
pub(crate) fn tail(y: &[f64], window: usize) -> &[f64] {
    &y[y.len().saturating_sub(window)..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_name_resolves_to_a_model_of_that_name() {
        for name in MODEL_NAMES {
            assert_eq!(model_by_name(name).unwrap().name(), name);
        }
    }

    #[test]
    fn an_unknown_name_lists_the_valid_ones() {
        let err = model_by_name("prophet").err().unwrap().to_string();
        assert!(err.contains("prophet"));
        for name in MODEL_NAMES {
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn non_positive_prices_are_rejected_with_their_index() {
        let err = log_prices(&[1.0, 2.0, 0.0], 2).unwrap_err();
        assert!(matches!(err, ForecastError::InvalidPrice { index: 2, .. }));
        let err = log_prices(&[1.0, f64::NAN], 2).unwrap_err();
        assert!(matches!(err, ForecastError::InvalidPrice { index: 1, .. }));
    }

    #[test]
    fn direct_rolling_paths_are_the_refitted_ones() {
        let mut prices: Vec<f64> = (0..400)
            .map(|i| 50.0 * (0.002 * i as f64 + 0.1 * (i as f64 / 11.0).sin()).exp())
            .collect();
        let cutoffs: Vec<usize> = (0..=400).step_by(7).collect();
        let models: [Box<dyn Forecaster>; 3] = [
            Box::new(naive::Naive),
            Box::new(drift::Drift),
            Box::new(moving_average::MovingAverage::default()),
        ];
        for bad in [None, Some(f64::NAN), Some(-1.0)] {
            if let Some(bad) = bad {
                // Cutoffs after an invalid price have no path, as a refit there fails.
                prices[200] = bad;
            }
            for model in &models {
                let direct = model.rolling_forecasts(&prices, &cutoffs, 30);
                let refitted = refit_forecasts(model.as_ref(), &prices, &cutoffs, 30);
                assert_eq!(direct, refitted, "{}", model.name());
                assert!(direct[0].is_none());
                assert_eq!(direct.last().unwrap().is_some(), bad.is_none());
            }
        }
    }

    #[test]
    fn a_blown_up_log_path_degrades_to_the_last_price() {
        let p = exp_path([f64::NAN, 1.0], 0.0);
        assert_eq!(p, vec![1.0, 1.0_f64.exp()]);
    }
}
