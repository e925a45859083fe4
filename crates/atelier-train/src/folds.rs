//! Cross-fitting: out-of-fold probabilities for the images of the train split.
//!
//! A model's probabilities for the images it was fitted on are over-confident, so they cannot
//! tell a mislabelled training image from a correctly labelled one. With `folds = K`, the train
//! split is dealt into K folds; for each fold, a model of the run's configuration is trained on
//! a copy of the dataset in which that fold's images are marked test (so they are never fitted
//! nor used for validation) and predicts them. Every train image thereby gets probabilities
//! from a model that never saw it (see [`crate::mistags`], which needs exactly that).
//!
//! With a frozen, cached backbone this is cheap: the feature cache is shared by all K models,
//! which only fit heads. In full fine-tuning mode it costs K more complete trainings.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::config::TrainConfig;
use crate::data::{Dataset, Split};
use crate::error::TrainError;
use crate::progress::Observer;
use crate::trainer::train;

/// Per facet, per example of the run's dataset: the out-of-fold probabilities of a train
/// image, `None` for a test image.
pub type OutOfFold = Vec<Vec<Option<Vec<f32>>>>;

/// The fold (0-based, below `folds`) of every example of the train split; `None` for test
/// images, and for every image when `folds` is 0.
///
/// Train images are ordered by a hash of (seed, image id), ties by id, and dealt out in turn:
/// folds are disjoint, cover the train split, differ in size by at most one, and depend only on
/// the seed and the set of image ids (not on the order of the examples).
pub fn assign_folds(dataset: &Dataset, folds: usize, seed: u64) -> Vec<Option<usize>> {
    let mut assignment = vec![None; dataset.examples.len()];
    if folds == 0 {
        return assignment;
    }
    let mut train: Vec<(u64, &str, usize)> = dataset
        .examples
        .iter()
        .enumerate()
        .filter(|(_, example)| example.split == Split::Train)
        .map(|(i, example)| {
            (
                fold_hash(&example.image_id, seed),
                example.image_id.as_str(),
                i,
            )
        })
        .collect();
    train.sort_unstable();
    for (rank, (_, _, i)) in train.into_iter().enumerate() {
        assignment[i] = Some(rank % folds);
    }
    assignment
}

