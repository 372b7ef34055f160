//! Where trained models live between runs: the [`ModelStore`] trait and its filesystem
//! implementation [`FsModelStore`].
//!
//! # Layout
//!
//! A model is two files in the models directory:
//!
//! - `{SYMBOL}_{VERSION}.{HASH}.safetensors`, the weights (PyTorch parameter names), named by
//!   the first 16 hex digits of their SHA-256, so that two saves never write one name with
//!   different bytes;
//! - `{SYMBOL}_{VERSION}.json`, the sidecar: format version, the weights' file name
//!   (`weights_file`) and SHA-256, creation time, and the engine's [`LstmMetadata`].
//!
//! # Why a crash or a race cannot tear a model
//!
//! A save writes the weights under their content name, then the sidecar, each through a
//! uniquely named temp file, fsync, rename and fsync of the directory. Renaming the sidecar is
//! the one commit point: until then readers see the previous sidecar and the previous weights it
//! names, neither touched; after it, the new pair. A crash at any step leaves the previous model
//! (and a stray file, removed later); two processes saving one model at once leave the sidecar
//! renamed last and the weights it names, which the other did not remove.
//!
//! After committing, a save removes the model's weights files that the current sidecar does not
//! name and that are older than a grace period ([`DEFAULT_GRACE`]): a younger one may be another
//! writer's, renamed but not yet committed. A reader that finds the weights its sidecar names
//! gone (a save committed and cleaned up between its two reads) reads the sidecar again.
//!
//! [`FsModelStore::open`] removes what crashes leave behind: temp files whose process is gone or
//! that are older than the grace period, and weights no sidecar names that are older than it.
//! It only touches names of the store's own patterns.
//!
//! Sidecars written before content names (`weights_file` = `{SYMBOL}_{VERSION}.safetensors`)
//! still load; a binary from before content names reads a new model as missing (it looks for
//! the old name) and retrains, it never loads a torn one. Format 1 sidecars (level models,
//! without `metadata.transform`) load and answer as before; see [`FORMAT_VERSION`].
//!
//! Anything that does not verify on load (bad JSON, unknown format, a weights name outside the
//! pattern, checksum, shapes, non-finite weights) is logged and reported as missing, so the
//! caller retrains.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{ModelVersion, Symbol};
use crate::forecast::lstm::{LstmMetadata, TrainedLstm};

pub mod objects;
pub mod postgres;
pub mod predictions;
pub mod prices;

/// Version of the sidecar layout written; a sidecar with a version outside
/// [`READABLE_FORMATS`] is treated as missing.
///
/// 2 added `metadata.transform` (levels or log-returns) and the returns model's fields of the
/// training summary. A binary that reads only format 1 therefore sees a returns model as
/// missing and retrains, instead of serving its weights as a level model.
pub const FORMAT_VERSION: u32 = 2;

/// Sidecar versions this binary loads: format 1 holds level models, read as before.
pub const READABLE_FORMATS: [u32; 2] = [1, 2];

/// How old an unreferenced weights file or a temp file must be before the store removes it.
///
/// It must exceed the longest save (writing two files with fsyncs: milliseconds), so that a
/// concurrent writer's weights, renamed but not yet committed, are never taken for leftovers.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);

/// Hex digits of the SHA-256 in a weights file name.
const HASH_LEN: usize = 16;
const WEIGHTS_EXT: &str = ".safetensors";
const SIDECAR_EXT: &str = ".json";
const TEMP_EXT: &str = ".tmp";
/// Reads of a sidecar when the weights it names are gone (see the module docs): one save
/// committing and cleaning up between a reader's two reads is rare, two in a row rarer still.
const READ_ATTEMPTS: usize = 3;

/// Why the store failed (I/O, not a bad artefact: those are "missing").
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The model holds NaN or infinite numbers and is refused.
    #[error("refusing to store a model with non-finite {0}")]
    NonFinite(&'static str),
    /// The database (PostgreSQL) failed or cannot be reached.
    #[error("model database: {0}")]
    Database(String),
    /// The object store failed or cannot be reached.
    #[error("object store: {0}")]
    Objects(String),
}

/// A model read from a store, with the generation it was published as (stores that number
/// their publications: PostgreSQL).
pub struct Stored {
    /// The verified model.
    pub model: TrainedLstm,
    /// Its generation, if the store numbers them.
    pub generation: Option<u64>,
}

/// A change of a stored model made by any process sharing the store
/// ([`ModelStore::subscribe`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreEvent {
    /// A model was published as `generation`.
    Published {
        /// The model's symbol.
        symbol: Symbol,
        /// The model's version.
        version: ModelVersion,
        /// Its new generation.
        generation: u64,
        /// The replica that published it.
        replica: String,
    },
    /// A model was removed.
    Purged {
        /// The model's symbol.
        symbol: Symbol,
        /// The model's version.
        version: ModelVersion,
        /// The replica that removed it.
        replica: String,
    },
    /// New closes of a symbol were written (`coinsphere-ml import`): cached prices are stale.
    PricesChanged {
        /// The symbol.
        symbol: Symbol,
    },
    /// The subscription was interrupted and is back: events may have been missed, so every
    /// cached model must be checked against the store again.
    Resync,
}

/// Receives [`StoreEvent`]s on the store's listener thread; returns `false` once it wants no
/// more (its receiver is gone), which ends the subscription.
pub type EventHandler = Box<dyn Fn(Option<StoreEvent>) -> bool + Send>;

