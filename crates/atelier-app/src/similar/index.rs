//! Keeping a similarity run's stored embeddings (and its approximate index files) in step with
//! the catalogue.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use atelier_catalog::{Catalog, RunRecord};
use atelier_train::DeviceChoice;
use atelier_train::device::device_for;
use atelier_train::dress_boxes::SureBox;
use atelier_train::hubness::{self, neighbour_means};
use serde::Serialize;

use crate::ann::IndexFiles;
use crate::error::AppError;
use crate::similarity::{
    bias_key, embedding_key, off_the_shelf_key, similarity_run, store_biases, store_vectors,
};

use super::embed::{embed_files, saved_hubness};

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

/// An image id and its vector.
type IdVector = (String, Vec<f32>);

/// Stores the hubness biases of the new photos' trained and off-the-shelf vectors (in that
/// order), where the run's model corrects for hubness. Called before the vectors are stored, so
/// that a search that sees them also sees their biases.
async fn store_new_biases(
    catalog: &Catalog,
    record: &RunRecord,
    new: [(&str, &[IdVector]); 2],
) -> Result<(), AppError> {
    let Some(hubness) = saved_hubness(record).await? else {
        return Ok(());
    };
    let means = [hubness.trained_mean, hubness.off_the_shelf_mean];
    for ((key, vectors), mean) in new.into_iter().zip(means) {
        let biases = new_biases(catalog, key, vectors, hubness.neighbours, mean).await?;
        store_biases(catalog, key, biases.into_iter()).await?;
    }
    Ok(())
}

/// The hubness biases of `new` photos' vectors under `key`: each photo's mean cosine with its
/// `neighbours` nearest among the active photos' stored vectors and the other new ones, against
/// the catalogue mean the run measured. (The photos already stored keep their biases: a full
/// retrain measures them all again.)
async fn new_biases(
    catalog: &Catalog,
    key: &str,
    new: &[IdVector],
    neighbours: usize,
    catalogue_mean: f32,
) -> Result<Vec<(String, f32)>, AppError> {
    let replaced: HashSet<&str> = new.iter().map(|(id, _)| id.as_str()).collect();
    let mut rows: Vec<Vec<f32>> = catalog
        .embeddings(key)
        .await?
        .into_iter()
        .filter(|(id, _)| !replaced.contains(id.as_str()))
        .map(|(_, vector)| vector)
        .collect();
    let first_new = rows.len();
    rows.extend(new.iter().map(|(_, vector)| vector.clone()));
    let means = tokio::task::spawn_blocking(move || {
        let device = device_for(DeviceChoice::Cpu)?;
        let of: Vec<usize> = (first_new..rows.len()).collect();
        Ok::<_, AppError>(neighbour_means(&rows, &of, neighbours, &device))
    })
    .await
    .map_err(|e| AppError::Thread(e.to_string()))??;
    Ok(new
        .iter()
        .zip(means)
        .map(|((id, _), m)| (id.clone(), hubness::bias(m, catalogue_mean)))
        .collect())
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
/// for them). Labels are read at query time, so a retag needs nothing here. The photos are
/// embedded on `device`.
pub async fn index(
    catalog: &Catalog,
    run: Option<i64>,
    files: Option<&IndexFiles>,
    device: DeviceChoice,
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
        let paths = local_files(&missing).await?;
        let photos = embed_files(&record, &paths, device).await?;
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
        let new = [
            (key.as_str(), &trained[..]),
            (plain_key.as_str(), &plain[..]),
        ];
        store_new_biases(catalog, &record, new).await?;
        store_vectors(catalog, &key, &trained).await?;
        store_vectors(catalog, &plain_key, &plain).await?;
        crate::boxes::store_located(catalog, record.id, located.into_iter()).await?;
    }
    for key in [&key, &plain_key] {
        catalog.delete_embeddings(key, &stale).await?;
        catalog.delete_embeddings(&bias_key(key), &stale).await?;
    }
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

/// A local file for each `(id, uri)` photo to embed (objects fetched into the image cache); a
/// photo that cannot be read stops the indexing, naming it.
async fn local_files(photos: &[(&String, &String)]) -> Result<Vec<PathBuf>, AppError> {
    let images: Vec<(&str, &str)> = photos
        .iter()
        .map(|(id, uri)| (uri.as_str(), id.as_str()))
        .collect();
    let resolved = crate::images::resolver().resolve(&images).await?;
    resolved
        .into_iter()
        .map(|path| path.map_err(AppError::from))
        .collect()
}
