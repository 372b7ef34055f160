//! Keeping the resident memory of a long-running server close to what its models need.
//!
//! glibc's malloc gives each thread that allocates its own arena (up to 8 per core) and keeps
//! freed memory in them. Training allocates tens of MB of activations and gradients on
//! whichever blocking thread runs it and frees them at the end, so after 100 on-demand
//! trainings the process held ~80 MiB for ~40 MiB of models (`bench/compare`). A trim after
//! each training brings it back near the models' own size. The arenas are capped at 8: at 2
//! (as before) the HTTP workers and the forecast threads queued for them under load
//! (`__lll_lock_wait_private` and its futex calls were ~7% of a `/risk-score`), while 8 hold
//! about as much as 2 once trimmed (62-64 against 61 MiB with 100 cached models). Elsewhere
//! (musl, macOS) these are no-ops.

/// Caps glibc's malloc at eight arenas. Call once, before the runtime starts its threads.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable; M_ARENA_MAX with a positive value is valid.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 8);
    }
}

/// Returns the free memory of every malloc arena to the operating system (after a training).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory malloc holds free; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
