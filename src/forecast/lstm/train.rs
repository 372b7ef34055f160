//! Training: windows and scaling, PyTorch's initialisation, Adam, the data-parallel epoch loop,
//! and the validation measurements (one-step loss and recursive forecasts per horizon).

use std::time::Instant;

use super::config::{LstmConfig, Target};
use super::network::{Layout, Predictor, SplitMix64, Workspace};
use super::{EpochProgress, LstmError, MinMaxScaler, TrainingSummary, Transform};
use crate::forecast::intervals::recent_volatility;

/// Scaled log-returns are clipped to +-this many robust standard deviations (a -40% day is
/// about 10 of them on BTC): the gates then never see an input far beyond what they learnt on.
pub(crate) const RETURN_CLIP: f64 = 8.0;

/// The one-sided normal quantile of the lower confidence bound that shrinks the network's
/// move towards naive ([`shrink_weight`]): 99%. At 95% (1.645) the 20-fold backtest of the
/// ten coins gave mean MASE 1.003 / 1.017 / 1.024 at 1 / 7 / 30 days: the validation tail's
/// regime is not the next month's, so the bound must be stricter than sampling noise asks.
/// [`shrink_weight`] turns it into the Student t quantile of its effective sample.
const SHRINK_Z: f64 = 2.326;

/// Longest horizon the validation tail measures. Measuring up to 90 (the largest `days_ahead`)
/// cost about three training epochs (profiled); 30 costs about one, and longer horizons are
/// extrapolated by sqrt(h / 30) in [`super::TrainedLstm::validation_mape`].
pub(crate) const MAX_MEASURED_HORIZON: usize = 30;

/// A horizon is measured only while at least this many validation origins reach it, so that no
/// MAPE rests on one or two forecasts.
pub(crate) const MIN_ORIGINS_PER_HORIZON: usize = 5;

/// Whether training hands back the weights of the epoch with the lowest validation loss instead
/// of the last epoch's. All epochs still run (no early termination: the validation tail of a
/// 1,000-price series is ~140 windows, too noisy to stop on), so this can only lower the
/// held-out loss of the returned weights; on the last 1,000 BTC closes it returned validation
/// MSE 0.00142 where PyTorch's last epoch had 0.00343. Not yet measured across other symbols.
pub(crate) const RESTORE_BEST_WEIGHTS: bool = true;

impl MinMaxScaler {
    /// Fits on `prices`, widening a (near-)constant range to a sliver around it so that scaling
    /// never divides by zero and a constant series maps to a constant.
    pub fn fit(prices: &[f64]) -> Self {
        let min = prices.iter().copied().fold(f64::INFINITY, f64::min);
        let max = prices.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let floor = (min.abs().max(max.abs()) * 1e-6).max(1e-12);
        if max - min < floor {
            let mid = 0.5 * (min + max);
            Self {
                min: mid - 0.5 * floor,
                max: mid + 0.5 * floor,
            }
        } else {
            Self { min, max }
        }
    }

    /// Price to network units.
    pub fn scale(&self, price: f64) -> f32 {
        ((price - self.min) / (self.max - self.min)) as f32
    }

    /// Network units to price.
    pub fn unscale(&self, value: f32) -> f64 {
        self.min + f64::from(value) * (self.max - self.min)
    }
}

/// PyTorch's initialisation: every LSTM and linear parameter uniform in +-1/sqrt(hidden)
/// (for the linear head that is +-1/sqrt(in_features), the same number).
pub(crate) fn init_params(layout: Layout, seed: u64) -> Vec<f32> {
    let bound = 1.0 / (layout.hidden as f32).sqrt();
    let mut rng = SplitMix64(seed);
    (0..layout.len())
        .map(|_| (rng.next_f32() * 2.0 - 1.0) * bound)
        .collect()
}

