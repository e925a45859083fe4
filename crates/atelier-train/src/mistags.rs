//! Likely mistagged labels, found by confident learning (Northcutt et al., "Confident
//! Learning: Estimating Uncertainty in Dataset Labels", 2021) from out-of-sample
//! probabilities, and ranked so that the likeliest mistakes come first: the rule of the
//! review queue (built from the catalogue by `atelier-app`) and of `--drop-suspects`.
//!
//!
//! For one facet, with given labels `y_i` and probabilities `p_i` from a model that never saw
//! image `i`:
//! - **Which images**: cleanlab's default rule ([`crate::confident`]): the calibrated confident
//!   joint estimates how many labels of each given class truly belong to each other class, and
//!   that many images per pair are flagged, those with the largest `p[other] - p[given]`; an
//!   image whose given label is its most probable class is never flagged. Its estimate of wrong
//!   labels per facet is reported with the queue, so a reviewer knows how far down to go.
//! - **In what order**: by the calibrated probability of the given label, lowest first. Each
//!   facet's probabilities are calibrated by temperature scaling (Guo et al., 2017): one
//!   temperature `T` per facet, fitted to the out-of-sample rows by maximum likelihood of the
//!   given labels, then `p ∝ p^(1/T)`. Networks trained to a small loss are overconfident, and
//!   differently so per facet: calibrated, "this label has a 2 % chance of being right" means
//!   the same in every facet, so one queue over all facets can be ranked by it.
//! - **Suggested label**: the image's most probable class.
//!
//! Measured on the demo's catalogues (2 %, 5 % and 10 % flipped labels, two seeds), this finds
//! 0.89 to 0.99 of the flips per facet, as cleanlab does on the same probabilities, where the
//! earlier per-class threshold rule (an image is suspected when its most probable class above
//! that class's mean self-confidence is not its label) found 0.66 to 0.80; ranked by calibrated
//! self-confidence, precision@50 per facet is at least cleanlab's (`scripts/bench_cleanlab.py`).
//!
//! Only out-of-sample probabilities are valid input: test images always, train images only
//! when the run computed out-of-fold predictions (`--folds`, see [`crate::folds`]). A model's
//! probabilities for its own training images would hide exactly the errors sought.

use std::cmp::Ordering;

use serde::Serialize;

use crate::confident::find_label_issues;
use crate::data::{Dataset, Split as DataSplit};
use crate::folds::OutOfFold;

/// An image whose given label is likely wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suspect {
    /// Position in the slices given to [`calibrated_suspects`].
    pub index: usize,
    pub given: usize,
    /// The image's most probable class.
    pub suggested: usize,
    /// `suggested_probability - given_probability`.
    pub margin: f32,
    /// The calibrated probability of the given label: the queue's order, lowest first.
    pub given_probability: f32,
    pub suggested_probability: f32,
}

/// One facet's suspects, likeliest mistakes first, with confident learning's estimate of the
/// number of wrong labels among the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Suspects {
    pub items: Vec<Suspect>,
    pub estimated_wrong: u64,
}

/// Probabilities are clamped to this before taking logarithms (a softmax can underflow to 0).
const MIN_PROBABILITY: f64 = 1e-12;

/// The temperature that maximises the likelihood of the given labels under `p^(1/T)`
/// (renormalised), searched over `T` in [0.05, 50]. The negative log-likelihood is convex in
/// `1/T`, so a golden-section search on `ln T` finds its minimum; 1 when nothing is labelled.
pub fn fit_temperature(labels: &[Option<usize>], probabilities: &[Vec<f32>]) -> f32 {
    let rows: Vec<(usize, Vec<f64>)> = labels
        .iter()
        .zip(probabilities)
        .filter_map(|(label, p)| {
            let y = label.filter(|y| *y < p.len())?;
            let logs = p
                .iter()
                .map(|&pj| f64::from(pj).max(MIN_PROBABILITY).ln())
                .collect();
            Some((y, logs))
        })
        .collect();
    if rows.is_empty() {
        return 1.0;
    }
    let nll = |log_t: f64| {
        let inv_t = (-log_t).exp();
        rows.iter()
            .map(|(y, logs)| {
                let scaled: Vec<f64> = logs.iter().map(|l| l * inv_t).collect();
                let top = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let log_sum = scaled.iter().map(|v| (v - top).exp()).sum::<f64>().ln() + top;
                log_sum - scaled[*y]
            })
            .sum::<f64>()
    };
    let golden = (5f64.sqrt() - 1.0) / 2.0;
    let (mut low, mut high) = (0.05f64.ln(), 50f64.ln());
    for _ in 0..80 {
        let a = high - golden * (high - low);
        let b = low + golden * (high - low);
        if nll(a) <= nll(b) {
            high = b;
        } else {
            low = a;
        }
    }
    ((low + high) / 2.0).exp() as f32
}

/// `p^(1/T)`, renormalised (computed in log space, so tiny probabilities survive).
pub fn temper(probabilities: &[f32], temperature: f32) -> Vec<f32> {
    let inv_t = 1.0 / f64::from(temperature);
    let scaled: Vec<f64> = probabilities
        .iter()
        .map(|&p| f64::from(p).max(MIN_PROBABILITY).ln() * inv_t)
        .collect();
    let top = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = scaled.iter().map(|v| (v - top).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / total) as f32).collect()
}

