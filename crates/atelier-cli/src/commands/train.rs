//! `atelier train facets`: builds the run's configuration from the options (or takes a stored
//! run's for `--resume`), records the run in the catalogue, trains, saves the model in the
//! store, and stores the F1 tables and per-image predictions with the run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use atelier_catalog::{Catalog, NewRun, RunFinish, RunStatus};
use atelier_models::pretrained::{self, EFFICIENTNET_LITE0};
use atelier_train::artifact::{ModelManifest, save_model};
use atelier_train::input::Augmentation;
use atelier_train::loss::ClassWeighting;
use atelier_train::model::HeadKind;
use atelier_train::schedule::{OptimizerChoice, Schedule};
use atelier_train::{BackboneChoice, DeviceChoice, TrainConfig, TrainError, job};
use serde_json::{Value, json};

use crate::args::{GlobalArgs, TrainFacetsArgs};
use crate::commands::models;
use crate::error::{CliError, CliResult};
use crate::output::print_json;
use crate::progress::TrainProgress;

/// What a finished training command reports.
pub struct TrainedRun {
    pub run: i64,
    pub model_dir: PathBuf,
    pub summary: Value,
}

pub async fn run(catalog: &Catalog, args: &TrainFacetsArgs, global: &GlobalArgs) -> CliResult {
    let store = match &args.publish {
        Some(name) => Some(models::check_publish_target(&global.store, name).await?),
        None => None,
    };
    let trained = train_facets(catalog, args, global).await?;
    let published = match (&store, &args.publish) {
        (Some(store), Some(name)) => {
            let manifest = models::publish_folder(store, name, &trained.model_dir)
                .await
                .map_err(|e| {
                    CliError::internal(format!(
                        "run {} completed, but publishing its model failed: {e}. Publish it \
                         with `atelier models push {} --name {name}`",
                        trained.run,
                        trained.model_dir.display()
                    ))
                })?;
            if !global.json {
                println!("published {} to {}", manifest.reference(), store.url());
            }
            Some(models::published_json(store, &manifest))
        }
        _ => None,
    };
    if global.json {
        print_json(&json!({
            "run": trained.run,
            "model": trained.model_dir,
            "published": published,
            "facets": trained.summary["facets"],
            "seconds": trained.summary["seconds"],
        }))?;
    }
    Ok(())
}

/// Trains (or resumes) a facet run and prints its tables unless `--json`.
pub async fn train_facets(
    catalog: &Catalog,
    args: &TrainFacetsArgs,
    global: &GlobalArgs,
) -> CliResult<TrainedRun> {
    let started = Instant::now();
    let (run, config) = match args.resume {
        Some(run) => resume(catalog, run).await?,
        None => {
            let mut config = config_from_args(args)?;
            config.facets = job::facet_names(catalog, &config.facets).await?;
            // Refuse unknown facet names before a run is recorded for them.
            catalog.facet_label_orders(&config.facets).await?;
            let stored = json!({
                "train": config,
                "checkpoint_dir": absolute(&args.checkpoint_dir),
            });
            let run = catalog
                .create_run(&NewRun {
                    kind: "facets".into(),
                    config: stored,
                    parent_run: None,
                })
                .await?;
            (run, config)
        }
    };
    let checkpoint_dir = checkpoint_dir_of(catalog, run).await?;
    let result = train_and_store(catalog, run, &config, &checkpoint_dir, global, started).await;
    if let Err(error) = &result {
        catalog
            .finish_run(
                run,
                &RunFinish {
                    status: RunStatus::Failed,
                    summary: None,
                    model_ref: None,
                    error: Some(error.to_string()),
                },
            )
            .await?;
    }
    result
}

