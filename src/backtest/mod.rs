//! Rolling-origin backtests of forecasters, and their reports (table, JSON, chart).
//!
//! For each series, [`cutoffs`] picks `folds` cutoffs; at each one every model is fitted,
//! and its intervals calibrated, on the prices before the cutoff only, then scored on the
//! prices after it at each horizon. MASE divides a model's MAE by the naive forecast's MAE
//! on the same cutoffs, so 1.00 means "as good as the last price" and below is better.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;

pub mod report;

use crate::forecast::{
    intervals::{recent_volatility, rolling_calibration, CalibrationSettings, DEFAULT_LEVEL},
    model_by_name,
    naive::Naive,
    ForecastError, Forecaster,
};
use crate::prices::{CsvError, Series};

/// Why a backtest or one of its inputs failed.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A price file could not be read.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// A series is too short for one fold at the longest horizon.
    #[error("{symbol}: need at least {needed} prices for this backtest, got {got}")]
    SeriesTooShort {
        symbol: String,
        needed: usize,
        got: usize,
    },
    /// Horizons must be at least 1, folds at least 1, the level in (0, 1).
    #[error("invalid backtest settings: {0}")]
    InvalidConfig(String),
    /// A model name, a price or a fit was rejected.
    #[error(transparent)]
    Forecast(#[from] ForecastError),
    /// The run was cancelled before it finished.
    #[error("the backtest was cancelled")]
    Cancelled,
    /// The chart could not be drawn.
    #[error("chart: {0}")]
    Chart(String),
}

/// How a backtest runs.
#[derive(Clone, Debug, PartialEq)]
pub struct BacktestConfig {
    /// Forecast horizons in days.
    pub horizons: Vec<usize>,
    /// Cutoffs per series.
    pub folds: usize,
    /// Interval level behind [`BacktestRow::coverage`].
    pub level: f64,
    /// Further levels whose coverage lands in [`BacktestRow::coverage_by_level`].
    pub extra_levels: Vec<f64>,
    /// Fewest prices before the first cutoff.
    pub min_train: usize,
    /// How intervals are calibrated at each cutoff.
    pub calibration: CalibrationSettings,
    /// Worker threads (0: the machine's parallelism).
    pub threads: usize,
}

impl Default for BacktestConfig {
    fn default() -> Self {
        Self {
            horizons: vec![1, 7, 30],
            folds: 20,
            level: DEFAULT_LEVEL,
            extra_levels: Vec::new(),
            min_train: 365,
            calibration: CalibrationSettings::default(),
            threads: 0,
        }
    }
}

/// One model's scores on one series at one horizon. A score that is not a finite number (a
/// MASE with a naive MAE of 0, an MAE of prices near the largest double) is `null` in JSON.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BacktestRow {
    pub symbol: String,
    pub model: String,
    pub horizon: usize,
    /// Cutoffs scored.
    pub n: usize,
    /// Mean absolute error in price units.
    #[schema(value_type = Option<f64>, required = true)]
    pub mae: f64,
    /// Mean absolute percentage error (0.05 = 5%).
    #[schema(value_type = Option<f64>, required = true)]
    pub mape: f64,
    /// MAE / naive MAE on the same cutoffs (null in JSON when naive's MAE is 0).
    #[schema(value_type = Option<f64>, required = true)]
    pub mase: f64,
    /// Share of actual prices inside the interval at [`BacktestConfig::level`].
    pub coverage: f64,
    /// Mean `confidence` the model stated at these cutoffs (`1 -` its expected MAPE), to
    /// read next to the realised `1 - mape`.
    pub mean_confidence: f64,
    /// `(level, coverage)` for the main and the extra levels; not serialised.
    #[serde(skip)]
    #[schema(ignore)]
    pub coverage_by_level: Vec<(f64, f64)>,
    /// Per scored cutoff: the recent volatility of the history and whether the actual price
    /// fell inside the main interval (for coverage by volatility tercile); not serialised.
    #[serde(skip)]
    #[schema(ignore)]
    pub fold_volatility_inside: Vec<(f64, bool)>,
}