/// The facet's suspects: the images confident learning flags from the `raw` out-of-sample
/// probabilities ([`find_label_issues`]), with probabilities calibrated by the temperature
/// fitted to these rows' labels ([`fit_temperature`], [`temper`]), ordered by the calibrated
/// probability of the given label, lowest first (ties by index). The rule of the review queue
/// and of [`drop_suspected_labels`].
pub fn calibrated_suspects(labels: &[Option<usize>], raw: &[Vec<f32>], classes: usize) -> Suspects {
    let issues = find_label_issues(labels, raw, classes);
    let temperature = fit_temperature(labels, raw);
    let mut items: Vec<Suspect> = issues
        .flagged
        .iter()
        .enumerate()
        .filter(|(_, flagged)| **flagged)
        .filter_map(|(index, _)| {
            let given = labels[index]?;
            let p = temper(&raw[index], temperature);
            let suggested = (0..p.len())
                .filter(|&j| j != given)
                .max_by(|&a, &b| p[a].total_cmp(&p[b]).then(b.cmp(&a)))?;
            Some(Suspect {
                index,
                given,
                suggested,
                margin: p[suggested] - p[given],
                given_probability: p[given],
                suggested_probability: p[suggested],
            })
        })
        .collect();
    items.sort_by(|a, b| {
        likelier_mistake_first(a.given_probability, b.given_probability).then(a.index.cmp(&b.index))
    });
    Suspects {
        items,
        estimated_wrong: issues.estimated_wrong,
    }
}

/// The dataset with the train labels confident learning suspects masked out (the images stay
/// for their other facets), and how many were masked per facet, in dataset facet order.
///
/// Per facet, the suspects are found exactly as for the review queue, from `out_of_fold`
/// probabilities calibrated by temperature scaling, but only among train images: test labels
/// never influence what a model trains on. A suspect is masked when its margin is at least
/// `min_margin`. This is the "prune, then train" step of confident learning (Northcutt et al.,
/// 2021, section 3.3): the catalogue keeps every label, so reviewers still see the suspects in
/// the queue; only the model stops learning from them.
pub fn drop_suspected_labels(
    dataset: &Dataset,
    out_of_fold: &OutOfFold,
    min_margin: f32,
) -> (Dataset, Vec<usize>) {
    let mut pruned = dataset.clone();
    let mut dropped = vec![0; dataset.facets.len()];
    for (facet, spec) in dataset.facets.iter().enumerate() {
        let Some(scored) = out_of_fold.get(facet) else {
            continue;
        };
        let rows: Vec<usize> = dataset
            .examples
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                e.split == DataSplit::Train && scored.get(*i).is_some_and(Option::is_some)
            })
            .map(|(i, _)| i)
            .collect();
        let labels: Vec<Option<usize>> = rows
            .iter()
            .map(|&i| dataset.examples[i].targets[facet])
            .collect();
        let raw: Vec<Vec<f32>> = rows
            .iter()
            .map(|&i| scored[i].clone().unwrap_or_default())
            .collect();
        for suspect in calibrated_suspects(&labels, &raw, spec.labels.len()).items {
            if suspect.margin >= min_margin {
                pruned.examples[rows[suspect.index]].targets[facet] = None;
                dropped[facet] += 1;
            }
        }
    }
    (pruned, dropped)
}