async fn train_and_store(
    catalog: &Catalog,
    run: i64,
    config: &TrainConfig,
    checkpoint_dir: &Path,
    global: &GlobalArgs,
    started: Instant,
) -> CliResult<TrainedRun> {
    let dataset = job::load_dataset(catalog, &config.facets)
        .await
        .map_err(train_error)?;
    if !global.json {
        let train = dataset
            .examples
            .iter()
            .filter(|e| e.split == atelier_train::Split::Train)
            .count();
        eprintln!(
            "run {run}: {} on {} images ({train} train, {} test), facets {}",
            config.backbone,
            dataset.examples.len(),
            dataset.examples.len() - train,
            config.facets.join(", ")
        );
    }
    let json = global.json;
    let (dataset, config_owned, dir) = (dataset, config.clone(), checkpoint_dir.to_path_buf());
    let (dataset, outcome) = tokio::task::spawn_blocking(move || {
        let mut progress = TrainProgress::new(json);
        let cache = feature_cache_dir();
        let outcome =
            atelier_train::train(&dataset, &config_owned, &dir, Some(&cache), &mut progress);
        (dataset, outcome)
    })
    .await
    .map_err(|e| CliError::internal(format!("training thread failed: {e}")))?;
    let outcome = outcome.map_err(train_error)?;

    let model_dir = model_store_dir(&global.store)?.join(format!("run-{run}"));
    let manifest = ModelManifest::new(
        Some(run),
        config,
        outcome.input,
        dataset.facets.clone(),
        outcome.class_weights.clone(),
        outcome.best_epoch,
        now_millis(),
    );
    if model_dir.exists() {
        // A resumed run that had already saved its model before being interrupted.
        std::fs::remove_dir_all(&model_dir)?;
    }
    save_model(&model_dir, &manifest, &outcome.net, &outcome.evaluation).map_err(train_error)?;
    models::write_lineage(&model_dir, &dataset, run, config)?;
    job::record_results(
        catalog,
        run,
        &dataset,
        &outcome.class_weights,
        &outcome.evaluation,
        &outcome.probabilities,
    )
    .await
    .map_err(train_error)?;

    let facets: serde_json::Map<String, Value> = outcome
        .evaluation
        .iter()
        .map(|facet| {
            (
                facet.facet.clone(),
                json!({
                    "train_macro_f1": facet.train.macro_f1,
                    "test_macro_f1": facet.test.macro_f1,
                    "test_weighted_f1": facet.test.weighted_f1,
                    "test_accuracy": facet.test.accuracy,
                }),
            )
        })
        .collect();
    let summary = json!({
        "facets": facets,
        "best_epoch": outcome.best_epoch,
        "epochs_run": outcome.history.len(),
        "stopped_early": outcome.stopped_early,
        "history": outcome.history,
        "seconds": started.elapsed().as_secs_f64(),
    });
    catalog
        .finish_run(
            run,
            &RunFinish {
                status: RunStatus::Completed,
                summary: Some(summary.clone()),
                model_ref: Some(model_dir.display().to_string()),
                error: None,
            },
        )
        .await?;
    if !global.json {
        print_summary(run, &outcome.evaluation, outcome.best_epoch, &model_dir);
    }
    Ok(TrainedRun {
        run,
        model_dir,
        summary,
    })
}

fn print_summary(
    run: i64,
    evaluation: &[atelier_train::evaluate::FacetEvaluation],
    best_epoch: usize,
    model_dir: &Path,
) {
    println!(
        "run {run}: best epoch {best_epoch}, model saved in {}",
        model_dir.display()
    );
    println!(
        "{:<12} {:>14} {:>14} {:>12}",
        "facet", "train macro-F1", "test macro-F1", "test acc."
    );
    for facet in evaluation {
        println!(
            "{:<12} {:>14.3} {:>14.3} {:>12.3}",
            facet.facet, facet.train.macro_f1, facet.test.macro_f1, facet.test.accuracy
        );
    }
    println!("per-class tables: atelier eval {run}");
}

async fn resume(catalog: &Catalog, run: i64) -> CliResult<(i64, TrainConfig)> {
    let record = catalog.run(run).await?.ok_or_else(|| {
        CliError::bad_input(format!("--resume {run}: no such run (see `atelier runs`)"))
    })?;
    if record.status == RunStatus::Completed {
        return Err(CliError::bad_input(format!(
            "--resume {run}: the run already completed; start a new run instead"
        )));
    }
    let config: TrainConfig =
        serde_json::from_value(record.config["train"].clone()).map_err(|e| {
            CliError::internal(format!("run {run} has an unreadable configuration: {e}"))
        })?;
    if record.status == RunStatus::Failed {
        catalog.reopen_run(run).await?;
    }
    Ok((run, config))
}

async fn checkpoint_dir_of(catalog: &Catalog, run: i64) -> CliResult<PathBuf> {
    let record = catalog
        .run(run)
        .await?
        .ok_or_else(|| CliError::internal(format!("run {run} vanished from the catalogue")))?;
    let base = record.config["checkpoint_dir"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("checkpoints"));
    Ok(base.join(format!("run-{run}")))
}

/// Where training saves its `run-N` model folders: a local store's own folder, or for a
/// remote store `./models` (the default store's folder), from where `--publish` uploads them.
pub fn model_store_dir(store: &str) -> CliResult<PathBuf> {
    let location = atelier_store::StoreLocation::parse(store)?;
    Ok(match location.local_dir() {
        Some(dir) => dir.to_path_buf(),
        None => PathBuf::from("models"),
    })
}

