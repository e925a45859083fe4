//! A similarity run's whole life, like a facet run's ([`crate::runner`]): record it
//! ([`create_similarity_run`]), then [`execute_similarity_run`]: read the photos with their
//! designs, boxes and labels from the catalogue, locate and crop the dresses, train the
//! embedding on the designs that are not held out, score it against the off-the-shelf embedding
//! on the held-out ones, save the model folder, store every active photo's embeddings in the
//! catalogue (what `atelier similar` searches), publish the model when the run was recorded
//! with a name, and finish the run — or mark it failed with the error.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use atelier_catalog::{Catalog, CatalogError, NewRun, RunFinish, RunLease, RunRecord, RunStatus};
use atelier_train::data::Dataset;
use atelier_train::metric::Triplet;
use atelier_train::progress::Observer;
use atelier_train::similarity_model::save_similarity_model;
use atelier_train::similarity_run::{
    SimilarityData, SimilarityEvaluation, SimilarityOutcome, SimilarityRunConfig, run_similarity,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::dataset;
use crate::error::AppError;
use crate::lease;
use crate::runner::{
    RunPaths, absolute, catalog_folder, check_publish, default_weights, find_run, hold_run,
    newest_completed, publish_model,
};
use crate::summary::PublishedModel;

/// The `kind` of the catalogue runs this module records.
pub const SIMILARITY_RUN: &str = "similarity";

/// The catalogue key of a run's trained embeddings.
pub fn embedding_key(run: i64) -> String {
    format!("run-{run}")
}

/// The catalogue key of a run's off-the-shelf embeddings.
pub fn off_the_shelf_key(run: i64) -> String {
    format!("run-{run}/off-the-shelf")
}

/// The catalogue key of the hubness biases that searches add to the cosines of `key`'s
/// vectors (one number per image; see [`atelier_train::hubness`]).
pub fn bias_key(key: &str) -> String {
    format!("{key}/hub-bias")
}

/// What a similarity run stores as its summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimilaritySummary {
    pub photos: usize,
    pub evaluation: SimilarityEvaluation,
    pub seconds: f64,
}

impl fmt::Display for SimilaritySummary {
    /// The side-by-side table of the held-out designs' numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.evaluation;
        writeln!(
            f,
            "held out: {} designs, {} photos ({} Recall@k queries, {} triplets, {} swap queries)",
            e.held_out_designs, e.held_out_photos, e.queries, e.triplets, e.swap_queries
        )?;
        if e.stored_triplets_learnt + e.stored_triplets_scored > 0 {
            writeln!(
                f,
                "stored triplets: {} learnt from, {} scored",
                e.stored_triplets_learnt, e.stored_triplets_scored
            )?;
        }
        writeln!(f, "{:<18} {:>13} {:>8}", "", "off-the-shelf", "trained")?;
        let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let rows = [
            (
                "Recall@1",
                e.off_the_shelf.recall_at_1,
                e.trained.recall_at_1,
            ),
            (
                "Recall@10",
                e.off_the_shelf.recall_at_10,
                e.trained.recall_at_10,
            ),
            (
                "triplet accuracy",
                e.off_the_shelf.triplet_accuracy,
                e.trained.triplet_accuracy,
            ),
            (
                "swap accuracy",
                e.off_the_shelf.swap_accuracy,
                e.trained.swap_accuracy,
            ),
        ];
        for (name, plain, trained) in rows {
            writeln!(f, "{name:<18} {:>13} {:>8}", cell(plain), cell(trained))?;
        }
        if let Some(iou) = e.locator.test_mean_iou {
            writeln!(
                f,
                "dress boxes: mean IoU {iou:.3} on the test split's boxes"
            )?;
        }
        let stages = [
            ("whole photo", e.locator.whole_photo),
            ("dress crop", e.locator.dress_crop),
        ];
        for (name, stage) in stages {
            if let Some(s) = stage {
                writeln!(
                    f,
                    "  {name}: regressor {:.3}, foreground vote {:.3}, both {:.3}",
                    s.regressor, s.vote, s.combined
                )?;
            }
        }
        if !e.facet_probe_accuracy.is_empty() {
            let shares: Vec<String> = e
                .facet_probe_accuracy
                .iter()
                .map(|(facet, share)| format!("{facet} {share:.3}"))
                .collect();
            writeln!(
                f,
                "facet probes: share of held-out photos given their current label: {}",
                shares.join(", ")
            )?;
        }
        Ok(())
    }
}

