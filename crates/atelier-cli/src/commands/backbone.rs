//! `atelier backbone predict`: the ImageNet top-5 of each image, a diagnostic that proves
//! pretrained weights were imported right (compare with PyTorch on the same photos).

use std::path::{Path, PathBuf};

use atelier_models::TorchWeights;
use atelier_models::pretrained::{self, EFFICIENTNET_LITE0};
use atelier_models::{Device, EfficientNetLiteConfig, imagenet_top5};
use atelier_vision::decode::{DecodeLimits, decode_file};
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

/// One output line per image, in the order given, and how many images failed.
fn predict_all(weights: &Path, paths: &[PathBuf]) -> CliResult<(Vec<serde_json::Value>, usize)> {
    let device = Device::flex();
    let mut model = EfficientNetLiteConfig::lite0()
        .init(&device)
        .map_err(|e| CliError::internal(e.to_string()))?;
    model
        .load_weights(weights)
        .map_err(|e| CliError::bad_input(e.to_string()))?;

    let decoded: Vec<_> = paths
        .iter()
        .map(|path| decode_file(path, &DecodeLimits::default()))
        .collect();
    let good: Vec<_> = decoded.iter().flatten().map(|d| &d.rgb).collect();
    let mut predictions = imagenet_top5(&model, &good, &device)
        .map_err(|e| CliError::internal(e.to_string()))?
        .into_iter();

    let mut failures = 0;
    let lines = paths
        .iter()
        .zip(&decoded)
        .map(|(path, outcome)| match outcome {
            Ok(_) => {
                let top5 = predictions.next().unwrap_or_default();
                json!({
                    "path": path,
                    "top5": top5.iter().map(|p| json!({
                        "index": p.class_index,
                        "label": p.class_name,
                        "probability": p.probability,
                    })).collect::<Vec<_>>(),
                })
            }
            Err(e) => {
                failures += 1;
                json!({"path": path, "ok": false, "error": e.to_string()})
            }
        })
        .collect();
    Ok((lines, failures))
}
