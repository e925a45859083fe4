//! The glue between the catalogue and training, shared by the command line and the web app:
//! reading a run's dataset from the catalogue and storing a run's tables and per-image
//! predictions back into it.

use std::collections::HashMap;
use std::path::PathBuf;

use atelier_catalog::{Catalog, LabelledImage, PredictionRow, RunFacetResult};

use crate::error::AppError;
use atelier_train::data::{Dataset, Example, FacetSpec, Split};
use atelier_train::evaluate::{FacetEvaluation, Probabilities, argmax};

/// The catalogue's facets in their stored order (all of them when `facets` is empty).
pub async fn facet_names(catalog: &Catalog, facets: &[String]) -> Result<Vec<String>, AppError> {
    if !facets.is_empty() {
        return Ok(facets.to_vec());
    }
    Ok(catalog.facet_names().await?)
}

/// Every active image with its labels for `facets`, in the catalogue's label orders, each
/// example pointing at a local file (images in object storage are fetched into the image
/// cache first). Quarantined and removed images are never part of a dataset.
pub async fn load_dataset(catalog: &Catalog, facets: &[String]) -> Result<Dataset, AppError> {
    let names = facet_names(catalog, facets).await?;
    let orders = catalog.facet_label_orders(&names).await?;
    let images = catalog.training_images(&names).await?;
    let boxes = catalog.dress_boxes().await?;
    let facets: Vec<FacetSpec> = orders
        .into_iter()
        .map(|(name, labels)| FacetSpec { name, labels })
        .collect();
    let mut examples: Vec<Example> = images
        .into_iter()
        .map(|image| {
            let targets = image
                .labels
                .iter()
                .zip(&facets)
                .map(|(label, facet)| {
                    label
                        .as_ref()
                        .and_then(|label| facet.labels.iter().position(|l| l == label))
                })
                .collect();
            example(image, &boxes, targets)
        })
        .collect();
    crate::images::resolver().localise(&mut examples).await?;
    Ok(Dataset { facets, examples })
}

/// An active catalogue image as training sees it: its file, split and dress box (from
/// [`Catalog::dress_boxes`]), with `targets` per facet.
pub(crate) fn example(
    image: LabelledImage,
    boxes: &HashMap<String, [f64; 4]>,
    targets: Vec<Option<usize>>,
) -> Example {
    Example {
        dress_box: boxes
            .get(&image.id)
            .map(|b| [b[0] as f32, b[1] as f32, b[2] as f32, b[3] as f32]),
        detail_regions: Vec::new(),
        image_id: image.id,
        path: PathBuf::from(image.uri),
        split: image.split,
        targets,
    }
}

/// Stores a run's F1 tables, class weights and per-image predictions, replacing earlier ones.
/// `out_of_fold` says, per example, whether its probabilities come from a cross-fitted model
/// that never saw it (see [`atelier_train::folds`]); an empty slice means none does.
pub async fn record_results(
    catalog: &Catalog,
    run: i64,
    dataset: &Dataset,
    class_weights: &[Vec<f64>],
    evaluation: &[FacetEvaluation],
    probabilities: &Probabilities,
    out_of_fold: &[bool],
) -> Result<(), AppError> {
    if !out_of_fold.is_empty() && out_of_fold.len() != dataset.examples.len() {
        return Err(AppError::Invalid(format!(
            "run {run}: {} out-of-fold flags for {} images; give one per image or none",
            out_of_fold.len(),
            dataset.examples.len()
        )));
    }
    let facets: Vec<RunFacetResult> = evaluation
        .iter()
        .zip(class_weights)
        .map(|(facet, weights)| RunFacetResult {
            facet: facet.facet.clone(),
            labels: facet.labels.clone(),
            class_weights: weights.clone(),
            train_metrics: serde_json::to_value(&facet.train).ok(),
            test_metrics: serde_json::to_value(&facet.test).ok(),
        })
        .collect();
    let mut rows = Vec::with_capacity(dataset.examples.len() * dataset.facets.len());
    for (f, facet) in dataset.facets.iter().enumerate() {
        for (i, (example, scores)) in dataset.examples.iter().zip(&probabilities[f]).enumerate() {
            let (best, confidence) = argmax(scores);
            rows.push(PredictionRow {
                image_id: example.image_id.clone(),
                facet: facet.name.clone(),
                split: example.split,
                label: example.targets[f].map(|t| facet.labels[t].clone()),
                predicted: facet.labels[best].clone(),
                confidence: f64::from(confidence),
                scores: scores.clone(),
                out_of_fold: out_of_fold.get(i).copied().unwrap_or(false),
            });
        }
    }
    catalog.record_run_results(run, &facets, &rows).await?;
    Ok(())
}

/// Per facet of `run`, its test-split metrics against the imported ground truth (`atelier
/// import --truth`) instead of the catalogue's labels; facets without truth are left out.
/// When labels are known to be noisy (the demo flips some on purpose), this measures the
/// tagger rather than the noise.
pub async fn test_metrics_against_truth(
    catalog: &Catalog,
    run: i64,
) -> Result<Vec<(String, atelier_train::metrics::SplitMetrics)>, AppError> {
    let mut out = Vec::new();
    for facet in catalog.run_facets(run).await? {
        let truth = catalog.truth_labels(&facet.facet).await?;
        if truth.is_empty() {
            continue;
        }
        let index = |label: &str| facet.labels.iter().position(|l| l == label);
        let (mut expected, mut predicted) = (Vec::new(), Vec::new());
        for row in catalog.predictions(run, Some(&facet.facet)).await? {
            if row.split != Split::Test {
                continue;
            }
            let (Some(t), Some(p)) = (
                truth.get(&row.image_id).and_then(|l| index(l)),
                index(&row.predicted),
            ) else {
                continue;
            };
            expected.push(t);
            predicted.push(p);
        }
        let metrics =
            atelier_train::metrics::classification_report(&facet.labels, &expected, &predicted);
        out.push((facet.facet, metrics));
    }
    Ok(out)
}
