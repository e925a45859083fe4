//! A catalogue run's whole life, for the command line and the web app alike: recording it
//! ([`create_run`], or [`create_retrain`] to repeat a run on the current labels), then
//! [`execute_run`]: load its dataset, train (resuming from checkpoints), cross-fit the fold
//! models when the run asks for out-of-fold predictions, save the model folder with its
//! lineage, store the tables and per-image predictions, and finish the run — or mark it failed
//! with the error.
//!
//! While it trains, a run's `progress` in the catalogue is kept current (at every phase change
//! and epoch end), so another process can follow it:
//! `{"phase": "epoch 3/20", "epoch": 3, "epochs": 20, "fold": null, "folds": 0,
//! "updated_at": 1700000000000}`. `epoch` is the epoch under way or last finished of the model
//! being trained; `fold` is that model's fold (1-based), `null` for the main model.

use std::path::{Path, PathBuf};
use std::time::Instant;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use atelier_catalog::{
    Catalog, CatalogError, NewRun, RunFinish, RunLease, RunRecord, RunStatus, now_millis,
};
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::checkpoint_mirror;
use crate::dataset;
use crate::error::AppError;
use crate::lease;
use crate::models;
use crate::summary::{FacetScores, PublishedModel, RunSummary, TrainMetrics};
use atelier_train::BackboneChoice;
use atelier_train::artifact::{ModelManifest, lineage, save_model};
use atelier_train::config::TrainConfig;
use atelier_train::data::{Dataset, Split};
use atelier_train::evaluate::{FacetEvaluation, Probabilities, evaluate};
use atelier_train::folds::cross_fit;
use atelier_train::mistags::drop_suspected_labels;
use atelier_train::progress::{EpochRecord, Observer, RunStart};
use atelier_train::trainer::{TrainOutcome, train};

/// The `kind` of the catalogue runs this module records.
pub const FACETS_RUN: &str = "facets";

/// Where a run keeps its files. Checkpoints and models go into a folder named by the
/// catalogue's id below each base, so that two catalogues sharing a folder never meet.
#[derive(Debug, Clone)]
pub struct RunPaths {
    /// Checkpoints go to `CATALOG-ID/run-N/` below (fold models to `CATALOG-ID/run-N/fold-k/`).
    /// Stored with the run when it is created; a resume uses the stored folder.
    pub checkpoint_base: PathBuf,
    /// The model is saved as the folder `CATALOG-ID/run-N/` below.
    pub model_base: PathBuf,
    /// Frozen-backbone features, kept between runs (see [`atelier_train::features::FeatureCache`]).
    pub feature_cache: PathBuf,
    /// The model store (`--store` URL) that runs recorded with a name to publish under publish
    /// their models to; `None` publishes nothing.
    pub store: Option<String>,
    /// Keep checkpoints in `store` too (see [`crate::checkpoint_mirror`]), and train in this
    /// process's own `checkpoint_base` rather than the folder stored with the run: how workers
    /// on several machines share runs.
    pub mirror_checkpoints: bool,
}

/// What a completed run produced.
#[derive(Debug, Clone)]
pub struct FinishedRun {
    pub run: i64,
    pub model_dir: PathBuf,
    /// The summary stored with the run.
    pub summary: RunSummary,
    pub evaluation: Vec<FacetEvaluation>,
    pub best_epoch: usize,
    /// For a run recorded with a name to publish under: the published model, or why
    /// publishing failed (the run is completed and its model folder kept either way).
    pub published: Option<Result<PublishedModel, String>>,
}

/// Records a new run (status running, held by this process: see [`crate::lease`]) for `config`
/// on the catalogue's facets; `parent_run` is the run it retrains. Refuses unknown facets
/// before recording anything.
///
/// An empty `config.facets` means every facet of the catalogue; the stored configuration
/// names them, so a resume or retrain trains the same heads.
pub async fn create_run(
    catalog: &Catalog,
    config: &TrainConfig,
    paths: &RunPaths,
    parent_run: Option<i64>,
) -> Result<i64, AppError> {
    create_published_run(catalog, config, paths, parent_run, None).await
}

