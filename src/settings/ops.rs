//! Settings of the operations features (warm-up, retraining, batch, access control, CORS,
//! timeouts), parsed once at start-up from flags and environment variables.

use std::fmt;
use std::num::{NonZeroU64, NonZeroUsize};
use std::str::FromStr;
use std::time::Duration;

use crate::domain::Symbol;

/// Defaults of the operations settings.
pub mod defaults {
    /// `WARMUP_SYMBOLS`.
    pub const WARMUP_SYMBOLS: &str = "BTC,ETH,SOL,MATIC,AVAX";
    /// `MAX_BATCH_SIZE`.
    pub const MAX_BATCH_SIZE: usize = 100;
    /// `REQUEST_TIMEOUT_SECS`: reads, risk scores and forecasts from a model in memory.
    pub const REQUEST_TIMEOUT_SECS: u64 = 30;
    /// `TRAINING_TIMEOUT_SECS`: requests that may train (a 50-epoch training on a long history
    /// takes minutes on two cores).
    pub const TRAINING_TIMEOUT_SECS: u64 = 900;
    /// `UPDATE_EPOCHS`: epochs of `POST /models/{symbol}/update` when the body names none.
    pub const UPDATE_EPOCHS: usize = 5;
    /// `CORS_ORIGINS`: any origin, as the old service allowed, so the app's frontend works
    /// out of the box; a list narrows it, `none` turns CORS off.
    pub const CORS_ORIGINS: &str = "*";
}

/// Why an operations setting could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A duration that is not `<number><unit>` with unit `s`, `m`, `h` or `d`.
    #[error("invalid duration {0:?}: expected e.g. 3600s, 90m, 12h or 7d")]
    Duration(String),
    /// A list entry that is not a valid symbol.
    #[error("invalid symbol {raw:?}: {reason}")]
    Symbol {
        /// The entry.
        raw: String,
        /// Why.
        reason: String,
    },
    /// An empty API key.
    #[error("API_KEYS holds an empty key")]
    EmptyKey,
}

/// A comma-separated list of symbols; empty entries are skipped, so `""` is an empty list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SymbolList(pub Vec<Symbol>);

impl FromStr for SymbolList {
    type Err = SettingsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                Symbol::parse(p).map_err(|e| SettingsError::Symbol {
                    raw: p.to_owned(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl fmt::Display for SymbolList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(Symbol::as_str).collect();
        f.write_str(&names.join(","))
    }
}

/// A model age such as `7d`, `12h`, `90m` or `3600s` (a bare number is seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxAge(pub Duration);

impl FromStr for MaxAge {
    type Err = SettingsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SettingsError::Duration(s.to_owned());
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        let secs = n.checked_mul(per).filter(|&s| s > 0).ok_or_else(bad)?;
        Ok(Self(Duration::from_secs(secs)))
    }
}

/// The accepted API keys (comma-separated in `API_KEYS`). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeys(pub Vec<String>);

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} keys)", self.0.len())
    }
}

impl FromStr for ApiKeys {
    type Err = SettingsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let keys: Vec<String> = s.split(',').map(|k| k.trim().to_owned()).collect();
        if keys.iter().any(String::is_empty) {
            return Err(SettingsError::EmptyKey);
        }
        Ok(Self(keys))
    }
}

/// Who may make the server train a model from the prices a request brings (`TRAINING_MODE`).
///
/// Models trained from request data are stored and served to every client, so a request with
/// made-up prices could otherwise plant a bad model for a real symbol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainingMode {
    /// Any request with at least 200 prices (the old service's behaviour).
    #[default]
    Open,
    /// Only requests carrying a key of `API_KEYS`; others get 401/403 for a symbol without a
    /// stored model. Needs `API_KEYS`.
    Authenticated,
    /// Never from request data: models come from pretraining (`train --all`) or the
    /// authenticated `POST /models/{symbol}/train`; a symbol without one gets 404.
    Off,
}

impl TrainingMode {
    /// Every mode.
    pub const ALL: [Self; 3] = [Self::Open, Self::Authenticated, Self::Off];

    /// The setting's value as written (`open`, `authenticated`, `off`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Authenticated => "authenticated",
            Self::Off => "off",
        }
    }
}