/// Progress of a run, after each finished (series, model) job.
#[derive(Clone, Debug)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub symbol: String,
    pub model: String,
}

/// The models named in `names`, through [`model_by_name`].
///
/// # Errors
/// [`ForecastError::UnknownModel`] for the first unknown name.
pub fn models_from_names<S: AsRef<str>>(
    names: &[S],
) -> Result<Vec<Box<dyn Forecaster>>, ForecastError> {
    names.iter().map(|n| model_by_name(n.as_ref())).collect()
}

/// The cutoffs (number of prices each fit sees) for a series of `n` prices: `folds` of
/// them spread evenly from `min_train` to `n - max_horizon`, so every fold is scored at
/// every horizon, the last one ending on the last price.
pub fn cutoffs(n: usize, max_horizon: usize, folds: usize, min_train: usize) -> Vec<usize> {
    let Some(last) = n.checked_sub(max_horizon) else {
        return Vec::new();
    };
    if folds == 0 || last < min_train {
        return Vec::new();
    }
    let span = last - min_train;
    if folds == 1 || span == 0 {
        return vec![last];
    }
    let mut c: Vec<usize> = (0..folds).map(|k| last - span * k / (folds - 1)).collect();
    c.reverse();
    c.dedup();
    c
}

/// The forecast and interval at one horizon of one fold.
#[derive(Clone, Debug, PartialEq)]
pub struct FoldPoint {
    pub horizon: usize,
    pub forecast: f64,
    pub actual: f64,
    /// `(level, lower, upper)` for each level asked.
    pub bands: Vec<(f64, f64, f64)>,
    /// `confidence` as the service states it: `1 -` the expected MAPE at this horizon.
    pub confidence: f64,
    /// [`recent_volatility`] of the history before the cutoff.
    pub volatility: f64,
}

/// Fits `model` on `prices[..cutoff]`, calibrates its intervals on the same prefix, and
/// scores the forecasts at `horizons` against the prices after the cutoff.
///
/// Only `prices[..cutoff]` reaches the model; the later prices are read only as actuals.
///
/// # Errors
/// The model's fitting errors.
pub fn evaluate_fold(
    model: &dyn Forecaster,
    prices: &[f64],
    cutoff: usize,
    horizons: &[usize],
    levels: &[f64],
    calibration: &CalibrationSettings,
) -> Result<Vec<FoldPoint>, ForecastError> {
    let history = &prices[..cutoff];
    let fitted = model.fit(history)?;
    let max_h = horizons.iter().copied().max().unwrap_or(1);
    // Measured once per fold for all horizons (lazily: auto and the LSTM bring their own).
    let mut measured = None;
    let volatility = recent_volatility(history);
    horizons
        .iter()
        .map(|&h| {
            let calib = match fitted.calibration(h) {
                Some(c) => c,
                None => match &measured {
                    Some(c) => Clone::clone(c),
                    None => {
                        let c = rolling_calibration(model, history, max_h, calibration)?;
                        measured = Some(c.clone());
                        c
                    }
                },
            };
            let forecast = fitted.predict(h)[h - 1];
            let bands = levels
                .iter()
                .map(|&level| {
                    let q = calib.half_width(h, level);
                    (level, forecast * (-q).exp(), forecast * q.exp())
                })
                .collect();
            Ok(FoldPoint {
                horizon: h,
                forecast,
                actual: prices[cutoff + h - 1],
                bands,
                confidence: (1.0 - calib.mape(h)).clamp(0.0, 1.0),
                volatility,
            })
        })
        .collect()
}

/// Per-fold outcomes of one model on one series: `None` where fitting failed.
type Outcomes = Vec<Option<Vec<FoldPoint>>>;

