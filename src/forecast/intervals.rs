//! Conformal prediction intervals and the measured error behind `confidence`.
//!
//! A model is refitted at up to [`CalibrationSettings::max_origins`] cutoffs in the recent
//! history it is given (rolling origin: each fit sees only the prices before its cutoff),
//! and the out-of-sample errors `ln(actual / forecast)` are kept per horizon. The band at
//! horizon `h` is `forecast * exp(+-q)`, where `q` is the split-conformal quantile of
//! `|ln(actual / forecast)|` at horizon `h`: symmetric in log space, so the band is wider
//! above than below, as price moves are.
//!
//! Nothing here looks past the history it is given, so the backtester can calibrate at
//! each cutoff on the prices before it.

use serde::Serialize;

use std::sync::Arc;

use super::{naive::Naive, FittedForecaster, ForecastError, Forecaster, PathStore, RollingMemo};

/// The interval level used when a request names none.
pub const DEFAULT_LEVEL: f64 = 0.8;

/// Fewer errors than this at a horizon are too few for a quantile; the band is then
/// extrapolated from the nearest shorter horizon that has enough.
const MIN_SAMPLES: usize = 8;

/// Days of daily log-returns of the short window of [`recent_volatility`].
pub const VOL_WINDOW: usize = 30;

/// Days of the long window of [`recent_volatility`].
pub const LONG_VOL_WINDOW: usize = 180;

/// The volatility that volatility-scaled conformal errors are divided by at their origin and
/// multiplied by at a forecast, so that bands widen in turbulent weeks and narrow in calm
/// ones: the geometric mean of the root mean square daily log-return over the last
/// [`VOL_WINDOW`] and over the last [`LONG_VOL_WINDOW`] days (as many as there are), floored
/// at 1e-12. Volatility mean-reverts: scaling by the 30-day figure alone over-reacted (on 20
/// folds of the ten coins the LSTM's 80% bands covered 62% in the calm third and 94% in the
/// turbulent third at 30 days). Prices must be finite and > 0.
pub fn recent_volatility(prices: &[f64]) -> f64 {
    let rms = |days: usize| {
        let tail = &prices[prices.len().saturating_sub(days + 1)..];
        let (sum, n) = tail.windows(2).fold((0.0, 0usize), |(s, n), w| {
            let r = (w[1] / w[0]).ln();
            (s + r * r, n + 1)
        });
        if n == 0 {
            0.0
        } else {
            (sum / n as f64).sqrt()
        }
    };
    let vol = (rms(VOL_WINDOW) * rms(LONG_VOL_WINDOW)).sqrt();
    if vol.is_finite() {
        vol.max(1e-12)
    } else {
        1e-12
    }
}

/// Where and how often a model is refitted to measure its out-of-sample errors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CalibrationSettings {
    /// Most cutoffs refitted; bounds the cost to this many fits.
    pub max_origins: usize,
    /// The cutoffs are spread evenly over at most this many latest prices: recent errors
    /// describe the current volatility regime better than old ones.
    pub lookback: usize,
    /// Fewest prices a calibration fit sees (raised to the model's own minimum).
    pub min_train: usize,
}

impl Default for CalibrationSettings {
    fn default() -> Self {
        Self {
            max_origins: 80,
            lookback: 540,
            min_train: 30,
        }
    }
}

/// Out-of-sample forecast errors of one model, by horizon.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Calibration {
    /// `ln(actual / forecast)`, index `h - 1` for horizon `h`.
    pub log_errors: Vec<Vec<f64>>,
    /// |1-day log return| of the history: the naive model's errors, the fallback when a
    /// model could not be measured at any horizon.
    pub fallback_abs_errors: Vec<f64>,
}

impl Calibration {
    /// Whether some horizon of `log_errors` has too few errors for its own band, so that
    /// [`Calibration::fallback_abs_errors`] is read: only when horizon 1 has, since every longer
    /// horizon falls back to the nearest shorter measured one first.
    pub fn needs_fallback(log_errors: &[Vec<f64>]) -> bool {
        log_errors.first().is_none_or(|e| e.len() < MIN_SAMPLES)
    }