/// Fills in EfficientNet-Lite0's ImageNet weights (from `atelier weights fetch
/// efficientnet-lite0`) when a configuration on that backbone names none; the other backbones
/// start from random weights without a file.
pub fn fill_default_weights(config: &mut TrainConfig) -> Result<(), AppError> {
    if config.weights.is_none() {
        config.weights = default_weights(config.backbone)?;
    }
    Ok(())
}

/// The ImageNet weights a backbone starts from when none are named: EfficientNet-Lite0's
/// cached ones (an error saying how to fetch them when they are not cached); `None` for the
/// other backbones.
pub fn default_weights(backbone: BackboneChoice) -> Result<Option<PathBuf>, AppError> {
    use atelier_models::pretrained::{self, EFFICIENTNET_LITE0};
    if backbone != BackboneChoice::EfficientnetLite0 {
        return Ok(None);
    }
    let cached = pretrained::cached(&EFFICIENTNET_LITE0, &pretrained::default_cache_dir());
    cached.map(Some).ok_or_else(|| {
        AppError::Invalid(format!(
            "no ImageNet weights for {0}: fetch them with `atelier weights fetch {0}`, or name \
             a weights file",
            EFFICIENTNET_LITE0.name
        ))
    })
}

/// Like [`create_run`]; with `publish`, the trained model is published to `paths.store` as the
/// next version of that name (checked, with the store, before anything is recorded), and
/// retrains of the run publish under the same name.
pub async fn create_published_run(
    catalog: &Catalog,
    config: &TrainConfig,
    paths: &RunPaths,
    parent_run: Option<i64>,
    publish: Option<&str>,
) -> Result<i64, AppError> {
    let mut config = config.clone();
    fill_default_weights(&mut config)?;
    config.validate()?;
    check_publish(paths, publish).await?;
    config.facets = dataset::facet_names(catalog, &config.facets).await?;
    catalog.facet_label_orders(&config.facets).await?;
    let catalog_id = catalog.catalog_id().await?;
    let stored = json!({
        "train": config,
        "checkpoint_dir": absolute(&catalog_folder(&paths.checkpoint_base, &catalog_id)),
        "publish": publish,
    });
    Ok(catalog
        .create_run(&NewRun {
            kind: FACETS_RUN.into(),
            config: stored,
            parent_run,
            lease: Some(RunLease {
                owner: lease::owner().to_string(),
                expires_at: lease::expiry(),
            }),
        })
        .await?)
}

/// Refuses, before anything is recorded, a name to publish under that the store cannot take.
pub(crate) async fn check_publish(paths: &RunPaths, publish: Option<&str>) -> Result<(), AppError> {
    if let Some(name) = publish {
        let store = paths.store.as_deref().ok_or_else(|| {
            AppError::Invalid(format!(
                "publishing as {name} needs a model store; name one"
            ))
        })?;
        models::check_publish_target(store, name).await?;
    }
    Ok(())
}

/// A new run with the stored configuration of `parent` (facets, backbone, folds, everything),
/// trained on the catalogue's CURRENT labels. Returns the new run id (not yet trained).
pub async fn create_retrain(
    catalog: &Catalog,
    parent: i64,
    paths: &RunPaths,
) -> Result<i64, AppError> {
    let record = find_run(catalog, parent).await?;
    let config = stored_config(&record)?;
    create_published_run(
        catalog,
        &config,
        paths,
        Some(parent),
        stored_publish(&record),
    )
    .await
}

/// The name a run publishes its model under, if it was recorded with one.
pub fn stored_publish(record: &RunRecord) -> Option<&str> {
    record.config["publish"].as_str()
}

