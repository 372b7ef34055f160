//! Auto: per series and per horizon, the candidate that beats the naive forecast out of
//! sample with the strongest evidence, else naive.
//!
//! Fitting refits every candidate at 60 cutoffs over the last 1,500 prices of the history it
//! is given, so the choice uses no price after the history. At each horizon, each
//! candidate's absolute log errors are compared with naive's on the same cutoffs by a
//! one-sided Diebold-Mariano test (Newey-West variance for the overlap of multi-day
//! forecasts); among those significant at 5%, the most significant wins. On daily crypto
//! prices most apparent wins are noise, and switching away from naive on noise costs
//! accuracy out of sample: picking the lowest error behind a fixed 5% margin over 540 days
//! lost 1.5% at 30 days; the lowest error among significant ones lost 0.01-0.2%.
//! The intervals come from the chosen candidate's errors over the recent 540 days, like every
//! other model's, so auto costs two calibrations per candidate and no nested backtest.

use std::sync::Arc;

use super::{
    drift::Drift,
    ensemble::Ensemble,
    intervals::{calibration_origins, rolling_calibration_in, Calibration, CalibrationSettings},
    log_prices,
    moving_average::MovingAverage,
    naive::Naive,
    theta::Theta,
    FittedForecaster, ForecastError, Forecaster, PathStore, RollingMemo,
};

/// Selects among candidates by rolling-origin error at each horizon.
pub struct Auto {
    /// The candidates; [`Naive`] is always added as the reference if missing.
    pub candidates: Vec<Box<dyn Forecaster>>,
    /// Where candidates are refitted to choose among them: a long lookback, so that a trend
    /// of the last months does not pass for skill.
    pub selection: CalibrationSettings,
    /// Where the chosen candidate is refitted to calibrate its intervals: the recent
    /// volatility, as for every other model.
    pub settings: CalibrationSettings,
    /// Longest horizon errors are measured at; longer ones use this one's ranking.
    pub max_horizon: usize,
    /// One-sided critical value of the Diebold-Mariano statistic a candidate must beat to
    /// replace naive (1.645: significant at 5%).
    pub critical_value: f64,
}

impl Default for Auto {
    /// naive, drift, moving average, SES, theta and the ensemble, replacing naive only at 5%
    /// significance.
    /// ETS is left out for the same reasons as in [`super::ensemble::Ensemble`].
    fn default() -> Self {
        Self {
            candidates: vec![
                Box::new(Naive),
                Box::new(Drift),
                Box::new(MovingAverage::default()),
                Box::new(Theta::ses()),
                Box::new(Theta::default()),
                Box::new(Ensemble::default()),
            ],
            selection: CalibrationSettings {
                max_origins: 60,
                lookback: 1500,
                min_train: 30,
            },
            settings: CalibrationSettings::default(),
            max_horizon: 90,
            critical_value: 1.645,
        }
    }
}

/// A fitted [`Auto`]: every candidate fitted, with its measured errors.
pub struct FittedAuto {
    fitted: Vec<Box<dyn FittedForecaster>>,
    /// Errors over the selection lookback, one per candidate.
    calibrations: Vec<Calibration>,
    /// Errors over the interval lookback, for the candidates chosen at some horizon.
    interval_calibrations: Vec<Option<Calibration>>,
    /// Index into `fitted` of the naive reference.
    naive: usize,
    /// Days between calibration origins: errors at horizons beyond it overlap.
    origin_spacing: usize,
    critical_value: f64,
}

impl FittedAuto {
    /// Index of the candidate used at `horizon`: the one whose errors beat naive's with the
    /// most negative Diebold-Mariano statistic below `-critical_value`, else naive.
    fn choice(&self, horizon: usize) -> usize {
        // Rank at the longest measured horizon up to the requested one.
        let reference = &self.calibrations[self.naive];
        let Some(h) = (1..=horizon.min(reference.log_errors.len()))
            .rev()
            .find(|&h| reference.mean_abs_log_error(h).is_some())
        else {
            return self.naive;
        };
        let naive_errors = &reference.log_errors[h - 1];
        // Forecasts from origins closer than h days apart share actual prices, so their
        // errors are correlated up to this lag.
        let lags = h.div_ceil(self.origin_spacing.max(1));
        self.calibrations
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != self.naive)
            .filter_map(|(i, c)| {
                let errors = c.log_errors.get(h - 1)?;
                let t = diebold_mariano(errors, naive_errors, lags)?;
                (t < -self.critical_value).then_some((i, t))
            })
            .filter(|(_, t)| t.is_finite())
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(self.naive, |(i, _)| i)
    }
}

/// The Diebold-Mariano statistic of the absolute errors `a` against `b` (paired, same
/// origins): the mean of `|a| - |b|` over its Newey-West standard error with `lags`
/// Bartlett lags. Negative means `a` is more accurate. `None` when the samples are unpaired,
/// too few, or show no variation.
pub fn diebold_mariano(a: &[f64], b: &[f64], lags: usize) -> Option<f64> {
    let m = a.len();
    if m != b.len() || m < 8 {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x.abs() - y.abs()).collect();
    let mean = d.iter().sum::<f64>() / m as f64;
    let autocov = |k: usize| {
        d.iter()
            .zip(&d[k..])
            .map(|(x, y)| (x - mean) * (y - mean))
            .sum::<f64>()
            / m as f64
    };
    let lags = lags.min(m - 1);
    let variance = autocov(0)
        + 2.0
            * (1..=lags)
                .map(|k| (1.0 - k as f64 / (lags + 1) as f64) * autocov(k))
                .sum::<f64>();
    (variance > 0.0 && variance.is_finite()).then(|| mean / (variance / m as f64).sqrt())
}

