//! What the service tells its operators: Prometheus metrics ([`metrics`]), the buffered log
//! writer ([`logwriter`]) and the allocator's and the process's memory ([`memory`]).
//!
//! The bottom layer beside [`crate::domain`]: it imports nothing of the crate, so every layer
//! above may count, log and measure.

pub mod logwriter;
pub mod memory;
pub mod metrics;

/// `error: cause: cause...`, for logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
