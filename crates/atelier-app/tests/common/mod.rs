//! What the catalogue-run tests share: a synthetic catalogue in a temporary folder, and the
//! small CNN with its fixture weights, frozen, on 32-pixel inputs.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use atelier_app::{FinishedRun, RunPaths, create_run, execute_run};
use atelier_catalog::{Catalog, ImportOptions};
use atelier_train::BackboneChoice;
use atelier_train::config::TrainConfig;
use atelier_train::progress::Silent;
use atelier_vision::synth::{SynthOptions, synthesize};

pub struct Setup {
    pub _dir: tempfile::TempDir,
    pub catalog: Catalog,
    /// The catalogue's database URL (for a second connection).
    pub url: String,
    pub paths: RunPaths,
    pub manifest: PathBuf,
    pub truth: PathBuf,
}

/// `synth` rendered into a temporary folder (`out_dir` is replaced), imported into a fresh
/// SQLite catalogue with 30% test, with its truth file when `truth` (a few photos may not carry
/// every label that the truth file names).
pub async fn setup(synth: SynthOptions, truth: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let synth = synthesize(
        &SynthOptions {
            out_dir: root.join("synth"),
            ..synth
        },
        &|_| {},
    )
    .unwrap();
    let url = format!("sqlite://{}", root.join("catalog.db").display());
    let catalog = Catalog::open(&url).await.unwrap();
    let options = ImportOptions {
        test_fraction: 0.3,
        ..ImportOptions::default()
    };
    catalog.import(&synth.manifest, &options).await.unwrap();
    if truth {
        catalog.import_truth(&synth.truth).await.unwrap();
    }
    let paths = RunPaths {
        checkpoint_base: root.join("checkpoints"),
        model_base: root.join("models"),
        feature_cache: root.join("features"),
        store: None,
        mirror_checkpoints: false,
    };
    Setup {
        _dir: dir,
        catalog,
        url,
        paths,
        manifest: synth.manifest,
        truth: synth.truth,
    }
}

impl Setup {
    /// Records a run of `config` in the catalogue and trains it to the end, silently; panics
    /// when either step fails.
    pub async fn train(&self, config: &TrainConfig) -> (i64, FinishedRun) {
        let run = create_run(&self.catalog, config, &self.paths, None)
            .await
            .unwrap();
        let finished = execute_run(&self.catalog, run, &self.paths, Box::new(Silent))
            .await
            .unwrap();
        (run, finished)
    }
}

/// The small CNN with its fixture weights, frozen (features cached), 32-pixel inputs, batches
/// of 8, for `facets`; each test sets the rest.
pub fn frozen_tiny(facets: &[&str]) -> TrainConfig {
    let mut config = TrainConfig::new(
        BackboneChoice::Tiny,
        facets.iter().map(|f| f.to_string()).collect(),
    );
    config.weights = Some(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../atelier-models/fixtures/tiny_cnn.safetensors"),
    );
    config.image_size = 32;
    config.batch_size = 8;
    config.freeze_backbone = true;
    config
}
