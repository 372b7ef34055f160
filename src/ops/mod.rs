//! Running the service in production: metrics, readiness and warm-up, background retraining of
//! stale models, bulk pretraining from CSV files, and the settings of all of these.
//!
//! Nothing here sees HTTP; the routes and middleware that expose these live in [`crate::http`].

pub mod healthcheck;
pub mod logwriter;
pub mod memory;
pub mod metrics;
pub mod pretrain;
pub mod retrain;
pub mod settings;
pub mod warmup;

use std::sync::atomic::{AtomicU8, Ordering};

/// Where the service is in its life, for `GET /health/ready`.
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;

impl Readiness {
    /// Start-up and warm-up are done.
    pub fn set_ready(&self) {
        // Never leave draining for ready: a warm-up finishing during shutdown must not revive it.
        let _ = self
            .0
            .compare_exchange(STARTING, READY, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Shutting down: finish in-flight requests, take no new traffic.
    pub fn set_draining(&self) {
        self.0.store(DRAINING, Ordering::SeqCst);
    }

    /// `starting`, `ready` or `draining`.
    pub fn state(&self) -> &'static str {
        match self.0.load(Ordering::SeqCst) {
            STARTING => "starting",
            READY => "ready",
            _ => "draining",
        }
    }

    /// Whether traffic should be sent here.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst) == READY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_goes_starting_ready_draining_and_never_back() {
        let r = Readiness::default();
        assert_eq!(r.state(), "starting");
        r.set_ready();
        assert!(r.is_ready());
        r.set_draining();
        r.set_ready();
        assert_eq!(r.state(), "draining");
        assert!(!r.is_ready());
    }
}
