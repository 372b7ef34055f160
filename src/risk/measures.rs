//! Risk measures beside the CB-05 score (issue 17): annualised volatility of returns, maximum
//! and current drawdown, 1-day Value at Risk and Expected Shortfall (historical and
//! Cornish-Fisher), and beta and correlation to a benchmark. Pure functions over `&[f64]`.
//!
//! The conventions, which the README repeats for users:
//! - **Returns** are daily log returns `r_i = ln(p_{i+1} / p_i)`; where that ratio over- or
//!   underflows, `ln(p_{i+1}) - ln(p_i)`, which is finite for every finite price > 0. Every
//!   measure is then a function of price ratios only, so it does not depend on the unit of the
//!   prices, and no sum can overflow: a log return of two `f64` prices is at most ~1,450.
//! - **Windows** count returns: `"30d"` is the last 30 returns (31 prices). A window with fewer
//!   returns than it names is `None` (null), never a shorter window under a longer name.
//! - **Volatility** is the sample standard deviation (ddof = 1, pandas' default) of the
//!   window's log returns times `sqrt(365)`: crypto trades every day.
//! - **VaR and ES** are over the last [`TAIL_WINDOW`] returns (fewer when fewer were posted)
//!   and are positive fractions of the position lost in one day on a simple-return basis:
//!   a log return `r` loses `1 - exp(r)`. A negative VaR means that even the tail quantile
//!   is a gain.
//!   - Historical VaR at level `a`: the `1 - a` quantile `q` of the log returns, linearly
//!     interpolated between order statistics (numpy's and pandas' default), as the loss
//!     `1 - exp(q)`. Historical ES: the mean loss `1 - exp(r)` of the returns `r <= q`.
//!   - Cornish-Fisher ("modified") VaR, as in PerformanceAnalytics (Boudt, Peterson and Croux,
//!     2008): the normal quantile `z` of `1 - a` corrected for the skewness `S` and excess
//!     kurtosis `K` of the log returns,
//!     `z_cf = z + (z^2 - 1) S / 6 + (z^3 - 3z) K / 24 - (2z^3 - 5z) S^2 / 36`, then
//!     `q = mean + z_cf * sd`, with population moments throughout (`sd`, `S` and `K` from the
//!     central moments divided by n). Cornish-Fisher ES: the mean CF loss over the
//!     [`CF_ES_POINTS`] tail levels `u_k = (1 - a)(k - 1/2) / 20` (the midpoint rule for the
//!     average of the CF quantile function over `(0, 1 - a)`, which is what ES is).
//!     Where the expansion is not increasing in `z` over the levels used (strong skewness
//!     with little kurtosis), its quantiles are not a distribution's and both CF answers are
//!     `None`, as they are where a loss would not be finite.
//! - **Drawdown** is `1 - p / running maximum`, over the whole posted history.
//! - **Beta and correlation** pair the last returns of the asset and of the benchmark, whose
//!   prices are aligned at their ends (the last price of each is the same day):
//!   `beta = cov / var(benchmark)`, `correlation = cov / (sd * sd)`; `None` where a window is
//!   longer than the overlap or a variance is zero.

use serde::Serialize;

use super::{RiskError, RISK_WINDOW};

/// The windows of the volatility, beta and correlation, in returns (days).
pub const WINDOWS: [usize; 3] = [30, 90, 365];
/// Days in a year: volatility is annualised by `sqrt(365)`.
pub const ANNUALISATION_DAYS: u32 = 365;
/// Most returns (the latest) that VaR and ES look at.
pub const TAIL_WINDOW: usize = 365;
/// The VaR and ES levels.
pub const LEVELS: [f64; 2] = [0.95, 0.99];
/// Tail levels averaged for the Cornish-Fisher ES.
pub const CF_ES_POINTS: usize = 20;

/// `scipy.stats.norm.ppf(1 - a)` for `a` in [`LEVELS`].
const Z: [f64; 2] = [-1.6448536269514722, -2.3263478740408408];

/// `scipy.stats.norm.ppf((1 - a) * (k - 0.5) / 20)` for k = 1..=20 and `a` in [`LEVELS`],
/// as printed by `bench/risk_measures_reference.py`.
#[rustfmt::skip]
const Z_TAIL: [[f64; CF_ES_POINTS]; 2] = [
    [-3.0233414397391476, -2.6737873154729144, -2.497705474412373, -2.3760308419612115, -2.281819483567728, -2.2043462877022426, -2.138206340599865, -2.080278452525275, -2.0285906666054863, -1.9818145535064517, -1.9390109896889522, -1.8994906105213334, -1.8627318674216509, -1.8283302667641474, -1.7959655256605047, -1.7653795378901018, -1.736361133466374, -1.7087352578229011, -1.6823551128879393, -1.6570963350340195],
    [-3.480756404346212, -3.1746835274550746, -3.0233414397391476, -2.92002794436202, -2.8408037178631944, -2.776190335372457, -2.7214307614823623, -2.6737873154729144, -2.6315354456974207, -2.5935164297884405, -2.5589130503724826, -2.527126721302906, -2.497705474412373, -2.4702994283625905, -2.444632022572922, -2.4204807484989144, -2.3976638410137356, -2.3760308419612115, -2.3554557554350577, -2.3358319832387613],
];

