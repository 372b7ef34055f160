//! Invariants every statistical model keeps on any valid history: a path of the requested
//! length, finite and positive, inside its own band.

use coinsphere_ml::forecast::{intervals::forecast_with_intervals, model_by_name};
use proptest::prelude::*;

const STAT_MODELS: [&str; 7] = [
    "naive",
    "drift",
    "moving_average",
    "ets",
    "theta",
    "ensemble",
    "auto",
];

/// Random-walk-like prices between 1e-4 and 1e6 (multiplicative steps up to +-30%).
fn prices() -> impl Strategy<Value = Vec<f64>> {
    (-4.0f64..6.0, prop::collection::vec(-0.3f64..0.3, 59..200)).prop_map(|(start, steps)| {
        let mut log = start * std::f64::consts::LN_10;
        std::iter::once(log.exp())
            .chain(steps.into_iter().map(|s| {
                log += s;
                log.exp()
            }))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_path_is_finite_banded_and_of_the_requested_length(
        prices in prices(),
        horizon in 1usize..40,
        level in 0.05f64..0.99,
    ) {
        for name in STAT_MODELS {
            let model = model_by_name(name).unwrap();
            let f = forecast_with_intervals(model.as_ref(), &prices, horizon, level).unwrap();
            prop_assert_eq!(f.path.len(), horizon);
            prop_assert!((0.0..=1.0).contains(&f.confidence));
            for p in &f.path {
                prop_assert!(p.price.is_finite() && p.price > 0.0, "{name}: {p:?}");
                prop_assert!(p.lower.is_finite() && p.upper.is_finite(), "{name}: {p:?}");
                prop_assert!(p.lower <= p.price && p.price <= p.upper, "{name}: {p:?}");
            }
        }
    }
}

#[test]
fn a_constant_series_gets_that_constant_from_every_model() {
    let prices = vec![42.0; 60];
    for name in STAT_MODELS {
        let model = model_by_name(name).unwrap();
        let f = forecast_with_intervals(model.as_ref(), &prices, 30, 0.8).unwrap();
        for p in &f.path {
            assert!((p.price - 42.0).abs() < 1e-6, "{name}: {p:?}");
            assert!(p.lower.is_finite() && p.upper.is_finite(), "{name}: {p:?}");
        }
        assert!((0.0..=1.0).contains(&f.confidence), "{name}");
    }
}

#[test]
fn sixty_prices_are_enough_for_every_statistical_model() {
    let prices: Vec<f64> = (0..60).map(|i| 100.0 + (i as f64).sin()).collect();
    for name in STAT_MODELS {
        let model = model_by_name(name).unwrap();
        let f = forecast_with_intervals(model.as_ref(), &prices, 90, 0.8).unwrap();
        assert_eq!(f.path.len(), 90, "{name}");
    }
}
