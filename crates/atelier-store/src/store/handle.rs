//! The [`ModelStore`] handle and how to open one, with what every operation builds on: the
//! listing of one name's keys ([`Scan`]), a version's manifest read and checked, and backend
//! failures turned into [`StoreError`]s that name the store.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;

use super::format::{MANIFEST_FILE, Manifest, name_path, parse_manifest, version_path};
use crate::error::{StoreError, StoreResult};
use crate::location::{self, Backend, RetryPolicy, StoreLocation};

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Where pulled models are kept, one folder per manifest hash.
    pub cache_dir: PathBuf,
    pub retry: RetryPolicy,
    /// S3 settings named like their environment variables (`AWS_ENDPOINT_URL`, ...), applied
    /// over the environment's: lets one process talk to several endpoints (tests do).
    pub aws_settings: Vec<(String, String)>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_dir: default_cache_dir(),
            retry: RetryPolicy::default(),
            aws_settings: Vec::new(),
        }
    }
}

/// `$ATELIER_MODEL_CACHE`, else `$XDG_CACHE_HOME/atelier/models`, else
/// `~/.cache/atelier/models`.
pub fn default_cache_dir() -> PathBuf {
    cache_folder("ATELIER_MODEL_CACHE", "models")
}

/// `$VARIABLE` when set, else `$XDG_CACHE_HOME/atelier/NAME`, else `~/.cache/atelier/NAME`.
pub(crate) fn cache_folder(variable: &str, name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os(variable).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map_or_else(|| PathBuf::from("."), PathBuf::from)
                .join(".cache")
        });
    cache.join("atelier").join(name)
}

/// What a listing of one name shows.
pub(super) struct Scan {
    pub(super) visible: BTreeSet<u64>,
    pub(super) highest_seen: u64,
}

/// A model store on a local folder or an S3 bucket.
pub struct ModelStore {
    pub(super) backend: Backend,
    pub(super) cache_dir: PathBuf,
}

impl std::fmt::Debug for ModelStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelStore({})", self.backend.url)
    }
}

impl ModelStore {
    /// Opens the store at `url` (see [`StoreLocation::parse`]). Nothing is contacted yet.
    pub fn open(url: &str, options: StoreOptions) -> StoreResult<Self> {
        let location = StoreLocation::parse(url)?;
        let backend = location::open(&location, &options.retry, &options.aws_settings)?;
        Ok(ModelStore {
            backend,
            cache_dir: options.cache_dir,
        })
    }

    /// The store's canonical URL (`file:///abs/path` or `s3://bucket/prefix`).
    pub fn url(&self) -> &str {
        &self.backend.url
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The underlying object store and the key prefix of this model store: for tools and
    /// tests that need to look under the hood.
    pub fn raw(&self) -> (&dyn object_store::ObjectStore, &ObjectPath) {
        (self.backend.store.as_ref(), &self.backend.root)
    }

    /// Visible versions and the highest version number with any object (claimed, partly
    /// uploaded or removed), from one listing of the name's keys.
    pub(super) async fn scan(&self, name: &str) -> StoreResult<Scan> {
        let prefix = name_path(&self.backend.root, name);
        let objects: Vec<_> = self
            .backend
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.list_error(e))?;
        let mut scan = Scan {
            visible: BTreeSet::new(),
            highest_seen: 0,
        };
        for object in objects {
            let Some(rest) = object.location.prefix_match(&prefix) else {
                continue;
            };
            let rest: Vec<String> = rest.map(|p| p.as_ref().to_string()).collect();
            let Some(version) = rest.first().and_then(|v| v.parse::<u64>().ok()) else {
                continue;
            };
            scan.highest_seen = scan.highest_seen.max(version);
            if rest.len() == 2 && rest[1] == MANIFEST_FILE {
                scan.visible.insert(version);
            }
        }
        Ok(scan)
    }

    /// The manifest's bytes (for its hash) and contents, checked against where it lives.
    pub(super) async fn manifest_bytes(
        &self,
        name: &str,
        version: u64,
    ) -> StoreResult<(Vec<u8>, Manifest)> {
        let location = version_path(&self.backend.root, name, version).join(MANIFEST_FILE);
        let bytes = match self.backend.store.get(&location).await {
            Ok(result) => result
                .bytes()
                .await
                .map_err(|e| self.error(&format!("reading the manifest of {name}@{version}"), e))?,
            Err(object_store::Error::NotFound { .. }) => {
                let scan = self.scan(name).await?;
                let hint = if scan.visible.is_empty() {
                    format!("; there is no model named {name}")
                } else {
                    let list: Vec<String> = scan.visible.iter().map(u64::to_string).collect();
                    format!("; published versions: {}", list.join(", "))
                };
                return Err(self.not_found(format!("no version {name}@{version}"), hint));
            }
            Err(e) => {
                return Err(self.error(&format!("reading the manifest of {name}@{version}"), e));
            }
        };
        let manifest = parse_manifest(name, version, &bytes)?;
        Ok((bytes.to_vec(), manifest))
    }

    pub(super) fn not_found(&self, what: String, hint: String) -> StoreError {
        StoreError::NotFound {
            store: self.backend.url.clone(),
            what,
            hint,
        }
    }

    pub(super) fn error(&self, operation: &str, error: object_store::Error) -> StoreError {
        match StoreError::backend(&self.backend.url, operation, error) {
            StoreError::Backend {
                store,
                operation,
                detail,
                source,
            } if self.backend.credentials_hint.is_some() => StoreError::Backend {
                store,
                operation,
                detail: format!(
                    "{detail} ({})",
                    self.backend.credentials_hint.as_deref().unwrap_or_default()
                ),
                source,
            },
            other => other,
        }
    }

    /// Names the missing bucket instead of passing on S3's XML.
    pub(super) fn list_error(&self, error: object_store::Error) -> StoreError {
        let error = self.error("listing", error);
        if error.has_code("NoSuchBucket") {
            return self.not_found(
                "no such bucket".into(),
                "; create it, or name another store".into(),
            );
        }
        error
    }
}
