//! The naive forecast: every future price equals the last one.
//!
//! On daily crypto prices it is the benchmark to beat (MASE divides by its error), and the
//! fallback that other models degrade to when their numbers go wrong.

use super::{log_prices, rolling_from_logs, FittedForecaster, ForecastError, Forecaster};

/// Last value carried forward (a random walk without drift).
#[derive(Clone, Copy, Debug, Default)]
pub struct Naive;

/// A fitted [`Naive`]: the last price.
#[derive(Clone, Copy, Debug)]
pub struct FittedNaive {
    last: f64,
}

impl Forecaster for Naive {
    fn name(&self) -> &'static str {
        "naive"
    }

    fn min_history(&self) -> usize {
        1
    }

    fn fit(&self, prices: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastError> {
        log_prices(prices, self.min_history())?;
        // The price itself, not exp(ln(price)): naive must reproduce it bit for bit.
        let last = prices[prices.len() - 1];
        Ok(Box::new(FittedNaive { last }))
    }

    fn rolling_forecasts(
        &self,
        prices: &[f64],
        cutoffs: &[usize],
        max_horizon: usize,
    ) -> Vec<Option<Vec<f64>>> {
        rolling_from_logs(prices, cutoffs, max_horizon, 1, |logs, reach| {
            vec![prices[logs.len() - 1]; reach]
        })
    }

    fn forecast_key(&self) -> Option<String> {
        Some("naive".into())
    }
}

impl FittedForecaster for FittedNaive {
    fn predict(&self, horizon: usize) -> Vec<f64> {
        vec![self.last; horizon]
    }

    fn label(&self, _horizon: usize) -> String {
        "naive".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_repeats_the_last_price() {
        let fitted = Naive.fit(&[3.0, 1.0, 2.5]).unwrap();
        assert_eq!(fitted.predict(3), vec![2.5; 3]);
    }

    #[test]
    fn an_empty_history_is_not_enough() {
        assert!(matches!(
            Naive.fit(&[]),
            Err(ForecastError::NotEnoughPrices { needed: 1, got: 0 })
        ));
    }
}
