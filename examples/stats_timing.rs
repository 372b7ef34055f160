//! In-process cost of the statistical models on a changed history: one theta fit, one
//! held-alpha refilter, and `forecast_with_intervals` (fit plus calibrated bands) of each model,
//! on the last 1,600 BTC closes, 7 days ahead; the table "What each step bought" in
//! BENCHMARKS.md.
//!
//! `cargo run --release --example stats_timing`

use coinsphere_ml::forecast::{intervals, model_by_name, theta::ThetaState};
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
    // Keeps the timed work from being optimised away.
    std::hint::black_box(sink);
    Ok(())
}
