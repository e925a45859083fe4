//! `atelier check`: decode every catalogued image in parallel and quarantine unusable files.

use std::path::Path;

use atelier_catalog::{Catalog, CheckOutcome, CheckedImage, ImageRef};
use atelier_vision::decode::{DecodeLimits, decode_file};
use rayon::prelude::*;
use serde::Serialize;

use crate::args::CheckArgs;
use crate::error::CliResult;
use crate::output::print_json;
use crate::progress;

#[derive(Debug, Serialize)]
pub struct CheckSummary {
    pub checked: usize,
    pub ok: usize,
    pub quarantined: usize,
    pub quarantined_images: Vec<QuarantineLine>,
}

#[derive(Debug, Serialize)]
pub struct QuarantineLine {
    pub id: String,
    pub uri: String,
    pub reason: String,
}

pub async fn run(catalog: &Catalog, args: &CheckArgs, json: bool) -> CliResult {
    let limits = DecodeLimits {
        max_side: args.max_side,
        max_pixels: args.max_pixels,
        min_side: args.min_side,
        ..DecodeLimits::default()
    };
    let summary = check(catalog, limits, json).await?;
    if json {
        return print_json(&summary);
    }
    println!(
        "checked {} images: {} usable, {} quarantined",
        summary.checked, summary.ok, summary.quarantined
    );
    for line in &summary.quarantined_images {
        println!("  quarantined {}  {}", line.uri, line.reason);
    }
    Ok(())
}

pub async fn check(catalog: &Catalog, limits: DecodeLimits, json: bool) -> CliResult<CheckSummary> {
    let images = catalog.images_for_check().await?;
    let bar = progress::bar(images.len() as u64, "checking", json);
    let bar_for_workers = bar.clone();
    let outcomes = tokio::task::spawn_blocking(move || {
        images
            .par_iter()
            .map(|image| {
                let outcome = check_one(image, &limits);
                bar_for_workers.inc(1);
                outcome
            })
            .collect::<Vec<_>>()
    })
    .await?;
    bar.finish_and_clear();
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
