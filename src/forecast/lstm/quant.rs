//! Int16 inference for cached forecasts: the path behind [`super::Precision::Int16`].
//!
//! A cached `/predict` is 7 recursive passes of a 60-step window through both layers, i.e.
//! 1,260 matrix-vector products with 64 KB (f32) gate matrices. In f32 a matrix does not fit
//! the 32-48 KB L1 of the CPUs we serve on, so the f32 kernel ([`super::infer`]) streams it from
//! L2 at every step (profiled: the FMAs wait on their loads). Here every gate matrix is
//! quantised once per model to int16 (32 KB) and the products run on AVX-512 VNNI (`vpdpwssd`:
//! 32 multiply-adds per instruction, exact int32 accumulation), up to 8 passes at a time (see
//! [`Quantized::forecast`]). Everything else stays f32: biases, the first layer's input
//! weights, the gate non-linearities, the cell state and the output layer.
//!
//! Quantisation, per gate row `r` with scale `s_r`: `q = round(w / s_r)` with
//! `s_r = max(max|w| / 32767, sum|w| / (65538 - k))`, and the hidden state `h` (always in
//! (-1, 1)) as `round(32767 h)`. The second term of `s_r` bounds `sum|q| * 32767` below 2^31,
//! so no int32 sum can overflow whatever the hidden state is. Measured against the f32 path on
//! models trained on real prices, the forecast price moves by at most ~1e-4 relative (see the
//! tests and README "Inference precision"); the f32 path stays available and is what training,
//! validation and backtests use.

use super::aligned::Aligned;
use super::infer::{interleaved, side_by_side, Ends, Passes, BLOCK, PASSES};
use super::kernel::{fast_sigmoid, fast_tanh};
use super::network::Layout;

/// Gate rows per chunk: sixteen 16-lane int32 accumulators.
const CHUNK: usize = 256;
/// Scale of the quantised hidden state (`|h| < 1`).
const H_SCALE: f32 = 32767.0;
/// Largest `sum|q|` of a row such that `sum|q| * 32767 < 2^31`.
const ROW_SUM_LIMIT: f64 = 65538.0;

/// A `[4H, k]` gate matrix quantised per row, laid out for [`simd::gates`]:
/// `[chunk][k / 2][row within chunk][2]`, rows in the interleaved gate order.
#[derive(Clone, Debug)]
pub(crate) struct QMatrix {
    k: usize,
    q: Aligned<i16>,
    /// Per interleaved row: `s_r / 32767`, so that `acc * scale` is the product in f32 units.
    scale: Aligned<f32>,
}

impl QMatrix {
    /// Quantises the PyTorch-ordered `[4 * hidden, k]` matrix `w` (`k` even).
    fn new(hidden: usize, k: usize, w: &[f32]) -> Self {
        let g = 4 * hidden;
        debug_assert!(k.is_multiple_of(2) && w.len() == g * k && g.is_multiple_of(CHUNK));
        let mut q = Aligned::zeroed(g * k);
        let mut scale = Aligned::<f32>::zeroed(g);
        for row in 0..g {
            let ws = &w[row * k..(row + 1) * k];
            let s = row_scale(ws);
            let p = interleaved(hidden, row);
            scale[p] = (s / f64::from(H_SCALE)) as f32;
            for (kk, &x) in ws.iter().enumerate() {
                let v = if s > 0.0 {
                    (f64::from(x) / s).round() as i16
                } else {
                    0
                };
                q[slot(k, p, kk)] = v;
            }
        }
        Self { k, q, scale }
    }
}

/// Index of weight `kk` of interleaved row `p` in a [`QMatrix`] with `k` inputs.
fn slot(k: usize, p: usize, kk: usize) -> usize {
    let (chunk, within) = (p / CHUNK, p % CHUNK);
    (chunk * k + kk - kk % 2) * CHUNK + 2 * within + kk % 2
}

/// The per-row scale described in the module docs (0 for an all-zero row).
fn row_scale(w: &[f32]) -> f64 {
    let max = w.iter().fold(0.0f64, |m, x| m.max(f64::from(x.abs())));
    let sum: f64 = w.iter().map(|x| f64::from(x.abs())).sum();
    (max / f64::from(i16::MAX)).max(sum / (ROW_SUM_LIMIT - w.len() as f64))
}

/// Weights of a trained network for int16 inference.
#[derive(Clone, Debug)]
pub(crate) struct Quantized {
    hidden: usize,
    layers: usize,
    /// Input weights of layers >= 1 (index 0 unused).
    w_ih: Vec<Option<QMatrix>>,
    w_hh: Vec<QMatrix>,
    /// Layer 0's input weights, biases and output layer, f32 as in the f32 path.
    ends: Ends,
}

