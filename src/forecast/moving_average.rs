//! Moving average: the geometric mean of the last `window` prices, flat for every horizon.
//!
//! The original service fell back to it for short histories. It lags a trending price, so
//! it is kept as a baseline and an ensemble candidate rather than recommended on its own.

use super::{
    exp_path, log_prices, rolling_from_logs, tail, FittedForecaster, ForecastError, Forecaster,
};

/// Mean of the last `window` log prices, carried forward.
#[derive(Clone, Copy, Debug)]
pub struct MovingAverage {
    /// How many of the latest prices are averaged (fewer when the history is shorter).
    pub window: usize,
}

impl Default for MovingAverage {
    fn default() -> Self {
        Self { window: 7 }
    }
}

/// A fitted [`MovingAverage`]: the averaged log price.
#[derive(Clone, Copy, Debug)]
pub struct FittedMovingAverage {
    level: f64,
}

impl Forecaster for MovingAverage {
    fn name(&self) -> &'static str {
        "moving_average"
    }

    fn min_history(&self) -> usize {
        1
    }

    fn fit(&self, prices: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastError> {
        let logs = log_prices(prices, self.min_history())?;
        Ok(Box::new(self.level_of(&logs)))
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
            |logs, reach| self.level_of(logs).predict(reach),
        )
    }

    fn forecast_key(&self) -> Option<String> {
        Some(format!("moving_average({})", self.window))
    }
}

impl MovingAverage {
    /// The mean of the last `window` of at least one log price.
    fn level_of(&self, logs: &[f64]) -> FittedMovingAverage {
        let recent = tail(logs, self.window.max(1));
        let level = recent.iter().sum::<f64>() / recent.len() as f64;
        FittedMovingAverage { level }
    }
}

impl FittedForecaster for FittedMovingAverage {
    fn predict(&self, horizon: usize) -> Vec<f64> {
        exp_path(std::iter::repeat_n(self.level, horizon), self.level)
    }

    fn label(&self, _horizon: usize) -> String {
        "moving_average".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forecast_is_the_geometric_mean_of_the_window() {
        let model = MovingAverage { window: 2 };
        let path = model.fit(&[100.0, 2.0, 8.0]).unwrap().predict(2);
        assert!((path[0] - 4.0).abs() < 1e-12);
        assert!((path[1] - 4.0).abs() < 1e-12);
    }
}
