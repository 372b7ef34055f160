//! Hyper-parameters of the LSTM (SPEC section 3 defaults).

use serde::{Deserialize, Serialize};

/// Everything that shapes an LSTM and its training. `Default` is SPEC section 3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LstmConfig {
    /// Window (sequence) length fed to the network.
    pub sequence_length: usize,
    /// Hidden units per layer.
    pub hidden_size: usize,
    /// Stacked LSTM layers.
    pub num_layers: usize,
    /// Dropout between LSTM layers (training only).
    pub dropout: f32,
    /// Adam learning rate.
    pub learning_rate: f32,
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Share of the windows (the chronological tail) held out for validation.
    pub validation_fraction: f32,
    /// Seed for initialisation, dropout and shuffling: same seed, same model.
    pub seed: u64,
    /// Worker threads for one training; 0 picks by measurement (see the README).
    pub threads: usize,
}

impl Default for LstmConfig {
    fn default() -> Self {
        Self {
            sequence_length: 60,
            hidden_size: 64,
            num_layers: 2,
            dropout: 0.2,
            learning_rate: 0.001,
            epochs: 50,
            batch_size: 32,
            validation_fraction: 0.15,
            seed: 42,
            threads: 0,
        }
    }
}
