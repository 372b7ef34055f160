//! The standard theta method (Assimakopoulos & Nikolopoulos 2000) in the state-space form of
//! Fiorucci et al. (2016) that statsforecast calls `Theta` / STM: simple exponential
//! smoothing plus half the slope of the linear trend (theta = 2), applied to log prices.
//!
//! The smoothing weight `alpha` (in [0.1, 0.99]) and the initial level are chosen by
//! Nelder-Mead to minimise the in-sample one-step squared error, as statsforecast does.
//! `bench/stats_reference.py` produced the reference values the tests compare against.

use super::{exp_path, log_prices, tail, FittedForecaster, ForecastError, Forecaster};

/// The standard theta model, fitted on at most the last `max_window` log prices; with a
/// trend weight of 0 ([`Theta::ses`]) it is simple exponential smoothing.
#[derive(Clone, Copy, Debug)]
pub struct Theta {
    /// Most recent prices used for fitting; bounds the fit time on long histories.
    pub max_window: usize,
    /// Weight of the trend line ([`THETA_TREND_WEIGHT`]; 0 for SES).
    pub trend_weight: f64,
}

impl Default for Theta {
    fn default() -> Self {
        Self {
            max_window: 1000,
            trend_weight: THETA_TREND_WEIGHT,
        }
    }
}

impl Theta {
    /// Simple exponential smoothing (statsforecast's `SimpleExponentialSmoothingOptimized`,
    /// with the initial level optimised too): the flat forecast of a smoothed level.
    pub fn ses() -> Self {
        Self {
            trend_weight: 0.0,
            ..Self::default()
        }
    }
}

/// Fitted parameters and end state of a [`Theta`] model (log space).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThetaState {
    /// Smoothing weight of the level.
    pub alpha: f64,
    /// The optimised initial level (`initial_smoothed` in statsforecast).
    pub initial_level: f64,
    /// Intercept and slope of the least-squares line through the fitted values.
    pub intercept: f64,
    pub slope: f64,
    /// Smoothed level after the last observation.
    pub level: f64,
    /// Number of values fitted.
    pub n: usize,
    /// Weight of the trend line: [`THETA_TREND_WEIGHT`] for theta, 0 for plain simple
    /// exponential smoothing.
    pub trend_weight: f64,
}

/// theta = 2 for the standard method; `1 - 1/theta` weighs the trend line.
pub const THETA_TREND_WEIGHT: f64 = 0.5;
const ALPHA_BOUNDS: (f64, f64) = (0.1, 0.99);

impl ThetaState {
    /// Runs the filter over `y` with the given parameters; also returns the in-sample
    /// one-step squared error summed from the fourth value on (statsforecast skips three).
    pub fn filter(y: &[f64], initial_level: f64, alpha: f64) -> (Self, f64) {
        Self::filter_with(y, initial_level, alpha, THETA_TREND_WEIGHT)
    }

    /// [`ThetaState::filter`] with another trend weight (0: simple exponential smoothing).
    pub fn filter_with(
        y: &[f64],
        initial_level: f64,
        alpha: f64,
        trend_weight: f64,
    ) -> (Self, f64) {
        let mut state = Self::start(y, initial_level, alpha, trend_weight);
        let mut sse = 0.0;
        for (i, &yi) in y.iter().enumerate().skip(1) {
            let e = yi - state.mu(i);
            if i >= 3 {
                sse += e * e;
            }
            state.level = alpha * yi + (1.0 - alpha) * state.level;
        }
        (state, sse)
    }

    /// The state before the second value: the trend line through `y`, the level after `y[0]`.
    fn start(y: &[f64], initial_level: f64, alpha: f64, trend_weight: f64) -> Self {
        let n = y.len();
        let nf = n as f64;
        let mean = y.iter().sum::<f64>() / nf;
        let mean_ty = y
            .iter()
            .enumerate()
            .map(|(i, v)| (i + 1) as f64 * v)
            .sum::<f64>()
            / nf;
        let slope = if n > 1 {
            6.0 * (2.0 * mean_ty - (1.0 + nf) * mean) / (nf * nf - 1.0)
        } else {
            0.0
        };
        let intercept = mean - (nf + 1.0) * slope / 2.0;
        Self {
            alpha,
            initial_level,
            intercept,
            slope,
            level: alpha * y[0] + (1.0 - alpha) * initial_level,
            n,
            trend_weight,
        }
    }

