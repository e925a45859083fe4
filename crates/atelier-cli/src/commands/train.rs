//! `atelier train facets`: builds the run's configuration from the options (or takes a stored
//! run's for `--resume`), then lets `atelier_app::runner` record the run, train it, save the
//! model in the store's folder and store the F1 tables and per-image predictions with the run;
//! this module draws the progress, prints the tables and publishes the model.

use std::path::{Path, PathBuf};

use atelier_app::runner::{self, FinishedRun, RunPaths};
use atelier_app::summary::{PublishedModel, RunSummary};
use atelier_catalog::{Catalog, RunStatus};
use atelier_train::TrainConfig;
use atelier_train::config::{Recipe, choose};
use atelier_train::crop::DetailCrop;
use atelier_train::input::Augmentation;
use atelier_train::progress::{EpochRecord, Observer, RunStart};
use serde_json::json;

use crate::args::{DroppedTrainFlags, GlobalArgs, TrainFacetsArgs};
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
    if args.print_config {
        return print_json(&configure(args)?);
    }
    if args.queue {
        let paths = run_paths(&args.checkpoint_dir, &global.store)?;
        let run = record_facets_run(catalog, args, &paths).await?;
        let job = atelier_app::jobs::queue_run(catalog, run, "cli").await?;
        return crate::commands::jobs::print_queued(job, Some(run), global.json);
    }
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
    if args.resume.is_none() {
        // This process trains the run, so its device must work before the run is recorded.
        check_device(configure(args)?.device)?;
    }
    let run = record_facets_run(catalog, args, &paths).await?;
    execute(catalog, run, &paths, global).await
}

/// Starts `device` (once per process) or says why it cannot be used.
pub fn check_device(device: atelier_train::DeviceChoice) -> CliResult {
    atelier_train::device::device_for(device).map_err(atelier_app::AppError::from)?;
    Ok(())
}

/// The run to train: the `--resume`d one, or a new one recorded from the options.
async fn record_facets_run(
    catalog: &Catalog,
    args: &TrainFacetsArgs,
    paths: &RunPaths,
) -> CliResult<i64> {
    Ok(match args.resume {
        Some(run) => check_resumable(catalog, run).await?,
        None => {
            let config = configure(args)?;
            runner::create_published_run(catalog, &config, paths, None, args.publish.as_deref())
                .await?
        }
    })
}

/// Trains a recorded run with progress bars (none with `--json`) and prints its summary.
pub async fn execute(
    catalog: &Catalog,
    run: i64,
    paths: &RunPaths,
    global: &GlobalArgs,
) -> CliResult<TrainedRun> {
    let observer = Box::new(CliObserver::new(
        TrainProgress::new(global.json),
        global.json,
    ));
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
        mirror_checkpoints: false,
        feature_cache: feature_cache_dir(),
    })
}

/// The progress bars, plus the lines a person reads as a run and its folds start.
pub struct CliObserver {
    bars: TrainProgress,
    json: bool,
}

impl CliObserver {
    pub fn new(bars: TrainProgress, json: bool) -> Self {
        CliObserver { bars, json }
    }
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

/// The run's configuration: the recipe (finetune unless named) or the `--config` file, with
/// every option given on top, checked as a whole.
pub fn configure(args: &TrainFacetsArgs) -> CliResult<TrainConfig> {
    refuse_dropped(&args.dropped)?;
    let mut config = match &args.config {
        Some(path) => read_config(path, "training configuration", "train facets")?,
        None => args.recipe.unwrap_or(Recipe::Finetune).config(),
    };
    override_network(&mut config, args);
    override_loop(&mut config, args);
    runner::fill_default_weights(&mut config)?;
    config.validate()?;
    Ok(config)
}

/// A configuration file for `--config`: JSON of a `what` (e.g. "training configuration"),
/// which `atelier COMMAND --print-config` writes.
pub fn read_config<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
    command: &str,
) -> CliResult<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::bad_input(format!("--config {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        CliError::bad_input(format!(
            "--config {}: not a {what} ({e}); `atelier {command} --print-config` writes one",
            path.display()
        ))
    })
}

