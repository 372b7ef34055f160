//! The LSTM forecaster of SPEC section 3: a fused CPU kernel with a hand-written backward pass.
//!
//! [`train`] turns a price series into a [`TrainedLstm`]; only a trained model can forecast.
//!
//! Layout: `config` (hyper-parameters), `network` (parameter layout, forward and backward
//! passes), `kernel` (GEMM wrapper and vectorised gate non-linearities), `train` (scaling, Adam,
//! the epoch loop, validation), `artefact` (safetensors with PyTorch's names).

mod aligned;
mod artefact;
#[doc(hidden)]
pub mod bench_support;
mod config;
mod finetune;
pub mod forecaster;
mod infer;
mod kernel;
mod network;
mod quant;
mod train;

pub use config::{LstmConfig, Target};
pub use finetune::fine_tune;

use network::{Layout, Predictor};

use super::intervals::{self, Calibration};

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

/// How far, as a factor either way, the recent daily moves of a history may be from a returns
/// model's training scale before [`TrainedLstm::covers`] says the model does not cover it.
/// Real coins' volatility regimes differ by 2-3x over their histories.
pub const RETURN_SCALE_TOLERANCE: f64 = 4.0;

/// Min-max scaling fitted on the training series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MinMaxScaler {
    /// Price that maps to 0.
    pub min: f64,
    /// Price that maps to 1 (always above `min`: a constant series gets a sliver of range).
    pub max: f64,
}

/// How a model turns prices into network inputs and outputs, as recorded in its sidecar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transform {
    /// The old service's: price levels min-max scaled by the model's [`MinMaxScaler`]; the
    /// network predicts the next scaled price. Every format-1 sidecar is one of these.
    #[default]
    MinMaxLevels,
    /// Daily log-returns `ln(p[t] / p[t-1])` divided by `scale` (a robust standard deviation of
    /// the training returns) and clipped to +-`clip`; the network predicts the next one, and
    /// the price path is the last price times exp of the accumulated returns.
    LogReturns {
        /// Returns are divided by this (> 0).
        scale: f64,
        /// Scaled inputs are clipped to +-this, so one crash day does not saturate the gates.
        clip: f64,
    },
}

/// What a training run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// Epoch (from 1) whose weights were kept: the lowest validation loss.
    #[serde(default)]
    pub best_epoch: usize,
    /// Returns models: the weight of the network's move at horizon `h` (index `h - 1`), in
    /// [0, 1], fitted on the validation origins; the served log-return is this times the
    /// network's (0: the naive forecast). Beyond the last entry the last one holds. Empty for
    /// level models, which serve the network unshrunk.
    #[serde(default)]
    pub horizon_weights: Vec<f64>,
    /// Returns models: `ln(actual / served forecast)` of every validation origin divided by
    /// the recent volatility at that origin ([`crate::forecast::intervals::recent_volatility`]),
    /// index `h - 1`: the conformal scores behind bands and confidence, rescaled by the
    /// volatility of the history a forecast is made from.
    #[serde(default)]
    pub validation_scaled_errors_by_horizon: Vec<Vec<f64>>,
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
    transform: Transform,
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
    /// Int16 gate matrices and hidden states, f32 elsewhere: on AVX-512 VNNI ~3x faster than
    /// f32, on AVX2 (`vpmaddwd`) the same integer products; the forecast moves by ~1e-4
    /// relative. Falls back to f32 where the CPU has neither.
    #[default]
    Int16,
}

