//! Numeric kernels of the fused LSTM: the matrix multiply wrapper and the gate non-linearities.
//!
//! The gate pass evaluates about 1.3 billion sigmoids and tanhs per SPEC training run; libm's
//! scalar `expf` alone would cost seconds, so the pass uses branch-free polynomial approximations
//! (Cephes' `expf` and `tanhf`, relative error ~1e-7) that the compiler vectorises. Where the CPU
//! has AVX2 and FMA the same code is compiled a second time with those features enabled and chosen
//! at run time, because the portable x86-64 baseline only has 4-wide SSE2.

/// `C = alpha * A * B + beta * C` on strided f32 matrices (`m x k` times `k x n`).
///
/// Strides are in elements; every slice is bounds-checked against the extent the strides imply
/// before the unchecked multiply runs.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
    (rsc, csc): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let extent = |rows: usize, cols: usize, rs: usize, cs: usize| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs + (cols - 1) * cs + 1
        }
    };
    assert!(a.len() >= extent(m, k, rsa, csa), "sgemm: A too short");
    assert!(b.len() >= extent(k, n, rsb, csb), "sgemm: B too short");
    assert!(c.len() >= extent(m, n, rsc, csc), "sgemm: C too short");
    // SAFETY: the asserts above prove every element the strides address lies inside its slice;
    // `c` is a unique borrow, so it cannot alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            csc as isize,
        );
    }
}

/// Width of the column panels of [`Panels`]: two AVX2 vectors.
const PANEL: usize = 16;

/// A `k x n` right-hand operand rearranged as column panels of [`PANEL`] (`[panel][k][PANEL]`,
/// the last panel zero-padded), for [`panel_gemm_acc`].
///
/// The per-step products of the recurrence multiply by the same weights 59 times per batch.
/// Read in place, the row stride of `W_hh^T` (1 KB) maps a 16-column panel onto 4 of L1's 64
/// sets, so the panel never stayed in L1 (profiled: the broadcasts of A waiting on B's loads
/// were the hottest instructions of training). Packed once per batch, a panel is one
/// contiguous `k x 64 B` stream that does.
#[derive(Clone, Debug, Default)]
pub(crate) struct Panels {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl Panels {
    /// Packs `B[kk][j] = value(kk, j)`, reusing the allocation.
    pub fn pack(&mut self, k: usize, n: usize, value: impl Fn(usize, usize) -> f32) {
        let panels = n.div_ceil(PANEL);
        self.k = k;
        self.n = n;
        self.data.clear();
        self.data.resize(panels * k * PANEL, 0.0);
        for jp in 0..panels {
            for kk in 0..k {
                let row = &mut self.data[(jp * k + kk) * PANEL..(jp * k + kk + 1) * PANEL];
                for (u, v) in row.iter_mut().enumerate().take(n - jp * PANEL) {
                    *v = value(kk, jp * PANEL + u);
                }
            }
        }
    }
}

/// `C += A * B` for a small row-major `A` (`m x k`, leading dimension `lda`) and a packed `B`
/// (`k x n`): the per-time-step products of the recurrence.
///
/// matrixmultiply packs both operands and allocates on every call; for a 16 x 64 x 256 product
/// that overhead was a third of training time (profiled), so the step products use this
/// register-blocked kernel (6 rows x 16 columns of accumulators) on a pre-packed `B`.
pub(crate) fn panel_gemm_acc(
    m: usize,
    a: &[f32],
    lda: usize,
    b: &Panels,
    c: &mut [f32],
    ldc: usize,
) {
    let (k, n) = (b.k, b.n);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(lda >= k && ldc >= n, "panel_gemm_acc: leading dimensions");
    assert!(a.len() >= (m - 1) * lda + k, "panel_gemm_acc: A too short");
    assert!(c.len() >= (m - 1) * ldc + n, "panel_gemm_acc: C too short");
    assert_eq!(
        b.data.len(),
        n.div_ceil(PANEL) * k * PANEL,
        "panel_gemm_acc: B"
    );
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA; the asserts above bound every access.
            unsafe { simd::panel_gemm_acc(m, a, lda, b, c, ldc) };
            return;
        }
    }
    for jp in 0..n.div_ceil(PANEL) {
        let width = PANEL.min(n - jp * PANEL);
        let panel = &b.data[jp * k * PANEL..(jp + 1) * k * PANEL];
        for i in 0..m {
            let crow = &mut c[i * ldc + jp * PANEL..i * ldc + jp * PANEL + width];
            for kk in 0..k {
                let av = a[i * lda + kk];
                for (cv, bv) in crow.iter_mut().zip(&panel[kk * PANEL..]) {
                    *cv += av * bv;
                }
            }
        }
    }
}

