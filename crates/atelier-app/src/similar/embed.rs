//! Running a similarity run's saved model on photos: embedding files and uploads, locating
//! the dress, and the cell-by-cell agreement that explains a match.

use std::path::{Path, PathBuf};

use atelier_catalog::{Catalog, RunRecord};
use atelier_models::Device;
use atelier_train::DeviceChoice;
use atelier_train::device::device_for;
use atelier_train::features::load_rgb;
use atelier_train::hubness::Hubness;
use atelier_train::similarity_model::{
    CellAgreement, PhotoEmbedding, SimilarityManifest, SimilarityNet, load_similarity_manifest,
    load_similarity_model,
};
use atelier_vision::decode::{DecodeLimits, decode_bytes};
use image::RgbImage;
use serde::Serialize;

use crate::error::AppError;
use crate::similarity::similarity_run;

/// Where each result photo agrees with the query photo, cell by cell (each result also
/// compared mirrored), with the run's saved model.
pub(super) async fn explain(
    record: &RunRecord,
    query: PathBuf,
    results: Vec<PathBuf>,
) -> Result<Vec<CellAgreement>, AppError> {
    let model_dir = model_dir(record).await?;
    tokio::task::spawn_blocking(move || {
        let (device, manifest, net) = cpu_model(&model_dir)?;
        let query = load_rgb(&query)?;
        let mut agreements = Vec::with_capacity(results.len());
        for chunk in results.chunks(8) {
            let photos = decoded(chunk)?;
            agreements.extend(net.agreements(&manifest, &query, &photos, &device));
        }
        Ok::<_, AppError>(agreements)
    })
    .await
    .map_err(|e| AppError::Thread(e.to_string()))?
}

/// The CPU and a similarity run's saved model on it.
fn cpu_model(model_dir: &Path) -> Result<(Device, SimilarityManifest, SimilarityNet), AppError> {
    model_on(model_dir, DeviceChoice::Cpu)
}

/// A similarity run's saved model on `choice`'s device, and the device.
fn model_on(
    model_dir: &Path,
    choice: DeviceChoice,
) -> Result<(Device, SimilarityManifest, SimilarityNet), AppError> {
    let device = device_for(choice)?;
    let (manifest, net) = load_similarity_model(model_dir, &device)?;
    Ok((device, manifest, net))
}

/// The photo files `paths`, decoded.
fn decoded(paths: &[PathBuf]) -> Result<Vec<RgbImage>, AppError> {
    paths.iter().map(|p| Ok(load_rgb(p)?)).collect()
}

/// The run's model folder on this machine (fetched from the store when a worker elsewhere
/// trained it).
async fn model_dir(record: &RunRecord) -> Result<PathBuf, AppError> {
    let model_ref = record
        .model_ref
        .clone()
        .map(PathBuf::from)
        .ok_or_else(|| AppError::Invalid(format!("run {} saved no model", record.id)))?;
    crate::checkpoint_mirror::local_model(&model_ref).await
}

/// How the run's saved model corrects its embeddings for hubness (`None`: not at all).
pub(super) async fn saved_hubness(record: &RunRecord) -> Result<Option<Hubness>, AppError> {
    let model_dir = model_dir(record).await?;
    tokio::task::spawn_blocking(move || Ok(load_similarity_manifest(&model_dir)?.hubness))
        .await
        .map_err(|e| AppError::Thread(e.to_string()))?
}

/// Embeds one photo file with the run's saved model.
pub async fn embed_file(record: &RunRecord, path: &Path) -> Result<PhotoEmbedding, AppError> {
    let embedded = embed_files(record, &[path.to_path_buf()], DeviceChoice::Cpu).await?;
    Ok(embedded
        .into_iter()
        .next()
        .expect("one photo, one embedding"))
}

/// Embeds photo files with the run's saved model on `device`, off the async runtime.
pub async fn embed_files(
    record: &RunRecord,
    paths: &[PathBuf],
    device: DeviceChoice,
) -> Result<Vec<PhotoEmbedding>, AppError> {
    let model_dir = model_dir(record).await?;
    let paths = paths.to_vec();
    tokio::task::spawn_blocking(move || {
        let (device, manifest, net) = model_on(&model_dir, device)?;
        let mut embedded = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(16) {
            embedded.extend(net.embed_photos(&manifest, &decoded(chunk)?, &device));
        }
        Ok::<_, AppError>(embedded)
    })
    .await
    .map_err(|e| AppError::Thread(e.to_string()))?
}

/// An uploaded photo, decoded by the tolerant decoder with its limits (off the async
/// runtime): a file that is no image, is damaged, or would decode to more pixels than the
/// limits allow is refused with the reason. Nothing is stored.
pub async fn decode_upload(bytes: Vec<u8>) -> Result<RgbImage, AppError> {
    tokio::task::spawn_blocking(move || {
        decode_bytes(&bytes, &DecodeLimits::default())
            .map(|decoded| decoded.rgb)
            .map_err(|e| AppError::Invalid(format!("the uploaded file cannot be used: {e}")))
    })
    .await
    .map_err(|e| AppError::Thread(e.to_string()))?
}

/// A decoded photo's embeddings with the run's saved model, off the async runtime.
pub async fn embed_photo(record: &RunRecord, photo: RgbImage) -> Result<PhotoEmbedding, AppError> {
    let model_dir = model_dir(record).await?;
    tokio::task::spawn_blocking(move || {
        let (device, manifest, net) = cpu_model(&model_dir)?;
        let embedded = net.embed_photos(&manifest, &[photo], &device);
        Ok::<_, AppError>(
            embedded
                .into_iter()
                .next()
                .expect("one photo, one embedding"),
        )
    })
    .await
    .map_err(|e| AppError::Thread(e.to_string()))?
}

/// One photo's located dress, or why the photo could not be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocatedPhoto {
    pub path: PathBuf,
    pub outcome: Result<PhotoEmbedding, String>,
}

/// Locates the dress in each photo file with the run's model; a file that cannot be read gets
/// its reason instead, and the others go on.
pub async fn locate_files(
    catalog: &Catalog,
    run: Option<i64>,
    paths: &[PathBuf],
) -> Result<Vec<LocatedPhoto>, AppError> {
    let record = similarity_run(catalog, run).await?;
    let local = crate::images::resolver().localise_given(paths).await?;
    let readable: Vec<Result<(), String>> = local
        .iter()
        .map(|(path, unreadable)| match unreadable {
            Some(reason) => Err(reason.clone()),
            None => load_rgb(path).map(|_| ()).map_err(|e| e.to_string()),
        })
        .collect();
    let good: Vec<PathBuf> = local
        .iter()
        .zip(&readable)
        .filter(|(_, read)| read.is_ok())
        .map(|((path, _), _)| path.clone())
        .collect();
    let mut embedded = embed_files(&record, &good, DeviceChoice::Cpu)
        .await?
        .into_iter();
    Ok(paths
        .iter()
        .zip(readable)
        .map(|(path, read)| LocatedPhoto {
            path: path.clone(),
            outcome: read.map(|()| embedded.next().expect("one embedding per readable photo")),
        })
        .collect())
}
