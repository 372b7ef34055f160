//! Risk: the CB-05 score of SPEC section 4 here, and the further measures a crypto user
//! expects (return volatility, drawdown, VaR and ES, beta) in [`measures`]; pure functions over
//! `&[f64]`.
//!
//! The CB-05 formula is reproduced exactly, including its quirks (population standard
//! deviation, truncation rather than rounding, `volatility` returned raw), because clients
//! compare scores with the old service's.

pub mod measures;

use serde::Serialize;

/// How many prices the score looks at (the last 30).
pub const RISK_WINDOW: usize = 30;
/// How many of the most recent prices the swing term looks at.
const SWING_WINDOW: usize = 7;

/// Why a risk score could not be computed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RiskError {
    /// Fewer than [`RISK_WINDOW`] prices.
    #[error("need at least {needed} prices for a risk score, got {got}")]
    NotEnoughPrices { needed: usize, got: usize },
}

/// The bucket a score falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Score below 30.
    Conservative,
    /// Score from 30 to 69.
    Moderate,
    /// Score 70 and above.
    Degen,
}

impl RiskLevel {
    /// Every level, lowest first.
    pub const ALL: [Self; 3] = [Self::Conservative, Self::Moderate, Self::Degen];

    /// The level of a score: below 30 conservative, below 70 moderate, else degen.
    pub fn of(score: u8) -> Self {
        match score {
            0..30 => Self::Conservative,
            30..70 => Self::Moderate,
            _ => Self::Degen,
        }
    }

    /// The wire name (`"conservative"`, `"moderate"`, `"degen"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Conservative => "conservative",
            Self::Moderate => "moderate",
            Self::Degen => "degen",
        }
    }
}

/// A CB-05 risk assessment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RiskScore {
    /// 0..=100.
    pub score: u8,
    /// The bucket of `score`.
    pub level: RiskLevel,
    /// std(p30) / mean(p30), population standard deviation, unscaled.
    pub volatility: f64,
}

/// The CB-05 score over the last 30 prices (oldest first; the caller guarantees finite, > 0).
///
/// # Errors
/// [`RiskError::NotEnoughPrices`] for fewer than 30 prices.
pub fn cb05(prices: &[f64]) -> Result<RiskScore, RiskError> {
    if prices.len() < RISK_WINDOW {
        return Err(RiskError::NotEnoughPrices {
            needed: RISK_WINDOW,
            got: prices.len(),
        });
    }
    // Every CB-05 term is a ratio of two quantities of the same unit, so the window can be
    // divided by its largest price first: the sums then stay below 30 and cannot overflow
    // (30 prices of 1.7e308 once scored 70 "degen" with a NaN volatility), and a constant
    // window becomes exactly 1.0 thirty times, whose deviations are exactly zero.
    let window = &prices[prices.len() - RISK_WINDOW..];
    let top = max(window);
    let mut scaled = [0.0; RISK_WINDOW];
    for (s, p) in scaled.iter_mut().zip(window) {
        *s = p / top;
    }
    let p30 = &scaled[..];
    let p7 = &scaled[RISK_WINDOW - SWING_WINDOW..];
    let mean30 = mean(p30);
    let volatility = population_std(p30) / mean30;
    let swing = (max(p7) - min(p7)) / mean(p7);
    let trend = slope(p30) / mean30;
    let raw = 0.5 * (200.0 * volatility).min(100.0)
        + 0.3 * (150.0 * swing).min(100.0)
        + 0.2 * (500.0 * trend.abs()).min(100.0);
    // `as u8` saturates and maps NaN to 0; the clamp states the contract's 0..=100.
    let score = raw.trunc().clamp(0.0, 100.0) as u8;
    Ok(RiskScore {
        score,
        level: RiskLevel::of(score),
        volatility,
    })
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn population_std(xs: &[f64]) -> f64 {
    let m = mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64).sqrt()
}