/// Adam with PyTorch's update rule and defaults (betas 0.9/0.999, eps 1e-8, no weight decay).
pub(crate) struct Adam {
    lr: f32,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    pub fn new(lr: f32, n: usize) -> Self {
        Self {
            lr,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        const EPS: f32 = 1e-8;
        self.t += 1;
        let bc1 = 1.0 - 0.9f64.powi(self.t);
        let bc2 = 1.0 - 0.999f64.powi(self.t);
        let step_size = (f64::from(self.lr) / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = B1 * *m + (1.0 - B1) * g;
            *v = B2 * *v + (1.0 - B2) * g * g;
            let denom = v.sqrt() / bc2_sqrt + EPS;
            *p -= step_size * *m / denom;
        }
    }
}

/// Worker threads for one training: `requested`, or for 0 both cores (the measured optimum on
/// the 2-core target machine; more threads only split a 32-window batch further).
pub(crate) fn resolve_threads(requested: usize, batch: usize) -> usize {
    let auto = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(2);
    let t = if requested == 0 { auto } else { requested };
    // Fewer than 8 windows per thread costs more in start-up than it saves.
    t.clamp(1, (batch / 8).max(1))
}

/// The scaled series and the split into training and validation windows.
pub(crate) struct Dataset {
    pub scaled: Vec<f32>,
    pub steps: usize,
    pub n_train: usize,
    pub n_val: usize,
}

impl Dataset {
    pub fn window(&self, i: usize) -> &[f32] {
        &self.scaled[i..i + self.steps]
    }
    pub fn target(&self, i: usize) -> f32 {
        self.scaled[i + self.steps]
    }
}

/// How `n_prices` prices split into windows: `(sequence length, training windows, validation
/// windows)`, the validation windows being the chronological tail (at least one of each).
///
/// # Errors
/// [`LstmError::NotEnoughPrices`] under a window plus two prices.
pub(crate) fn split(
    config: &LstmConfig,
    n_prices: usize,
) -> Result<(usize, usize, usize), LstmError> {
    let steps = config.sequence_length;
    let needed = steps + 2;
    if n_prices < needed {
        return Err(LstmError::NotEnoughPrices {
            needed,
            got: n_prices,
        });
    }
    let n_windows = n_prices - steps;
    let frac = f64::from(config.validation_fraction).clamp(0.0, 0.9);
    let n_val = ((n_windows as f64 * frac).round() as usize).clamp(1, n_windows - 1);
    Ok((steps, n_windows - n_val, n_val))
}

/// Splits `prices` into windows, holds out the chronological tail and fits the scaling on
/// what the training windows see (inputs and targets), so validation never leaks into it.
/// Levels: min-max scaling. Returns: the robust scale of the training log-returns (the
/// min-max scaler is still fitted, as a record of the training range).
pub(crate) fn prepare(
    config: &LstmConfig,
    prices: &[f64],
) -> Result<(Dataset, MinMaxScaler, Transform), LstmError> {
    match config.target {
        Target::Levels => {
            let (steps, n_train, n_val) = split(config, prices.len())?;
            let scaler = MinMaxScaler::fit(&prices[..n_train + steps]);
            let scaled = prices.iter().map(|&p| scaler.scale(p)).collect();
            Ok((
                Dataset {
                    scaled,
                    steps,
                    n_train,
                    n_val,
                },
                scaler,
                Transform::MinMaxLevels,
            ))
        }
        Target::LogReturns => {
            let (steps, n_train, _) = split_returns(config, prices.len())?;
            let returns = log_returns(prices);
            let scale = robust_scale(&returns[..n_train + steps]);
            let data = returns_dataset(config, prices, scale, RETURN_CLIP)?;
            let scaler = MinMaxScaler::fit(&prices[..n_train + steps + 1]);
            Ok((
                data,
                scaler,
                Transform::LogReturns {
                    scale,
                    clip: RETURN_CLIP,
                },
            ))
        }
    }
}

/// [`split`] for a returns model: its windows are over the `n_prices - 1` daily returns.
///
/// # Errors
/// [`LstmError::NotEnoughPrices`] under a window plus three prices.
pub(crate) fn split_returns(
    config: &LstmConfig,
    n_prices: usize,
) -> Result<(usize, usize, usize), LstmError> {
    split(config, n_prices.saturating_sub(1)).map_err(|e| match e {
        LstmError::NotEnoughPrices { needed, .. } => LstmError::NotEnoughPrices {
            needed: needed + 1,
            got: n_prices,
        },
        other => other,
    })
}

/// The returns dataset of `prices` with a given scale (training, and fine-tuning, which keeps
/// the model's scale).
///
/// # Errors
/// As [`split_returns`].
pub(crate) fn returns_dataset(
    config: &LstmConfig,
    prices: &[f64],
    scale: f64,
    clip: f64,
) -> Result<Dataset, LstmError> {
    let (steps, n_train, n_val) = split_returns(config, prices.len())?;
    let scaled = log_returns(prices)
        .iter()
        .map(|r| scale_return(*r, scale, clip))
        .collect();
    Ok(Dataset {
        scaled,
        steps,
        n_train,
        n_val,
    })
}

/// `ln(p[t] / p[t-1])` for t = 1..n.
pub(crate) fn log_returns(prices: &[f64]) -> Vec<f64> {
    prices.windows(2).map(|w| (w[1] / w[0]).ln()).collect()
}

fn scale_return(r: f64, scale: f64, clip: f64) -> f32 {
    let x = r / scale;
    (if x.is_finite() {
        x.clamp(-clip, clip)
    } else {
        0.0
    }) as f32
}

/// The network input of a returns model for a forecast after `history` (at least `steps`
/// prices): its last `steps` scaled returns. With exactly `steps` prices the oldest return
/// is unknown and taken as 0 (a flat day), so that a returns model needs no more prices than
/// the window, like a level model.
pub(crate) fn returns_window(history: &[f64], steps: usize, scale: f64, clip: f64) -> Vec<f32> {
    let tail = &history[history.len().saturating_sub(steps + 1)..];
    let mut window = vec![0.0f32; steps.saturating_sub(tail.len().saturating_sub(1))];
    window.extend(
        tail.windows(2)
            .map(|w| scale_return((w[1] / w[0]).ln(), scale, clip)),
    );
    window
}

/// A robust standard deviation of `returns`: 1.4826 times the median absolute deviation
/// (the standard deviation for normal returns, unmoved by a few crash days), the root mean
/// square where more than half the returns are equal, floored at 1e-12.
pub(crate) fn robust_scale(returns: &[f64]) -> f64 {
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            0.0
        } else if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        }
    };
    let mut v: Vec<f64> = returns.iter().copied().filter(|r| r.is_finite()).collect();
    let m = median(&mut v);
    let mut dev: Vec<f64> = v.iter().map(|r| (r - m).abs()).collect();
    let mad = 1.4826 * median(&mut dev);
    let scale = if mad > 1e-12 {
        mad
    } else {
        (v.iter().map(|r| r * r).sum::<f64>() / v.len().max(1) as f64).sqrt()
    };
    if scale.is_finite() {
        scale.max(1e-12)
    } else {
        1.0
    }
}

