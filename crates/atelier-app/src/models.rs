//! Models as the front ends use them: the model store a `--store` URL names, publishing a
//! model folder (verified first) with a summary of what it is, and finding the model folder a
//! reference names: a folder, a catalogue run, or a published `NAME`, `NAME@VERSION` or
//! `NAME:TAG`.

use std::path::{Path, PathBuf};

use atelier_catalog::{Catalog, RunStatus};
use atelier_store::{Manifest, ModelRef, ModelStore, StoreLocation, StoreOptions};
use atelier_train::artifact::{MODEL_FILE, verify_model};
use serde_json::{Value, json};

use crate::error::AppError;
use crate::summary::PublishedModel;

/// Opens `--store` with the default cache (`$ATELIER_MODEL_CACHE` or
/// `~/.cache/atelier/models`) and retry policy.
pub fn open_store(url: &str) -> Result<ModelStore, AppError> {
    Ok(ModelStore::open(url, StoreOptions::default())?)
}

/// Publishes a model folder; the manifest's metadata summarises its `model.json` when it has
/// one, so that `models list` can show what each version is without downloading it. A model
/// folder is checked against its checksums first: a damaged model is never published.
pub async fn publish_folder(
    store: &ModelStore,
    name: &str,
    dir: &Path,
) -> Result<Manifest, AppError> {
    if dir.join(MODEL_FILE).is_file() {
        verify_model(dir)?;
    }
    let metadata = folder_metadata(dir);
    Ok(store.publish(name, dir, metadata).await?)
}

/// Checks `--publish NAME` and that the store answers, before hours of training.
pub async fn check_publish_target(store_url: &str, name: &str) -> Result<ModelStore, AppError> {
    atelier_store::check_name(name)
        .map_err(|reason| AppError::Invalid(format!("model name {name:?}: {reason}")))?;
    let store = open_store(store_url)?;
    store.model(name).await?;
    Ok(store)
}

/// What a publish reports.
pub fn published_model(store: &ModelStore, manifest: &Manifest) -> PublishedModel {
    PublishedModel {
        model: manifest.reference().to_string(),
        name: manifest.name.clone(),
        version: manifest.version,
        store: store.url().to_string(),
        files: manifest.parts.len(),
        bytes: manifest.total_size(),
    }
}

/// Pulls a published model into the cache (verified; no download when cached) and returns
/// its local folder.
pub async fn pull_model(store_url: &str, reference: &ModelRef) -> Result<PathBuf, AppError> {
    let store = open_store(store_url)?;
    Ok(store.pull(reference).await?.dir)
}

fn folder_metadata(dir: &Path) -> Value {
    let model: Value = std::fs::read(dir.join(MODEL_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null);
    if model.is_null() {
        return json!({});
    }
    let facets: Vec<&Value> = model["facets"]
        .as_array()
        .map(|f| f.iter().map(|facet| &facet["name"]).collect())
        .unwrap_or_default();
    json!({
        "format": model["format"],
        "run": model["run"],
        "backbone": model["backbone"],
        "image_size": model["input"]["image_size"],
        "facets": facets,
    })
}

/// Where training saves its `run-N` model folders: a local store's own folder, or for a
/// remote store `./models` (the default store's folder), from where publishing uploads them.
pub fn model_store_dir(store: &str) -> Result<PathBuf, AppError> {
    let location = StoreLocation::parse(store)?;
    Ok(match location.local_dir() {
        Some(dir) => dir.to_path_buf(),
        None => PathBuf::from("models"),
    })
}

/// The model folder a reference names: a model folder; `N` or `run-N`, run N of the catalogue
/// or a `run-N` folder of a local store; a published NAME, NAME@VERSION or NAME:TAG (pulled
/// into the cache, verified); or, without a reference, the newest completed run's model in the
/// catalogue (else the newest `run-N` folder of the store).
pub async fn resolve_model(
    reference: Option<&str>,
    store: &str,
    catalog: Option<&Catalog>,
) -> Result<PathBuf, AppError> {
    let store_dir = model_store_dir(store)?;
    let Some(reference) = reference else {
        if let Some(dir) = newest_catalog_model(catalog).await? {
            return Ok(dir);
        }
        return newest_model(&store_dir).ok_or_else(|| {
            AppError::Invalid(format!(
                "no model in the catalogue or in {}: train one with `atelier train facets` or \
                 name one",
                store_dir.display()
            ))
        });
    };
    let as_path = Path::new(reference);
    if as_path.join(MODEL_FILE).exists() {
        return Ok(as_path.to_path_buf());
    }
    let run = reference
        .strip_prefix("run-")
        .unwrap_or(reference)
        .parse::<i64>()
        .ok();
    if let (Some(run), Some(catalog)) = (run, catalog)
        && let Some(dir) = run_model(catalog, run).await?
    {
        return Ok(dir);
    }
    let name = run.map_or_else(|| reference.to_string(), |run| format!("run-{run}"));
    let dir = store_dir.join(&name);
    if dir.join(MODEL_FILE).exists() {
        return Ok(dir);
    }
    let not_found = |detail: String| {
        AppError::Invalid(format!(
            "model {reference}: no model folder at {reference} or {}, no completed run with \
             that number in the catalogue, {detail}",
            dir.display()
        ))
    };
    let published: atelier_store::ModelRef = reference.parse().map_err(|e| {
        not_found(format!(
            "and not a published model (NAME, NAME@VERSION or NAME:TAG): {e}"
        ))
    })?;
    match open_store(store)?.pull(&published).await {
        Ok(pulled) => Ok(pulled.dir),
        Err(e) if e.is_bad_input() => Err(not_found(format!("and {e}"))),
        Err(e) => Err(AppError::Store(e)),
    }
}

/// The model folder of completed run `run`, if the catalogue has one that still exists.
async fn run_model(catalog: &Catalog, run: i64) -> Result<Option<PathBuf>, AppError> {
    let model_ref = catalog
        .run(run)
        .await?
        .filter(|r| r.status == RunStatus::Completed)
        .and_then(|r| r.model_ref)
        .map(PathBuf::from);
    Ok(match model_ref {
        // On this machine, or fetched from the store's copy of a worker's model.
        Some(dir) => crate::checkpoint_mirror::local_model(&dir).await.ok(),
        None => None,
    })
}

/// The newest completed run's model folder that still exists.
async fn newest_catalog_model(catalog: Option<&Catalog>) -> Result<Option<PathBuf>, AppError> {
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
                    && path.join(MODEL_FILE).exists()
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
        std::fs::metadata(dir.join(MODEL_FILE))
            .and_then(|m| m.modified())
            .ok()
    })
}