/// The training configuration stored with a run.
pub fn stored_config(record: &RunRecord) -> Result<TrainConfig, AppError> {
    if record.kind != FACETS_RUN {
        return Err(AppError::Invalid(format!(
            "run {} is a `{}` run; only `{FACETS_RUN}` runs can be trained here",
            record.id, record.kind
        )));
    }
    serde_json::from_value(record.config["train"].clone()).map_err(|e| {
        AppError::Catalog(CatalogError::Corrupt {
            table: "runs",
            column: "config",
            value: format!("run {}: {e}", record.id),
        })
    })
}

/// The checkpoint base folder stored with a run (`None` for a run recorded without one).
pub fn stored_checkpoint_base(record: &RunRecord) -> Option<PathBuf> {
    record.config["checkpoint_dir"].as_str().map(PathBuf::from)
}

/// Trains run `run` (its stored config; resumes from its checkpoints), saves the model,
/// records tables and predictions, finishes the run; on error marks it failed and returns the
/// error. Progress goes to `observer` AND is written to the run's `progress` JSON in the
/// catalogue at each phase change and epoch end ({"phase":..,"epoch":..,"epochs":..,
/// "fold":..,"folds":..,"updated_at":..}) so another process (the web app) can show it.
///
/// The run is taken under this process's lease first (a failed or interrupted run is reopened:
/// that is how a run is resumed), renewed while it trains; a completed run is refused, and so
/// is a run another living process holds ([`CatalogError::RunHeld`]), so two processes never
/// write the same checkpoints.
pub async fn execute_run(
    catalog: &Catalog,
    run: i64,
    paths: &RunPaths,
    observer: Box<dyn Observer + Send>,
) -> Result<FinishedRun, AppError> {
    let record = find_run(catalog, run).await?;
    if record.status == RunStatus::Completed {
        return Err(AppError::Invalid(format!(
            "run {run} already completed; train a new one (`atelier retrain {run}` repeats it \
             on the current labels)"
        )));
    }
    hold_run(
        catalog,
        &record,
        train_and_record(catalog, &record, paths, observer),
    )
    .await
}

/// Does `work` on `record`'s run while this process holds it: claims the run (see
/// [`claim_run`]), renews the lease until `work` ends, and when `work` fails marks the run
/// failed with its error (a second failure, e.g. a lost lease, is only logged).
pub(crate) async fn hold_run<T>(
    catalog: &Catalog,
    record: &RunRecord,
    work: impl std::future::Future<Output = Result<T, AppError>>,
) -> Result<T, AppError> {
    let run = record.id;
    claim_run(catalog, record).await?;
    let lost = Arc::new(AtomicBool::new(false));
    let flag = lost.clone();
    let heartbeat = tokio::spawn(lease::keep_alive(
        catalog.clone(),
        move || vec![run],
        move |_| flag.store(true, Ordering::SeqCst),
    ));
    let result = work.await;
    heartbeat.abort();
    if let Err(error) = &result {
        let failed = RunFinish {
            status: RunStatus::Failed,
            summary: None,
            model_ref: None,
            error: Some(error.to_string()),
        };
        // The work's error is the one to report; a second failure only gets logged.
        if let Err(e) = catalog.finish_held_run(run, lease::owner(), &failed).await {
            let why = if lost.load(Ordering::SeqCst) {
                " (its lease was lost)"
            } else {
                ""
            };
            tracing::warn!("run {run} failed ({error}) and could not be marked failed{why}: {e}");
        }
    }
    result
}

/// Takes `record`'s run for this process (see [`execute_run`]), also from a holder on this
/// machine whose process is gone. The web app claims an interrupted run this way before it
/// queues it for resuming.
pub async fn claim_run(catalog: &Catalog, record: &RunRecord) -> Result<(), AppError> {
    let now = now_millis();
    let gone = record
        .lease
        .as_ref()
        .filter(|held| held.is_alive(now) && lease::owner_is_gone(&held.owner))
        .map(|held| held.owner.clone());
    catalog
        .take_run(record.id, lease::owner(), lease::expiry(), gone.as_deref())
        .await?;
    Ok(())
}

