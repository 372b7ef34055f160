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

/// Passes of a recursive forecast run side by side (see [`side_by_side`]): enough independent
/// work per weight load to keep the multiply units busy, few enough that the int16 kernel's
/// accumulators for the widest block (2 x 16 gate rows per pass) fit in the 32 vector registers.
/// The f32 kernel takes them four at a time (8 of AVX2's 16 registers).
pub(super) const PASSES: usize = 8;

/// A network that runs the passes of a recursive forecast side by side, for [`side_by_side`].
pub(super) trait Passes {
    /// Clears the cell states of every pass, before a block of passes starts.
    fn reset(&mut self);
    /// One time step of every layer for the `ready` passes of the block starting at pass `b0`;
    /// `done[p]` is the steps pass `p` has taken, and its input is `seq[b0 + p + done[p]]`.
    fn step(&mut self, seq: &[f32], b0: usize, ready: &[usize], done: &[usize]);
    /// The network's output from the top hidden state of pass `p`.
    fn output(&self, p: usize) -> f32;
    /// The output for an empty window.
    fn bias_only(&self) -> f32;
}

/// The recursive forecast of `horizon` values after `window`: `seq` becomes the window followed
/// by the predictions, with the passes side by side.
///
/// Pass `j` (the prediction `j` steps after the first) reads `seq[j..j + steps]`; its first
/// `steps - j` inputs are the known window, so it need not wait for pass `j - 1` until then.
/// The passes of a block of [`PASSES`] therefore run side by side, every step of every ready
/// pass in one batched product per gate matrix: each weight loaded serves up to 8 passes, and
/// the cells of different passes (a long dependency chain each) overlap. A 7-day forecast takes
/// 66 batched steps instead of 420 single ones, with every pass doing exactly the arithmetic it
/// does alone.
pub(super) fn side_by_side(
    net: &mut impl Passes,
    window: &[f32],
    seq: &mut Vec<f32>,
    horizon: usize,
) {
    let steps = window.len();
    seq.clear();
    seq.extend_from_slice(window);
    if steps == 0 {
        seq.resize(horizon, net.bias_only());
        return;
    }
    for b0 in (0..horizon).step_by(PASSES) {
        let n = PASSES.min(horizon - b0);
        let mut done = [0usize; PASSES];
        net.reset();
        loop {
            // Ready: passes with steps left whose next input is known. The lowest unfinished
            // pass always is, and passes finish in order, one per step at most.
            let mut ready = [0usize; PASSES];
            let mut count = 0;
            for (p, &d) in done.iter().enumerate().take(n) {
                if d < steps && b0 + p + d < seq.len() {
                    ready[count] = p;
                    count += 1;
                }
            }
            if count == 0 {
                break;
            }
            let ready = &ready[..count];
            net.step(seq, b0, ready, &done);
            for &p in ready {
                done[p] += 1;
                if done[p] == steps {
                    seq.push(net.output(p));
                }
            }
        }
    }
}

/// Buffers of one f32 forecast with its passes side by side, reused across calls. Per-pass
/// buffers are `[pass][unit]` (or `[pass][row]`) for the [`PASSES`] passes of a block.
#[derive(Default)]
pub(crate) struct PassScratch {
    /// The window followed by the values predicted so far.
    seq: Vec<f32>,
    /// Per layer: cell and hidden states.
    c: Vec<Aligned<f32>>,
    h: Vec<Aligned<f32>>,
    /// Input projection plus bias of the layer being computed, and the gates.
    pre: Aligned<f32>,
    gates: Aligned<f32>,
}

impl PassScratch {
    fn shape(&mut self, layers: usize, hidden: usize) {
        self.c.resize_with(layers, Aligned::default);
        self.h.resize_with(layers, Aligned::default);
        for l in 0..layers {
            self.c[l].set_len(PASSES * hidden);
            self.h[l].set_len(PASSES * hidden);
        }
        self.pre.set_len(PASSES * 4 * hidden);
        self.gates.set_len(PASSES * 4 * hidden);
    }
}

