//! The standard theta method (Assimakopoulos & Nikolopoulos 2000) in the state-space form of
//! Fiorucci et al. (2016) that statsforecast calls `Theta` / STM: simple exponential
//! smoothing plus half the slope of the linear trend (theta = 2), applied to log prices.
//!
//! The smoothing weight `alpha` (in [0.1, 0.99]) and the initial level are chosen by
//! Nelder-Mead to minimise the in-sample one-step squared error, as statsforecast does.
//! `bench/stats_reference.py` produced the reference values the tests compare against.

use super::{
    exp_path, log_prices, rolling_from_logs, tail, FittedForecaster, ForecastError, Forecaster,
};

/// The standard theta model, fitted on at most the last `max_window` log prices; with a
/// trend weight of 0 ([`Theta::ses`]) it is simple exponential smoothing.
#[derive(Clone, Copy, Debug)]
pub struct Theta {
    /// Most recent prices used for fitting; bounds the fit time on long histories.
    pub max_window: usize,
    /// Weight of the trend line ([`THETA_TREND_WEIGHT`]; 0 for SES).
    pub trend_weight: f64,
    /// Calibration refits alpha at every this many cutoffs and holds it in between
    /// ([`REFIT_EVERY`]; 1 refits at every cutoff).
    pub refit_every: usize,
}

/// How many consecutive calibration cutoffs share one fitted alpha.
///
/// Calibration measures the errors of the model refitted on the prices before each of 80
/// cutoffs (60 more for auto's selection), and a full fit is 40-50 filter passes (the alpha
/// search). A deployed model is refitted periodically, not before every forecast, so the
/// errors of one whose alpha is refitted at every 10th cutoff and held in between are as true
/// an out-of-sample measure: at a held cutoff only the initial level is re-estimated (closed
/// form) and the filter rerun, three passes, on the prices before that cutoff. Alpha always
/// comes from an earlier cutoff, so no price after the cutoff is seen (tested). This is
/// statsforecast's `cross_validation(refit=k)`.
pub const REFIT_EVERY: usize = 10;

