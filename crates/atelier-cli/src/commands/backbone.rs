//! `atelier backbone predict`: the ImageNet top-5 of each image, a diagnostic that proves
//! pretrained weights were imported right (compare with PyTorch on the same photos).

use std::path::{Path, PathBuf};

use atelier_models::TorchWeights;
use atelier_models::imagenet::Prediction;
use atelier_models::pretrained::{self, EFFICIENTNET_LITE0};
use atelier_models::{Device, EfficientNetLiteConfig, imagenet_top5};
use atelier_train::prefetch::pipelined;
use atelier_vision::decode::{DecodeError, DecodeLimits, DecodedImage, decode_file};
use rayon::prelude::*;
use serde_json::json;

use crate::args::{BackboneAction, BackboneArgs};
use crate::error::{CliError, CliResult};
use crate::output::print_json;

pub async fn run(args: &BackboneArgs, json: bool) -> CliResult {
    let BackboneAction::Predict {
        backbone,
        weights,
        images,
    } = &args.action;
    if backbone != EFFICIENTNET_LITE0.name {
        return Err(CliError::bad_input(format!(
            "--backbone {backbone}: the ImageNet diagnostic needs a backbone with its ImageNet \
             classifier; available: {}",
            EFFICIENTNET_LITE0.name
        )));
    }
    let weights = match weights {
        Some(path) => path.clone(),
        None => pretrained::cached(&EFFICIENTNET_LITE0, &pretrained::default_cache_dir())
            .ok_or_else(|| {
                CliError::bad_input(format!(
                    "no {} weights: run `atelier weights fetch {}` or pass --weights FILE",
                    EFFICIENTNET_LITE0.name, EFFICIENTNET_LITE0.name
                ))
            })?,
    };
    let images = images.clone();
    let (lines, failures) =
        tokio::task::spawn_blocking(move || predict_all(&weights, &images)).await??;
    for line in &lines {
        if json {
            print_json(line)?;
        } else if let Some(top5) = line["top5"].as_array() {
            println!("{}", line["path"].as_str().unwrap_or_default());
            for entry in top5 {
                println!(
                    "  {:>6.3}  {:>4}  {}",
                    entry["probability"].as_f64().unwrap_or_default(),
                    entry["index"],
                    entry["label"].as_str().unwrap_or_default()
                );
            }
        } else {
            println!(
                "{}: {}",
                line["path"].as_str().unwrap_or_default(),
                line["error"]
            );
        }
    }
    if failures > 0 {
        return Err(CliError::bad_input(format!(
            "{failures} of {} images could not be read (see their error lines)",
            lines.len()
        )));
    }
    Ok(())
}

/// Images classified together: the batch of the frozen-feature pass.
const PREDICT_BATCH: usize = atelier_train::features::FEATURE_BATCH;

/// One output line per image, in the order given, and how many images failed. Images go
/// through the network in batches of [`PREDICT_BATCH`], and the next batch decodes (in
/// parallel) while the network runs on this one.
fn predict_all(weights: &Path, paths: &[PathBuf]) -> CliResult<(Vec<serde_json::Value>, usize)> {
    let device = Device::flex();
    let mut model = EfficientNetLiteConfig::lite0()
        .init(&device)
        .map_err(|e| CliError::internal(e.to_string()))?;
    model
        .load_weights(weights)
        .map_err(|e| CliError::bad_input(e.to_string()))?;
    let mut lines = Vec::with_capacity(paths.len());
    let mut failures = 0;
    pipelined(
        paths.chunks(PREDICT_BATCH),
        decode_batch,
        |(batch, decoded)| {
            let good: Vec<_> = decoded.iter().flatten().map(|d| &d.rgb).collect();
            let mut predictions = imagenet_top5(&model, &good, &device)
                .map_err(|e| CliError::internal(e.to_string()))?
                .into_iter();
            for (path, outcome) in batch.iter().zip(&decoded) {
                lines.push(match outcome {
                    Ok(_) => prediction_line(path, &predictions.next().unwrap_or_default()),
                    Err(e) => {
                        failures += 1;
                        json!({"path": path, "ok": false, "error": e.to_string()})
                    }
                });
            }
            Ok::<(), CliError>(())
        },
    )?;
    Ok((lines, failures))
}

/// A batch of image files decoded in parallel, with their paths.
fn decode_batch(paths: &[PathBuf]) -> (&[PathBuf], Vec<Result<DecodedImage, DecodeError>>) {
    let decoded = paths
        .par_iter()
        .map(|path| decode_file(path, &DecodeLimits::default()))
        .collect();
    (paths, decoded)
}

fn prediction_line(path: &Path, top5: &[Prediction]) -> serde_json::Value {
    json!({
        "path": path,
        "top5": top5.iter().map(|p| json!({
            "index": p.class_index,
            "label": p.class_name,
            "probability": p.probability,
        })).collect::<Vec<_>>(),
    })
}
