//! The LSTM forecaster of SPEC section 3: a fused CPU kernel with a hand-written backward pass.
//!
//! [`train`] turns a price series into a [`TrainedLstm`]; only a trained model can forecast.

mod config;

pub use config::LstmConfig;

use serde::{Deserialize, Serialize};

/// Why training, forecasting or loading failed.
#[derive(Debug, thiserror::Error)]
pub enum LstmError {
    /// Too few prices to build one training window plus a validation tail.
    #[error("need at least {needed} prices to train, got {got}")]
    NotEnoughPrices { needed: usize, got: usize },
    /// The forecast history is shorter than the window.
    #[error("need at least {needed} prices to forecast, got {got}")]
    HistoryTooShort { needed: usize, got: usize },
    /// Training diverged (a loss or weight became NaN or infinite); nothing is returned.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// Weights or metadata could not be decoded or do not match the config.
    #[error("invalid model artefact: {0}")]
    InvalidArtefact(String),
}

/// Min-max scaling fitted on the training series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MinMaxScaler {
    pub min: f64,
    pub max: f64,
}

/// What a training run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub n_prices: usize,
    pub n_train_windows: usize,
    pub n_validation_windows: usize,
    pub epochs_run: usize,
    /// Mean training MSE (scaled units) of the last epoch.
    pub final_train_loss: f64,
    /// One-step validation MSE (scaled units) of the returned weights.
    pub validation_loss: f64,
    /// Mean absolute percentage error (0.05 = 5%) of recursive forecasts from the validation
    /// tail, index `h - 1` for horizon `h`, for every horizon the tail could measure.
    pub validation_mape_by_horizon: Vec<f64>,
    /// |ln(forecast / actual)| of every recursive validation forecast, index `h - 1` for
    /// horizon `h` (same horizons as above): the conformal residuals behind intervals.
    pub validation_abs_log_errors_by_horizon: Vec<Vec<f64>>,
    pub train_seconds: f64,
}

/// A fitted LSTM: weights, scaler, config and training summary.
#[derive(Clone, Debug)]
pub struct TrainedLstm {
    _private: (),
}

/// Progress of one epoch, for progress bars and logs.
#[derive(Clone, Copy, Debug)]
pub struct EpochProgress {
    pub epoch: usize,
    pub epochs: usize,
    pub train_loss: f64,
    pub validation_loss: f64,
}

/// Trains an LSTM on `prices` (oldest first, finite, > 0).
///
/// # Errors
/// [`LstmError::NotEnoughPrices`] for too short a series, [`LstmError::Diverged`] if the
/// numbers blow up.
pub fn train(
    config: &LstmConfig,
    prices: &[f64],
    progress: &mut dyn FnMut(EpochProgress),
) -> Result<TrainedLstm, LstmError> {
    let _ = (config, prices, progress);
    todo!("fused LSTM training (issue 2)")
}

impl TrainedLstm {
    pub fn config(&self) -> &LstmConfig {
        todo!()
    }
    pub fn scaler(&self) -> MinMaxScaler {
        todo!()
    }
    pub fn summary(&self) -> &TrainingSummary {
        todo!()
    }

    /// Recursive forecast: the path of the next `horizon` prices after `history`.
    ///
    /// # Errors
    /// [`LstmError::HistoryTooShort`] when `history` is shorter than the window.
    pub fn forecast(&self, history: &[f64], horizon: usize) -> Result<Vec<f64>, LstmError> {
        let _ = (history, horizon);
        todo!()
    }

    /// Validation MAPE at `horizon`; beyond the measured horizons it is extrapolated
    /// from the last measured one by sqrt(h) (random-walk error growth).
    pub fn validation_mape(&self, horizon: usize) -> f64 {
        let _ = horizon;
        todo!()
    }

    /// The weights as safetensors with PyTorch's parameter names.
    pub fn weights_safetensors(&self) -> Vec<u8> {
        todo!()
    }

    /// The JSON-able metadata (config, scaler, summary) that goes with the weights.
    pub fn metadata(&self) -> LstmMetadata {
        todo!()
    }

    /// Rebuilds a model from safetensors weights and its metadata.
    ///
    /// # Errors
    /// [`LstmError::InvalidArtefact`] when names, shapes or the config disagree.
    pub fn from_parts(weights: &[u8], metadata: LstmMetadata) -> Result<Self, LstmError> {
        let _ = (weights, metadata);
        todo!()
    }
}

/// The model's sidecar content (the store adds format version and checksum around it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LstmMetadata {
    pub config: LstmConfig,
    pub scaler: MinMaxScaler,
    pub summary: TrainingSummary,
}
