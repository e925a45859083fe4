//! A run's review queue of likely mistagged images: the suspects of every facet
//! ([`atelier_train::mistags::calibrated_suspects`]) among the run's out-of-sample predictions
//! in the catalogue, with the estimate of wrong labels per facet, and precision and recall
//! against the truth of a synthetic catalogue.

use atelier_catalog::{Catalog, PredictionRecord, RunFacetResult, Split};
use atelier_train::mistags::{calibrated_suspects, likelier_mistake_first};
use serde::Serialize;

use crate::error::AppError;

/// One entry of a run's review queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MistagItem {
    pub image_id: String,
    pub facet: String,
    pub split: Split,
    /// The label the image had when the run trained.
    pub given: String,
    pub suggested: String,
    /// Margin and probabilities are the facet's temperature-calibrated ones; the queue is
    /// ordered by `given_probability`, lowest first.
    pub margin: f32,
    pub given_probability: f32,
    pub suggested_probability: f32,
    /// The image's true label, when ground truth was imported for the facet.
    pub true_label: Option<String>,
    /// The version of the image's current label row for the facet (its label is still
    /// `given`): a correction made from the queue states it, so a concurrent change is
    /// detected rather than overwritten.
    pub version: i64,
}

/// How many labels of one facet confident learning estimates to be wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FacetEstimate {
    pub facet: String,
    /// Out-of-sample rows scored (test images, and out-of-fold train images).
    pub rows: usize,
    /// The calibrated confident joint's estimate of wrong labels among those rows.
    pub estimated_wrong: u64,
    /// The facet's items in the queue (after leaving out images already corrected).
    pub suspects: usize,
}

/// A run's review queue over all its facets (or one), likeliest mistakes first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MistagQueue {
    pub run: i64,
    pub items: Vec<MistagItem>,
    /// Whether train images took part: only when the run stored out-of-fold predictions
    /// (`--folds`); otherwise the queue holds test images only.
    pub train_images_included: bool,
    /// Per facet, how many labels are estimated to be wrong: how far down the queue to go.
    pub estimates: Vec<FacetEstimate>,
    /// `(k, precision@k)` for k in 10, 50, 100, 200 (those not above the queue's length): the
    /// share of the first k items whose true label differs from the given one. Empty unless
    /// ground truth is known.
    pub precision_at: Vec<(usize, f64)>,
    /// Out-of-sample (image, facet) rows whose true label differs from the label the run
    /// trained with; `None` unless ground truth is known.
    pub known_flips: Option<u64>,
    /// The share of those known flips that the queue holds; `None` unless ground truth is
    /// known and some label is flipped.
    pub recall: Option<f64>,
}

/// The k of precision@k.
const PRECISION_AT: [usize; 4] = [10, 50, 100, 200];

/// The confident-learning review queue of run `run`, for one facet or all of the run's facets.
///
/// Reads the run's stored predictions (scores in the run's label order, the label at training
/// time) and keeps the out-of-sample ones: test images, and train images predicted out of
/// fold; each facet is judged on those rows alone ([`calibrated_suspects`]). Images whose
/// current label differs from the label at training are left out (a reviewer already changed
/// them), and so are images no longer active.
pub async fn mistag_queue(
    catalog: &Catalog,
    run: i64,
    facet: Option<&str>,
) -> Result<MistagQueue, AppError> {
    let run_facets = catalog.run_facets(run).await?;
    if let Some(name) = facet
        && !run_facets.iter().any(|f| f.facet == name)
    {
        let trained: Vec<&str> = run_facets.iter().map(|f| f.facet.as_str()).collect();
        return Err(AppError::Invalid(format!(
            "run {run} has no results for facet `{name}` (it has: {}); choose one of those",
            if trained.is_empty() {
                "none yet".to_string()
            } else {
                trained.join(", ")
            }
        )));
    }
    // In-sample train predictions never count, so they are not even read.
    let predictions = catalog.out_of_sample_predictions(run, facet).await?;
    let train_images_included = predictions.iter().any(|p| p.out_of_fold);
    let mut items = Vec::new();
    let mut estimates = Vec::new();
    let mut truth = Truth::default();
    for result in run_facets
        .iter()
        .filter(|f| facet.is_none_or(|name| f.facet == name))
    {
        let queued = facet_queue(catalog, result, &predictions, &mut truth).await?;
        estimates.push(queued.estimate);
        items.extend(queued.items);
    }
    items.sort_by(|a, b| {
        likelier_mistake_first(a.given_probability, b.given_probability)
            .then_with(|| a.image_id.cmp(&b.image_id))
            .then_with(|| a.facet.cmp(&b.facet))
    });
    let found = items
        .iter()
        .filter(|item| item.true_label.as_ref().is_some_and(|t| *t != item.given))
        .count();
    Ok(MistagQueue {
        run,
        precision_at: if truth.known {
            precision_at(&items)
        } else {
            Vec::new()
        },
        known_flips: truth.known.then_some(truth.flips),
        recall: (truth.known && truth.flips > 0).then(|| found as f64 / truth.flips as f64),
        items,
        train_images_included,
        estimates,
    })
}