/// One value per window of [`WINDOWS`]; `None` where the window is longer than the data.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Windowed {
    /// The last 30 returns.
    #[serde(rename = "30d")]
    #[schema(required = true)]
    pub d30: Option<f64>,
    /// The last 90 returns.
    #[serde(rename = "90d")]
    #[schema(required = true)]
    pub d90: Option<f64>,
    /// The last 365 returns.
    #[serde(rename = "365d")]
    #[schema(required = true)]
    pub d365: Option<f64>,
}

impl Windowed {
    fn from_fn(mut f: impl FnMut(usize) -> Option<f64>) -> Self {
        let [a, b, c] = WINDOWS;
        Self {
            d30: f(a),
            d90: f(b),
            d365: f(c),
        }
    }
}

/// The largest fall from a running high.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Drawdown {
    /// `1 - trough / peak`, in [0, 1) (1.0 only where the fall is below f64's resolution of 1).
    #[schema(minimum = 0, maximum = 1)]
    pub value: f64,
    /// Index of the high the fall started from (the last index at that high).
    pub peak_index: usize,
    /// Index of the lowest point of the fall (the first, on ties).
    pub trough_index: usize,
    /// `trough_index - peak_index`.
    pub duration_days: usize,
    /// First index after the trough back at or above the peak's price; `None` if none is.
    /// With no fall at all (value 0), peak, trough and recovery are all index 0.
    #[schema(required = true)]
    pub recovery_index: Option<usize>,
}

/// A VaR or ES at each of [`LEVELS`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Levels {
    /// At 95%.
    #[serde(rename = "95")]
    pub p95: f64,
    /// At 99%.
    #[serde(rename = "99")]
    pub p99: f64,
}

/// A tail measure by each method.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ByMethod {
    /// From the returns' empirical quantiles.
    pub historical: Levels,
    /// From the Cornish-Fisher expansion; `None` where it is not valid (see the module docs).
    #[schema(required = true)]
    pub cornish_fisher: Option<Levels>,
}

/// The asset against a benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BenchmarkMeasures {
    /// Returns of the two aligned at the end: the longest window possible.
    pub overlap_days: usize,
    /// `cov(asset, benchmark) / var(benchmark)` of log returns per window.
    pub beta: Windowed,
    /// Pearson correlation of log returns per window.
    pub correlation: Windowed,
}

/// The schema of [`RiskMeasures::returns`]: the one kind of return.
fn log_returns_schema() -> utoipa::openapi::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["log"]))
        .build()
}

/// Every measure of a price history; the `measures` object of a `/risk-score` answer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RiskMeasures {
    /// Always `"log"`: what the measures are computed on (daily log returns ln(p[i+1] / p[i])).
    #[schema(schema_with = log_returns_schema)]
    pub returns: &'static str,
    /// Days a year of the annualisation (365).
    pub annualisation_days: u32,
    /// Delta degrees of freedom of the volatility (1: sample standard deviation).
    pub volatility_ddof: u32,
    /// Annualised volatility per window.
    pub volatility_annualised: Windowed,
    /// Over the whole history.
    pub max_drawdown: Drawdown,
    /// `1 - last / highest`.
    #[schema(minimum = 0, maximum = 1)]
    pub current_drawdown: f64,
    /// Returns that VaR and ES looked at.
    pub window_days: usize,
    /// 1-day Value at Risk, positive for a loss.
    pub var_1d: ByMethod,
    /// 1-day Expected Shortfall, positive for a loss.
    pub es_1d: ByMethod,
    /// Present when benchmark prices were posted.
    #[schema(required = true)]
    pub benchmark: Option<BenchmarkMeasures>,
}

