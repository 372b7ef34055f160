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
    /// What the network reads and predicts. A sidecar written before this field existed holds
    /// a level model, hence the serde default.
    #[serde(default = "Target::levels")]
    pub target: Target,
    /// Early stopping: training ends once this many epochs in a row have not lowered the
    /// validation loss (0: run every epoch). The best epoch's weights are returned either way.
    #[serde(default)]
    pub patience: usize,
}

/// What an LSTM is trained on (SPEC section 3 allows both; the sidecar records which).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Daily log-returns divided by a robust scale of the training returns; the network
    /// predicts the next one. A price outside the training range means nothing special.
    #[default]
    LogReturns,
    /// Price levels min-max scaled over the training series: the old service's model, kept
    /// so that its artefacts load and answer as before.
    Levels,
}

impl Target {
    /// The target of a config that does not name one (format 1 sidecars).
    pub fn levels() -> Self {
        Target::Levels
    }
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
            validation_fraction: 0.25,
            seed: 42,
            threads: 0,
            target: Target::LogReturns,
            patience: 8,
        }
    }
}
