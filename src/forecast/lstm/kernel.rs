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
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { cell_forward_avx2(hidden, gates, c_prev, c, tanh_c, h) };
            return;
        }
    }
    cell_forward_generic(hidden, gates, c_prev, c, tanh_c, h);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn cell_forward_avx2(
    hidden: usize,
    gates: &mut [f32],
    c_prev: Option<&[f32]>,
    c: &mut [f32],
    tanh_c: &mut [f32],
    h: &mut [f32],
) {
    cell_forward_generic(hidden, gates, c_prev, c, tanh_c, h);
}

#[inline(always)]
fn cell_forward_generic(
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
        let (gi, rest) = row.split_at_mut(hidden);
        let (gf, rest) = rest.split_at_mut(hidden);
        let (gg, go) = rest.split_at_mut(hidden);
        let cr = &mut c[r * hidden..(r + 1) * hidden];
        let tr = &mut tanh_c[r * hidden..(r + 1) * hidden];
        let hr = &mut h[r * hidden..(r + 1) * hidden];
        for j in 0..hidden {
            gi[j] = fast_sigmoid(gi[j]);
            gf[j] = fast_sigmoid(gf[j]);
            gg[j] = fast_tanh(gg[j]);
            go[j] = fast_sigmoid(go[j]);
        }
        match c_prev {
            Some(cp) => {
                let cp = &cp[r * hidden..(r + 1) * hidden];
                for j in 0..hidden {
                    cr[j] = gf[j] * cp[j] + gi[j] * gg[j];
                }
            }
            None => {
                for j in 0..hidden {
                    cr[j] = gi[j] * gg[j];
                }
            }
        }
        for j in 0..hidden {
            tr[j] = fast_tanh(cr[j]);
            hr[j] = go[j] * tr[j];
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
        for j in 0..hidden {
            let (i, f, g, o, t) = (gi[j], gf[j], gg[j], go[j], tr[j]);
            let d_h = dhr[j];
            let d_c = dcr[j] + d_h * o * (1.0 - t * t);
            di[j] = d_c * g * i * (1.0 - i);
            df[j] = d_c * cp[j] * f * (1.0 - f);
            dg[j] = d_c * i * (1.0 - g * g);
            dout[j] = d_h * t * o * (1.0 - o);
            dcr[j] = d_c * f;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