/// What a completed similarity run produced.
#[derive(Debug, Clone)]
pub struct FinishedSimilarityRun {
    pub run: i64,
    pub model_dir: PathBuf,
    pub summary: SimilaritySummary,
    pub published: Option<Result<PublishedModel, String>>,
}

/// Records a new similarity run (held by this process) for `config`; with `publish`, its model
/// is published as the next version of that name. Settings are checked first: nothing is
/// recorded for a configuration that cannot work.
pub async fn create_similarity_run(
    catalog: &Catalog,
    config: &SimilarityRunConfig,
    paths: &RunPaths,
    publish: Option<&str>,
) -> Result<i64, AppError> {
    record_similarity_run(catalog, config, paths, publish, None).await
}

/// Records a new similarity run with `parent`'s stored options (and the name it publishes
/// under), to train on the catalogue as it is now: its labels, boxes and stored triplets.
pub async fn create_similarity_retrain(
    catalog: &Catalog,
    parent: i64,
    paths: &RunPaths,
) -> Result<i64, AppError> {
    let record = find_run(catalog, parent).await?;
    let config = stored_similarity_config(&record)?;
    let publish = crate::runner::stored_publish(&record);
    record_similarity_run(catalog, &config, paths, publish, Some(parent)).await
}

async fn record_similarity_run(
    catalog: &Catalog,
    config: &SimilarityRunConfig,
    paths: &RunPaths,
    publish: Option<&str>,
    parent_run: Option<i64>,
) -> Result<i64, AppError> {
    let mut config = config.clone();
    if config.weights.is_none() {
        config.weights = default_weights(config.backbone)?;
    }
    config.validate()?;
    check_publish(paths, publish).await?;
    let catalog_id = catalog.catalog_id().await?;
    let stored = json!({
        "similarity": config,
        "checkpoint_dir": absolute(&catalog_folder(&paths.checkpoint_base, &catalog_id)),
        "publish": publish,
    });
    Ok(catalog
        .create_run(&NewRun {
            kind: SIMILARITY_RUN.into(),
            config: stored,
            parent_run,
            lease: Some(RunLease {
                owner: lease::owner().to_string(),
                expires_at: lease::expiry(),
            }),
        })
        .await?)
}

/// The similarity configuration stored with a run.
pub fn stored_similarity_config(record: &RunRecord) -> Result<SimilarityRunConfig, AppError> {
    if record.kind != SIMILARITY_RUN {
        return Err(AppError::Invalid(format!(
            "run {} is a `{}` run, not a `{SIMILARITY_RUN}` run",
            record.id, record.kind
        )));
    }
    serde_json::from_value(record.config["similarity"].clone()).map_err(|e| {
        AppError::Catalog(CatalogError::Corrupt {
            table: "runs",
            column: "config",
            value: format!("run {}: {e}", record.id),
        })
    })
}

/// Trains recorded similarity run `run` under this process's lease; on error the run is
/// marked failed with it.
pub async fn execute_similarity_run(
    catalog: &Catalog,
    run: i64,
    paths: &RunPaths,
    observer: Box<dyn Observer + Send>,
) -> Result<FinishedSimilarityRun, AppError> {
    let record = find_run(catalog, run).await?;
    let config = stored_similarity_config(&record)?;
    if record.status == RunStatus::Completed {
        return Err(AppError::Invalid(format!(
            "run {run} already completed; start a new similarity run"
        )));
    }
    let work = train_and_record(catalog, &record, config, paths, observer);
    hold_run(catalog, &record, work).await
}

