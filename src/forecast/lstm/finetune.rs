//! Incremental learning: [`fine_tune`] continues training a fitted model on newer prices for a
//! few epochs, starting from its weights instead of a fresh initialisation.
//!
//! The scaler stays consistent: it is widened to cover the new prices (never narrowed), and the
//! weights are re-parametrised exactly for the widened scaler before training (min-max scaling
//! is affine, so the input column and bias of layer 0 and the linear head absorb the change).
//! Before any gradient step the model therefore computes the same forecasts as before.

use std::time::Instant;

use super::network::{Layout, Predictor, SplitMix64, Workspace};
use super::train::{self, Adam, Dataset};
use super::{LstmError, MinMaxScaler, TrainedLstm, TrainingSummary, Transform};

/// Fine-tunes `model` on `prices` (oldest first, finite, > 0) for `epochs` epochs.
///
/// The chronological tail of `prices` is held out as in [`super::train`]; the weights returned
/// are those with the lowest validation loss among the starting weights and every epoch's, so
/// fine-tuning never makes the held-out one-step error worse. The validation summary is
/// measured afresh on `prices`. `epochs == 0` only widens the scaler.
///
/// # Errors
/// [`LstmError::NotEnoughPrices`] when `prices` is shorter than one window plus two,
/// [`LstmError::Diverged`] if the numbers blow up.
pub fn fine_tune(
    model: &TrainedLstm,
    prices: &[f64],
    epochs: usize,
) -> Result<TrainedLstm, LstmError> {
    let start = Instant::now();
    let config = &model.config;
    let layout = model.layout;
    let mut params = model.params.clone();
    let (data, scaler) = match model.transform {
        Transform::MinMaxLevels => {
            let (steps, n_train, n_val) = train::split(config, prices.len())?;
            let seen = MinMaxScaler::fit(&prices[..n_train + steps]);
            let scaler = MinMaxScaler {
                min: model.scaler.min.min(seen.min),
                max: model.scaler.max.max(seen.max),
            };
            rescale(layout, &mut params, model.scaler, scaler);
            let data = Dataset {
                scaled: prices.iter().map(|&p| scaler.scale(p)).collect(),
                steps,
                n_train,
                n_val,
            };
            (data, scaler)
        }
        // Returns carry no price level: the model's scale stays, nothing to re-parametrise.
        Transform::LogReturns { scale, clip } => {
            let data = train::returns_dataset(config, prices, scale, clip)?;
            let seen = MinMaxScaler::fit(&prices[..data.n_train + data.steps + 1]);
            let scaler = MinMaxScaler {
                min: model.scaler.min.min(seen.min),
                max: model.scaler.max.max(seen.max),
            };
            (data, scaler)
        }
    };
    let (steps, n_train, n_val) = (data.steps, data.n_train, data.n_val);

    let val_range = n_train..n_train + n_val;
    let mut predictor = Predictor::new(layout, steps, n_val);
    let start_loss = train::one_step_mse(layout, &params, &data, val_range.clone(), &mut predictor);
    let mut best = (start_loss, params.clone(), 0usize);
    let mut adam = Adam::new(config.learning_rate, params.len());
    let batch = config.batch_size.max(1);
    let mut workspaces: Vec<Workspace> = Vec::new();
    let mut grad = vec![0.0f32; params.len()];
    let mut rng = SplitMix64(config.seed ^ 0x5EED_F1E7_u64);
    let mut last_train_loss = f64::NAN;
    for epoch in 0..epochs {
        let mut sse = 0.0;
        let mut b0 = 0;
        while b0 < n_train {
            let b1 = (b0 + batch).min(n_train);
            let n = b1 - b0;
            let ws = match workspaces.iter().position(|w| w.batch() == n) {
                Some(i) => &mut workspaces[i],
                None => {
                    workspaces.push(Workspace::new(layout, steps, n));
                    workspaces.last_mut().expect("just pushed")
                }
            };
            let windows: Vec<&[f32]> = (b0..b1).map(|i| data.window(i)).collect();
            let targets: Vec<f32> = (b0..b1).map(|i| data.target(i)).collect();
            ws.load(&windows, &targets);
            let seeds: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
            ws.set_dropout(config.dropout, Some(&seeds));
            ws.forward(&params);
            grad.fill(0.0);
            sse += ws.backward(&params, &mut grad, 1.0 / n as f32);
            adam.step(&mut params, &grad);
            b0 = b1;
        }
        last_train_loss = sse / n_train as f64;
        let val_loss =
            train::one_step_mse(layout, &params, &data, val_range.clone(), &mut predictor);
        if !last_train_loss.is_finite() || !val_loss.is_finite() {
            return Err(LstmError::Diverged(format!(
                "fine-tuning epoch {}: train loss {last_train_loss}, validation loss {val_loss}",
                epoch + 1
            )));
        }
        if val_loss < best.0 || !best.0.is_finite() {
            best = (val_loss, params.clone(), epoch + 1);
        }
    }
    let (params, best_epoch) = (best.1, best.2);
    if params.iter().any(|p| !p.is_finite()) {
        return Err(LstmError::Diverged("non-finite weight".into()));
    }
    let validation_loss = train::one_step_mse(layout, &params, &data, val_range, &mut predictor);
    let v = train::validate(layout, &params, &data, prices, scaler, model.transform);
    Ok(TrainedLstm {
        config: config.clone(),
        layout,
        kernels: super::Kernels::default(),
        params,
        scaler,
        transform: model.transform,
        summary: TrainingSummary {
            n_prices: prices.len(),
            n_train_windows: n_train,
            n_validation_windows: n_val,
            epochs_run: epochs,
            final_train_loss: if last_train_loss.is_finite() {
                last_train_loss
            } else {
                model.summary.final_train_loss
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

/// Re-parametrises `params` so that the network computes with scaler `to` exactly what it
/// computed with scaler `from`.
///
/// With `x_old = a * x_new + b` (`a = range_to / range_from`, `b = (min_to - min_from) /
/// range_from`), layer 0 sees `W x_old + c = (a W) x_new + (c + b W)`; the head's output maps
/// back by `y_new = y_old / a + (min_from - min_to) / range_to`. The recursive forecast feeds
/// outputs back as inputs, which stays consistent because both now live in `to`'s units.
fn rescale(layout: Layout, params: &mut [f32], from: MinMaxScaler, to: MinMaxScaler) {
    let range_from = from.max - from.min;
    let range_to = to.max - to.min;
    let a = range_to / range_from;
    let b = (to.min - from.min) / range_from;
    let w_ih = layout.w_ih(0);
    let b_ih = layout.b_ih(0);
    // Layer 0 has one input feature, so its input weights are one column, one per gate row.
    let column: Vec<f64> = params[w_ih.clone()].iter().map(|&w| f64::from(w)).collect();
    for w in &mut params[w_ih] {
        *w = (f64::from(*w) * a) as f32;
    }
    for (bias, w) in params[b_ih].iter_mut().zip(&column) {
        *bias = (f64::from(*bias) + b * w) as f32;
    }
    for w in &mut params[layout.fc_w()] {
        *w = (f64::from(*w) / a) as f32;
    }
    let shift = (from.min - to.min) / range_to;
    for c in &mut params[layout.fc_b()] {
        *c = (f64::from(*c) / a + shift) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{train, LstmConfig};
    use super::*;

    fn btc(n: usize) -> Vec<f64> {
        crate::prices::repository_last_closes("BTC", n)
    }

    fn quick() -> LstmConfig {
        LstmConfig {
            epochs: 2,
            hidden_size: 16,
            threads: 1,
            ..LstmConfig::default()
        }
    }

    #[test]
    fn widening_the_scaler_keeps_the_forecasts() {
        let all = btc(400);
        // Train on the older part, then hand over prices that leave the old range.
        let levels = LstmConfig {
            target: crate::forecast::lstm::Target::Levels,
            ..quick()
        };
        let model = train(&levels, &all[..250], &mut |_| {}).unwrap();
        let newer = &all[150..];
        let widened = fine_tune(&model, newer, 0).unwrap();
        assert!(widened.scaler().min <= model.scaler().min);
        assert!(widened.scaler().max >= model.scaler().max);
        assert_ne!(
            widened.scaler(),
            model.scaler(),
            "the test needs prices out of range"
        );
        let before = model.forecast(newer, 5).unwrap();
        let after = widened.forecast(newer, 5).unwrap();
        for (x, y) in before.iter().zip(&after) {
            assert!((x - y).abs() / x < 1e-4, "{before:?} vs {after:?}");
        }
    }

    #[test]
    fn fine_tuning_never_worsens_the_held_out_loss() {
        let all = btc(400);
        let model = train(&quick(), &all[..250], &mut |_| {}).unwrap();
        let newer = &all[150..];
        let start = fine_tune(&model, newer, 0).unwrap();
        let tuned = fine_tune(&model, newer, 3).unwrap();
        assert!(tuned.summary().validation_loss <= start.summary().validation_loss + 1e-12);
        assert_eq!(tuned.summary().n_prices, newer.len());
        assert_eq!(tuned.summary().epochs_run, 3);
        assert!(tuned.params.iter().all(|p| p.is_finite()));
    }

    #[test]
    fn too_few_prices_is_a_clear_error() {
        let model = train(&quick(), &btc(200), &mut |_| {}).unwrap();
        assert!(matches!(
            fine_tune(&model, &btc(62), 1),
            Err(LstmError::NotEnoughPrices {
                needed: 63,
                got: 62
            })
        ));
    }
}
