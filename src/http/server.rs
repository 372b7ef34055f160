//! [`Application`]: builds the state, binds the listener (port 0 in tests) and serves until
//! SIGTERM or Ctrl-C, letting in-flight requests finish. Warm-up runs in the background once
//! serving starts; `/health/ready` turns 200 when it is done and 503 again on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;

use super::ops::OpsState;
use super::{router, AppState, Limits};
use crate::domain::Symbol;
use crate::registry::Registry;
use crate::settings::Settings;
use crate::store::{FsModelStore, StoreError};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The models directory could not be opened.
    #[error("cannot open the models directory")]
    Store(#[from] StoreError),
}

/// A bound, not yet running, service.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    addr: SocketAddr,
    warmup: Vec<Symbol>,
}

impl Application {
    /// Opens the models directory, builds the registry and binds `host:port`.
    ///
    /// # Errors
    /// [`StartupError::Store`] or [`StartupError::Bind`].
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let store = FsModelStore::open(&settings.store.models_dir)?;
        let registry = Registry::new(settings.registry_config(), Arc::new(store));
        let state = AppState {
            registry,
            limits: Arc::new(Limits::from_settings(&settings)),
            started: Instant::now(),
            ops: Arc::new(OpsState::new(&settings.ops)),
        };
        let addr = SocketAddr::new(settings.host, settings.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { addr, source })?;
        if settings.database_url.is_some() {
            tracing::info!("DATABASE_URL is set but unused: models live in the models directory");
        }
        Ok(Self {
            listener,
            state,
            addr,
            warmup: settings.ops.warmup_symbols.0.clone(),
        })
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The shared state (tests read the registry's counters through it).
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until SIGTERM or Ctrl-C.
    ///
    /// # Errors
    /// An I/O error of the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then stops accepting connections, turns
    /// `/health/ready` to 503 and waits for in-flight requests to finish.
    ///
    /// # Errors
    /// An I/O error of the server.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.addr, "listening");
        let state = self.state.clone();
        let warmup = self.warmup;
        tokio::spawn(async move {
            crate::ops::warmup::warm_up(&state.registry, &warmup).await;
            state.ops.readiness.set_ready();
        });
        let ops = Arc::clone(&self.state.ops);
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(async move {
                shutdown.await;
                ops.readiness.set_draining();
            })
            .await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