    /// The half-width `q` (log space) of the band at `horizon` for `level`.
    ///
    /// The split-conformal quantile of the `m` absolute errors: the `ceil((m + 1) * level)`-th
    /// smallest (the largest when that rank exceeds `m`). With 80 origins this covered
    /// 80-82% (80% level) and 95.5-95.8% (95% level) on the real data over 100 folds; the
    /// plain `ceil(m * level)` rank with 40 origins covered only 92.6% at 95%. Where fewer than 8 errors were measured at
    /// `horizon`, the nearest shorter horizon `h0` with enough is scaled by
    /// `sqrt(horizon / h0)` (random-walk error growth).
    pub fn half_width(&self, horizon: usize, level: f64) -> f64 {
        let measured = (1..=horizon.min(self.log_errors.len()))
            .rev()
            .find(|&h| self.log_errors[h - 1].len() >= MIN_SAMPLES);
        let (h0, q) = match measured {
            Some(h0) => (
                h0,
                conformal_quantile(self.log_errors[h0 - 1].iter().map(|e| e.abs()), level),
            ),
            None => (
                1,
                conformal_quantile(self.fallback_abs_errors.iter().copied(), level),
            ),
        };
        let q = q * (horizon as f64 / h0 as f64).sqrt();
        if q.is_finite() {
            q
        } else {
            0.0
        }
    }

    /// Mean absolute percentage error (0.05 = 5%) at `horizon`, extrapolated like
    /// [`Calibration::half_width`] where too few errors were measured.
    pub fn mape(&self, horizon: usize) -> f64 {
        let measured = (1..=horizon.min(self.log_errors.len()))
            .rev()
            .find(|&h| self.log_errors[h - 1].len() >= MIN_SAMPLES);
        let (h0, mape) = match measured {
            Some(h0) => (h0, mean(self.log_errors[h0 - 1].iter().map(|e| ape(*e)))),
            None => (1, mean(self.fallback_abs_errors.iter().map(|e| ape(*e)))),
        };
        let mape = mape * (horizon as f64 / h0 as f64).sqrt();
        if mape.is_finite() {
            mape
        } else {
            1.0
        }
    }

    /// Mean |ln(actual / forecast)| at `horizon` if at least 8 errors were measured there:
    /// the scale-free error [`crate::forecast::auto`] ranks models by.
    pub fn mean_abs_log_error(&self, horizon: usize) -> Option<f64> {
        let errors = self.log_errors.get(horizon.checked_sub(1)?)?;
        (errors.len() >= MIN_SAMPLES).then(|| mean(errors.iter().map(|e| e.abs())))
    }

    /// Number of errors measured at `horizon`.
    pub fn samples(&self, horizon: usize) -> usize {
        horizon
            .checked_sub(1)
            .and_then(|i| self.log_errors.get(i))
            .map_or(0, Vec::len)
    }
}