/// Whether ground truth is known for any facet, and how many out-of-sample labels it says are
/// wrong.
#[derive(Default)]
struct Truth {
    known: bool,
    flips: u64,
}

/// One facet's part of the queue.
struct FacetQueue {
    items: Vec<MistagItem>,
    estimate: FacetEstimate,
}

/// The suspects of one facet of the run among its out-of-sample `predictions`, as queue items
/// of images still carrying the label the run trained with.
async fn facet_queue(
    catalog: &Catalog,
    result: &RunFacetResult,
    predictions: &[PredictionRecord],
    truth_seen: &mut Truth,
) -> Result<FacetQueue, AppError> {
    let rows: Vec<&PredictionRecord> = predictions
        .iter()
        .filter(|p| p.facet == result.facet && (p.split == Split::Test || p.out_of_fold))
        .collect();
    let labels: Vec<Option<usize>> = rows
        .iter()
        .map(|p| {
            p.label
                .as_ref()
                .and_then(|label| result.labels.iter().position(|l| l == label))
        })
        .collect();
    let raw: Vec<Vec<f32>> = rows.iter().map(|p| p.scores.clone()).collect();
    let truth = catalog.truth_labels(&result.facet).await?;
    truth_seen.known |= !truth.is_empty();
    truth_seen.flips += rows
        .iter()
        .filter(|p| match (&p.label, truth.get(&p.image_id)) {
            (Some(label), Some(true_label)) => label != true_label,
            _ => false,
        })
        .count() as u64;
    let current = catalog.current_labels(&result.facet).await?;
    let suspects = calibrated_suspects(&labels, &raw, result.labels.len());
    let mut items = Vec::new();
    for suspect in suspects.items {
        let row = rows[suspect.index];
        let given = &result.labels[suspect.given];
        // The map lists every active image with a label row for the facet: an image it does
        // not list is no longer active (or lost its label), one with another label was
        // already corrected by a reviewer.
        let version = match current.get(&row.image_id) {
            Some((Some(now), version)) if now == given => *version,
            _ => continue,
        };
        items.push(MistagItem {
            image_id: row.image_id.clone(),
            facet: result.facet.clone(),
            split: row.split,
            given: given.clone(),
            suggested: result.labels[suspect.suggested].clone(),
            margin: suspect.margin,
            given_probability: suspect.given_probability,
            suggested_probability: suspect.suggested_probability,
            true_label: truth.get(&row.image_id).cloned(),
            version,
        });
    }
    Ok(FacetQueue {
        estimate: FacetEstimate {
            facet: result.facet.clone(),
            rows: rows.len(),
            estimated_wrong: suspects.estimated_wrong,
            suspects: items.len(),
        },
        items,
    })
}

/// precision@k for the k of [`PRECISION_AT`] that the queue is long enough for. An item
/// without a known true label counts as correctly labelled.
fn precision_at(items: &[MistagItem]) -> Vec<(usize, f64)> {
    PRECISION_AT
        .iter()
        .filter(|&&k| k <= items.len())
        .map(|&k| {
            let flips = items[..k]
                .iter()
                .filter(|item| {
                    item.true_label
                        .as_ref()
                        .is_some_and(|truth| *truth != item.given)
                })
                .count();
            (k, flips as f64 / k as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(given: &str, truth: Option<&str>) -> MistagItem {
        MistagItem {
            image_id: String::new(),
            facet: "length".into(),
            split: Split::Test,
            given: given.into(),
            suggested: "x".into(),
            margin: 0.0,
            given_probability: 0.0,
            suggested_probability: 1.0,
            true_label: truth.map(String::from),
            version: 1,
        }
    }

    #[test]
    fn precision_counts_true_flips_among_the_first_k() {
        // 60 items: the first 10 hold 7 flips, items 10..60 hold 5 more.
        let mut items: Vec<MistagItem> = (0..60)
            .map(|i| match i {
                0..7 => item("a", Some("b")),
                7..9 => item("a", Some("a")),
                9 => item("a", None),
                10..15 => item("a", Some("c")),
                _ => item("a", Some("a")),
            })
            .collect();
        assert_eq!(precision_at(&items), vec![(10, 0.7), (50, 12.0 / 50.0)]);
        items.truncate(9);
        assert!(precision_at(&items).is_empty());
    }
}