/// Seed of the dropout mask of window `index` in `epoch`: masks depend on the window, not on
/// which thread happens to process it, so the thread count does not change the model.
fn mask_seed(seed: u64, epoch: usize, index: usize) -> u64 {
    let mut r = SplitMix64(seed ^ ((epoch as u64) << 32) ^ index as u64 ^ 0xD1B5_4A32_D192_ED03);
    r.next_u64()
}

/// Per-thread training state: workspaces by batch shape and a gradient accumulator.
struct Worker {
    workspaces: Vec<Workspace>,
    grad: Vec<f32>,
    sse: f64,
}

/// The workspace for `batch`-sized batches, allocated on first use.
fn workspace_for(
    workspaces: &mut Vec<Workspace>,
    layout: Layout,
    steps: usize,
    batch: usize,
) -> &mut Workspace {
    match workspaces.iter().position(|w| w.batch() == batch) {
        Some(i) => &mut workspaces[i],
        None => {
            workspaces.push(Workspace::new(layout, steps, batch));
            workspaces.last_mut().expect("just pushed")
        }
    }
}

impl Worker {
    /// Forward and backward over windows `range` of `data`; the gradient is the mean over
    /// `full_batch` windows, so workers' gradients add up to the batch's.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        layout: Layout,
        params: &[f32],
        data: &Dataset,
        range: std::ops::Range<usize>,
        full_batch: usize,
        dropout: f32,
        seed: u64,
        epoch: usize,
    ) {
        self.grad.fill(0.0);
        self.sse = 0.0;
        if range.is_empty() {
            return;
        }
        let ws = workspace_for(&mut self.workspaces, layout, data.steps, range.len());
        let windows: Vec<&[f32]> = range.clone().map(|i| data.window(i)).collect();
        let targets: Vec<f32> = range.clone().map(|i| data.target(i)).collect();
        ws.load(&windows, &targets);
        let seeds: Vec<u64> = range.map(|i| mask_seed(seed, epoch, i)).collect();
        ws.set_dropout(dropout, Some(&seeds));
        ws.forward(params);
        self.sse = ws.backward(params, &mut self.grad, 1.0 / full_batch as f32);
    }
}

