//! Int16 inference for cached forecasts: the path behind [`super::Precision::Int16`].
//!
//! A cached `/predict` is 7 recursive passes of a 60-step window through both layers, i.e.
//! 840 matrix-vector products with `W_hh` (64 KB in f32). In f32 that matrix does not fit the
//! 48 KB L1 of the Xeons we serve on, so the f32 kernel ([`super::infer`]) streams it from L2 at
//! every step (profiled: the FMAs wait on their loads). Here every gate matrix is quantised
//! once per model to int16 (32 KB, L1-resident for the whole 60-step pass of a layer) and the
//! products run on AVX-512 VNNI (`vpdpwssd`: 32 multiply-adds per instruction, exact int32
//! accumulation). Everything else stays f32: biases, the first layer's input weights, the gate
//! non-linearities, the cell state and the output layer.
//!
//! Quantisation, per gate row `r` with scale `s_r`: `q = round(w / s_r)` with
//! `s_r = max(max|w| / 32767, sum|w| / (65538 - k))`, and the hidden state `h` (always in
//! (-1, 1)) as `round(32767 h)`. The second term of `s_r` bounds `sum|q| * 32767` below 2^31,
//! so no int32 sum can overflow whatever the hidden state is. Measured against the f32 path on
//! models trained on real prices, the forecast price moves by at most ~1e-4 relative (see the
//! tests and README "Inference precision"); the f32 path stays available and is what training,
//! validation and backtests use.

use super::aligned::Aligned;
use super::infer::{interleaved, Ends, BLOCK};
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

/// Buffers of one int16 pass, reused across calls.
#[derive(Default)]
pub(crate) struct QScratch {
    /// `[t][row]`: input projection plus bias of every step of the current layer.
    pre: Aligned<f32>,
    /// `[t][unit]`: quantised hidden states of the layer just computed.
    seq: Vec<i16>,
    /// The same for the layer being computed (swapped with `seq` after each layer).
    next: Vec<i16>,
    gates: Aligned<f32>,
    c: Aligned<f32>,
    h: Aligned<f32>,
}