fn max(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

/// Least-squares slope of `ys` against 0, 1, ..., n-1.
fn slope(ys: &[f64]) -> f64 {
    let n = ys.len() as f64;
    let x_mean = (n - 1.0) / 2.0;
    let y_mean = mean(ys);
    let (mut num, mut den) = (0.0, 0.0);
    for (i, y) in ys.iter().enumerate() {
        let dx = i as f64 - x_mean;
        num += dx * (y - y_mean);
        den += dx * dx;
    }
    num / den
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_equal_prices_score_zero() {
        let r = cb05(&[100.0; 30]).unwrap();
        assert_eq!(
            (r.score, r.level, r.volatility),
            (0, RiskLevel::Conservative, 0.0)
        );
    }

    #[test]
    fn one_to_thirty_scores_66_moderate() {
        let prices: Vec<f64> = (1..=30).map(f64::from).collect();
        let r = cb05(&prices).unwrap();
        assert_eq!((r.score, r.level), (66, RiskLevel::Moderate));
        assert!((r.volatility - 0.558416).abs() < 1e-6, "{}", r.volatility);
    }

    #[test]
    fn a_constant_series_scores_zero_whatever_its_scale() {
        // Issue 12: 30 x 1.7e308 overflowed the sums and scored 70, degen, NaN volatility.
        for price in [
            1.7e308,
            f64::MAX,
            1e-300,
            f64::MIN_POSITIVE,
            5e-324,
            0.1,
            3.7,
        ] {
            let r = cb05(&[price; 30]).unwrap();
            assert_eq!(
                (r.score, r.level, r.volatility),
                (0, RiskLevel::Conservative, 0.0),
                "{price}"
            );
        }
    }

    #[test]
    fn the_score_does_not_depend_on_the_unit_of_the_prices() {
        let prices: Vec<f64> = (1..=30).map(f64::from).collect();
        let base = cb05(&prices).unwrap();
        for scale in [1e-300, 1e-10, 7.0, 1e300] {
            let scaled: Vec<f64> = prices.iter().map(|p| p * scale).collect();
            let r = cb05(&scaled).unwrap();
            assert_eq!((r.score, r.level), (base.score, base.level), "{scale}");
            assert!((r.volatility - base.volatility).abs() < 1e-12, "{scale}");
        }
    }

    #[test]
    fn fewer_than_thirty_prices_is_an_error() {
        assert_eq!(
            cb05(&[1.0; 29]),
            Err(RiskError::NotEnoughPrices {
                needed: 30,
                got: 29
            })
        );
    }

    #[test]
    fn only_the_last_thirty_prices_count() {
        let mut prices = vec![1.0, 1000.0, 5.0];
        prices.extend(std::iter::repeat_n(100.0, 30));
        assert_eq!(cb05(&prices).unwrap().score, 0);
    }

    #[test]
    fn levels_follow_the_thresholds() {
        assert_eq!(RiskLevel::of(29), RiskLevel::Conservative);
        assert_eq!(RiskLevel::of(30), RiskLevel::Moderate);
        assert_eq!(RiskLevel::of(69), RiskLevel::Moderate);
        assert_eq!(RiskLevel::of(70), RiskLevel::Degen);
        assert_eq!(RiskLevel::of(100), RiskLevel::Degen);
    }

    fn closes(coin: &str) -> Vec<f64> {
        crate::prices::repository_closes(coin)
    }

    /// Produced by `/opt/pyref/bin/python bench/risk_reference.py` (numpy 2.4.6; its output is
    /// kept in `bench/risk_reference.out`): (case, score, level, volatility).
    #[rustfmt::skip]
    const NUMPY_CASES: &[(&str, u8, &str, f64)] = &[
        ("constant_100", 0, "conservative", 0.0),
        ("one_to_thirty", 66, "moderate", 0.5584155773160767),
        ("thirty_to_one", 86, "degen", 0.5584155773160767),
        ("calm_random_walk_40", 6, "conservative", 0.05472941890850003),
        ("wild_random_walk_35", 38, "moderate", 0.20416219101096306),
        ("alternating_1_3", 80, "degen", 0.5),
        ("BTC_rows_0_to_60", 24, "conservative", 0.1418885405146999),
        ("BTC_rows_500_to_560", 10, "conservative", 0.05358443542650584),
        ("DOGE_rows_0_to_60", 10, "conservative", 0.06385542947460847),
        ("DOGE_rows_500_to_560", 53, "moderate", 0.3973726876267988),
        ("SOL_rows_0_to_60", 21, "conservative", 0.11369669526943688),
        ("SOL_rows_500_to_560", 20, "conservative", 0.0921280336911148),
    ];

    /// The random walks of `bench/risk_reference.py` (numpy default_rng(7)), as it printed them.
    #[rustfmt::skip]
    const CALM: [f64; 40] = [50.000615080461955, 50.15021303408486, 50.012920586879986, 49.56948711986356, 49.344620731836145, 48.85771468383629, 48.88710831190132, 49.54671096527259, 49.303438017968034, 48.99846966477205, 49.23907358161907, 49.41511538648426, 49.46723342435327, 49.009091362857895, 48.99475740703543, 49.336606587325136, 48.67785418644748, 48.45560556376345, 47.54305883268542, 46.93390919493127, 46.07742226443707, 45.969225561523515, 45.39026697511745, 45.51356174357181, 45.58496069085963, 45.49982788779758, 44.36899639589168, 44.1306263819521, 44.10922780062204, 44.15923584583087, 43.48868285304758, 43.281409767239445, 42.8599582698932, 42.514689181426704, 42.968127943590176, 42.62254264964675, 42.60868332585231, 42.98718143627841, 42.73703868644355, 42.68932723330884];
    #[rustfmt::skip]
    const WILD: [f64; 35] = [2.0334153180430783, 2.0529629029307186, 1.708346073902968, 1.7279689971892773, 2.118631247166276, 1.6798399824238142, 1.9109604011777253, 1.9454806111205392, 1.767009356158246, 2.385362179906997, 2.674306052394328, 2.234006458647214, 2.2591169933441506, 2.4632397710238934, 2.3944657684116777, 2.6527495943488377, 2.6264131310523116, 2.9028883409074497, 3.601983297390834, 3.254814458551136, 3.3555176935878293, 3.1302407769366782, 3.190571929005918, 2.6701135768103983, 2.447888387240777, 2.376898232978562, 2.7199430839148206, 3.229716156652528, 2.648160074394884, 2.3505955754426724, 2.590120101290824, 1.9209911526214765, 1.792060004098415, 1.7660982936857201, 2.1325639882877296];

    fn case_prices(name: &str) -> Vec<f64> {
        match name {
            "constant_100" => vec![100.0; 30],
            "one_to_thirty" => (1..=30).map(f64::from).collect(),
            "thirty_to_one" => (1..=30).rev().map(f64::from).collect(),
            "calm_random_walk_40" => CALM.to_vec(),
            "wild_random_walk_35" => WILD.to_vec(),
            "alternating_1_3" => (0..30)
                .map(|i| if i % 2 == 0 { 1.0 } else { 3.0 })
                .collect(),
            real => {
                // "{COIN}_rows_{start}_to_{end}"
                let parts: Vec<&str> = real.split('_').collect();
                let (start, end): (usize, usize) =
                    (parts[2].parse().unwrap(), parts[4].parse().unwrap());
                closes(parts[0])[start..end].to_vec()
            }
        }
    }

    #[test]
    fn matches_numpy_reference_cases() {
        for &(name, score, level, volatility) in NUMPY_CASES {
            let r = cb05(&case_prices(name)).unwrap();
            assert_eq!(r.score, score, "{name}");
            assert_eq!(r.level.as_str(), level, "{name}");
            assert!(
                (r.volatility - volatility).abs() <= 1e-12 * volatility.max(1.0),
                "{name}: {} vs numpy {volatility}",
                r.volatility
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn scores_stay_in_range_for_any_positive_prices(
            prices in proptest::collection::vec(1e-6f64..1e9, 30..80)
        ) {
            let r = cb05(&prices).unwrap();
            proptest::prop_assert!(r.score <= 100);
            proptest::prop_assert_eq!(r.level, RiskLevel::of(r.score));
            proptest::prop_assert!(r.volatility.is_finite() && r.volatility >= 0.0);
        }

        #[test]
        fn scores_stay_finite_for_extreme_prices(
            exponents in proptest::collection::vec(-300.0f64..308.0, 30..60)
        ) {
            let prices: Vec<f64> = exponents.iter().map(|e| 10f64.powf(*e)).collect();
            let r = cb05(&prices).unwrap();
            proptest::prop_assert!(r.score <= 100);
            proptest::prop_assert_eq!(r.level, RiskLevel::of(r.score));
            proptest::prop_assert!(r.volatility.is_finite() && r.volatility >= 0.0);
        }
    }
}