/// Fast `exp` (Cephes `expf`): branch-free so that loops over it vectorise.
#[inline(always)]
pub(crate) fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // 1.5 * 2^23: adding it rounds to the nearest integer and leaves that integer in the low bits.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + MAGIC;
    let n = shifted - MAGIC;
    let n_int = (shifted.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let z = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5.0e-1;
    let y = p * z + r + 1.0;
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    y * scale
}

/// Fast logistic sigmoid; relative error ~1e-7.
#[inline(always)]
pub(crate) fn fast_sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + fast_exp(-x))
}

/// Fast `tanh` (Cephes `tanhf`): a polynomial near zero keeps the relative error small there,
/// `1 - 2 / (exp(2x) + 1)` elsewhere; both are computed and one selected so the loop vectorises.
#[inline(always)]
pub(crate) fn fast_tanh(x: f32) -> f32 {
    let z = x * x;
    let small =
        ((((-5.704_988_7e-3 * z + 2.063_909e-2) * z - 5.373_971_6e-2) * z + 1.333_144_2e-1) * z
            - 3.333_328e-1)
            * z
            * x
            + x;
    let large = 1.0 - 2.0 / (fast_exp(2.0 * x) + 1.0);
    if x.abs() < 0.625 {
        small
    } else {
        large
    }
}

/// Applies `f` in place: 8 lanes at a time with AVX2/FMA where available, `scalar` elsewhere.
///
/// The compiler would not vectorise the scalar polynomials on its own (measured: the gate pass
/// stayed scalar and took 70% of training), hence explicit intrinsics.
#[inline(always)]
fn map_in_place(values: &mut [f32], kind: Activation) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { simd::map_in_place(values, kind) };
            return;
        }
    }
    for v in values {
        *v = kind.scalar(*v);
    }
}

/// The two gate non-linearities.
#[derive(Clone, Copy)]
pub(crate) enum Activation {
    Sigmoid,
    Tanh,
}

