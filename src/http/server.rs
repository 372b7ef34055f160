//! [`Application`]: builds the state, binds the listener (port 0 in tests) and serves until
//! SIGTERM or Ctrl-C, letting in-flight requests finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;

use super::{router, AppState, Limits};
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
        tracing::info!(addr = %self.addr, "listening");
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown_signal())
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
