//! The forecast pool: one thread per core runs cached forecasts to completion, first come first
//! served.
//!
//! A cached LSTM forecast is 0.3-0.5 ms of CPU on a model of its own (100 KB of weights). On
//! tokio's blocking pool every concurrent request got a thread of its own: 32 connections meant
//! 32 runnable threads on 2 cores, which the kernel time-sliced, so every switch refilled L1/L2
//! with another model's weights, and the slicing spread latencies (p99 three times p50).
//! Measured with `bench/compare` on a 2-core Xeon: the same load with all requests on one model
//! ran 30% faster than on 100, which is that refilling. With as many threads as cores, each
//! forecast runs uninterrupted on warm caches, and the queue in front of them is FIFO.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of worker threads fed from one FIFO queue.
#[derive(Debug)]
pub(crate) struct ForecastPool {
    /// `Sender` is `Sync`: callers on any runtime thread send without a lock.
    queue: mpsc::Sender<Job>,
}

impl ForecastPool {
    /// Starts `threads` workers (at least one), named `forecast-N`.
    pub(crate) fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("forecast-{n}"))
                .spawn(move || loop {
                    // The lock is held only while taking a job, never while running one.
                    let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                        Ok(job) => job,
                        Err(_) => return, // the pool was dropped
                    };
                    // A panicking job drops its result sender (the caller sees an error); the
                    // worker lives on.
                    let _ = catch_unwind(AssertUnwindSafe(job));
                })
                .expect("cannot start a forecast thread");
        }
        Self { queue: tx }
    }

    /// One worker per available core.
    pub(crate) fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// Runs `f` on a worker and returns its result; `None` if `f` panicked.
    pub(crate) async fn run<T, F>(&self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        let sent = self.queue.send(job);
        if sent.is_err() {
            return None;
        }
        rx.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_pool_and_a_panic_leaves_it_working() {
        let pool = ForecastPool::new(2);
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .flatten();
        assert!(name.is_some_and(|n| n.starts_with("forecast-")));
        assert_eq!(pool.run(|| -> u8 { panic!("boom") }).await, None);
        let sums = futures_sum(&pool).await;
        assert_eq!(sums, (0..64u64).map(|i| i * i).sum::<u64>());
    }

    async fn futures_sum(pool: &ForecastPool) -> u64 {
        let mut total = 0;
        for i in 0..64u64 {
            total += pool.run(move || i * i).await.unwrap();
        }
        total
    }
}