    /// The one-step forecast made at step `i` from the level before it.
    fn mu(&self, i: usize) -> f64 {
        let decay = 1.0 - self.alpha;
        let pow_i = decay.powi(i.min(i32::MAX as usize) as i32);
        self.level
            + self.trend_weight
                * (pow_i * self.intercept + (1.0 - pow_i * decay) / self.alpha * self.slope)
    }

    /// The forecast path for steps 1..=horizon after the data (log space when fitted on logs).
    pub fn forecast(&self, horizon: usize) -> Vec<f64> {
        let mut state = *self;
        (0..horizon)
            .map(|k| {
                let mu = state.mu(self.n + k);
                state.level = state.alpha * mu + (1.0 - state.alpha) * state.level;
                mu
            })
            .collect()
    }

    /// Fits alpha and the initial level to `y` by minimising the in-sample one-step squared
    /// error, as statsforecast does (it runs Nelder-Mead over both).
    ///
    /// The error is quadratic in the initial level (the filter is linear in it), so for each
    /// alpha the best level has a closed form and only alpha is searched: a grid of 16 over
    /// [0.1, 0.99], then golden-section search around the best grid point. The optimum is
    /// the same (or better: no simplex collapse) at a tenth of the filter passes.
    pub fn fit(y: &[f64]) -> Self {
        Self::fit_with(y, THETA_TREND_WEIGHT)
    }

    /// [`ThetaState::fit`] with another trend weight (0: simple exponential smoothing).
    pub fn fit_with(y: &[f64], trend_weight: f64) -> Self {
        const GRID: usize = 16;
        let (lo, hi) = ALPHA_BOUNDS;
        let at = |k: usize| lo + (hi - lo) * k as f64 / (GRID - 1) as f64;
        let line = Self::start(y, 0.0, 0.5, trend_weight);
        let line = (trend_weight * line.intercept, trend_weight * line.slope);
        let sse = |alpha: f64| Self::profile(y, alpha, line).0;
        let best_k = (0..GRID)
            .min_by(|&a, &b| sse(at(a)).total_cmp(&sse(at(b))))
            .unwrap_or(0);
        let (mut a, mut b) = (at(best_k.saturating_sub(1)), at((best_k + 1).min(GRID - 1)));
        // Golden-section search on [a, b], which brackets the grid's best point.
        let inv_phi = (5.0_f64.sqrt() - 1.0) / 2.0;
        let mut c = b - inv_phi * (b - a);
        let mut d = a + inv_phi * (b - a);
        let (mut fc, mut fd) = (sse(c), sse(d));
        while b - a > 1e-7 {
            if fc <= fd {
                (b, d, fd) = (d, c, fc);
                c = b - inv_phi * (b - a);
                fc = sse(c);
            } else {
                (a, c, fc) = (c, d, fd);
                d = a + inv_phi * (b - a);
                fd = sse(d);
            }
        }
        let mut alpha = (a + b) / 2.0;
        if sse(at(best_k)) < sse(alpha) {
            alpha = at(best_k);
        }
        let (_, initial_level) = Self::profile(y, alpha, line);
        Self::filter_with(y, initial_level, alpha, trend_weight).0
    }

    /// For one alpha: the least in-sample squared error over all initial levels, and that
    /// level. With the initial level `l0`, the step-`i` error is `a_i - (1 - alpha)^i * l0`
    /// where `a_i` is the error of the run from `l0 = 0`; least squares in `l0` follows.
    fn profile(y: &[f64], alpha: f64, (intercept, slope): (f64, f64)) -> (f64, f64) {
        let decay = 1.0 - alpha;
        let mut level = alpha * y[0];
        let (mut saa, mut sab, mut sbb) = (0.0, 0.0, 0.0);
        // decay^i: the weight of l0 in the level before step i, and the trend's discount.
        let mut pow_i = decay;
        for (i, &yi) in y.iter().enumerate().skip(1) {
            let mu = level + (pow_i * intercept + (1.0 - pow_i * decay) / alpha * slope);
            let a = yi - mu;
            if i >= 3 {
                saa += a * a;
                sab += a * pow_i;
                sbb += pow_i * pow_i;
            }
            level = alpha * yi + decay * level;
            pow_i *= decay;
        }
        let l0 = if sbb > 1e-300 { sab / sbb } else { y[0] };
        let sse = saa - if sbb > 1e-300 { sab * sab / sbb } else { 0.0 };
        let sse = if sse.is_finite() {
            sse.max(0.0)
        } else {
            f64::INFINITY
        };
        (sse, l0)
    }
}

