//! The standard theta method (Assimakopoulos & Nikolopoulos 2000) in the state-space form of
//! Fiorucci et al. (2016) that statsforecast calls `Theta` / STM: simple exponential
//! smoothing plus half the slope of the linear trend (theta = 2), applied to log prices.
//!
//! The smoothing weight `alpha` (in [0.1, 0.99]) and the initial level are chosen by
//! Nelder-Mead to minimise the in-sample one-step squared error, as statsforecast does.
//! `bench/stats_reference.py` produced the reference values the tests compare against.

use super::{exp_path, log_prices, tail, FittedForecaster, ForecastError, Forecaster};

/// The standard theta model, fitted on at most the last `max_window` log prices.
#[derive(Clone, Copy, Debug)]
pub struct Theta {
    /// Most recent prices used for fitting; bounds the fit time on long histories.
    pub max_window: usize,
}

impl Default for Theta {
    fn default() -> Self {
        Self { max_window: 1000 }
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
}

/// theta = 2 for the standard method; `1 - 1/theta` weighs the trend line.
const TREND_WEIGHT: f64 = 0.5;
const ALPHA_BOUNDS: (f64, f64) = (0.1, 0.99);

impl ThetaState {
    /// Runs the filter over `y` with the given parameters; also returns the in-sample
    /// one-step squared error summed from the fourth value on (statsforecast skips three).
    pub fn filter(y: &[f64], initial_level: f64, alpha: f64) -> (Self, f64) {
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
        let mut state = Self {
            alpha,
            initial_level,
            intercept,
            slope,
            level: alpha * y[0] + (1.0 - alpha) * initial_level,
            n,
        };
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

    /// The one-step forecast made at step `i` from the level before it.
    fn mu(&self, i: usize) -> f64 {
        let decay = 1.0 - self.alpha;
        let pow_i = decay.powi(i.min(i32::MAX as usize) as i32);
        self.level
            + TREND_WEIGHT
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

    /// Fits alpha and the initial level to `y` by Nelder-Mead from statsforecast's start
    /// (alpha 0.5, level y[0] / 2).
    pub fn fit(y: &[f64]) -> Self {
        let objective = |p: &[f64; 2]| {
            if !(ALPHA_BOUNDS.0..=ALPHA_BOUNDS.1).contains(&p[1]) {
                return f64::INFINITY;
            }
            let sse = Self::filter(y, p[0], p[1]).1;
            if sse.is_finite() {
                sse
            } else {
                f64::INFINITY
            }
        };
        let start = [y[0] / 2.0, 0.5];
        let mut best = nelder_mead(&objective, start, [y[0].abs().max(1.0) * 0.1, 0.1]);
        // A restart from the optimum escapes Nelder-Mead's occasional premature collapse.
        best = nelder_mead(&objective, best, [best[0].abs().max(1.0) * 0.01, 0.05]);
        Self::filter(y, best[0], best[1]).0
    }
}

/// Minimises `f` over two parameters with the Nelder-Mead simplex method.
pub(crate) fn nelder_mead(f: &dyn Fn(&[f64; 2]) -> f64, x0: [f64; 2], step: [f64; 2]) -> [f64; 2] {
    let mut simplex = [x0, [x0[0] + step[0], x0[1]], [x0[0], x0[1] + step[1]]];
    let mut values = simplex.map(|x| f(&x));
    for _ in 0..1000 {
        let mut order = [0, 1, 2];
        order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
        simplex = order.map(|i| simplex[i]);
        values = order.map(|i| values[i]);
        let spread = (values[2] - values[0]).abs();
        if spread <= 1e-12 * (values[0].abs() + 1e-12) {
            break;
        }
        let centroid = [
            (simplex[0][0] + simplex[1][0]) / 2.0,
            (simplex[0][1] + simplex[1][1]) / 2.0,
        ];
        let towards = |t: f64| {
            [
                centroid[0] + t * (simplex[2][0] - centroid[0]),
                centroid[1] + t * (simplex[2][1] - centroid[1]),
            ]
        };
        let reflected = towards(-1.0);
        let fr = f(&reflected);
        if fr < values[0] {
            let expanded = towards(-2.0);
            let fe = f(&expanded);
            (simplex[2], values[2]) = if fe < fr {
                (expanded, fe)
            } else {
                (reflected, fr)
            };
        } else if fr < values[1] {
            (simplex[2], values[2]) = (reflected, fr);
        } else {
            let contracted = if fr < values[2] {
                towards(-0.5)
            } else {
                towards(0.5)
            };
            let fc = f(&contracted);
            if fc < values[2].min(fr) {
                (simplex[2], values[2]) = (contracted, fc);
            } else {
                for i in 1..3 {
                    simplex[i] = [
                        (simplex[0][0] + simplex[i][0]) / 2.0,
                        (simplex[0][1] + simplex[i][1]) / 2.0,
                    ];
                    values[i] = f(&simplex[i]);
                }
            }
        }
    }
    let best = (0..3)
        .min_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap_or(0);
    simplex[best]
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
        "theta"
    }

    fn min_history(&self) -> usize {
        // statsforecast refuses n <= 3; four leaves one residual after its burn-in of three.
        5
    }

    fn fit(&self, prices: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastError> {
        let logs = log_prices(prices, self.min_history())?;
        let y = tail(&logs, self.max_window.max(self.min_history()));
        Ok(Box::new(FittedTheta {
            state: ThetaState::fit(y),
            last_log: logs[logs.len() - 1],
        }))
    }
}

impl FittedForecaster for FittedTheta {
    fn predict(&self, horizon: usize) -> Vec<f64> {
        exp_path(self.state.forecast(horizon), self.last_log)
    }

    fn label(&self, _horizon: usize) -> String {
        "theta".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::intervals::tests::fixture;

    #[test]
    fn fixed_parameters_reproduce_statsforecast_exactly() {
        let f = fixture();
        let y: Vec<f64> = f["btc_close_last_200"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap().ln())
            .collect();
        let t = &f["theta_fixed"];
        let state = ThetaState::filter(
            &y,
            t["initial_smoothed"].as_f64().unwrap(),
            t["alpha"].as_f64().unwrap(),
        )
        .0;
        let expected: Vec<f64> = t["log_forecast"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let got = state.forecast(expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() < 1e-9, "{got:?} vs {expected:?}");
        }
    }

    #[test]
    fn optimised_forecast_matches_statsforecast_on_btc() {
        let f = fixture();
        let prices: Vec<f64> = f["btc_close_last_200"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let t = &f["theta_optimised"];
        let fitted = Theta::default().fit(&prices).unwrap();
        let expected: Vec<f64> = t["forecast"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let got = fitted.predict(expected.len());
        for (g, e) in got.iter().zip(&expected) {
            // Two Nelder-Mead implementations stop at slightly different points of a flat
            // optimum; 0.1% of the price is far below a day's move.
            assert!((g / e - 1.0).abs() < 1e-3, "{got:?} vs {expected:?}");
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
