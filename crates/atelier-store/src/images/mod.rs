//! Catalogue images that lie in S3 buckets (`s3://bucket/key`), read through a bounded local
//! cache: the S3 client is configured exactly as an S3 model store is (the environment's
//! `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, `AWS_REGION` and credentials, settings over them),
//! objects are fetched several at a time, each is checked against the SHA-256 the catalogue
//! recorded for it, and the copies live in an [`ImageCache`] that evicts the least recently
//! used beyond its size.
//!
//! `uri` parses and joins object URIs, `cache` owns the folder of copies, `error` sorts the
//! failures; [`ImageReader`] ties them to the buckets.

mod cache;
mod error;
mod uri;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt, stream};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};

pub use cache::{CacheUsage, DEFAULT_CACHE_SIZE, ImageCache, parse_size};
pub use error::ImageError;
pub use uri::{ObjectUri, S3_SCHEME, is_remote, resolve_listed};

use crate::location::{self, RetryPolicy, StoreLocation};
use crate::store::cache_folder;

/// Objects fetched at once by default.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// `$ATELIER_IMAGE_CACHE`, else `$XDG_CACHE_HOME/atelier/images`, else
/// `~/.cache/atelier/images`.
pub fn default_image_cache_dir() -> PathBuf {
    cache_folder("ATELIER_IMAGE_CACHE", "images")
}

/// How images are read from S3 and where their copies are kept.
#[derive(Debug, Clone)]
pub struct ImageSettings {
    pub cache_dir: PathBuf,
    /// The most bytes the cache keeps between passes.
    pub cache_size: u64,
    /// Objects fetched at once.
    pub concurrency: usize,
    pub retry: RetryPolicy,
    /// S3 settings named like their environment variables, applied over the environment's
    /// (as for the model store).
    pub aws_settings: Vec<(String, String)>,
}

impl Default for ImageSettings {
    fn default() -> Self {
        ImageSettings {
            cache_dir: default_image_cache_dir(),
            cache_size: DEFAULT_CACHE_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            retry: RetryPolicy::default(),
            aws_settings: Vec::new(),
        }
    }
}

/// One image to make readable: its URI and, when the catalogue knows it, the SHA-256 of the
/// bytes it was imported with.
#[derive(Debug, Clone, Copy)]
pub struct ImageRequest<'a> {
    pub uri: &'a str,
    pub sha256: Option<&'a str>,
}

/// An object fetched whole, with its hash.
#[derive(Debug, Clone)]
pub struct FetchedObject {
    pub sha256: String,
    pub byte_size: u64,
    /// The cached copy (`None` when it could not be written, which does not stop an import).
    pub path: Option<PathBuf>,
}

/// What resolving one request gave: the local file, and for a cached copy its name and size.
struct Resolved {
    path: PathBuf,
    cached: Option<(String, u64)>,
}

