//! criterion benchmarks of the LSTM's inner kernels (they were `#[ignore]` timing tests): one
//! 2x64, 60-step prediction on the packed f32 kernel, its scalar fallback, the batch predictor
//! and the int16 kernel (AVX-512 VNNI only), a 7-day int16 path; 7- and 90-day forecasts on the
//! f32 kernel one pass at a time and side by side, and on the int16 kernel; and the training
//! step's products on the engine's panels against `matrixmultiply`.
//!
//! `cargo bench --bench kernels`

use coinsphere_ml::forecast::lstm::bench_support::{Gemm, SpecNet};
use criterion::{criterion_group, criterion_main, Criterion};

fn predict(c: &mut Criterion) {
    let mut net = SpecNet::default();
    let mut group = c.benchmark_group("predict_2x64_one_step");
    group.bench_function("packed_f32", |b| b.iter(|| net.packed()));
    group.bench_function("packed_scalar", |b| b.iter(|| net.packed_scalar()));
    group.bench_function("batch_predictor", |b| b.iter(|| net.batch_predictor()));
    if net.int16_path(1).is_some() {
        group.bench_function("int16", |b| b.iter(|| net.int16_path(1)));
        group.bench_function("int16_7_days", |b| b.iter(|| net.int16_path(7)));
    }
    group.finish();
    let mut group = c.benchmark_group("forecast_2x64");
    for days in [7, 90] {
        group.bench_function(format!("f32_one_pass_at_a_time_{days}_days"), |b| {
            b.iter(|| net.f32_path(days, false))
        });
        group.bench_function(format!("f32_side_by_side_{days}_days"), |b| {
            b.iter(|| net.f32_path(days, true))
        });
        if net.int16_path(1).is_some() {
            group.bench_function(format!("int16_{days}_days"), |b| {
                b.iter(|| net.int16_path(days))
            });
        }
        if net.int16_avx2_path(1).is_some() {
            group.bench_function(format!("int16_avx2_{days}_days"), |b| {
                b.iter(|| net.int16_avx2_path(days))
            });
        }
    }
    group.finish();
}

fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("training_gemm");
    for (m, k, n) in [
        (32, 64, 256),
        (16, 64, 256),
        (32, 256, 64),
        (16, 256, 64),
        (960, 64, 256),
        (960, 256, 64),
    ] {
        let mut g = Gemm::new(m, k, n);
        group.bench_function(format!("{m}x{k}x{n}/panels"), |b| b.iter(|| g.panels()));
        group.bench_function(format!("{m}x{k}x{n}/matrixmultiply"), |b| {
            b.iter(|| g.matrixmultiply())
        });
    }
    group.finish();
}

criterion_group!(kernels, predict, gemm);
criterion_main!(kernels);