/// |actual - forecast| / actual from e = ln(actual / forecast).
fn ape(e: f64) -> f64 {
    (1.0 - (-e).exp()).abs()
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// The split-conformal quantile of `abs_errors` at `level`: the `ceil((m + 1) * level)`-th
/// smallest of the `m` errors, capped at the largest (0 when there are none).
pub fn conformal_quantile(abs_errors: impl Iterator<Item = f64>, level: f64) -> f64 {
    let mut v: Vec<f64> = abs_errors.filter(|e| e.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((v.len() + 1) as f64 * level).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The cutoffs (number of prices each calibration fit sees) for a history of `n` prices.
pub fn calibration_origins(
    n: usize,
    min_train: usize,
    settings: &CalibrationSettings,
) -> Vec<usize> {
    if n <= min_train || settings.max_origins == 0 {
        return Vec::new();
    }
    let first = min_train.max(n.saturating_sub(settings.lookback));
    let span = n - first; // cutoffs first..n-1, each with at least one price to forecast
    let stride = (span / settings.max_origins).max(1);
    let mut origins: Vec<usize> = (0..settings.max_origins)
        .map(|k| k * stride)
        .take_while(|&back| back < span)
        .map(|back| n - 1 - back)
        .collect();
    origins.reverse();
    origins
}

/// Measures the errors of `model` at horizons 1..=`max_horizon` (each only where the history
/// reaches that far) from its [`Forecaster::rolling_forecasts`] at the calibration cutoffs of
/// `prices`: refitted at each, or with parameters held between periodic refits, never with a
/// price after the cutoff.
///
/// # Errors
/// [`ForecastError::InvalidPrice`] for a price that is not finite and > 0.
pub fn rolling_calibration(
    model: &dyn Forecaster,
    prices: &[f64],
    max_horizon: usize,
    settings: &CalibrationSettings,
) -> Result<Calibration, ForecastError> {
    rolling_calibration_in(
        model,
        prices,
        max_horizon,
        settings,
        &mut RollingMemo::default(),
    )
}

/// [`rolling_calibration`] with the paths of models calibrated before on the same prices and
/// settings taken from, and kept in, `memo` ([`Forecaster::rolling_forecasts_in`]).
///
/// # Errors
/// As [`rolling_calibration`].
pub fn rolling_calibration_in(
    model: &dyn Forecaster,
    prices: &[f64],
    max_horizon: usize,
    settings: &CalibrationSettings,
    memo: &mut RollingMemo,
) -> Result<Calibration, ForecastError> {
    let logs = memo.log_prices(prices)?;
    let min_train = settings.min_train.max(model.min_history());
    let cutoffs = calibration_origins(prices.len(), min_train, settings);
    // A model that cannot fit a prefix contributes no errors from it rather than failing the
    // whole forecast: the remaining origins still calibrate it.
    let paths = model.rolling_forecasts_in(prices, &cutoffs, max_horizon, memo);
    Ok(calibration_of(&logs, &cutoffs, paths, max_horizon))
}

/// [`rolling_calibration`] of the naive forecast, whose paths are the price before each
/// cutoff (computed directly, bit for bit the refitted ones: tested). The LSTM's bands at a
/// horizon where naive answers for it come from here.
///
/// # Errors
/// [`ForecastError::InvalidPrice`] for a price that is not finite and > 0.
pub fn naive_calibration(
    prices: &[f64],
    max_horizon: usize,
    settings: &CalibrationSettings,
) -> Result<Calibration, ForecastError> {
    rolling_calibration(&Naive, prices, max_horizon, settings)
}

/// The errors `ln(actual / forecast)` by horizon of `paths` (one per cutoff, the days after
/// `logs[..cutoff]`), and the naive fallback of `logs`.
fn calibration_of(
    logs: &[f64],
    cutoffs: &[usize],
    paths: Vec<Option<Vec<f64>>>,
    max_horizon: usize,
) -> Calibration {
    let mut log_errors = vec![Vec::new(); max_horizon];
    for (&cutoff, path) in cutoffs.iter().zip(paths) {
        let Some(path) = path else { continue };
        for (h, f) in path.into_iter().enumerate().take(max_horizon) {
            if let Some(actual) = logs.get(cutoff + h) {
                log_errors[h].push(actual - f.ln());
            }
        }
    }
    let fallback_abs_errors = logs.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
    Calibration {
        log_errors,
        fallback_abs_errors,
    }
}

/// One day of a forecast path.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ForecastPoint)]
pub struct PathPoint {
    /// Days after the last price (1 = tomorrow).
    #[schema(minimum = 1)]
    pub day: usize,
    /// Point forecast.
    pub price: f64,
    /// Lower end of the interval at the path's level (<= price).
    pub lower: f64,
    /// Upper end of the interval (>= price).
    pub upper: f64,
}

/// A forecast path with conformal bands and its measured error.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IntervalForecast {
    /// What produced the path, e.g. `"theta"` or `"auto(ets(AAdN))"`.
    pub model: String,
    /// The interval level, in (0, 1).
    pub level: f64,
    /// Days 1..=horizon.
    pub path: Vec<PathPoint>,
    /// Out-of-sample MAPE (0.05 = 5%) at the last day of the path, from the calibration
    /// backtest on the given history.
    pub backtest_mape: f64,
    /// `clamp(1 - backtest_mape, 0, 1)`: 0.93 means the model's forecasts this many days
    /// ahead were off by 7% on average over the recent history. It is a statement about
    /// measured error, not a probability.
    pub confidence: f64,
    /// Errors measured at the last day of the path (0 when extrapolated from shorter
    /// horizons or from the price's own daily moves).
    pub calibration_samples: usize,
}

/// Puts the conformal band of `calibration` at `level` around each day of a point path
/// (`point[0]` is day 1).
pub fn banded_path(point: &[f64], calibration: &Calibration, level: f64) -> Vec<PathPoint> {
    point
        .iter()
        .enumerate()
        .map(|(i, &price)| {
            let q = calibration.half_width(i + 1, level);
            PathPoint {
                day: i + 1,
                price,
                lower: price * (-q).exp(),
                upper: price * q.exp(),
            }
        })
        .collect()
}

/// Fits `model` to `prices` and returns the path for days 1..=`horizon` with conformal
/// bands at `level`, with default [`CalibrationSettings`].
///
/// # Errors
/// [`ForecastError::ZeroHorizon`], [`ForecastError::InvalidLevel`] outside (0, 1), and the
/// model's fitting errors.
pub fn forecast_with_intervals(
    model: &dyn Forecaster,
    prices: &[f64],
    horizon: usize,
    level: f64,
) -> Result<IntervalForecast, ForecastError> {
    forecast_with_settings(
        model,
        prices,
        horizon,
        level,
        &CalibrationSettings::default(),
    )
}

/// [`forecast_with_intervals`] with explicit calibration settings.
///
/// # Errors
/// As [`forecast_with_intervals`].
pub fn forecast_with_settings(
    model: &dyn Forecaster,
    prices: &[f64],
    horizon: usize,
    level: f64,
    settings: &CalibrationSettings,
) -> Result<IntervalForecast, ForecastError> {
    forecast_with_store(model, prices, horizon, level, settings, None)
}

/// [`forecast_with_settings`] with the model's rolling paths taken from, and kept in, `store`
/// (the service's path cache): a history that differs from one calibrated before only after
/// its last calibration cutoff (the live last price of a daily history) reuses every path,
/// and the answer is bit for bit the one computed afresh (tested).
///
/// # Errors
/// As [`forecast_with_intervals`].
pub fn forecast_with_store(
    model: &dyn Forecaster,
    prices: &[f64],
    horizon: usize,
    level: f64,
    settings: &CalibrationSettings,
    store: Option<&Arc<dyn PathStore>>,
) -> Result<IntervalForecast, ForecastError> {
    if horizon == 0 {
        return Err(ForecastError::ZeroHorizon);
    }
    if !(level > 0.0 && level < 1.0) {
        return Err(ForecastError::InvalidLevel(level));
    }
    let fitted = model.fit_with_store(prices, store)?;
    forecast_fitted(fitted.as_ref(), horizon, level, || {
        rolling_calibration_in(
            model,
            prices,
            horizon,
            settings,
            &mut RollingMemo::with_store(store),
        )
    })
}

/// The answer of a fitted model for days 1..=`horizon`: its point path with the conformal band
/// at `level` of the errors it measured while fitting, else of `calibrate` (the model refitted
/// at earlier origins), its label and its confidence. Every forecast the service serves, the
/// LSTM's included, is built here.
///
/// # Errors
/// [`FittedForecaster::try_predict`]'s, and `calibrate`'s.
pub fn forecast_fitted(
    fitted: &dyn FittedForecaster,
    horizon: usize,
    level: f64,
    calibrate: impl FnOnce() -> Result<Calibration, ForecastError>,
) -> Result<IntervalForecast, ForecastError> {
    let calibration = match fitted.calibration(horizon) {
        Some(c) => c,
        None => calibrate()?,
    };
    let path = banded_path(&fitted.try_predict(horizon)?, &calibration, level);
    let backtest_mape = fitted.expected_mape(horizon, &calibration);
    Ok(IntervalForecast {
        model: fitted.label(horizon),
        level,
        path,
        backtest_mape,
        confidence: confidence(backtest_mape),
        calibration_samples: calibration.samples(horizon),
    })
}

/// `1 - mape`, clamped to [0, 1]; a non-finite error measure gives 0.
pub fn confidence(mape: f64) -> f64 {
    let c = 1.0 - mape;
    if c.is_finite() {
        c.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::forecast::refit_forecasts;

    #[test]
    fn confidence_is_one_minus_error_within_bounds() {
        assert!((confidence(0.05) - 0.95).abs() < 1e-12);
        assert_eq!(confidence(1.7), 0.0);
        assert_eq!(confidence(-0.1), 1.0);
        assert_eq!(confidence(f64::NAN), 0.0);
        assert_eq!(confidence(f64::INFINITY), 0.0);
    }

    #[test]
    fn the_direct_naive_calibration_is_the_refitted_one() {
        let prices: Vec<f64> = (0..700)
            .map(|i| 100.0 * (1.0 + 0.2 * (i as f64 / 17.0).sin() + 0.001 * i as f64))
            .collect();
        let settings = CalibrationSettings::default();
        for (n, h) in [(700, 30), (61, 30), (365, 90), (2, 1)] {
            let direct = naive_calibration(&prices[..n], h, &settings).unwrap();
            let cutoffs = calibration_origins(n, settings.min_train.max(1), &settings);
            let refitted = calibration_of(
                &crate::forecast::log_prices(&prices[..n], 1).unwrap(),
                &cutoffs,
                refit_forecasts(&Naive, &prices[..n], &cutoffs, h),
                h,
            );
            assert_eq!(direct, refitted, "{n} prices, {h} days");
        }
    }

    /// The values bench/stats_reference.py computed with statsforecast.
    pub(crate) fn fixture() -> serde_json::Value {
        let text = include_str!("../../tests/fixtures/stats/reference.json");
        serde_json::from_str(text).expect("fixture is JSON")
    }

    /// A list of numbers of the fixture.
    pub(crate) fn numbers(value: &serde_json::Value) -> Vec<f64> {
        value
            .as_array()
            .expect("a list")
            .iter()
            .map(|v| v.as_f64().expect("a number"))
            .collect()
    }

    #[test]
    fn the_fallback_is_read_only_when_horizon_one_lacks_errors() {
        let measured = |n: usize| (0..n).map(|i| 0.01 * i as f64).collect::<Vec<_>>();
        let fallback = vec![0.5; 20];
        for log_errors in [
            vec![measured(9), measured(3), measured(12)],
            vec![measured(3), measured(9)],
            vec![],
        ] {
            let with = Calibration {
                log_errors: log_errors.clone(),
                fallback_abs_errors: fallback.clone(),
            };
            let without = Calibration {
                log_errors: log_errors.clone(),
                fallback_abs_errors: Vec::new(),
            };
            let same = (1..=7).all(|h| {
                with.half_width(h, 0.9) == without.half_width(h, 0.9)
                    && with.mape(h) == without.mape(h)
            });
            assert_eq!(same, !Calibration::needs_fallback(&log_errors));
        }
    }

    #[test]
    fn the_conformal_quantile_takes_the_split_conformal_rank() {
        let v = (1..=9).map(f64::from);
        // ceil(10 * 0.8) = 8th smallest.
        assert_eq!(conformal_quantile(v.clone(), 0.8), 8.0);
        // ceil(10 * 0.5) = 5th smallest; ceil(10 * 0.75) = 8th.
        assert_eq!(conformal_quantile(v.clone(), 0.5), 5.0);
        assert_eq!(conformal_quantile(v.clone(), 0.75), 8.0);
        assert_eq!(conformal_quantile(v, 0.99), 9.0);
    }

    #[test]
    fn origins_stay_inside_the_history_and_after_min_train() {
        let s = CalibrationSettings::default();
        let o = calibration_origins(1000, 30, &s);
        assert_eq!(o.len(), 80);
        assert_eq!(*o.last().unwrap(), 999);
        assert!(o.iter().all(|&c| (1000 - 540..1000).contains(&c)));
        let o = calibration_origins(60, 30, &s);
        assert_eq!(o, (30..60).collect::<Vec<_>>());
        assert!(calibration_origins(30, 30, &s).is_empty());
    }

    #[test]
    fn naive_errors_are_the_log_returns_over_the_horizon() {
        let prices: Vec<f64> = (0..50).map(|i| 100.0 * 1.01_f64.powi(i)).collect();
        let c = rolling_calibration(&Naive, &prices, 3, &CalibrationSettings::default()).unwrap();
        for (h, errors) in c.log_errors.iter().enumerate() {
            assert!(!errors.is_empty());
            for e in errors {
                assert!((e - 1.01_f64.ln() * (h + 1) as f64).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn levels_outside_zero_one_are_rejected() {
        let prices = [1.0; 60];
        for level in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(matches!(
                forecast_with_intervals(&Naive, &prices, 3, level),
                Err(ForecastError::InvalidLevel(_))
            ));
        }
    }

    #[test]
    fn a_wider_level_gives_a_wider_band() {
        let prices: Vec<f64> = (0..200)
            .map(|i| 100.0 + (i as f64 * 0.7).sin() * 5.0)
            .collect();
        let narrow = forecast_with_intervals(&Naive, &prices, 7, 0.5).unwrap();
        let wide = forecast_with_intervals(&Naive, &prices, 7, 0.95).unwrap();
        for (n, w) in narrow.path.iter().zip(&wide.path) {
            assert!(w.upper - w.lower >= n.upper - n.lower);
            assert!(n.lower <= n.price && n.price <= n.upper);
        }
        assert!(wide.confidence > 0.0 && wide.confidence <= 1.0);
    }
}
