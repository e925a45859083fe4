//! A trained model as a folder of files: `model.json` (architecture, input, facets with label
//! orders, class weights, training configuration, run id), `weights.bpk` (every parameter and
//! batch-norm statistic of the network), `metrics.json` (the run's F1 tables), for a model
//! trained from the catalogue `lineage.json` (which labels it learnt from), and
//! `checksums.json`: the size and SHA-256 of every other file.
//!
//! The folder is written under a temporary name and renamed into place, so a reader never sees
//! half a model; [`load_model`] checks every file against `checksums.json` before it uses any,
//! so a damaged or altered model is refused, never used. The model store (`atelier-store`)
//! moves these folders to object storage.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::backbones::BackboneChoice;
use crate::checkpoint::{load_module, read_json, save_module, write_json_atomically};
use crate::config::HeadKind;
use crate::config::TrainConfig;
use crate::data::{Dataset, FacetSpec};
use crate::error::TrainError;
use crate::evaluate::FacetEvaluation;
use crate::input::InputConfig;
use crate::locator::DressLocator;
use crate::model::{FacetHeads, FacetNet};
use burn::prelude::*;

pub const MODEL_FILE: &str = "model.json";
pub const WEIGHTS_FILE: &str = "weights.bpk";
pub const METRICS_FILE: &str = "metrics.json";
/// Written next to `model.json` by a catalogue run: where the model's data came from.
pub const LINEAGE_FILE: &str = "lineage.json";
/// The size and SHA-256 of every other file of a model folder.
pub const CHECKSUMS_FILE: &str = "checksums.json";
const CHECKSUMS_FORMAT: &str = "atelier-checksums";
const FORMAT: &str = "atelier-facet-model";
const FORMAT_VERSION: u32 = 1;

/// Everything needed to rebuild and use the network, besides its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelManifest {
    pub format: String,
    pub format_version: u32,
    pub run: Option<i64>,
    pub backbone: BackboneChoice,
    pub head: HeadKind,
    pub spatial_transformer: bool,
    pub input: InputConfig,
    pub facets: Vec<FacetSpec>,
    /// Per facet, the loss weight of each class.
    pub class_weights: Vec<Vec<f64>>,
    pub training: TrainConfig,
    pub best_epoch: usize,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl ModelManifest {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        run: Option<i64>,
        training: &TrainConfig,
        input: InputConfig,
        facets: Vec<FacetSpec>,
        class_weights: Vec<Vec<f64>>,
        best_epoch: usize,
        created_at: i64,
    ) -> Self {
        Self {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            run,
            backbone: training.backbone,
            head: training.head,
            spatial_transformer: training.spatial_transformer,
            input,
            facets,
            class_weights,
            training: training.clone(),
            best_epoch,
            created_at,
        }
    }

    /// A network of this architecture with untrained weights.
    pub fn build_net(&self, device: &Device) -> Result<FacetNet, TrainError> {
        crate::init::exclusive(|| self.build_net_unlocked(device))
    }

    fn build_net_unlocked(&self, device: &Device) -> Result<FacetNet, TrainError> {
        let backbone = self.backbone.build(None, device)?;
        let tap = self.training.feature_tap();
        let [feature_dim, map_size, _] =
            BackboneChoice::feature_shape(&backbone, self.input.image_size, tap, device);
        let heads_map_size = match self.head {
            HeadKind::Pooled | HeadKind::Grid { .. } => 1,
            HeadKind::Spatial { .. } => map_size,
        };
        let classes: Vec<usize> = self.facets.iter().map(|f| f.labels.len()).collect();
        let detail = !self.training.detail_crops.is_empty();
        let heads = FacetHeads::new(
            self.head,
            feature_dim * self.training.views(),
            heads_map_size,
            &classes,
            device,
        );
        let locator = detail.then(|| DressLocator::new(feature_dim, map_size, device));
        Ok(FacetNet::new(
            backbone,
            heads,
            self.spatial_transformer,
            tap,
            locator,
            device,
        ))
    }
}

