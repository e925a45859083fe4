//! Turning a model's probabilities into the run's F1 tables and per-image predictions.

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Part, Split};
use crate::metrics::{SplitMetrics, classification_report};

/// Probabilities per facet, per example, per class (in the facet's label order).
pub type Probabilities = Vec<Vec<Vec<f32>>>;

/// One facet's tables for the train and test splits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FacetEvaluation {
    pub facet: String,
    pub labels: Vec<String>,
    pub train: SplitMetrics,
    pub test: SplitMetrics,
}

/// The predicted class (the first one on ties) and its probability.
pub fn argmax(scores: &[f32]) -> (usize, f32) {
    scores
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &p)| {
            if p > best.1 { (i, p) } else { best }
        })
}

/// Per-class tables for every facet over the labelled images of each split.
pub fn evaluate(dataset: &Dataset, probabilities: &Probabilities) -> Vec<FacetEvaluation> {
    dataset
        .facets
        .iter()
        .enumerate()
        .map(|(f, facet)| {
            let table = |split: Split| {
                let (truth, predicted): (Vec<usize>, Vec<usize>) = dataset
                    .examples
                    .iter()
                    .zip(&probabilities[f])
                    .filter(|(example, _)| example.split == split)
                    .filter_map(|(example, scores)| {
                        example.targets[f].map(|t| (t, argmax(scores).0))
                    })
                    .unzip();
                classification_report(&facet.labels, &truth, &predicted)
            };
            FacetEvaluation {
                facet: facet.name.clone(),
                labels: facet.labels.clone(),
                train: table(Split::Train),
                test: table(Split::Test),
            }
        })
        .collect()
}

/// Mean over facets of the macro-F1 on the examples of `part` (model selection score).
pub fn mean_macro_f1(
    dataset: &Dataset,
    parts: &[Part],
    part: Part,
    indices: &[usize],
    probabilities: &Probabilities,
) -> f64 {
    let facets = dataset.facets.len().max(1) as f64;
    dataset
        .facets
        .iter()
        .enumerate()
        .map(|(f, facet)| {
            let (truth, predicted): (Vec<usize>, Vec<usize>) = indices
                .iter()
                .zip(&probabilities[f])
                .filter(|(i, _)| parts[**i] == part)
                .filter_map(|(i, scores)| {
                    dataset.examples[*i].targets[f].map(|t| (t, argmax(scores).0))
                })
                .unzip();
            classification_report(&facet.labels, &truth, &predicted).macro_f1
        })
        .sum::<f64>()
        / facets
}