/// The exclusive right to train one model across every process sharing a store, taken by
/// [`TrainingLock::try_acquire`] and given back when dropped (or when the process dies).
pub trait TrainingLock: Send {
    /// Takes the lock if it is free; `Ok(false)` while another process holds it.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the lock cannot be asked for.
    fn try_acquire(&mut self) -> Result<bool, StoreError>;
}

/// The lock of a store that only one process uses: the registry's single flight already
/// serialises its trainings, so it is always free.
#[derive(Debug, Default)]
pub struct ProcessLock;

impl TrainingLock for ProcessLock {
    fn try_acquire(&mut self) -> Result<bool, StoreError> {
        Ok(true)
    }
}

/// Persistence of trained models, keyed by symbol and model version.
pub trait ModelStore: Send + Sync {
    /// Loads a verified model, or `None` if there is none or it does not verify.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the directory cannot be read at all.
    fn load(
        &self,
        symbol: &Symbol,
        version: &ModelVersion,
    ) -> Result<Option<TrainedLstm>, StoreError>;

    /// [`load`](Self::load), with the generation of the model loaded.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    fn fetch(&self, symbol: &Symbol, version: &ModelVersion) -> Result<Option<Stored>, StoreError> {
        Ok(self.load(symbol, version)?.map(|model| Stored {
            model,
            generation: None,
        }))
    }

    /// Stores a model atomically, replacing any previous one; returns the generation it was
    /// published as, if the store numbers them.
    ///
    /// # Errors
    /// [`StoreError::NonFinite`] for a poisoned model, [`StoreError::Io`] when writing fails.
    fn save(
        &self,
        symbol: &Symbol,
        version: &ModelVersion,
        model: &TrainedLstm,
    ) -> Result<Option<u64>, StoreError>;

    /// What the store is, for `/health` and `/metrics`: `filesystem`, `postgres` or
    /// `postgres+s3`.
    fn kind(&self) -> &'static str {
        "filesystem"
    }

    /// Whether other processes may share this store (and publish into it while this one
    /// waits for a lock).
    fn shared(&self) -> bool {
        false
    }

    /// A lock on training `symbol`'s model that every process sharing the store respects
    /// (not yet taken: see [`TrainingLock::try_acquire`]).
    ///
    /// # Errors
    /// [`StoreError::Database`] when the store's lock service cannot be reached.
    fn training_lock(
        &self,
        symbol: &Symbol,
        version: &ModelVersion,
    ) -> Result<Box<dyn TrainingLock>, StoreError> {
        let _ = (symbol, version);
        Ok(Box::new(ProcessLock))
    }

    /// Calls `handler` with every change another process makes to the stored models, from a
    /// thread of the store's own; `false` when the store is used by one process only and has
    /// nothing to tell.
    fn subscribe(&self, handler: EventHandler) -> bool {
        let _ = handler;
        false
    }

    /// Removes a stored model; `true` if there was one.
    ///
    /// # Errors
    /// [`StoreError::Io`] when a file exists but cannot be removed.
    fn purge(&self, symbol: &Symbol, version: &ModelVersion) -> Result<bool, StoreError>;

    /// When the stored model was written, if there is one and the store knows; used to
    /// retrain models older than `MODEL_MAX_AGE`.
    fn trained_at(&self, symbol: &Symbol, version: &ModelVersion) -> Option<SystemTime> {
        let _ = (symbol, version);
        None
    }

    /// The symbols with a stored model of `version` (not verified; `load` does that).
    ///
    /// # Errors
    /// [`StoreError::Io`] when the store cannot be listed.
    fn list(&self, version: &ModelVersion) -> Result<Vec<Symbol>, StoreError>;
}

/// The sidecar JSON next to the weights.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sidecar {
    /// [`FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// Upper-case symbol.
    pub symbol: String,
    /// Model version tag.
    pub model_version: String,
    /// File name of the weights in the sidecar's directory: `{SYMBOL}_{VERSION}.{HASH}.safetensors`
    /// (`{SYMBOL}_{VERSION}.safetensors` when written before content names).
    pub weights_file: String,
    /// Lower-case hex SHA-256 of the weights file.
    pub sha256: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// The engine's config, scaler and training summary.
    pub metadata: LstmMetadata,
}

impl Sidecar {
    /// The sidecar of `model` and its weights bytes, the weights named by `weights_file` from
    /// their SHA-256; refuses non-finite weights or metadata (serde_json would write NaN as
    /// null, which would not load back).
    ///
    /// # Errors
    /// [`StoreError::NonFinite`].
    pub fn describe(
        symbol: &Symbol,
        version: &ModelVersion,
        model: &TrainedLstm,
        weights_file: impl FnOnce(&str) -> String,
    ) -> Result<(Vec<u8>, Self), StoreError> {
        let weights = model.weights_safetensors();
        if !weights_are_finite(&weights) {
            return Err(StoreError::NonFinite("weights"));
        }
        let sha256 = hex::encode(Sha256::digest(&weights));
        let sidecar = Self {
            format_version: FORMAT_VERSION,
            symbol: symbol.to_string(),
            model_version: version.to_string(),
            weights_file: weights_file(&sha256),
            sha256,
            created_at: crate::domain::now_rfc3339(),
            metadata: model.metadata(),
        };
        if !metadata_is_finite(&sidecar.metadata) {
            return Err(StoreError::NonFinite("metadata"));
        }
        Ok((weights, sidecar))
    }