/// One f32 forecast in progress: the network, its buffers and the kernel.
struct Run<'a> {
    net: &'a Packed,
    c: &'a mut [Aligned<f32>],
    h: &'a mut [Aligned<f32>],
    pre: &'a mut [f32],
    gates: &'a mut [f32],
    avx2: bool,
}

impl Passes for Run<'_> {
    fn reset(&mut self) {
        for c in self.c.iter_mut() {
            c.fill(0.0);
        }
    }

    fn step(&mut self, seq: &[f32], b0: usize, ready: &[usize], done: &[usize]) {
        let (net, h) = (self.net, self.net.hidden);
        let g = 4 * h;
        for &p in ready {
            let x = seq[b0 + p + done[p]];
            net.ends
                .project_input(&[x], &mut self.pre[p * g..(p + 1) * g]);
        }
        let mut later = [0usize; PASSES];
        let mut continuing = 0;
        for &p in ready.iter().filter(|&&p| done[p] > 0) {
            later[continuing] = p;
            continuing += 1;
        }
        for l in 0..net.layers {
            if l > 0 {
                let (below, _) = self.h.split_at(l);
                let input = &below[l - 1];
                let bias = &net.ends.bias[l];
                rows(
                    self.avx2,
                    h,
                    &net.w_ih[l],
                    input,
                    ready,
                    (bias, 0),
                    self.pre,
                );
            }
            // A pass's first step has no previous hidden state: its gates are `pre` alone.
            for &p in ready.iter().filter(|&&p| done[p] == 0) {
                let r = p * g..(p + 1) * g;
                self.gates[r.clone()].copy_from_slice(&self.pre[r]);
            }
            if continuing > 0 {
                let passes = &later[..continuing];
                rows(
                    self.avx2,
                    h,
                    &net.w_hh[l],
                    &self.h[l],
                    passes,
                    (self.pre, g),
                    self.gates,
                );
            }
            for &p in ready {
                let u = p * h..(p + 1) * h;
                cell(
                    self.avx2,
                    &self.gates[p * g..(p + 1) * g],
                    &mut self.c[l][u.clone()],
                    &mut self.h[l][u],
                );
            }
        }
    }

    fn output(&self, p: usize) -> f32 {
        let h = self.net.hidden;
        self.net
            .ends
            .output(&self.h[self.net.layers - 1][p * h..(p + 1) * h])
    }

    fn bias_only(&self) -> f32 {
        self.net.ends.bias_only()
    }
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

    /// The recursive forecast (network units): `horizon` one-step predictions, each appended to
    /// the window in place of its oldest value for the next, with the passes side by side
    /// ([`side_by_side`]); exactly what [`Self::predict`] on each shifted window gives.
    pub fn forecast<'s>(
        &self,
        window: &[f32],
        horizon: usize,
        s: &'s mut PassScratch,
    ) -> &'s [f32] {
        self.forecast_with(window, horizon, s, has_avx2_fma())
    }

    /// [`Self::forecast`], on the AVX2 kernels only when `avx2`.
    pub(crate) fn forecast_with<'s>(
        &self,
        window: &[f32],
        horizon: usize,
        s: &'s mut PassScratch,
        avx2: bool,
    ) -> &'s [f32] {
        s.shape(self.layers, self.hidden);
        let PassScratch {
            seq,
            c,
            h,
            pre,
            gates,
        } = s;
        let mut run = Run {
            net: self,
            c,
            h,
            pre,
            gates,
            avx2,
        };
        side_by_side(&mut run, window, seq, horizon);
        &s.seq[window.len()..]
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

