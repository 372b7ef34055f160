//! A small, quickly trained LSTM for the store tests: 200 prices of a sine, 1 epoch, 8 units.

use coinsphere_ml::forecast::lstm::{self, LstmConfig, TrainedLstm};

/// A model whose weights differ with `seed`.
pub fn tiny_model(seed: u64) -> TrainedLstm {
    let prices: Vec<f64> = (0..200)
        .map(|i| 100.0 + 10.0 * (f64::from(i) / 7.0).sin())
        .collect();
    let config = LstmConfig {
        epochs: 1,
        hidden_size: 8,
        threads: 1,
        seed,
        ..LstmConfig::default()
    };
    lstm::train(&config, &prices, &mut |_| {}).unwrap()
}