/// The newest completed run of `kind` in `runs` (which the catalogue lists newest first).
pub fn newest_completed<'a>(runs: &'a [RunRecord], kind: &str) -> Option<&'a RunRecord> {
    runs.iter()
        .find(|r| r.kind == kind && r.status == RunStatus::Completed)
}

pub(crate) async fn find_run(catalog: &Catalog, run: i64) -> Result<RunRecord, AppError> {
    catalog.run(run).await?.ok_or_else(|| {
        AppError::Invalid(format!(
            "run {run} does not exist (see `atelier runs` for the runs)"
        ))
    })
}

/// What the training thread hands back.
struct Trained {
    dataset: Dataset,
    class_weights: Vec<Vec<f64>>,
    probabilities: Probabilities,
    out_of_fold: Vec<bool>,
    evaluation: Vec<FacetEvaluation>,
    best_epoch: usize,
    history: Vec<EpochRecord>,
    stopped_early: bool,
    /// How well the dress locator of a detail-view run placed its boxes.
    locator: Option<atelier_train::dress_boxes::LocatorReport>,
    /// Per facet, the train labels the main model did not learn from (`drop_suspects`).
    dropped_suspects: Option<std::collections::BTreeMap<String, usize>>,
    /// The progress last sent, to go on from.
    progress: ProgressState,
}

async fn train_and_record(
    catalog: &Catalog,
    record: &RunRecord,
    paths: &RunPaths,
    observer: Box<dyn Observer + Send>,
) -> Result<FinishedRun, AppError> {
    let started = Instant::now();
    let run = record.id;
    let config = stored_config(record)?;
    config.validate()?;
    let catalog_id = catalog.catalog_id().await?;
    let (checkpoint_dir, observer) =
        checkpoint_folder(record, paths, &catalog_id, observer).await?;
    // Absolute, so that a process started elsewhere (the web app) finds the model too.
    let model_dir = absolute(
        &paths
            .model_base
            .join(&catalog_id)
            .join(format!("run-{run}")),
    );

    let mut state = ProgressState::new(&config);
    state.phase = "load".into();
    catalog.set_run_progress(run, &state.to_json()).await?;
    let dataset = dataset::load_dataset(catalog, &config.facets).await?;
    if config.folds > 0 && !config.caches_features() {
        tracing::warn!(
            "run {run}: {} folds without cached features train {} more complete networks \
             (about {}x the time of one run); a frozen backbone without a spatial transformer \
             shares one feature cache instead",
            config.folds,
            config.folds,
            config.folds + 1
        );
    }

    let (sender, receiver) = unbounded_channel();
    let observer = CatalogProgress {
        inner: observer,
        state,
        sender,
    };
    let (thread_config, cache, dir) = (
        config.clone(),
        paths.feature_cache.clone(),
        model_dir.clone(),
    );
    let training = tokio::task::spawn_blocking(move || {
        train_blocking(
            run,
            dataset,
            &thread_config,
            &checkpoint_dir,
            &cache,
            &dir,
            observer,
        )
    });
    // The training thread's progress is written while it runs; the writer stops when the
    // thread drops its observer.
    let ((), joined) = tokio::join!(write_progress(catalog, run, receiver), training);
    let trained = joined.map_err(|e| AppError::Thread(e.to_string()))??;

    record_and_finish(catalog, record, paths, &config, trained, model_dir, started).await
}