impl Precision {
    /// What a forecast at this precision runs on this CPU, e.g. `int16-avx512vnni`.
    pub fn kernel(self) -> &'static str {
        match self {
            Precision::Int16 => quant::QKernel::best().map_or(infer::f32_kernel(), |k| k.name()),
            Precision::F32 => infer::f32_kernel(),
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
    let (data, scaler, transform) = train::prepare(config, prices)?;
    let fitted = train::fit(config, layout, prices, &data, scaler, transform, progress)?;
    Ok(TrainedLstm {
        config: config.clone(),
        layout,
        kernels: Kernels::default(),
        params: fitted.params,
        scaler,
        transform,
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
    ///
    /// A returns model never sees a price level; it covers a history whose recent daily
    /// moves (the robust scale of its last `2 * sequence_length` returns) are within a factor
    /// [`RETURN_SCALE_TOLERANCE`] of those it was trained on. A model trained on a made-up
    /// wave of 0.3% days does not speak for a coin that moves 3% a day.
    pub fn covers(&self, history: &[f64]) -> bool {
        if let Transform::LogReturns { scale, .. } = self.transform {
            let recent = &history[history
                .len()
                .saturating_sub(2 * self.config.sequence_length + 1)..];
            let returns = train::log_returns(recent);
            if returns.len() < 2 {
                return true;
            }
            let ratio = train::robust_scale(&returns) / scale;
            return (1.0 / RETURN_SCALE_TOLERANCE..=RETURN_SCALE_TOLERANCE).contains(&ratio);
        }
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
        match self.transform {
            Transform::MinMaxLevels => {
                let window: Vec<f32> = history[history.len() - steps..]
                    .iter()
                    .map(|&p| self.scaler.scale(p))
                    .collect();
                let floor = train::price_floor(self.scaler);
                let mut out = Vec::with_capacity(horizon);
                self.network_path(window, horizon, precision, &mut |y| {
                    let price = self.scaler.unscale(y);
                    out.push(if price.is_finite() {
                        price.max(floor)
                    } else {
                        floor
                    });
                });
                Ok(out)
            }
            Transform::LogReturns { scale, clip } => {
                let last = history[history.len() - 1];
                if (1..=horizon).all(|h| self.horizon_weight(h) == 0.0) {
                    // The network's move is weighted 0 everywhere: naive, without running it.
                    return Ok(vec![last; horizon]);
                }
                let window = train::returns_window(history, steps, scale, clip);
                let mut out = Vec::with_capacity(horizon);
                let mut cumulative = 0.0f64;
                self.network_path(window, horizon, precision, &mut |y| {
                    cumulative += f64::from(y) * scale;
                    let h = out.len() + 1;
                    let price = last * (self.horizon_weight(h) * cumulative).exp();
                    out.push(if price.is_finite() && price > 0.0 {
                        price
                    } else {
                        last
                    });
                });
                Ok(out)
            }
        }
    }

    /// Runs the network recursively `horizon` times from `window` (network units), handing
    /// each output to `push`, on the fastest kernel `precision` allows.
    fn network_path(
        &self,
        mut window: Vec<f32>,
        horizon: usize,
        precision: Precision,
        push: &mut dyn FnMut(f32),
    ) {
        let steps = window.len();
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
            return;
        }
        let packed = self
            .kernels
            .packed
            .get_or_init(|| infer::Packed::new(self.layout, &self.params));
        if let Some(packed) = packed {
            SCRATCH.with(|cell| {
                let scratch = &mut *cell.borrow_mut();
                for &y in packed.forecast(&window, horizon, scratch) {
                    push(y);
                }
            });
            return;
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
            recurse(&mut window, horizon, push, |w| {
                predictor.predict(&self.params, &[w], &mut y);
                y[0]
            });
        });
    }

    /// How the model reads prices.
    pub fn transform(&self) -> Transform {
        self.transform
    }

    /// The weight of the network's move at `horizon` (see
    /// [`TrainingSummary::horizon_weights`]): 1 for level models.
    pub fn horizon_weight(&self, horizon: usize) -> f64 {
        let w = &self.summary.horizon_weights;
        if self.transform == Transform::MinMaxLevels || w.is_empty() {
            return 1.0;
        }
        w[horizon.clamp(1, w.len()) - 1]
    }

    /// What answers at `horizon`, for `model.label`: `lstm`, `lstm(shrunk 0.30)` (the
    /// network's move weighted 0.30, the rest naive) or `lstm(fallback: naive)`.
    pub fn label(&self, horizon: usize) -> String {
        match self.horizon_weight(horizon) {
            w if w >= 0.995 => "lstm".into(),
            w if w > 0.0 => format!("lstm(shrunk {w:.2})"),
            _ => FALLBACK_LABEL.into(),
        }
    }

    /// The conformal calibration of a forecast from `history` up to `horizon` days: for a
    /// returns model the volatility-scaled validation errors times
    /// [`intervals::recent_volatility`] of `history`, except at the horizons whose weight is 0,
    /// where naive answers and its own [`intervals::naive_calibration`] on `history` bands it
    /// (a 250-origin validation tail holds some eight independent 30-day outcomes, too few for
    /// a 95% quantile: it covered 89% on 20 folds of the ten coins); for a level model the raw
    /// validation errors. Where horizon 1 has too few, `history`'s daily moves are the fallback.
    pub fn calibration(&self, history: &[f64], horizon: usize) -> Calibration {
        let log_errors = match self.transform {
            Transform::MinMaxLevels => self.summary.validation_abs_log_errors_by_horizon.clone(),
            Transform::LogReturns { .. } => self.returns_calibration(history, horizon),
        };
        // Built only when read: a served forecast otherwise spent ~5 us on the logarithms of a
        // 365-price history.
        let fallback_abs_errors = if Calibration::needs_fallback(&log_errors) {
            history
                .windows(2)
                .map(|w| (w[1] / w[0]).ln().abs())
                .filter(|e| e.is_finite())
                .collect()
        } else {
            Vec::new()
        };
        Calibration {
            log_errors,
            fallback_abs_errors,
        }
    }

    /// The log errors by horizon of [`Self::calibration`] for a returns model.
    fn returns_calibration(&self, history: &[f64], horizon: usize) -> Vec<Vec<f64>> {
        let scaled = &self.summary.validation_scaled_errors_by_horizon;
        let len = horizon.max(scaled.len());
        // Weights never rise with the horizon, so naive answers from the first zero on.
        // (horizons the network serves, naive's errors at every horizon)
        let naive = (1..=len)
            .find(|&h| self.horizon_weight(h) == 0.0)
            .and_then(|h0| {
                let settings = intervals::CalibrationSettings::default();
                let naive = intervals::naive_calibration(history, len, &settings).ok()?;
                Some((h0 - 1, naive.log_errors))
            });
        let served = naive.as_ref().map_or(scaled.len(), |(served, _)| *served);
        // Only the horizons the network's move serves are rescaled (usually none).
        let vol = intervals::recent_volatility(history);
        let mut log_errors: Vec<Vec<f64>> = scaled[..served.min(scaled.len())]
            .iter()
            .map(|h| h.iter().map(|z| z * vol).collect())
            .collect();
        if let Some((_, mut naive)) = naive {
            log_errors.resize(served, Vec::new());
            log_errors.extend(naive.drain(served..));
        }
        log_errors
    }

    /// The MAPE (0.05 = 5%) to expect `horizon` days ahead: `1 - confidence`. For a returns
    /// model it is that of `calibration`, the forecast's [`Self::calibration`] (so it follows
    /// the current volatility); a level model keeps its validation MAPE, as it answered before.
    pub fn expected_mape(&self, horizon: usize, calibration: &Calibration) -> f64 {
        match self.transform {
            Transform::MinMaxLevels => self.validation_mape(horizon),
            Transform::LogReturns { .. } => calibration.mape(horizon),
        }
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
            transform: self.transform,
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
        if let Transform::LogReturns { scale, clip } = metadata.transform {
            if !(scale.is_finite() && scale > 0.0 && clip.is_finite() && clip > 0.0) {
                return Err(LstmError::InvalidArtefact(format!(
                    "log-return scale and clip must be finite and > 0, got {scale} and {clip}"
                )));
            }
        }
        let w = &metadata.summary.horizon_weights;
        if !w.iter().all(|w| (0.0..=1.0).contains(w)) {
            return Err(LstmError::InvalidArtefact(
                "horizon weights must lie in [0, 1]".into(),
            ));
        }
        let params = artefact::from_safetensors(layout, weights)?;
        Ok(Self {
            config: metadata.config,
            layout,
            kernels: Kernels::default(),
            params,
            scaler: metadata.scaler,
            transform: metadata.transform,
            summary: metadata.summary,
        })
    }
}

/// The model's sidecar content (the store adds format version and checksum around it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LstmMetadata {
    /// Hyper-parameters (they fix the tensor shapes).
    pub config: LstmConfig,
    /// Scaler fitted on the training series (a returns model's training range, for information).
    pub scaler: MinMaxScaler,
    /// How prices become network inputs; absent (min-max levels) in format-1 sidecars.
    #[serde(default)]
    pub transform: Transform,
    /// What training measured.
    pub summary: TrainingSummary,
}