/// Backtests every model on every series and returns one row per (series, model, horizon),
/// in input order. The naive forecast is always run too (for MASE) but reported only if
/// asked for. `progress` is called after each (series, model) job.
///
/// # Errors
/// [`BacktestError::InvalidConfig`], [`BacktestError::SeriesTooShort`] for a series without
/// a single fold.
pub fn run_backtest(
    series: &[Series],
    models: &[Box<dyn Forecaster>],
    config: &BacktestConfig,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<BacktestRow>, BacktestError> {
    run_backtest_cancellable(series, models, config, progress, &AtomicBool::new(false))
}

/// [`run_backtest`] that stops early, with [`BacktestError::Cancelled`], once `cancel` is
/// set (checked before each fold): the HTTP service sets it when the client is gone.
///
/// # Errors
/// As [`run_backtest`], and [`BacktestError::Cancelled`].
pub fn run_backtest_cancellable(
    series: &[Series],
    models: &[Box<dyn Forecaster>],
    config: &BacktestConfig,
    progress: &(dyn Fn(Progress) + Sync),
    cancel: &AtomicBool,
) -> Result<Vec<BacktestRow>, BacktestError> {
    validate(config)?;
    let max_h = config.horizons.iter().copied().max().unwrap_or(1);
    let levels: Vec<f64> = std::iter::once(config.level)
        .chain(config.extra_levels.iter().copied())
        .collect();
    let folds: Vec<Vec<usize>> = series
        .iter()
        .map(|s| {
            let c = cutoffs(s.prices.len(), max_h, config.folds, config.min_train);
            if c.is_empty() {
                Err(BacktestError::SeriesTooShort {
                    symbol: s.symbol.clone(),
                    needed: config.min_train + max_h,
                    got: s.prices.len(),
                })
            } else {
                Ok(c)
            }
        })
        .collect::<Result<_, _>>()?;

    let naive = Naive;
    let naive_index = models.iter().position(|m| m.name() == "naive");
    let mut all: Vec<&dyn Forecaster> = models.iter().map(|m| m.as_ref()).collect();
    if naive_index.is_none() {
        all.push(&naive);
    }
    let naive_index = naive_index.unwrap_or(all.len() - 1);

    // Jobs are (series, model) pairs, slowest models first so the threads finish together.
    let mut jobs: Vec<(usize, usize)> = (0..series.len())
        .flat_map(|s| (0..all.len()).map(move |m| (s, m)))
        .collect();
    jobs.sort_by_key(|&(_, m)| std::cmp::Reverse(cost_rank(all[m].name())));
    let results: Mutex<Vec<Option<Outcomes>>> = Mutex::new(vec![None; series.len() * all.len()]);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let threads = match config.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
    }
    .min(jobs.len())
    .max(1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(s, m)) = jobs.get(i) else { break };
                let outcomes: Outcomes = folds[s]
                    .iter()
                    .map(|&c| {
                        if cancel.load(Ordering::Relaxed) {
                            return None;
                        }
                        evaluate_fold(
                            all[m],
                            &series[s].prices,
                            c,
                            &config.horizons,
                            &levels,
                            &config.calibration,
                        )
                        .ok()
                    })
                    .collect();
                results.lock().unwrap_or_else(|e| e.into_inner())[s * all.len() + m] =
                    Some(outcomes);
                progress(Progress {
                    done: done.fetch_add(1, Ordering::Relaxed) + 1,
                    total: jobs.len(),
                    symbol: series[s].symbol.clone(),
                    model: all[m].name().to_string(),
                });
            });
        }
    });
    if cancel.load(Ordering::Relaxed) {
        return Err(BacktestError::Cancelled);
    }
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());

    let mut rows = Vec::new();
    for (s, serie) in series.iter().enumerate() {
        let outcome = |m: usize| results[s * all.len() + m].as_deref().unwrap_or(&[]);
        let naive_outcomes = outcome(naive_index);
        for (m, model) in models.iter().enumerate() {
            let outcomes = outcome(m);
            for (hi, &h) in config.horizons.iter().enumerate() {
                rows.push(score(
                    &serie.symbol,
                    model.name(),
                    h,
                    hi,
                    outcomes,
                    naive_outcomes,
                    &levels,
                ));
            }
        }
    }
    Ok(rows)
}

/// Rough relative cost of fitting a model, to schedule the slow ones first.
fn cost_rank(name: &str) -> u8 {
    match name {
        "lstm" => 5,
        "auto" => 4,
        "ensemble" => 3,
        "ets" => 2,
        "theta" => 1,
        _ => 0,
    }
}