    /// Checks that this sidecar is of a readable format and belongs to `symbol` at `version`.
    ///
    /// # Errors
    /// Why it does not, in words.
    pub fn check_owner(&self, symbol: &Symbol, version: &ModelVersion) -> Result<(), String> {
        let format_1_returns = self.format_version == 1
            && self.metadata.transform != crate::forecast::lstm::Transform::MinMaxLevels;
        if !READABLE_FORMATS.contains(&self.format_version) || format_1_returns {
            return Err(format!(
                "format version {}, expected one of {READABLE_FORMATS:?} (a returns model needs 2)",
                self.format_version
            ));
        }
        if self.symbol != symbol.as_str() || self.model_version != version.as_str() {
            return Err(format!("belongs to {}_{}", self.symbol, self.model_version));
        }
        Ok(())
    }

    /// The model of `weights` under this sidecar, once the weights match its checksum, are
    /// finite and fit its shapes.
    ///
    /// # Errors
    /// Why they do not, in words.
    pub fn into_model(self, weights: &[u8]) -> Result<TrainedLstm, String> {
        let digest = hex::encode(Sha256::digest(weights));
        if digest != self.sha256 {
            return Err(format!(
                "SHA-256 {digest}, the sidecar says {}",
                self.sha256
            ));
        }
        if !weights_are_finite(weights) {
            return Err("non-finite weights".into());
        }
        TrainedLstm::from_parts(weights, self.metadata).map_err(|e| e.to_string())
    }
}

/// A [`ModelStore`] in one directory.
#[derive(Clone, Debug)]
pub struct FsModelStore {
    dir: PathBuf,
    grace: Duration,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Why a stored model was not loaded.
enum Rejection {
    /// The weights the sidecar names do not exist (perhaps replaced since the sidecar was read).
    WeightsGone(String),
    /// Anything else that does not verify.
    Bad(String),
}

/// What a model's sidecar says about a weights file.
#[derive(Debug, PartialEq, Eq)]
enum SidecarNames {
    /// There is no sidecar.
    Nothing,
    /// The sidecar names this file.
    File(String),
    /// The sidecar cannot be read or parsed: which weights it means is unknown.
    Unknown,
}

/// Files removed by a sweep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Swept {
    temps: usize,
    weights: usize,
}

