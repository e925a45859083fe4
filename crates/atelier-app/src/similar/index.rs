//! Keeping a similarity run's stored embeddings (and its approximate index files) in step with
//! the catalogue.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use atelier_catalog::Catalog;
use atelier_train::dress_boxes::SureBox;
use serde::Serialize;

use crate::ann::IndexFiles;
use crate::error::AppError;
use crate::similarity::{embedding_key, off_the_shelf_key, similarity_run, store_vectors};

use super::embed::embed_files;

/// Brings `key`'s approximate index in step when the catalogue searches in this process and
/// the run is large enough for one; says whether it did.
async fn refresh_approximate(
    catalog: &Catalog,
    files: Option<&IndexFiles>,
    key: &str,
) -> Result<bool, AppError> {
    if catalog.searches_vectors() {
        return Ok(false);
    }
    let Some(files) = files else {
        return Ok(false);
    };
    let stored = catalog.embedded_image_ids(key).await?;
    let Some(dim) = catalog.embedding_dim(key).await? else {
        return Ok(false);
    };
    if !files.wants(stored.len()) {
        return Ok(false);
    }
    files.open(catalog, key, dim, &stored).await?;
    Ok(true)
}

/// What [`index`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IndexReport {
    pub run: i64,
    /// Active photos embedded now (new since the run, or back from quarantine).
    pub added: usize,
    /// Stored embeddings of photos that are no longer active, deleted.
    pub removed: usize,
    /// Embeddings kept as they were.
    pub kept: usize,
    /// Whether the run's approximate indexes were brought in step too.
    pub approximate_index: bool,
}

/// Brings a similarity run's stored embeddings in step with the catalogue: embeds the active
/// photos that have none (with the run's model) and deletes those of photos that are no longer
/// active; with `files`, the run's approximate indexes follow (when the run is large enough
/// for them). Labels are read at query time, so a retag needs nothing here.
pub async fn index(
    catalog: &Catalog,
    run: Option<i64>,
    files: Option<&IndexFiles>,
) -> Result<IndexReport, AppError> {
    let record = similarity_run(catalog, run).await?;
    let (key, plain_key) = (embedding_key(record.id), off_the_shelf_key(record.id));
    let active: HashMap<String, String> = catalog
        .training_images(&[])
        .await?
        .into_iter()
        .map(|image| (image.id, image.uri))
        .collect();
    let embedded: HashSet<String> = catalog
        .embedded_image_ids(&key)
        .await?
        .into_iter()
        .collect();
    let stale: Vec<String> = embedded
        .iter()
        .filter(|id| !active.contains_key(*id))
        .cloned()
        .collect();
    let mut missing: Vec<(&String, &String)> = active
        .iter()
        .filter(|(id, _)| !embedded.contains(*id))
        .collect();
    missing.sort();
    if !missing.is_empty() {
        let paths: Vec<PathBuf> = missing.iter().map(|(_, uri)| PathBuf::from(uri)).collect();
        let photos = embed_files(&record, &paths).await?;
        let ids = missing.iter().map(|(id, _)| (*id).clone());
        let trained: Vec<_> = ids
            .clone()
            .zip(photos.iter().map(|p| p.embedding.clone()))
            .collect();
        let plain: Vec<_> = ids
            .zip(photos.iter().map(|p| p.off_the_shelf.clone()))
            .collect();
        let located: Vec<_> = missing
            .iter()
            .zip(&photos)
            .filter_map(|((id, _), photo)| {
                let sure = SureBox {
                    pixels: photo.dress_box,
                    foreground: photo.foreground?,
                    agreement: photo.agreement?,
                };
                Some(((*id).clone(), sure))
            })
            .collect();
        store_vectors(catalog, &key, &trained).await?;
        store_vectors(catalog, &plain_key, &plain).await?;
        crate::boxes::store_located(catalog, record.id, located.into_iter()).await?;
    }
    catalog.delete_embeddings(&key, &stale).await?;
    catalog.delete_embeddings(&plain_key, &stale).await?;
    let mut approximate_index = false;
    for key in [&key, &plain_key] {
        approximate_index |= refresh_approximate(catalog, files, key).await?;
    }
    Ok(IndexReport {
        approximate_index,
        run: record.id,
        added: missing.len(),
        removed: stale.len(),
        kept: embedded.len() - stale.len(),
    })
}