fn validate(config: &BacktestConfig) -> Result<(), BacktestError> {
    let bad = |m: &str| Err(BacktestError::InvalidConfig(m.to_string()));
    if config.horizons.is_empty() || config.horizons.contains(&0) {
        return bad("horizons must be at least 1");
    }
    if config.folds == 0 {
        return bad("folds must be at least 1");
    }
    let level_ok = |l: f64| l > 0.0 && l < 1.0;
    if !level_ok(config.level) || !config.extra_levels.iter().all(|&l| level_ok(l)) {
        return bad("levels must be strictly between 0 and 1");
    }
    Ok(())
}

/// Scores one model at horizon index `hi` on the folds where it and naive both produced a
/// forecast.
fn score(
    symbol: &str,
    model: &str,
    horizon: usize,
    hi: usize,
    outcomes: &[Option<Vec<FoldPoint>>],
    naive: &[Option<Vec<FoldPoint>>],
    levels: &[f64],
) -> BacktestRow {
    let pairs: Vec<(&FoldPoint, &FoldPoint)> = outcomes
        .iter()
        .zip(naive)
        .filter_map(|(o, n)| Some((&o.as_ref()?[hi], &n.as_ref()?[hi])))
        .collect();
    let n = pairs.len();
    let nf = n.max(1) as f64;
    let mae = pairs
        .iter()
        .map(|(p, _)| (p.actual - p.forecast).abs())
        .sum::<f64>()
        / nf;
    let naive_mae = pairs
        .iter()
        .map(|(_, q)| (q.actual - q.forecast).abs())
        .sum::<f64>()
        / nf;
    let mape = pairs
        .iter()
        .map(|(p, _)| ((p.actual - p.forecast) / p.actual).abs())
        .sum::<f64>()
        / nf;
    let mase = match (mae, naive_mae) {
        (a, b) if b > 0.0 => a / b,
        (0.0, _) => 1.0,
        _ => f64::INFINITY,
    };
    let coverage_by_level: Vec<(f64, f64)> = levels
        .iter()
        .enumerate()
        .map(|(li, &level)| {
            let inside = pairs
                .iter()
                .filter(|(p, _)| {
                    let (_, lo, hi) = p.bands[li];
                    lo <= p.actual && p.actual <= hi
                })
                .count();
            (level, inside as f64 / nf)
        })
        .collect();
    let mean_confidence = pairs.iter().map(|(p, _)| p.confidence).sum::<f64>() / nf;
    let fold_volatility_inside = pairs
        .iter()
        .filter_map(|(p, _)| {
            let &(_, lo, hi) = p.bands.first()?;
            Some((p.volatility, lo <= p.actual && p.actual <= hi))
        })
        .collect();
    BacktestRow {
        symbol: symbol.to_string(),
        model: model.to_string(),
        horizon,
        n,
        mae,
        mape,
        mase,
        coverage: coverage_by_level.first().map_or(0.0, |c| c.1),
        mean_confidence,
        coverage_by_level,
        fold_volatility_inside,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::forecast::{drift::Drift, theta::Theta};

    pub(super) fn wavy(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| 100.0 * (1.0 + 0.2 * (i as f64 / 13.0).sin()) * 1.001_f64.powi(i as i32))
            .collect()
    }

    pub(super) fn small_config() -> BacktestConfig {
        BacktestConfig {
            horizons: vec![1, 5],
            folds: 6,
            min_train: 60,
            extra_levels: vec![0.95],
            threads: 2,
            ..BacktestConfig::default()
        }
    }

    #[test]
    fn cutoffs_leave_room_for_the_longest_horizon() {
        let c = cutoffs(500, 30, 5, 100);
        assert_eq!(c, vec![100, 193, 285, 378, 470]);
        assert!(cutoffs(120, 30, 5, 100).is_empty());
        assert_eq!(cutoffs(130, 30, 5, 100), vec![100]);
    }

    #[test]
    fn naive_has_a_mase_of_exactly_one() {
        let series = [Series {
            symbol: "W".into(),
            prices: wavy(300),
        }];
        let models = models_from_names(&["naive", "drift"]).unwrap();
        let rows = run_backtest(&series, &models, &small_config(), &|_| {}).unwrap();
        assert_eq!(rows.len(), 4);
        for r in rows.iter().filter(|r| r.model == "naive") {
            assert_eq!(r.mase, 1.0);
            assert_eq!(r.n, 6);
        }
        let drift = rows.iter().find(|r| r.model == "drift").unwrap();
        assert!(drift.mase.is_finite() && drift.mase != 1.0);
    }

    #[test]
    fn a_models_rows_do_not_depend_on_which_other_models_run() {
        // ACCURACY.md's tables come from two runs (the statistical models, and naive with the
        // LSTM): naive's rows, its volatility terciles included, must be the same in both.
        let series: Vec<Series> = [("W", 300), ("V", 340)]
            .into_iter()
            .map(|(symbol, n)| Series {
                symbol: symbol.into(),
                prices: wavy(n)
                    .iter()
                    .map(|p| p * (1.0 + 0.01 * (p * 7.0).sin()))
                    .collect(),
            })
            .collect();
        let run = |names: &[&str]| {
            let models = models_from_names(names).unwrap();
            let rows = run_backtest(&series, &models, &small_config(), &|_| {}).unwrap();
            report::overall(&rows)
        };
        let alone = run(&["naive", "theta"]);
        let with_others = run(&["drift", "ensemble", "theta", "naive", "ses"]);
        for model in ["naive", "theta"] {
            let a: Vec<_> = alone.iter().filter(|r| r.model == model).collect();
            let b: Vec<_> = with_others.iter().filter(|r| r.model == model).collect();
            assert_eq!(a, b, "{model}");
            assert!(!a.is_empty());
        }
    }

    #[test]
    fn prices_after_a_cutoff_do_not_change_that_folds_forecast() {
        let prices = wavy(300);
        let mut altered = prices.clone();
        let cutoff = 200;
        for p in &mut altered[cutoff..] {
            *p *= 3.0;
        }
        let settings = CalibrationSettings::default();
        for model in models_from_names(&["drift", "theta", "ets", "ensemble", "auto"]).unwrap() {
            let a =
                evaluate_fold(model.as_ref(), &prices, cutoff, &[1, 7], &[0.8], &settings).unwrap();
            let b = evaluate_fold(model.as_ref(), &altered, cutoff, &[1, 7], &[0.8], &settings)
                .unwrap();
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.forecast, y.forecast, "{}", model.name());
                assert_eq!(x.bands, y.bands, "{}", model.name());
                assert_eq!(x.actual * 3.0, y.actual);
            }
        }
    }

    #[test]
    fn naive_is_run_for_mase_even_when_not_asked_for() {
        let series = [Series {
            symbol: "W".into(),
            prices: wavy(200),
        }];
        let models: Vec<Box<dyn Forecaster>> = vec![Box::new(Drift), Box::new(Theta::default())];
        let calls = AtomicUsize::new(0);
        let rows = run_backtest(&series, &models, &small_config(), &|p| {
            calls.fetch_add(1, Ordering::Relaxed);
            assert_eq!(p.total, 3);
        })
        .unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        assert!(rows.iter().all(|r| r.model != "naive"));
        assert!(rows.iter().all(|r| r.coverage_by_level.len() == 2));
    }

    #[test]
    fn a_series_without_a_fold_is_a_clear_error() {
        let series = [Series {
            symbol: "S".into(),
            prices: wavy(50),
        }];
        let err = run_backtest(
            &series,
            &models_from_names(&["naive"]).unwrap(),
            &small_config(),
            &|_| {},
        )
        .unwrap_err();
        assert!(matches!(err, BacktestError::SeriesTooShort { got: 50, .. }));
    }

    #[test]
    fn json_rows_have_exactly_the_documented_keys() {
        let row = score("X", "naive", 1, 0, &[], &[], &[0.8]);
        let v = serde_json::to_value(vec![row]).unwrap();
        let keys: Vec<&str> = v[0]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut expected = vec![
            "symbol",
            "model",
            "horizon",
            "n",
            "mae",
            "mape",
            "mase",
            "coverage",
            "mean_confidence",
        ];
        expected.sort();
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, expected);
    }
}