impl FsModelStore {
    /// A store in `dir`, created if missing; leftovers of crashed saves are removed (see the
    /// module docs), with [`DEFAULT_GRACE`].
    ///
    /// # Errors
    /// [`StoreError::Io`] when the directory cannot be created or listed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Self::open_with_grace(dir, DEFAULT_GRACE)
    }

    /// [`open`](Self::open) with another grace period. Shorter than a save, it lets one writer
    /// remove another's uncommitted weights: only tests with a single writer should shorten it.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the directory cannot be created or listed.
    pub fn open_with_grace(dir: impl Into<PathBuf>, grace: Duration) -> Result<Self, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            op: "create directory",
            path: dir.clone(),
            source,
        })?;
        let store = Self { dir, grace };
        let swept = store.sweep(None)?;
        if swept != Swept::default() {
            tracing::info!(
                dir = %store.dir.display(),
                temp_files = swept.temps,
                weights_files = swept.weights,
                "removed leftovers of interrupted saves"
            );
        }
        Ok(store)
    }

    /// The models directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entries of the models directory.
    fn entries(&self) -> Result<fs::ReadDir, StoreError> {
        fs::read_dir(&self.dir).map_err(|source| StoreError::Io {
            op: "list",
            path: self.dir.clone(),
            source,
        })
    }

    fn stem(symbol: &Symbol, version: &ModelVersion) -> String {
        // Both parts are validated newtypes: no separator or `..` can appear here.
        format!("{symbol}_{version}")
    }

    /// Path of the weights file that the model's sidecar names, if there is a sidecar naming a
    /// valid one (the file itself may be missing or not verify: [`ModelStore::load`] decides).
    pub fn weights_path(&self, symbol: &Symbol, version: &ModelVersion) -> Option<PathBuf> {
        #[derive(Deserialize)]
        struct Names {
            weights_file: String,
            sha256: String,
        }
        let text = fs::read(self.sidecar_path(symbol, version)).ok()?;
        let names: Names = serde_json::from_slice(&text).ok()?;
        weights_name_is_valid(
            &Self::stem(symbol, version),
            &names.weights_file,
            &names.sha256,
        )
        .then(|| self.dir.join(names.weights_file))
    }

    /// Path of the sidecar of a model.
    pub fn sidecar_path(&self, symbol: &Symbol, version: &ModelVersion) -> PathBuf {
        self.dir
            .join(format!("{}{SIDECAR_EXT}", Self::stem(symbol, version)))
    }

    fn verify(
        &self,
        symbol: &Symbol,
        version: &ModelVersion,
    ) -> Result<Option<TrainedLstm>, String> {
        let mut attempt = 1;
        loop {
            match self.verify_once(symbol, version) {
                Ok(found) => return Ok(found),
                Err(Rejection::WeightsGone(reason)) if attempt < READ_ATTEMPTS => {
                    tracing::debug!(%symbol, %version, %reason, "weights replaced while reading, reading the sidecar again");
                    attempt += 1;
                }
                Err(Rejection::WeightsGone(reason) | Rejection::Bad(reason)) => return Err(reason),
            }
        }
    }

    fn verify_once(
        &self,
        symbol: &Symbol,
        version: &ModelVersion,
    ) -> Result<Option<TrainedLstm>, Rejection> {
        let bad = Rejection::Bad;
        let sidecar_path = self.sidecar_path(symbol, version);
        let text = match fs::read(&sidecar_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(format!("cannot read {}: {e}", sidecar_path.display()))),
        };
        let sidecar: Sidecar = serde_json::from_slice(&text).map_err(|e| {
            bad(format!(
                "{} is not a valid sidecar: {e}",
                sidecar_path.display()
            ))
        })?;
        sidecar
            .check_owner(symbol, version)
            .map_err(|e| bad(format!("{}: {e}", sidecar_path.display())))?;
        // The name comes from a file: it must be one of this model's two patterns, which also
        // keeps it inside the directory.
        if !weights_name_is_valid(
            &Self::stem(symbol, version),
            &sidecar.weights_file,
            &sidecar.sha256,
        ) {
            return Err(bad(format!(
                "{} names weights {:?}, not a weights file of this model",
                sidecar_path.display(),
                sidecar.weights_file
            )));
        }
        let weights_path = self.dir.join(&sidecar.weights_file);
        let weights = fs::read(&weights_path).map_err(|e| {
            let reason = format!("cannot read {}: {e}", weights_path.display());
            if e.kind() == std::io::ErrorKind::NotFound {
                Rejection::WeightsGone(reason)
            } else {
                bad(reason)
            }
        })?;
        let model = sidecar
            .into_model(&weights)
            .map_err(|e| bad(format!("{}: {e}", weights_path.display())))?;
        Ok(Some(model))
    }

    /// What the sidecar of `stem` names as its weights.
    fn sidecar_names(&self, stem: &str) -> SidecarNames {
        #[derive(Deserialize)]
        struct Names {
            weights_file: String,
        }
        match fs::read(self.dir.join(format!("{stem}{SIDECAR_EXT}"))) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SidecarNames::Nothing,
            Err(_) => SidecarNames::Unknown,
            Ok(text) => match serde_json::from_slice::<Names>(&text) {
                Ok(names) => SidecarNames::File(names.weights_file),
                Err(_) => SidecarNames::Unknown,
            },
        }
    }

    /// Whether the weights file `name` is a leftover: old enough, named by no sidecar that could
    /// own it, and ours (a content name, or an old-format name whose model has a sidecar that
    /// names another file). Read just before removing, to keep the window for a concurrent
    /// commit small; the grace period covers the rest.
    fn is_leftover_weights(&self, name: &str, owners: &WeightsOwners<'_>) -> bool {
        let mut ours = owners.hashed.is_some();
        for stem in owners.hashed.into_iter().chain([owners.plain]) {
            match self.sidecar_names(stem) {
                SidecarNames::Nothing => {}
                SidecarNames::File(named) if named == name => return false,
                SidecarNames::File(_) => ours = true,
                SidecarNames::Unknown => return false,
            }
        }
        ours
    }

    /// Removes leftovers (see the module docs): of every model with `key == None` (temp files
    /// too), or only the weights of the model whose file stem is `key`. Files that cannot be
    /// removed are logged and skipped.
    fn sweep(&self, key: Option<&str>) -> Result<Swept, StoreError> {
        let now = SystemTime::now();
        let mut swept = Swept::default();
        let entries = self.entries()?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // Not following links: a link or a directory is never ours.
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or(Duration::ZERO);
            if let Some(pid) = temp_pid(name) {
                if key.is_none()
                    && (age >= self.grace || process_is_gone(pid))
                    && self.remove_quietly(name)
                {
                    swept.temps += 1;
                }
                continue;
            }
            let Some(owners) = weights_owners(name) else {
                continue;
            };
            if key.is_some_and(|k| !owners.belong_to(k)) || age < self.grace {
                continue;
            }
            if self.is_leftover_weights(name, &owners) && self.remove_quietly(name) {
                swept.weights += 1;
            }
        }
        if swept != Swept::default() {
            if let Err(e) = sync_dir(&self.dir) {
                tracing::warn!(error = %e, "cannot fsync the models directory after cleaning up");
            }
        }
        Ok(swept)
    }

    /// Removes `name`; `false` if it was already gone or cannot be removed (logged).
    fn remove_quietly(&self, name: &str) -> bool {
        let path = self.dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::debug!(path = %path.display(), "removed a leftover file");
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a leftover file");
                false
            }
        }
    }
}

impl ModelStore for FsModelStore {
    fn load(
        &self,
        symbol: &Symbol,
        version: &ModelVersion,
    ) -> Result<Option<TrainedLstm>, StoreError> {
        match self.verify(symbol, version) {
            Ok(found) => Ok(found),
            Err(reason) => {
                tracing::warn!(%symbol, %version, %reason, "stored model rejected, treating it as missing");
                Ok(None)
            }
        }
    }

    fn save(
        &self,
        symbol: &Symbol,
        version: &ModelVersion,
        model: &TrainedLstm,
    ) -> Result<Option<u64>, StoreError> {
        let stem = Self::stem(symbol, version);
        let (weights, sidecar) = Sidecar::describe(symbol, version, model, |sha256| {
            format!("{stem}.{}{WEIGHTS_EXT}", &sha256[..HASH_LEN])
        })?;
        let json = serde_json::to_vec_pretty(&sidecar).expect("sidecar serialises");
        // Written even when a file of that name exists: the bytes are the same, and the fresh
        // mtime keeps a concurrent cleanup from taking it for a leftover before the commit.
        atomic_write(&self.dir.join(&sidecar.weights_file), &weights)?;
        // The commit point.
        atomic_write(&self.sidecar_path(symbol, version), &json)?;
        match self.sweep(Some(&stem)) {
            Ok(swept) if swept.weights > 0 => {
                tracing::debug!(%symbol, %version, removed = swept.weights, "removed superseded weights");
            }
            Ok(_) => {}
            // The model is committed; leftovers wait for the next save or start-up.
            Err(e) => {
                tracing::warn!(%symbol, %version, error = %e, "cannot remove superseded weights")
            }
        }
        Ok(None)
    }