/// A hash of (seed, id), kept apart from the validation hash of [`crate::data`] by its
/// prefix, so which images validate and which fold they fall in are unrelated draws.
fn fold_hash(id: &str, seed: u64) -> u64 {
    let digest = Sha256::new()
        .chain_update(b"atelier-folds\0")
        .chain_update(seed.to_le_bytes())
        .chain_update(id.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// What the model of one fold trains on.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldData {
    /// The run's train-split images, those of the fold marked [`Split::Test`]. The run's
    /// test images are left out: a model never fits them anyway, and the fold model is asked
    /// only about its held-out images.
    pub dataset: Dataset,
    /// For each example of `dataset`, its index in the run's dataset.
    pub source: Vec<usize>,
}

impl FoldData {
    /// Indices (into `dataset`) of the held-out images, the ones the fold model predicts.
    pub fn held_out(&self) -> Vec<usize> {
        self.dataset
            .examples
            .iter()
            .enumerate()
            .filter(|(_, example)| example.split == Split::Test)
            .map(|(i, _)| i)
            .collect()
    }
}

/// The dataset of fold `fold` under `assignment` (from [`assign_folds`]).
pub fn fold_dataset(dataset: &Dataset, assignment: &[Option<usize>], fold: usize) -> FoldData {
    let mut examples = Vec::new();
    let mut source = Vec::new();
    for (i, (example, assigned)) in dataset.examples.iter().zip(assignment).enumerate() {
        let Some(assigned) = assigned else { continue };
        let mut example = example.clone();
        if *assigned == fold {
            example.split = Split::Test;
        }
        examples.push(example);
        source.push(i);
    }
    FoldData {
        dataset: Dataset {
            facets: dataset.facets.clone(),
            examples,
        },
        source,
    }
}

/// Trains the `config.folds` fold models of a run and collects their predictions for the
/// images each held out. Fold `k` (1-based) keeps its checkpoints in `run_dir/fold-k`, so an
/// interrupted run resumes each fold where it stopped.
pub fn cross_fit(
    dataset: &Dataset,
    config: &TrainConfig,
    run_dir: &Path,
    feature_cache: Option<&Path>,
    observer: &mut dyn Observer,
) -> Result<OutOfFold, TrainError> {
    config.validate()?;
    let mut out_of_fold: OutOfFold = vec![vec![None; dataset.examples.len()]; dataset.facets.len()];
    let assignment = assign_folds(dataset, config.folds, config.seed);
    for fold in 0..config.folds {
        let data = fold_dataset(dataset, &assignment, fold);
        let held_out = data.held_out();
        if held_out.is_empty() {
            // More folds than train images: nothing to predict, nothing to train.
            continue;
        }
        observer.fold_start(fold + 1, config.folds, held_out.len());
        let checkpoints = run_dir.join(format!("fold-{}", fold + 1));
        let outcome = train(&data.dataset, config, &checkpoints, feature_cache, observer)?;
        for (facet, probabilities) in outcome.probabilities.into_iter().enumerate() {
            for &i in &held_out {
                out_of_fold[facet][data.source[i]] = Some(probabilities[i].clone());
            }
        }
    }
    Ok(out_of_fold)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::data::{Example, FacetSpec, Part};

    fn dataset(count: usize) -> Dataset {
        Dataset {
            facets: vec![FacetSpec {
                name: "length".into(),
                labels: vec!["mini".into(), "maxi".into()],
            }],
            examples: (0..count)
                .map(|i| Example {
                    image_id: format!("{:064x}", i * 7919),
                    path: PathBuf::from(format!("{i}.jpg")),
                    split: if i % 4 == 0 {
                        Split::Test
                    } else {
                        Split::Train
                    },
                    targets: vec![Some(i % 2)],
                    dress_box: None,
                    detail_regions: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn folds_are_disjoint_covering_balanced_and_stable() {
        let data = dataset(203);
        for folds in [2, 3, 5, 7] {
            let assignment = assign_folds(&data, folds, 11);
            let mut sizes = vec![0usize; folds];
            for (example, fold) in data.examples.iter().zip(&assignment) {
                match (example.split, fold) {
                    // Exactly one fold per train image: disjoint and covering.
                    (Split::Train, Some(k)) => sizes[*k] += 1,
                    (Split::Test, None) => {}
                    other => panic!("{other:?}"),
                }
            }
            let train = data
                .examples
                .iter()
                .filter(|e| e.split == Split::Train)
                .count();
            assert_eq!(sizes.iter().sum::<usize>(), train);
            let (smallest, largest) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(largest - smallest <= 1, "{folds} folds: {sizes:?}");

            // The same seed and images give the same folds, in any example order.
            assert_eq!(assignment, assign_folds(&data, folds, 11));
            let mut reversed = data.clone();
            reversed.examples.reverse();
            let mut again = assign_folds(&reversed, folds, 11);
            again.reverse();
            assert_eq!(assignment, again);
            assert_ne!(
                assignment,
                assign_folds(&data, folds, 12),
                "the seed matters"
            );
        }
        assert!(assign_folds(&data, 0, 11).iter().all(Option::is_none));
    }

    #[test]
    fn a_fold_model_never_fits_nor_validates_its_held_out_images() {
        let data = dataset(120);
        let assignment = assign_folds(&data, 3, 5);
        let mut predicted = vec![0; data.examples.len()];
        for fold in 0..3 {
            let fold_data = fold_dataset(&data, &assignment, fold);
            assert_eq!(fold_data.dataset.facets, data.facets);
            for (example, &source) in fold_data.dataset.examples.iter().zip(&fold_data.source) {
                let original = &data.examples[source];
                assert_eq!(
                    original.split,
                    Split::Train,
                    "the run's test images stay out"
                );
                assert_eq!(example.image_id, original.image_id);
                assert_eq!(example.targets, original.targets);
                let held_out = assignment[source] == Some(fold);
                assert_eq!(example.split == Split::Test, held_out);
            }
            // Whatever validation fraction, held-out images are only ever evaluated.
            for fraction in [0.0, 0.2, 0.9] {
                let parts = fold_data.dataset.parts(fraction, 5);
                for &i in &fold_data.held_out() {
                    assert_eq!(parts[i], Part::Test);
                }
                let fitted = parts.iter().filter(|p| **p != Part::Test).count();
                assert_eq!(fitted, fold_data.source.len() - fold_data.held_out().len());
            }
            for &i in &fold_data.held_out() {
                predicted[fold_data.source[i]] += 1;
            }
        }
        // Every train image is predicted by exactly one fold model, test images by none.
        for (example, count) in data.examples.iter().zip(&predicted) {
            let expected = usize::from(example.split == Split::Train);
            assert_eq!(*count, expected, "{}", example.image_id);
        }
    }
}
