//! Trains the SPEC LSTM on the `close` column of a CSV and prints the training time and losses.
//!
//! `cargo run --release --example lstm_train -- --csv data/prices/BTC.csv --last 1000
//!  [--epochs 50] [--threads N] [--batch-size 32] [--patience P] [--validation-fraction F]
//!  [--target levels|log_returns] [--quiet]`
//!
//! The defaults are the service's (log-returns, 25% held out, early stopping after 8 epochs
//! without progress); `bench/lstm_vs_pytorch` sets what its PyTorch script does.

use coinsphere_ml::forecast::lstm::{train, LstmConfig, Target};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| -> Option<&str> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let csv_path = value("--csv").unwrap_or("data/prices/BTC.csv");
    let mut config = LstmConfig::default();
    if let Some(v) = value("--epochs") {
        config.epochs = v.parse()?;
    }
    if let Some(v) = value("--threads") {
        config.threads = v.parse()?;
    }
    if let Some(v) = value("--batch-size") {
        config.batch_size = v.parse()?;
    }
    if let Some(v) = value("--patience") {
        config.patience = v.parse()?;
    }
    if let Some(v) = value("--validation-fraction") {
        config.validation_fraction = v.parse()?;
    }
    if let Some(v) = value("--target") {
        config.target = match v {
            "levels" => Target::Levels,
            "log_returns" => Target::LogReturns,
            other => anyhow::bail!("--target: levels or log_returns, not {other}"),
        };
    }
    let quiet = args.iter().any(|a| a == "--quiet");
    let text = std::fs::read_to_string(csv_path)?;
    let mut lines = text.lines();
    let header = lines.next().ok_or_else(|| anyhow::anyhow!("empty CSV"))?;
    let col = header
        .split(',')
        .position(|h| h.trim() == "close")
        .ok_or_else(|| anyhow::anyhow!("no close column"))?;
    let mut prices = lines
        .map(|l| {
            l.split(',')
                .nth(col)
                .ok_or_else(|| anyhow::anyhow!("short row"))
                .and_then(|v| Ok(v.trim().parse::<f64>()?))
        })
        .collect::<anyhow::Result<Vec<f64>>>()?;
    if let Some(v) = value("--last") {
        let n: usize = v.parse()?;
        prices = prices[prices.len().saturating_sub(n)..].to_vec();
    }
    let model = train(&config, &prices, &mut |p| {
        if !quiet {
            eprintln!(
                "epoch {}/{} train_loss {:.6} validation_loss {:.6}",
                p.epoch, p.epochs, p.train_loss, p.validation_loss
            );
        }
    })?;
    let s = model.summary();
    println!(
        "train_seconds {:.3} final_train_loss {:.6} validation_loss {:.6} epochs {} prices {} mape_h1 {:.4} mape_h7 {:.4}",
        s.train_seconds,
        s.final_train_loss,
        s.validation_loss,
        s.epochs_run,
        s.n_prices,
        model.validation_mape(1),
        model.validation_mape(7)
    );
    Ok(())
}
