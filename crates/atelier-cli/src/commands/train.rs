//! `atelier train facets`: builds the run's configuration from the options (or takes a stored
//! run's for `--resume`), then lets `atelier_app::runner` record the run, train it, save the
//! model in the store's folder and store the F1 tables and per-image predictions with the run;
//! this module draws the progress, prints the tables and publishes the model.

use std::path::{Path, PathBuf};

use atelier_app::runner::{self, FinishedRun, RunPaths};
use atelier_app::summary::{PublishedModel, RunSummary};
use atelier_catalog::{Catalog, RunStatus};
use atelier_models::pretrained::{self, EFFICIENTNET_LITE0};
use atelier_train::input::Augmentation;
use atelier_train::loss::ClassWeighting;
use atelier_train::model::HeadKind;
use atelier_train::progress::{EpochRecord, Observer, RunStart};
use atelier_train::schedule::{OptimizerChoice, Schedule};
use atelier_train::{BackboneChoice, DeviceChoice, TrainConfig, TrainError};
use serde_json::json;

use crate::args::{GlobalArgs, TrainFacetsArgs};
use crate::error::{CliError, CliResult};
use crate::output::print_json;
use crate::progress::TrainProgress;

/// What a finished training command reports.
pub struct TrainedRun {
    pub run: i64,
    pub model_dir: PathBuf,
    pub summary: RunSummary,
    /// The published model, or why publishing failed (see `FinishedRun::published`).
    pub published: Option<Result<PublishedModel, String>>,
}

pub async fn run(catalog: &Catalog, args: &TrainFacetsArgs, global: &GlobalArgs) -> CliResult {
    let trained = train_facets(catalog, args, global).await?;
    let published = match trained.published {
        Some(Ok(model)) => Some(model),
        Some(Err(error)) => return Err(CliError::internal(error)),
        None => None,
    };
    if global.json {
        print_json(&json!({
            "run": trained.run,
            "model": trained.model_dir,
            "published": published,
            "facets": trained.summary.facets,
            "seconds": trained.summary.seconds,
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
    let paths = run_paths(&args.checkpoint_dir, &global.store)?;
    let run = match args.resume {
        Some(run) => check_resumable(catalog, run).await?,
        None => {
            let config = config_from_args(args)?;
            runner::create_published_run(catalog, &config, &paths, None, args.publish.as_deref())
                .await?
        }
    };
    execute(catalog, run, &paths, global).await
}

/// Trains a recorded run with progress bars (none with `--json`) and prints its summary.
pub async fn execute(
    catalog: &Catalog,
    run: i64,
    paths: &RunPaths,
    global: &GlobalArgs,
) -> CliResult<TrainedRun> {
    let observer = Box::new(CliObserver {
        bars: TrainProgress::new(global.json),
        json: global.json,
    });
    let finished = runner::execute_run(catalog, run, paths, observer).await?;
    if !global.json {
        print_summary(&finished);
    }
    Ok(TrainedRun {
        run: finished.run,
        model_dir: finished.model_dir,
        summary: finished.summary,
        published: finished.published,
    })
}

/// Where a run started from the command line keeps its files: checkpoints under
/// `checkpoint_base`, the model in the store's folder, features in the shared cache.
pub fn run_paths(checkpoint_base: &Path, store: &str) -> CliResult<RunPaths> {
    Ok(RunPaths {
        checkpoint_base: checkpoint_base.to_path_buf(),
        model_base: atelier_app::models::model_store_dir(store)?,
        store: Some(store.to_string()),
        feature_cache: feature_cache_dir(),
    })
}

/// The progress bars, plus the lines a person reads as a run and its folds start.
struct CliObserver {
    bars: TrainProgress,
    json: bool,
}

impl Observer for CliObserver {
    fn run_start(&mut self, start: &RunStart) {
        if !self.json {
            eprintln!(
                "run {}: {} on {} images ({} train, {} test), facets {}",
                start.run,
                start.config.backbone,
                start.train_images + start.test_images,
                start.train_images,
                start.test_images,
                start.config.facets.join(", ")
            );
        }
    }

    fn fold_start(&mut self, fold: usize, folds: usize, held_out: usize) {
        if !self.json {
            eprintln!(
                "fold {fold}/{folds}: training without {held_out} train images, then \
                 predicting them"
            );
        }
    }

    fn phase(&mut self, name: &str, total: u64) {
        self.bars.phase(name, total);
    }

    fn advance(&mut self, done: u64, loss: Option<f64>) {
        self.bars.advance(done, loss);
    }

    fn epoch_end(&mut self, record: &EpochRecord) {
        self.bars.epoch_end(record);
    }

    fn phase_end(&mut self) {
        self.bars.phase_end();
    }
}

fn print_summary(finished: &FinishedRun) {
    let run = finished.run;
    println!(
        "run {run}: best epoch {}, model saved in {}",
        finished.best_epoch,
        finished.model_dir.display()
    );
    print!("{}", finished.summary);
    println!("per-class tables: atelier eval {run}");
}

/// `--resume RUN`: the run must exist and not be completed (a failed one is reopened by
/// [`runner::execute_run`]).
async fn check_resumable(catalog: &Catalog, run: i64) -> CliResult<i64> {
    let record = catalog.run(run).await?.ok_or_else(|| {
        CliError::bad_input(format!("--resume {run}: no such run (see `atelier runs`)"))
    })?;
    if record.status == RunStatus::Completed {
        return Err(CliError::bad_input(format!(
            "--resume {run}: the run already completed; start a new run instead"
        )));
    }
    Ok(run)
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
        (Some(path), _) => Some(std::path::absolute(path).unwrap_or_else(|_| path.clone())),
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
        "grid" if (1..=7).contains(&args.grid_cells) => HeadKind::Grid {
            cells: args.grid_cells,
        },
        "grid" => return Err(CliError::bad_input("--grid-cells must be from 1 to 7")),
        other => {
            return Err(CliError::bad_input(format!(
                "--head {other}: choose pooled, grid or spatial"
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
    config.gce_q = args.gce_q;
    config.head = head;
    if let Some(stride) = args.feature_stride
        && !(stride.is_power_of_two() && (2..=64).contains(&stride))
    {
        return Err(CliError::bad_input(format!(
            "--feature-stride {stride}: use a power of two from 2 to 64 (e.g. 16)"
        )));
    }
    config.feature_stride = args.feature_stride;
    if let Some(stage) = args.feature_stage {
        let stages = backbone.stage_count();
        if !(1..=stages).contains(&stage) {
            return Err(CliError::bad_input(format!(
                "--feature-stage {stage}: {backbone} has stages 1 to {stages} (leave the option \
                 out for the final map)"
            )));
        }
    }
    config.feature_stage = args.feature_stage;
    config.freeze_backbone = args.freeze_backbone;
    if args.detail_crop {
        if let Some(side) = args.detail_side.iter().find(|s| !(0.1..=2.0).contains(*s)) {
            return Err(CliError::bad_input(format!(
                "--detail-side {side}: use a fraction of the dress box height from 0.1 to 2 \
                 (e.g. 0.62)"
            )));
        }
        config.detail_crops = args
            .detail_side
            .iter()
            .map(|&side| atelier_train::locator::DetailCrop {
                side,
                ..Default::default()
            })
            .collect();
    }
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
    config.folds = args.folds;
    config.drop_suspects = args.drop_suspects;
    Ok(config)
}