/// Buffers of one int16 forecast, reused across calls. Per-pass buffers are `[pass][unit]` (or
/// `[pass][row]`) for the [`PASSES`] passes of a block.
#[derive(Default)]
pub(crate) struct QScratch {
    /// The window followed by the values predicted so far.
    seq: Vec<f32>,
    /// Per layer: cell states, hidden states and their quantised copies.
    c: Vec<Aligned<f32>>,
    h: Vec<Aligned<f32>>,
    hq: Vec<Aligned<i16>>,
    /// Input projection plus bias of the layer being computed.
    pre: Aligned<f32>,
    gates: Aligned<f32>,
}

impl QScratch {
    fn shape(&mut self, layers: usize, hidden: usize) {
        self.c.resize_with(layers, Aligned::default);
        self.h.resize_with(layers, Aligned::default);
        self.hq.resize_with(layers, Aligned::default);
        for l in 0..layers {
            self.c[l].set_len(PASSES * hidden);
            self.h[l].set_len(PASSES * hidden);
            self.hq[l].set_len(PASSES * hidden);
        }
        self.pre.set_len(PASSES * 4 * hidden);
        self.gates.set_len(PASSES * 4 * hidden);
    }
}

impl Quantized {
    /// Quantises `params`; `None` where this CPU has no int16 kernel (AVX-512 VNNI or AVX2) or the
    /// hidden size is not a
    /// multiple of 64 (one chunk of gate rows), so that the caller keeps the f32 path.
    pub fn new(layout: Layout, params: &[f32]) -> Option<Self> {
        QKernel::best()?;
        Self::build(layout, params)
    }

    /// [`Self::new`] without the CPU check (tests run the scalar twin on any CPU).
    fn build(layout: Layout, params: &[f32]) -> Option<Self> {
        let h = layout.hidden;
        if h == 0 || !(4 * h).is_multiple_of(CHUNK) || params.len() != layout.len() {
            return None;
        }
        let w_ih = (0..layout.layers)
            .map(|l| (l > 0).then(|| QMatrix::new(h, h, &params[layout.w_ih(l)])))
            .collect();
        let w_hh = (0..layout.layers)
            .map(|l| QMatrix::new(h, h, &params[layout.w_hh(l)]))
            .collect();
        Some(Self {
            hidden: h,
            layers: layout.layers,
            w_ih,
            w_hh,
            ends: Ends::new(layout, params),
        })
    }

    /// The recursive forecast (scaled units): `horizon` one-step predictions, each appended to
    /// the window in place of its oldest value for the next, on the VNNI kernel, with the passes
    /// side by side ([`side_by_side`]).
    pub fn forecast<'s>(&self, window: &[f32], horizon: usize, s: &'s mut QScratch) -> &'s [f32] {
        let kernel = QKernel::best().expect("Quantized::new checked the CPU");
        self.forecast_with(window, horizon, s, kernel)
    }

    /// [`Self::forecast`] on `kernel` ([`QKernel::Scalar`]: the portable twin of the same integer
    /// arithmetic).
    pub(crate) fn forecast_with<'s>(
        &self,
        window: &[f32],
        horizon: usize,
        s: &'s mut QScratch,
        kernel: QKernel,
    ) -> &'s [f32] {
        s.shape(self.layers, self.hidden);
        let mut seq = std::mem::take(&mut s.seq);
        side_by_side(
            &mut QRun {
                net: self,
                s,
                kernel,
            },
            window,
            &mut seq,
            horizon,
        );
        s.seq = seq;
        &s.seq[window.len()..]
    }

    /// One time step of both layers for the `ready` passes of the block starting at pass `b0`
    /// (`done[p]`: steps pass `p` has taken).
    fn step(
        &self,
        seq: &[f32],
        b0: usize,
        ready: &[usize],
        done: &[usize],
        s: &mut QScratch,
        kernel: QKernel,
    ) {
        let (h, g) = (self.hidden, 4 * self.hidden);
        let mut later = [0usize; PASSES];
        let mut continuing = 0;
        for &p in ready.iter().filter(|&&p| done[p] > 0) {
            later[continuing] = p;
            continuing += 1;
        }
        for &p in ready {
            let x = seq[b0 + p + done[p]];
            let pre = &mut s.pre[p * g..(p + 1) * g];
            #[cfg(target_arch = "x86_64")]
            if kernel == QKernel::Vnni {
                let (w, bias) = (&self.ends.w_in0, &self.ends.bias[0]);
                assert!(supported() && w.len() == g && bias.len() == g);
                // SAFETY: AVX-512 F present (asserted); all three slices are `g` long.
                unsafe { simd::project(x, w, bias, pre) };
                continue;
            }
            self.ends.project_input(&[x], pre);
        }
        for l in 0..self.layers {
            if let Some(w_ih) = &self.w_ih[l] {
                let bias = &self.ends.bias[l];
                gates(kernel, w_ih, &s.hq[l - 1], ready, (bias, 0), &mut s.pre);
            }
            // A pass's first step has no previous hidden state: its gates are `pre` alone.
            for &p in ready.iter().filter(|&&p| done[p] == 0) {
                let r = p * g..(p + 1) * g;
                s.gates[r.clone()].copy_from_slice(&s.pre[r]);
            }
            if continuing > 0 {
                let passes = &later[..continuing];
                gates(
                    kernel,
                    &self.w_hh[l],
                    &s.hq[l],
                    passes,
                    (&s.pre, g),
                    &mut s.gates,
                );
            }
            for &p in ready {
                let u = p * h..(p + 1) * h;
                cell(
                    kernel,
                    &s.gates[p * g..(p + 1) * g],
                    &mut s.c[l][u.clone()],
                    &mut s.h[l][u.clone()],
                    &mut s.hq[l][u],
                );
            }
        }
    }

    /// One-step prediction (scaled units) for one window.
    #[cfg(test)]
    fn predict_with(&self, window: &[f32], s: &mut QScratch, kernel: QKernel) -> f32 {
        self.forecast_with(window, 1, s, kernel)[0]
    }
}