/// The folder `record`'s run keeps its checkpoints in, and the observer to train with: with
/// `paths.mirror_checkpoints`, this process's own folder, first rebuilt from the store's copy,
/// and an observer that sends each saved checkpoint to the store; otherwise the folder stored
/// with the run.
async fn checkpoint_folder(
    record: &RunRecord,
    paths: &RunPaths,
    catalog_id: &str,
    observer: Box<dyn Observer + Send>,
) -> Result<(PathBuf, Box<dyn Observer + Send>), AppError> {
    let run = record.id;
    let mirror_store = paths.store.as_deref().filter(|_| paths.mirror_checkpoints);
    let Some(store) = mirror_store else {
        let folder = stored_checkpoint_base(record)
            .unwrap_or_else(|| catalog_folder(&paths.checkpoint_base, catalog_id))
            .join(format!("run-{run}"));
        return Ok((folder, observer));
    };
    let folder =
        absolute(&catalog_folder(&paths.checkpoint_base, catalog_id)).join(format!("run-{run}"));
    let mirrored = checkpoint_mirror::Mirrored::open(store, catalog_id, run, &folder)?;
    let restored = mirrored.restore().await?;
    if restored > 0 {
        tracing::info!(
            "run {run}: {restored} checkpoint files from the store into {}",
            folder.display()
        );
    }
    Ok((folder, mirrored.observer(observer)))
}

/// Stores a trained run's tables and predictions, publishes its model when the run asks for
/// it, and finishes the run (while this process still holds it) with its summary.
async fn record_and_finish(
    catalog: &Catalog,
    record: &RunRecord,
    paths: &RunPaths,
    config: &TrainConfig,
    trained: Trained,
    model_dir: PathBuf,
    started: Instant,
) -> Result<FinishedRun, AppError> {
    let run = record.id;
    let mut state = trained.progress.clone();
    state.phase = "record".into();
    state.fold = None;
    catalog.set_run_progress(run, &state.to_json()).await?;
    dataset::record_results(
        catalog,
        run,
        &trained.dataset,
        &trained.class_weights,
        &trained.evaluation,
        &trained.probabilities,
        &trained.out_of_fold,
    )
    .await?;

    let mut summary = run_summary(&trained, config, started);
    let published = publish_model(record, paths, &model_dir).await;
    match &published {
        Some(Ok(model)) => summary.published = Some(model.clone()),
        Some(Err(error)) => summary.publish_error = Some(error.clone()),
        None => {}
    }
    let stored = serde_json::to_value(&summary)
        .map_err(|e| AppError::Invalid(format!("run {run}: the summary cannot be written: {e}")))?;
    send_model_for_workers(catalog, paths, run, &model_dir).await?;
    catalog
        .finish_held_run(
            run,
            lease::owner(),
            &RunFinish {
                status: RunStatus::Completed,
                summary: Some(stored),
                model_ref: Some(model_dir.display().to_string()),
                error: None,
            },
        )
        .await?;
    Ok(FinishedRun {
        run,
        model_dir,
        summary,
        evaluation: trained.evaluation,
        best_epoch: trained.best_epoch,
        published,
    })
}

/// On a worker (`paths.mirror_checkpoints`), sends the run's model folder to the store, so that
/// the app and commands on other machines can load it (see [`checkpoint_mirror::local_model`]).
pub(crate) async fn send_model_for_workers(
    catalog: &Catalog,
    paths: &RunPaths,
    run: i64,
    model_dir: &Path,
) -> Result<(), AppError> {
    if let Some(store) = paths.store.as_deref().filter(|_| paths.mirror_checkpoints) {
        let catalog_id = catalog.catalog_id().await?;
        checkpoint_mirror::send_model(store, &catalog_id, run, model_dir).await?;
    }
    Ok(())
}