impl Forecaster for Auto {
    fn name(&self) -> &'static str {
        "auto"
    }

    fn min_history(&self) -> usize {
        self.candidates
            .iter()
            .map(|m| m.min_history())
            .max()
            .unwrap_or(1)
    }

    fn fit(&self, prices: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastError> {
        self.fit_with_store(prices, None)
    }

    /// The candidates' rolling paths come from `store` where an earlier request on the same
    /// prices before the last cutoff computed them.
    fn fit_with_store(
        &self,
        prices: &[f64],
        store: Option<&Arc<dyn PathStore>>,
    ) -> Result<Box<dyn FittedForecaster>, ForecastError> {
        log_prices(prices, self.min_history())?;
        let naive_pos = self.candidates.iter().position(|c| c.name() == "naive");
        let extra_naive: Option<Box<dyn Forecaster>> = match naive_pos {
            Some(_) => None,
            None => Some(Box::new(Naive)),
        };
        let candidates: Vec<&dyn Forecaster> = self
            .candidates
            .iter()
            .map(|c| c.as_ref())
            .chain(extra_naive.as_deref())
            .collect();
        let naive = naive_pos.unwrap_or(candidates.len() - 1);
        // One set of origins for every candidate, so that their errors pair up.
        let selection = CalibrationSettings {
            min_train: self.selection.min_train.max(self.min_history()),
            ..self.selection
        };
        let origins = calibration_origins(prices.len(), selection.min_train, &selection);
        let origin_spacing = origins.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(1);
        let mut fitted = Vec::with_capacity(candidates.len());
        let mut calibrations = Vec::with_capacity(candidates.len());
        // The ensemble's members are candidates too: their paths are computed once.
        let mut memo = RollingMemo::with_store(store);
        for &c in &candidates {
            fitted.push(c.fit(prices)?);
            calibrations.push(rolling_calibration_in(
                c,
                prices,
                self.max_horizon,
                &selection,
                &mut memo,
            )?);
        }
        let mut auto = FittedAuto {
            fitted,
            calibrations,
            interval_calibrations: vec![None; candidates.len()],
            naive,
            origin_spacing,
            critical_value: self.critical_value,
        };
        let mut chosen: Vec<usize> = (1..=self.max_horizon).map(|h| auto.choice(h)).collect();
        chosen.sort_unstable();
        chosen.dedup();
        let mut memo = RollingMemo::with_store(store);
        for i in chosen {
            auto.interval_calibrations[i] = Some(rolling_calibration_in(
                candidates[i],
                prices,
                self.max_horizon,
                &self.settings,
                &mut memo,
            )?);
        }
        Ok(Box::new(auto))
    }
}

impl FittedForecaster for FittedAuto {
    fn predict(&self, horizon: usize) -> Vec<f64> {
        self.fitted[self.choice(horizon)].predict(horizon)
    }

    fn label(&self, horizon: usize) -> String {
        format!("auto({})", self.fitted[self.choice(horizon)].label(horizon))
    }

    fn calibration(&self, horizon: usize) -> Option<Calibration> {
        let i = self.choice(horizon);
        self.interval_calibrations[i]
            .clone()
            .or_else(|| Some(self.calibrations[i].clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_trend_is_left_to_a_trend_model() {
        let prices: Vec<f64> = (0..120).map(|i| 50.0 * 1.02_f64.powi(i)).collect();
        let fitted = Auto::default().fit(&prices).unwrap();
        assert_ne!(fitted.label(7), "auto(naive)");
        let path = fitted.predict(7);
        let expected = 50.0 * 1.02_f64.powi(126);
        assert!((path[6] / expected - 1.0).abs() < 0.01, "{path:?}");
    }

    #[test]
    fn diebold_mariano_is_negative_when_the_first_errors_are_smaller() {
        let b: Vec<f64> = (0..40).map(|i| 1.0 + 0.3 * f64::from(i % 7)).collect();
        let a: Vec<f64> = b
            .iter()
            .enumerate()
            .map(|(i, e)| e * if i % 3 == 0 { 0.9 } else { 0.5 })
            .collect();
        let t = diebold_mariano(&a, &b, 2).unwrap();
        assert!(t < -5.0, "{t}");
        assert!(diebold_mariano(&b, &a, 2).unwrap() > 5.0);
        // Identical errors carry no evidence either way; unpaired or few samples neither.
        assert_eq!(diebold_mariano(&b, &b, 2), None);
        assert_eq!(diebold_mariano(&a[..10], &b, 2), None);
        assert_eq!(diebold_mariano(&a[..5], &b[..5], 2), None);
    }

    #[test]
    fn noise_that_looks_like_skill_does_not_replace_naive() {
        // A random walk: no candidate is better than naive beyond chance.
        let mut state = 7_u64;
        let mut price = 100.0_f64;
        let prices: Vec<f64> = (0..800)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                price *= (0.04 * (u - 0.5)).exp();
                price
            })
            .collect();
        let fitted = Auto::default().fit(&prices).unwrap();
        assert_eq!(fitted.label(30), "auto(naive)");
    }

    #[test]
    fn a_constant_series_stays_with_naive() {
        let fitted = Auto::default().fit(&[3.0; 60]).unwrap();
        assert_eq!(fitted.predict(5), vec![3.0; 5]);
    }
}