/// Orders by the calibrated probability of the given label, lower first: the likelier
/// mistake first.
pub fn likelier_mistake_first(a: f32, b: f32) -> Ordering {
    a.total_cmp(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two classes, worked by hand (and what cleanlab 2.9 finds on the same numbers):
    /// thresholds t0 = (0.9 + 0.8 + 0.85 + 0.3 + 0.1) / 5 = 0.59, t1 = 0.67; confidently
    /// seen as 1 while labelled 0: images 3 and 4; as 0 while labelled 1: image 8. The joint
    /// [[3, 2], [1, 4]] is already calibrated (rows sum to the label counts), so the two
    /// images labelled 0 with the largest p1 - p0 (4, 3) and the one labelled 1 with the
    /// largest p0 - p1 (8) are flagged, three wrong labels estimated. With two classes the
    /// calibrated probability of the given label orders like the raw one: 8 (0.05), 4 (0.1),
    /// 3 (0.3).
    #[test]
    fn suspects_are_flagged_by_noise_rate_and_ranked_by_calibrated_self_confidence() {
        let labels = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1].map(Some);
        let probabilities: Vec<Vec<f32>> = [
            [0.9, 0.1],
            [0.8, 0.2],
            [0.85, 0.15],
            [0.3, 0.7],
            [0.1, 0.9],
            [0.1, 0.9],
            [0.2, 0.8],
            [0.15, 0.85],
            [0.95, 0.05],
            [0.25, 0.75],
        ]
        .iter()
        .map(|p| p.to_vec())
        .collect();
        let found = calibrated_suspects(&labels, &probabilities, 2);
        assert_eq!(found.estimated_wrong, 3);
        let order: Vec<(usize, usize, usize)> = found
            .items
            .iter()
            .map(|s| (s.index, s.given, s.suggested))
            .collect();
        assert_eq!(order, [(8, 1, 0), (4, 0, 1), (3, 0, 1)]);
        for suspect in &found.items {
            let sum = suspect.given_probability + suspect.suggested_probability;
            assert!((sum - 1.0).abs() < 1e-5);
            let margin = suspect.suggested_probability - suspect.given_probability;
            assert!((suspect.margin - margin).abs() < 1e-6);
        }
        // A facet where every label is right: nothing.
        let right = [0, 0, 1, 1].map(Some);
        let sure = [
            vec![0.9, 0.1],
            vec![0.8, 0.2],
            vec![0.2, 0.8],
            vec![0.1, 0.9],
        ];
        let found = calibrated_suspects(&right, &sure, 2);
        assert!(found.items.is_empty());
        assert_eq!(found.estimated_wrong, 0);
    }

    #[test]
    fn calibrated_scores_fit_a_temperature_of_one() {
        // Binary, one constant prediction p = (0.75, 0.25): with 3 of 4 labelled 0 the
        // maximum-likelihood probability of class 0 is exactly 3/4, so T = 1.
        let labels = [Some(0), Some(0), Some(0), Some(1)];
        let probabilities = vec![vec![0.75, 0.25]; 4];
        let t = fit_temperature(&labels, &probabilities);
        assert!((t - 1.0).abs() < 1e-3, "{t}");
    }

    #[test]
    fn overconfident_scores_are_softened_to_the_observed_accuracy() {
        // The model says 0.99 but is right 3 times in 4: the fitted temperature makes it say
        // 0.75 (for two classes, 0.99^(1/T) / (0.99^(1/T) + 0.01^(1/T)) = 0.75 gives
        // 1/T = ln 3 / ln 99).
        let labels = [Some(0), Some(0), Some(0), Some(1)];
        let probabilities = vec![vec![0.99, 0.01]; 4];
        let t = fit_temperature(&labels, &probabilities);
        let expected = (99f64.ln() / 3f64.ln()) as f32;
        assert!((t - expected).abs() < 1e-3, "{t} vs {expected}");
        let tempered = temper(&probabilities[0], t);
        assert!((tempered[0] - 0.75).abs() < 1e-4, "{tempered:?}");
        assert!((tempered.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // Underflowed zeros stay finite.
        let hard = temper(&[1.0, 0.0, 0.0], 2.0);
        assert!(hard.iter().all(|p| p.is_finite()) && hard[0] > 0.999);
        assert_eq!(fit_temperature(&[None], &[vec![0.5, 0.5]]), 1.0);
    }

    /// One facet, two classes: twelve train images the fold models agree with, one train image
    /// labelled 0 that they confidently call 1, one train image they are unsure about, and a
    /// test image (no out-of-fold scores; test labels are never dropped).
    #[test]
    fn only_confident_train_suspects_are_dropped() {
        use crate::data::{Example, FacetSpec};
        let example = |i: usize, split: DataSplit, label: usize| Example {
            image_id: format!("{i:064x}"),
            path: format!("{i}.jpg").into(),
            split,
            targets: vec![Some(label)],
            dress_box: None,
            detail_regions: Vec::new(),
        };
        let mut examples = Vec::new();
        let mut scores = Vec::new();
        for i in 0..12 {
            let label = i % 2;
            examples.push(example(i, DataSplit::Train, label));
            scores.push(Some(if label == 0 {
                vec![0.9, 0.1]
            } else {
                vec![0.1, 0.9]
            }));
        }
        examples.push(example(12, DataSplit::Train, 0));
        scores.push(Some(vec![0.02, 0.98]));
        examples.push(example(13, DataSplit::Train, 1));
        scores.push(Some(vec![0.5, 0.5]));
        examples.push(example(14, DataSplit::Test, 0));
        scores.push(None);
        let dataset = Dataset {
            facets: vec![FacetSpec {
                name: "sleeve".into(),
                labels: vec!["short".into(), "long".into()],
            }],
            examples,
        };

        let (pruned, dropped) = drop_suspected_labels(&dataset, &vec![scores.clone()], 0.5);
        assert_eq!(dropped, vec![1]);
        for (i, (before, after)) in dataset.examples.iter().zip(&pruned.examples).enumerate() {
            let expected = if i == 12 { None } else { before.targets[0] };
            assert_eq!(after.targets[0], expected, "image {i}");
            assert_eq!(after.image_id, before.image_id);
        }
        // Image 13's scores tie, and an image whose given label is (within 1e-6) its most
        // probable class is never flagged, whatever the margin.
        let (_, dropped) = drop_suspected_labels(&dataset, &vec![scores.clone()], 0.0);
        assert_eq!(dropped, vec![1]);
        // Image 12's margin is below 1.
        let (_, dropped) = drop_suspected_labels(&dataset, &vec![scores], 1.0);
        assert_eq!(dropped, vec![0]);
    }
}