/// What the network is: backbone, weights, heads, views, facets.
fn override_network(config: &mut TrainConfig, args: &TrainFacetsArgs) {
    if let Some(backbone) = args.backbone {
        if backbone != config.backbone {
            // The recipe's weights and stage belong to its backbone.
            config.weights = None;
            config.feature_stage = None;
        }
        config.backbone = backbone;
    }
    if let Some(weights) = &args.weights {
        config.weights = Some(std::path::absolute(weights).unwrap_or_else(|_| weights.clone()));
    }
    if !args.facets.is_empty() {
        config.facets = args.facets.clone();
    }
    config.head = choose(config.head, args.head);
    config.feature_stage = args.feature_stage.or(config.feature_stage);
    config.freeze_backbone = args.freeze_backbone.unwrap_or(config.freeze_backbone);
    config.spatial_transformer = args
        .spatial_transformer
        .unwrap_or(config.spatial_transformer);
    if let Some(sides) = &args.detail_views {
        config.detail_crops = sides
            .iter()
            .filter_map(|side| side.0)
            .map(|side| DetailCrop {
                side,
                ..DetailCrop::default()
            })
            .collect();
    }
    config.device = args.device.unwrap_or(config.device);
}

/// How it learns: loss, optimiser, schedule, epochs, data parts, cross-fitting.
fn override_loop(config: &mut TrainConfig, args: &TrainFacetsArgs) {
    config.epochs = args.epochs.unwrap_or(config.epochs);
    config.image_size = args.image_size.unwrap_or(config.image_size);
    config.batch_size = args.batch_size.unwrap_or(config.batch_size);
    config.learning_rate = args.lr.unwrap_or(config.learning_rate);
    config.optimizer = choose(config.optimizer, args.optimizer);
    config.schedule = choose(config.schedule, args.schedule);
    config.class_weighting = choose(config.class_weighting, args.class_weights);
    config.focal_gamma = args.focal_gamma.unwrap_or(config.focal_gamma);
    config.gce_q = args.gce_q.or(config.gce_q);
    if args.no_augment {
        config.augmentation = Augmentation::NONE;
    }
    config.validation_fraction = args
        .validation_fraction
        .unwrap_or(config.validation_fraction);
    config.patience = args.patience.or(config.patience);
    config.seed = args.seed.unwrap_or(config.seed);
    if let Some(folds) = args.folds {
        config.set_folds(folds);
    }
    config.drop_suspects = args.drop_suspects.or(config.drop_suspects);
}

/// The command-line option that sets a configuration field, for error messages.
pub fn flag_for(field: &str) -> String {
    match field {
        "learning_rate" => "--lr".into(),
        "class_weighting" => "--class-weights".into(),
        "detail_crops" => "--detail-views".into(),
        "augmentation" | "feature_stride" => format!("`{field}` (in a --config file)"),
        _ => format!("--{}", field.replace('_', "-")),
    }
}

/// Options that a recipe or a configuration file covers now fail with their replacement.
fn refuse_dropped(dropped: &DroppedTrainFlags) -> CliResult {
    let replacement = if dropped.detail_crop || !dropped.detail_side.is_empty() {
        Some((
            "--detail-crop/--detail-side",
            "--detail-views SIDES (e.g. 0.72,0.9)",
        ))
    } else if dropped.grid_cells.is_some() || dropped.head_channels.is_some() {
        Some((
            "--grid-cells/--head-channels",
            "--head grid|spatial (default sizes), or `head` in a --config file",
        ))
    } else if dropped.beta.is_some() {
        Some(("--beta", "`class_weighting` in a --config file"))
    } else if dropped.momentum.is_some() || dropped.weight_decay.is_some() {
        Some((
            "--momentum/--weight-decay",
            "`optimizer` in a --config file",
        ))
    } else if dropped.warmup_epochs.is_some()
        || dropped.step_epochs.is_some()
        || dropped.step_gamma.is_some()
    {
        Some((
            "--warmup-epochs/--step-epochs/--step-gamma",
            "`schedule` in a --config file",
        ))
    } else if dropped.feature_stride.is_some() {
        Some((
            "--feature-stride",
            "--feature-stage N, or `feature_stride` in a --config file",
        ))
    } else {
        None
    };
    match replacement {
        Some((old, new)) => Err(CliError::bad_input(format!(
            "{old} is no longer an option: use {new} (`atelier train facets --print-config` \
             writes a configuration file to start from)"
        ))),
        None => Ok(()),
    }
}
