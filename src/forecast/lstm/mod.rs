//! The LSTM forecaster of SPEC section 3: a fused CPU kernel with a hand-written backward pass.
//!
//! [`train`] turns a price series into a [`TrainedLstm`]; only a trained model can forecast.
//!
//! Layout: `config` (hyper-parameters), `network` (parameter layout, forward and backward
//! passes), `kernel` (GEMM wrapper and vectorised gate non-linearities), `train` (scaling, Adam,
//! the epoch loop, validation), `artefact` (safetensors with PyTorch's names).

mod aligned;
mod artefact;
mod config;
mod finetune;
mod infer;
mod kernel;
mod network;
mod quant;
mod train;

pub use config::LstmConfig;
pub use finetune::fine_tune;

use network::{Layout, Predictor};

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

/// How far outside its training range, in widths of that range, a model's input may go before
/// [`TrainedLstm::covers`] says the model does not cover it.
pub const RANGE_TOLERANCE: f64 = 0.5;

/// Min-max scaling fitted on the training series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MinMaxScaler {
    /// Price that maps to 0.
    pub min: f64,
    /// Price that maps to 1 (always above `min`: a constant series gets a sliver of range).
    pub max: f64,
}

/// What a training run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Prices the model was trained on (training and validation part).
    pub n_prices: usize,
    /// Windows used for gradient steps.
    pub n_train_windows: usize,
    /// Windows of the chronological validation tail.
    pub n_validation_windows: usize,
    /// Epochs trained.
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
    /// Wall-clock seconds of the training run (including validation).
    pub train_seconds: f64,
}

/// A fitted LSTM: weights, scaler, config and training summary.
#[derive(Clone, Debug)]
pub struct TrainedLstm {
    config: LstmConfig,
    layout: Layout,
    params: Vec<f32>,
    /// `params` packed for the single-window kernels, each on its first use.
    kernels: Kernels,
    scaler: MinMaxScaler,
    summary: TrainingSummary,
}

/// The single-window inference copies of a model's weights, each built on its first forecast
/// at that precision, so a server at int16 never holds the f32 copy (~200 KB per model).
#[derive(Clone, Debug, Default)]
struct Kernels {
    /// f32, packed (`None` for hidden sizes the packed kernels do not cover; those use the
    /// batch predictor).
    packed: std::sync::OnceLock<Option<infer::Packed>>,
    /// Int16 (`None` where the CPU or the shape does not allow it).
    quantized: std::sync::OnceLock<Option<quant::Quantized>>,
}

/// Arithmetic of the cached-forecast path (see `quant` and README "Inference precision").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Precision {
    /// f32 throughout, as PyTorch computes it (the PyTorch-fixture test holds it to 1e-4).
    F32,
    /// Int16 gate matrices and hidden states on AVX-512 VNNI, f32 elsewhere: ~3x faster, the
    /// forecast moves by ~1e-4 relative. Falls back to f32 where the CPU lacks VNNI.
    #[default]
    Int16,
}

impl Precision {
    /// What a forecast at this precision runs on this CPU, e.g. `int16-avx512vnni`.
    pub fn kernel(self) -> &'static str {
        match self {
            Precision::Int16 if quant::supported() => "int16-avx512vnni",
            _ => infer::f32_kernel(),
        }
    }
}

/// Progress of one epoch, for progress bars and logs.
#[derive(Clone, Copy, Debug)]
pub struct EpochProgress {
    /// Epoch just finished, from 1.
    pub epoch: usize,
    /// Epochs planned.
    pub epochs: usize,
    /// Mean training MSE (scaled units) of the epoch.
    pub train_loss: f64,
    /// One-step validation MSE (scaled units) after the epoch.
    pub validation_loss: f64,
}

/// Trains an LSTM on `prices` (oldest first, finite, > 0).
///
/// Windows `prices[i..i + L]` predict `prices[i + L]` (scaled); the last `validation_fraction`
/// of the windows is held out, batches run in chronological order (no shuffling), and the
/// returned weights are those of the epoch with the lowest validation loss (see
/// `train::RESTORE_BEST_WEIGHTS`). Same config and prices, same model.
///
/// # Errors
/// [`LstmError::NotEnoughPrices`] for too short a series, [`LstmError::Diverged`] if the
/// numbers blow up.
pub fn train(
    config: &LstmConfig,
    prices: &[f64],
    progress: &mut dyn FnMut(EpochProgress),
) -> Result<TrainedLstm, LstmError> {
    validate_config(config).map_err(LstmError::Diverged)?;
    let layout = Layout {
        hidden: config.hidden_size,
        layers: config.num_layers,
    };
    let (data, scaler) = train::prepare(config, prices)?;
    let fitted = train::fit(config, layout, prices, &data, scaler, progress)?;
    Ok(TrainedLstm {
        config: config.clone(),
        layout,
        kernels: Kernels::default(),
        params: fitted.params,
        scaler,
        summary: fitted.summary,
    })
}