    fn trained_at(&self, symbol: &Symbol, version: &ModelVersion) -> Option<SystemTime> {
        #[derive(Deserialize)]
        struct CreatedAt {
            created_at: String,
        }
        let text = fs::read(self.sidecar_path(symbol, version)).ok()?;
        let sidecar: CreatedAt = serde_json::from_slice(&text).ok()?;
        let at = chrono::DateTime::parse_from_rfc3339(&sidecar.created_at).ok()?;
        Some(SystemTime::from(at.with_timezone(&chrono::Utc)))
    }

    fn list(&self, version: &ModelVersion) -> Result<Vec<Symbol>, StoreError> {
        let entries = self.entries()?;
        let suffix = format!("_{version}.json");
        let mut symbols: Vec<Symbol> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|name| Symbol::parse(name.strip_suffix(&suffix)?).ok())
            // `Symbol::parse` upper-cases: keep only names the store itself writes.
            .filter(|symbol| self.sidecar_path(symbol, version).exists())
            .collect();
        symbols.sort();
        Ok(symbols)
    }

    fn purge(&self, symbol: &Symbol, version: &ModelVersion) -> Result<bool, StoreError> {
        let stem = Self::stem(symbol, version);
        let remove = |path: PathBuf| match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StoreError::Io {
                op: "remove",
                path,
                source,
            }),
        };
        // Sidecar first: without it the weights are never loaded.
        let mut removed = remove(self.sidecar_path(symbol, version))?;
        let entries = self.entries()?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(owners) = weights_owners(name) else {
                continue;
            };
            if !owners.belong_to(&stem) || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            // `{stem}.{HASH}.safetensors` is also the old-format name of a model whose version
            // ends in `.{HASH}`: leave that model its weights.
            if owners.plain != stem
                && !matches!(self.sidecar_names(owners.plain), SidecarNames::Nothing)
            {
                continue;
            }
            removed |= remove(self.dir.join(name))?;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

/// Whether `name`, read from the sidecar of the model `stem`, is one of that model's weights
/// names: `{stem}.{first 16 hex of sha256}.safetensors`, or `{stem}.safetensors` (written before
/// content names). Exact patterns, so no separator or `..` gets through.
fn weights_name_is_valid(stem: &str, name: &str, sha256: &str) -> bool {
    let Some(rest) = name
        .strip_prefix(stem)
        .and_then(|r| r.strip_suffix(WEIGHTS_EXT))
    else {
        return false;
    };
    rest.is_empty()
        || rest
            .strip_prefix('.')
            .is_some_and(|hash| is_hash(hash) && sha256.get(..HASH_LEN) == Some(hash))
}

fn is_hash(s: &str) -> bool {
    s.len() == HASH_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The models a `*.safetensors` file name may belong to.
struct WeightsOwners<'a> {
    /// `{stem}` of a content name `{stem}.{HASH}.safetensors`.
    hashed: Option<&'a str>,
    /// `{stem}` of the old-format name `{stem}.safetensors` (for a content name, the name less
    /// the extension, which the stem of a model whose version ends in `.{HASH}` can spell).
    plain: &'a str,
}

impl WeightsOwners<'_> {
    fn belong_to(&self, stem: &str) -> bool {
        self.hashed == Some(stem) || self.plain == stem
    }
}

/// Who may own the weights file `name`; `None` if it is no weights name of ours (stems begin
/// with a symbol, so never with a dot like temp files).
fn weights_owners(name: &str) -> Option<WeightsOwners<'_>> {
    let plain = name.strip_suffix(WEIGHTS_EXT)?;
    if !plain.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    let hashed = plain
        .rsplit_once('.')
        .filter(|(stem, hash)| !stem.is_empty() && is_hash(hash))
        .map(|(stem, _)| stem);
    Some(WeightsOwners { hashed, plain })
}

/// The pid in the name of one of our temp files (`.{target}.{pid}.{nonce}.tmp`, the target a
/// `*.json` or `*.safetensors` name); `None` for any other name.
fn temp_pid(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix(TEMP_EXT)?;
    let (rest, nonce) = inner.rsplit_once('.')?;
    let (target, pid) = rest.rsplit_once('.')?;
    let target_is_ours = [WEIGHTS_EXT, SIDECAR_EXT]
        .iter()
        .any(|ext| target.strip_suffix(ext).is_some_and(|s| !s.is_empty()));
    let ok = target_is_ours
        && !nonce.is_empty()
        && nonce.bytes().all(|b| b.is_ascii_hexdigit())
        && !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit());
    // A pid too long for a u32 names no process: 0, which counts as gone.
    ok.then(|| pid.parse().unwrap_or(0))
}

