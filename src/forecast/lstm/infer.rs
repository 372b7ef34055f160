//! Forward-only inference for one window at a time: the path behind
//! [`super::TrainedLstm::forecast`].
//!
//! The batch [`super::network::Predictor`] transposes `W_hh` and runs general GEMMs on every call;
//! for one window that overhead dominated (~0.5-1 ms per forecast, profiled). Here the weights
//! are packed once, when the model is built, in a gate-interleaved layout: for every block of
//! [`BLOCK`] hidden units and every input `k`, the 4 x [`BLOCK`] weights of the gates i, f, g, o
//! are contiguous. One recurrent step is then a matrix-vector product that streams the weights
//! front to back with eight independent AVX2 accumulators per block, and the gate
//! non-linearities and the cell update happen in registers right after each block's product.
//! The input projection of every layer above the first is one small GEMM over all time steps,
//! done once the layer below has finished. A scalar version of the same code serves CPUs
//! without AVX2/FMA.

use super::aligned::Aligned;
use super::kernel::{fast_sigmoid, fast_tanh};
use super::network::Layout;

/// Hidden units per packed block (two 8-lane vectors per gate).
pub(crate) const BLOCK: usize = 16;

/// Weights of a trained network, packed for single-window inference.
#[derive(Clone, Debug)]
pub(crate) struct Packed {
    hidden: usize,
    layers: usize,
    /// Input weights of layers >= 1 (index 0 is empty), `[block][k][gate][unit]`.
    w_ih: Vec<Aligned<f32>>,
    /// Recurrent weights per layer, `[block][k][gate][unit]`.
    w_hh: Vec<Aligned<f32>>,
    ends: Ends,
}

/// The f32 parts around the gate matrices, shared with the int16 packing (`super::quant`):
/// layer 0's input weights, the biases, and the output layer.
#[derive(Clone, Debug)]
pub(super) struct Ends {
    /// Layer 0's input weights (input size 1), interleaved like a gate row: `[block][gate][unit]`.
    pub(super) w_in0: Vec<f32>,
    /// `b_ih + b_hh` per layer, interleaved `[block][gate][unit]`.
    pub(super) bias: Vec<Vec<f32>>,
    fc_w: Vec<f32>,
    fc_b: f32,
}

impl Ends {
    /// Interleaves the parts of `params` (the caller checked its length).
    pub(super) fn new(layout: Layout, params: &[f32]) -> Self {
        let (h, g) = (layout.hidden, layout.gates());
        let mut w_in0 = vec![0.0; g];
        for (row, w) in params[layout.w_ih(0)].iter().enumerate() {
            w_in0[interleaved(h, row)] = *w;
        }
        let bias = (0..layout.layers)
            .map(|l| {
                let mut b = vec![0.0; g];
                for (row, (x, y)) in params[layout.b_ih(l)]
                    .iter()
                    .zip(&params[layout.b_hh(l)])
                    .enumerate()
                {
                    b[interleaved(h, row)] = x + y;
                }
                b
            })
            .collect();
        Self {
            w_in0,
            bias,
            fc_w: params[layout.fc_w()].to_vec(),
            fc_b: params[layout.fc_b()][0],
        }
    }

    /// Layer 0's input projection plus bias, `pre[t] = bias + window[t] * w_in0`.
    pub(super) fn project_input(&self, window: &[f32], pre: &mut [f32]) {
        let g = self.w_in0.len();
        for (pre, &x) in pre.chunks_exact_mut(g).zip(window) {
            for ((p, b), w) in pre.iter_mut().zip(&self.bias[0]).zip(&self.w_in0) {
                *p = b + x * w;
            }
        }
    }

    /// The output layer on the last hidden state.
    pub(super) fn output(&self, last: &[f32]) -> f32 {
        self.fc_b + last.iter().zip(&self.fc_w).map(|(a, b)| a * b).sum::<f32>()
    }

    /// The output for an empty window.
    pub(super) fn bias_only(&self) -> f32 {
        self.fc_b
    }
}

/// Buffers of one single-window pass, reused across calls.
#[derive(Default)]
pub(crate) struct Scratch {
    /// `[t][unit]`: the hidden states of the layer being computed (input of the next one).
    seq: Aligned<f32>,
    /// `[t][block][gate][unit]`: input projection plus bias of every step.
    pre: Aligned<f32>,
    c: Aligned<f32>,
}

/// Position of gate row `row` (PyTorch order: gate-major, `q * hidden + unit`) in an interleaved
/// gate vector.
pub(super) fn interleaved(hidden: usize, row: usize) -> usize {
    let (q, j) = (row / hidden, row % hidden);
    (j / BLOCK) * 4 * BLOCK + q * BLOCK + j % BLOCK
}