/// Mean squared one-step error (scaled units) over windows `range`.
pub(crate) fn one_step_mse(
    layout: Layout,
    params: &[f32],
    data: &Dataset,
    range: std::ops::Range<usize>,
    predictor: &mut Predictor,
) -> f64 {
    let windows: Vec<&[f32]> = range.clone().map(|i| data.window(i)).collect();
    let mut out = vec![0.0f32; windows.len()];
    predictor.predict(params, &windows, &mut out);
    let _ = layout;
    let n = out.len().max(1) as f64;
    range
        .zip(&out)
        .map(|(i, &y)| {
            let e = f64::from(y - data.target(i));
            e * e
        })
        .sum::<f64>()
        / n
}

/// The outcome of [`fit`]: final weights and what training measured.
pub(crate) struct Fitted {
    pub params: Vec<f32>,
    pub summary: TrainingSummary,
}

/// Trains on the prepared data; see [`super::train`].
pub(crate) fn fit(
    config: &LstmConfig,
    layout: Layout,
    prices: &[f64],
    data: &Dataset,
    scaler: MinMaxScaler,
    transform: Transform,
    progress: &mut dyn FnMut(EpochProgress),
) -> Result<Fitted, LstmError> {
    let start = Instant::now();
    let n_params = layout.len();
    let mut params = init_params(layout, config.seed);
    let mut adam = Adam::new(config.learning_rate, n_params);
    let batch = config.batch_size.max(1);
    let threads = resolve_threads(config.threads, batch);
    let mut workers: Vec<Worker> = (0..threads)
        .map(|_| Worker {
            workspaces: Vec::new(),
            grad: vec![0.0; n_params],
            sse: 0.0,
        })
        .collect();
    let val_range = data.n_train..data.n_train + data.n_val;
    let mut predictor = Predictor::new(layout, data.steps, data.n_val);
    let mut best = (f64::INFINITY, params.clone(), 0usize);
    let mut last_train_loss = f64::NAN;
    let mut epochs_run = 0;
    for epoch in 0..config.epochs {
        let mut epoch_sse = 0.0;
        let mut b0 = 0;
        while b0 < data.n_train {
            let b1 = (b0 + batch).min(data.n_train);
            let n = b1 - b0;
            let per = n.div_ceil(threads);
            let params_ref = &params;
            let dropout = config.dropout;
            let seed = config.seed;
            std::thread::scope(|s| {
                let (first, others) = workers.split_first_mut().expect("one worker");
                for (k, w) in others.iter_mut().enumerate() {
                    let lo = (b0 + (k + 1) * per).min(b1);
                    let hi = (lo + per).min(b1);
                    s.spawn(move || {
                        w.run(layout, params_ref, data, lo..hi, n, dropout, seed, epoch)
                    });
                }
                first.run(
                    layout,
                    params_ref,
                    data,
                    b0..(b0 + per).min(b1),
                    n,
                    dropout,
                    seed,
                    epoch,
                );
            });
            let (first, others) = workers.split_first_mut().expect("one worker");
            epoch_sse += first.sse;
            for w in others.iter() {
                epoch_sse += w.sse;
                for (a, b) in first.grad.iter_mut().zip(&w.grad) {
                    *a += b;
                }
            }
            adam.step(&mut params, &first.grad);
            b0 = b1;
        }
        epochs_run = epoch + 1;
        last_train_loss = epoch_sse / data.n_train as f64;
        let val_loss = one_step_mse(layout, &params, data, val_range.clone(), &mut predictor);
        if !last_train_loss.is_finite() || !val_loss.is_finite() {
            return Err(LstmError::Diverged(format!(
                "epoch {epochs_run}: train loss {last_train_loss}, validation loss {val_loss}"
            )));
        }
        if val_loss < best.0 {
            best = (val_loss, params.clone(), epoch);
        }
        progress(EpochProgress {
            epoch: epochs_run,
            epochs: config.epochs,
            train_loss: last_train_loss,
            validation_loss: val_loss,
        });
        if config.patience > 0 && epoch - best.2 >= config.patience {
            break;
        }
    }
    if RESTORE_BEST_WEIGHTS && best.0.is_finite() {
        params = best.1;
    }
    if params.iter().any(|p| !p.is_finite()) {
        return Err(LstmError::Diverged("non-finite weight".into()));
    }
    let validation_loss = one_step_mse(layout, &params, data, val_range, &mut predictor);
    let v = validate(layout, &params, data, prices, scaler, transform);
    let best_epoch = best.2 + 1;
    Ok(Fitted {
        params,
        summary: TrainingSummary {
            n_prices: prices.len(),
            n_train_windows: data.n_train,
            n_validation_windows: data.n_val,
            epochs_run,
            final_train_loss: if last_train_loss.is_finite() {
                last_train_loss
            } else {
                0.0
            },
            validation_loss,
            validation_mape_by_horizon: v.mape,
            validation_abs_log_errors_by_horizon: v.abs_log,
            train_seconds: start.elapsed().as_secs_f64(),
            best_epoch,
            horizon_weights: v.weights,
            validation_scaled_errors_by_horizon: v.scaled,
        },
    })
}

