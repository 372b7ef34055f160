//! Model weights in an S3-protocol object store (`MODEL_STORE=s3://bucket/prefix`), through the
//! `object_store` crate; PostgreSQL keeps the rows that name them ([`super::postgres`]).
//!
//! Objects are named `{prefix}/{SYMBOL}_{VERSION}/{SHA-256}.safetensors`: a name only one
//! content can have. They are written with a conditional put (`If-None-Match: *`), so an
//! object, once there, is never overwritten; a second upload of the same bytes finds it and
//! succeeds. An S3 PUT is all or nothing, so an interrupted upload leaves no object, and a row
//! is written only after its object is complete: a torn upload is never visible. Every load
//! checks the bytes against the row's SHA-256 all the same.
//!
//! Credentials, region and endpoint come from the usual `AWS_*` variables (`AWS_ENDPOINT`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP=true` for a
//! local server).

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

use super::StoreError;
use crate::domain::{ModelVersion, Symbol};

fn objects(e: impl std::fmt::Display) -> StoreError {
    StoreError::Objects(e.to_string())
}

/// Where `MODEL_STORE` points: a bucket and a key prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectLocation {
    /// The bucket.
    pub bucket: String,
    /// The prefix of every key, without slashes at either end (may be empty).
    pub prefix: String,
}

impl ObjectLocation {
    /// Parses `s3://bucket[/prefix]`.
    ///
    /// # Errors
    /// A sentence saying what is expected.
    pub fn parse(s: &str) -> Result<Self, String> {
        let refuse = || format!("MODEL_STORE must look like s3://bucket/prefix, got {s:?}");
        let rest = s.strip_prefix("s3://").ok_or_else(refuse)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        let prefix = prefix.trim_matches('/');
        let prefix_ok = prefix.split('/').all(|part| {
            prefix.is_empty()
                || (!part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
        });
        if bucket_ok && prefix_ok {
            Ok(Self {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            })
        } else {
            Err(refuse())
        }
    }
}

impl std::str::FromStr for ObjectLocation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The weights of models in an object store. Its calls block (they run the async client on a
/// runtime of their own): use them off the async runtime, as every store call is.
pub struct ObjectBlobs {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl ObjectBlobs {
    /// A client for `location`, configured from the `AWS_*` environment variables.
    ///
    /// # Errors
    /// [`StoreError::Objects`] when the configuration is incomplete.
    pub fn from_env(location: &ObjectLocation) -> Result<Self, StoreError> {
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(&location.bucket)
            .build()
            .map_err(objects)?;
        Self::new(Arc::new(store), &location.prefix)
    }

    /// Blobs in any `object_store` under `prefix`.
    ///
    /// # Errors
    /// [`StoreError::Objects`] when the client's runtime cannot start.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("object-store")
            .enable_all()
            .build()
            .map_err(objects)?;
        Ok(Self {
            store,
            prefix: prefix.to_owned(),
            runtime: Some(runtime),
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives until the blobs are dropped")
    }

    /// The key of a model's weights with SHA-256 `sha256`.
    pub fn key(&self, symbol: &Symbol, version: &ModelVersion, sha256: &str) -> String {
        let name = format!("{symbol}_{version}/{sha256}.safetensors");
        if self.prefix.is_empty() {
            name
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// Uploads `bytes` under their key, unless an object of that key (hence of those bytes)
    /// is there already; returns the key.
    ///
    /// # Errors
    /// [`StoreError::Objects`] when the upload fails.
    pub fn put(
        &self,
        symbol: &Symbol,
        version: &ModelVersion,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<String, StoreError> {
        let key = self.key(symbol, version, sha256);
        let path = Path::from(key.as_str());
        let payload = PutPayload::from(bytes.to_vec());
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let put = self
            .runtime()
            .block_on(self.store.put_opts(&path, payload, opts));
        match put {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(key),
            Err(e) => Err(objects(e)),
        }
    }

    /// The bytes of `key`; `None` if there is no such object.
    ///
    /// # Errors
    /// [`StoreError::Objects`] when the store cannot be read.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = Path::from(key);
        let read = self.runtime().block_on(async {
            let got = self.store.get(&path).await?;
            got.bytes().await
        });
        match read {
            Ok(bytes) => Ok(Some(bytes.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(objects(e)),
        }
    }

    /// Removes `key`, logging (not failing) when it cannot: a stray object costs space only.
    pub fn delete_quietly(&self, key: &str) {
        let path = Path::from(key);
        match self.runtime().block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(key, error = %e, "cannot remove a superseded model object"),
        }
    }
}

impl Drop for ObjectBlobs {
    fn drop(&mut self) {
        // Dropping a runtime blocks; a store may be dropped on an async thread.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_refuse() {
        assert_eq!(
            ObjectLocation::parse("s3://models-bucket/prod/v1/").unwrap(),
            ObjectLocation {
                bucket: "models-bucket".into(),
                prefix: "prod/v1".into()
            }
        );
        assert_eq!(
            ObjectLocation::parse("s3://abc").unwrap().prefix,
            String::new()
        );
        for bad in [
            "file:///x",
            "s3://",
            "s3://AB/x",
            "s3://abc/../x",
            "s3://abc/a//b",
            "s3://abc/a b",
        ] {
            assert!(ObjectLocation::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blobs_round_trip_and_are_never_overwritten() {
        let memory: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let blobs = ObjectBlobs::new(Arc::clone(&memory), "p").unwrap();
        let (sym, ver) = (
            Symbol::parse("BTC").unwrap(),
            ModelVersion::parse("v1").unwrap(),
        );
        let key = blobs.put(&sym, &ver, "abc", b"one").unwrap();
        assert_eq!(key, "p/BTC_v1/abc.safetensors");
        // Same key again: the first object stays.
        assert_eq!(blobs.put(&sym, &ver, "abc", b"two").unwrap(), key);
        assert_eq!(blobs.get(&key).unwrap().as_deref(), Some(&b"one"[..]));
        blobs.delete_quietly(&key);
        assert_eq!(blobs.get(&key).unwrap(), None);
        blobs.delete_quietly(&key);
    }
}