/// For every pass `p` in `passes`: `out[p] = base[p] + x[p] W`, `W` packed
/// `[block][k][gate][unit]` (`h x 4h`), `x` `[pass][k]`, `out` `[pass][row]`, and `base`
/// `(values, stride)`, stride 0 for one row shared by every pass. Each element sums in the order
/// [`step`] and [`project`] do, so a batched pass equals the single one bit for bit.
fn rows(
    avx2: bool,
    h: usize,
    w: &[f32],
    x: &[f32],
    passes: &[usize],
    (base, stride): (&[f32], usize),
    out: &mut [f32],
) {
    let g = 4 * h;
    assert!(w.len() == h * g && h.is_multiple_of(BLOCK) && passes.len() <= PASSES);
    for &p in passes {
        assert!((p + 1) * h <= x.len() && p * stride + g <= base.len() && (p + 1) * g <= out.len());
    }
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: AVX2 and FMA are present; the asserts above bound every access.
        unsafe { simd::rows(h, w, x, passes, (base, stride), out) };
        return;
    }
    let _ = avx2;
    for &p in passes {
        let xp = &x[p * h..(p + 1) * h];
        let o = &mut out[p * g..(p + 1) * g];
        o.copy_from_slice(&base[p * stride..p * stride + g]);
        for jb in 0..h / BLOCK {
            let ob = &mut o[jb * 4 * BLOCK..(jb + 1) * 4 * BLOCK];
            for (k, &xk) in xp.iter().enumerate() {
                let wk = &w[(jb * h + k) * 4 * BLOCK..(jb * h + k + 1) * 4 * BLOCK];
                for (a, wv) in ob.iter_mut().zip(wk) {
                    *a += xk * wv;
                }
            }
        }
    }
}