/// The summary stored with a completed run.
fn run_summary(trained: &Trained, config: &TrainConfig, started: Instant) -> RunSummary {
    let facets = trained
        .evaluation
        .iter()
        .map(|facet| {
            let scores = FacetScores {
                train_macro_f1: facet.train.macro_f1,
                test_macro_f1: facet.test.macro_f1,
                test_weighted_f1: facet.test.weighted_f1,
                test_accuracy: facet.test.accuracy,
            };
            (facet.facet.clone(), scores)
        })
        .collect();
    RunSummary {
        facets,
        best_epoch: trained.best_epoch,
        epochs_run: trained.history.len(),
        stopped_early: trained.stopped_early,
        history: trained.history.clone(),
        folds: config.folds,
        train_metrics: if config.folds > 0 {
            TrainMetrics::OutOfFold
        } else {
            TrainMetrics::InSample
        },
        locator: trained.locator,
        dropped_suspects: trained.dropped_suspects.clone(),
        seconds: started.elapsed().as_secs_f64(),
        published: None,
        publish_error: None,
    }
}

/// Publishes the model of a run recorded with a name to publish under, to `paths.store`.
pub(crate) async fn publish_model(
    record: &RunRecord,
    paths: &RunPaths,
    model_dir: &Path,
) -> Option<Result<PublishedModel, String>> {
    let (name, store) = (stored_publish(record)?, paths.store.as_deref()?);
    let published = async {
        let store = models::open_store(store)?;
        let manifest = models::publish_folder(&store, name, model_dir).await?;
        Ok::<_, AppError>(models::published_model(&store, &manifest))
    };
    Some(published.await.map_err(|e| {
        format!(
            "run {} completed, but publishing its model failed: {e}; publish it with `atelier \
             models push {} --name {name}`",
            record.id,
            model_dir.display()
        )
    }))
}

/// The part of a run that computes: the main model, the fold models, the saved model folder.
fn train_blocking(
    run: i64,
    dataset: Dataset,
    config: &TrainConfig,
    checkpoint_dir: &Path,
    feature_cache: &Path,
    model_dir: &Path,
    mut observer: CatalogProgress,
) -> Result<Trained, AppError> {
    announce(run, config, &dataset, &mut observer);
    let mut dataset = dataset;
    let placed = if config.detail_crops.is_empty() {
        None
    } else {
        Some(atelier_train::dress_boxes::place_detail_views(
            &mut dataset,
            config,
            &config.detail_crops,
            Some(feature_cache),
            &mut observer,
        )?)
    };
    let fold_scores = |observer: &mut CatalogProgress| {
        cross_fit(
            &dataset,
            config,
            checkpoint_dir,
            Some(feature_cache),
            observer,
        )
    };
    // Dropping suspects needs the fold models' scores before the main model trains; otherwise
    // the folds run after it.
    let (mut cross_fitted, pruned) = match config.drop_suspects {
        Some(min_margin) => {
            let scores = fold_scores(&mut observer)?;
            let pruned = drop_suspected_labels(&dataset, &scores, min_margin);
            (Some(scores), Some(pruned))
        }
        None => (None, None),
    };
    let training_set = pruned.as_ref().map_or(&dataset, |(pruned, _)| pruned);
    let mut main = train(
        training_set,
        config,
        checkpoint_dir,
        Some(feature_cache),
        &mut observer,
    )?;
    let locator_report = placed.as_ref().map(|(_, report)| *report);
    main.net.locator = placed.map(|(locator, _)| locator);
    if config.folds > 0 && cross_fitted.is_none() {
        cross_fitted = Some(fold_scores(&mut observer)?);
    }
    // The probabilities and tables move out; the rest of `main` is the model to save.
    let (probabilities, out_of_fold, evaluation) = if let Some(cross_fitted) = cross_fitted {
        let main_probabilities = std::mem::take(&mut main.probabilities);
        let (probabilities, out_of_fold) = merge_out_of_fold(main_probabilities, cross_fitted);
        // Train tables from out-of-fold probabilities, test tables from the main model.
        let evaluation = evaluate(&dataset, &probabilities);
        (probabilities, out_of_fold, evaluation)
    } else {
        let in_sample = vec![false; dataset.examples.len()];
        (
            std::mem::take(&mut main.probabilities),
            in_sample,
            std::mem::take(&mut main.evaluation),
        )
    };

    observer.record_phase("save");
    save_main_model(run, config, &dataset, &main, &evaluation, model_dir)?;
    let dropped_suspects = pruned.as_ref().map(|(_, dropped)| {
        dataset
            .facets
            .iter()
            .zip(dropped)
            .map(|(facet, &count)| (facet.name.clone(), count))
            .collect()
    });
    Ok(Trained {
        dataset,
        class_weights: main.class_weights,
        probabilities,
        out_of_fold,
        evaluation,
        best_epoch: main.best_epoch,
        history: main.history,
        stopped_early: main.stopped_early,
        locator: locator_report,
        dropped_suspects,
        progress: observer.state.clone(),
    })
}