/// A fitted [`Theta`] model.
#[derive(Clone, Copy, Debug)]
pub struct FittedTheta {
    state: ThetaState,
    last_log: f64,
}

impl FittedTheta {
    /// The fitted parameters and end state.
    pub fn state(&self) -> &ThetaState {
        &self.state
    }
}

impl Forecaster for Theta {
    fn name(&self) -> &'static str {
        if self.trend_weight == 0.0 {
            "ses"
        } else {
            "theta"
        }
    }

    fn min_history(&self) -> usize {
        // statsforecast refuses n <= 3; four leaves one residual after its burn-in of three.
        5
    }

    fn fit(&self, prices: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastError> {
        let logs = log_prices(prices, self.min_history())?;
        let y = tail(&logs, self.max_window.max(self.min_history()));
        Ok(Box::new(FittedTheta {
            state: ThetaState::fit_with(y, self.trend_weight),
            last_log: logs[logs.len() - 1],
        }))
    }
}

impl FittedForecaster for FittedTheta {
    fn predict(&self, horizon: usize) -> Vec<f64> {
        exp_path(self.state.forecast(horizon), self.last_log)
    }

    fn label(&self, _horizon: usize) -> String {
        if self.state.trend_weight == 0.0 {
            "ses"
        } else {
            "theta"
        }
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::intervals::tests::{fixture, numbers};

    /// The fixture's last 200 BTC closes, as log prices.
    fn btc_logs(f: &serde_json::Value) -> Vec<f64> {
        numbers(&f["btc_close_last_200"])
            .into_iter()
            .map(f64::ln)
            .collect()
    }

    #[test]
    fn fixed_parameters_reproduce_statsforecast_exactly() {
        let f = fixture();
        let y = btc_logs(&f);
        let t = &f["theta_fixed"];
        let state = ThetaState::filter(
            &y,
            t["initial_smoothed"].as_f64().unwrap(),
            t["alpha"].as_f64().unwrap(),
        )
        .0;
        let expected: Vec<f64> = numbers(&t["log_forecast"]);
        let got = state.forecast(expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() < 1e-9, "{got:?} vs {expected:?}");
        }
    }

    #[test]
    fn optimised_forecast_matches_statsforecast_on_btc() {
        let f = fixture();
        let prices: Vec<f64> = numbers(&f["btc_close_last_200"]);
        let t = &f["theta_optimised"];
        let fitted = Theta::default().fit(&prices).unwrap();
        let expected: Vec<f64> = numbers(&t["forecast"]);
        let got = fitted.predict(expected.len());
        for (g, e) in got.iter().zip(&expected) {
            // Two Nelder-Mead implementations stop at slightly different points of a flat
            // optimum; 0.1% of the price is far below a day's move.
            assert!((g / e - 1.0).abs() < 1e-3, "{got:?} vs {expected:?}");
        }
    }

    #[test]
    fn the_fit_is_no_worse_than_any_point_of_a_fine_grid() {
        let f = fixture();
        let y = btc_logs(&f);
        let fitted = ThetaState::fit(&y);
        let best = ThetaState::filter(&y, fitted.initial_level, fitted.alpha).1;
        for ai in 0..=89 {
            let alpha = 0.1 + 0.01 * f64::from(ai);
            for li in -50..=50 {
                let level = y[0] + 0.02 * f64::from(li);
                let sse = ThetaState::filter(&y, level, alpha).1;
                assert!(
                    best <= sse + 1e-12,
                    "alpha {alpha} level {level}: {sse} < {best}"
                );
            }
        }
    }

    #[test]
    fn a_constant_series_forecasts_that_constant() {
        let path = Theta::default().fit(&[5.0; 60]).unwrap().predict(10);
        for p in path {
            assert!((p - 5.0).abs() < 1e-6, "{p}");
        }
    }
}