/// Packs a PyTorch `[4H, k_in]` gate matrix as `[block][k][gate][unit]`.
fn pack_matrix(hidden: usize, k_in: usize, w: &[f32]) -> Aligned<f32> {
    let mut out = Aligned::zeroed(w.len());
    for row in 0..4 * hidden {
        let (q, j) = (row / hidden, row % hidden);
        let (jb, u) = (j / BLOCK, j % BLOCK);
        for k in 0..k_in {
            out[((jb * k_in + k) * 4 + q) * BLOCK + u] = w[row * k_in + k];
        }
    }
    out
}

impl Packed {
    /// Packs `params`; `None` when the hidden size is not a multiple of [`BLOCK`] (the caller
    /// then uses the general batch predictor).
    pub fn new(layout: Layout, params: &[f32]) -> Option<Self> {
        let h = layout.hidden;
        if h == 0 || !h.is_multiple_of(BLOCK) || params.len() != layout.len() {
            return None;
        }
        let w_ih = (0..layout.layers)
            .map(|l| {
                if l == 0 {
                    Aligned::zeroed(0)
                } else {
                    pack_matrix(h, h, &params[layout.w_ih(l)])
                }
            })
            .collect();
        let w_hh = (0..layout.layers)
            .map(|l| pack_matrix(h, h, &params[layout.w_hh(l)]))
            .collect();
        Some(Self {
            hidden: h,
            layers: layout.layers,
            w_ih,
            w_hh,
            ends: Ends::new(layout, params),
        })
    }

    /// One-step prediction (scaled units) for one window.
    pub fn predict(&self, window: &[f32], s: &mut Scratch) -> f32 {
        self.predict_with(window, s, has_avx2_fma())
    }

    /// [`Self::predict`], on the AVX2 kernels only when `avx2` (which needs AVX2 and FMA).
    pub(crate) fn predict_with(&self, window: &[f32], s: &mut Scratch, avx2: bool) -> f32 {
        let (h, g, steps) = (self.hidden, 4 * self.hidden, window.len());
        if steps == 0 {
            return self.ends.bias_only();
        }
        s.seq.set_len(steps * h);
        s.pre.set_len(steps * g);
        s.c.set_len(h);
        for l in 0..self.layers {
            // Input projection plus bias of every step.
            if l == 0 {
                self.ends.project_input(window, &mut s.pre);
            } else {
                project(
                    avx2,
                    h,
                    steps,
                    &s.seq,
                    &self.w_ih[l],
                    &self.ends.bias[l],
                    &mut s.pre,
                );
            }
            s.c.fill(0.0);
            for t in 0..steps {
                let (done, rest) = s.seq.split_at_mut(t * h);
                let h_prev = (t > 0).then(|| &done[(t - 1) * h..]);
                step(
                    avx2,
                    h,
                    &self.w_hh[l],
                    &s.pre[t * g..(t + 1) * g],
                    h_prev,
                    &mut s.c,
                    &mut rest[..h],
                    t % 2 == 1,
                );
            }
        }
        self.ends.output(&s.seq[(steps - 1) * h..steps * h])
    }
}

/// The f32 kernel a forecast runs on this CPU.
pub(super) fn f32_kernel() -> &'static str {
    if has_avx2_fma() {
        "f32-avx2"
    } else {
        "f32-scalar"
    }
}

fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `pre[t] = bias + seq[t] * W` for every step, `W` packed `[block][k][gate][unit]`.
fn project(
    avx2: bool,
    h: usize,
    steps: usize,
    seq: &[f32],
    w: &[f32],
    bias: &[f32],
    pre: &mut [f32],
) {
    let g = 4 * h;
    assert!(seq.len() >= steps * h && pre.len() >= steps * g);
    assert!(w.len() == h * g && bias.len() == g && h.is_multiple_of(BLOCK));
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: AVX2 and FMA are present (`avx2` comes from `has_avx2_fma`); the asserts
        // above bound every access the kernel makes.
        unsafe { simd::project(h, steps, seq, w, bias, pre) };
        return;
    }
    let _ = avx2;
    for t in 0..steps {
        let x = &seq[t * h..(t + 1) * h];
        let out = &mut pre[t * g..(t + 1) * g];
        out.copy_from_slice(bias);
        for jb in 0..h / BLOCK {
            let ob = &mut out[jb * 4 * BLOCK..(jb + 1) * 4 * BLOCK];
            for (k, &xk) in x.iter().enumerate() {
                let wk = &w[(jb * h + k) * 4 * BLOCK..(jb * h + k + 1) * 4 * BLOCK];
                for (o, wv) in ob.iter_mut().zip(wk) {
                    *o += xk * wv;
                }
            }
        }
    }
}

