//! Reading what the store holds: the names, one name's versions and tags, and which version a
//! reference denotes, with its manifest.

use std::collections::BTreeMap;

use serde::Serialize;

use super::format::Manifest;
use super::handle::ModelStore;
use crate::error::{StoreError, StoreResult};
use crate::reference::{ModelRef, Selector, check_name};

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

impl ModelStore {
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
}
