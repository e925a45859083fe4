//! `atelier tag PATH...`: tags files, folders (recursively) or paths read from stdin with a
//! stored model. A file that cannot be read gets an error record; the others go on, and the
//! exit code is 2 when any failed.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use atelier_models::Device;
use atelier_train::tagger::Tagger;
use serde_json::{Map, Value, json};

use crate::args::{GlobalArgs, TagArgs};
use crate::commands::train::{model_store_dir, train_error};
use crate::error::{CliError, CliResult};
use crate::output::print_json;

const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "jfif",
];

pub async fn run(args: &TagArgs, global: &GlobalArgs) -> CliResult {
    let model_dir = resolve_model(args.model.as_deref(), &global.store, global.db_url()).await?;
    let paths = expand_paths(&args.paths)?;
    let batch_size = args.batch_size;
    let json = global.json;
    let (tagger, results) = tag_files(&model_dir, &paths, batch_size).await?;
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
) -> CliResult<(Tagger, Vec<atelier_train::tagger::TagResult>)> {
    let (model_dir, paths) = (model_dir.to_path_buf(), paths.to_vec());
    let tagged = tokio::task::spawn_blocking(move || {
        Tagger::load(&model_dir, &Device::flex()).map(|tagger| {
            let results = tagger.tag(&paths, batch_size);
            (tagger, results)
        })
    })
    .await
    .map_err(|e| CliError::internal(format!("tagging thread failed: {e}")))?
    .map_err(train_error)?;
    Ok(tagged)
}

/// `--model`: a model folder; `N` or `run-N`, run N of the catalogue (`--db`) or a `run-N`
/// folder of a local store; a published NAME, NAME@VERSION or NAME:TAG (pulled into the cache,
/// verified); or, by default, the newest completed run's model in the catalogue (else the
/// newest `run-N` folder of the store).
pub async fn resolve_model(
    reference: Option<&str>,
    store: &str,
    db_url: &str,
) -> CliResult<PathBuf> {
    let store_dir = model_store_dir(store)?;
    let catalog = atelier_catalog::Catalog::open_existing(db_url).await?;
    let Some(reference) = reference else {
        if let Some(dir) = newest_catalog_model(catalog.as_ref()).await? {
            return Ok(dir);
        }
        return newest_model(&store_dir).ok_or_else(|| {
            CliError::bad_input(format!(
                "no model in the catalogue or in {}: train one with `atelier train facets` or \
                 pass --model",
                store_dir.display()
            ))
        });
    };
    let as_path = Path::new(reference);
    if as_path.join(atelier_train::artifact::MODEL_FILE).exists() {
        return Ok(as_path.to_path_buf());
    }
    let run = reference
        .strip_prefix("run-")
        .unwrap_or(reference)
        .parse::<i64>()
        .ok();
    if let (Some(run), Some(catalog)) = (run, &catalog)
        && let Some(dir) = run_model(catalog, run).await?
    {
        return Ok(dir);
    }
    let name = run.map_or_else(|| reference.to_string(), |run| format!("run-{run}"));
    let dir = store_dir.join(&name);
    if dir.join(atelier_train::artifact::MODEL_FILE).exists() {
        return Ok(dir);
    }
    let not_found = |detail: String| {
        CliError::bad_input(format!(
            "--model {reference}: no model folder at {reference} or {}, no completed run with \
             that number in the catalogue, {detail}",
            dir.display()
        ))
    };
    let published: atelier_store::ModelRef = reference.parse().map_err(|e| {
        not_found(format!(
            "and not a published model (NAME, NAME@VERSION or NAME:TAG): {e}"
        ))
    })?;
    match crate::commands::models::pull_model(store, &published).await {
        Err(e) if e.exit_code() == 2 => Err(not_found(format!("and {e}"))),
        other => other,
    }
}

/// The model folder of completed run `run`, if the catalogue has one that still exists.
async fn run_model(catalog: &atelier_catalog::Catalog, run: i64) -> CliResult<Option<PathBuf>> {
    Ok(catalog
        .run(run)
        .await?
        .filter(|r| r.status == atelier_catalog::RunStatus::Completed)
        .and_then(|r| r.model_ref)
        .map(PathBuf::from)
        .filter(|dir| dir.join(atelier_train::artifact::MODEL_FILE).exists()))
}

/// The newest completed run's model folder that still exists.
async fn newest_catalog_model(
    catalog: Option<&atelier_catalog::Catalog>,
) -> CliResult<Option<PathBuf>> {
    let Some(catalog) = catalog else {
        return Ok(None);
    };
    for record in catalog.runs().await? {
        if let Some(dir) = run_model(catalog, record.id).await? {
            return Ok(Some(dir));
        }
    }
    Ok(None)
}

/// The newest model folder of a local store without a catalogue to ask: the most recently
/// modified `run-N` folder, at its top (older layouts) or in a catalogue's folder below it.
fn newest_model(store_dir: &Path) -> Option<PathBuf> {
    let run_folders = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("run-"))
                    && path.join(atelier_train::artifact::MODEL_FILE).exists()
            })
            .collect()
    };
    let mut candidates = run_folders(store_dir);
    for entry in std::fs::read_dir(store_dir).ok()?.flatten() {
        if entry.path().is_dir() {
            candidates.extend(run_folders(&entry.path()));
        }
    }
    candidates.into_iter().max_by_key(|dir| {
        std::fs::metadata(dir.join(atelier_train::artifact::MODEL_FILE))
            .and_then(|m| m.modified())
            .ok()
    })
}

/// Files as given, folders searched recursively for image files (sorted), `-` read from stdin.
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