/// Reads images from S3 buckets through the local cache; local paths pass through untouched.
pub struct ImageReader {
    settings: ImageSettings,
    cache: ImageCache,
    buckets: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl ImageReader {
    pub fn new(settings: ImageSettings) -> ImageReader {
        ImageReader {
            cache: ImageCache::new(settings.cache_dir.clone(), settings.cache_size),
            settings,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn cache(&self) -> &ImageCache {
        &self.cache
    }

    pub fn settings(&self) -> &ImageSettings {
        &self.settings
    }

    /// The client of `bucket`, opened on first use with the store's S3 configuration.
    fn bucket(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, ImageError> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = buckets.get(bucket) {
            return Ok(client.clone());
        }
        let location = StoreLocation::S3 {
            bucket: bucket.to_string(),
            prefix: String::new(),
        };
        let backend = location::open(&location, &self.settings.retry, &self.settings.aws_settings)
            .map_err(|e| ImageError::Config {
                uri: format!("{S3_SCHEME}{bucket}"),
                reason: e.to_string(),
            })?;
        buckets.insert(bucket.to_string(), backend.store.clone());
        Ok(backend.store)
    }

    /// The bytes of the object `uri`, not cached (a manifest).
    pub async fn fetch(&self, uri: &str) -> Result<Vec<u8>, ImageError> {
        let object = ObjectUri::parse(uri)?;
        let client = self.bucket(&object.bucket)?;
        let location = ObjectPath::from(object.key.as_str());
        let result = client
            .get(&location)
            .await
            .map_err(|e| ImageError::backend(uri, "reading", e))?;
        let bytes = result
            .bytes()
            .await
            .map_err(|e| ImageError::backend(uri, "reading", e))?;
        Ok(bytes.to_vec())
    }

    /// The URIs and sizes of every object under `prefix` (a bucket and a key prefix; a
    /// non-empty prefix is taken as a folder), in key order.
    pub async fn list(&self, prefix: &ObjectUri) -> Result<Vec<(String, u64)>, ImageError> {
        let client = self.bucket(&prefix.bucket)?;
        let folder = prefix.key.trim_end_matches('/');
        let location = (!folder.is_empty()).then(|| ObjectPath::from(folder));
        let uri = prefix.to_uri();
        let objects: Vec<_> = client
            .list(location.as_ref())
            .try_collect()
            .await
            .map_err(|e| ImageError::backend(&uri, "listing", e))?;
        let mut listed: Vec<(String, u64)> = objects
            .into_iter()
            .map(|o| {
                let key = ObjectUri {
                    bucket: prefix.bucket.clone(),
                    key: o.location.to_string(),
                };
                (key.to_uri(), o.size)
            })
            .collect();
        listed.sort();
        Ok(listed)
    }

    /// Fetches `uri`, hashes it and keeps a copy in the cache (an import's first read).
    pub async fn fetch_hashed(&self, uri: &str) -> Result<FetchedObject, ImageError> {
        self.fetch_and_keep(uri, None).await
    }

    /// Fetches `uri` and keeps a copy when its bytes hash to `expected` (or to anything when
    /// no hash is expected); other bytes are refused, not kept.
    async fn fetch_and_keep(
        &self,
        uri: &str,
        expected: Option<&str>,
    ) -> Result<FetchedObject, ImageError> {
        let bytes = self.fetch(uri).await?;
        let cache = self.cache.clone();
        let (uri, expected) = (uri.to_string(), expected.map(str::to_string));
        tokio::task::spawn_blocking(move || {
            let sha256 = hex::encode(Sha256::digest(&bytes));
            if let Some(expected) = expected
                && expected != sha256
            {
                return Err(ImageError::Changed {
                    uri,
                    expected,
                    actual: sha256,
                });
            }
            let path = match cache.put(&sha256, &bytes) {
                Ok(path) => Some(path),
                Err(error) => {
                    tracing::warn!("{uri}: not cached: {error}");
                    None
                }
            };
            Ok(FetchedObject {
                sha256,
                byte_size: bytes.len() as u64,
                path,
            })
        })
        .await
        .map_err(|e| self.stopped(e))?
    }

    /// A blocking task of the cache's that stopped without an answer (a panic).
    fn stopped(&self, error: tokio::task::JoinError) -> ImageError {
        ImageError::io(self.cache.dir(), std::io::Error::other(error.to_string()))
    }

    /// [`ImageReader::fetch_hashed`] for each URI, several at a time, in order; then the cache
    /// is trimmed to its size.
    pub async fn fetch_hashed_many(
        &self,
        uris: &[String],
    ) -> Result<Vec<Result<FetchedObject, ImageError>>, ImageError> {
        // The futures are made first: a stream over a closure would make callers' futures
        // lose `Send` (the closure's borrow is higher-ranked).
        let fetches: Vec<_> = uris.iter().map(|uri| self.fetch_hashed(uri)).collect();
        let results: Vec<_> = stream::iter(fetches)
            .buffered(self.settings.concurrency.max(1))
            .collect()
            .await;
        self.trim(HashSet::new()).await?;
        Ok(results)
    }

    /// A local file for each request, in order: local paths as they are, objects from the
    /// cache or fetched into it (several at a time) and checked against the catalogue's hash.
    /// Each entry fails on its own (a missing or altered object); the whole call fails when the
    /// files it returns do not fit in the cache together. The cache is then trimmed to its
    /// size, least recently used first, keeping every file returned.
    pub async fn resolve(
        &self,
        requests: &[ImageRequest<'_>],
    ) -> Result<Vec<Result<PathBuf, ImageError>>, ImageError> {
        let resolutions: Vec<_> = requests.iter().map(|r| self.resolve_one(*r)).collect();
        let resolved: Vec<Result<Resolved, ImageError>> = stream::iter(resolutions)
            .buffered(self.settings.concurrency.max(1))
            .collect()
            .await;
        let cached: HashMap<&str, u64> = resolved
            .iter()
            .filter_map(|r| r.as_ref().ok()?.cached.as_ref())
            .map(|(name, size)| (name.as_str(), *size))
            .collect();
        if cached.is_empty() {
            return Ok(resolved.into_iter().map(|r| r.map(|r| r.path)).collect());
        }
        let needed: u64 = cached.values().sum();
        if needed > self.cache.limit() {
            return Err(ImageError::CacheTooSmall {
                needed,
                limit: self.cache.limit(),
            });
        }
        let keep: HashSet<String> = cached.keys().map(|name| name.to_string()).collect();
        self.trim(keep).await?;
        Ok(resolved.into_iter().map(|r| r.map(|r| r.path)).collect())
    }

    /// Evicts beyond the cache's size, sparing `keep`.
    async fn trim(&self, keep: HashSet<String>) -> Result<CacheUsage, ImageError> {
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || cache.evict(&keep))
            .await
            .map_err(|e| self.stopped(e))?
    }

    async fn resolve_one(&self, request: ImageRequest<'_>) -> Result<Resolved, ImageError> {
        if !is_remote(request.uri) {
            return Ok(Resolved {
                path: PathBuf::from(request.uri),
                cached: None,
            });
        }
        let expected = request.sha256.filter(|s| cache::is_sha256(s));
        if let Some(sha256) = expected {
            let cache = self.cache.clone();
            let name = sha256.to_string();
            let hit = tokio::task::spawn_blocking(move || {
                let path = cache.get(&name)?;
                let size = path
                    .as_ref()
                    .and_then(|p| p.metadata().ok())
                    .map(|m| m.len());
                Ok::<_, ImageError>(path.map(|p| (p, name, size.unwrap_or(0))))
            })
            .await
            .map_err(|e| self.stopped(e))??;
            if let Some((path, name, size)) = hit {
                return Ok(Resolved {
                    path,
                    cached: Some((name, size)),
                });
            }
        }
        let fetched = self.fetch_and_keep(request.uri, expected).await?;
        let path = fetched.path.ok_or_else(|| {
            ImageError::io(
                self.cache.dir(),
                std::io::Error::other(format!("cannot keep a copy of {}", request.uri)),
            )
        })?;
        Ok(Resolved {
            path,
            cached: Some((fetched.sha256, fetched.byte_size)),
        })
    }
}
