//! Tags: `NAME/tags/TAG.json` names a version; listing them, reading one, and pointing one at a
//! version (`promote`).

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutPayload};
use serde::{Deserialize, Serialize};

use super::format::{TAGS_DIR, name_path, now_millis, tag_path};
use super::handle::ModelStore;
use crate::error::{StoreError, StoreResult};
use crate::reference::check_tag;

#[derive(Serialize, Deserialize)]
struct TagRecord {
    version: u64,
    updated_at: i64,
}

impl ModelStore {
    /// The tags of `name` and the versions they point at.
    pub async fn tags(&self, name: &str) -> StoreResult<BTreeMap<String, u64>> {
        let prefix = name_path(&self.backend.root, name).join(TAGS_DIR);
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
                &tag_path(&self.backend.root, name, tag),
                PutPayload::from(record),
                PutMode::Overwrite.into(),
            )
            .await
            .map_err(|e| self.error(&format!("setting tag {name}:{tag}"), e))?;
        Ok(())
    }

    /// The version `name:tag` points at, or `None` when there is no such tag.
    pub(super) async fn read_tag(&self, name: &str, tag: &str) -> StoreResult<Option<u64>> {
        let location = tag_path(&self.backend.root, name, tag);
        match self.backend.store.get(&location).await {
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
}
