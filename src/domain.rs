//! Types that parse at the boundary: [`Symbol`], [`PriceSeries`] and [`Horizon`].
//!
//! Raw input (HTTP bodies, CLI arguments, CSV files) becomes one of these once; everything past
//! the boundary can rely on the invariant instead of re-checking it. In particular a [`Symbol`]
//! is the only way a user-supplied name reaches a file path, and it can hold neither a dot nor a
//! slash.

use std::fmt;

/// Longest accepted symbol, in characters (SPEC section 2).
pub const MAX_SYMBOL_LEN: usize = 32;

/// Why a raw value was rejected at the boundary.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DomainError {
    /// The symbol is empty.
    #[error("symbol must not be empty")]
    EmptySymbol,
    /// The symbol is longer than [`MAX_SYMBOL_LEN`] characters.
    #[error("symbol must be at most {max} characters, got {got}")]
    SymbolTooLong { max: usize, got: usize },
    /// The symbol holds a character outside `A-Z a-z 0-9 _ -`.
    #[error("symbol may only contain A-Z, a-z, 0-9, '_' and '-', found {found:?} at position {position}")]
    SymbolCharacter { found: char, position: usize },
    /// A price is not a finite number greater than zero.
    #[error("price at index {index} must be a finite number > 0, got {value}")]
    BadPrice { index: usize, value: f64 },
    /// The forecast horizon is outside `1..=max`.
    #[error("days_ahead must be between 1 and {max}, got {got}")]
    HorizonOutOfRange { got: i64, max: usize },
    /// A model version that could not be part of a file name.
    #[error("model version must be 1-32 characters of A-Z, a-z, 0-9, '.', '_' and '-', not starting with '.', got {0:?}")]
    BadModelVersion(String),
}

/// A market symbol: 1-32 characters of `A-Z a-z 0-9 _ -`, stored upper-case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol(String);

impl Symbol {
    /// Validates and upper-cases a raw symbol.
    ///
    /// # Errors
    /// [`DomainError::EmptySymbol`], [`DomainError::SymbolTooLong`] or
    /// [`DomainError::SymbolCharacter`] (dots, slashes, spaces, non-ASCII...).
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.is_empty() {
            return Err(DomainError::EmptySymbol);
        }
        let len = raw.chars().count();
        if len > MAX_SYMBOL_LEN {
            return Err(DomainError::SymbolTooLong {
                max: MAX_SYMBOL_LEN,
                got: len,
            });
        }
        if let Some((position, found)) = raw
            .chars()
            .enumerate()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(DomainError::SymbolCharacter { found, position });
        }
        Ok(Self(raw.to_ascii_uppercase()))
    }

    /// The upper-case symbol.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Symbol {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for Symbol {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A price history, oldest first, every value finite and > 0. May be empty: how many points an
/// operation needs is that operation's business (60 to forecast, 30 to score risk).
#[derive(Clone, Debug, PartialEq)]
pub struct PriceSeries(Vec<f64>);

impl PriceSeries {
    /// Checks every price.
    ///
    /// # Errors
    /// [`DomainError::BadPrice`] naming the first price that is NaN, infinite, zero or negative.
    pub fn parse(prices: Vec<f64>) -> Result<Self, DomainError> {
        if let Some(index) = prices.iter().position(|p| !(p.is_finite() && *p > 0.0)) {
            return Err(DomainError::BadPrice {
                index,
                value: prices[index],
            });
        }
        Ok(Self(prices))
    }

    /// The prices, oldest first.
    pub fn as_slice(&self) -> &[f64] {
        &self.0
    }

    /// Number of prices.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no prices.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The most recent price, if any.
    pub fn last(&self) -> Option<f64> {
        self.0.last().copied()
    }

    /// Keeps only the most recent `n` prices (all of them if there are fewer).
    #[must_use]
    pub fn last_n(mut self, n: usize) -> Self {
        let excess = self.0.len().saturating_sub(n);
        self.0.drain(..excess);
        self
    }

