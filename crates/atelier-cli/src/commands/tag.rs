//! `atelier tag PATH...`: tags files, folders (recursively) or paths read from stdin with a
//! stored model. A file that cannot be read gets an error record; the others go on, and the
//! exit code is 2 when any failed.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use atelier_train::DeviceChoice;
use atelier_train::tagger::Tagger;
use serde_json::{Map, Value, json};

use atelier_app::models;

use crate::args::{GlobalArgs, TagArgs};
use crate::error::{CliError, CliResult};
use crate::output::print_json;

const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "jfif",
];

pub async fn run(args: &TagArgs, global: &GlobalArgs) -> CliResult {
    let catalog = atelier_catalog::Catalog::open_existing(global.db_url()).await?;
    let model_dir =
        models::resolve_model(args.model.as_deref(), &global.store, catalog.as_ref()).await?;
    let given = expand_paths(&args.paths)?;
    let local = atelier_app::images::resolver()
        .localise_given(&given)
        .await?;
    let paths: Vec<PathBuf> = local.iter().map(|(path, _)| path.clone()).collect();
    let batch_size = args.batch_size;
    let json = global.json;
    let (tagger, mut results) = tag_files(&model_dir, &paths, batch_size, args.device).await?;
    // Each result names the path as given; an object that could not be fetched says why.
    for (result, (given, (_, unreadable))) in results.iter_mut().zip(given.iter().zip(local)) {
        result.path = given.clone();
        if let Some(reason) = unreadable {
            result.outcome = Err(reason);
        }
    }
    let mut failed = 0;
    for result in &results {
        match &result.outcome {
            Ok(tags) => {
                if json {
                    let facets: Map<String, Value> = tags
                        .iter()
                        .map(|tag| {
                            let scores: Map<String, Value> = tag
                                .scores
                                .iter()
                                .map(|(label, p)| (label.clone(), json!(p)))
                                .collect();
                            (
                                tag.facet.clone(),
                                json!({"label": tag.label, "confidence": tag.confidence, "scores": scores}),
                            )
                        })
                        .collect();
                    print_json(&json!({"path": result.path, "ok": true, "facets": facets}))?;
                } else {
                    let summary: Vec<String> = tags
                        .iter()
                        .map(|t| format!("{}={} ({:.2})", t.facet, t.label, t.confidence))
                        .collect();
                    println!("{}: {}", result.path.display(), summary.join(", "));
                }
            }
            Err(error) => {
                failed += 1;
                if json {
                    print_json(&json!({"path": result.path, "ok": false, "error": error}))?;
                } else {
                    println!("{}: error: {error}", result.path.display());
                }
            }
        }
    }
    if !json {
        eprintln!(
            "tagged {} of {} images with {} (run {})",
            results.len() - failed,
            results.len(),
            tagger.manifest.backbone,
            tagger.manifest.run.map_or("-".into(), |r| r.to_string())
        );
    }
    if failed > 0 {
        return Err(CliError::bad_input(format!(
            "{failed} of {} files could not be tagged (see their error records)",
            results.len()
        )));
    }
    Ok(())
}

/// Loads the model in `model_dir` and tags `paths` in batches of `batch_size`, off the async
/// runtime; returns the loaded tagger (for its manifest) and one result per path.
pub async fn tag_files(
    model_dir: &Path,
    paths: &[PathBuf],
    batch_size: usize,
    device: DeviceChoice,
) -> CliResult<(Tagger, Vec<atelier_train::tagger::TagResult>)> {
    let (model_dir, paths) = (model_dir.to_path_buf(), paths.to_vec());
    let tagged = tokio::task::spawn_blocking(move || {
        let device = atelier_train::device::device_for(device)?;
        Tagger::load(&model_dir, &device).map(|tagger| {
            let results = tagger.tag(&paths, batch_size);
            (tagger, results)
        })
    })
    .await
    .map_err(|e| CliError::internal(format!("tagging thread failed: {e}")))?
    .map_err(CliError::from)?;
    Ok(tagged)
}

/// Files as given, folders searched recursively for image files (sorted), `-` read from stdin;
/// `s3://` objects pass as they are.
fn expand_paths(inputs: &[PathBuf]) -> CliResult<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for input in inputs {
        if input.as_os_str() == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let line = line.trim();
                if !line.is_empty() {
                    paths.push(PathBuf::from(line));
                }
            }
        } else if input.is_dir() {
            let mut found = Vec::new();
            collect_images(input, &mut found)?;
            found.sort();
            paths.extend(found);
        } else {
            // Missing or unreadable files get their error record when tagged.
            paths.push(input.clone());
        }
    }
    Ok(paths)
}

fn collect_images(dir: &Path, found: &mut Vec<PathBuf>) -> CliResult {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect_images(&path, found)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            found.push(path);
        }
    }
    Ok(())
}
