//! `atelier models list|show|push|pull|promote|rm|seal`: the model store's operations and
//! their output (opening the store, publishing and resolving models are `atelier_app::models`).

use std::path::Path;

use atelier_app::models::{open_store, publish_folder, published_model};
use atelier_catalog::utc_minutes;
use atelier_store::{Manifest, ModelInfo, ModelRef, ModelStore, Selector};
use atelier_train::artifact::{CHECKSUMS_FILE, LINEAGE_FILE, MODEL_FILE};
use serde_json::{Value, json};

use crate::args::{GlobalArgs, ModelsAction, ModelsArgs};
use crate::error::{CliError, CliResult};
use crate::output::print_json;

pub async fn run(args: &ModelsArgs, global: &GlobalArgs) -> CliResult {
    if let ModelsAction::Seal { dir } = &args.action {
        return seal(dir, global.json);
    }
    let store = open_store(&global.store)?;
    let json = global.json;
    match &args.action {
        ModelsAction::List { name } => list(&store, name.as_deref(), json).await,
        ModelsAction::Show { reference } => show(&store, reference, json).await,
        ModelsAction::Push { dir, name } => push(&store, dir, name, json).await,
        ModelsAction::Pull { reference, out } => {
            pull(&store, reference, out.as_deref(), json).await
        }
        ModelsAction::Promote { reference, tag } => promote(&store, reference, tag, json).await,
        ModelsAction::Rm { reference } => remove(&store, reference, json).await,
        ModelsAction::Seal { .. } => unreachable!("sealed above, without a store"),
    }
}

async fn list(store: &ModelStore, name: Option<&str>, json: bool) -> CliResult {
    let models = match name {
        Some(name) => vec![store.model(name).await?],
        None => store.list().await?,
    };
    if json {
        return print_json(&models.iter().map(model_json).collect::<Vec<_>>());
    }
    print_models(store, &models);
    Ok(())
}

async fn show(store: &ModelStore, reference: &str, json: bool) -> CliResult {
    let reference = parse_reference(reference)?;
    let manifest = store.manifest(&reference).await?;
    let tags = tags_of(store, &manifest).await?;
    let lineage = match manifest.parts.iter().any(|p| p.name == LINEAGE_FILE) {
        true => serde_json::from_slice(&store.read_part(&manifest, LINEAGE_FILE).await?)
            .unwrap_or(Value::Null),
        false => Value::Null,
    };
    if json {
        return print_json(&json!({
            "model": manifest.reference().to_string(),
            "store": store.url(),
            "tags": tags,
            "manifest": manifest,
            "lineage": lineage,
        }));
    }
    print_manifest(store, &manifest, &tags, &lineage);
    Ok(())
}

async fn push(store: &ModelStore, dir: &Path, name: &str, json: bool) -> CliResult {
    let manifest = publish_folder(store, name, dir).await?;
    if json {
        return print_json(&published_model(store, &manifest));
    }
    println!(
        "published {} to {} ({} files, {})",
        manifest.reference(),
        store.url(),
        manifest.parts.len(),
        human_size(manifest.total_size())
    );
    Ok(())
}

async fn pull(store: &ModelStore, reference: &str, out: Option<&Path>, json: bool) -> CliResult {
    let reference = parse_reference(reference)?;
    let pulled = store.pull(&reference).await?;
    let dir = match out {
        Some(out) => {
            copy_folder(&pulled.dir, out)?;
            out.to_path_buf()
        }
        None => pulled.dir.clone(),
    };
    if json {
        return print_json(&json!({
            "model": pulled.manifest.reference().to_string(),
            "dir": dir,
            "downloaded": pulled.downloaded,
            "manifest_sha256": pulled.manifest_sha256,
        }));
    }
    let how = if pulled.downloaded {
        "downloaded and verified"
    } else {
        "already cached"
    };
    println!("{} ({how}): {}", pulled.manifest.reference(), dir.display());
    Ok(())
}

async fn promote(store: &ModelStore, reference: &str, tag: &str, json: bool) -> CliResult {
    let reference = parse_reference(reference)?;
    let version = store.resolve(&reference).await?;
    store.promote(&reference.name, version, tag).await?;
    let model = ModelRef::version(&reference.name, version).to_string();
    if json {
        return print_json(&json!({"model": model, "tag": tag}));
    }
    println!("{}:{tag} -> {model}", reference.name);
    Ok(())
}