async fn train_and_record(
    catalog: &Catalog,
    record: &RunRecord,
    config: SimilarityRunConfig,
    paths: &RunPaths,
    mut observer: Box<dyn Observer + Send>,
) -> Result<FinishedSimilarityRun, AppError> {
    let started = Instant::now();
    let run = record.id;
    let catalog_id = catalog.catalog_id().await?;
    // Absolute, so that a process started elsewhere (the web app) finds the model too.
    let model_dir = absolute(
        &paths
            .model_base
            .join(&catalog_id)
            .join(format!("run-{run}")),
    );
    let mut data = similarity_data(catalog).await?;
    let cache = paths.feature_cache.clone();
    let dir = model_dir.clone();
    let (data, outcome) = tokio::task::spawn_blocking(move || {
        let outcome = run_similarity(&mut data, &config, Some(run), Some(&cache), &mut *observer)?;
        let evaluation = serde_json::to_value(&outcome.evaluation).unwrap_or_default();
        save_similarity_model(&dir, &outcome.manifest, &outcome.net, &evaluation)?;
        Ok::<_, AppError>((data, outcome))
    })
    .await
    .map_err(|e| AppError::Thread(e.to_string()))??;
    store_embeddings(catalog, run, &data, &outcome).await?;
    let summary = SimilaritySummary {
        photos: data.dataset.examples.len(),
        evaluation: outcome.evaluation.clone(),
        seconds: started.elapsed().as_secs_f64(),
    };
    crate::runner::send_model_for_workers(catalog, paths, run, &model_dir).await?;
    let finish = RunFinish {
        status: RunStatus::Completed,
        summary: Some(serde_json::to_value(&summary).unwrap_or_default()),
        model_ref: Some(model_dir.display().to_string()),
        error: None,
    };
    catalog
        .finish_held_run(run, lease::owner(), &finish)
        .await?;
    let published = publish_model(record, paths, &model_dir).await;
    Ok(FinishedSimilarityRun {
        run,
        model_dir,
        summary,
        published,
    })
}

/// The completed similarity run `run`, or the newest one.
pub async fn similarity_run(catalog: &Catalog, run: Option<i64>) -> Result<RunRecord, AppError> {
    let record = match run {
        Some(run) => find_run(catalog, run).await?,
        None => newest_completed(&catalog.runs().await?, SIMILARITY_RUN)
            .cloned()
            .ok_or_else(|| {
                AppError::Invalid(
                    "the catalogue has no completed similarity run; train one with `atelier \
                     train similarity`"
                        .into(),
                )
            })?,
    };
    check_similarity_run(&record)?;
    Ok(record)
}

/// Refuses a run that is not a completed similarity run.
pub fn check_similarity_run(record: &RunRecord) -> Result<(), AppError> {
    if record.kind != SIMILARITY_RUN || record.status != RunStatus::Completed {
        return Err(AppError::Invalid(format!(
            "run {} is a {} `{}` run; similar photos come from a completed `{SIMILARITY_RUN}` run",
            record.id, record.status, record.kind
        )));
    }
    Ok(())
}

/// Stores `vectors` under `key` and (with pgvector) makes sure the key has its HNSW index.
pub(crate) async fn store_vectors(
    catalog: &Catalog,
    key: &str,
    vectors: &[(String, Vec<f32>)],
) -> Result<(), AppError> {
    catalog.put_embeddings(key, vectors).await?;
    if let Some((_, first)) = vectors.first() {
        catalog.index_vectors(key, first.len()).await?;
    }
    Ok(())
}

/// The hubness biases of `key`'s vectors, by image (nothing for none).
pub(crate) async fn store_biases(
    catalog: &Catalog,
    key: &str,
    biases: impl Iterator<Item = (String, f32)>,
) -> Result<(), AppError> {
    let rows: Vec<(String, Vec<f32>)> = biases.map(|(id, bias)| (id, vec![bias])).collect();
    Ok(catalog.put_embeddings(&bias_key(key), &rows).await?)
}

