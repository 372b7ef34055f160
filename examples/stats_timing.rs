//! In-process cost of the statistical models on a changed history: one theta fit, one
//! held-alpha refilter, and `forecast_with_intervals` (fit plus calibrated bands) of each model,
//! on the last 1,600 BTC closes, 7 days ahead; the table "What each step bought" in
//! BENCHMARKS.md; then each model's cost when only the last price moves on a history whose
//! calibration paths are in the path cache, with the cost of its fit alone.
//!
//! `cargo run --release --example stats_timing [MODEL]`

use coinsphere_ml::forecast::{
    intervals, model_by_name, theta::ThetaState, PathStore, MODEL_NAMES,
};
use coinsphere_ml::registry::stats_cache::PathCache;
use coinsphere_ml::telemetry::metrics::{BuildInfo, Metrics};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let text = std::fs::read_to_string("data/prices/BTC.csv")?;
    let mut lines = text.lines();
    let header = lines.next().ok_or_else(|| anyhow::anyhow!("empty CSV"))?;
    let col = header
        .split(',')
        .position(|h| h.trim() == "close")
        .ok_or_else(|| anyhow::anyhow!("no close column"))?;
    let closes = lines
        .map(|l| Ok(l.split(',').nth(col).unwrap_or("").trim().parse::<f64>()?))
        .collect::<anyhow::Result<Vec<f64>>>()?;
    let prices = &closes[closes.len().saturating_sub(1600)..];
    let logs: Vec<f64> = prices.iter().map(|p| p.ln()).collect();
    // Theta's window: the last 1,000 log prices.
    let y = &logs[logs.len().saturating_sub(1000)..];
    let per_call = |calls: u32, run: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..calls {
            run();
        }
        t.elapsed().as_secs_f64() / f64::from(calls)
    };
    let mut sink = 0.0;
    let fit = per_call(100, &mut || sink += ThetaState::fit(y).alpha);
    let held = per_call(1000, &mut || {
        sink += ThetaState::with_alpha(y, 0.5, 0.5).level
    });
    println!(
        "theta fit {:.1} us, held-alpha refilter {:.2} us",
        fit * 1e6,
        held * 1e6
    );
    for name in [
        "naive",
        "drift",
        "moving_average",
        "ses",
        "theta",
        "ensemble",
        "auto",
    ] {
        let model = model_by_name(name)?;
        let mut result = Ok(());
        let secs = per_call(10, &mut || {
            let prices = prices.to_vec();
            result = intervals::forecast_with_intervals(model.as_ref(), &prices, 7, 0.8).map(|f| {
                sink += f.confidence;
            });
        });
        result?;
        println!("{name} {:.2} ms", secs * 1e3);
    }
    // The path cache: the live last price moves on a history calibrated once (a model named
    // as the first argument alone, repeated 100 times as long, for a profiler).
    let only = std::env::args().nth(1);
    let repeat = if only.is_some() { 1000 } else { 10 };
    let metrics = std::sync::Arc::new(Metrics::new(&BuildInfo::current("-")));
    let store: std::sync::Arc<dyn PathStore> =
        std::sync::Arc::new(PathCache::new(64 << 20, metrics));
    for n in [365, 1600] {
        let base = &prices[prices.len() - n..];
        for name in MODEL_NAMES
            .iter()
            .filter(|&&m| m != "lstm" && only.as_deref().is_none_or(|o| o == m))
        {
            let model = model_by_name(name)?;
            let settings = intervals::CalibrationSettings::default();
            let ask = |prices: &[f64]| {
                intervals::forecast_with_store(
                    model.as_ref(),
                    prices,
                    7,
                    0.8,
                    &settings,
                    Some(&store),
                )
            };
            ask(base)?;
            let mut live = base.to_vec();
            let mut calls = 0;
            let secs = per_call(repeat, &mut || {
                calls += 1;
                *live.last_mut().unwrap() *= 1.0 + 1e-7 * f64::from(calls);
                sink += ask(&live).map_or(0.0, |f| f.confidence);
            });
            let fit = per_call(10, &mut || {
                sink += f64::from(model.fit_with_store(base, Some(&store)).is_ok());
            });
            println!(
                "{n} prices, live last price: {name} {:.2} ms (of which the fit {:.2} ms)",
                secs * 1e3,
                fit * 1e3
            );
        }
    }
    // Keeps the timed work from being optimised away.
    std::hint::black_box(sink);
    Ok(())
}