/// One int16 forecast in progress, for [`side_by_side`].
struct QRun<'a> {
    net: &'a Quantized,
    s: &'a mut QScratch,
    kernel: QKernel,
}

impl Passes for QRun<'_> {
    fn reset(&mut self) {
        for c in &mut self.s.c {
            c.fill(0.0);
        }
    }

    fn step(&mut self, seq: &[f32], b0: usize, ready: &[usize], done: &[usize]) {
        self.net.step(seq, b0, ready, done, self.s, self.kernel);
    }

    fn output(&self, p: usize) -> f32 {
        let h = self.net.hidden;
        self.net
            .ends
            .output(&self.s.h[self.net.layers - 1][p * h..(p + 1) * h])
    }

    fn bias_only(&self) -> f32 {
        self.net.ends.bias_only()
    }
}

/// The int16 kernels: the same integer products on every one (`vpdpwssd` on AVX-512 VNNI,
/// `vpmaddwd` + `vpaddd` on AVX2, which wrap alike), with each one's own f32 non-linearities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QKernel {
    /// Portable Rust, the twin the tests hold the others to.
    #[cfg_attr(not(test), allow(dead_code))]
    Scalar,
    /// AVX2 and FMA: 8 gate rows per `vpmaddwd`, the f32 path's `sigmoid8` and `tanh8`.
    Avx2,
    /// AVX-512 F, BW, DQ and VNNI.
    Vnni,
}

impl QKernel {
    /// The fastest int16 kernel this CPU runs (`None`: serve f32). `LSTM_INT16_KERNEL=avx2`
    /// takes the AVX2 kernel on a VNNI CPU, to measure there what an AVX2-only CPU runs.
    pub(crate) fn best() -> Option<Self> {
        use std::sync::OnceLock;
        static FORCE_AVX2: OnceLock<bool> = OnceLock::new();
        let force_avx2 = *FORCE_AVX2
            .get_or_init(|| std::env::var("LSTM_INT16_KERNEL").is_ok_and(|v| v == "avx2"));
        if supported() && !force_avx2 {
            Some(Self::Vnni)
        } else if avx2_supported() {
            Some(Self::Avx2)
        } else {
            None
        }
    }

    /// The name `/health` reports for it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Scalar => "int16-scalar",
            Self::Avx2 => "int16-avx2",
            Self::Vnni => "int16-avx512vnni",
        }
    }

    /// Whether this CPU can run it.
    pub(crate) fn available(self) -> bool {
        match self {
            Self::Scalar => true,
            Self::Avx2 => avx2_supported(),
            Self::Vnni => supported(),
        }
    }
}

/// Whether this CPU has AVX2 and FMA, for [`QKernel::Avx2`].
fn avx2_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU runs the AVX-512 VNNI kernels (AVX-512 F, BW, DQ and VNNI).
pub(crate) fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static SUPPORTED: OnceLock<bool> = OnceLock::new();
        *SUPPORTED.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vnni")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// For every pass `p` in `passes`: `out[p][r] = base[p][r] + scale[r] * sum_k q[r, k] * hq[p][k]`