async fn remove(store: &ModelStore, reference: &str, json: bool) -> CliResult {
    let reference = parse_reference(reference)?;
    let Selector::Version(version) = reference.selector else {
        return Err(CliError::bad_input(format!(
            "models rm {reference}: name the version to remove, e.g. {}@1",
            reference.name
        )));
    };
    let removed = store.remove(&reference.name, version).await?;
    if json {
        return print_json(&json!({"removed": removed.reference().to_string()}));
    }
    println!("removed {} (its number is not reused)", removed.reference());
    Ok(())
}

/// `models seal DIR`: writes the checksums of a model folder that has none.
fn seal(dir: &Path, json: bool) -> CliResult {
    if !dir.join(MODEL_FILE).is_file() {
        return Err(CliError::bad_input(format!(
            "{}: no {MODEL_FILE} here, so this is not a model folder",
            dir.display()
        )));
    }
    if dir.join(CHECKSUMS_FILE).exists() {
        return Err(CliError::bad_input(format!(
            "{} already has {CHECKSUMS_FILE}; a model that fails its checksums changed after it \
             was saved: pull it again or retrain it",
            dir.display()
        )));
    }
    atelier_train::artifact::seal_model(dir)?;
    if json {
        return print_json(&json!({"sealed": dir}));
    }
    println!(
        "recorded the checksums of {} in {CHECKSUMS_FILE}",
        dir.display()
    );
    Ok(())
}

fn parse_reference(text: &str) -> CliResult<ModelRef> {
    Ok(text.parse::<ModelRef>()?)
}

async fn tags_of(store: &ModelStore, manifest: &Manifest) -> CliResult<Vec<String>> {
    Ok(store
        .tags(&manifest.name)
        .await?
        .into_iter()
        .filter(|(_, v)| *v == manifest.version)
        .map(|(t, _)| t)
        .collect())
}

fn model_json(model: &ModelInfo) -> Value {
    json!({
        "name": model.name,
        "tags": model.tags,
        "versions": model.versions.iter().map(|v| json!({
            "version": v.version,
            "created_at": v.manifest.created_at,
            "bytes": v.manifest.total_size(),
            "tags": v.tags,
            "metadata": v.manifest.metadata,
        })).collect::<Vec<_>>(),
    })
}

fn print_models(store: &ModelStore, models: &[ModelInfo]) {
    if models.is_empty() {
        println!(
            "no models in {} (publish with `atelier train facets ... --publish NAME` or \
             `atelier models push DIR --name NAME`)",
            store.url()
        );
        return;
    }
    println!("models in {}", store.url());
    println!(
        "{:<20} {:>7}  {:<17} {:>9}  {:<10} {:<18} tags",
        "name", "version", "created (UTC)", "size", "run", "backbone"
    );
    for model in models {
        for version in &model.versions {
            let meta = &version.manifest.metadata;
            println!(
                "{:<20} {:>7}  {:<17} {:>9}  {:<10} {:<18} {}",
                model.name,
                version.version,
                utc_minutes(version.manifest.created_at),
                human_size(version.manifest.total_size()),
                meta["run"].as_i64().map_or("-".into(), |r| r.to_string()),
                meta["backbone"].as_str().unwrap_or("-"),
                version.tags.join(",")
            );
        }
    }
}

fn print_manifest(store: &ModelStore, manifest: &Manifest, tags: &[String], lineage: &Value) {
    println!("{} in {}", manifest.reference(), store.url());
    println!("  published  {} UTC", utc_minutes(manifest.created_at));
    if !tags.is_empty() {
        println!("  tags       {}", tags.join(", "));
    }
    if let Some(meta) = manifest.metadata.as_object() {
        for (key, value) in meta {
            println!("  {key:<10} {value}");
        }
    }
    println!("  files");
    for part in &manifest.parts {
        println!(
            "    {:<16} {:>10}  sha256 {}",
            part.name,
            human_size(part.size),
            part.sha256
        );
    }
    if !lineage.is_null() {
        println!("  lineage");
        println!(
            "    labels sha256  {}",
            lineage["catalog_label_snapshot_sha256"]
        );
        println!("    images         {}", lineage["images"]);
        println!("    parent         {}", lineage["parent_model"]);
    }
}

fn copy_folder(from: &Path, to: &Path) -> CliResult {
    std::fs::create_dir_all(to)
        .map_err(|e| CliError::bad_input(format!("--out {}: {e}", to.display())))?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        std::fs::copy(entry.path(), &target)
            .map_err(|e| CliError::bad_input(format!("--out {}: {e}", target.display())))?;
    }
    Ok(())
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / (1u64 << 10) as f64),
        b => format!("{b} B"),
    }
}