/// Tells the observer what the run trains on.
fn announce(run: i64, config: &TrainConfig, dataset: &Dataset, observer: &mut CatalogProgress) {
    let train_images = dataset
        .examples
        .iter()
        .filter(|e| e.split == Split::Train)
        .count();
    observer.run_start(&RunStart {
        run,
        config,
        train_images,
        test_images: dataset.examples.len() - train_images,
    });
}

/// Saves the main model as the run's model folder, with the lineage of the labels it was
/// trained from (the catalogue's at training time; the summary says which the main model left
/// out). A folder left by an earlier attempt of a resumed run is replaced.
fn save_main_model(
    run: i64,
    config: &TrainConfig,
    dataset: &Dataset,
    main: &TrainOutcome,
    evaluation: &[FacetEvaluation],
    model_dir: &Path,
) -> Result<(), AppError> {
    let manifest = ModelManifest::new(
        Some(run),
        config,
        main.input,
        dataset.facets.clone(),
        main.class_weights.clone(),
        main.best_epoch,
        now_millis(),
    );
    if model_dir.exists() {
        std::fs::remove_dir_all(model_dir).map_err(|e| AppError::io(model_dir, e))?;
    }
    let lineage = lineage(dataset, run, config);
    save_model(model_dir, &manifest, &main.net, evaluation, Some(&lineage))?;
    Ok(())
}

/// Replaces the main model's probabilities by the out-of-fold ones where there are any, and
/// says per example which it kept.
fn merge_out_of_fold(
    mut probabilities: Probabilities,
    cross_fitted: atelier_train::folds::OutOfFold,
) -> (Probabilities, Vec<bool>) {
    let examples = probabilities.first().map_or(0, Vec::len);
    let mut out_of_fold = vec![false; examples];
    for (facet, per_example) in cross_fitted.into_iter().enumerate() {
        for (i, scores) in per_example.into_iter().enumerate() {
            if let Some(scores) = scores {
                probabilities[facet][i] = scores;
                out_of_fold[i] = true;
            }
        }
    }
    (probabilities, out_of_fold)
}

/// The run's progress as written to the catalogue.
#[derive(Debug, Clone, PartialEq)]
struct ProgressState {
    phase: String,
    epoch: usize,
    epochs: usize,
    /// 1-based fold of the model being trained; `None` for the main model.
    fold: Option<usize>,
    folds: usize,
}

impl ProgressState {
    fn new(config: &TrainConfig) -> Self {
        Self {
            phase: String::new(),
            epoch: 0,
            epochs: config.epochs,
            fold: None,
            folds: config.folds,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "phase": self.phase,
            "epoch": self.epoch,
            "epochs": self.epochs,
            "fold": self.fold,
            "folds": self.folds,
            "updated_at": now_millis(),
        })
    }
}

/// `(epoch, epochs)` of a training phase named `epoch E/N` by the trainer.
fn epoch_of_phase(name: &str) -> Option<(usize, usize)> {
    let (epoch, epochs) = name.strip_prefix("epoch ")?.split_once('/')?;
    Some((epoch.parse().ok()?, epochs.parse().ok()?))
}

/// Passes every event to the caller's observer and sends the run's progress to the catalogue
/// writer at each phase change and epoch end.
struct CatalogProgress {
    inner: Box<dyn Observer + Send>,
    state: ProgressState,
    sender: UnboundedSender<Value>,
}