/// for every interleaved gate row `r`. `hq` and `out` are `[pass][k]` and `[pass][row]`;
/// `base` is `(values, stride)`, stride 0 for one row vector shared by every pass.
fn gates(
    kernel: QKernel,
    w: &QMatrix,
    hq: &[i16],
    passes: &[usize],
    (base, stride): (&[f32], usize),
    out: &mut [f32],
) {
    let (g, k) = (w.scale.len(), w.k);
    assert!(g.is_multiple_of(CHUNK) && k.is_multiple_of(2) && w.q.len() == g * k);
    assert!(!passes.is_empty() && passes.len() <= PASSES);
    for &p in passes {
        assert!(
            (p + 1) * k <= hq.len() && p * stride + g <= base.len() && (p + 1) * g <= out.len()
        );
    }
    assert!(
        kernel.available(),
        "{kernel:?} is not available on this CPU"
    );
    #[cfg(target_arch = "x86_64")]
    match kernel {
        // SAFETY: the CPU has the kernel's features (asserted); the asserts above bound every
        // access.
        QKernel::Vnni => return unsafe { simd::gates(w, hq, passes, (base, stride), out) },
        QKernel::Avx2 => return unsafe { avx2::gates(w, hq, passes, (base, stride), out) },
        QKernel::Scalar => {}
    }
    for &p in passes {
        let x = &hq[p * k..(p + 1) * k];
        for r in 0..g {
            let mut acc = 0i32;
            for (kk, &v) in x.iter().enumerate() {
                acc = acc.wrapping_add(i32::from(w.q[slot(k, r, kk)]) * i32::from(v));
            }
            out[p * g + r] = (acc as f32).mul_add(w.scale[r], base[p * stride + r]);
        }
    }
}

/// Gate non-linearities and cell update of every unit from the interleaved `gates`; writes the
/// cell state `c`, the hidden state `h` and its quantised copy `hq`.
fn cell(kernel: QKernel, gates: &[f32], c: &mut [f32], h: &mut [f32], hq: &mut [i16]) {
    let units = c.len();
    assert!(gates.len() == 4 * units && h.len() == units && hq.len() == units);
    assert!(units.is_multiple_of(BLOCK));
    assert!(
        kernel.available(),
        "{kernel:?} is not available on this CPU"
    );
    #[cfg(target_arch = "x86_64")]
    match kernel {
        // SAFETY: the CPU has the kernel's features (asserted); the asserts above bound every
        // access.
        QKernel::Vnni => return unsafe { simd::cell(gates, c, h, hq) },
        QKernel::Avx2 => return unsafe { avx2::cell(gates, c, h, hq) },
        QKernel::Scalar => {}
    }
    for j in 0..units {
        let base = (j / BLOCK) * 4 * BLOCK + j % BLOCK;
        let i = fast_sigmoid(gates[base]);
        let f = fast_sigmoid(gates[base + BLOCK]);
        let gg = fast_tanh(gates[base + 2 * BLOCK]);
        let o = fast_sigmoid(gates[base + 3 * BLOCK]);
        c[j] = f * c[j] + i * gg;
        h[j] = o * fast_tanh(c[j]);
        hq[j] = quantise(h[j]);
    }
}

/// `round(32767 h)` (ties to even, as `vcvtps2dq` does), saturated to int16.
fn quantise(h: f32) -> i16 {
    (h * H_SCALE).round_ties_even().clamp(-32768.0, 32767.0) as i16
}

/// Where the rows of each of `passes` start: in `hq` (`[pass][k]`), in `base` (`(values,
/// stride)`) and in `out` (`[pass][g]`), for the SIMD bodies of [`gates`]. Bounds-checked here;
/// the caller checked that a whole row fits after each.
#[cfg(target_arch = "x86_64")]
fn pass_rows<const N: usize>(
    k: usize,
    g: usize,
    hq: &[i16],
    passes: &[usize],
    (base, stride): (&[f32], usize),
    out: &mut [f32],
) -> ([*const i16; N], [*const f32; N], [*mut f32; N]) {
    let hp = std::array::from_fn(|c| hq[passes[c] * k..].as_ptr());
    let bp = std::array::from_fn(|c| base[passes[c] * stride..].as_ptr());
    let op = std::array::from_fn(|c| out[passes[c] * g..].as_mut_ptr());
    (hp, bp, op)
}

#[cfg(target_arch = "x86_64")]
mod simd {
    //! AVX-512 bodies of [`super::gates`] and [`super::cell`].
    use super::{pass_rows, QMatrix, CHUNK, H_SCALE};
    use std::arch::x86_64::*;

    const _: () = assert!(CHUNK == 256 && super::BLOCK == 16);