impl Quantized {
    /// Quantises `params`; `None` where this CPU lacks AVX-512 VNNI or the hidden size is not a
    /// multiple of 64 (one chunk of gate rows), so that the caller keeps the f32 path.
    pub fn new(layout: Layout, params: &[f32]) -> Option<Self> {
        if !supported() {
            return None;
        }
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

    /// One-step prediction (scaled units) for one window, on the VNNI kernel.
    pub fn predict(&self, window: &[f32], s: &mut QScratch) -> f32 {
        self.predict_with(window, s, true)
    }

    /// [`Self::predict`]; `vnni` false runs the scalar twin of the same integer arithmetic.
    fn predict_with(&self, window: &[f32], s: &mut QScratch, vnni: bool) -> f32 {
        let (h, g, steps) = (self.hidden, 4 * self.hidden, window.len());
        if steps == 0 {
            return self.ends.bias_only();
        }
        s.pre.set_len(steps * g);
        s.seq.resize(steps * h, 0);
        s.next.resize(steps * h, 0);
        s.gates.set_len(g);
        s.c.set_len(h);
        s.h.set_len(h);
        for l in 0..self.layers {
            match &self.w_ih[l] {
                None => self.ends.project_input(window, &mut s.pre),
                Some(w_ih) => {
                    for t in 0..steps {
                        gates(
                            vnni,
                            w_ih,
                            &s.seq[t * h..(t + 1) * h],
                            &self.ends.bias[l],
                            &mut s.pre[t * g..(t + 1) * g],
                        );
                    }
                }
            }
            s.c.fill(0.0);
            for t in 0..steps {
                let pre = &s.pre[t * g..(t + 1) * g];
                if t == 0 {
                    s.gates.copy_from_slice(pre);
                } else {
                    let prev = &s.next[(t - 1) * h..t * h];
                    gates(vnni, &self.w_hh[l], prev, pre, &mut s.gates);
                }
                let out = &mut s.next[t * h..(t + 1) * h];
                cell(vnni, &s.gates, &mut s.c, &mut s.h, out);
            }
            std::mem::swap(&mut s.seq, &mut s.next);
        }
        self.ends.output(&s.h)
    }
}

/// Whether this CPU runs the int16 kernels (AVX-512 F, BW, DQ and VNNI).
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

/// `out[r] = base[r] + scale[r] * sum_k q[r, k] * hq[k]` for every interleaved gate row.
fn gates(vnni: bool, w: &QMatrix, hq: &[i16], base: &[f32], out: &mut [f32]) {
    let g = w.scale.len();
    assert!(hq.len() == w.k && base.len() == g && out.len() == g && w.q.len() == g * w.k);
    assert!(g.is_multiple_of(CHUNK) && w.k.is_multiple_of(2));
    #[cfg(target_arch = "x86_64")]
    if vnni {
        assert!(supported(), "the VNNI kernel needs AVX-512 VNNI");
        // SAFETY: the CPU has AVX-512 F/BW/VNNI (asserted); the asserts above bound every access.
        unsafe { simd::gates(w, hq, base, out) };
        return;
    }
    let _ = vnni;
    for r in 0..g {
        let mut acc = 0i32;
        for (k, &x) in hq.iter().enumerate() {
            acc = acc.wrapping_add(i32::from(w.q[slot(w.k, r, k)]) * i32::from(x));
        }
        out[r] = (acc as f32).mul_add(w.scale[r], base[r]);
    }
}

/// Gate non-linearities and cell update of every unit from the interleaved `gates`; writes the
/// cell state `c`, the hidden state `h` and its quantised copy `hq`.
fn cell(vnni: bool, gates: &[f32], c: &mut [f32], h: &mut [f32], hq: &mut [i16]) {
    let units = c.len();
    assert!(gates.len() == 4 * units && h.len() == units && hq.len() == units);
    assert!(units.is_multiple_of(BLOCK));
    #[cfg(target_arch = "x86_64")]
    if vnni {
        assert!(supported(), "the VNNI kernel needs AVX-512");
        // SAFETY: AVX-512 F/BW present (asserted); the asserts above bound every access.
        unsafe { simd::cell(gates, c, h, hq) };
        return;
    }
    let _ = vnni;
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

#[cfg(target_arch = "x86_64")]
mod simd {
    //! AVX-512 bodies of [`super::gates`] and [`super::cell`].
    use super::{QMatrix, CHUNK, H_SCALE};
    use std::arch::x86_64::*;

    const _: () = assert!(CHUNK == 256 && super::BLOCK == 16);

    /// See [`super::gates`]; the caller checked all extents and the CPU.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn gates(w: &QMatrix, hq: &[i16], base: &[f32], out: &mut [f32]) {
        let (k, g) = (w.k, w.scale.len());
        let (qp, hp, sp, bp, op) = (
            w.q.as_ptr(),
            hq.as_ptr(),
            w.scale.as_ptr(),
            base.as_ptr(),
            out.as_mut_ptr(),
        );
        // SAFETY (all pointer accesses): chunk < g / CHUNK, pair < k / 2, bounded by the caller.
        unsafe {
            for chunk in 0..g / CHUNK {
                let wc = qp.add(chunk * k * CHUNK);
                let mut acc = [_mm512_setzero_si512(); 16];
                for pair in 0..k / 2 {
                    let x = _mm512_set1_epi32(hp.add(2 * pair).cast::<i32>().read_unaligned());
                    let wk = wc.add(pair * 2 * CHUNK);
                    for (r, a) in acc.iter_mut().enumerate() {
                        let wv = _mm512_loadu_si512(wk.add(32 * r).cast());
                        *a = _mm512_dpwssd_epi32(*a, x, wv);
                    }
                }
                for (r, a) in acc.iter().enumerate() {
                    let o = chunk * CHUNK + 16 * r;
                    let v = _mm512_fmadd_ps(
                        _mm512_cvtepi32_ps(*a),
                        _mm512_loadu_ps(sp.add(o)),
                        _mm512_loadu_ps(bp.add(o)),
                    );
                    _mm512_storeu_ps(op.add(o), v);
                }
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
            let mut got = vec![quant.predict_with(w, &mut qs, false)];
            if supported() {
                got.push(quant.predict_with(w, &mut qs, true));
            }
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
            .predict_with(&windows[0], &mut QScratch::default(), false)
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

#[cfg(test)]
mod timing {
    use super::*;
    use crate::forecast::lstm::infer::timing::{best_of, spec_net};
    use crate::forecast::lstm::infer::{Packed, Scratch};

    /// `cargo test --release --lib time_int16_predict -- --ignored --nocapture`: best-of-2000
    /// times of one 2x64, 60-step prediction on the f32 and the int16 kernel, interleaved so that
    /// the machine's load hits both alike.
    #[test]
    #[ignore]
    fn time_int16_predict() {
        let (layout, params, window) = spec_net();
        let exact = Packed::new(layout, &params).expect("packs");
        let Some(quant) = Quantized::new(layout, &params) else {
            eprintln!("no AVX-512 VNNI on this CPU");
            return;
        };
        let (mut s, mut qs) = (Scratch::default(), QScratch::default());
        for rep in 0..3 {
            let f32_us = best_of(2000, &mut || {
                exact.predict(std::hint::black_box(&window), &mut s)
            });
            let int16_us = best_of(2000, &mut || {
                quant.predict(std::hint::black_box(&window), &mut qs)
            });
            eprintln!("rep {rep}: f32 {f32_us:.1} us, int16 {int16_us:.1} us");
        }
    }
}
