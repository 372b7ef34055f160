//! Where trained models live between runs: the [`ModelStore`] trait and its filesystem
//! implementation [`FsModelStore`].
//!
//! A model is two files in the models directory: `{SYMBOL}_{VERSION}.safetensors` (the weights,
//! PyTorch parameter names) and `{SYMBOL}_{VERSION}.json` (the sidecar: format version, SHA-256
//! of the weights, creation time, and the engine's [`LstmMetadata`]). Both are written
//! atomically (temp file, fsync, rename, fsync of the directory), weights first: a crash leaves
//! the old pair, or new weights whose checksum the old sidecar rejects, never a model that loads
//! torn. Anything that does not verify on load (bad JSON, unknown format, checksum, shapes,
//! non-finite weights) is logged and reported as missing, so the caller retrains.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{ModelVersion, Symbol};
use crate::forecast::lstm::{LstmMetadata, TrainedLstm};

/// Version of the sidecar layout; a sidecar with another one is treated as missing.
pub const FORMAT_VERSION: u32 = 1;

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

    /// Stores a model atomically, replacing any previous one.
    ///
    /// # Errors
    /// [`StoreError::NonFinite`] for a poisoned model, [`StoreError::Io`] when writing fails.
    fn save(
        &self,
        symbol: &Symbol,
        version: &ModelVersion,
        model: &TrainedLstm,
    ) -> Result<(), StoreError>;

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
    /// File name of the weights, relative to the sidecar.
    pub weights_file: String,
    /// Lower-case hex SHA-256 of the weights file.
    pub sha256: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// The engine's config, scaler and training summary.
    pub metadata: LstmMetadata,
}

/// A [`ModelStore`] in one directory.
#[derive(Clone, Debug)]
pub struct FsModelStore {
    dir: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FsModelStore {
    /// A store in `dir`, created if missing.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            op: "create directory",
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    /// The models directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn stem(symbol: &Symbol, version: &ModelVersion) -> String {
        // Both parts are validated newtypes: no separator or `..` can appear here.
        format!("{symbol}_{version}")
    }

    /// Path of the weights file of a model.
    pub fn weights_path(&self, symbol: &Symbol, version: &ModelVersion) -> PathBuf {
        self.dir
            .join(format!("{}.safetensors", Self::stem(symbol, version)))
    }

    /// Path of the sidecar of a model.
    pub fn sidecar_path(&self, symbol: &Symbol, version: &ModelVersion) -> PathBuf {
        self.dir
            .join(format!("{}.json", Self::stem(symbol, version)))
    }

    fn verify(
        &self,
        symbol: &Symbol,
        version: &ModelVersion,
    ) -> Result<Option<TrainedLstm>, String> {
        let sidecar_path = self.sidecar_path(symbol, version);
        let text = match fs::read(&sidecar_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", sidecar_path.display())),
        };
        let sidecar: Sidecar = serde_json::from_slice(&text)
            .map_err(|e| format!("{} is not a valid sidecar: {e}", sidecar_path.display()))?;
        if sidecar.format_version != FORMAT_VERSION {
            return Err(format!(
                "{} has format version {}, expected {FORMAT_VERSION}",
                sidecar_path.display(),
                sidecar.format_version
            ));
        }
        if sidecar.symbol != symbol.as_str() || sidecar.model_version != version.as_str() {
            return Err(format!(
                "{} belongs to {}_{}",
                sidecar_path.display(),
                sidecar.symbol,
                sidecar.model_version
            ));
        }
        let weights_path = self.weights_path(symbol, version);
        let weights = fs::read(&weights_path)
            .map_err(|e| format!("cannot read {}: {e}", weights_path.display()))?;
        let digest = hex::encode(Sha256::digest(&weights));
        if digest != sidecar.sha256 {
            return Err(format!(
                "{} has SHA-256 {digest}, its sidecar says {}",
                weights_path.display(),
                sidecar.sha256
            ));
        }
        if !weights_are_finite(&weights) {
            return Err(format!(
                "{} holds non-finite weights",
                weights_path.display()
            ));
        }
        let model = TrainedLstm::from_parts(&weights, sidecar.metadata)
            .map_err(|e| format!("{}: {e}", weights_path.display()))?;
        Ok(Some(model))
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
    ) -> Result<(), StoreError> {
        let weights = model.weights_safetensors();
        if !weights_are_finite(&weights) {
            return Err(StoreError::NonFinite("weights"));
        }
        let metadata = model.metadata();
        let weights_path = self.weights_path(symbol, version);
        let sidecar = Sidecar {
            format_version: FORMAT_VERSION,
            symbol: symbol.to_string(),
            model_version: version.to_string(),
            weights_file: weights_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256: hex::encode(Sha256::digest(&weights)),
            created_at: crate::now_rfc3339(),
            metadata,
        };
        // serde_json would write NaN as null, which would not load back: refuse it here.
        if !metadata_is_finite(&sidecar.metadata) {
            return Err(StoreError::NonFinite("metadata"));
        }
        let json = serde_json::to_vec_pretty(&sidecar).expect("sidecar serialises");
        atomic_write(&weights_path, &weights)?;
        atomic_write(&self.sidecar_path(symbol, version), &json)?;
        Ok(())
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
        let entries = fs::read_dir(&self.dir).map_err(|source| StoreError::Io {
            op: "list",
            path: self.dir.clone(),
            source,
        })?;
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
        let mut removed = false;
        // Sidecar first: without it the weights are never loaded.
        for path in [
            self.sidecar_path(symbol, version),
            self.weights_path(symbol, version),
        ] {
            match fs::remove_file(&path) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreError::Io {
                        op: "remove",
                        path,
                        source,
                    })
                }
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
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
/// a uniquely named temp file in the same directory, fsync, rename, fsync of the directory.
///
/// # Errors
/// [`StoreError::Io`] naming the failing step; the temp file is removed on failure.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
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
        let sym = Symbol::parse("btc").unwrap();
        let ver = ModelVersion::parse("v1.0.0").unwrap();
        assert!(store.load(&sym, &ver).unwrap().is_none());
        fs::write(store.sidecar_path(&sym, &ver), b"{not json").unwrap();
        fs::write(store.weights_path(&sym, &ver), b"garbage").unwrap();
        assert!(store.load(&sym, &ver).unwrap().is_none());
        assert!(store.purge(&sym, &ver).unwrap());
        assert!(!store.purge(&sym, &ver).unwrap());
        assert_eq!(fs::read_dir(store.dir()).unwrap().count(), 0);
    }

    #[test]
    fn paths_are_symbol_underscore_version() {
        let store = FsModelStore {
            dir: PathBuf::from("/m"),
        };
        let sym = Symbol::parse("eth").unwrap();
        let ver = ModelVersion::parse("v2").unwrap();
        assert_eq!(
            store.weights_path(&sym, &ver),
            Path::new("/m/ETH_v2.safetensors")
        );
        assert_eq!(store.sidecar_path(&sym, &ver), Path::new("/m/ETH_v2.json"));
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