/// Writes a model folder at `dir` (which must not exist yet), with its lineage when given and
/// the checksums of every file.
pub fn save_model(
    dir: &Path,
    manifest: &ModelManifest,
    net: &FacetNet,
    evaluation: &[FacetEvaluation],
    lineage: Option<&Value>,
) -> Result<(), TrainError> {
    write_model_folder(dir, |folder| {
        save_module(net, &folder.join(WEIGHTS_FILE))?;
        write_json_atomically(&folder.join(METRICS_FILE), &evaluation)?;
        write_json_atomically(&folder.join(MODEL_FILE), manifest)?;
        if let Some(lineage) = lineage {
            write_json_atomically(&folder.join(LINEAGE_FILE), lineage)?;
        }
        Ok(())
    })
}

/// Creates model folder `dir` (which must not exist yet): `write` fills a folder under a
/// temporary name, which is sealed with its checksums and then renamed into place, so a
/// reader never sees half a model.
pub(crate) fn write_model_folder(
    dir: &Path,
    write: impl FnOnce(&Path) -> Result<(), TrainError>,
) -> Result<(), TrainError> {
    if dir.exists() {
        return Err(TrainError::Config(format!(
            "{} already exists; models are never overwritten",
            dir.display()
        )));
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
    let temporary = partial_name(dir);
    if temporary.exists() {
        fs::remove_dir_all(&temporary).map_err(|e| TrainError::io(&temporary, e))?;
    }
    fs::create_dir_all(&temporary).map_err(|e| TrainError::io(&temporary, e))?;
    write(&temporary)?;
    seal_model(&temporary)?;
    fs::rename(&temporary, dir).map_err(|e| TrainError::io(dir, e))
}

/// The manifest path of model folder `dir`, after every file was checked against its
/// checksums; `train_with` names the command that makes such a folder, for the error when
/// `dir` has no manifest.
pub(crate) fn checked_manifest(dir: &Path, train_with: &str) -> Result<PathBuf, TrainError> {
    let manifest_path = dir.join(MODEL_FILE);
    if !manifest_path.exists() {
        return Err(TrainError::artifact(
            &manifest_path,
            format!("not found: this is not a model folder (train one with `{train_with}`)"),
        ));
    }
    verify_model(dir)?;
    Ok(manifest_path)
}

/// Reads a model folder, after checking every file against its checksums, and rebuilds its
/// network on `device`.
pub fn load_model(dir: &Path, device: &Device) -> Result<(ModelManifest, FacetNet), TrainError> {
    let manifest_path = checked_manifest(dir, "atelier train facets")?;
    let manifest: ModelManifest = read_json(&manifest_path)?;
    if manifest.format != FORMAT || manifest.format_version > FORMAT_VERSION {
        return Err(TrainError::artifact(
            &manifest_path,
            format!(
                "format {} version {} is not one this atelier reads ({FORMAT} up to {FORMAT_VERSION})",
                manifest.format, manifest.format_version
            ),
        ));
    }
    let net = load_module(manifest.build_net(device)?, &dir.join(WEIGHTS_FILE))?;
    Ok((manifest, net))
}

/// One file of a model folder as `checksums.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileChecksum {
    name: String,
    size: u64,
    sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checksums {
    format: String,
    format_version: u32,
    files: Vec<FileChecksum>,
}

/// Writes `checksums.json` into model folder `dir`: the size and SHA-256 of each of its other
/// files. Training does this for every model it saves; `atelier models seal` does it for a
/// folder saved before models carried checksums.
pub fn seal_model(dir: &Path) -> Result<(), TrainError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))? {
        let path = entry.map_err(|e| TrainError::io(dir, e))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name == CHECKSUMS_FILE || !path.is_file() {
            continue;
        }
        let (size, sha256) = file_checksum(&path)?;
        files.push(FileChecksum { name, size, sha256 });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let checksums = Checksums {
        format: CHECKSUMS_FORMAT.into(),
        format_version: 1,
        files,
    };
    write_json_atomically(&dir.join(CHECKSUMS_FILE), &checksums)
}