impl Default for Theta {
    fn default() -> Self {
        Self {
            max_window: 1000,
            trend_weight: THETA_TREND_WEIGHT,
            refit_every: REFIT_EVERY,
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
        let line = Self::line(y, trend_weight);
        let sse = |alpha: f64| Self::profile(y, alpha, line).0;
        // The grid in one pass, its 16 recursions side by side.
        let grid = Self::profile_many(y, std::array::from_fn::<f64, GRID, _>(at), line);
        let best_k = (0..GRID)
            .min_by(|&a, &b| grid[a].0.total_cmp(&grid[b].0))
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
        if grid[best_k].0 < sse(alpha) {
            alpha = at(best_k);
        }
        Self::with_alpha(y, alpha, trend_weight)
    }

    /// The fit to `y` with `alpha` held: the initial level that minimises the in-sample error
    /// for it (closed form, [`ThetaState::profile`]) and the filter's end state. Three passes
    /// over `y` where [`ThetaState::fit_with`] makes 40-50.
    pub fn with_alpha(y: &[f64], alpha: f64, trend_weight: f64) -> Self {
        let (_, initial_level) = Self::profile(y, alpha, Self::line(y, trend_weight));
        Self::end_state(y, initial_level, alpha, trend_weight)
    }

    /// [`ThetaState::filter_with`]'s state, bit for bit, without the in-sample errors (their
    /// one-step forecasts cost a `powi` each; the level recursion does not read them).
    fn end_state(y: &[f64], initial_level: f64, alpha: f64, trend_weight: f64) -> Self {
        let mut state = Self::start(y, initial_level, alpha, trend_weight);
        for &yi in &y[1..] {
            state.level = alpha * yi + (1.0 - alpha) * state.level;
        }
        state
    }

    /// Intercept and slope of the least-squares line through `y`, times `trend_weight`.
    fn line(y: &[f64], trend_weight: f64) -> (f64, f64) {
        let line = Self::start(y, 0.0, 0.5, trend_weight);
        (trend_weight * line.intercept, trend_weight * line.slope)
    }

    /// For one alpha: the least in-sample squared error over all initial levels, and that
    /// level. With the initial level `l0`, the step-`i` error is `a_i - (1 - alpha)^i * l0`
    /// where `a_i` is the error of the run from `l0 = 0`; least squares in `l0` follows.
    fn profile(y: &[f64], alpha: f64, line: (f64, f64)) -> (f64, f64) {
        let [(sse, l0)] = Self::profile_many(y, [alpha], line);
        (sse, l0)
    }

    /// [`ThetaState::profile`] of each of `alphas` in one pass over `y`: the lanes are
    /// independent recursions side by side (their dependency chains overlap, and the compiler
    /// vectorises them), each doing exactly the arithmetic it does alone.
    fn profile_many<const N: usize>(
        y: &[f64],
        alphas: [f64; N],
        (intercept, slope): (f64, f64),
    ) -> [(f64, f64); N] {
        let decay = alphas.map(|a| 1.0 - a);
        // The trend term of the one-step forecast, `pow_i * intercept + (1 - pow_i * decay) /
        // alpha * slope`, is `per_alpha + pow_i * discounted`: no division in the loop.
        let per_alpha = alphas.map(|a| slope / a);
        let discounted = std::array::from_fn::<f64, N, _>(|j| intercept - decay[j] * per_alpha[j]);
        let mut level = alphas.map(|a| a * y[0]);
        let (mut saa, mut sab, mut sbb) = ([0.0; N], [0.0; N], [0.0; N]);
        // decay^i: the weight of l0 in the level before step i, and the trend's discount.
        let mut pow_i = decay;
        for (i, &yi) in y.iter().enumerate().skip(1) {
            // Errors count from the fourth value on; the branch is the same for every lane.
            let counted = i >= 3;
            for j in 0..N {
                let mu = level[j] + (per_alpha[j] + pow_i[j] * discounted[j]);
                let a = yi - mu;
                if counted {
                    saa[j] += a * a;
                    sab[j] += a * pow_i[j];
                    sbb[j] += pow_i[j] * pow_i[j];
                }
                level[j] = alphas[j] * yi + decay[j] * level[j];
                pow_i[j] *= decay[j];
            }
        }
        std::array::from_fn(|j| {
            let (saa, sab, sbb) = (saa[j], sab[j], sbb[j]);
            let l0 = if sbb > 1e-300 { sab / sbb } else { y[0] };
            let sse = saa - if sbb > 1e-300 { sab * sab / sbb } else { 0.0 };
            let sse = if sse.is_finite() {
                sse.max(0.0)
            } else {
                f64::INFINITY
            };
            (sse, l0)
        })
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

    fn rolling_forecasts(
        &self,
        prices: &[f64],
        cutoffs: &[usize],
        max_horizon: usize,
    ) -> Vec<Option<Vec<f64>>> {
        let window = self.max_window.max(self.min_history());
        let mut held: Option<f64> = None;
        let mut held_for = 0;
        rolling_from_logs(
            prices,
            cutoffs,
            max_horizon,
            self.min_history(),
            |logs, reach| {
                let y = tail(logs, window);
                let state = match held {
                    Some(alpha) if held_for < self.refit_every => {
                        ThetaState::with_alpha(y, alpha, self.trend_weight)
                    }
                    _ => {
                        let state = ThetaState::fit_with(y, self.trend_weight);
                        (held, held_for) = (Some(state.alpha), 0);
                        state
                    }
                };
                held_for += 1;
                exp_path(state.forecast(reach), logs[logs.len() - 1])
            },
        )
    }

    fn forecast_key(&self) -> Option<String> {
        Some(format!("{self:?}"))
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

    /// BTC's closes with a deterministic wobble, long enough for 80 cutoffs in a full window.
    fn long_prices() -> Vec<f64> {
        (0..1400)
            .map(|i| {
                let t = i as f64;
                30_000.0 * (0.0004 * t + 0.15 * (t / 37.0).sin() + 0.03 * (t * 1.7).cos()).exp()
            })
            .collect()
    }

    #[test]
    fn refitting_at_every_cutoff_is_the_plain_refit() {
        let prices = long_prices();
        let cutoffs: Vec<usize> = (0..80).map(|k| 860 + 6 * k).collect();
        for model in [Theta::default(), Theta::ses()] {
            let every = Theta {
                refit_every: 1,
                ..model
            };
            let held = every.rolling_forecasts(&prices, &cutoffs, 30);
            let refitted = crate::forecast::refit_forecasts(&every, &prices, &cutoffs, 30);
            assert_eq!(held, refitted);
        }
    }

    #[test]
    fn a_held_alpha_sees_no_price_after_its_cutoff() {
        let prices = long_prices();
        let cutoffs: Vec<usize> = (0..80).map(|k| 860 + 6 * k).collect();
        let model = Theta::default();
        let held = model.rolling_forecasts(&prices, &cutoffs, 7);
        for (j, &cutoff) in cutoffs.iter().enumerate().step_by(7) {
            // Every price from the cutoff on replaced: the paths up to it cannot change.
            let mut changed = prices.clone();
            for p in &mut changed[cutoff..] {
                *p *= 3.0;
            }
            let again = model.rolling_forecasts(&changed, &cutoffs[..=j], 7);
            assert_eq!(again[..], held[..=j], "cutoff {cutoff}");
        }
        // Between refits alpha is held, and only the initial level and the filter rerun.
        let logs: Vec<f64> = prices.iter().map(|p| p.ln()).collect();
        let window = |c: usize| &logs[c.saturating_sub(1000)..c];
        let refit = ThetaState::fit(window(cutoffs[0]));
        let at_held = ThetaState::with_alpha(window(cutoffs[3]), refit.alpha, THETA_TREND_WEIGHT);
        let expected = exp_path(at_held.forecast(7), logs[cutoffs[3] - 1]);
        assert_eq!(held[3].as_deref(), Some(&expected[..]));
    }

    #[test]
    fn held_alphas_measure_errors_like_refitted_ones() {
        // Calibration's purpose: the errors (and so the bands) of held alphas are those of
        // refitted ones to within a few percent.
        use crate::forecast::intervals::{rolling_calibration, CalibrationSettings};
        let prices = long_prices();
        let settings = CalibrationSettings::default();
        for model in [Theta::default(), Theta::ses()] {
            let every = Theta {
                refit_every: 1,
                ..model
            };
            let held = rolling_calibration(&model, &prices, 30, &settings).unwrap();
            let refitted = rolling_calibration(&every, &prices, 30, &settings).unwrap();
            for h in [1, 7, 30] {
                let (a, b) = (held.half_width(h, 0.8), refitted.half_width(h, 0.8));
                assert!((a / b - 1.0).abs() < 0.05, "{h} days: {a} vs {b}");
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
