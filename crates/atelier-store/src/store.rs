//! The model store proper: publishing a folder as `NAME@VERSION`, listing, pulling into the
//! local cache with verification, tags, removal.
//!
//! Layout under the store's root (the same keys on a local folder and in a bucket):
//!
//! ```text
//! NAME/VERSION/claim.json      reserves VERSION (written first, create-if-absent)
//! NAME/VERSION/<part>          the model's files
//! NAME/VERSION/manifest.json   written last, create-if-absent: the version exists once it does
//! NAME/tags/TAG.json           {"version": N}, overwritten by promote
//! ```
//!
//! A publisher takes the version after the highest it sees and claims it with a
//! create-if-absent put; when another publisher got there first it claims the next one, so
//! concurrent publishers never share a version and never overwrite each other's parts. Readers
//! only see versions whose manifest exists, so an interrupted publish leaves nothing visible
//! (its claim stays, and keeps that number from being reused).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutMode, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{StoreError, StoreResult};
use crate::location::{self, Backend, RetryPolicy, StoreLocation};
use crate::reference::{ModelRef, Selector, check_name, check_tag};

pub const MANIFEST_FILE: &str = "manifest.json";
const CLAIM_FILE: &str = "claim.json";
const TAGS_DIR: &str = "tags";
const MANIFEST_FORMAT: &str = "atelier-store-manifest";
const MANIFEST_FORMAT_VERSION: u32 = 1;
/// Versions skipped because other publishers claimed them before giving up.
const MAX_CLAIM_ATTEMPTS: u64 = 1000;
/// Whole publish attempts when a manifest slot turns out to be taken despite our claim (only
/// possible on a store whose create-if-absent is not atomic).
const MAX_PUBLISH_ATTEMPTS: usize = 5;

/// One file of a published model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// What `NAME/VERSION/manifest.json` holds. Its own SHA-256 names the cache folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub name: String,
    pub version: u64,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Identifies the publishing process (host-independent random-ish id).
    pub publisher: String,
    pub parts: Vec<Part>,
    /// Free-form description supplied by the publisher (architecture, run, metrics summary).
    pub metadata: Value,
}

impl Manifest {
    pub fn reference(&self) -> ModelRef {
        ModelRef::version(&self.name, self.version)
    }

    pub fn total_size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }
}

/// One visible version with its manifest and the tags pointing at it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    pub version: u64,
    pub manifest: Manifest,
    pub tags: Vec<String>,
}

/// A model name with its visible versions (ascending) and tags.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub versions: Vec<VersionInfo>,
    pub tags: BTreeMap<String, u64>,
}

/// A model pulled into the local cache.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub manifest: Manifest,
    /// SHA-256 of the manifest's bytes: the cache key.
    pub manifest_sha256: String,
    /// The cache folder holding the verified parts.
    pub dir: PathBuf,
    /// False when the cache already held this exact model and nothing was downloaded.
    pub downloaded: bool,
}

/// Progress of a publish, for display and for tests that interrupt it.
#[derive(Debug, Clone, Copy)]
pub enum PublishStep<'a> {
    Claimed { version: u64 },
    Uploaded { part: &'a str, bytes: u64 },
}

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
    if let Some(dir) = std::env::var_os("ATELIER_MODEL_CACHE").filter(|d| !d.is_empty()) {
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
    cache.join("atelier/models")
}

#[derive(Serialize, Deserialize)]
struct Claim {
    publisher: String,
    created_at: i64,
}

#[derive(Serialize, Deserialize)]
struct TagRecord {
    version: u64,
    updated_at: i64,
}

/// What a listing of one name shows.
struct Scan {
    visible: BTreeSet<u64>,
    highest_seen: u64,
}

/// A model store on a local folder or an S3 bucket.
pub struct ModelStore {
    backend: Backend,
    cache_dir: PathBuf,
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

