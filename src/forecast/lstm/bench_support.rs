//! The engine's inner kernels, opened for the criterion benchmarks (`benches/kernels.rs`) and
//! nothing else: one 2x64 prediction on each kernel, and the training step's products against
//! `matrixmultiply`. Not part of the crate's API.

use super::infer::{Packed, PassScratch, Scratch};
use super::kernel::{panel_gemm_acc, sgemm, Panels};
use super::network::{Layout, Predictor, SplitMix64};
use super::quant::{QKernel, QScratch, Quantized};

/// SPEC's 2x64 network with small random weights and a 60-step window, on every kernel.
pub struct SpecNet {
    params: Vec<f32>,
    window: Vec<f32>,
    packed: Packed,
    scratch: Scratch,
    passes: PassScratch,
    batch: Predictor,
    quantized: Option<(Quantized, QScratch)>,
}

impl Default for SpecNet {
    fn default() -> Self {
        let layout = Layout {
            hidden: 64,
            layers: 2,
        };
        let mut rng = SplitMix64(1);
        let params: Vec<f32> = (0..layout.len())
            .map(|_| (rng.next_f32() - 0.5) * 0.25)
            .collect();
        let window: Vec<f32> = (0..60).map(|_| rng.next_f32()).collect();
        Self {
            packed: Packed::new(layout, &params).expect("a 2x64 network packs"),
            scratch: Scratch::default(),
            passes: PassScratch::default(),
            batch: Predictor::new(layout, 60, 1),
            quantized: Quantized::new(layout, &params).map(|q| (q, QScratch::default())),
            params,
            window,
        }
    }
}

impl SpecNet {
    /// One prediction on the packed f32 kernel (AVX2 where the CPU has it).
    pub fn packed(&mut self) -> f32 {
        self.packed.predict(&self.window, &mut self.scratch)
    }

    /// One prediction on the packed kernel's scalar fallback.
    pub fn packed_scalar(&mut self) -> f32 {
        self.packed
            .predict_with(&self.window, &mut self.scratch, false)
    }

    /// One prediction on the training code's batch predictor with one window (the forecast path
    /// before packing).
    pub fn batch_predictor(&mut self) -> f32 {
        let mut y = [0.0f32];
        self.batch.predict(&self.params, &[&self.window], &mut y);
        y[0]
    }

    /// The last value of a `days`-step forecast on the packed f32 kernel (AVX2 and FMA where the
    /// CPU has them, else scalar), with the passes side by side when `side_by_side`, else one
    /// window at a time as before.
    pub fn f32_path(&mut self, days: usize, side_by_side: bool) -> f32 {
        if side_by_side {
            return self.packed.forecast(&self.window, days, &mut self.passes)[days - 1];
        }
        let mut w = self.window.clone();
        let mut y = 0.0;
        for _ in 0..days {
            y = self.packed.predict(&w, &mut self.scratch);
            w.rotate_left(1);
            w[59] = y;
        }
        y
    }

    /// The last value of a `days`-step forecast on the int16 AVX2 kernel; `None` without AVX2
    /// and FMA.
    pub fn int16_avx2_path(&mut self, days: usize) -> Option<f32> {
        let (q, s) = self.quantized.as_mut()?;
        if !QKernel::Avx2.available() {
            return None;
        }
        q.forecast_with(&self.window, days, s, QKernel::Avx2)
            .last()
            .copied()
    }

    /// The last value of a `days`-step forecast on the fastest int16 kernel; `None` without
    /// AVX-512 VNNI or AVX2.
    pub fn int16_path(&mut self, days: usize) -> Option<f32> {
        let (q, s) = self.quantized.as_mut()?;
        q.forecast(&self.window, days, s).last().copied()
    }
}

/// One product `C += A B` of the training step, `m x k` by `k x n`.
pub struct Gemm {
    m: usize,
    k: usize,
    n: usize,
    a: Vec<f32>,
    b: Vec<f32>,
    panels: Panels,
    c: Vec<f32>,
}

impl Gemm {
    /// The product of the given shape with fixed inputs.
    pub fn new(m: usize, k: usize, n: usize) -> Self {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut panels = Panels::default();
        panels.pack(k, n, |kk, j| b[kk * n + j]);
        Self {
            m,
            k,
            n,
            a,
            b,
            panels,
            c: vec![0.0; m * n],
        }
    }

    /// On the engine's packed panels.
    pub fn panels(&mut self) -> f32 {
        panel_gemm_acc(self.m, &self.a, self.k, &self.panels, &mut self.c, self.n);
        self.c[0]
    }

    /// On `matrixmultiply`'s sgemm.
    pub fn matrixmultiply(&mut self) -> f32 {
        let (m, k, n) = (self.m, self.k, self.n);
        sgemm(
            m,
            k,
            n,
            1.0,
            &self.a,
            (k, 1),
            &self.b,
            (n, 1),
            1.0,
            &mut self.c,
            (n, 1),
        );
        self.c[0]
    }
}
