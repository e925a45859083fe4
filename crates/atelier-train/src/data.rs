//! What a training run sees: the facets with their label orders, the labelled images, and which
//! part of the data each image belongs to (train, validation, test).
//!
//! The validation part is carved out of the catalogue's train split by hashing each image id
//! with the run's seed, so it is the same on every resume and never touches the test split.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A facet the model predicts, with its labels in the catalogue's order (scores and tables use
/// this order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacetSpec {
    pub name: String,
    pub labels: Vec<String>,
}

pub use atelier_core::Split;

/// Where an image is used within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// Train split, used for gradient steps.
    Fit,
    /// Train split, held out for early stopping and model selection.
    Validation,
    /// Test split: only evaluated, after training.
    Test,
}

/// One labelled image.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The catalogue id (sha256 of the file).
    pub image_id: String,
    pub path: PathBuf,
    pub split: Split,
    /// Index into the facet's labels, one entry per facet of the dataset; `None` when the
    /// image has no label for that facet (it is then masked out of that facet's loss).
    pub targets: Vec<Option<usize>>,
    /// The catalogue's dress box in the image's pixels `[x0, y0, x1, y1]`, if it has one: what
    /// the dress locator learns from.
    pub dress_box: Option<[f32; 4]>,
    /// Where the detail view of this image is, for models with one (set by
    /// [`crate::locator`] from its predicted box, never from `dress_box`).
    pub detail_regions: Vec<crate::crop::Region>,
}

/// The images and facets of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub facets: Vec<FacetSpec>,
    pub examples: Vec<Example>,
}

impl Dataset {
    /// Training examples per class for each facet (validation images excluded).
    pub fn class_counts(&self, parts: &[Part]) -> Vec<Vec<u64>> {
        let mut counts: Vec<Vec<u64>> = self
            .facets
            .iter()
            .map(|facet| vec![0; facet.labels.len()])
            .collect();
        for (example, part) in self.examples.iter().zip(parts) {
            if *part != Part::Fit {
                continue;
            }
            for (facet, target) in example.targets.iter().enumerate() {
                if let Some(class) = target {
                    counts[facet][*class] += 1;
                }
            }
        }
        counts
    }

    /// Assigns each example its part: test images stay test; about `validation_fraction` of
    /// the train split (chosen by hashing the image id with `seed`) becomes validation.
    pub fn parts(&self, validation_fraction: f64, seed: u64) -> Vec<Part> {
        self.examples
            .iter()
            .map(|example| match example.split {
                Split::Test => Part::Test,
                Split::Train if hash_unit(&example.image_id, seed) < validation_fraction => {
                    Part::Validation
                }
                Split::Train => Part::Fit,
            })
            .collect()
    }
}

/// A number in `[0, 1)` determined by the id and seed only.
pub(crate) fn hash_unit(id: &str, seed: u64) -> f64 {
    let digest = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(id.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_le_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(id: usize, split: Split) -> Example {
        Example {
            image_id: format!("{id:064x}"),
            path: PathBuf::from(format!("{id}.jpg")),
            split,
            targets: vec![Some(id % 2), None],
            dress_box: None,
            detail_regions: Vec::new(),
        }
    }

    #[test]
    fn validation_comes_only_from_train_and_is_stable() {
        let examples: Vec<Example> = (0..2000)
            .map(|i| {
                example(
                    i,
                    if i % 10 == 0 {
                        Split::Test
                    } else {
                        Split::Train
                    },
                )
            })
            .collect();
        let dataset = Dataset {
            facets: vec![],
            examples,
        };
        let parts = dataset.parts(0.15, 3);
        assert_eq!(parts, dataset.parts(0.15, 3));
        let validation = parts.iter().filter(|p| **p == Part::Validation).count();
        // 1800 train images, 15% expected: allow a generous binomial margin.
        assert!((220..=320).contains(&validation), "{validation}");
        for (example, part) in dataset.examples.iter().zip(&parts) {
            assert_eq!(example.split == Split::Test, *part == Part::Test);
        }
        assert_ne!(parts, dataset.parts(0.15, 4), "the seed changes the choice");
    }

    #[test]
    fn class_counts_skip_validation_test_and_missing_labels() {
        let dataset = Dataset {
            facets: vec![
                FacetSpec {
                    name: "a".into(),
                    labels: vec!["x".into(), "y".into()],
                },
                FacetSpec {
                    name: "b".into(),
                    labels: vec!["z".into()],
                },
            ],
            examples: (0..6).map(|i| example(i, Split::Train)).collect(),
        };
        let parts = [
            Part::Fit,
            Part::Fit,
            Part::Fit,
            Part::Validation,
            Part::Test,
            Part::Fit,
        ];
        assert_eq!(dataset.class_counts(&parts), vec![vec![2, 2], vec![0]]);
    }
}