/// One recurrent step: gates = `pre + W_hh h_prev`, then the cell update of every unit.
/// `reverse` walks the blocks back to front, so that the blocks of weights the previous step
/// touched last (still in L1) are the first ones used.
#[allow(clippy::too_many_arguments)]
fn step(
    avx2: bool,
    h: usize,
    w: &[f32],
    pre: &[f32],
    h_prev: Option<&[f32]>,
    c: &mut [f32],
    h_out: &mut [f32],
    reverse: bool,
) {
    let g = 4 * h;
    assert!(w.len() == h * g && pre.len() == g && c.len() == h && h_out.len() == h);
    assert!(h.is_multiple_of(BLOCK) && h_prev.is_none_or(|p| p.len() >= h));
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: AVX2 and FMA are present; the asserts above bound every access.
        unsafe { simd::step(h, w, pre, h_prev, c, h_out, reverse) };
        return;
    }
    let _ = (avx2, reverse);
    for jb in 0..h / BLOCK {
        let mut acc = [0.0f32; 4 * BLOCK];
        acc.copy_from_slice(&pre[jb * 4 * BLOCK..(jb + 1) * 4 * BLOCK]);
        if let Some(hp) = h_prev {
            for (k, &hk) in hp[..h].iter().enumerate() {
                let wk = &w[(jb * h + k) * 4 * BLOCK..(jb * h + k + 1) * 4 * BLOCK];
                for (a, wv) in acc.iter_mut().zip(wk) {
                    *a += hk * wv;
                }
            }
        }
        for u in 0..BLOCK {
            let i = fast_sigmoid(acc[u]);
            let f = fast_sigmoid(acc[BLOCK + u]);
            let gg = fast_tanh(acc[2 * BLOCK + u]);
            let o = fast_sigmoid(acc[3 * BLOCK + u]);
            let j = jb * BLOCK + u;
            c[j] = f * c[j] + i * gg;
            h_out[j] = o * fast_tanh(c[j]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    //! AVX2/FMA bodies of [`super::project`] and [`super::step`] (BLOCK = 16: two vectors per
    //! gate, eight accumulators per block).
    use super::super::kernel::simd::{sigmoid8, tanh8};
    use super::BLOCK;
    use std::arch::x86_64::*;

    const _: () = assert!(BLOCK == 16);

    /// See [`super::project`]; the caller checked all extents.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn project(
        h: usize,
        steps: usize,
        seq: &[f32],
        w: &[f32],
        bias: &[f32],
        pre: &mut [f32],
    ) {
        let g = 4 * h;
        let (sp, wp, bp, pp) = (seq.as_ptr(), w.as_ptr(), bias.as_ptr(), pre.as_mut_ptr());
        let steps4 = steps - steps % 4;
        // SAFETY (all pointer accesses): t < steps, k < h, column < g, bounded by the caller.
        unsafe {
            // Column slices of 16 (two vectors) x 4 rows: 8 accumulators; the 16 KB panel of a
            // block stays in L1 across all rows.
            for col in (0..g).step_by(16) {
                let (jb, within) = (col / (4 * BLOCK), col % (4 * BLOCK));
                let wcol = wp.add(jb * h * 4 * BLOCK + within);
                let b0 = _mm256_loadu_ps(bp.add(col));
                let b1 = _mm256_loadu_ps(bp.add(col + 8));
                let mut t = 0;
                while t < steps4 {
                    let mut acc = [b0, b1, b0, b1, b0, b1, b0, b1];
                    for k in 0..h {
                        let wk = wcol.add(k * 4 * BLOCK);
                        let w0 = _mm256_loadu_ps(wk);
                        let w1 = _mm256_loadu_ps(wk.add(8));
                        for r in 0..4 {
                            let x = _mm256_set1_ps(*sp.add((t + r) * h + k));
                            acc[2 * r] = _mm256_fmadd_ps(x, w0, acc[2 * r]);
                            acc[2 * r + 1] = _mm256_fmadd_ps(x, w1, acc[2 * r + 1]);
                        }
                    }
                    for r in 0..4 {
                        let o = pp.add((t + r) * g + col);
                        _mm256_storeu_ps(o, acc[2 * r]);
                        _mm256_storeu_ps(o.add(8), acc[2 * r + 1]);
                    }
                    t += 4;
                }
                for t in steps4..steps {
                    let (mut a0, mut a1) = (b0, b1);
                    for k in 0..h {
                        let wk = wcol.add(k * 4 * BLOCK);
                        let x = _mm256_set1_ps(*sp.add(t * h + k));
                        a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(wk), a0);
                        a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(wk.add(8)), a1);
                    }
                    let o = pp.add(t * g + col);
                    _mm256_storeu_ps(o, a0);
                    _mm256_storeu_ps(o.add(8), a1);
                }
            }
        }
    }

    /// See [`super::step`]; the caller checked all extents.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn step(
        h: usize,
        w: &[f32],
        pre: &[f32],
        h_prev: Option<&[f32]>,
        c: &mut [f32],
        h_out: &mut [f32],
        reverse: bool,
    ) {
        let blocks = h / BLOCK;
        let (wp, pp, cp, op) = (w.as_ptr(), pre.as_ptr(), c.as_mut_ptr(), h_out.as_mut_ptr());
        // SAFETY (all pointer accesses): block < h / BLOCK, k < h, bounded by the caller.
        unsafe {
            for n in 0..blocks {
                let jb = if reverse { blocks - 1 - n } else { n };
                let pb = pp.add(jb * 4 * BLOCK);
                let mut acc = [_mm256_setzero_ps(); 8];
                for (r, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_loadu_ps(pb.add(8 * r));
                }
                if let Some(hp) = h_prev {
                    let hp = hp.as_ptr();
                    let wb = wp.add(jb * h * 4 * BLOCK);
                    for k in 0..h {
                        let x = _mm256_set1_ps(*hp.add(k));
                        let wk = wb.add(k * 4 * BLOCK);
                        for (r, a) in acc.iter_mut().enumerate() {
                            *a = _mm256_fmadd_ps(x, _mm256_loadu_ps(wk.add(8 * r)), *a);
                        }
                    }
                }
                for s in 0..2 {
                    let i = sigmoid8(acc[s]);
                    let f = sigmoid8(acc[2 + s]);
                    let g = tanh8(acc[4 + s]);
                    let o = sigmoid8(acc[6 + s]);
                    let cj = cp.add(jb * BLOCK + 8 * s);
                    let c_new = _mm256_fmadd_ps(f, _mm256_loadu_ps(cj), _mm256_mul_ps(i, g));
                    _mm256_storeu_ps(cj, c_new);
                    _mm256_storeu_ps(op.add(jb * BLOCK + 8 * s), _mm256_mul_ps(o, tanh8(c_new)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::lstm::network::{tests::load_fixture, Predictor, SplitMix64};

    fn check(layout: Layout, steps: usize, params: &[f32], windows: &[Vec<f32>]) {
        let packed = Packed::new(layout, params).expect("hidden is a multiple of BLOCK");
        let refs: Vec<&[f32]> = windows.iter().map(|w| w.as_slice()).collect();
        let mut want = vec![0.0; windows.len()];
        Predictor::new(layout, steps, windows.len()).predict(params, &refs, &mut want);
        let mut s = Scratch::default();
        for (w, y) in windows.iter().zip(&want) {
            for avx2 in [false, has_avx2_fma()] {
                let got = packed.predict_with(w, &mut s, avx2);
                assert!(
                    (got - y).abs() <= 1e-5 * y.abs().max(1e-2),
                    "avx2 {avx2}: {got} vs {y}"
                );
            }
        }
    }

    #[test]
    fn packed_inference_matches_the_batch_predictor_on_the_spec_fixture() {
        let f = load_fixture("spec");
        check(f.layout, f.steps, &f.params, &f.x);
    }

    #[test]
    fn packed_inference_matches_the_batch_predictor_on_random_nets() {
        for (hidden, layers, steps) in [(16, 1, 5), (32, 3, 17), (64, 2, 60)] {
            let layout = Layout { hidden, layers };
            let mut rng = SplitMix64(hidden as u64);
            let params: Vec<f32> = (0..layout.len())
                .map(|_| (rng.next_f32() - 0.5) * 0.6)
                .collect();
            let windows: Vec<Vec<f32>> = (0..3)
                .map(|_| (0..steps).map(|_| rng.next_f32()).collect())
                .collect();
            check(layout, steps, &params, &windows);
        }
    }

    #[test]
    fn odd_hidden_sizes_are_not_packed() {
        let layout = Layout {
            hidden: 10,
            layers: 2,
        };
        assert!(Packed::new(layout, &vec![0.0; layout.len()]).is_none());
    }
}