/// Every measure of `prices` (oldest first, each finite and > 0), and against `benchmark`
/// (aligned at the end) when given.
///
/// # Errors
/// [`RiskError::NotEnoughPrices`] for fewer than [`RISK_WINDOW`] prices, as for the score.
pub fn risk_measures(prices: &[f64], benchmark: Option<&[f64]>) -> Result<RiskMeasures, RiskError> {
    if prices.len() < RISK_WINDOW {
        return Err(RiskError::NotEnoughPrices {
            needed: RISK_WINDOW,
            got: prices.len(),
        });
    }
    // No window is longer than a year of returns: the older prices only count for drawdown.
    let recent = |p: &[f64]| p.len().saturating_sub(TAIL_WINDOW + 1);
    let returns = log_returns(&prices[recent(prices)..]);
    let tail = &returns[returns.len().saturating_sub(TAIL_WINDOW)..];
    let (var_h, es_h) = historical_var_es(tail).expect("at least 29 returns");
    let (var_cf, es_cf) = match cornish_fisher_var_es(tail) {
        Some((v, e)) => (Some(v), Some(e)),
        None => (None, None),
    };
    let benchmark = benchmark.map(|b| {
        let bench = log_returns(&b[recent(b)..]);
        BenchmarkMeasures {
            overlap_days: (prices.len() - 1).min(b.len().saturating_sub(1)),
            beta: Windowed::from_fn(|w| beta_correlation(&returns, &bench, w).map(|(b, _)| b)),
            correlation: Windowed::from_fn(|w| {
                beta_correlation(&returns, &bench, w).and_then(|(_, c)| c)
            }),
        }
    });
    Ok(RiskMeasures {
        returns: "log",
        annualisation_days: ANNUALISATION_DAYS,
        volatility_ddof: 1,
        volatility_annualised: Windowed::from_fn(|w| annualised_volatility(&returns, w)),
        max_drawdown: max_drawdown(prices).expect("prices are not empty"),
        current_drawdown: current_drawdown(prices).expect("prices are not empty"),
        window_days: tail.len(),
        var_1d: ByMethod {
            historical: var_h,
            cornish_fisher: var_cf,
        },
        es_1d: ByMethod {
            historical: es_h,
            cornish_fisher: es_cf,
        },
        benchmark,
    })
}

/// Daily log returns of `prices` (each finite and > 0): one fewer than the prices.
pub fn log_returns(prices: &[f64]) -> Vec<f64> {
    prices
        .windows(2)
        .map(|w| {
            let ratio = w[1] / w[0];
            if ratio.is_normal() {
                ratio.ln()
            } else {
                // 1e308 / 1e-300 is infinite and 1e-300 / 1e308 zero; their logs are not.
                w[1].ln() - w[0].ln()
            }
        })
        .collect()
}

/// Sample standard deviation (ddof = 1) of the last `window` returns times `sqrt(365)`;
/// `None` when there are fewer than `window` returns (or `window < 2`).
pub fn annualised_volatility(returns: &[f64], window: usize) -> Option<f64> {
    if window < 2 || returns.len() < window {
        return None;
    }
    let xs = &returns[returns.len() - window..];
    let mean = mean(xs);
    let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
    Some((ss / (window - 1) as f64).sqrt() * f64::from(ANNUALISATION_DAYS).sqrt())
}

/// The maximum drawdown of `prices` (see [`Drawdown`]); `None` for no prices.
pub fn max_drawdown(prices: &[f64]) -> Option<Drawdown> {
    let first = *prices.first()?;
    let (mut peak, mut peak_index) = (first, 0);
    let (mut value, mut best_peak, mut trough_index) = (0.0, 0, 0);
    for (i, &p) in prices.iter().enumerate() {
        if p >= peak {
            (peak, peak_index) = (p, i);
        } else {
            // p / peak < 1: no overflow, whatever the unit.
            let dd = 1.0 - p / peak;
            if dd > value {
                (value, best_peak, trough_index) = (dd, peak_index, i);
            }
        }
    }
    let recovery_index = if value > 0.0 {
        let high = prices[best_peak];
        prices[trough_index + 1..]
            .iter()
            .position(|&p| p >= high)
            .map(|j| trough_index + 1 + j)
    } else {
        Some(0)
    };
    Some(Drawdown {
        value,
        peak_index: best_peak,
        trough_index,
        duration_days: trough_index - best_peak,
        recovery_index,
    })
}

/// `1 - last / highest` of `prices`, in [0, 1); `None` for no prices.
pub fn current_drawdown(prices: &[f64]) -> Option<f64> {
    let last = *prices.last()?;
    let high = prices.iter().copied().fold(last, f64::max);
    Some(1.0 - last / high)
}

/// The loss `1 - exp(r)` of a log return, accurate near 0.
fn loss(r: f64) -> f64 {
    -r.exp_m1()
}

/// Historical 1-day VaR and ES at [`LEVELS`] of `returns` (see the module docs); `None` for
/// no returns.
pub fn historical_var_es(returns: &[f64]) -> Option<(Levels, Levels)> {
    let n = returns.len();
    if n == 0 {
        return None;
    }
    // Only the lowest few order statistics are needed: select them, then sort those.
    let mut sorted = returns.to_vec();
    let highest_needed = (((n - 1) as f64 * (1.0 - LEVELS[0])) as usize + 1).min(n - 1);
    sorted.select_nth_unstable_by(highest_needed, f64::total_cmp);
    sorted[..highest_needed].sort_unstable_by(f64::total_cmp);
    let at = |level: f64| {
        let q = quantile_of_sorted(&sorted[..=highest_needed], n, 1.0 - level);
        let var = loss(q);
        // ES = VaR + the mean excess loss of the tail: never below VaR, even after rounding.
        let (mut excess, mut count) = (0.0, 0usize);
        for &r in returns.iter().filter(|&&r| r <= q) {
            excess += loss(r) - var;
            count += 1;
        }
        (var, var + (excess / count as f64).max(0.0))
    };
    let ((v95, e95), (v99, e99)) = (at(LEVELS[0]), at(LEVELS[1]));
    Some((Levels { p95: v95, p99: v99 }, Levels { p95: e95, p99: e99 }))
}

