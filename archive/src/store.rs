//! The object store the layout files are kept in, built from one URL, written once.
//!
//! [`open`] is the one factory: `file:///abs/dir` or a bare path (a local directory, the embedded
//! default), `memory://` (tests), `s3://bucket[/prefix]` with endpoint, region and credentials from
//! [`S3Settings`] (AWS, MinIO, RustFS, Ceph, OSS, COS and other S3-compatible services).
//!
//! Every object is written once (`PutMode::Create`; a local directory has its own writer, see
//! `local`): a retry that finds an identical object counts as written, a different object under
//! the same key is refused with [`ArchiveError::Conflict`] and left untouched. Archived files are
//! evidence; nothing here overwrites or deletes one. [`Archive::put_all`] writes many objects at
//! once; a local directory makes a whole batch durable with one flush.
//!
//! This module must not decide keys (see [`crate::object_key`]) or record digests (the service's
//! store does that).

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::sync::Arc;

mod local;
use local::LocalDir;

/// Connection settings of an `s3://` archive (the `[archive.s3]` section of the service's
/// configuration). Unset fields fall back to the standard `AWS_*` environment variables.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// e.g. `http://127.0.0.1:9000` for MinIO, `https://oss-cn-shanghai.aliyuncs.com` for OSS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    /// Never logged.
    pub secret_access_key: Option<SecretString>,
    /// Allow a plain-HTTP endpoint (test servers, a MinIO inside the cluster).
    pub allow_http: bool,
    /// `https://bucket.endpoint/key` instead of `https://endpoint/bucket/key` (OSS and COS want it).
    pub virtual_hosted_style: bool,
}

/// Why an archive operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive url is not usable: {0}")]
    Url(String),
    /// Another object already sits under this key. Never overwritten: an operator must look.
    #[error("a different object is already archived under {key}")]
    Conflict { key: String },
    #[error("archive backend failed on {key}: {source}")]
    Backend {
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("archive directory failed on {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
}

impl ArchiveError {
    /// Whether trying again later may succeed (a conflict never will).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Backend { .. } | Self::Io { .. })
    }
}

/// What [`Archive::put_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The object is new.
    Created,
    /// An identical object was already there (an earlier attempt got through).
    AlreadyThere,
    /// A local file cut short by an earlier attempt (a crash mid-write) held the start of these
    /// bytes; the rest was written.
    Completed,
}

/// A write-once object store.
#[derive(Clone)]
pub struct Archive {
    store: Arc<dyn ObjectStore>,
    /// A local directory is written by its own writer (see `local`), read through `store`.
    local: Option<Arc<LocalDir>>,
    /// The URL without credentials, for logs.
    location: String,
}

impl fmt::Debug for Archive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Archive")
            .field("location", &self.location)
            .finish()
    }
}

/// Build the archive a URL names, with durable local writes. A local directory is created if
/// missing.
pub fn open(url: &str, s3: &S3Settings) -> Result<Archive, ArchiveError> {
    open_with(url, s3, true)
}

/// Like [`open`]; `local_fsync` decides whether a local directory's files (and their folders) are
/// flushed to disk before a write returns. Without it a power cut after the write was recorded can
/// lose the file: only turn it off for throwaway archives or storage that is durable by itself.
pub fn open_with(url: &str, s3: &S3Settings, local_fsync: bool) -> Result<Archive, ArchiveError> {
    let url = url.trim();
    let mut local = None;
    let (store, location): (Arc<dyn ObjectStore>, String) = if url == "memory://" {
        (Arc::new(InMemory::new()), url.to_owned())
    } else if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ArchiveError::Url(
                "s3 url needs a bucket: s3://bucket[/prefix]".into(),
            ));
        }
        let store = s3_store(bucket, s3)?;
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        (store, format!("s3://{bucket}/{prefix}"))
    } else if url.contains("://") && !url.starts_with("file://") {
        return Err(ArchiveError::Url(format!(
            "unsupported scheme in {url}: use file://, s3:// or memory://"
        )));
    } else {
        let dir = match url.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => path,
            Some(_) => {
                return Err(ArchiveError::Url(
                    "file:// urls need an absolute path (file:///srv/archive); give a relative \
                     directory as a bare path"
                        .into(),
                ));
            }
            None => url,
        };
        if dir.is_empty() {
            return Err(ArchiveError::Url("archive directory is empty".into()));
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            ArchiveError::Url(format!("cannot create archive directory {dir}: {e}"))
        })?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| ArchiveError::Url(format!("cannot open archive directory {dir}: {e}")))?;
        local = Some(Arc::new(LocalDir::new(dir.into(), local_fsync)?));
        (Arc::new(store), format!("file://{dir}"))
    };
    Ok(Archive {
        store,
        local,
        location,
    })
}

