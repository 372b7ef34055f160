//! [`Application`]: builds the state, binds the listener (port 0 in tests) and serves until
//! SIGTERM or Ctrl-C, letting in-flight requests finish. Warm-up runs in the background once
//! serving starts; `/health/ready` turns 200 when it is done and 503 again on shutdown.
//!
//! The accept loop is ours (hyper-util's connection builder, as `axum::serve` uses) so that one
//! client cannot exhaust the server:
//! - at most `MAX_CONNECTIONS` connections are served; one more is answered `503` with
//!   `Retry-After` and closed at once, so the process never runs out of file descriptors (the
//!   soft limit is raised to fit at start-up);
//! - a connection must send a request's headers within `HEADER_READ_TIMEOUT_SECS` of being
//!   ready for one (on a new connection and between keep-alive requests alike), or it is
//!   closed: slow-header and idle connections do not pile up;
//! - bodies have their own limits (declared size, `BODY_READ_TIMEOUT_SECS`): see
//!   [`super::limits`] and [`super::extract`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::state::{DataState, OpsState};
use super::{router, AppState, Limits};
use crate::domain::Symbol;
use crate::registry::stats_cache::StatsCache;
use crate::registry::Registry;
use crate::settings::ops::TrainingMode;
use crate::settings::Settings;
use crate::store::objects::ObjectBlobs;
use crate::store::postgres::{Database, PgModelStore};
use crate::store::predictions::PredictionLog;
use crate::store::prices::{PriceDb, PriceSource};
use crate::store::{FsModelStore, ModelStore, StoreError, StoreEvent};
use crate::telemetry::metrics::Metrics;

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
    /// The model store (directory, database or object store) could not be opened.
    #[error("cannot open the model store")]
    Store(#[from] StoreError),
    /// The settings contradict each other.
    #[error("invalid settings: {0}")]
    Settings(String),
}

/// The store the settings ask for: the models directory without `DATABASE_URL`, else
/// PostgreSQL (migrated), with the weights in the object store of `MODEL_STORE` if set; and
/// with PostgreSQL, its schema and pool for the prices and the prediction log.
async fn open_store(
    settings: &Settings,
) -> Result<(Arc<dyn ModelStore>, Option<Database>), StartupError> {
    let Some(url) = &settings.database_url else {
        if settings.model_store.is_some() {
            return Err(StartupError::Settings(
                "MODEL_STORE needs DATABASE_URL: the database holds the models' rows".into(),
            ));
        }
        return Ok((
            Arc::new(FsModelStore::open(&settings.store.models_dir)?),
            None,
        ));
    };
    let url = url.expose().to_owned();
    let schema = settings.database_schema.clone();
    let replica = settings.replica_id();
    let location = settings.model_store.clone();
    // The database client blocks: connect and migrate off the runtime.
    let store = tokio::task::spawn_blocking(move || {
        let objects = location.as_ref().map(ObjectBlobs::from_env).transpose()?;
        PgModelStore::connect(&url, schema, &replica, objects)
    })
    .await
    .map_err(|e| StartupError::Settings(format!("opening the store panicked: {e}")))??;
    let database = store.database();
    Ok((Arc::new(store), Some(database)))
}

/// The price reader and the prediction log on `db` (checking `PRICES_QUERY`).
async fn open_data(
    settings: &Settings,
    db: Database,
    metrics: Arc<Metrics>,
) -> Result<Arc<DataState>, StartupError> {
    let data = settings.data.clone();
    tokio::task::spawn_blocking(move || {
        let source = match data.prices_query {
            Some(query) => PriceSource::Query(query),
            None => PriceSource::Table,
        };
        let ttl = Duration::from_secs(data.prices_cache_secs);
        let prices = PriceDb::new(db.clone(), source, ttl, Arc::clone(&metrics))?;
        let log = PredictionLog::start(db.clone(), data.prediction_log_queue.get(), metrics)?;
        Ok(Arc::new(DataState {
            db,
            prices,
            log,
            history_days: data.price_history_days.get(),
        }))
    })
    .await
    .map_err(|e| StartupError::Settings(format!("opening the database panicked: {e}")))?
}

/// Applies the store's change events (from other replicas) to `registry`, and price changes to
/// the price cache, for as long as the registry lives.
fn subscribe(store: &dyn ModelStore, registry: &Arc<Registry>, data: Option<Arc<DataState>>) {
    let weak = Arc::downgrade(registry);
    let runtime = tokio::runtime::Handle::current();
    let listening = store.subscribe(Box::new(move |event| {
        let Some(registry) = weak.upgrade() else {
            return false;
        };
        if let Some(data) = &data {
            match &event {
                Some(StoreEvent::PricesChanged { symbol }) => data.prices.invalidate(symbol),
                Some(StoreEvent::Resync) => data.prices.invalidate_all(),
                _ => {}
            }
        }
        if let Some(event) = event {
            let _entered = runtime.enter();
            registry.apply_store_event(event);
        }
        true
    }));
    if listening {
        tracing::info!("listening for model changes from other replicas");
    }
}

/// How many connections the server serves at once and how long it waits for headers.
#[derive(Clone, Copy, Debug)]
struct ConnectionLimits {
    max_connections: usize,
    header_read_timeout: Duration,
}