/// Rejects configs no network can be built from.
fn validate_config(config: &LstmConfig) -> Result<(), String> {
    if config.sequence_length == 0 || config.hidden_size == 0 || config.num_layers == 0 {
        return Err(format!(
            "config needs sequence_length, hidden_size and num_layers > 0, got {}, {}, {}",
            config.sequence_length, config.hidden_size, config.num_layers
        ));
    }
    if !(0.0..1.0).contains(&config.dropout) {
        return Err(format!("dropout must be in [0, 1), got {}", config.dropout));
    }
    Ok(())
}

impl TrainedLstm {
    /// The hyper-parameters the model was trained with.
    pub fn config(&self) -> &LstmConfig {
        &self.config
    }

    /// The scaler fitted on the training series.
    pub fn scaler(&self) -> MinMaxScaler {
        self.scaler
    }

    /// What training measured.
    pub fn summary(&self) -> &TrainingSummary {
        &self.summary
    }

    /// Whether the model may be trusted on `history`: every price of the window it reads (the
    /// last `sequence_length`) lies within the training range widened by
    /// [`RANGE_TOLERANCE`] of its width on each side. A level model fed prices far outside
    /// what it saw (a model trained on made-up prices, then asked about the real coin)
    /// extrapolates wildly and its validation error says nothing about it.
    pub fn covers(&self, history: &[f64]) -> bool {
        let width = self.scaler.max - self.scaler.min;
        let (low, high) = (
            self.scaler.min - RANGE_TOLERANCE * width,
            self.scaler.max + RANGE_TOLERANCE * width,
        );
        let window = &history[history.len().saturating_sub(self.config.sequence_length)..];
        window.iter().all(|&p| p >= low && p <= high)
    }

    /// Recursive forecast: the path of the next `horizon` prices after `history`.
    ///
    /// # Errors
    /// [`LstmError::HistoryTooShort`] when `history` is shorter than the window.
    /// Uses the last `sequence_length` prices; each predicted (scaled) value is appended to the
    /// window for the next step. Prices are floored at a tiny positive value so that a wild
    /// extrapolation never yields a non-positive price.
    pub fn forecast(&self, history: &[f64], horizon: usize) -> Result<Vec<f64>, LstmError> {
        self.forecast_with(history, horizon, Precision::F32)
    }

    /// [`Self::forecast`] at `precision` ([`Precision::Int16`] is f32 where the CPU or the
    /// model's shape does not allow it).
    ///
    /// # Errors
    /// As [`Self::forecast`].
    pub fn forecast_with(
        &self,
        history: &[f64],
        horizon: usize,
        precision: Precision,
    ) -> Result<Vec<f64>, LstmError> {
        let steps = self.config.sequence_length;
        if history.len() < steps {
            return Err(LstmError::HistoryTooShort {
                needed: steps,
                got: history.len(),
            });
        }
        let mut window: Vec<f32> = history[history.len() - steps..]
            .iter()
            .map(|&p| self.scaler.scale(p))
            .collect();
        let floor = train::price_floor(self.scaler);
        let mut out = Vec::with_capacity(horizon);
        let mut push = |y: f32| {
            let price = self.scaler.unscale(y);
            out.push(if price.is_finite() {
                price.max(floor)
            } else {
                floor
            });
        };
        let quantized = match precision {
            Precision::Int16 => self
                .kernels
                .quantized
                .get_or_init(|| quant::Quantized::new(self.layout, &self.params))
                .as_ref(),
            Precision::F32 => None,
        };
        if let Some(q) = quantized {
            QSCRATCH.with(|cell| {
                let scratch = &mut *cell.borrow_mut();
                for &y in q.forecast(&window, horizon, scratch) {
                    push(y);
                }
            });
            return Ok(out);
        }
        let packed = self
            .kernels
            .packed
            .get_or_init(|| infer::Packed::new(self.layout, &self.params));
        if let Some(packed) = packed {
            SCRATCH.with(|cell| {
                let scratch = &mut *cell.borrow_mut();
                recurse(&mut window, horizon, &mut push, |w| {
                    packed.predict(w, scratch)
                });
            });
            return Ok(out);
        }
        PREDICTOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            let predictor = match &mut *slot {
                Some((layout, steps_cached, p))
                    if *layout == self.layout && *steps_cached == steps =>
                {
                    p
                }
                _ => {
                    &mut slot
                        .insert((self.layout, steps, Predictor::new(self.layout, steps, 1)))
                        .2
                }
            };
            let mut y = [0.0f32];
            recurse(&mut window, horizon, &mut push, |w| {
                predictor.predict(&self.params, &[w], &mut y);
                y[0]
            });
        });
        Ok(out)
    }

    /// Validation MAPE at `horizon`; beyond the measured horizons it is extrapolated
    /// from the last measured one by sqrt(h) (random-walk error growth).
    pub fn validation_mape(&self, horizon: usize) -> f64 {
        let mape = &self.summary.validation_mape_by_horizon;
        let h = horizon.max(1);
        match mape.len() {
            0 => f64::NAN,
            n if h <= n => mape[h - 1],
            n => mape[n - 1] * (h as f64 / n as f64).sqrt(),
        }
    }

    /// The weights as safetensors with PyTorch's parameter names.
    pub fn weights_safetensors(&self) -> Vec<u8> {
        artefact::to_safetensors(self.layout, &self.params)
    }

    /// The JSON-able metadata (config, scaler, summary) that goes with the weights.
    pub fn metadata(&self) -> LstmMetadata {
        LstmMetadata {
            config: self.config.clone(),
            scaler: self.scaler,
            summary: self.summary.clone(),
        }
    }

    /// Rebuilds a model from safetensors weights and its metadata.
    ///
    /// # Errors
    /// [`LstmError::InvalidArtefact`] when names, shapes or the config disagree.
    pub fn from_parts(weights: &[u8], metadata: LstmMetadata) -> Result<Self, LstmError> {
        validate_config(&metadata.config).map_err(LstmError::InvalidArtefact)?;
        let s = metadata.scaler;
        if !(s.min.is_finite() && s.max.is_finite() && s.max > s.min) {
            return Err(LstmError::InvalidArtefact(format!(
                "scaler needs finite min < max, got {} and {}",
                s.min, s.max
            )));
        }
        let layout = Layout {
            hidden: metadata.config.hidden_size,
            layers: metadata.config.num_layers,
        };
        let params = artefact::from_safetensors(layout, weights)?;
        Ok(Self {
            config: metadata.config,
            layout,
            kernels: Kernels::default(),
            params,
            scaler: metadata.scaler,
            summary: metadata.summary,
        })
    }
}