impl Activation {
    #[inline(always)]
    fn scalar(self, x: f32) -> f32 {
        match self {
            Activation::Sigmoid => fast_sigmoid(x),
            Activation::Tanh => fast_tanh(x),
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod simd {
    //! AVX2/FMA versions of the polynomials above, 8 lanes at a time.
    use super::Activation;
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn exp8(x: __m256) -> __m256 {
        const MAGIC: f32 = 12_582_912.0;
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(-87.0)),
            _mm256_set1_ps(88.0),
        );
        let shifted = _mm256_fmadd_ps(
            x,
            _mm256_set1_ps(std::f32::consts::LOG2_E),
            _mm256_set1_ps(MAGIC),
        );
        let n = _mm256_sub_ps(shifted, _mm256_set1_ps(MAGIC));
        let n_int = _mm256_sub_epi32(
            _mm256_castps_si256(shifted),
            _mm256_set1_epi32(MAGIC.to_bits() as i32),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let z = _mm256_mul_ps(r, r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            5.0e-1,
        ] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let y = _mm256_add_ps(_mm256_fmadd_ps(p, z, r), _mm256_set1_ps(1.0));
        let scale = _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_add_epi32(n_int, _mm256_set1_epi32(127)),
            23,
        ));
        _mm256_mul_ps(y, scale)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn sigmoid8(x: __m256) -> __m256 {
        let one = _mm256_set1_ps(1.0);
        let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        _mm256_div_ps(one, _mm256_add_ps(one, e))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn tanh8(x: __m256) -> __m256 {
        let z = _mm256_mul_ps(x, x);
        let mut p = _mm256_set1_ps(-5.704_988_7e-3);
        for c in [2.063_909e-2, -5.373_971_6e-2, 1.333_144_2e-1, -3.333_328e-1] {
            p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(c));
        }
        let small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x);
        let one = _mm256_set1_ps(1.0);
        let e = exp8(_mm256_add_ps(x, x));
        let large = _mm256_sub_ps(
            one,
            _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, one)),
        );
        let abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0), x);
        let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(abs, _mm256_set1_ps(0.625));
        _mm256_blendv_ps(large, small, is_small)
    }

    /// AVX2 body of [`super::panel_gemm_acc`]; the caller checked all extents.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn panel_gemm_acc(
        m: usize,
        a: &[f32],
        lda: usize,
        b: &super::Panels,
        c: &mut [f32],
        ldc: usize,
    ) {
        use super::PANEL;
        let (k, n) = (b.k, b.n);
        let (ap, cp) = (a.as_ptr(), c.as_mut_ptr());
        // Adds the accumulators of one row to C, only the panel's real columns at the edge.
        let store = |row: usize, col: usize, lo: __m256, hi: __m256| {
            let width = PANEL.min(n - col);
            // SAFETY: row < m and col + width <= n, bounded by the caller's asserts.
            unsafe {
                let c0 = cp.add(row * ldc + col);
                if width == PANEL {
                    _mm256_storeu_ps(c0, _mm256_add_ps(_mm256_loadu_ps(c0), lo));
                    let c1 = c0.add(8);
                    _mm256_storeu_ps(c1, _mm256_add_ps(_mm256_loadu_ps(c1), hi));
                } else {
                    let mut tmp = [0.0f32; PANEL];
                    _mm256_storeu_ps(tmp.as_mut_ptr(), lo);
                    _mm256_storeu_ps(tmp.as_mut_ptr().add(8), hi);
                    for (u, v) in tmp.iter().enumerate().take(width) {
                        *c0.add(u) += v;
                    }
                }
            }
        };
        // SAFETY (all calls below): rows < m and panel offsets inside `b.data`, which the
        // caller's asserts bound.
        unsafe {
            for jp in 0..n.div_ceil(PANEL) {
                let bp = b.data.as_ptr().add(jp * k * PANEL);
                let col = jp * PANEL;
                let mut i = 0;
                while i + 6 <= m {
                    rows::<6>(ap.add(i * lda), lda, bp, k, |r, lo, hi| {
                        store(i + r, col, lo, hi)
                    });
                    i += 6;
                }
                if i + 4 <= m {
                    rows::<4>(ap.add(i * lda), lda, bp, k, |r, lo, hi| {
                        store(i + r, col, lo, hi)
                    });
                    i += 4;
                }
                if i + 2 <= m {
                    rows::<2>(ap.add(i * lda), lda, bp, k, |r, lo, hi| {
                        store(i + r, col, lo, hi)
                    });
                    i += 2;
                }
                if i < m {
                    rows::<1>(ap.add(i * lda), lda, bp, k, |r, lo, hi| {
                        store(i + r, col, lo, hi)
                    });
                }
            }
        }
    }

    /// `R` rows of A (from `ap`) times one packed panel (`bp`, `k x 16`): 2R accumulators
    /// (R = 6 uses 12 of the 16 registers and keeps 12 FMAs in flight per load of B).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows<const R: usize>(
        ap: *const f32,
        lda: usize,
        bp: *const f32,
        k: usize,
        mut store: impl FnMut(usize, __m256, __m256),
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        // SAFETY: the caller guarantees R rows of k values at stride lda from `ap` and a
        // k x 16 panel at `bp`.
        unsafe {
            for kk in 0..k {
                let b0 = _mm256_loadu_ps(bp.add(kk * super::PANEL));
                let b1 = _mm256_loadu_ps(bp.add(kk * super::PANEL + 8));
                for (r, a) in acc.iter_mut().enumerate() {
                    let av = _mm256_set1_ps(*ap.add(r * lda + kk));
                    a[0] = _mm256_fmadd_ps(av, b0, a[0]);
                    a[1] = _mm256_fmadd_ps(av, b1, a[1]);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            store(r, a[0], a[1]);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn map_in_place(values: &mut [f32], kind: Activation) {
        let mut chunks = values.chunks_exact_mut(8);
        for chunk in &mut chunks {
            // SAFETY: `chunk` holds exactly 8 f32s, the width of an unaligned 256-bit load/store.
            unsafe {
                let x = _mm256_loadu_ps(chunk.as_ptr());
                let y = match kind {
                    Activation::Sigmoid => sigmoid8(x),
                    Activation::Tanh => tanh8(x),
                };
                _mm256_storeu_ps(chunk.as_mut_ptr(), y);
            }
        }
        for v in chunks.into_remainder() {
            *v = kind.scalar(*v);
        }
    }
}

/// One time step of the gate non-linearities for a block of rows.
///
/// `gates` holds `rows x 4H` pre-activations (order i, f, g, o) and is overwritten with the
/// activations; `c_prev` (`rows x H`, `None` = zeros) gives the previous cell state; the new cell
/// state, its tanh and the hidden state go to `c`, `tanh_c` and `h`.
pub(crate) fn cell_forward(
    hidden: usize,
    gates: &mut [f32],
    c_prev: Option<&[f32]>,
    c: &mut [f32],
    tanh_c: &mut [f32],
    h: &mut [f32],
) {
    let g4 = 4 * hidden;
    let rows = gates.len() / g4;
    for r in 0..rows {
        let row = &mut gates[r * g4..(r + 1) * g4];
        let (ifg, go) = row.split_at_mut(3 * hidden);
        let (if_, gg) = ifg.split_at_mut(2 * hidden);
        map_in_place(if_, Activation::Sigmoid);
        map_in_place(gg, Activation::Tanh);
        map_in_place(go, Activation::Sigmoid);
        let (gi, gf) = if_.split_at(hidden);
        let cr = &mut c[r * hidden..(r + 1) * hidden];
        let tr = &mut tanh_c[r * hidden..(r + 1) * hidden];
        let hr = &mut h[r * hidden..(r + 1) * hidden];
        match c_prev {
            Some(cp) => {
                let cp = &cp[r * hidden..(r + 1) * hidden];
                for ((((c, cp), i), f), g) in cr.iter_mut().zip(cp).zip(gi).zip(gf).zip(&*gg) {
                    *c = f * cp + i * g;
                }
            }
            None => {
                for ((c, i), g) in cr.iter_mut().zip(gi).zip(&*gg) {
                    *c = i * g;
                }
            }
        }
        tr.copy_from_slice(cr);
        map_in_place(tr, Activation::Tanh);
        for ((h, t), o) in hr.iter_mut().zip(&*tr).zip(&*go) {
            *h = o * t;
        }
    }
}

/// One time step of the backward gate pass for a block of rows.
///
/// Reads the activations of the forward pass (`c_prev`: the previous cell state, zeros at the
/// first step) and the incoming gradient of the hidden state
/// `dh` (`rows x H`), updates the running cell-state gradient `dc` in place (in: from step t+1,
/// out: for step t-1) and writes the pre-activation gate gradients to `dgates` (`rows x 4H`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn cell_backward(
    hidden: usize,
    gates: &[f32],
    c_prev: &[f32],
    tanh_c: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    dgates: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { cell_backward_avx2(hidden, gates, c_prev, tanh_c, dh, dc, dgates) };
            return;
        }
    }
    cell_backward_generic(hidden, gates, c_prev, tanh_c, dh, dc, dgates);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn cell_backward_avx2(
    hidden: usize,
    gates: &[f32],
    c_prev: &[f32],
    tanh_c: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    dgates: &mut [f32],
) {
    cell_backward_generic(hidden, gates, c_prev, tanh_c, dh, dc, dgates);
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cell_backward_generic(
    hidden: usize,
    gates: &[f32],
    c_prev: &[f32],
    tanh_c: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    dgates: &mut [f32],
) {
    let g4 = 4 * hidden;
    let rows = gates.len() / g4;
    for r in 0..rows {
        let row = &gates[r * g4..(r + 1) * g4];
        let (gi, rest) = row.split_at(hidden);
        let (gf, rest) = rest.split_at(hidden);
        let (gg, go) = rest.split_at(hidden);
        let drow = &mut dgates[r * g4..(r + 1) * g4];
        let (di, rest) = drow.split_at_mut(hidden);
        let (df, rest) = rest.split_at_mut(hidden);
        let (dg, dout) = rest.split_at_mut(hidden);
        let tr = &tanh_c[r * hidden..(r + 1) * hidden];
        let dhr = &dh[r * hidden..(r + 1) * hidden];
        let dcr = &mut dc[r * hidden..(r + 1) * hidden];
        let cp = &c_prev[r * hidden..(r + 1) * hidden];
        let activations = gi.iter().zip(gf).zip(gg).zip(go).zip(tr).zip(cp);
        let grads = di
            .iter_mut()
            .zip(df.iter_mut())
            .zip(dg.iter_mut())
            .zip(dout.iter_mut())
            .zip(dhr)
            .zip(dcr.iter_mut());
        for ((((((i, f), g), o), t), c_before), (((((di, df), dg), d_o), d_h), dc)) in
            activations.zip(grads)
        {
            let d_c = *dc + d_h * o * (1.0 - t * t);
            *di = d_c * g * i * (1.0 - i);
            *df = d_c * c_before * f * (1.0 - f);
            *dg = d_c * i * (1.0 - g * g);
            *d_o = d_h * t * o * (1.0 - o);
            *dc = d_c * f;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_panel_gemm_matches_a_naive_product_for_awkward_shapes() {
        for (m, k, n) in [(1, 64, 256), (7, 5, 19), (16, 256, 64), (5, 3, 33)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
            let mut c = vec![1.0f32; m * n];
            let mut panels = Panels::default();
            panels.pack(k, n, |kk, j| b[kk * n + j]);
            panel_gemm_acc(m, &a, k, &panels, &mut c, n);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = 1.0 + (0..k).map(|q| a[i * k + q] * b[q * n + j]).sum::<f32>();
                    assert_eq!(c[i * n + j], want, "({m},{k},{n}) at ({i},{j})");
                }
            }
        }
    }

    #[test]
    fn the_vectorised_activations_match_the_scalar_ones() {
        let xs: Vec<f32> = (0..1001).map(|i| (i as f32 - 500.0) * 0.031).collect();
        for kind in [Activation::Sigmoid, Activation::Tanh] {
            let mut v = xs.clone();
            map_in_place(&mut v, kind);
            for (x, y) in xs.iter().zip(&v) {
                let want = kind.scalar(*x);
                assert!(
                    (y - want).abs() <= 2e-7 * want.abs().max(1e-3),
                    "{x}: {y} vs {want}"
                );
            }
        }
    }

    #[test]
    fn fast_exp_sigmoid_and_tanh_match_the_standard_library() {
        let mut x = -30.0f32;
        while x < 30.0 {
            let e = fast_exp(x);
            assert!(((e - x.exp()) / x.exp()).abs() < 1e-6, "exp({x})");
            let s = fast_sigmoid(x);
            let s_ref = 1.0 / (1.0 + (-f64::from(x)).exp());
            assert!(
                ((f64::from(s) - s_ref) / s_ref).abs() < 1e-6,
                "sigmoid({x})"
            );
            let t = fast_tanh(x);
            let t_ref = f64::from(x).tanh();
            assert!(
                (f64::from(t) - t_ref).abs() <= 1e-6 * t_ref.abs().max(1e-3),
                "tanh({x})"
            );
            x += 0.0137;
        }
        assert!(fast_exp(-1000.0).is_finite());
        assert!(fast_exp(1000.0).is_finite());
        assert_eq!(fast_tanh(1000.0), 1.0);
        assert_eq!(fast_tanh(-1000.0), -1.0);
    }
}