/// A bound, not yet running, service.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    addr: SocketAddr,
    warmup: Vec<Symbol>,
    connections: ConnectionLimits,
}

impl Application {
    /// Opens the models directory, builds the registry and binds `host:port`.
    ///
    /// # Errors
    /// [`StartupError::Store`] or [`StartupError::Bind`].
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        if settings.ops.training_mode == TrainingMode::Authenticated
            && settings.ops.api_keys.is_none()
        {
            return Err(StartupError::Settings(
                "TRAINING_MODE=authenticated needs API_KEYS".into(),
            ));
        }
        let connections = ConnectionLimits {
            max_connections: fit_file_limit(settings.max_connections.get()),
            header_read_timeout: Duration::from_secs(settings.header_read_timeout_secs.get()),
        };
        let (store, database) = open_store(&settings).await?;
        let registry = Registry::new(settings.registry_config(), Arc::clone(&store));
        let data = match database {
            Some(db) => Some(open_data(&settings, db, Arc::clone(registry.metrics())).await?),
            None => None,
        };
        subscribe(store.as_ref(), &registry, data.clone());
        let stats_cache = Arc::new(StatsCache::new(
            settings.stats_cache_size,
            settings.stats_path_cache_mb.saturating_mul(1 << 20),
            Arc::clone(registry.metrics()),
        ));
        let state = AppState {
            stats_cache,
            registry,
            limits: Arc::new(Limits::from_settings(&settings)),
            started: Instant::now(),
            ops: Arc::new(OpsState::new(&settings.ops)),
            data,
        };
        let addr = SocketAddr::new(settings.host, settings.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { addr, source })?;
        tracing::info!(
            store = state.registry.store_kind(),
            replica = state.registry.replica(),
            "model store open"
        );
        Ok(Self {
            listener,
            state,
            addr,
            warmup: settings.ops.warmup_symbols.0.clone(),
            connections,
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
            crate::registry::warmup::warm_up(&state.registry, &warmup).await;
            state.ops.readiness.set_ready();
        });
        let ops = Arc::clone(&self.state.ops);
        let app = router(self.state);
        let limits = self.connections;
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        // Refusals hold a socket for a moment too: a few at a time, the rest are just closed.
        let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        builder.http2().timer(TokioTimer::new());
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(e) => {
                        // Out of descriptors or similar: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                if let Ok(permit) = Arc::clone(&refusals).try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse_connection(stream).await;
                        drop(permit);
                    });
                }
                continue;
            };
            let app = app.clone();
            let (builder, graceful) = (builder.clone(), graceful.watcher());
            let header_read_timeout = limits.header_read_timeout;
            tokio::spawn(async move {
                // hyper's header timeout starts once it knows the protocol, which takes the
                // first bytes: a connection that never sends them is closed here.
                if !first_bytes_in_time(&stream, header_read_timeout).await {
                    drop(slot);
                    return;
                }
                let service = TowerToHyperService::new(tower::service_fn(
                    move |request: Request<Incoming>| app.clone().oneshot(request.map(Body::new)),
                ));
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                if let Err(e) = graceful.watch(connection).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                drop(slot);
            });
        }
        ops.readiness.set_draining();
        drop(self.listener);
        graceful.shutdown().await;
        Ok(())
    }
}

/// Whether `stream` sends enough bytes to tell HTTP/1 from HTTP/2 within `limit` (`false` also
/// when it closes first).
async fn first_bytes_in_time(stream: &TcpStream, limit: Duration) -> bool {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut buf = [0u8; 24];
    let decided = async {
        loop {
            let n = stream.peek(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return false;
            }
            if n == PREFACE.len() || buf[..n] != PREFACE[..n] {
                return true;
            }
            // A partial HTTP/2 preface: the rest is on its way, or the deadline comes.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(limit, decided).await.unwrap_or(false)
}

/// Over-limit connections answered with a 503 at once.
const REFUSALS_AT_ONCE: usize = 64;

/// Answers an over-limit connection `503` with `Retry-After` and closes it. What the client
/// already sent is read first (briefly), so that closing does not reset the connection before
/// the answer is read.
async fn refuse_connection(mut stream: TcpStream) {
    const BODY: &str =
        r#"{"detail":"Too many open connections; retry shortly","code":"too_many_connections"}"#;
    let mut scratch = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut scratch)).await;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// `wanted` connections if the process may open that many files (plus room for models, logs
/// and the listener); the soft file limit is raised towards the hard one to make room. Fewer,
/// with a warning, when the hard limit is too low.
fn fit_file_limit(wanted: usize) -> usize {
    const SPARE: u64 = 64;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; setrlimit reads it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return wanted;
    }
    let needed = wanted as u64 + SPARE;
    if limit.rlim_cur < needed {
        let raised = libc::rlimit {
            rlim_cur: needed.min(limit.rlim_max),
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = raised.rlim_cur;
        }
    }
    let fits = limit.rlim_cur.saturating_sub(SPARE).max(1) as usize;
    if fits < wanted {
        tracing::warn!(
            wanted,
            fits,
            "the file limit is too low for MAX_CONNECTIONS: serving fewer connections"
        );
    }
    wanted.min(fits)
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
