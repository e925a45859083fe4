//! `check`: decode every catalogued image in parallel, record each one's size, and quarantine
//! the files that cannot be used, with a reason a person understands.

use std::path::Path;
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

/// Decodes every image that is not removed (on the blocking threads, in parallel), records
/// the results in one transaction and returns what is quarantined. `total` learns the number
/// of images before decoding starts.
pub async fn check_catalog(
    catalog: &Catalog,
    limits: DecodeLimits,
    total: impl FnOnce(u64),
    progress: CheckProgress,
) -> Result<CheckSummary, AppError> {
    let images = catalog.images_for_check().await?;
    total(images.len() as u64);
    let outcomes = tokio::task::spawn_blocking(move || {
        images
            .par_iter()
            .map(|image| {
                let outcome = check_one(image, &limits);
                progress();
                outcome
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| AppError::Thread(e.to_string()))?;
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

fn check_one(image: &ImageRef, limits: &DecodeLimits) -> CheckOutcome {
    let result = match decode_file(Path::new(&image.uri), limits) {
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
        Err(e) => Err(e.to_string()),
    };
    CheckOutcome {
        id: image.id.clone(),
        result,
    }
}