/// Whether no process `pid` runs on this machine. A writer in another pid namespace sharing the
/// directory can look gone (or alive); its temp file is young, and its rename then fails with
/// an error, never a torn model.
#[cfg(unix)]
fn process_is_gone(pid: u32) -> bool {
    // 0 and negative pids would make kill(2) address process groups; no writer has them.
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if pid <= 0 {
        return true;
    }
    // SAFETY: kill(2) with signal 0 sends nothing, it only checks that `pid` exists; a positive
    // pid names one process, never a group.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Without a cheap liveness check, temp files are removed by age only.
#[cfg(not(unix))]
fn process_is_gone(_pid: u32) -> bool {
    false
}

/// The random part of a temp file's name. [`RandomState`] is seeded from the operating
/// system's randomness in each process, so two processes with one pid (containers sharing a
/// volume) still differ; the clock and the counter keep one process's names apart.
fn temp_nonce() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_u64(TEMP_COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// Whether the scaler and the training summary of a model hold only finite numbers.
pub fn metadata_is_finite(m: &LstmMetadata) -> bool {
    let s = &m.summary;
    [
        m.scaler.min,
        m.scaler.max,
        s.final_train_loss,
        s.validation_loss,
    ]
    .iter()
    .chain(&s.validation_mape_by_horizon)
    .chain(s.validation_abs_log_errors_by_horizon.iter().flatten())
    .chain(s.validation_scaled_errors_by_horizon.iter().flatten())
    .chain(&s.horizon_weights)
    .all(|x| x.is_finite())
}

/// Whether every F32/F64 tensor of a safetensors blob is finite (`false` if it does not parse).
pub fn weights_are_finite(bytes: &[u8]) -> bool {
    let Ok(tensors) = safetensors::SafeTensors::deserialize(bytes) else {
        return false;
    };
    tensors
        .tensors()
        .iter()
        .all(|(_, view)| match view.dtype() {
            safetensors::Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .all(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite()),
            safetensors::Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .all(|b| f64::from_le_bytes(b.try_into().expect("chunk of 8")).is_finite()),
            _ => true,
        })
}

/// Writes `bytes` to `path` so that readers see the old file or the new one, never a mix:
/// a uniquely named temp file in the same directory (`.{name}.{pid}.{random}.tmp`), fsync,
/// rename, fsync of the directory.
///
/// # Errors
/// [`StoreError::Io`] naming the failing step; the temp file is removed on failure.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.{:016x}{TEMP_EXT}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id(),
        temp_nonce()
    ));
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { op, path, source }
    };
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        file.write_all(bytes).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("fsync", &tmp))?;
        fs::rename(&tmp, path).map_err(io("rename to", path))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io {
            op: "fsync directory",
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::lstm::LstmConfig;

    fn key() -> (Symbol, ModelVersion) {
        (
            Symbol::parse("btc").unwrap(),
            ModelVersion::parse("v1.0.0").unwrap(),
        )
    }

    /// A small model trained on a wave; another `seed`, other weights.
    fn tiny_model(seed: u64) -> TrainedLstm {
        let prices: Vec<f64> = (0..200)
            .map(|i| 100.0 + 10.0 * (f64::from(i) / 7.0).sin())
            .collect();
        let config = LstmConfig {
            epochs: 1,
            hidden_size: 8,
            threads: 1,
            seed,
            ..LstmConfig::default()
        };
        crate::forecast::lstm::train(&config, &prices, &mut |_| {}).unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn backdate(path: &Path, by: Duration) {
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - by).unwrap();
    }

    /// The pid of a process that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        atomic_write(&path, b"one").unwrap();
        atomic_write(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_and_garbage_artefacts_load_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsModelStore::open(dir.path().join("models")).unwrap();
        let (sym, ver) = key();
        assert!(store.load(&sym, &ver).unwrap().is_none());
        fs::write(store.sidecar_path(&sym, &ver), b"{not json").unwrap();
        fs::write(store.dir().join("BTC_v1.0.0.safetensors"), b"garbage").unwrap();
        assert!(store.load(&sym, &ver).unwrap().is_none());
        assert!(store.purge(&sym, &ver).unwrap());
        assert!(!store.purge(&sym, &ver).unwrap());
        assert_eq!(fs::read_dir(store.dir()).unwrap().count(), 0);
    }

    #[test]
    fn weights_are_named_by_their_hash_and_the_sidecar_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsModelStore::open(dir.path()).unwrap();
        let sym = Symbol::parse("eth").unwrap();
        let ver = ModelVersion::parse("v2").unwrap();
        assert_eq!(
            store.sidecar_path(&sym, &ver),
            dir.path().join("ETH_v2.json")
        );
        assert_eq!(store.weights_path(&sym, &ver), None);
        let model = tiny_model(1);
        store.save(&sym, &ver, &model).unwrap();
        let hash = hex::encode(Sha256::digest(model.weights_safetensors()));
        let expected = dir
            .path()
            .join(format!("ETH_v2.{}.safetensors", &hash[..16]));
        assert_eq!(store.weights_path(&sym, &ver), Some(expected.clone()));
        assert!(expected.is_file());
        let sidecar: Sidecar =
            serde_json::from_slice(&fs::read(store.sidecar_path(&sym, &ver)).unwrap()).unwrap();
        assert_eq!(sidecar.format_version, FORMAT_VERSION);
        assert_eq!(sidecar.sha256, hash);
        let loaded = store.load(&sym, &ver).unwrap().expect("the model loads");
        assert_eq!(loaded.weights_safetensors(), model.weights_safetensors());
    }

    #[test]
    fn a_model_stored_under_the_old_weights_name_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsModelStore::open(dir.path()).unwrap();
        let (sym, ver) = key();
        let model = tiny_model(1);
        // As the store wrote it before weights were named by their hash.
        let weights = model.weights_safetensors();
        let sidecar = Sidecar {
            format_version: FORMAT_VERSION,
            symbol: "BTC".into(),
            model_version: "v1.0.0".into(),
            weights_file: "BTC_v1.0.0.safetensors".into(),
            sha256: hex::encode(Sha256::digest(&weights)),
            created_at: crate::domain::now_rfc3339(),
            metadata: model.metadata(),
        };
        let old_weights = dir.path().join("BTC_v1.0.0.safetensors");
        atomic_write(&old_weights, &weights).unwrap();
        atomic_write(
            &store.sidecar_path(&sym, &ver),
            &serde_json::to_vec_pretty(&sidecar).unwrap(),
        )
        .unwrap();

        let store = FsModelStore::open_with_grace(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(store.weights_path(&sym, &ver), Some(old_weights.clone()));
        let loaded = store
            .load(&sym, &ver)
            .unwrap()
            .expect("the old model loads");
        assert_eq!(loaded.weights_safetensors(), weights);

        // A retrain replaces it with a content-named file, and the old one goes.
        store.save(&sym, &ver, &tiny_model(2)).unwrap();
        assert!(!old_weights.exists());
        assert_eq!(names(dir.path()).len(), 2, "{:?}", names(dir.path()));
        assert!(store.load(&sym, &ver).unwrap().is_some());
    }

    #[test]
    fn saving_again_leaves_one_sidecar_and_one_weights_file_once_the_old_weights_age() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsModelStore::open(dir.path()).unwrap();
        let (sym, ver) = key();
        store.save(&sym, &ver, &tiny_model(1)).unwrap();
        let first = store.weights_path(&sym, &ver).unwrap();
        let second_model = tiny_model(2);
        store.save(&sym, &ver, &second_model).unwrap();
        // Younger than the grace period: it could be a concurrent writer's, so it stays.
        assert!(first.exists());
        assert_eq!(names(dir.path()).len(), 3);

        backdate(&first, DEFAULT_GRACE + Duration::from_secs(1));
        store.save(&sym, &ver, &second_model).unwrap();
        let second = store.weights_path(&sym, &ver).unwrap();
        let mut expected = vec![
            "BTC_v1.0.0.json".to_string(),
            second.file_name().unwrap().to_str().unwrap().to_string(),
        ];
        expected.sort();
        assert_eq!(names(dir.path()), expected);
        let loaded = store.load(&sym, &ver).unwrap().unwrap();
        assert_eq!(
            loaded.weights_safetensors(),
            second_model.weights_safetensors()
        );
    }

    #[test]
    fn open_removes_stale_temp_files_and_unreferenced_old_weights() {
        let dir = tempfile::tempdir().unwrap();
        let (sym, ver) = key();
        let store = FsModelStore::open(dir.path()).unwrap();
        store.save(&sym, &ver, &tiny_model(1)).unwrap();
        let live = std::process::id();
        let dead = dead_pid();
        let dead_temp = format!(".BTC_v1.0.0.json.{dead}.00ff00ff00ff00ff.tmp");
        let old_layout_temp = format!(".BTC_v1.0.0.safetensors.{dead}.3.tmp");
        let live_temp = format!(".BTC_v1.0.0.json.{live}.0123456789abcdef.tmp");
        let old_live_temp = format!(".ETH_v1.0.0.json.{live}.0123456789abcdee.tmp");
        let orphan = "BTC_v1.0.0.0123456789abcdef.safetensors";
        let young_orphan = "BTC_v1.0.0.fedcba9876543210.safetensors";
        for name in [
            &dead_temp,
            &old_layout_temp,
            &live_temp,
            &old_live_temp,
            orphan,
            young_orphan,
        ] {
            fs::write(dir.path().join(name), b"partial").unwrap();
        }
        let old = DEFAULT_GRACE + Duration::from_secs(1);
        backdate(&dir.path().join(&old_live_temp), old);
        backdate(&dir.path().join(orphan), old);
        let referenced = store.weights_path(&sym, &ver).unwrap();
        backdate(&referenced, old);

        let store = FsModelStore::open(dir.path()).unwrap();
        let left = names(dir.path());
        for gone in [&dead_temp, &old_layout_temp, &old_live_temp, orphan] {
            assert!(!left.contains(&gone.to_string()), "{gone} left: {left:?}");
        }
        for kept in [&live_temp, young_orphan] {
            assert!(left.contains(&kept.to_string()), "{kept} removed: {left:?}");
        }
        assert!(referenced.exists());
        assert!(store.load(&sym, &ver).unwrap().is_some());
    }

    #[test]
    fn foreign_files_in_the_models_directory_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dead_pid();
        let foreign = [
            "notes.txt".to_string(),
            "README.safetensors".to_string(),
            ".hidden.safetensors".to_string(),
            ".editor.swp.tmp".to_string(),
            format!(".notes.txt.{dead}.0123456789abcdef.tmp"),
            format!(".BTC_v1.0.0.json.{dead}.tmp"),
            format!(".BTC_v1.0.0.json.{dead}.xyz.tmp"),
            "BTC_v1.0.0.0123456789ABCDEF.safetensors".to_string(),
            "BTC_v1.0.0.0123.safetensors".to_string(),
        ];
        for name in &foreign {
            let path = dir.path().join(name);
            fs::write(&path, b"not ours").unwrap();
            backdate(&path, DEFAULT_GRACE * 10);
        }
        fs::create_dir(dir.path().join("BTC_v1.0.0.0123456789abcdef.safetensors")).unwrap();
        let (sym, ver) = key();
        let store = FsModelStore::open_with_grace(dir.path(), Duration::ZERO).unwrap();
        store.save(&sym, &ver, &tiny_model(1)).unwrap();
        store.save(&sym, &ver, &tiny_model(2)).unwrap();
        assert!(store.purge(&sym, &ver).unwrap());
        let store = FsModelStore::open_with_grace(dir.path(), Duration::ZERO).unwrap();
        let mut expected = foreign.to_vec();
        expected.push("BTC_v1.0.0.0123456789abcdef.safetensors".into());
        expected.sort();
        assert_eq!(names(store.dir()), expected);
    }

    #[test]
    fn a_sidecar_naming_a_file_outside_its_model_is_rejected() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("models");
        let store = FsModelStore::open(&dir).unwrap();
        let (sym, ver) = key();
        let model = tiny_model(1);
        store.save(&sym, &ver, &model).unwrap();
        let good = fs::read(store.sidecar_path(&sym, &ver)).unwrap();
        let weights = model.weights_safetensors();
        let hash = hex::encode(Sha256::digest(&weights));
        for name in [
            "../x".to_string(),
            format!("../BTC_v1.0.0.{}.safetensors", &hash[..16]),
            format!("BTC_v1.0.0.{}.safetensors/../x", &hash[..16]),
            "ETH_v1.0.0.safetensors".to_string(),
            format!("BTC_v1.0.0.{}.safetensors", "0".repeat(16)),
            root.path().join("x").display().to_string(),
        ] {
            // The named file exists and verifies: only its name is wrong.
            let target = dir.join(&name);
            if let Some(parent) = target.parent() {
                if parent.is_dir() {
                    fs::write(&target, &weights).unwrap();
                }
            }
            let mut sidecar: serde_json::Value = serde_json::from_slice(&good).unwrap();
            sidecar["weights_file"] = name.clone().into();
            fs::write(
                store.sidecar_path(&sym, &ver),
                serde_json::to_vec(&sidecar).unwrap(),
            )
            .unwrap();
            assert!(store.load(&sym, &ver).unwrap().is_none(), "{name} loaded");
            assert_eq!(store.weights_path(&sym, &ver), None, "{name}");
        }
        fs::write(store.sidecar_path(&sym, &ver), &good).unwrap();
        assert!(store.load(&sym, &ver).unwrap().is_some());
    }

    #[test]
    fn purge_removes_the_sidecar_and_every_weights_file_of_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsModelStore::open(dir.path()).unwrap();
        let (sym, ver) = key();
        let other = ModelVersion::parse("v1.0.0.0123456789abcdef").unwrap();
        store.save(&sym, &other, &tiny_model(3)).unwrap();
        // The other model's old-format name looks like a content name of `v1.0.0`.
        let other_old = dir.path().join("BTC_v1.0.0.0123456789abcdef.safetensors");
        let other_sidecar = store.sidecar_path(&sym, &other);
        let mut sidecar: serde_json::Value =
            serde_json::from_slice(&fs::read(&other_sidecar).unwrap()).unwrap();
        fs::rename(store.weights_path(&sym, &other).unwrap(), &other_old).unwrap();
        sidecar["weights_file"] = "BTC_v1.0.0.0123456789abcdef.safetensors".into();
        fs::write(&other_sidecar, serde_json::to_vec(&sidecar).unwrap()).unwrap();
        assert!(store.load(&sym, &other).unwrap().is_some());

        store.save(&sym, &ver, &tiny_model(1)).unwrap();
        store.save(&sym, &ver, &tiny_model(2)).unwrap();
        fs::write(dir.path().join("BTC_v1.0.0.safetensors"), b"old").unwrap();
        assert!(store.purge(&sym, &ver).unwrap());
        assert!(store.load(&sym, &ver).unwrap().is_none());
        let left = names(dir.path());
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(store.load(&sym, &other).unwrap().is_some(), "{left:?}");
        assert!(!store.purge(&sym, &ver).unwrap());
    }

    #[test]
    fn a_reader_never_sees_a_missing_model_while_another_thread_saves() {
        let dir = tempfile::tempdir().unwrap();
        // Zero grace: every save removes the weights the previous sidecar named at once, so the
        // reader often finds them gone and must read the sidecar again.
        let store = FsModelStore::open_with_grace(dir.path(), Duration::ZERO).unwrap();
        let (sym, ver) = key();
        let models = [tiny_model(1), tiny_model(2)];
        store.save(&sym, &ver, &models[0]).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..60 {
                    store.save(&sym, &ver, &models[i % 2]).unwrap();
                }
                done.store(true, Ordering::Relaxed);
            });
            let mut loads = 0;
            while !done.load(Ordering::Relaxed) {
                assert!(
                    store.load(&sym, &ver).unwrap().is_some(),
                    "after {loads} loads"
                );
                loads += 1;
            }
        });
    }

    #[test]
    fn temp_names_are_recognised_only_in_their_own_pattern() {
        assert_eq!(temp_pid(".BTC_v1.json.42.00ff00ff00ff00ff.tmp"), Some(42));
        assert_eq!(temp_pid(".BTC_v1.1a2b.safetensors.7.3.tmp"), Some(7));
        assert_eq!(temp_pid(".BTC_v1.json.99999999999.1.tmp"), Some(0));
        for foreign in [
            "BTC_v1.json.42.1.tmp",
            ".BTC_v1.json.42.1",
            ".BTC_v1.txt.42.1.tmp",
            ".json.42.1.tmp",
            ".BTC_v1.json.x42.1.tmp",
            ".BTC_v1.json.42..tmp",
            ".BTC_v1.json.42.tmp",
        ] {
            assert_eq!(temp_pid(foreign), None, "{foreign}");
        }
        assert!(process_is_gone(0));
        assert!(!process_is_gone(std::process::id()));
        assert!(process_is_gone(dead_pid()));
    }

    #[test]
    fn non_finite_weights_are_detected() {
        let good: Vec<f32> = vec![1.0, 2.0];
        let bad: Vec<f32> = vec![1.0, f32::NAN];
        let blob = |v: &[f32]| {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &bytes)
                    .unwrap();
            safetensors::serialize([("w", view)], &None).unwrap()
        };
        assert!(weights_are_finite(&blob(&good)));
        assert!(!weights_are_finite(&blob(&bad)));
        assert!(!weights_are_finite(b"not safetensors"));
    }
}
