//! Exponential smoothing (AutoETS) on log prices, by `augurs-ets`, a port of statsforecast's
//! ETS.
//!
//! The search is over additive-error, non-seasonal models (ANN, AAN, AAdN) chosen by AICc:
//! log prices can be negative (DOGE at 0.1 USDT), which rules out multiplicative errors,
//! and daily crypto prices have no reliable season. Fitting uses at most the last
//! `max_window` prices, which keeps a fit around a millisecond and lets the model follow
//! the current regime. If augurs cannot fit (a constant series has nothing to estimate),
//! the model degrades to the naive forecast and says so in its label.

use augurs_core::{Fit, Predict};
use augurs_ets::AutoETS;

use super::{exp_path, log_prices, tail, FittedForecaster, ForecastError, Forecaster};

/// AutoETS over ANN, AAN and AAdN on the last `max_window` log prices.
#[derive(Clone, Copy, Debug)]
pub struct Ets {
    /// Most recent prices used for fitting.
    pub max_window: usize,
}

impl Default for Ets {
    fn default() -> Self {
        Self { max_window: 365 }
    }
}

/// A fitted [`Ets`]: the selected model, or the naive fallback.
pub struct FittedEts {
    model: Option<augurs_ets::FittedAutoETS>,
    last_log: f64,
}

impl std::fmt::Debug for FittedEts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FittedEts")
            .field("model", &self.label(1))
            .finish()
    }
}

impl Forecaster for Ets {
    fn name(&self) -> &'static str {
        "ets"
    }

    fn min_history(&self) -> usize {
        // AAdN has five parameters; augurs needs more points than that to compare models.
        10
    }

    fn fit(&self, prices: &[f64]) -> Result<Box<dyn FittedForecaster>, ForecastError> {
        let logs = log_prices(prices, self.min_history())?;
        let y = tail(&logs, self.max_window.max(self.min_history()));
        let model = AutoETS::new(1, "AZN")
            .ok()
            .and_then(|auto| auto.fit(y).ok());
        Ok(Box::new(FittedEts {
            model,
            last_log: logs[logs.len() - 1],
        }))
    }

    fn forecast_key(&self) -> Option<String> {
        Some(format!("{self:?}"))
    }
}

impl FittedForecaster for FittedEts {
    fn predict(&self, horizon: usize) -> Vec<f64> {
        if horizon == 0 {
            return Vec::new();
        }
        let point = self
            .model
            .as_ref()
            .and_then(|m| m.predict(horizon, None).ok())
            .map(|f| f.point)
            .filter(|p| p.len() == horizon && p.iter().all(|v| v.is_finite()))
            .unwrap_or_else(|| vec![self.last_log; horizon]);
        exp_path(point, self.last_log)
    }

    fn label(&self, _horizon: usize) -> String {
        match &self.model {
            Some(m) => format!("ets({})", m.model().model_type()),
            None => "ets(naive fallback)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::intervals::tests::{fixture, numbers};

    #[test]
    fn forecast_matches_statsforecast_auto_ets_on_btc() {
        let f = fixture();
        let prices: Vec<f64> = numbers(&f["btc_close_last_200"]);
        let expected: Vec<f64> = numbers(&f["ets_azn"]["forecast"]);
        let fitted = Ets::default().fit(&prices).unwrap();
        assert_eq!(fitted.label(1), "ets(ANN)");
        let got = fitted.predict(expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert!((g / e - 1.0).abs() < 1e-3, "{got:?} vs {expected:?}");
        }
    }

    #[test]
    fn a_constant_series_gets_a_finite_flat_forecast() {
        let path = Ets::default().fit(&[7.0; 60]).unwrap().predict(5);
        for p in path {
            assert!((p - 7.0).abs() < 1e-6, "{p}");
        }
    }
}