/// What the validation origins measured (see [`TrainingSummary`]).
pub(crate) struct Validation {
    pub mape: Vec<f64>,
    pub abs_log: Vec<Vec<f64>>,
    pub weights: Vec<f64>,
    pub scaled: Vec<Vec<f64>>,
}

/// The validation measurements of `params` for either transform.
pub(crate) fn validate(
    layout: Layout,
    params: &[f32],
    data: &Dataset,
    prices: &[f64],
    scaler: MinMaxScaler,
    transform: Transform,
) -> Validation {
    match transform {
        Transform::MinMaxLevels => {
            let (mape, abs_log) = validate_horizons(layout, params, data, prices, scaler);
            Validation {
                mape,
                abs_log,
                weights: Vec::new(),
                scaled: Vec::new(),
            }
        }
        Transform::LogReturns { scale, .. } => {
            validate_returns(layout, params, data, prices, scale)
        }
    }
}

/// The horizons measured on `n_val` validation origins.
fn measured_horizons(n_val: usize) -> usize {
    n_val
        .saturating_sub(MIN_ORIGINS_PER_HORIZON - 1)
        .clamp(1, MAX_MEASURED_HORIZON)
}

/// Walk-forward validation of a returns model: from every validation origin (the price that
/// ends a validation window), the recursive forecast of the accumulated log-return at each
/// horizon, all origins as one batch per step. Per horizon, the weight of the network's
/// move is fitted ([`shrink_weight`]), and the served forecast's errors are kept divided by
/// the volatility at their origin.
fn validate_returns(
    layout: Layout,
    params: &[f32],
    data: &Dataset,
    prices: &[f64],
    scale: f64,
) -> Validation {
    let n_val = data.n_val;
    let h_max = measured_horizons(n_val);
    let origin = |k: usize| data.n_train + k + data.steps;
    let mut windows: Vec<Vec<f32>> = (0..n_val)
        .map(|k| data.window(data.n_train + k).to_vec())
        .collect();
    let vol: Vec<f64> = (0..n_val)
        .map(|k| recent_volatility(&prices[..=origin(k)]))
        .collect();
    let mut predictor = Predictor::new(layout, data.steps, n_val);
    let mut out = vec![0.0f32; n_val];
    let mut cumulative = vec![0.0f64; n_val];
    let mut v = Validation {
        mape: Vec::with_capacity(h_max),
        abs_log: Vec::new(),
        weights: Vec::with_capacity(h_max),
        scaled: Vec::with_capacity(h_max),
    };
    for h in 1..=h_max {
        let active = n_val + 1 - h;
        let refs: Vec<&[f32]> = windows[..active].iter().map(|w| w.as_slice()).collect();
        predictor.predict(params, &refs, &mut out[..active]);
        for k in 0..active {
            cumulative[k] += f64::from(out[k]) * scale;
            let w = &mut windows[k];
            w.rotate_left(1);
            *w.last_mut().expect("window is not empty") = out[k];
        }
        let actual: Vec<f64> = (0..active)
            .map(|k| (prices[origin(k) + h] / prices[origin(k)]).ln())
            .collect();
        let x: Vec<f64> = (0..active).map(|k| cumulative[k] / vol[k]).collect();
        let y: Vec<f64> = (0..active).map(|k| actual[k] / vol[k]).collect();
        // Never more trust at a longer horizon than at a shorter one: a move that did not earn
        // its weight at 7 days does not get it at 30.
        let mut weight = shrink_weight(&x, &y, h).min(v.weights.last().copied().unwrap_or(1.0));
        // The weight is a least-squares fit; the scores are absolute errors. A weight that
        // does not lower the validation MAPE below naive's does not serve.
        let mape = |w: f64| {
            let sum: f64 = (0..active)
                .map(|k| (1.0 - (w * cumulative[k] - actual[k]).exp()).abs())
                .sum();
            sum / active as f64
        };
        if weight > 0.0 && mape(weight) >= mape(0.0) {
            weight = 0.0;
        }
        let mut scaled = Vec::with_capacity(active);
        for k in 0..active {
            let e = actual[k] - weight * cumulative[k];
            // Four decimals of a unit-scale score: a sidecar of ~50 KB instead of ~150 KB.
            scaled.push((e / vol[k] * 1e4).round() / 1e4);
        }
        v.mape.push(mape(weight));
        v.weights.push(weight);
        v.scaled.push(scaled);
    }
    v
}