/// Checks every file `checksums.json` lists in model folder `dir` (size, then SHA-256), and
/// that it lists the manifest and the weights. The error names the file and the fix.
pub fn verify_model(dir: &Path) -> Result<(), TrainError> {
    let path = dir.join(CHECKSUMS_FILE);
    if !path.exists() {
        return Err(TrainError::artifact(
            &path,
            "not found, so the model's files cannot be verified (it was saved before models \
             carried checksums); retrain it, or if you trust these files, record their \
             checksums with `atelier models seal DIR`",
        ));
    }
    let checksums: Checksums = read_json(&path)?;
    for required in [MODEL_FILE, WEIGHTS_FILE] {
        if !checksums.files.iter().any(|f| f.name == required) {
            return Err(TrainError::artifact(
                &path,
                format!("lists no {required}: the model folder cannot be verified"),
            ));
        }
    }
    for file in &checksums.files {
        let file_path = dir.join(&file.name);
        if file.name.contains(['/', '\\']) || file.name.starts_with('.') {
            return Err(TrainError::artifact(
                &path,
                format!("lists {:?}, which is not a file of the folder", file.name),
            ));
        }
        let (size, sha256) = file_checksum(&file_path)?;
        if size != file.size || sha256 != file.sha256 {
            return Err(TrainError::artifact(
                &file_path,
                format!(
                    "is {size} bytes with SHA-256 {}…, but {CHECKSUMS_FILE} says {} bytes with \
                     {}…: the file changed after the model was saved; pull the model again \
                     (`atelier models pull`) or retrain it",
                    &sha256[..12],
                    file.size,
                    &file.sha256[..12.min(file.sha256.len())]
                ),
            ));
        }
    }
    Ok(())
}

/// The size and SHA-256 (hex) of a file, streamed.
fn file_checksum(path: &Path) -> Result<(u64, String), TrainError> {
    use std::io::Read;
    let mut file = fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(|e| TrainError::io(path, e))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

fn partial_name(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dir.with_file_name(name)
}

/// What `lineage.json` of a model holds: the hash of the catalogue labels the run used, image
/// counts per split and per label, the run, and what the network started from.
///
/// The label snapshot hash is the SHA-256 of the sorted lines `image_id TAB split TAB facet
/// TAB label`, one per labelled (image, facet) pair of the run: two models trained on the same
/// labels of the same images have the same hash, whatever the catalogue's row order.
pub fn lineage(dataset: &Dataset, run: i64, config: &TrainConfig) -> Value {
    let mut lines = Vec::new();
    let mut images: BTreeMap<&str, u64> = BTreeMap::new();
    let mut labels: BTreeMap<&str, BTreeMap<&str, BTreeMap<&str, u64>>> = BTreeMap::new();
    for example in &dataset.examples {
        let split = example.split.as_str();
        *images.entry(split).or_default() += 1;
        for (facet, target) in dataset.facets.iter().zip(&example.targets) {
            let Some(label) = target.and_then(|t| facet.labels.get(t)) else {
                continue;
            };
            lines.push(format!(
                "{}\t{split}\t{}\t{label}\n",
                example.image_id, facet.name
            ));
            *labels
                .entry(&facet.name)
                .or_default()
                .entry(label)
                .or_default()
                .entry(split)
                .or_default() += 1;
        }
    }
    lines.sort();
    let mut hasher = Sha256::new();
    for line in &lines {
        hasher.update(line.as_bytes());
    }
    json!({
        "format": "atelier-lineage",
        "format_version": 1,
        "run": run,
        "catalog_label_snapshot_sha256": hex::encode(hasher.finalize()),
        "labelled_pairs": lines.len(),
        "images": images,
        "labels": labels,
        // Training starts from a backbone's weights file, never from a stored model (yet); a
        // retrain (`parent_run`) starts from the same weights file as its parent.
        "parent_model": Value::Null,
        "pretrained_weights": config.weights,
    })
}