    /// See [`super::gates`]; the caller checked all extents, the pass count and the CPU. Each
    /// pass count has its own register blocking: `V` row vectors of 16 by `N` passes of int32
    /// accumulators (16 to 24 of the 32 registers), so that every weight vector loaded feeds
    /// `N` multiply-adds and no accumulator waits on its previous update.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn gates(
        w: &QMatrix,
        hq: &[i16],
        passes: &[usize],
        base: (&[f32], usize),
        out: &mut [f32],
    ) {
        // SAFETY: as for this function.
        unsafe {
            match passes.len() {
                1 => block::<1, 16>(w, hq, passes, base, out),
                2 => block::<2, 8>(w, hq, passes, base, out),
                3 => block::<3, 4>(w, hq, passes, base, out),
                4 => block::<4, 4>(w, hq, passes, base, out),
                5 => block::<5, 4>(w, hq, passes, base, out),
                6 => block::<6, 2>(w, hq, passes, base, out),
                7 => block::<7, 2>(w, hq, passes, base, out),
                _ => block::<8, 2>(w, hq, passes, base, out),
            }
        }
    }

    /// [`gates`] for exactly `N` passes, `V` row vectors (`16 V` gate rows) at a time.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn block<const N: usize, const V: usize>(
        w: &QMatrix,
        hq: &[i16],
        passes: &[usize],
        base: (&[f32], usize),
        out: &mut [f32],
    ) {
        let (k, g) = (w.k, w.scale.len());
        let (qp, sp) = (w.q.as_ptr(), w.scale.as_ptr());
        let (hp, bp, op) = pass_rows::<N>(k, g, hq, passes, base, out);
        // SAFETY (all pointer accesses): passes[c] and every row and pair index are within the
        // extents the caller asserted.
        unsafe {
            for chunk in 0..g / CHUNK {
                let wc = qp.add(chunk * k * CHUNK);
                for rb in 0..CHUNK / (16 * V) {
                    let mut acc = [[_mm512_setzero_si512(); V]; N];
                    for pair in 0..k / 2 {
                        let wk = wc.add(pair * 2 * CHUNK + rb * V * 32);
                        let mut wv = [_mm512_setzero_si512(); V];
                        for (v, x) in wv.iter_mut().enumerate() {
                            *x = _mm512_loadu_si512(wk.add(32 * v).cast());
                        }
                        for c in 0..N {
                            let x = _mm512_set1_epi32(
                                hp[c].add(2 * pair).cast::<i32>().read_unaligned(),
                            );
                            for v in 0..V {
                                acc[c][v] = _mm512_dpwssd_epi32(acc[c][v], x, wv[v]);
                            }
                        }
                    }
                    for c in 0..N {
                        for (v, a) in acc[c].iter().enumerate() {
                            let o = chunk * CHUNK + (rb * V + v) * 16;
                            let r = _mm512_fmadd_ps(
                                _mm512_cvtepi32_ps(*a),
                                _mm512_loadu_ps(sp.add(o)),
                                _mm512_loadu_ps(bp[c].add(o)),
                            );
                            _mm512_storeu_ps(op[c].add(o), r);
                        }
                    }
                }
            }
        }
    }

    /// `out = bias + x * w` (multiply, then add: the rounding of `Ends::project_input`), 16
    /// lanes at a time; the baseline build of that loop was 4-wide SSE, ~3% of a served
    /// forecast. The caller checked the CPU and that all slices have one length, a multiple of 16.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn project(x: f32, w: &[f32], bias: &[f32], out: &mut [f32]) {
        let xv = _mm512_set1_ps(x);
        // SAFETY: i + 16 <= len for all three slices.
        unsafe {
            for i in (0..out.len()).step_by(16) {
                let v = _mm512_add_ps(
                    _mm512_loadu_ps(bias.as_ptr().add(i)),
                    _mm512_mul_ps(xv, _mm512_loadu_ps(w.as_ptr().add(i))),
                );
                _mm512_storeu_ps(out.as_mut_ptr().add(i), v);
            }
        }
    }

    /// See [`super::cell`]; the caller checked all extents and the CPU. The non-linearities
    /// are cheaper than the f32 path's (see [`sigmoid16`]): the cell was a third of the time.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq")]
    pub(super) unsafe fn cell(gates: &[f32], c: &mut [f32], h: &mut [f32], hq: &mut [i16]) {
        let (gp, cp, hp, qp) = (
            gates.as_ptr(),
            c.as_mut_ptr(),
            h.as_mut_ptr(),
            hq.as_mut_ptr(),
        );
        // SAFETY (all pointer accesses): block < units / 16, bounded by the caller.
        unsafe {
            for b in 0..c.len() / 16 {
                let gb = gp.add(64 * b);
                let i = sigmoid16(_mm512_loadu_ps(gb));
                let f = sigmoid16(_mm512_loadu_ps(gb.add(16)));
                let g = tanh16(_mm512_loadu_ps(gb.add(32)));
                let o = sigmoid16(_mm512_loadu_ps(gb.add(48)));
                let cj = cp.add(16 * b);
                let c_new = _mm512_fmadd_ps(f, _mm512_loadu_ps(cj), _mm512_mul_ps(i, g));
                _mm512_storeu_ps(cj, c_new);
                let hv = _mm512_mul_ps(o, tanh16(c_new));
                _mm512_storeu_ps(hp.add(16 * b), hv);
                let q = _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(
                    hv,
                    _mm512_set1_ps(H_SCALE),
                )));
                _mm256_storeu_si256(qp.add(16 * b).cast(), q);
            }
        }
    }

    /// `exp(-x)` as `2^t`, `t = -x log2(e)`: `vreduceps` gives `f = t - floor(t)` in [0, 1),
    /// whose `2^f` is a degree-5 polynomial (relative error 1.6e-7, fitted for this), and
    /// `vscalefps` multiplies by `2^floor(t)`. `t` is capped at 80 so that `1 + 2^t` stays
    /// finite.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn exp_neg16(x: __m512) -> __m512 {
        let t = _mm512_min_ps(
            _mm512_mul_ps(x, _mm512_set1_ps(-std::f32::consts::LOG2_E)),
            _mm512_set1_ps(80.0),
        );
        let f = _mm512_reduce_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(t);
        let mut p = _mm512_set1_ps(1.877_575_4e-3);
        for c in [
            8.989_343e-3,
            5.582_631_4e-2,
            2.401_536_1e-1,
            6.931_531e-1,
            0.999_999_94,
        ] {
            p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
        }
        _mm512_scalef_ps(p, t)
    }

    /// `1 / (1 + exp(-x))`, the reciprocal from `vrcp14ps` and one Newton step (a 512-bit
    /// division costs ~16 cycles of throughput, and a step needs 20 of them).
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn sigmoid16(x: __m512) -> __m512 {
        let d = _mm512_add_ps(_mm512_set1_ps(1.0), exp_neg16(x));
        let r = _mm512_rcp14_ps(d);
        _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0)))
    }

    /// `tanh(x) = 2 sigmoid(2x) - 1`: absolute error ~1e-7, far below the 3e-5 step of the
    /// quantised hidden state it feeds.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn tanh16(x: __m512) -> __m512 {
        let s = sigmoid16(_mm512_add_ps(x, x));
        _mm512_fmsub_ps(s, _mm512_set1_ps(2.0), _mm512_set1_ps(1.0))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2 bodies of [`super::gates`] and [`super::cell`]: the integer products of the VNNI
    //! kernel with `vpmaddwd` (two int16 products summed into an int32, wrapping as `vpdpwssd`
    //! does) and `vpaddd`, 8 gate rows per vector; the f32 path's non-linearities.
    use super::super::kernel::simd::{sigmoid8, tanh8};
    use super::{pass_rows, QMatrix, CHUNK, H_SCALE};
    use std::arch::x86_64::*;

    /// See [`super::gates`]; the caller checked all extents, the pass count and the CPU. `V`
    /// row vectors of 8 by `N` passes of accumulators, at most 8 of the 16 registers.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gates(
        w: &QMatrix,
        hq: &[i16],
        passes: &[usize],
        base: (&[f32], usize),
        out: &mut [f32],
    ) {
        // SAFETY: as for this function.
        unsafe {
            match passes.len() {
                1 => block::<1, 8>(w, hq, passes, base, out),
                2 => block::<2, 4>(w, hq, passes, base, out),
                3 | 4 => {
                    let (a, b) = passes.split_at(2);
                    block::<2, 4>(w, hq, a, base, out);
                    gates(w, hq, b, base, out);
                }
                _ => {
                    let (a, b) = passes.split_at(4);
                    block::<4, 2>(w, hq, a, base, out);
                    gates(w, hq, b, base, out);
                }
            }
        }
    }

    /// [`gates`] for exactly `N` passes, `V` row vectors (`8 V` gate rows) at a time.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block<const N: usize, const V: usize>(
        w: &QMatrix,
        hq: &[i16],
        passes: &[usize],
        base: (&[f32], usize),
        out: &mut [f32],
    ) {
        let (k, g) = (w.k, w.scale.len());
        let (qp, sp) = (w.q.as_ptr(), w.scale.as_ptr());
        let (hp, bp, op) = pass_rows::<N>(k, g, hq, passes, base, out);
        // SAFETY (all pointer accesses): passes[c] and every row and pair index are within the
        // extents the caller asserted.
        unsafe {
            for chunk in 0..g / CHUNK {
                let wc = qp.add(chunk * k * CHUNK);
                for rb in 0..CHUNK / (8 * V) {
                    let mut acc = [[_mm256_setzero_si256(); V]; N];
                    for pair in 0..k / 2 {
                        let wk = wc.add(pair * 2 * CHUNK + rb * V * 16);
                        let mut wv = [_mm256_setzero_si256(); V];
                        for (v, x) in wv.iter_mut().enumerate() {
                            *x = _mm256_loadu_si256(wk.add(16 * v).cast());
                        }
                        for c in 0..N {
                            let x = _mm256_set1_epi32(
                                hp[c].add(2 * pair).cast::<i32>().read_unaligned(),
                            );
                            for v in 0..V {
                                let product = _mm256_madd_epi16(x, wv[v]);
                                acc[c][v] = _mm256_add_epi32(acc[c][v], product);
                            }
                        }
                    }
                    for c in 0..N {
                        for (v, a) in acc[c].iter().enumerate() {
                            let o = chunk * CHUNK + (rb * V + v) * 8;
                            let r = _mm256_fmadd_ps(
                                _mm256_cvtepi32_ps(*a),
                                _mm256_loadu_ps(sp.add(o)),
                                _mm256_loadu_ps(bp[c].add(o)),
                            );
                            _mm256_storeu_ps(op[c].add(o), r);
                        }
                    }
                }
            }
        }
    }

    /// See [`super::cell`]; the caller checked all extents and the CPU.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn cell(gates: &[f32], c: &mut [f32], h: &mut [f32], hq: &mut [i16]) {
        let (gp, cp, hp, qp) = (
            gates.as_ptr(),
            c.as_mut_ptr(),
            h.as_mut_ptr(),
            hq.as_mut_ptr(),
        );
        // SAFETY (all pointer accesses): block < units / 16, bounded by the caller.
        unsafe {
            for b in 0..c.len() / 16 {
                let gb = gp.add(64 * b);
                for s in 0..2 {
                    let i = sigmoid8(_mm256_loadu_ps(gb.add(8 * s)));
                    let f = sigmoid8(_mm256_loadu_ps(gb.add(16 + 8 * s)));
                    let g = tanh8(_mm256_loadu_ps(gb.add(32 + 8 * s)));
                    let o = sigmoid8(_mm256_loadu_ps(gb.add(48 + 8 * s)));
                    let u = 16 * b + 8 * s;
                    let c_new = _mm256_fmadd_ps(f, _mm256_loadu_ps(cp.add(u)), _mm256_mul_ps(i, g));
                    _mm256_storeu_ps(cp.add(u), c_new);
                    let hv = _mm256_mul_ps(o, tanh8(c_new));
                    _mm256_storeu_ps(hp.add(u), hv);
                    // Rounded to nearest even, then saturated to int16 as `quantise` does;
                    // `packs` works per 128-bit lane, so the two halves are gathered after.
                    let q = _mm256_cvtps_epi32(_mm256_mul_ps(hv, _mm256_set1_ps(H_SCALE)));
                    let packed =
                        _mm256_permute4x64_epi64::<0b00_00_10_00>(_mm256_packs_epi32(q, q));
                    _mm_storeu_si128(qp.add(u).cast(), _mm256_castsi256_si128(packed));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::lstm::infer::{Packed, Scratch};
    use crate::forecast::lstm::network::SplitMix64;

    fn random_net(hidden: usize, layers: usize, seed: u64, spread: f32) -> (Layout, Vec<f32>) {
        let layout = Layout { hidden, layers };
        let mut rng = SplitMix64(seed);
        let params = (0..layout.len())
            .map(|_| (rng.next_f32() - 0.5) * spread)
            .collect();
        (layout, params)
    }

    /// Largest |int16 - f32| / max(|f32|, 0.01) over `windows`, of the scalar twin and (where
    /// the CPU has it) the VNNI kernel. The two do not agree to rounding: their non-linearities
    /// differ by ~1e-7, which flips the rounding of a quantised hidden state now and then, so
    /// each is held to the bound against f32 instead.
    fn max_deviation(layout: Layout, params: &[f32], windows: &[Vec<f32>]) -> f32 {
        let exact = Packed::new(layout, params).expect("packs");
        let quant = Quantized::build(layout, params).expect("quantises");
        let (mut s, mut qs) = (Scratch::default(), QScratch::default());
        let mut worst = 0.0f32;
        for w in windows {
            let y = exact.predict(w, &mut s);
            let got: Vec<f32> = kernels()
                .map(|kernel| quant.predict_with(w, &mut qs, kernel))
                .collect();
            for q in got {
                worst = worst.max((q - y).abs() / y.abs().max(1e-2));
            }
        }
        worst
    }

    #[test]
    fn int16_inference_stays_within_2e4_of_f32_on_random_nets() {
        for (hidden, layers, steps, seed) in [(64, 2, 60, 1), (64, 1, 30, 2), (128, 2, 60, 3)] {
            let (layout, params) = random_net(hidden, layers, seed, 0.3);
            let mut rng = SplitMix64(seed + 10);
            let windows: Vec<Vec<f32>> = (0..5)
                .map(|_| (0..steps).map(|_| rng.next_f32()).collect())
                .collect();
            let dev = max_deviation(layout, &params, &windows);
            assert!(dev < 2e-4, "hidden {hidden}: deviation {dev}");
        }
    }

    /// The recursive forecast one pass at a time, each pass a horizon-1 forecast on its own.
    /// The kernels this CPU runs, the scalar twin first.
    fn kernels() -> impl Iterator<Item = QKernel> {
        [QKernel::Scalar, QKernel::Avx2, QKernel::Vnni]
            .into_iter()
            .filter(|k| k.available())
    }

    fn one_pass_at_a_time(
        q: &Quantized,
        window: &[f32],
        horizon: usize,
        kernel: QKernel,
    ) -> Vec<f32> {
        let mut w = window.to_vec();
        let mut out = Vec::new();
        for _ in 0..horizon {
            let y = q.predict_with(&w, &mut QScratch::default(), kernel);
            out.push(y);
            w.rotate_left(1);
            *w.last_mut().unwrap() = y;
        }
        out
    }

    #[test]
    fn batched_passes_give_exactly_the_one_at_a_time_forecast() {
        // Short windows make passes whose every input is a prediction; horizons cross blocks.
        for (hidden, layers, steps, seed) in [(64, 2, 60, 4), (64, 1, 5, 5), (128, 2, 3, 6)] {
            let (layout, params) = random_net(hidden, layers, seed, 0.3);
            let quant = Quantized::build(layout, &params).expect("quantises");
            let mut rng = SplitMix64(seed + 20);
            let window: Vec<f32> = (0..steps).map(|_| rng.next_f32()).collect();
            let mut scratch = QScratch::default();
            for kernel in kernels() {
                for horizon in [0, 1, 2, 7, 8, 9, 17] {
                    let want = one_pass_at_a_time(&quant, &window, horizon, kernel);
                    let got = quant.forecast_with(&window, horizon, &mut scratch, kernel);
                    assert_eq!(
                        got,
                        &want[..],
                        "hidden {hidden}, horizon {horizon}, {kernel:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_kernel_computes_the_same_integer_products() {
        // The gate products are integers summed in int32 (wrapping alike) and scaled with one
        // fused multiply-add: every kernel gives the scalar twin's values bit for bit.
        let (layout, params) = random_net(64, 2, 8, 0.5);
        let q = QMatrix::new(64, 64, &params[layout.w_hh(1)]);
        let mut rng = SplitMix64(9);
        let hq: Vec<i16> = (0..PASSES * 64)
            .map(|_| ((rng.next_f32() - 0.5) * 65000.0) as i16)
            .collect();
        let base: Vec<f32> = (0..PASSES * 256).map(|_| rng.next_f32()).collect();
        for n in 1..=PASSES {
            let passes: Vec<usize> = (0..n).map(|p| (p * 3) % PASSES).collect();
            let mut passes = passes;
            passes.sort_unstable();
            passes.dedup();
            let mut want = vec![0.0f32; PASSES * 256];
            gates(QKernel::Scalar, &q, &hq, &passes, (&base, 256), &mut want);
            for kernel in kernels().skip(1) {
                let mut got = vec![0.0f32; PASSES * 256];
                gates(kernel, &q, &hq, &passes, (&base, 256), &mut got);
                assert_eq!(got, want, "{kernel:?}, passes {passes:?}");
            }
        }
    }

    #[test]
    fn no_row_can_overflow_int32_whatever_the_weights() {
        let (layout, mut params) = random_net(64, 2, 7, 0.3);
        // Extreme rows: huge, tiny, all equal (the sum bound binds), and all zero.
        let hh = layout.w_hh(1);
        let start = hh.start;
        for (i, v) in params[hh].iter_mut().enumerate() {
            *v = match (i / 64) % 4 {
                0 => 1e6,
                1 => -1e-30,
                2 => 0.0,
                _ => *v,
            };
        }
        let q = QMatrix::new(64, 64, &params[start..start + 256 * 64]);
        for r in 0..256 {
            let sum: i64 = (0..64).map(|k| i64::from(q.q[slot(64, r, k)]).abs()).sum();
            assert!(sum * 32767 < 1 << 31, "row {r}: sum {sum}");
        }
        // The all-zero rows quantise to zero with a zero scale, not NaN.
        assert!(q.scale.iter().all(|s| s.is_finite()));
        let windows = [vec![0.5f32; 60]];
        let quant = Quantized::build(layout, &params).unwrap();
        assert!(quant
            .predict_with(&windows[0], &mut QScratch::default(), QKernel::Scalar)
            .is_finite());
    }

    #[test]
    fn odd_shapes_stay_on_the_f32_path() {
        let (layout, params) = random_net(16, 2, 3, 0.3);
        assert!(Quantized::build(layout, &params).is_none());
        let (layout, _) = random_net(64, 2, 3, 0.3);
        assert!(Quantized::build(layout, &[0.0; 3]).is_none());
    }
}