    /// Every name with at least one visible version.
    pub async fn list(&self) -> StoreResult<Vec<ModelInfo>> {
        let listing = self
            .backend
            .store
            .list_with_delimiter(Some(&self.backend.root))
            .await;
        let names: Vec<String> = match listing {
            Ok(listing) => listing
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_string))
                .filter(|name| check_name(name).is_ok())
                .collect(),
            Err(error) => return Err(self.list_error(error)),
        };
        let mut models = Vec::new();
        for name in names {
            let model = self.model(&name).await?;
            if !model.versions.is_empty() {
                models.push(model);
            }
        }
        Ok(models)
    }

    /// One name's visible versions and tags.
    pub async fn model(&self, name: &str) -> StoreResult<ModelInfo> {
        check_name(name).map_err(|reason| StoreError::BadReference {
            reference: name.to_string(),
            reason,
        })?;
        let scan = self.scan(name).await?;
        let tags = self.tags(name).await?;
        let mut versions = Vec::new();
        for version in scan.visible {
            let (_, manifest) = self.manifest_bytes(name, version).await?;
            versions.push(VersionInfo {
                version,
                manifest,
                tags: tags
                    .iter()
                    .filter(|(_, v)| **v == version)
                    .map(|(t, _)| t.clone())
                    .collect(),
            });
        }
        Ok(ModelInfo {
            name: name.to_string(),
            versions,
            tags,
        })
    }

    /// The tags of `name` and the versions they point at.
    pub async fn tags(&self, name: &str) -> StoreResult<BTreeMap<String, u64>> {
        let prefix = self.name_path(name).join(TAGS_DIR);
        let objects: Vec<_> = self
            .backend
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.list_error(e))?;
        let mut tags = BTreeMap::new();
        for object in objects {
            let Some(tag) = object
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
                .map(str::to_string)
            else {
                continue;
            };
            if check_tag(&tag).is_err() {
                continue;
            }
            if let Some(version) = self.read_tag(name, &tag).await? {
                tags.insert(tag, version);
            }
        }
        Ok(tags)
    }

    /// The version a reference denotes, checked to be visible.
    pub async fn resolve(&self, reference: &ModelRef) -> StoreResult<u64> {
        let name = &reference.name;
        match &reference.selector {
            Selector::Version(version) => {
                self.manifest_bytes(name, *version).await?;
                Ok(*version)
            }
            Selector::Tag(tag) => match self.read_tag(name, tag).await? {
                Some(version) => Ok(version),
                None => {
                    let tags = self.tags(name).await?;
                    let hint = if tags.is_empty() {
                        format!("; tag a version with `atelier models promote {name}@N {tag}`")
                    } else {
                        format!(
                            "; its tags: {}",
                            tags.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    };
                    Err(self.not_found(format!("no tag `{tag}` on model {name}"), hint))
                }
            },
            Selector::Latest => {
                let scan = self.scan(name).await?;
                match scan.visible.last() {
                    Some(version) => Ok(*version),
                    None => Err(self.not_found(
                        format!("no model named {name}"),
                        "; publish one with `atelier models push` or `atelier train ... --publish`"
                            .into(),
                    )),
                }
            }
        }
    }

    /// The manifest of a reference.
    pub async fn manifest(&self, reference: &ModelRef) -> StoreResult<Manifest> {
        let version = self.resolve(reference).await?;
        Ok(self.manifest_bytes(&reference.name, version).await?.1)
    }

    /// Publishes the files of `dir` (a flat folder) as the next version of `name`.
    pub async fn publish(&self, name: &str, dir: &Path, metadata: Value) -> StoreResult<Manifest> {
        self.publish_with(name, dir, metadata, |_| {}).await
    }

    /// [`publish`](Self::publish), reporting each step to `on_step`.
    pub async fn publish_with(
        &self,
        name: &str,
        dir: &Path,
        metadata: Value,
        mut on_step: impl FnMut(PublishStep<'_>) + Send,
    ) -> StoreResult<Manifest> {
        check_name(name).map_err(|reason| StoreError::BadReference {
            reference: name.to_string(),
            reason,
        })?;
        let files = read_model_folder(dir)?;
        let parts: Vec<Part> = files
            .iter()
            .map(|(name, bytes)| Part {
                name: name.clone(),
                size: bytes.len() as u64,
                sha256: hex::encode(Sha256::digest(bytes)),
            })
            .collect();
        let publisher = publisher_id();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let version = self.claim(name, &publisher).await?;
            on_step(PublishStep::Claimed { version });
            let version_path = self.version_path(name, version);
            for (part, bytes) in &files {
                let payload = PutPayload::from(bytes.clone());
                self.backend
                    .store
                    .put_opts(
                        &version_path.clone().join(part.as_str()),
                        payload,
                        PutMode::Overwrite.into(),
                    )
                    .await
                    .map_err(|e| self.error(&format!("upload of {name}@{version}/{part}"), e))?;
                on_step(PublishStep::Uploaded {
                    part,
                    bytes: bytes.len() as u64,
                });
            }
            let manifest = Manifest {
                format: MANIFEST_FORMAT.into(),
                format_version: MANIFEST_FORMAT_VERSION,
                name: name.to_string(),
                version,
                created_at: now_millis(),
                publisher: publisher.clone(),
                parts: parts.clone(),
                metadata: metadata.clone(),
            };
            let bytes = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
            let written = self
                .backend
                .store
                .put_opts(
                    &version_path.clone().join(MANIFEST_FILE),
                    PutPayload::from(bytes),
                    PutMode::Create.into(),
                )
                .await;
            match written {
                Ok(_) => return Ok(manifest),
                Err(object_store::Error::AlreadyExists { .. })
                    if attempts < MAX_PUBLISH_ATTEMPTS =>
                {
                    tracing::warn!(
                        "{name}@{version} was published by another writer despite our claim; \
                         publishing again as a later version"
                    );
                }
                Err(object_store::Error::AlreadyExists { .. }) => {
                    return Err(StoreError::Conflict {
                        model: name.to_string(),
                        reason: format!(
                            "{} could not publish: {attempts} versions were taken by other \
                             writers after this one claimed them (does the store support \
                             conditional writes?)",
                            self.url()
                        ),
                    });
                }
                Err(e) => {
                    return Err(self.error(&format!("writing the manifest of {name}@{version}"), e));
                }
            }
        }
    }

    /// Reserves the next free version of `name` with a create-if-absent put.
    async fn claim(&self, name: &str, publisher: &str) -> StoreResult<u64> {
        let first = self.scan(name).await?.highest_seen + 1;
        let claim = serde_json::to_vec(&Claim {
            publisher: publisher.to_string(),
            created_at: now_millis(),
        })
        .expect("a claim serialises");
        for version in first..first + MAX_CLAIM_ATTEMPTS {
            let path = self.version_path(name, version).join(CLAIM_FILE);
            match self
                .backend
                .store
                .put_opts(
                    &path,
                    PutPayload::from(claim.clone()),
                    PutMode::Create.into(),
                )
                .await
            {
                Ok(_) => return Ok(version),
                Err(object_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(self.error(&format!("claiming {name}@{version}"), e)),
            }
        }
        Err(StoreError::Conflict {
            model: name.to_string(),
            reason: format!("{MAX_CLAIM_ATTEMPTS} versions in a row were claimed by other writers"),
        })
    }

    /// Downloads (or finds in the cache) the model a reference denotes, verifying every part.
    pub async fn pull(&self, reference: &ModelRef) -> StoreResult<Pulled> {
        let version = self.resolve(reference).await?;
        let (bytes, manifest) = self.manifest_bytes(&reference.name, version).await?;
        let manifest_sha256 = hex::encode(Sha256::digest(&bytes));
        let dir = self.cache_dir.join(&manifest_sha256);
        match verify_cache(&dir, &manifest) {
            Ok(()) => {
                return Ok(Pulled {
                    manifest,
                    manifest_sha256,
                    dir,
                    downloaded: false,
                });
            }
            // Damaged since it was pulled: fetch a good copy instead.
            Err(Some(damage)) => {
                tracing::warn!(
                    "the cached copy of {} in {} is damaged ({damage}); downloading it again",
                    manifest.reference(),
                    dir.display()
                );
                std::fs::remove_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
            }
            Err(None) => {}
        }
        std::fs::create_dir_all(&self.cache_dir).map_err(|e| StoreError::io(&self.cache_dir, e))?;
        let partial = self
            .cache_dir
            .join(format!(".{manifest_sha256}.partial-{}", publisher_id()));
        std::fs::create_dir_all(&partial).map_err(|e| StoreError::io(&partial, e))?;
        let downloaded = self.download_parts(&manifest, &partial).await;
        if let Err(error) = downloaded {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(error);
        }
        if let Err(error) = std::fs::rename(&partial, &dir) {
            let _ = std::fs::remove_dir_all(&partial);
            // Another process finished the same pull first; its copy is as good as ours.
            if verify_cache(&dir, &manifest).is_err() {
                return Err(StoreError::io(&dir, error));
            }
        }
        Ok(Pulled {
            manifest,
            manifest_sha256,
            dir,
            downloaded: true,
        })
    }

    async fn download_parts(&self, manifest: &Manifest, into: &Path) -> StoreResult {
        let model = manifest.reference().to_string();
        let version_path = self.version_path(&manifest.name, manifest.version);
        for part in &manifest.parts {
            let target = into.join(&part.name);
            let mut file =
                std::fs::File::create(&target).map_err(|e| StoreError::io(&target, e))?;
            let (size, sha256) = self
                .read_part_into(&model, &version_path, part, |chunk| {
                    file.write_all(chunk)
                        .map_err(|e| StoreError::io(&target, e))
                })
                .await?;
            verify_part(&model, part, size, &sha256)?;
            file.sync_all().map_err(|e| StoreError::io(&target, e))?;
        }
        Ok(())
    }

    /// Reads one part of a version into memory, verified (for small parts such as
    /// `lineage.json`).
    pub async fn read_part(&self, manifest: &Manifest, part_name: &str) -> StoreResult<Vec<u8>> {
        let model = manifest.reference().to_string();
        let part = manifest
            .parts
            .iter()
            .find(|p| p.name == part_name)
            .ok_or_else(|| {
                self.not_found(format!("{model} has no part {part_name}"), String::new())
            })?;
        let version_path = self.version_path(&manifest.name, manifest.version);
        let mut bytes = Vec::new();
        let (size, sha256) = self
            .read_part_into(&model, &version_path, part, |chunk| {
                bytes.extend_from_slice(chunk);
                Ok(())
            })
            .await?;
        verify_part(&model, part, size, &sha256)?;
        Ok(bytes)
    }

    /// Streams a part to `sink`, returning its size and SHA-256. Stops early when the object
    /// is longer than the manifest says (an altered part is not downloaded to the end).
    async fn read_part_into(
        &self,
        model: &str,
        version_path: &ObjectPath,
        part: &Part,
        mut sink: impl FnMut(&[u8]) -> StoreResult,
    ) -> StoreResult<(u64, String)> {
        let location = version_path.clone().join(part.name.as_str());
        let result = match self.backend.store.get(&location).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StoreError::Corrupt {
                    model: model.to_string(),
                    part: part.name.clone(),
                    detail: "is missing from the store".into(),
                });
            }
            Err(e) => return Err(self.error(&format!("download of {model}/{}", part.name), e)),
        };
        let mut stream = result.into_stream();
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| self.error(&format!("download of {model}/{}", part.name), e))?
        {
            size += chunk.len() as u64;
            if size > part.size {
                return Ok((size, String::new()));
            }
            hasher.update(&chunk);
            sink(&chunk)?;
        }
        Ok((size, hex::encode(hasher.finalize())))
    }

    /// Points `tag` at `name@version` (which must be visible).
    pub async fn promote(&self, name: &str, version: u64, tag: &str) -> StoreResult {
        check_tag(tag).map_err(|reason| StoreError::BadReference {
            reference: format!("{name}:{tag}"),
            reason,
        })?;
        self.manifest_bytes(name, version).await?;
        let record = serde_json::to_vec(&TagRecord {
            version,
            updated_at: now_millis(),
        })
        .expect("a tag serialises");
        self.backend
            .store
            .put_opts(
                &self.tag_path(name, tag),
                PutPayload::from(record),
                PutMode::Overwrite.into(),
            )
            .await
            .map_err(|e| self.error(&format!("setting tag {name}:{tag}"), e))?;
        Ok(())
    }

    /// Removes `name@version`: its manifest first (so it disappears at once), then its parts.
    /// The claim stays, so the number is never given to another model. A tagged version is
    /// refused: move the tag first.
    pub async fn remove(&self, name: &str, version: u64) -> StoreResult<Manifest> {
        let (_, manifest) = self.manifest_bytes(name, version).await?;
        let tagged: Vec<String> = self
            .tags(name)
            .await?
            .into_iter()
            .filter(|(_, v)| *v == version)
            .map(|(t, _)| t)
            .collect();
        if !tagged.is_empty() {
            return Err(StoreError::Refused {
                model: format!("{name}@{version}"),
                reason: format!(
                    "tagged {}; promote another version to that tag first",
                    tagged.join(", ")
                ),
            });
        }
        let version_path = self.version_path(name, version);
        self.delete(&version_path.clone().join(MANIFEST_FILE))
            .await?;
        for part in &manifest.parts {
            self.delete(&version_path.clone().join(part.name.as_str()))
                .await?;
        }
        Ok(manifest)
    }

    async fn delete(&self, location: &ObjectPath) -> StoreResult {
        match self.backend.store.delete(location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(&format!("deleting {location}"), e)),
        }
    }

    /// Visible versions and the highest version number with any object (claimed, partly
    /// uploaded or removed), from one listing of the name's keys.
    async fn scan(&self, name: &str) -> StoreResult<Scan> {
        let prefix = self.name_path(name);
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

    async fn read_tag(&self, name: &str, tag: &str) -> StoreResult<Option<u64>> {
        match self.backend.store.get(&self.tag_path(name, tag)).await {
            Ok(result) => {
                let bytes = result
                    .bytes()
                    .await
                    .map_err(|e| self.error(&format!("reading tag {name}:{tag}"), e))?;
                let record: TagRecord =
                    serde_json::from_slice(&bytes).map_err(|e| StoreError::Conflict {
                        model: format!("{name}:{tag}"),
                        reason: format!("the tag object is unreadable ({e}); promote again"),
                    })?;
                Ok(Some(record.version))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(&format!("reading tag {name}:{tag}"), e)),
        }
    }

    /// The manifest's bytes (for its hash) and contents, checked against where it lives.
    async fn manifest_bytes(&self, name: &str, version: u64) -> StoreResult<(Vec<u8>, Manifest)> {
        let location = self.version_path(name, version).join(MANIFEST_FILE);
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
        let corrupt = |detail: String| StoreError::Corrupt {
            model: format!("{name}@{version}"),
            part: MANIFEST_FILE.into(),
            detail,
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt(format!("is not a readable manifest ({e})")))?;
        if manifest.format != MANIFEST_FORMAT || manifest.format_version > MANIFEST_FORMAT_VERSION {
            return Err(corrupt(format!(
                "has format {} version {}, which this atelier does not read ({MANIFEST_FORMAT} up \
                 to {MANIFEST_FORMAT_VERSION})",
                manifest.format, manifest.format_version
            )));
        }
        if manifest.name != name || manifest.version != version {
            return Err(corrupt(format!(
                "describes {}@{}, not the version it is stored as",
                manifest.name, manifest.version
            )));
        }
        Ok((bytes.to_vec(), manifest))
    }

    fn name_path(&self, name: &str) -> ObjectPath {
        self.backend.root.clone().join(name)
    }

    fn version_path(&self, name: &str, version: u64) -> ObjectPath {
        self.name_path(name).join(version.to_string())
    }

    fn tag_path(&self, name: &str, tag: &str) -> ObjectPath {
        self.name_path(name)
            .join(TAGS_DIR)
            .join(format!("{tag}.json"))
    }

    fn not_found(&self, what: String, hint: String) -> StoreError {
        StoreError::NotFound {
            store: self.backend.url.clone(),
            what,
            hint,
        }
    }

    fn error(&self, operation: &str, error: object_store::Error) -> StoreError {
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
    fn list_error(&self, error: object_store::Error) -> StoreError {
        let error = self.error("listing", error);
        if error.has_code("NoSuchBucket") {
            return self.not_found(
                "no such bucket".into(),
                "; create it, or check --store / ATELIER_STORE".into(),
            );
        }
        error
    }
}

fn verify_part(model: &str, part: &Part, size: u64, sha256: &str) -> StoreResult {
    let corrupt = |detail: String| StoreError::Corrupt {
        model: model.to_string(),
        part: part.name.clone(),
        detail,
    };
    if size != part.size {
        let actual = if size > part.size {
            format!("more than {}", part.size)
        } else {
            size.to_string()
        };
        return Err(corrupt(format!(
            "is {actual} bytes, but the manifest says {}",
            part.size
        )));
    }
    if sha256 != part.sha256 {
        return Err(corrupt(format!(
            "has SHA-256 {}…, but the manifest says {}…",
            &sha256[..12.min(sha256.len())],
            &part.sha256[..12.min(part.sha256.len())]
        )));
    }
    Ok(())
}

/// Checks a cache folder against the manifest, size and SHA-256 of every part: `Err(None)` when
/// there is no cached copy, `Err(Some(what))` when it is damaged (a cache folder is only ever
/// created complete, by rename, so anything else is a change made since).
fn verify_cache(dir: &Path, manifest: &Manifest) -> Result<(), Option<String>> {
    if !dir.is_dir() {
        return Err(None);
    }
    for part in &manifest.parts {
        let path = dir.join(&part.name);
        let (size, sha256) = file_sha256(&path).map_err(|e| Some(format!("{}: {e}", part.name)))?;
        verify_part(&manifest.reference().to_string(), part, size, &sha256)
            .map_err(|e| Some(e.to_string()))?;
    }
    Ok(())
}

/// Size and SHA-256 (hex) of a file, streamed.
fn file_sha256(path: &Path) -> std::io::Result<(u64, String)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// The files of a model folder, sorted by name. A model is flat: subfolders are refused, as
/// are names the store reserves or that cannot be object keys.
fn read_model_folder(dir: &Path) -> StoreResult<Vec<(String, Vec<u8>)>> {
    let invalid = |reason: String| StoreError::InvalidFolder {
        path: dir.to_path_buf(),
        reason,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        let metadata = std::fs::metadata(&path).map_err(|e| StoreError::io(&path, e))?;
        if metadata.is_dir() {
            return Err(invalid(format!(
                "contains the folder {name}; a model is a flat folder of files"
            )));
        }
        if name == MANIFEST_FILE || name == CLAIM_FILE {
            return Err(invalid(format!(
                "contains {name}, a name the store writes itself; rename or remove it"
            )));
        }
        if name.starts_with('.')
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(invalid(format!(
                "file name `{name}`: use letters, digits, `.`, `_` and `-` (not first `.`)"
            )));
        }
        let bytes = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        files.push((name, bytes));
    }
    if files.is_empty() {
        return Err(invalid("is empty; nothing to publish".into()));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// Unique per call across processes and threads: pid, time and a counter, hashed.
fn publisher_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    hex::encode(&Sha256::digest(seed.as_bytes())[..8])
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