/// Frozen-backbone features are kept in `$ATELIER_FEATURE_CACHE` or
/// `~/.cache/atelier/features`, so retraining on the same images skips the backbone.
fn feature_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ATELIER_FEATURE_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/atelier/features")
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Turns a training error into a command-line error with the right exit code.
pub fn train_error(error: TrainError) -> CliError {
    error.into()
}

fn config_from_args(args: &TrainFacetsArgs) -> CliResult<TrainConfig> {
    let backbone: BackboneChoice = args
        .backbone
        .parse()
        .map_err(|e: String| CliError::bad_input(format!("--backbone: {e}")))?;
    let weights = match (&args.weights, backbone) {
        (Some(path), _) => Some(absolute(path)),
        (None, BackboneChoice::EfficientnetLite0) => Some(
            pretrained::cached(&EFFICIENTNET_LITE0, &pretrained::default_cache_dir()).ok_or_else(
                || {
                    CliError::bad_input(format!(
                        "no ImageNet weights for {0}: run `atelier weights fetch {0}` or pass \
                         --weights FILE",
                        EFFICIENTNET_LITE0.name
                    ))
                },
            )?,
        ),
        (None, _) => None,
    };
    let class_weighting = match args.class_weights.as_str() {
        "none" => ClassWeighting::None,
        "inverse" => ClassWeighting::Inverse,
        "effective" if (0.0..1.0).contains(&args.beta) => {
            ClassWeighting::Effective { beta: args.beta }
        }
        "effective" => {
            return Err(CliError::bad_input(format!(
                "--beta {} must be in [0, 1)",
                args.beta
            )));
        }
        other => {
            return Err(CliError::bad_input(format!(
                "--class-weights {other}: choose none, inverse or effective"
            )));
        }
    };
    let head = match args.head.as_str() {
        "pooled" => HeadKind::Pooled,
        "spatial" if args.head_channels > 0 => HeadKind::Spatial {
            channels: args.head_channels,
        },
        "spatial" => return Err(CliError::bad_input("--head-channels must be at least 1")),
        other => {
            return Err(CliError::bad_input(format!(
                "--head {other}: choose pooled or spatial"
            )));
        }
    };
    let optimizer = match args.optimizer.as_str() {
        "adamw" => OptimizerChoice::AdamW {
            weight_decay: args.weight_decay,
        },
        "sgd" => OptimizerChoice::Sgd {
            momentum: args.momentum,
            weight_decay: args.weight_decay,
        },
        other => {
            return Err(CliError::bad_input(format!(
                "--optimizer {other}: choose adamw or sgd"
            )));
        }
    };
    let schedule = match args.schedule.as_str() {
        "cosine" => Schedule::Cosine {
            warmup_epochs: args.warmup_epochs,
        },
        "step" => Schedule::Step {
            every_epochs: args.step_epochs,
            gamma: args.step_gamma,
        },
        other => {
            return Err(CliError::bad_input(format!(
                "--schedule {other}: choose cosine or step"
            )));
        }
    };
    let device = match args.device.as_str() {
        "cpu" => DeviceChoice::Cpu,
        "vulkan" => DeviceChoice::Vulkan,
        other => {
            return Err(CliError::bad_input(format!(
                "--device {other}: choose cpu or vulkan"
            )));
        }
    };
    if args.focal_gamma < 0.0 {
        return Err(CliError::bad_input("--focal-gamma must be 0 or more"));
    }
    let mut config = TrainConfig::new(backbone, args.facets.clone());
    config.weights = weights;
    config.image_size = args.image_size;
    config.epochs = args.epochs;
    config.batch_size = args.batch_size;
    config.learning_rate = args.lr;
    config.optimizer = optimizer;
    config.schedule = schedule;
    config.class_weighting = class_weighting;
    config.focal_gamma = args.focal_gamma;
    config.head = head;
    if let Some(stride) = args.feature_stride
        && !(stride.is_power_of_two() && (2..=64).contains(&stride))
    {
        return Err(CliError::bad_input(format!(
            "--feature-stride {stride}: use a power of two from 2 to 64 (e.g. 16)"
        )));
    }
    config.feature_stride = args.feature_stride;
    config.freeze_backbone = args.freeze_backbone;
    config.spatial_transformer = args.spatial_transformer;
    config.augmentation = if args.no_augment {
        Augmentation {
            min_crop_area: 1.0,
            horizontal_flip: false,
            color_jitter: 0.0,
        }
    } else {
        Augmentation::default()
    };
    config.validation_fraction = args.validation_fraction;
    config.patience = args.patience;
    config.seed = args.seed;
    config.device = device;
    Ok(config)
}