/// `model.label` of a returns model whose network's move is weighted 0 at the horizon asked:
/// it did not beat the naive forecast on its own validation origins, so naive answers.
pub const FALLBACK_LABEL: &str = "lstm(fallback: naive)";

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
    /// Buffers of the packed f32 path, reused by every forecast on the thread.
    static SCRATCH: std::cell::RefCell<infer::PassScratch> =
        std::cell::RefCell::new(infer::PassScratch::default());
    /// The same for the int16 path.
    static QSCRATCH: std::cell::RefCell<quant::QScratch> =
        std::cell::RefCell::new(quant::QScratch::default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn btc_closes(last: usize) -> Vec<f64> {
        crate::prices::repository_last_closes("BTC", last)
    }

    fn quick_config(epochs: usize) -> LstmConfig {
        LstmConfig {
            epochs,
            hidden_size: 16,
            threads: 1,
            ..LstmConfig::default()
        }
    }

    /// The old service's level model, as format-1 artefacts hold.
    fn levels(config: LstmConfig) -> LstmConfig {
        LstmConfig {
            target: Target::Levels,
            validation_fraction: 0.15,
            patience: 0,
            ..config
        }
    }

    #[test]
    fn training_on_real_btc_prices_lowers_the_loss() {
        let prices = btc_closes(300);
        let mut losses = Vec::new();
        let config = levels(LstmConfig {
            epochs: 6,
            ..LstmConfig::default()
        });
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
        let config = levels(LstmConfig {
            epochs: 3,
            threads: 1,
            ..LstmConfig::default()
        });
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
        let model = train(&levels(quick_config(2)), &prices, &mut |_| {}).unwrap();
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
            train(&quick_config(1), &[1.0; 62], &mut |_| {}),
            Err(LstmError::NotEnoughPrices {
                needed: 63,
                got: 62
            })
        ));
        assert!(matches!(
            train(&levels(quick_config(1)), &[1.0; 61], &mut |_| {}),
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

    /// A returns model of BTC whose horizon weights are set to `w` at every horizon.
    fn returns_model_with_weight(w: f64) -> (TrainedLstm, Vec<f64>) {
        let prices = btc_closes(400);
        let mut model = train(&quick_config(3), &prices, &mut |_| {}).unwrap();
        assert!(matches!(model.transform(), Transform::LogReturns { .. }));
        let n = model.summary.horizon_weights.len();
        assert_eq!(n, 30);
        model.summary.horizon_weights = vec![w; n];
        (model, prices)
    }

    #[test]
    fn a_returns_model_shrinks_its_move_by_the_horizon_weight_and_says_so() {
        let (full, prices) = returns_model_with_weight(1.0);
        let (half, _) = returns_model_with_weight(0.5);
        let (none, _) = returns_model_with_weight(0.0);
        let last = *prices.last().unwrap();
        let a = full.forecast(&prices, 7).unwrap();
        let b = half.forecast(&prices, 7).unwrap();
        for (x, y) in a.iter().zip(&b) {
            let expected = last * (0.5 * (x / last).ln()).exp();
            assert!((y - expected).abs() <= 1e-9 * expected, "{y} vs {expected}");
        }
        assert_eq!(none.forecast(&prices, 7).unwrap(), vec![last; 7]);
        assert_eq!(full.label(7), "lstm");
        assert_eq!(half.label(7), "lstm(shrunk 0.50)");
        assert_eq!(none.label(7), FALLBACK_LABEL);
        // Beyond the measured horizons the last weight holds.
        assert_eq!(half.horizon_weight(90), 0.5);
    }

    #[test]
    fn a_returns_model_ignores_the_price_level() {
        let (model, prices) = returns_model_with_weight(1.0);
        let scaled: Vec<f64> = prices.iter().map(|p| p * 1000.0).collect();
        assert!(model.covers(&scaled));
        let a = model.forecast(&prices, 10).unwrap();
        let b = model.forecast(&scaled, 10).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((y / x / 1000.0 - 1.0).abs() < 1e-9, "{x} vs {y}");
        }
        // Exactly one window of prices is enough; the unknown oldest return counts as flat.
        assert_eq!(model.forecast(&prices[..60], 3).unwrap().len(), 3);
    }

    #[test]
    fn where_naive_answers_naive_calibrates() {
        let (mut model, prices) = returns_model_with_weight(0.5);
        for w in &mut model.summary.horizon_weights[6..] {
            *w = 0.0;
        }
        let settings = intervals::CalibrationSettings::default();
        let naive = intervals::naive_calibration(&prices, 90, &settings).unwrap();
        let mixed = model.calibration(&prices, 90);
        assert_eq!(mixed.log_errors.len(), 90);
        for h in 1..=6 {
            assert_ne!(mixed.log_errors[h - 1], naive.log_errors[h - 1], "h {h}");
        }
        for h in [7, 30, 90] {
            assert_eq!(mixed.log_errors[h - 1], naive.log_errors[h - 1], "h {h}");
            assert_eq!(mixed.mape(h), naive.mape(h));
            assert_eq!(model.expected_mape(h, &mixed), naive.mape(h));
        }
    }

    #[test]
    fn bands_and_expected_error_follow_the_recent_volatility() {
        let (model, prices) = returns_model_with_weight(0.4);
        // The same history with every log-return doubled: its recent volatility doubles.
        let p0 = prices[0];
        let wild: Vec<f64> = prices.iter().map(|p| p0 * (p / p0).powi(2)).collect();
        let calm = model.calibration(&prices, 30);
        let stormy = model.calibration(&wild, 30);
        for h in [1, 7, 30] {
            let (q1, q2) = (calm.half_width(h, 0.8), stormy.half_width(h, 0.8));
            assert!(
                q1 > 0.0 && (q2 / q1 - 2.0).abs() < 1e-9,
                "h {h}: {q1} vs {q2}"
            );
            assert!(model.expected_mape(h, &stormy) > model.expected_mape(h, &calm));
        }
    }

    #[test]
    fn returns_model_artefacts_round_trip_and_record_their_transform() {
        let (model, prices) = returns_model_with_weight(0.4);
        let meta = model.metadata();
        let json = serde_json::to_value(&meta).unwrap();
        assert_eq!(json["transform"]["kind"], "log_returns");
        assert_eq!(json["config"]["target"], "log_returns");
        let back: LstmMetadata = serde_json::from_value(json).unwrap();
        let loaded = TrainedLstm::from_parts(&model.weights_safetensors(), back).unwrap();
        assert_eq!(
            loaded.forecast(&prices, 5).unwrap(),
            model.forecast(&prices, 5).unwrap()
        );
        let mut bad = model.metadata();
        bad.summary.horizon_weights[0] = 1.5;
        assert!(TrainedLstm::from_parts(&model.weights_safetensors(), bad).is_err());
    }
}