/// The `p` quantile of `n` values, linearly interpolated as numpy's default does (including
/// its way of interpolating from the upper neighbour when the fraction is at least 1/2);
/// `lowest` holds the values' smallest order statistics, sorted, enough for `p`.
fn quantile_of_sorted(lowest: &[f64], n: usize, p: f64) -> f64 {
    let h = (n - 1) as f64 * p;
    let lo = h.floor();
    let t = h - lo;
    let lo = lo as usize;
    let a = lowest[lo];
    let b = lowest[(lo + 1).min(n - 1)];
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

/// Cornish-Fisher 1-day VaR and ES at [`LEVELS`] of `returns` (see the module docs); `None`
/// for fewer than 2 returns, where the expansion is not increasing over the levels used, or
/// where a loss is not finite.
pub fn cornish_fisher_var_es(returns: &[f64]) -> Option<(Levels, Levels)> {
    if returns.len() < 2 {
        return None;
    }
    let n = returns.len() as f64;
    let mu = mean(returns);
    let (mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0);
    for &r in returns {
        let d = r - mu;
        let d2 = d * d;
        m2 += d2;
        m3 += d2 * d;
        m4 += d2 * d2;
    }
    let (m2, m3, m4) = (m2 / n, m3 / n, m4 / n);
    // A constant series has no shape: the expansion is the normal quantile, here `mu`.
    let (s, k) = if m2.is_normal() {
        (m3 / (m2 * m2.sqrt()), m4 / (m2 * m2) - 3.0)
    } else {
        (0.0, 0.0)
    };
    let sd = m2.sqrt();
    if !increasing_between(s, k, Z_TAIL[1][0], Z[0]) {
        return None;
    }
    let q = |z: f64| {
        let (z2, z3) = (z * z, z * z * z);
        let z_cf = z + (z2 - 1.0) * s / 6.0 + (z3 - 3.0 * z) * k / 24.0
            - (2.0 * z3 - 5.0 * z) * s * s / 36.0;
        mu + z_cf * sd
    };
    let mut var = [0.0; 2];
    let mut es = [0.0; 2];
    for (j, (&z, tail)) in Z.iter().zip(&Z_TAIL).enumerate() {
        var[j] = loss(q(z));
        let excess: f64 = tail.iter().map(|&z| loss(q(z)) - var[j]).sum();
        es[j] = var[j] + (excess / CF_ES_POINTS as f64).max(0.0);
    }
    if !var.iter().chain(&es).all(|x| x.is_finite()) {
        return None;
    }
    Some((
        Levels {
            p95: var[0],
            p99: var[1],
        },
        Levels {
            p95: es[0],
            p99: es[1],
        },
    ))
}

/// Whether `z_cf(z)` does not decrease for `z` in `[lo, hi]`: its derivative
/// `1 + S z / 3 + K (z^2 - 1) / 8 - S^2 (6 z^2 - 5) / 36`, a quadratic, is >= 0 at both ends
/// and at its vertex when that lies between them.
fn increasing_between(s: f64, k: f64, lo: f64, hi: f64) -> bool {
    let a = k / 8.0 - s * s / 6.0;
    let b = s / 3.0;
    let c = 1.0 - k / 8.0 + 5.0 * s * s / 36.0;
    let slope = |z: f64| (a * z + b) * z + c;
    let mut ok = slope(lo) >= 0.0 && slope(hi) >= 0.0;
    if a > 0.0 {
        let vertex = -b / (2.0 * a);
        if vertex > lo && vertex < hi {
            ok &= slope(vertex) >= 0.0;
        }
    }
    ok
}

/// Beta and correlation of the last `window` returns of `asset` against those of
/// `benchmark` (both aligned at the end); `None` when either has fewer than `window` returns
/// (or `window < 2`) or the benchmark's variance is zero; the correlation is `None` also
/// when the asset's is.
pub fn beta_correlation(
    asset: &[f64],
    benchmark: &[f64],
    window: usize,
) -> Option<(f64, Option<f64>)> {
    if window < 2 || asset.len() < window || benchmark.len() < window {
        return None;
    }
    let x = &asset[asset.len() - window..];
    let y = &benchmark[benchmark.len() - window..];
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    let beta = sxy / syy;
    if !(syy > 0.0 && beta.is_finite()) {
        return None;
    }
    let corr = (sxx > 0.0).then(|| (sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0));
    Some((beta, corr.filter(|c| c.is_finite())))
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A value per window of [`WINDOWS`].
    type PerWindow = [Option<f64>; 3];

    /// One reference series, as `bench/risk_measures_reference.py` prints it.
    struct Case {
        name: &'static str,
        vol: [Option<f64>; 3],
        /// (value, peak, trough, duration, recovery)
        mdd: (f64, usize, usize, usize, Option<usize>),
        current: f64,
        var_h: [f64; 2],
        es_h: [f64; 2],
        var_cf: Option<[f64; 2]>,
        es_cf: Option<[f64; 2]>,
        window: usize,
        /// (overlap, beta per window, correlation per window)
        bench: Option<(usize, PerWindow, PerWindow)>,
    }

    /// Produced by `/tmp/pyref/bin/python bench/risk_measures_reference.py` (numpy 2.4.6,
    /// pandas 3.1.1, scipy 1.17.1; the whole output is kept in
    /// `bench/risk_measures_reference.out`), pasted as printed.
    #[rustfmt::skip]
    const NUMPY_CASES: &[Case] = &[
        Case { name: "constant_100_x40", vol: [Some(0.0), None, None], mdd: (0.0, 0, 0, 0, Some(0)), current: 0.0, var_h: [-0.0, -0.0], es_h: [0.0, 0.0], var_cf: Some([-0.0, -0.0]), es_cf: Some([0.0, 0.0]), window: 39, bench: None },
        Case { name: "rising_1_to_40", vol: [Some(0.37060067764780535), None, None], mdd: (0.0, 0, 0, 0, Some(0)), current: 0.0, var_h: [-0.02695588109736131, -0.02589738362180904], es_h: [-0.02597840755735492, -0.02564102564102555], var_cf: None, es_cf: None, window: 39, bench: None },
        Case { name: "crash_and_recovery", vol: [None, None, None], mdd: (0.6513215598999998, 4, 14, 10, Some(26)), current: 0.0, var_h: [0.10000000000000005, 0.10000000000000009], es_h: [0.10000000000000009, 0.10000000000000009], var_cf: None, es_cf: None, window: 29, bench: None },
        Case { name: "sine_wave_120_vs_sine_bench_150", vol: [Some(0.4005784895052811), Some(0.4112720890710514), None], mdd: (0.1638506910410248, 89, 99, 10, Some(108)), current: 0.15882693314448215, var_h: [0.026928524824198864, 0.027490153878237375], es_h: [0.02745341403345473, 0.027497220443399972], var_cf: None, es_cf: None, window: 119, bench: Some((119, [Some(-1.9943907638519949), Some(-1.9969028183869257), None], [Some(-0.9971662671366275), Some(-0.9973300090928954), None])) },
        Case { name: "extreme_alternating_30", vol: [None, None, None], mdd: (1.0, 1, 2, 1, Some(3)), current: 0.0, var_h: [1.0, 1.0], es_h: [1.0, 1.0], var_cf: None, es_cf: None, window: 29, bench: None },
        Case { name: "BTC_2024-03-01_400", vol: [Some(0.5056689057964373), Some(0.5171010536173976), Some(0.4981828352929172)], mdd: (0.261513750538678, 12, 189, 177, Some(250)), current: 0.20965846151005318, var_h: [0.039458408232459656, 0.05699713763994516], es_h: [0.05206595868864108, 0.06981328754939531], var_cf: Some([0.03761953233212187, 0.06083835502432503]), es_cf: Some([0.05190972031969911, 0.0763513445976042]), window: 365, bench: None },
        Case { name: "ETH_2024-03-01_400_vs_BTC_2024-03-01_400", vol: [Some(0.6702233335926142), Some(0.7775291772614741), Some(0.6814335929043944)], mdd: (0.5583497343042708, 10, 397, 387, None), current: 0.5530235189923244, var_h: [0.05904834591065908, 0.0831704872086935], es_h: [0.07938666660706085, 0.10964434292296807], var_cf: Some([0.05425841579872518, 0.10241375478438797]), es_cf: Some([0.0839441812140447, 0.13721579020896907]), window: 365, bench: Some((399, [Some(1.1584890700033101), Some(1.2702651791629607), Some(1.1059911705889962)], [Some(0.874054768080909), Some(0.8447984740999198), Some(0.8085686160914912)])) },
        Case { name: "DOGE_2022-04-11_100_vs_BTC_2022-01-01_200", vol: [Some(0.8189706857864522), Some(1.1998492213544296), None], mdd: (0.6654016445287791, 14, 68, 54, None), current: 0.5635041113219481, var_h: [0.09453687052770714, 0.17952593062529784], es_h: [0.1573677498580323, 0.21018518518518514], var_cf: Some([0.10662293168040506, 0.1875610807690771]), es_cf: Some([0.1560542378695556, 0.2387810349641009]), window: 99, bench: Some((99, [Some(0.907606744600597), Some(1.197012311121428), None], [Some(0.6382355230175889), Some(0.7867213240841087), None])) },
        Case { name: "SOL_2020-08-11_30", vol: [None, None, None], mdd: (0.4797090755771055, 20, 28, 8, None), current: 0.24104564140402662, var_h: [0.1580165525950657, 0.23462029115995414], es_h: [0.2107261752423505, 0.2620039092376987], var_cf: Some([0.175961175666313, 0.25568819683332156]), es_cf: Some([0.22453983890924145, 0.30004570334556724]), window: 29, bench: None },
        Case { name: "XRP_2023-01-01_500_vs_BTC_2023-04-11_400", vol: [Some(0.42355110032027316), Some(0.7540994025231478), Some(0.8013072673082647)], mdd: (0.4213928527869252, 199, 253, 54, None), current: 0.3899256006830101, var_h: [0.04891244094304302, 0.09686351961729817], es_h: [0.07406331046059893, 0.12136534113728156], var_cf: Some([-0.10243084174739835, 0.13176739405071772]), es_cf: Some([0.03768579491716291, 0.31262887699743674]), window: 365, bench: Some((399, [Some(0.4729154695311309), Some(0.7338013404948184), Some(0.837847625285196)], [Some(0.547342252711308), Some(0.6027665815152228), Some(0.4901921926355179)])) },
    ];

    /// `n` closes of `coin` from the date `start` on, from `data/prices`.
    fn closes_from(coin: &str, start: &str, n: usize) -> Vec<f64> {
        crate::prices::repository_closes_from(coin, start, n)
    }

    /// The prices of a case name of the reference script.
    fn series(name: &str) -> Vec<f64> {
        match name {
            "constant_100_x40" => vec![100.0; 40],
            "rising_1_to_40" => (1..=40).map(f64::from).collect(),
            "crash_and_recovery" => {
                let mut p = vec![100.0; 5];
                p.extend((1..=10).map(|k| 100.0 * 0.9f64.powf(f64::from(k))));
                let low = *p.last().unwrap();
                p.extend((1..=15).map(|k| low * 1.1f64.powf(f64::from(k))));
                p
            }
            "sine_wave_120" => (0..120)
                .map(|i| 100.0 * (0.1 * (0.3 * f64::from(i)).sin() + 0.002 * f64::from(i)).exp())
                .collect(),
            "sine_bench_150" => (0..150)
                .map(|i| 50.0 * (0.05 * (0.3 * f64::from(i) + 0.5).sin()).exp())
                .collect(),
            "extreme_alternating_30" => (0..30)
                .map(|i| if i % 2 == 0 { 1e-300 } else { 1e308 })
                .collect(),
            real => {
                // "{COIN}_{first date}_{count}"
                let parts: Vec<&str> = real.split('_').collect();
                closes_from(parts[0], parts[1], parts[2].parse().unwrap())
            }
        }
    }

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= 1e-12 + 1e-9 * want.abs()
    }

    fn close_opt(got: Option<f64>, want: Option<f64>) -> bool {
        match (got, want) {
            (Some(g), Some(w)) => close(g, w),
            (None, None) => true,
            _ => false,
        }
    }

    fn windowed(w: Windowed) -> [Option<f64>; 3] {
        [w.d30, w.d90, w.d365]
    }

    fn levels(l: Levels) -> [f64; 2] {
        [l.p95, l.p99]
    }

    #[test]
    fn matches_the_numpy_reference_cases() {
        for case in NUMPY_CASES {
            let name = case.name;
            let (prices, bench) = match name.split_once("_vs_") {
                Some((a, b)) => (series(a), Some(series(b))),
                None => (series(name), None),
            };
            let m = risk_measures(&prices, bench.as_deref()).unwrap();
            let vol = windowed(m.volatility_annualised);
            for (g, w) in vol.iter().zip(&case.vol) {
                assert!(close_opt(*g, *w), "{name} vol {vol:?} vs {:?}", case.vol);
            }
            let d = m.max_drawdown;
            let (value, peak, trough, duration, recovery) = case.mdd;
            assert!(close(d.value, value), "{name} mdd {d:?}");
            assert_eq!(
                (
                    d.peak_index,
                    d.trough_index,
                    d.duration_days,
                    d.recovery_index
                ),
                (peak, trough, duration, recovery),
                "{name}"
            );
            assert!(close(m.current_drawdown, case.current), "{name}");
            assert_eq!(m.window_days, case.window, "{name}");
            let pairs = [
                ("var_h", Some(levels(m.var_1d.historical)), Some(case.var_h)),
                ("es_h", Some(levels(m.es_1d.historical)), Some(case.es_h)),
                ("var_cf", m.var_1d.cornish_fisher.map(levels), case.var_cf),
                ("es_cf", m.es_1d.cornish_fisher.map(levels), case.es_cf),
            ];
            for (what, got, want) in pairs {
                match (got, want) {
                    (Some(g), Some(w)) => assert!(
                        close(g[0], w[0]) && close(g[1], w[1]),
                        "{name} {what}: {g:?} vs numpy {w:?}"
                    ),
                    (None, None) => {}
                    _ => panic!("{name} {what}: {got:?} vs numpy {want:?}"),
                }
            }
            match (m.benchmark, case.bench) {
                (None, None) => {}
                (Some(b), Some((overlap, beta, corr))) => {
                    assert_eq!(b.overlap_days, overlap, "{name}");
                    for (g, w) in windowed(b.beta).iter().zip(&beta) {
                        assert!(close_opt(*g, *w), "{name} beta {:?} vs {beta:?}", b.beta);
                    }
                    for (g, w) in windowed(b.correlation).iter().zip(&corr) {
                        assert!(close_opt(*g, *w), "{name} corr {:?}", b.correlation);
                    }
                }
                (got, _) => panic!("{name}: benchmark {got:?}"),
            }
        }
    }

    #[test]
    fn a_window_needs_as_many_returns_as_it_names() {
        let prices: Vec<f64> = (0..31).map(|i| 100.0 + f64::from(i % 3)).collect();
        let m = risk_measures(&prices[..30], None).unwrap();
        assert_eq!(windowed(m.volatility_annualised), [None; 3]);
        let m = risk_measures(&prices, None).unwrap();
        assert!(m.volatility_annualised.d30.is_some());
        assert_eq!(m.volatility_annualised.d90, None);
        assert_eq!(m.window_days, 30);
    }

    #[test]
    fn fewer_than_thirty_prices_is_an_error() {
        assert_eq!(
            risk_measures(&[1.0; 29], None),
            Err(RiskError::NotEnoughPrices {
                needed: 30,
                got: 29
            })
        );
    }

    #[test]
    fn a_benchmark_is_paired_at_the_end_and_a_flat_one_has_no_beta() {
        let asset: Vec<f64> = (0..100).map(|i| 10.0 + f64::from(i % 7)).collect();
        // The benchmark is the asset doubled over its last 40 days: beta 1, correlation 1.
        let bench: Vec<f64> = asset[60..].iter().map(|p| 2.0 * p).collect();
        let b = risk_measures(&asset, Some(&bench))
            .unwrap()
            .benchmark
            .unwrap();
        assert_eq!(b.overlap_days, 39);
        assert!(close(b.beta.d30.unwrap(), 1.0) && close(b.correlation.d30.unwrap(), 1.0));
        assert_eq!((b.beta.d90, b.correlation.d90), (None, None));
        let flat = risk_measures(&asset, Some(&[5.0; 50]))
            .unwrap()
            .benchmark
            .unwrap();
        assert_eq!(windowed(flat.beta), [None; 3]);
        assert_eq!(windowed(flat.correlation), [None; 3]);
        let none = risk_measures(&asset, Some(&[])).unwrap().benchmark.unwrap();
        assert_eq!(none.overlap_days, 0);
    }

    #[test]
    fn a_constant_series_has_no_risk_at_any_scale() {
        for price in [f64::MAX, 1.7e308, 1e-300, 5e-324, 1.0] {
            let m = risk_measures(&[price; 400], Some(&[price; 400])).unwrap();
            assert_eq!(windowed(m.volatility_annualised), [Some(0.0); 3], "{price}");
            assert_eq!((m.max_drawdown.value, m.current_drawdown), (0.0, 0.0));
            assert_eq!(levels(m.var_1d.historical), [0.0; 2]);
            assert_eq!(levels(m.es_1d.historical), [0.0; 2]);
            assert_eq!(m.var_1d.cornish_fisher.map(levels), Some([0.0; 2]));
            assert_eq!(windowed(m.benchmark.unwrap().beta), [None; 3]);
        }
    }

    #[test]
    fn the_answer_serialises_with_windows_and_levels_as_keys() {
        let prices: Vec<f64> = (0..100).map(|i| 100.0 + f64::from(i % 5)).collect();
        let json = serde_json::to_value(risk_measures(&prices, None).unwrap()).unwrap();
        assert_eq!(json["returns"], "log");
        assert_eq!(json["annualisation_days"], 365);
        assert!(json["volatility_annualised"]["90d"].is_number());
        assert!(json["volatility_annualised"]["365d"].is_null());
        assert!(json["var_1d"]["historical"]["99"].is_number());
        assert!(
            json["es_1d"]["cornish_fisher"].is_object()
                || json["es_1d"]["cornish_fisher"].is_null()
        );
        assert!(json["max_drawdown"]["recovery_index"].is_number());
        assert!(json["benchmark"].is_null());
    }

    /// A price series as a walk of bounded daily log returns from any start in 1e-250..1e250.
    fn walk(max_step: f64) -> impl Strategy<Value = Vec<f64>> {
        (
            -250.0f64..250.0,
            proptest::collection::vec(-max_step..max_step, 29..120),
        )
            .prop_map(|(start, steps)| {
                let mut p = vec![10f64.powf(start)];
                for s in steps {
                    p.push(p.last().unwrap() * s.exp());
                }
                p
            })
    }

    fn check_invariants(m: &RiskMeasures) -> Result<(), TestCaseError> {
        for v in windowed(m.volatility_annualised).into_iter().flatten() {
            prop_assert!(v.is_finite() && v >= 0.0, "{v}");
        }
        let d = m.max_drawdown;
        prop_assert!((0.0..=1.0).contains(&d.value), "{d:?}");
        prop_assert!(d.peak_index <= d.trough_index);
        prop_assert!((0.0..=1.0).contains(&m.current_drawdown));
        prop_assert!(m.current_drawdown <= d.value);
        let mut methods = vec![(m.var_1d.historical, m.es_1d.historical)];
        if let (Some(v), Some(e)) = (m.var_1d.cornish_fisher, m.es_1d.cornish_fisher) {
            methods.push((v, e));
        } else {
            prop_assert!(m.var_1d.cornish_fisher.is_none() && m.es_1d.cornish_fisher.is_none());
        }
        for (var, es) in methods {
            for x in levels(var).into_iter().chain(levels(es)) {
                prop_assert!(x.is_finite() && x <= 1.0, "{var:?} {es:?}");
            }
            prop_assert!(var.p95 <= es.p95 && var.p99 <= es.p99, "{var:?} {es:?}");
            prop_assert!(var.p95 <= var.p99, "{var:?}");
        }
        if let Some(b) = m.benchmark {
            for x in windowed(b.beta)
                .into_iter()
                .chain(windowed(b.correlation))
                .flatten()
            {
                prop_assert!(x.is_finite());
            }
            for c in windowed(b.correlation).into_iter().flatten() {
                prop_assert!((-1.0..=1.0).contains(&c));
            }
        }
        Ok(())
    }

    fn assert_near(a: &RiskMeasures, b: &RiskMeasures, tol: f64) -> Result<(), TestCaseError> {
        let near = |x: f64, y: f64| (x - y).abs() <= tol * (1.0 + y.abs());
        let near_opt = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) => near(x, y),
            (x, y) => x.is_none() && y.is_none(),
        };
        for (x, y) in windowed(a.volatility_annualised)
            .into_iter()
            .zip(windowed(b.volatility_annualised))
        {
            prop_assert!(near_opt(x, y), "{x:?} {y:?}");
        }
        prop_assert!(near(a.max_drawdown.value, b.max_drawdown.value));
        prop_assert!(near(a.current_drawdown, b.current_drawdown));
        for (x, y) in [
            (a.var_1d.historical, b.var_1d.historical),
            (a.es_1d.historical, b.es_1d.historical),
        ] {
            prop_assert!(near(x.p95, y.p95) && near(x.p99, y.p99), "{x:?} {y:?}");
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn measures_keep_their_invariants_on_random_walks(prices in walk(0.3), bench in walk(0.3)) {
            let m = risk_measures(&prices, Some(&bench)).unwrap();
            check_invariants(&m)?;
            // A fall of at most e^-0.3 a day over fewer than 120 days stays above 1e-16.
            prop_assert!(m.max_drawdown.value < 1.0);
        }

        #[test]
        fn measures_stay_finite_for_extreme_prices(
            exponents in proptest::collection::vec(-300.0f64..308.0, 30..80),
            bench in proptest::collection::vec(-300.0f64..308.0, 0..80),
        ) {
            let prices: Vec<f64> = exponents.iter().map(|e| 10f64.powf(*e)).collect();
            let bench: Vec<f64> = bench.iter().map(|e| 10f64.powf(*e)).collect();
            check_invariants(&risk_measures(&prices, Some(&bench)).unwrap())?;
        }

        #[test]
        fn measures_do_not_depend_on_the_unit_of_the_prices(
            prices in walk(0.2),
            power in -200i32..200,
            scale in 1e-6f64..1e6,
        ) {
            let base = risk_measures(&prices, None).unwrap();
            // A power of two scales every price exactly: the answer is the same to the bit.
            let two: Vec<f64> = prices.iter().map(|p| p * 2f64.powi(power)).collect();
            prop_assume!(two.iter().all(|p| p.is_normal()));
            prop_assert_eq!(risk_measures(&two, None).unwrap(), base);
            // Any other factor rounds each price, which moves the answer by rounding only.
            let other: Vec<f64> = prices.iter().map(|p| p * scale).collect();
            prop_assume!(other.iter().all(|p| p.is_normal()));
            assert_near(&risk_measures(&other, None).unwrap(), &base, 1e-9)?;
        }
    }
}
