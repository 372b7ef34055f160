//! Random walk with drift, in log prices: the path grows at the history's average daily
//! log return, `(ln p_n - ln p_1) / (n - 1)`.
//!
//! This is statsforecast's `RandomWalkWithDrift` applied to `ln(prices)` and exponentiated
//! (checked in the tests), i.e. a constant growth rate rather than a constant dollar step.

use super::{exp_path, log_prices, rolling_from_logs, FittedForecaster, ForecastError, Forecaster};

/// Random walk with drift estimated from the whole given history.
#[derive(Clone, Copy, Debug, Default)]
pub struct Drift;

/// A fitted [`Drift`]: the last log price and the daily log drift.
#[derive(Clone, Copy, Debug)]
pub struct FittedDrift {
    last_log: f64,
    slope: f64,
}

impl Forecaster for Drift {
    fn name(&self) -> &'static str {
        "drift"
    }

    fn min_history(&self) -> usize {
        2
    }

    fn fit(&self, prices: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastError> {
        let logs = log_prices(prices, self.min_history())?;
        Ok(Box::new(FittedDrift::of(&logs)))
    }

    fn rolling_forecasts(
        &self,
        prices: &[f64],
        cutoffs: &[usize],
        max_horizon: usize,
    ) -> Vec<Option<Vec<f64>>> {
        rolling_from_logs(
            prices,
            cutoffs,
            max_horizon,
            self.min_history(),
            |logs, reach| FittedDrift::of(logs).predict(reach),
        )
    }

    fn forecast_key(&self) -> Option<String> {
        Some("drift".into())
    }
}

impl FittedDrift {
    /// The drift of at least two log prices.
    fn of(logs: &[f64]) -> Self {
        let n = logs.len();
        let last_log = logs[n - 1];
        let slope = (last_log - logs[0]) / (n - 1) as f64;
        Self { last_log, slope }
    }
}

impl FittedForecaster for FittedDrift {
    fn predict(&self, horizon: usize) -> Vec<f64> {
        exp_path(
            (1..=horizon).map(|h| self.last_log + self.slope * h as f64),
            self.last_log,
        )
    }

    fn label(&self, _horizon: usize) -> String {
        "drift".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_geometric_series_continues_at_its_growth_rate() {
        let prices: Vec<f64> = (0..10).map(|i| 100.0 * 1.01_f64.powi(i)).collect();
        let path = Drift.fit(&prices).unwrap().predict(2);
        assert!((path[0] - 100.0 * 1.01_f64.powi(10)).abs() < 1e-9);
        assert!((path[1] - 100.0 * 1.01_f64.powi(11)).abs() < 1e-9);
    }
}
