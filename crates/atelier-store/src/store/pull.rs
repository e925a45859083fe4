//! Pulling: downloading a version into the local cache (one folder per manifest hash, created
//! complete by rename) or finding it there, and reading single parts, every part verified
//! against the manifest's size and SHA-256.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use sha2::{Digest, Sha256};

use super::format::{Manifest, Part, publisher_id, sha256_hex, version_path};
use super::handle::ModelStore;
use crate::error::{StoreError, StoreResult};
use crate::reference::ModelRef;

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

impl ModelStore {
    /// Downloads (or finds in the cache) the model a reference denotes, verifying every part.
    pub async fn pull(&self, reference: &ModelRef) -> StoreResult<Pulled> {
        let version = self.resolve(reference).await?;
        let (bytes, manifest) = self.manifest_bytes(&reference.name, version).await?;
        let manifest_sha256 = sha256_hex(&bytes);
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

    /// Downloads every part of a version into the folder `into`, verified and synced.
    async fn download_parts(&self, manifest: &Manifest, into: &Path) -> StoreResult {
        let model = manifest.reference().to_string();
        let version_path = version_path(&self.backend.root, &manifest.name, manifest.version);
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
        let version_path = version_path(&self.backend.root, &manifest.name, manifest.version);
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
}

/// Checks a part's size and SHA-256 against the manifest.
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