    /// The prices, oldest first.
    pub fn into_inner(self) -> Vec<f64> {
        self.0
    }
}

/// How many steps (days) ahead to forecast: `1..=max`, where `max` is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Horizon(usize);

impl Horizon {
    /// Validates a raw horizon against the configured maximum.
    ///
    /// # Errors
    /// [`DomainError::HorizonOutOfRange`] for 0, negatives and anything above `max`.
    pub fn parse(raw: i64, max: usize) -> Result<Self, DomainError> {
        match usize::try_from(raw) {
            Ok(h) if (1..=max).contains(&h) => Ok(Self(h)),
            _ => Err(DomainError::HorizonOutOfRange { got: raw, max }),
        }
    }

    /// The number of steps.
    pub fn get(self) -> usize {
        self.0
    }
}

/// A model version such as `v1.0.0`: part of every model's key and file name, so it is
/// restricted like a [`Symbol`] plus inner dots (never leading, never `..`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelVersion(String);

impl ModelVersion {
    /// Validates a raw version.
    ///
    /// # Errors
    /// [`DomainError::BadModelVersion`] for anything that is not a plain file-name fragment.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let ok = (1..=MAX_SYMBOL_LEN).contains(&raw.len())
            && !raw.starts_with('.')
            && !raw.contains("..")
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::BadModelVersion(raw.to_owned()))
        }
    }

    /// The version text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ModelVersion {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The current time as RFC 3339 UTC with a `Z` (the contract's timestamp format).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_upper_cased() {
        assert_eq!(Symbol::parse("btc-usd_2").unwrap().as_str(), "BTC-USD_2");
    }

    #[test]
    fn symbols_that_could_reach_a_path_are_rejected() {
        for raw in [
            "../../etc/passwd",
            "..",
            "a/b",
            "a.b",
            "a\\b",
            "a b",
            "é",
            "a\0",
        ] {
            assert!(Symbol::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn empty_and_long_symbols_are_rejected() {
        assert_eq!(Symbol::parse(""), Err(DomainError::EmptySymbol));
        assert!(Symbol::parse(&"A".repeat(32)).is_ok());
        assert_eq!(
            Symbol::parse(&"A".repeat(300)),
            Err(DomainError::SymbolTooLong { max: 32, got: 300 })
        );
    }

    #[test]
    fn the_first_bad_price_is_named() {
        let err = PriceSeries::parse(vec![1.0, 2.0, 0.0, f64::NAN]).unwrap_err();
        assert_eq!(
            err,
            DomainError::BadPrice {
                index: 2,
                value: 0.0
            }
        );
        assert!(PriceSeries::parse(vec![1.0, f64::INFINITY]).is_err());
        assert!(PriceSeries::parse(vec![1.0, -3.0]).is_err());
        assert!(PriceSeries::parse(vec![f64::NAN]).is_err());
        assert!(PriceSeries::parse(vec![]).unwrap().is_empty());
    }

    #[test]
    fn last_n_keeps_the_most_recent_prices() {
        let s = PriceSeries::parse(vec![1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.clone().last_n(2).as_slice(), &[2.0, 3.0]);
        assert_eq!(s.last_n(10).as_slice(), &[1.0, 2.0, 3.0]);
    }

    #[test]
    fn model_versions_cannot_escape_a_directory() {
        assert_eq!(ModelVersion::parse("v1.0.0").unwrap().as_str(), "v1.0.0");
        for raw in ["", "..", ".hidden", "v1/../x", "a/b", "v1..0", "v 1"] {
            assert!(ModelVersion::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn horizons_outside_the_range_are_rejected() {
        assert_eq!(Horizon::parse(7, 90).unwrap().get(), 7);
        assert_eq!(Horizon::parse(90, 90).unwrap().get(), 90);
        for raw in [0, -1, 91, 100_000, i64::MIN] {
            assert!(Horizon::parse(raw, 90).is_err(), "{raw} was accepted");
        }
    }
}
