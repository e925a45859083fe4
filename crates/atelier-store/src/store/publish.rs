//! Publishing a flat folder as the next version of a name: the version is claimed with a
//! create-if-absent put, the parts are uploaded, and the manifest is written last, also
//! create-if-absent, so that the version becomes visible only once complete.

use std::path::Path;

use object_store::{PutMode, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::format::{
    CLAIM_FILE, MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION, Manifest, Part,
    now_millis, publisher_id, sha256_hex, version_path,
};
use super::handle::ModelStore;
use crate::error::{StoreError, StoreResult};
use crate::reference::check_name;

/// Versions skipped because other publishers claimed them before giving up.
const MAX_CLAIM_ATTEMPTS: u64 = 1000;
/// Whole publish attempts when a manifest slot turns out to be taken despite our claim (only
/// possible on a store whose create-if-absent is not atomic).
const MAX_PUBLISH_ATTEMPTS: usize = 5;

/// Progress of a publish, for display and for tests that interrupt it.
#[derive(Debug, Clone, Copy)]
pub enum PublishStep<'a> {
    Claimed { version: u64 },
    Uploaded { part: &'a str, bytes: u64 },
}

#[derive(Serialize, Deserialize)]
struct Claim {
    publisher: String,
    created_at: i64,
}

impl ModelStore {
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
                sha256: sha256_hex(bytes),
            })
            .collect();
        let publisher = publisher_id();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let version = self.claim(name, &publisher).await?;
            on_step(PublishStep::Claimed { version });
            self.upload_parts(name, version, &files, &mut on_step)
                .await?;
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
            if self.write_manifest(&manifest).await? {
                return Ok(manifest);
            }
            if attempts >= MAX_PUBLISH_ATTEMPTS {
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
            tracing::warn!(
                "{name}@{version} was published by another writer despite our claim; \
                 publishing again as a later version"
            );
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
            let path = version_path(&self.backend.root, name, version).join(CLAIM_FILE);
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

    /// Uploads the files of a claimed version, reporting each to `on_step`.
    async fn upload_parts(
        &self,
        name: &str,
        version: u64,
        files: &[(String, Vec<u8>)],
        on_step: &mut (impl FnMut(PublishStep<'_>) + Send),
    ) -> StoreResult {
        let version_path = version_path(&self.backend.root, name, version);
        for (part, bytes) in files {
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
        Ok(())
    }

    /// Writes the manifest with a create-if-absent put, which makes the version visible.
    /// `Ok(false)` when another writer's manifest already holds that version.
    async fn write_manifest(&self, manifest: &Manifest) -> StoreResult<bool> {
        let (name, version) = (&manifest.name, manifest.version);
        let bytes = serde_json::to_vec_pretty(manifest).expect("a manifest serialises");
        let written = self
            .backend
            .store
            .put_opts(
                &version_path(&self.backend.root, name, version).join(MANIFEST_FILE),
                PutPayload::from(bytes),
                PutMode::Create.into(),
            )
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.error(&format!("writing the manifest of {name}@{version}"), e)),
        }
    }
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