fn s3_store(bucket: &str, s3: &S3Settings) -> Result<object_store::aws::AmazonS3, ArchiveError> {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_allow_http(s3.allow_http)
        .with_virtual_hosted_style_request(s3.virtual_hosted_style);
    if let Some(endpoint) = &s3.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &s3.region {
        builder = builder.with_region(region);
    }
    if let Some(id) = &s3.access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = &s3.secret_access_key {
        builder = builder.with_secret_access_key(secret.expose_secret());
    }
    // The builder's errors name settings, never their values.
    builder
        .build()
        .map_err(|e| ArchiveError::Url(format!("s3 settings: {e}")))
}

impl Archive {
    /// Where the archive is, without credentials.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Write `bytes` under `key` unless an object is there: identical → [`Written::AlreadyThere`],
    /// different → [`ArchiveError::Conflict`] (the stored object is left as it is).
    pub async fn put_once(&self, key: &str, bytes: Bytes) -> Result<Written, ArchiveError> {
        if let Some(local) = &self.local {
            let mut results = local.put_all(vec![(key.to_owned(), bytes)]).await;
            return results.pop().unwrap_or_else(|| {
                Err(ArchiveError::Io {
                    key: key.to_owned(),
                    source: std::io::Error::other("nothing was written"),
                })
            });
        }
        let path = Path::from(key);
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, bytes.clone().into(), options)
            .await
        {
            Ok(_) => Ok(Written::Created),
            Err(object_store::Error::AlreadyExists { .. }) => match self.get(key).await? {
                Some(existing) if existing == bytes => Ok(Written::AlreadyThere),
                _ => Err(ArchiveError::Conflict {
                    key: key.to_owned(),
                }),
            },
            Err(source) => Err(ArchiveError::Backend {
                key: key.to_owned(),
                source,
            }),
        }
    }

    /// [`Archive::put_once`] for many objects, results in item order. A local directory writes
    /// them on a few threads and makes them durable together; other stores take up to
    /// `concurrency` requests at once.
    pub async fn put_all(
        &self,
        items: Vec<(String, Bytes)>,
        concurrency: usize,
    ) -> Vec<Result<Written, ArchiveError>> {
        if let Some(local) = &self.local {
            return local.put_all(items).await;
        }
        futures::stream::iter(items)
            .map(|(key, bytes)| async move { self.put_once(&key, bytes).await })
            .buffered(concurrency.max(1))
            .collect()
            .await
    }

    /// [`Archive::get`] for many keys, results in key order. A local directory reads them on a few
    /// threads; other stores take up to `concurrency` requests at once.
    pub async fn get_all(
        &self,
        keys: Vec<String>,
        concurrency: usize,
    ) -> Vec<Result<Option<Bytes>, ArchiveError>> {
        if let Some(local) = &self.local {
            return local.get_all(keys).await;
        }
        futures::stream::iter(keys)
            .map(|key| async move { self.get(&key).await })
            .buffered(concurrency.max(1))
            .collect()
            .await
    }

    /// The object under `key`, or `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, ArchiveError> {
        let backend = |source| ArchiveError::Backend {
            key: key.to_owned(),
            source,
        };
        match self.store.get(&Path::from(key)).await {
            Ok(result) => result.bytes().await.map(Some).map_err(backend),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(backend(source)),
        }
    }

    /// The raw store, for tests that must tamper with an object behind the archive's back.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }
}
