//! The LSTM of [`super`] behind the [`Forecaster`] trait.
//!
//! Fitting trains a network (seconds, not microseconds), so the conformal errors come from
//! the walk-forward validation origins measured during training rather than from refitting
//! at many cutoffs.

use std::sync::Arc;

use super::{self as lstm, LstmConfig, Precision, TrainedLstm};
use crate::forecast::{
    intervals::Calibration, log_prices, tail, FittedForecaster, ForecastError, Forecaster,
};

/// Trains an LSTM with `config` on (the most recent part of) the given history.
#[derive(Clone, Debug)]
pub struct LstmForecaster {
    /// Hyper-parameters (SPEC section 3, single-threaded, by default).
    pub config: LstmConfig,
    /// Train on at most this many latest prices (`None`: all of them).
    pub max_history: Option<usize>,
}

impl Default for LstmForecaster {
    /// SPEC section 3's network trained on the last 1,000 prices with one thread.
    ///
    /// 1,000 prices is what a client of `/predict` typically sends (and what the predecessor
    /// was benchmarked on); training on a coin's full 3,000-day history would triple the cost
    /// of every backtest fold. One thread, because the backtester already runs one job per
    /// core.
    fn default() -> Self {
        Self {
            config: LstmConfig {
                threads: 1,
                ..LstmConfig::default()
            },
            max_history: Some(1000),
        }
    }
}

/// A trained LSTM (trained here, or the registry's cached one) and the history it forecasts
/// from, at an arithmetic precision.
///
/// A served forecast ([`FittedLstm::serving`]) refuses a path that is not finite (the client
/// gets a 422 that says so); one fitted by [`LstmForecaster`] for a backtest fold answers naive
/// at such a day instead, so that one bad fold does not stop a run of a thousand.
pub struct FittedLstm {
    model: Arc<TrainedLstm>,
    history: Arc<[f64]>,
    precision: Precision,
    strict: bool,
}

impl FittedLstm {
    /// The registry's `model` forecasting after `history` at `precision`, for a client.
    pub fn serving(model: Arc<TrainedLstm>, history: Arc<[f64]>, precision: Precision) -> Self {
        Self {
            model,
            history,
            precision,
            strict: true,
        }
    }

    /// The network's path, unchecked.
    fn network_path(&self, horizon: usize) -> Result<Vec<f64>, lstm::LstmError> {
        self.model
            .forecast_with(&self.history, horizon, self.precision)
    }
}

impl Forecaster for LstmForecaster {
    fn name(&self) -> &'static str {
        "lstm"
    }

    fn min_history(&self) -> usize {
        // One window plus the value it predicts; the engine may ask for more and say so.
        self.config.sequence_length + 1
    }

    fn fit(&self, prices: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastError> {
        log_prices(prices, self.min_history())?;
        let prices = match self.max_history {
            Some(max) => tail(prices, max.max(self.min_history())),
            None => prices,
        };
        let model = lstm::train(&self.config, prices, &mut |_| {})?;
        Ok(Box::new(FittedLstm {
            model: Arc::new(model),
            history: prices.into(),
            precision: Precision::F32,
            strict: false,
        }))
    }
}

impl FittedForecaster for FittedLstm {
    fn predict(&self, horizon: usize) -> Vec<f64> {
        let last = self.history.last().copied().unwrap_or(1.0);
        match self.network_path(horizon) {
            Ok(path) if path.len() == horizon => path
                .into_iter()
                .map(|p| if p.is_finite() && p > 0.0 { p } else { last })
                .collect(),
            // The engine guarantees neither on degenerate input; naive is the safe answer.
            _ => vec![last; horizon],
        }
    }

    fn label(&self, horizon: usize) -> String {
        self.model.label(horizon)
    }

    fn calibration(&self, horizon: usize) -> Option<Calibration> {
        Some(self.model.calibration(&self.history, horizon))
    }

    /// A served forecast's path as the network gives it: a value that is not finite is an
    /// error, not replaced.
    fn try_predict(&self, horizon: usize) -> Result<Vec<f64>, ForecastError> {
        if !self.strict {
            return Ok(self.predict(horizon));
        }
        let path = self.network_path(horizon)?;
        if path.iter().all(|p| p.is_finite()) {
            Ok(path)
        } else {
            Err(ForecastError::NotFinite)
        }
    }

    fn expected_mape(&self, horizon: usize, calibration: &Calibration) -> f64 {
        self.model.expected_mape(horizon, calibration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::intervals::forecast_with_intervals;

    #[test]
    fn a_trained_lstm_gives_a_banded_path_of_the_requested_length() {
        let prices: Vec<f64> = (0..300)
            .map(|i| 100.0 * (1.0 + 0.1 * (i as f64 / 9.0).sin()))
            .collect();
        let model = LstmForecaster {
            config: LstmConfig {
                epochs: 3,
                ..LstmConfig::default()
            },
            max_history: None,
        };
        let f = forecast_with_intervals(&model, &prices, 7, 0.8).unwrap();
        assert_eq!(f.path.len(), 7);
        for p in &f.path {
            assert!(p.price.is_finite() && p.lower <= p.price && p.price <= p.upper);
        }
    }
}