/// The stored hubness biases of `key`'s vectors of images `ids`, by image (those that have one).
pub(crate) async fn stored_biases(
    catalog: &Catalog,
    key: &str,
    ids: &[String],
) -> Result<HashMap<String, f32>, AppError> {
    Ok(catalog
        .embeddings_of(&bias_key(key), ids)
        .await?
        .into_iter()
        .filter_map(|(id, bias)| Some((id, *bias.first()?)))
        .collect())
}

/// Both embeddings of every photo of the run, under the run's keys, with their hubness biases.
async fn store_embeddings(
    catalog: &Catalog,
    run: i64,
    data: &SimilarityData,
    outcome: &SimilarityOutcome,
) -> Result<(), AppError> {
    let ids = data.dataset.examples.iter().map(|e| e.image_id.clone());
    let trained: Vec<(String, Vec<f32>)> = ids.clone().zip(outcome.trained.clone()).collect();
    let plain: Vec<(String, Vec<f32>)> = ids.clone().zip(outcome.off_the_shelf.clone()).collect();
    // The biases first: a search that sees the vectors' counter move reads them with them.
    for (key, biases) in [
        (embedding_key(run), &outcome.trained_bias),
        (off_the_shelf_key(run), &outcome.off_the_shelf_bias),
    ] {
        store_biases(catalog, &key, ids.clone().zip(biases.iter().copied())).await?;
    }
    store_vectors(catalog, &embedding_key(run), &trained).await?;
    store_vectors(catalog, &off_the_shelf_key(run), &plain).await?;
    let ids = data.dataset.examples.iter().map(|e| e.image_id.clone());
    crate::boxes::store_located(catalog, run, ids.zip(outcome.boxes.iter().copied())).await
}

/// Every active photo with its split, dress box, design (photos reviewers called the same
/// product share one) and current labels, and the catalogue's variant families.
pub async fn similarity_data(catalog: &Catalog) -> Result<SimilarityData, AppError> {
    let facets = dataset::facet_names(catalog, &[]).await?;
    let images = catalog.training_images(&facets).await?;
    let boxes = catalog.dress_boxes().await?;
    let designs = catalog.designs().await?;
    let design_of: HashMap<&str, &str> = designs
        .iter()
        .flat_map(|d| {
            d.images
                .iter()
                .map(move |image| (image.as_str(), d.id.as_str()))
        })
        .collect();
    let variants = designs
        .iter()
        .filter_map(|d| Some((d.id.clone(), d.variant_of.clone()?, d.varied_facet.clone()?)))
        .collect();
    let mut examples = Vec::with_capacity(images.len());
    let mut photo_designs = Vec::with_capacity(images.len());
    let mut labels = Vec::with_capacity(images.len());
    for image in images {
        photo_designs.push(design_of.get(image.id.as_str()).map(|d| d.to_string()));
        labels.push(
            facets
                .iter()
                .zip(&image.labels)
                .filter_map(|(facet, label)| Some((facet.clone(), label.clone()?)))
                .collect::<BTreeMap<_, _>>(),
        );
        examples.push(dataset::example(image, &boxes, Vec::new()));
    }
    crate::images::resolver().localise(&mut examples).await?;
    // Photos a reviewer called the same product are one design to learn from.
    let ids: Vec<String> = examples.iter().map(|e| e.image_id.clone()).collect();
    let decisions = catalog.duplicate_decisions().await?;
    crate::duplicates::merge_same_products(&ids, &mut photo_designs, &decisions);
    let row_of: HashMap<&str, usize> = examples
        .iter()
        .enumerate()
        .map(|(row, e)| (e.image_id.as_str(), row))
        .collect();
    let stored_triplets = catalog
        .triplets()
        .await?
        .iter()
        .filter_map(|t| {
            Some(Triplet {
                anchor: *row_of.get(t.reference.as_str())?,
                positive: *row_of.get(t.similar.as_str())?,
                negative: *row_of.get(t.dissimilar.as_str())?,
            })
        })
        .collect();
    Ok(SimilarityData {
        dataset: Dataset {
            facets: Vec::new(),
            examples,
        },
        designs: photo_designs,
        variants,
        labels,
        stored_triplets,
    })
}