/// The model's sidecar content (the store adds format version and checksum around it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LstmMetadata {
    /// Hyper-parameters (they fix the tensor shapes).
    pub config: LstmConfig,
    /// Scaler fitted on the training series.
    pub scaler: MinMaxScaler,
    /// What training measured.
    pub summary: TrainingSummary,
}

/// The recursive forecast: `horizon` times, `predict` the next (scaled) value from `window`,
/// hand it to `push`, and append it to the window in place of the oldest value.
fn recurse(
    window: &mut [f32],
    horizon: usize,
    push: &mut dyn FnMut(f32),
    mut predict: impl FnMut(&[f32]) -> f32,
) {
    for _ in 0..horizon {
        let y = predict(window);
        push(y);
        if let Some(last) = window.len().checked_sub(1) {
            window.rotate_left(1);
            window[last] = y;
        }
    }
}

thread_local! {
    /// One single-window predictor per thread, so a forecast allocates nothing after the first
    /// (hidden sizes the packed kernels do not cover).
    static PREDICTOR: std::cell::RefCell<Option<(Layout, usize, Predictor)>> =
        const { std::cell::RefCell::new(None) };
    /// Buffers of the packed single-window path, reused by every forecast on the thread.
    static SCRATCH: std::cell::RefCell<infer::Scratch> =
        std::cell::RefCell::new(infer::Scratch::default());
    /// The same for the int16 path.
    static QSCRATCH: std::cell::RefCell<quant::QScratch> =
        std::cell::RefCell::new(quant::QScratch::default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn btc_closes(last: usize) -> Vec<f64> {
        let csv = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/prices/BTC.csv"),
        )
        .unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = header.iter().position(|h| *h == "close").unwrap();
        let closes: Vec<f64> = lines
            .map(|l| l.split(',').nth(col).unwrap().parse().unwrap())
            .collect();
        closes[closes.len() - last..].to_vec()
    }

    fn quick_config(epochs: usize) -> LstmConfig {
        LstmConfig {
            epochs,
            hidden_size: 16,
            threads: 1,
            ..LstmConfig::default()
        }
    }

    #[test]
    fn training_on_real_btc_prices_lowers_the_loss() {
        let prices = btc_closes(300);
        let mut losses = Vec::new();
        let config = LstmConfig {
            epochs: 6,
            ..LstmConfig::default()
        };
        let model = train(&config, &prices, &mut |p| losses.push(p.train_loss)).unwrap();
        assert_eq!(losses.len(), 6);
        assert!(
            losses[5] < 0.5 * losses[0],
            "training loss should fall: {losses:?}"
        );
        let s = model.summary();
        assert_eq!(s.n_train_windows + s.n_validation_windows, 240);
        assert_eq!(s.n_validation_windows, 36);
        assert_eq!(s.validation_mape_by_horizon.len(), 30);
        assert_eq!(s.validation_abs_log_errors_by_horizon[0].len(), 36);
        assert_eq!(s.validation_abs_log_errors_by_horizon[29].len(), 7);
        assert!(s.validation_loss.is_finite() && s.validation_mape_by_horizon[0] < 0.5);
        let extrapolated = model.validation_mape(120);
        assert!((extrapolated - s.validation_mape_by_horizon[29] * 2.0).abs() < 1e-12);
    }

    #[test]
    fn a_constant_series_trains_to_finite_weights_and_forecasts_the_constant() {
        for prices in [
            vec![42.0; 200],
            (0..200).map(|i| 42.0 + 1e-9 * f64::from(i % 2)).collect(),
        ] {
            let model = train(&quick_config(3), &prices, &mut |_| {}).unwrap();
            assert!(model.params.iter().all(|p| p.is_finite()));
            let path = model.forecast(&prices, 10).unwrap();
            assert!(path.iter().all(|p| (p - 42.0).abs() < 1e-3), "{path:?}");
            assert!(model
                .summary()
                .validation_mape_by_horizon
                .iter()
                .all(|m| m.is_finite()));
        }
    }

    #[test]
    fn int16_forecasts_stay_within_2e4_of_f32_on_a_model_trained_on_real_prices() {
        let prices = btc_closes(400);
        let config = LstmConfig {
            epochs: 3,
            threads: 1,
            ..LstmConfig::default()
        };
        let model = train(&config, &prices, &mut |_| {}).unwrap();
        for end in (300..=400).step_by(20) {
            let history = &prices[..end];
            let exact = model.forecast_with(history, 7, Precision::F32).unwrap();
            let fast = model.forecast_with(history, 7, Precision::Int16).unwrap();
            assert_eq!(exact, model.forecast(history, 7).unwrap());
            for (a, b) in exact.iter().zip(&fast) {
                assert!((a - b).abs() <= 2e-4 * a.abs(), "f32 {a}, int16 {b}");
            }
        }
    }

    #[test]
    fn forecast_returns_exactly_h_prices_and_the_h_step_path_extends_the_one_step_one() {
        let prices = btc_closes(200);
        let model = train(&quick_config(2), &prices, &mut |_| {}).unwrap();
        let one = model.forecast(&prices, 1).unwrap();
        let seven = model.forecast(&prices, 7).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(seven.len(), 7);
        assert_eq!(one[0], seven[0]);
        assert_ne!(seven[6], seven[0]);
        assert!(model.forecast(&prices, 0).unwrap().is_empty());
        assert!(matches!(
            model.forecast(&prices[..59], 1),
            Err(LstmError::HistoryTooShort {
                needed: 60,
                got: 59
            })
        ));
    }

    #[test]
    fn the_same_seed_gives_the_same_model_and_threads_only_change_rounding() {
        let prices = btc_closes(200);
        let a = train(&quick_config(2), &prices, &mut |_| {}).unwrap();
        let b = train(&quick_config(2), &prices, &mut |_| {}).unwrap();
        assert_eq!(a.params, b.params);
        let two = LstmConfig {
            threads: 2,
            ..quick_config(2)
        };
        let c = train(&two, &prices, &mut |_| {}).unwrap();
        let max_diff = a
            .params
            .iter()
            .zip(&c.params)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(max_diff < 1e-3, "1 vs 2 threads differ by {max_diff}");
    }

    #[test]
    fn too_few_prices_is_a_clear_error() {
        assert!(matches!(
            train(&quick_config(1), &[1.0; 61], &mut |_| {}),
            Err(LstmError::NotEnoughPrices {
                needed: 62,
                got: 61
            })
        ));
    }

    #[test]
    fn weights_round_trip_through_safetensors_and_bad_artefacts_are_rejected() {
        let prices = btc_closes(200);
        let model = train(&quick_config(1), &prices, &mut |_| {}).unwrap();
        let bytes = model.weights_safetensors();
        let back = TrainedLstm::from_parts(&bytes, model.metadata()).unwrap();
        assert_eq!(back.params, model.params);
        assert_eq!(
            back.forecast(&prices, 3).unwrap(),
            model.forecast(&prices, 3).unwrap()
        );
        let mut wrong = model.metadata();
        wrong.config.hidden_size = 32;
        assert!(matches!(
            TrainedLstm::from_parts(&bytes, wrong),
            Err(LstmError::InvalidArtefact(_))
        ));
        assert!(matches!(
            TrainedLstm::from_parts(b"not safetensors", model.metadata()),
            Err(LstmError::InvalidArtefact(_))
        ));
    }
}