/// The gate non-linearities and cell update of every unit from the interleaved `gates`, as
/// [`step`] does them after its product.
fn cell(avx2: bool, gates: &[f32], c: &mut [f32], h_out: &mut [f32]) {
    let h = c.len();
    assert!(gates.len() == 4 * h && h_out.len() == h && h.is_multiple_of(BLOCK));
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: AVX2 and FMA are present; the assert above bounds every access.
        unsafe { simd::cell(gates, c, h_out) };
        return;
    }
    let _ = avx2;
    for j in 0..h {
        let base = (j / BLOCK) * 4 * BLOCK + j % BLOCK;
        let i = fast_sigmoid(gates[base]);
        let f = fast_sigmoid(gates[base + BLOCK]);
        let gg = fast_tanh(gates[base + 2 * BLOCK]);
        let o = fast_sigmoid(gates[base + 3 * BLOCK]);
        c[j] = f * c[j] + i * gg;
        h_out[j] = o * fast_tanh(c[j]);
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
    /// See [`super::rows`]; the caller checked all extents.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rows(
        h: usize,
        w: &[f32],
        x: &[f32],
        passes: &[usize],
        (base, stride): (&[f32], usize),
        out: &mut [f32],
    ) {
        let (wp, xp, bp, op) = (w.as_ptr(), x.as_ptr(), base.as_ptr(), out.as_mut_ptr());
        for group in passes.chunks(4) {
            // SAFETY: as the caller checked, for every pass of the group.
            unsafe {
                match *group {
                    [a, b, c, d] => rows_of::<4>(h, wp, xp, [a, b, c, d], (bp, stride), op),
                    [a, b, c] => rows_of::<3>(h, wp, xp, [a, b, c], (bp, stride), op),
                    [a, b] => rows_of::<2>(h, wp, xp, [a, b], (bp, stride), op),
                    [a] => rows_of::<1>(h, wp, xp, [a], (bp, stride), op),
                    _ => {}
                }
            }
        }
    }

    /// [`rows`] for `R` passes at once: every weight vector loaded serves all of them, with
    /// `2 R` accumulators per 16-column slice.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn rows_of<const R: usize>(
        h: usize,
        wp: *const f32,
        xp: *const f32,
        passes: [usize; R],
        (bp, stride): (*const f32, usize),
        op: *mut f32,
    ) {
        let g = 4 * h;
        // SAFETY (all pointer accesses): pass rows, k < h and columns < g, bounded by the caller.
        unsafe {
            for col in (0..g).step_by(16) {
                let (jb, within) = (col / (4 * BLOCK), col % (4 * BLOCK));
                let wcol = wp.add(jb * h * 4 * BLOCK + within);
                let mut acc = [[_mm256_setzero_ps(); 2]; R];
                for (a, &p) in acc.iter_mut().zip(&passes) {
                    let b = bp.add(p * stride + col);
                    *a = [_mm256_loadu_ps(b), _mm256_loadu_ps(b.add(8))];
                }
                for k in 0..h {
                    let wk = wcol.add(k * 4 * BLOCK);
                    let (w0, w1) = (_mm256_loadu_ps(wk), _mm256_loadu_ps(wk.add(8)));
                    for (a, &p) in acc.iter_mut().zip(&passes) {
                        let x = _mm256_set1_ps(*xp.add(p * h + k));
                        a[0] = _mm256_fmadd_ps(x, w0, a[0]);
                        a[1] = _mm256_fmadd_ps(x, w1, a[1]);
                    }
                }
                for (a, &p) in acc.iter().zip(&passes) {
                    let o = op.add(p * g + col);
                    _mm256_storeu_ps(o, a[0]);
                    _mm256_storeu_ps(o.add(8), a[1]);
                }
            }
        }
    }

    /// See [`super::cell`]; the caller checked all extents.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn cell(gates: &[f32], c: &mut [f32], h_out: &mut [f32]) {
        let (gp, cp, op) = (gates.as_ptr(), c.as_mut_ptr(), h_out.as_mut_ptr());
        // SAFETY (all pointer accesses): unit < c.len(), gate row < 4 c.len(), as checked.
        unsafe {
            for jb in 0..c.len() / BLOCK {
                let gb = gp.add(jb * 4 * BLOCK);
                for s in 0..2 {
                    let i = sigmoid8(_mm256_loadu_ps(gb.add(8 * s)));
                    let f = sigmoid8(_mm256_loadu_ps(gb.add(BLOCK + 8 * s)));
                    let g = tanh8(_mm256_loadu_ps(gb.add(2 * BLOCK + 8 * s)));
                    let o = sigmoid8(_mm256_loadu_ps(gb.add(3 * BLOCK + 8 * s)));
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
    fn side_by_side_passes_equal_one_pass_at_a_time() {
        let f = load_fixture("spec");
        let mut nets = vec![(f.layout, f.params.clone())];
        for (hidden, layers) in [(16, 1), (32, 3)] {
            let layout = Layout { hidden, layers };
            let mut rng = SplitMix64(7 * hidden as u64);
            let params = (0..layout.len())
                .map(|_| (rng.next_f32() - 0.5) * 0.6)
                .collect();
            nets.push((layout, params));
        }
        let mut rng = SplitMix64(3);
        let window: Vec<f32> = (0..f.steps).map(|_| rng.next_f32() - 0.5).collect();
        let (mut one, mut many) = (Scratch::default(), PassScratch::default());
        for (layout, params) in &nets {
            let packed = Packed::new(*layout, params).unwrap();
            for avx2 in [false, has_avx2_fma()] {
                for horizon in [1, 7, 8, 9, 30] {
                    // The plain recursion: predict, shift the window, append.
                    let mut w = window.clone();
                    let want: Vec<f32> = (0..horizon)
                        .map(|_| {
                            let y = packed.predict_with(&w, &mut one, avx2);
                            w.rotate_left(1);
                            *w.last_mut().unwrap() = y;
                            y
                        })
                        .collect();
                    let got = packed.forecast_with(&window, horizon, &mut many, avx2);
                    assert_eq!(got, &want[..], "{layout:?}, avx2 {avx2}, {horizon} days");
                }
                // Windows shorter than the horizon: later passes read earlier predictions only.
                let short = &window[..3];
                let got = packed.forecast_with(short, 8, &mut many, avx2).to_vec();
                let mut w = short.to_vec();
                for (d, y) in got.iter().enumerate() {
                    assert_eq!(*y, packed.predict_with(&w, &mut one, avx2), "day {d}");
                    w.rotate_left(1);
                    *w.last_mut().unwrap() = *y;
                }
            }
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