impl CatalogProgress {
    fn send(&self) {
        // The receiver lives until this observer is dropped; a failed send cannot happen.
        let _ = self.sender.send(self.state.to_json());
    }

    /// A phase of the run itself (not of training): recorded, not shown as a bar.
    fn record_phase(&mut self, name: &str) {
        self.state.phase = name.to_string();
        self.send();
    }
}

impl Observer for CatalogProgress {
    fn run_start(&mut self, start: &RunStart) {
        self.inner.run_start(start);
    }

    fn fold_start(&mut self, fold: usize, folds: usize, held_out: usize) {
        self.state.fold = Some(fold);
        self.state.folds = folds;
        self.state.epoch = 0;
        self.state.phase = format!("fold {fold}/{folds}");
        self.send();
        self.inner.fold_start(fold, folds, held_out);
    }

    fn phase(&mut self, name: &str, total: u64) {
        self.state.phase = name.to_string();
        if let Some((epoch, epochs)) = epoch_of_phase(name) {
            self.state.epoch = epoch;
            self.state.epochs = epochs;
        }
        self.send();
        self.inner.phase(name, total);
    }

    fn advance(&mut self, done: u64, loss: Option<f64>) {
        self.inner.advance(done, loss);
    }

    fn epoch_end(&mut self, record: &EpochRecord) {
        self.state.epoch = record.epoch;
        self.send();
        self.inner.epoch_end(record);
    }

    fn phase_end(&mut self) {
        self.inner.phase_end();
    }

    fn checkpoint_saved(&mut self, folder: &Path) {
        self.inner.checkpoint_saved(folder);
    }

    fn stop_requested(&self) -> bool {
        self.inner.stop_requested()
    }
}

/// Writes progress values to the run as they come, skipping to the newest when several are
/// waiting, until the sender is dropped. Progress is advisory: a failed write is logged.
async fn write_progress(catalog: &Catalog, run: i64, mut receiver: UnboundedReceiver<Value>) {
    while let Some(mut latest) = receiver.recv().await {
        while let Ok(newer) = receiver.try_recv() {
            latest = newer;
        }
        if let Err(e) = catalog.set_run_progress(run, &latest).await {
            tracing::warn!("run {run}: cannot record progress: {e}");
        }
    }
}

/// The catalogue's own folder below `base`: `base/CATALOG-ID`, or `base` itself when it is
/// already that folder (a retrain that keeps its checkpoints beside its parent's).
pub(crate) fn catalog_folder(base: &Path, catalog_id: &str) -> PathBuf {
    if base.file_name().is_some_and(|name| name == catalog_id) {
        base.to_path_buf()
    } else {
        base.join(catalog_id)
    }
}

pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_phases_are_read_and_others_ignored() {
        assert_eq!(epoch_of_phase("epoch 3/20"), Some((3, 20)));
        assert_eq!(epoch_of_phase("features"), None);
        assert_eq!(epoch_of_phase("epoch x/2"), None);
    }

    #[test]
    fn out_of_fold_scores_replace_only_where_present() {
        let main: Probabilities = vec![
            vec![vec![0.9, 0.1], vec![0.8, 0.2], vec![0.7, 0.3]],
            vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.5, 0.5]],
        ];
        let cross_fitted = vec![
            vec![None, Some(vec![0.4, 0.6]), None],
            vec![None, Some(vec![0.3, 0.7]), None],
        ];
        let (merged, flags) = merge_out_of_fold(main.clone(), cross_fitted);
        assert_eq!(flags, [false, true, false]);
        assert_eq!(merged[0][1], [0.4, 0.6]);
        assert_eq!(merged[1][1], [0.3, 0.7]);
        for facet in 0..2 {
            for i in [0, 2] {
                assert_eq!(merged[facet][i], main[facet][i]);
            }
        }
    }
}
