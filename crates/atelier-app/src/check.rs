//! `check`: decode every catalogued image in parallel, record each one's size, and quarantine
//! the files that cannot be used, with a reason a person understands.

use std::path::PathBuf;
use std::sync::Arc;

use atelier_catalog::{Catalog, CheckOutcome, CheckedImage, ImageRef};
use atelier_vision::decode::{DecodeLimits, decode_file};
use rayon::prelude::*;
use serde::Serialize;

use crate::error::AppError;

/// What a check found.
#[derive(Debug, Serialize)]
pub struct CheckSummary {
    pub checked: usize,
    pub ok: usize,
    /// Every image quarantined now, by this check or before.
    pub quarantined: usize,
    pub quarantined_images: Vec<QuarantineLine>,
}

#[derive(Debug, Serialize)]
pub struct QuarantineLine {
    pub id: String,
    pub uri: String,
    pub reason: String,
}

/// Called once per decoded image (from the decoding threads), for a progress bar.
pub type CheckProgress = Arc<dyn Fn() + Send + Sync>;

/// Images resolved and decoded at a time: objects of one chunk are fetched into the image
/// cache together, and the cache need only hold one chunk.
const CHECK_CHUNK: usize = 256;

/// Decodes every image that is not removed (on the blocking threads, in parallel; images in
/// object storage fetched through the image cache a chunk at a time), records the results in
/// one transaction and returns what is quarantined. `total` learns the number of images
/// before decoding starts.
pub async fn check_catalog(
    catalog: &Catalog,
    limits: DecodeLimits,
    total: impl FnOnce(u64),
    progress: CheckProgress,
) -> Result<CheckSummary, AppError> {
    let images = catalog.images_for_check().await?;
    total(images.len() as u64);
    let resolver = crate::images::resolver();
    let mut outcomes = Vec::with_capacity(images.len());
    for chunk in images.chunks(CHECK_CHUNK) {
        let requests: Vec<(&str, &str)> = chunk
            .iter()
            .map(|image| (image.uri.as_str(), image.id.as_str()))
            .collect();
        let files: Vec<Result<PathBuf, String>> = resolver
            .resolve(&requests)
            .await?
            .into_iter()
            .map(|file| file.map_err(|e| e.to_string()))
            .collect();
        let chunk = chunk.to_vec();
        let progress = progress.clone();
        let checked = tokio::task::spawn_blocking(move || {
            chunk
                .par_iter()
                .zip(files)
                .map(|(image, file)| {
                    let outcome = check_one(image, file, &limits);
                    progress();
                    outcome
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| AppError::Thread(e.to_string()))?;
        outcomes.extend(checked);
    }
    catalog.record_checks(&outcomes).await?;
    let quarantined = catalog.quarantined().await?;
    Ok(CheckSummary {
        checked: outcomes.len(),
        ok: outcomes.iter().filter(|o| o.result.is_ok()).count(),
        quarantined: quarantined.len(),
        quarantined_images: quarantined
            .into_iter()
            .map(|q| QuarantineLine {
                id: q.id,
                uri: q.uri,
                reason: q.reason,
            })
            .collect(),
    })
}

/// Decodes one image from its local `file` (or records why there is none).
fn check_one(
    image: &ImageRef,
    file: Result<PathBuf, String>,
    limits: &DecodeLimits,
) -> CheckOutcome {
    let decoded = file.and_then(|path| decode_file(&path, limits).map_err(|e| e.to_string()));
    let result = match decoded {
        // The id is the hash of the bytes seen at import; other bytes now mean the file was
        // replaced, and its labels may no longer describe it.
        Ok(decoded) if decoded.sha256 != image.id => Err(
            "file content changed since import (its SHA-256 differs); run `atelier import` again"
                .to_string(),
        ),
        Ok(decoded) => Ok(CheckedImage {
            width: decoded.rgb.width(),
            height: decoded.rgb.height(),
        }),
        Err(reason) => Err(reason),
    };
    CheckOutcome {
        id: image.id.clone(),
        result,
    }
}
