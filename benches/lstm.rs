//! criterion benchmarks of the LSTM engine: one training epoch on the last 1,000 BTC closes and
//! one single-window forecast.

use coinsphere_ml::forecast::lstm::{train, LstmConfig, Precision};
use criterion::{criterion_group, criterion_main, Criterion};

fn btc_closes(last: usize) -> Vec<f64> {
    coinsphere_ml::prices::repository_last_closes("BTC", last)
}

fn benches(c: &mut Criterion) {
    let prices = btc_closes(1000);
    let mut group = c.benchmark_group("lstm");
    group.sample_size(10);
    for threads in [1, 2] {
        let config = LstmConfig {
            epochs: 1,
            threads,
            ..LstmConfig::default()
        };
        group.bench_function(format!("train_one_epoch_1000_btc_{threads}_threads"), |b| {
            b.iter(|| train(&config, &prices, &mut |_| {}).expect("trains"))
        });
    }
    group.finish();
    let config = LstmConfig {
        epochs: 1,
        ..LstmConfig::default()
    };
    let model = train(&config, &prices, &mut |_| {}).expect("trains");
    for precision in [Precision::F32, Precision::Int16] {
        let name = format!("lstm/forecast_one_window_one_step/{}", precision.kernel());
        c.bench_function(&name, |b| {
            b.iter(|| {
                model
                    .forecast_with(std::hint::black_box(&prices), 1, precision)
                    .expect("forecasts")
            })
        });
    }
}

criterion_group!(lstm, benches);
criterion_main!(lstm);
