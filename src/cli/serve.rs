//! `coinsphere-ml serve`: the HTTP service on a multi-threaded runtime.

use std::time::Duration;

use anyhow::Context;

use crate::http::server::Application;
use crate::settings::Settings;

/// Runs the service until a shutdown signal.
///
/// # Errors
/// The runtime or the service could not start, or the server failed.
pub fn run(settings: Settings) -> anyhow::Result<()> {
    crate::telemetry::memory::limit_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let app = Application::build(settings)
            .await
            .context("cannot start the service")?;
        app.run_until_stopped().await.context("server failed")
    })?;
    // Trainings run on blocking threads; do not wait for them forever on the way out.
    runtime.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}
