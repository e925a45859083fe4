//! Removing a version: its manifest first, so that it disappears at once, then its parts.

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;

use super::format::{MANIFEST_FILE, Manifest, version_path};
use super::handle::ModelStore;
use crate::error::{StoreError, StoreResult};

impl ModelStore {
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
        let version_path = version_path(&self.backend.root, name, version);
        self.delete(&version_path.clone().join(MANIFEST_FILE))
            .await?;
        for part in &manifest.parts {
            self.delete(&version_path.clone().join(part.name.as_str()))
                .await?;
        }
        Ok(manifest)
    }

    /// Deletes one object; one that is already gone counts as deleted.
    async fn delete(&self, location: &ObjectPath) -> StoreResult {
        match self.backend.store.delete(location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(&format!("deleting {location}"), e)),
        }
    }
}