/// The weight in [0, 1] of the network's (volatility-scaled) move `x` in the served forecast
/// of the outcome `y`, at horizon `h`: the lower end of a one-sided 99% confidence interval
/// of the least-squares weight `sum(x y) / sum(x x)` (no intercept: weight 0 is the naive
/// forecast), clamped to [0, 1]. Its standard error is widened by `sqrt(h)` because origins
/// one day apart share `h - 1` days of their `h`-day outcome. So the move counts only as far as
/// the validation origins show it beats naive; where they do not, the weight is 0 and naive
/// answers. (The caller also keeps the weights non-increasing in `h`.)
pub(crate) fn shrink_weight(x: &[f64], y: &[f64], h: usize) -> f64 {
    let n = x.len().min(y.len());
    let sxx: f64 = x.iter().map(|v| v * v).sum();
    if n < 3 || sxx.is_nan() || sxx <= 1e-18 {
        return 0.0;
    }
    let b = x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>() / sxx;
    let rss: f64 = x.iter().zip(y).map(|(xi, yi)| (yi - b * xi).powi(2)).sum();
    let se = (rss / (n - 1) as f64 / sxx).sqrt() * (h as f64).sqrt();
    // `n` origins sharing `h - 1` days of outcome hold about `n / h` independent ones: at 30
    // days a 250-origin tail holds some 7, and a t quantile with 6 degrees of freedom is 3.1,
    // not 2.3. (On 40 folds of the ten coins the normal quantile served 30-day moves that lost:
    // mean MASE 1.002, BTC 1.009, TRX 1.013.)
    let dof = n as f64 / h as f64 - 1.0;
    if dof < 3.0 {
        return 0.0;
    }
    let w = b - student_t_quantile(SHRINK_Z, dof) * se;
    if w.is_finite() {
        w.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// The quantile of Student's t with `dof` degrees of freedom at the probability where the
/// standard normal's quantile is `z`: the Cornish-Fisher expansion in `1 / dof` of Abramowitz
/// and Stegun 26.7.5, four terms, within 0.02 of the tables from 3 degrees of freedom (tested).
/// One quantile does not justify a statistics crate (statrs brings nalgebra).
pub(crate) fn student_t_quantile(z: f64, dof: f64) -> f64 {
    let (z2, v) = (z * z, dof);
    let g1 = (z2 + 1.0) * z / 4.0;
    let g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0;
    let g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0;
    let g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92160.0;
    z + g1 / v + g2 / (v * v) + g3 / (v * v * v) + g4 / (v * v * v * v)
}

/// Floor for forecast prices, so that a wild extrapolation stays a positive price.
pub(crate) fn price_floor(scaler: MinMaxScaler) -> f64 {
    (scaler.min.abs() * 1e-3).max(1e-12)
}

/// Recursive forecasts from every validation origin, all origins as one batch per horizon step.
///
/// Origin `k` is the window ending just before validation target `k`; at horizon `h` it has an
/// actual price when `k + h <= n_val`. Horizons run while at least [`MIN_ORIGINS_PER_HORIZON`]
/// origins reach them (at least horizon 1), up to [`MAX_MEASURED_HORIZON`].
pub(crate) fn validate_horizons(
    layout: Layout,
    params: &[f32],
    data: &Dataset,
    prices: &[f64],
    scaler: MinMaxScaler,
) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n_val = data.n_val;
    let h_max = n_val
        .saturating_sub(MIN_ORIGINS_PER_HORIZON - 1)
        .clamp(1, MAX_MEASURED_HORIZON);
    let mut windows: Vec<Vec<f32>> = (0..n_val)
        .map(|k| data.window(data.n_train + k).to_vec())
        .collect();
    let mut predictor = Predictor::new(layout, data.steps, n_val);
    let mut out = vec![0.0f32; n_val];
    let floor = price_floor(scaler);
    let mut mape = Vec::with_capacity(h_max);
    let mut abs_log = Vec::with_capacity(h_max);
    for h in 1..=h_max {
        let active = n_val + 1 - h;
        let refs: Vec<&[f32]> = windows[..active].iter().map(|w| w.as_slice()).collect();
        predictor.predict(params, &refs, &mut out[..active]);
        let mut errs = Vec::with_capacity(active);
        let mut ape = 0.0;
        for k in 0..active {
            let actual = prices[data.n_train + k + data.steps + h - 1];
            let forecast = scaler.unscale(out[k]).max(floor);
            ape += (forecast - actual).abs() / actual;
            errs.push((forecast / actual).ln().abs());
            let w = &mut windows[k];
            w.rotate_left(1);
            *w.last_mut().expect("window is not empty") = out[k];
        }
        mape.push(ape / active as f64);
        abs_log.push(errs);
    }
    (mape, abs_log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::lstm::network::tests::{assert_close, load_f64, load_fixture};

    #[test]
    fn three_adam_steps_match_pytorch() {
        let f = load_fixture("small");
        let mut params = f.params.clone();
        let mut adam = Adam::new(1e-3, params.len());
        let windows: Vec<&[f32]> = f.x.iter().map(|w| w.as_slice()).collect();
        let mut ws = Workspace::new(f.layout, f.steps, f.x.len());
        ws.load(&windows, &f.target);
        for _ in 0..3 {
            ws.forward(&params);
            let mut grad = vec![0.0; params.len()];
            ws.backward(&params, &mut grad, 1.0 / f.x.len() as f32);
            adam.step(&mut params, &grad);
        }
        let theirs = load_f64(f.layout, "small_adam3.safetensors");
        let ours: Vec<f64> = params.iter().map(|&p| f64::from(p)).collect();
        assert_close(f.layout, &ours, &theirs, 1e-4);
    }

    #[test]
    fn initialisation_is_seeded_and_within_pytorch_bounds() {
        let layout = Layout {
            hidden: 64,
            layers: 2,
        };
        let a = init_params(layout, 1);
        assert_eq!(a, init_params(layout, 1));
        assert_ne!(a, init_params(layout, 2));
        assert!(a.iter().all(|p| p.abs() <= 0.125));
        assert!(a.iter().any(|p| p.abs() > 0.12));
    }

    #[test]
    fn a_constant_series_scales_to_a_constant_without_dividing_by_zero() {
        let s = MinMaxScaler::fit(&[5.0; 10]);
        assert!(s.max > s.min);
        assert_eq!(s.scale(5.0), 0.5);
        assert!((s.unscale(0.5) - 5.0).abs() < 1e-12);
    }

    #[test]
    fn the_shrink_weight_keeps_a_move_only_as_far_as_the_origins_support_it() {
        let mut rng = SplitMix64(7);
        let mut noise = || f64::from(rng.next_f32()) * 2.0 - 1.0;
        let x: Vec<f64> = (0..200).map(|_| noise()).collect();
        // A perfect move keeps weight 1; an unrelated one gets 0; a half-right one about 0.5.
        assert_eq!(shrink_weight(&x, &x, 1), 1.0);
        let unrelated: Vec<f64> = (0..200).map(|_| noise()).collect();
        assert_eq!(shrink_weight(&x, &unrelated, 1), 0.0);
        let half: Vec<f64> = x.iter().map(|v| 0.5 * v + 0.05 * noise()).collect();
        let w = shrink_weight(&x, &half, 1);
        assert!(w > 0.45 && w < 0.5, "{w}");
        // Overlapping long-horizon origins carry less evidence: a lower weight.
        assert!(shrink_weight(&x, &half, 30) < w);
        assert_eq!(shrink_weight(&[0.0; 10], &half[..10], 1), 0.0);
        assert_eq!(shrink_weight(&x[..2], &half[..2], 1), 0.0);
    }

    #[test]
    fn the_t_quantile_matches_the_tables() {
        // One-sided 99% points of Student's t (any statistics table).
        for (dof, t) in [
            (3.0, 4.541),
            (5.0, 3.365),
            (7.0, 2.998),
            (10.0, 2.764),
            (30.0, 2.457),
            (250.0, 2.341),
        ] {
            let q = student_t_quantile(2.326_348, dof);
            assert!((q - t).abs() < 0.02, "{dof}: {q} vs {t}");
        }
        assert!((student_t_quantile(2.326_348, 1e9) - 2.326_348).abs() < 1e-6);
    }

    #[test]
    fn the_robust_scale_ignores_crash_days_and_never_is_zero() {
        let mut r: Vec<f64> = (0..100)
            .map(|i| if i % 2 == 0 { 0.01 } else { -0.01 })
            .collect();
        let calm = robust_scale(&r);
        assert!((calm - 0.014826).abs() < 1e-9, "{calm}");
        r[0] = -0.5;
        r[1] = 0.4;
        assert!((robust_scale(&r) - calm).abs() < 1e-9);
        assert_eq!(robust_scale(&[0.0; 10]), 1e-12);
    }

    #[test]
    fn the_returns_window_pads_a_one_window_history_with_a_flat_day() {
        let prices: Vec<f64> = (0..5).map(|i| 100.0 * 1.01f64.powi(i)).collect();
        let w = returns_window(&prices, 4, 0.01, RETURN_CLIP);
        assert_eq!(w.len(), 4);
        assert!(w
            .iter()
            .all(|&x| (f64::from(x) - 1.01f64.ln() / 0.01).abs() < 1e-5));
        let w = returns_window(&prices[1..], 4, 0.01, RETURN_CLIP);
        assert_eq!(w[0], 0.0);
        assert!((f64::from(w[3]) - 0.995).abs() < 1e-3);
        // Clipped at +-8 scales.
        let w = returns_window(&[1.0, 2.0], 1, 0.01, RETURN_CLIP);
        assert_eq!(w, vec![8.0]);
    }
}