/// Settings of the operations features, flattened into `serve`'s settings.
#[derive(Clone, Debug, clap::Args)]
pub struct OpsSettings {
    /// Symbols whose stored models are loaded at start-up (comma-separated; empty: none).
    #[arg(long, env = "WARMUP_SYMBOLS", default_value = defaults::WARMUP_SYMBOLS)]
    pub warmup_symbols: SymbolList,
    /// Age after which a model is retrained in the background from the next request that
    /// brings enough prices (e.g. `7d`, `12h`, `3600s`); unset: never.
    #[arg(long, env = "MODEL_MAX_AGE")]
    pub model_max_age: Option<MaxAge>,
    /// Bearer keys that may train, update and purge models (comma-separated); unset: open.
    #[arg(long, env = "API_KEYS", hide_env_values = true)]
    pub api_keys: Option<ApiKeys>,
    /// Who may train a model from the prices of a request: `open` (anyone), `authenticated`
    /// (requests with a key of `API_KEYS`) or `off` (never; models come from pretraining).
    #[arg(long, env = "TRAINING_MODE", value_enum, default_value_t = TrainingMode::default())]
    pub training_mode: TrainingMode,
    /// Origins allowed by CORS (comma-separated), `*` for any (the old service's default), or
    /// `none` for no CORS headers at all.
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',', default_value = defaults::CORS_ORIGINS)]
    pub cors_origins: Vec<String>,
    /// Most requests in one `POST /predict-batch` (more: 413).
    #[arg(long, env = "MAX_BATCH_SIZE", default_value_t = NonZeroUsize::new(defaults::MAX_BATCH_SIZE).expect("non-zero"))]
    pub max_batch_size: NonZeroUsize,
    /// Time limit of ordinary requests, in seconds (beyond: 504).
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = NonZeroU64::new(defaults::REQUEST_TIMEOUT_SECS).expect("non-zero"))]
    pub request_timeout_secs: NonZeroU64,
    /// Time limit of requests that may train (predict, batch, train, update), in seconds.
    #[arg(long, env = "TRAINING_TIMEOUT_SECS", default_value_t = NonZeroU64::new(defaults::TRAINING_TIMEOUT_SECS).expect("non-zero"))]
    pub training_timeout_secs: NonZeroU64,
    /// Epochs of `POST /models/{symbol}/update` when the request names none.
    #[arg(long, env = "UPDATE_EPOCHS", default_value_t = NonZeroUsize::new(defaults::UPDATE_EPOCHS).expect("non-zero"))]
    pub update_epochs: NonZeroUsize,
}

impl Default for OpsSettings {
    fn default() -> Self {
        Self {
            warmup_symbols: defaults::WARMUP_SYMBOLS.parse().expect("valid default"),
            model_max_age: None,
            api_keys: None,
            training_mode: TrainingMode::default(),
            cors_origins: vec![defaults::CORS_ORIGINS.to_owned()],
            max_batch_size: NonZeroUsize::new(defaults::MAX_BATCH_SIZE).expect("non-zero"),
            request_timeout_secs: NonZeroU64::new(defaults::REQUEST_TIMEOUT_SECS)
                .expect("non-zero"),
            training_timeout_secs: NonZeroU64::new(defaults::TRAINING_TIMEOUT_SECS)
                .expect("non-zero"),
            update_epochs: NonZeroUsize::new(defaults::UPDATE_EPOCHS).expect("non-zero"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_accept_days_hours_minutes_and_seconds() {
        let secs = |s: &str| s.parse::<MaxAge>().unwrap().0.as_secs();
        assert_eq!(secs("7d"), 7 * 86_400);
        assert_eq!(secs("12h"), 12 * 3600);
        assert_eq!(secs("90m"), 5400);
        assert_eq!(secs("3600s"), 3600);
        assert_eq!(secs("3600"), 3600);
        for bad in ["", "d", "7w", "-1d", "0s", "1.5h"] {
            assert!(bad.parse::<MaxAge>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn symbol_lists_skip_blanks_and_refuse_bad_symbols() {
        let list: SymbolList = " btc, ETH,,".parse().unwrap();
        assert_eq!(list.to_string(), "BTC,ETH");
        assert!("".parse::<SymbolList>().unwrap().0.is_empty());
        assert!("BTC,../x".parse::<SymbolList>().is_err());
    }

    #[test]
    fn api_keys_are_never_printed() {
        let keys: ApiKeys = "s3cret,other".parse().unwrap();
        assert!(!format!("{keys:?}").contains("s3cret"));
        assert!("a,,b".parse::<ApiKeys>().is_err());
    }
}
