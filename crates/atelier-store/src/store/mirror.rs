//! Folders mirrored in the store beside the models, under `_mirrors/KEY/` (a key no model name
//! can take): a training run's checkpoints, so that a worker on another machine resumes the
//! run where a dead one left it. Not versioned: the mirror is the folder as of its last upload.
//!
//! An upload sends new and changed files, then the files named "last" (a checkpoint folder's
//! `state.json`, which names the epoch folders it needs, so it never arrives before them), and
//! only then deletes what the folder no longer has. A download writes every file under a
//! temporary name and renames it into place, the "last" files after the others.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};

use super::handle::ModelStore;
use crate::error::{StoreError, StoreResult};

/// The top-level key of mirrored folders (model names start with a letter or digit).
const MIRRORS: &str = "_mirrors";

/// One folder mirrored under a key of the store.
pub struct FolderMirror {
    store: Arc<ModelStore>,
    prefix: ObjectPath,
    /// Files already sent, by relative path: (size, modification time).
    sent: Mutex<HashMap<String, (u64, SystemTime)>>,
}

impl FolderMirror {
    /// The mirror of folders under `key` of `store` (slash-separated, e.g.
    /// `checkpoints/CATALOG/run-7`).
    pub fn new(store: Arc<ModelStore>, key: &str) -> FolderMirror {
        let mut prefix = store.backend.root.clone();
        for part in std::iter::once(MIRRORS).chain(key.split('/').filter(|p| !p.is_empty())) {
            prefix = prefix.join(part);
        }
        FolderMirror {
            store,
            prefix,
            sent: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `folder` (a folder under `root`) to the mirror at the same relative place: new and
    /// changed files first, those named in `last` after them, then deletes mirrored files of
    /// that place that the folder no longer has. Sub-folders for which `skip` is true are
    /// neither sent nor deleted (they are mirrored on their own).
    pub async fn upload(
        &self,
        root: &Path,
        folder: &Path,
        last: &[&str],
        skip: &(dyn Fn(&Path) -> bool + Sync),
    ) -> StoreResult<()> {
        let local = local_files(folder, skip).map_err(|e| StoreError::io(folder, e))?;
        let relative = |path: &Path| relative_key(root, path);
        let (mut first, mut later) = (Vec::new(), Vec::new());
        for (path, size, modified) in &local {
            let key = relative(path)?;
            if self.lock().get(&key) == Some(&(*size, *modified)) {
                continue;
            }
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let batch = if last.contains(&name) {
                &mut later
            } else {
                &mut first
            };
            batch.push((path.clone(), key, *size, *modified));
        }
        for (path, key, size, modified) in first.into_iter().chain(later) {
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(|e| StoreError::io(&path, e))?;
            self.store
                .backend
                .store
                .put(&self.location(&key), PutPayload::from(bytes))
                .await
                .map_err(|e| self.store.error("mirroring a file", e))?;
            self.lock().insert(key, (size, modified));
        }
        let keep: Vec<String> = local
            .iter()
            .map(|(path, _, _)| relative(path))
            .collect::<StoreResult<_>>()?;
        self.delete_missing(root, folder, &keep, skip).await
    }

    /// Deletes mirrored files under `folder` that are not in `keep` (nor under its skipped
    /// sub-folders).
    async fn delete_missing(
        &self,
        root: &Path,
        folder: &Path,
        keep: &[String],
        skip: &(dyn Fn(&Path) -> bool + Sync),
    ) -> StoreResult<()> {
        let place = relative_key(root, folder)?;
        for key in self.keys().await? {
            let inside = place.is_empty() || key.starts_with(&format!("{place}/"));
            let local = root.join(&key);
            let skipped = local
                .ancestors()
                .skip(1)
                .take_while(|a| a.starts_with(folder) && *a != folder)
                .any(skip);
            if inside && !skipped && !keep.contains(&key) {
                self.delete(&key).await?;
            }
        }
        Ok(())
    }

    /// Writes every mirrored file into `root` (created if missing), the files named in `last`
    /// after the others, each under a temporary name first. Returns how many files it wrote.
    pub async fn download(&self, root: &Path, last: &[&str]) -> StoreResult<usize> {
        let mut keys = self.keys().await?;
        keys.sort_by_key(|key| {
            last.iter()
                .any(|l| key.ends_with(&format!("/{l}")) || key == l)
        });
        for key in &keys {
            let target = root.join(key);
            let bytes = self
                .store
                .backend
                .store
                .get(&self.location(key))
                .await
                .map_err(|e| self.store.error("reading a mirrored file", e))?
                .bytes()
                .await
                .map_err(|e| self.store.error("reading a mirrored file", e))?;
            write_atomically(&target, &bytes)
                .await
                .map_err(|e| StoreError::io(&target, e))?;
        }
        Ok(keys.len())
    }

    /// Deletes the whole mirror.
    pub async fn clear(&self) -> StoreResult<()> {
        for key in self.keys().await? {
            self.delete(&key).await?;
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.store
            .backend
            .store
            .delete(&self.location(key))
            .await
            .map_err(|e| self.store.error("deleting a mirrored file", e))?;
        self.lock().remove(key);
        Ok(())
    }

    /// The relative keys of every mirrored file.
    pub async fn keys(&self) -> StoreResult<Vec<String>> {
        let objects: Vec<_> = self
            .store
            .backend
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .map_err(|e| self.store.list_error(e))?;
        Ok(objects
            .iter()
            .filter_map(|object| {
                let parts: Vec<String> = object
                    .location
                    .prefix_match(&self.prefix)?
                    .map(|p| p.as_ref().to_string())
                    .collect();
                (!parts.is_empty()).then(|| parts.join("/"))
            })
            .collect())
    }

    fn location(&self, key: &str) -> ObjectPath {
        key.split('/')
            .fold(self.prefix.clone(), |path, part| path.join(part))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, SystemTime)>> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every file under `folder` except under sub-folders `skip` picks and temporary files
/// (`*.partial` folders, `*.tmp` files), with its size and modification time, in path order.
fn local_files(
    folder: &Path,
    skip: &(dyn Fn(&Path) -> bool + Sync),
) -> std::io::Result<Vec<(PathBuf, u64, SystemTime)>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".partial") || name.ends_with(".tmp") {
                continue;
            }
            let meta = entry.metadata()?;
            if meta.is_dir() {
                if !skip(&path) {
                    pending.push(path);
                }
            } else if meta.is_file() {
                found.insert(path, (meta.len(), meta.modified()?));
            }
        }
    }
    Ok(found
        .into_iter()
        .map(|(path, (size, modified))| (path, size, modified))
        .collect())
}

fn relative_key(root: &Path, path: &Path) -> StoreResult<String> {
    let relative = path.strip_prefix(root).map_err(|_| StoreError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(format!("not under {}", root.display())),
    })?;
    let parts: Vec<&str> = relative
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .collect();
    Ok(parts.join("/"))
}

async fn write_atomically(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let temporary = target.with_extension(format!(
        "{}.tmp",
        target.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    tokio::fs::write(&temporary, bytes).await?;
    tokio::fs::rename(&temporary, target).await
}
