//! The store's format, shared by every operation: the keys objects live under (see the layout
//! in the parent module), the manifest and how a stored one is checked, SHA-256 digests, and
//! the stamps (time, publisher id) written into records. It depends on no other module of the
//! store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{StoreError, StoreResult};
use crate::reference::ModelRef;

pub const MANIFEST_FILE: &str = "manifest.json";
pub(super) const CLAIM_FILE: &str = "claim.json";
pub(super) const TAGS_DIR: &str = "tags";
pub(super) const MANIFEST_FORMAT: &str = "atelier-store-manifest";
pub(super) const MANIFEST_FORMAT_VERSION: u32 = 1;

/// `NAME`: the prefix of every key of a model name.
pub(super) fn name_path(root: &ObjectPath, name: &str) -> ObjectPath {
    root.clone().join(name)
}

/// `NAME/VERSION`: the prefix of a version's claim, parts and manifest.
pub(super) fn version_path(root: &ObjectPath, name: &str, version: u64) -> ObjectPath {
    name_path(root, name).join(version.to_string())
}

/// `NAME/tags/TAG.json`.
pub(super) fn tag_path(root: &ObjectPath, name: &str, tag: &str) -> ObjectPath {
    name_path(root, name)
        .join(TAGS_DIR)
        .join(format!("{tag}.json"))
}

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

/// Parses the manifest stored as `name@version`, refusing one of a format this atelier does
/// not read or one that describes another version than where it is stored.
pub(super) fn parse_manifest(name: &str, version: u64, bytes: &[u8]) -> StoreResult<Manifest> {
    let corrupt = |detail: String| StoreError::Corrupt {
        model: format!("{name}@{version}"),
        part: MANIFEST_FILE.into(),
        detail,
    };
    let manifest: Manifest = serde_json::from_slice(bytes)
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
    Ok(manifest)
}

/// SHA-256 (hex) of `bytes`.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Unique per call across processes and threads: pid, time and a counter, hashed.
pub(super) fn publisher_id() -> String {
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

pub(super) use atelier_core::now_millis;
