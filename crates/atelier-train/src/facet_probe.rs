//! Facet probes: one linear classifier per facet over the dress crop's grid-pooled map,
//! trained on the catalogue's current labels, whose probabilities join the similarity
//! embedding so that two dresses with another neckline, sleeve or length lie apart even when
//! their cloth looks alike.
//!
//! The descriptor of a photo is, per facet, the square root of its class probabilities (a unit
//! vector), all facets side by side and scaled by 1/√facets, so it has unit length; the cosine
//! of two descriptors is then the mean Bhattacharyya coefficient of their facet distributions.
//! [`crate::similarity::joined`] appends it to the triplet-trained embedding with a weight.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use serde::{Deserialize, Serialize};

use crate::features::FeatureTable;
use crate::map_fit::{LocatorTraining, fit_on_table};

/// One facet's labels: per row of a table, its class, if it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct FacetTargets {
    pub facet: String,
    pub classes: usize,
    pub rows: Vec<Option<usize>>,
}

/// What a saved model needs to rebuild its probes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeShape {
    /// Side of the grid the crop's map is averaged over.
    pub grid: usize,
    /// Width of what the probes read (channels × grid²).
    pub inputs: usize,
    /// Per facet, its name and number of classes, in the order of the descriptor.
    pub facets: Vec<(String, usize)>,
    /// Weight of the descriptor against the triplet-trained embedding.
    pub weight: f32,
}

/// The probes, reading raw grid-pooled features (standardisation folded in).
#[derive(Module, Debug)]
pub struct FacetProbe {
    heads: Vec<Linear>,
}

impl FacetProbe {
    pub fn new(shape: &ProbeShape, device: &Device) -> Self {
        Self {
            heads: shape
                .facets
                .iter()
                .map(|(_, classes)| LinearConfig::new(shape.inputs, *classes).init(device))
                .collect(),
        }
    }

    /// Unit-length descriptors `[batch, Σ classes]` of grid-pooled features `[batch, inputs]`.
    pub fn descriptor(&self, inputs: Tensor<2>) -> Tensor<2> {
        let scale = 1.0 / (self.heads.len().max(1) as f32).sqrt();
        let parts: Vec<Tensor<2>> = self
            .heads
            .iter()
            .map(|head| softmax(head.forward(inputs.clone()), 1).sqrt() * scale)
            .collect();
        Tensor::cat(parts, 1)
    }

    /// Per facet, the class probabilities `[batch, classes]` of grid-pooled features.
    pub fn probabilities(&self, inputs: Tensor<2>) -> Vec<Tensor<2>> {
        self.heads
            .iter()
            .map(|head| softmax(head.forward(inputs.clone()), 1))
            .collect()
    }
}

/// How the probes are fitted ([`fit_on_table`]: AdamW on the cross-entropy, shuffled
/// batches, cosine-decayed rate): 30 epochs of 128 photos, weight decay 0.01.
pub fn probe_training(seed: u64) -> LocatorTraining {
    LocatorTraining {
        epochs: 30,
        batch_size: 128,
        learning_rate: 1e-3,
        weight_decay: 1e-2,
        seed,
    }
}

/// Fits one probe per facet of `facets` on the rows of `train_rows` of `table` (`[inputs, 1,
/// 1]` per row) that have a label of some facet; returns the probes folded to read raw
/// features. Without a single labelled training row the probes stay untrained.
pub fn train_probes(
    table: &FeatureTable,
    facets: &[FacetTargets],
    train_rows: &[usize],
    shape: &ProbeShape,
    training: &LocatorTraining,
    device: &Device,
) -> FacetProbe {
    let labelled: Vec<usize> = train_rows
        .iter()
        .copied()
        .filter(|&row| facets.iter().any(|facet| facet.rows[row].is_some()))
        .collect();
    if labelled.is_empty() {
        return FacetProbe::new(shape, device);
    }
    let [inputs, _, _] = table.dims;
    let (probe, stats) = fit_on_table(
        table,
        &labelled,
        training,
        device,
        |device| FacetProbe::new(shape, device),
        |probe, maps, batch| {
            let features = maps.reshape([batch.len(), inputs]);
            let rows: Vec<usize> = batch.iter().map(|&at| labelled[at]).collect();
            probe_loss(probe, features, facets, &rows).expect("every row has a label")
        },
    );
    FacetProbe {
        heads: probe
            .heads
            .into_iter()
            .map(|head| stats.fold_into_linear(head, 1))
            .collect(),
    }
}

/// Per facet, the share of `rows` with a label whose most probable class is that label
/// (`None` for a facet without a labelled row among them).
pub fn probe_accuracy(
    probe: &FacetProbe,
    table: &FeatureTable,
    facets: &[FacetTargets],
    rows: &[usize],
    device: &Device,
) -> Vec<(String, Option<f64>)> {
    let [inputs, _, _] = table.dims;
    let mut right = vec![0usize; facets.len()];
    let mut asked = vec![0usize; facets.len()];
    for batch in rows.chunks(256) {
        let features = table.batch(batch, device).reshape([batch.len(), inputs]);
        for (f, probabilities) in probe.probabilities(features).into_iter().enumerate() {
            let predicted: Vec<i64> = probabilities
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_into_vec::<i64>()
                .expect("class indices");
            for (&row, &class) in batch.iter().zip(&predicted) {
                if let Some(label) = facets[f].rows[row] {
                    asked[f] += 1;
                    right[f] += usize::from(label as i64 == class);
                }
            }
        }
    }
    facets
        .iter()
        .enumerate()
        .map(|(f, facet)| {
            let share = (asked[f] > 0).then(|| right[f] as f64 / asked[f] as f64);
            (facet.facet.clone(), share)
        })
        .collect()
}

/// The summed cross-entropy of every facet's probe over the labelled rows among `rows`
/// (`features` holds their standardised features, in that order); `None` without a label.
fn probe_loss(
    probe: &FacetProbe,
    features: Tensor<2>,
    facets: &[FacetTargets],
    rows: &[usize],
) -> Option<Tensor<1>> {
    let device = features.device();
    let mut total: Option<Tensor<1>> = None;
    for (facet, head) in facets.iter().zip(&probe.heads) {
        let (at, classes): (Vec<i64>, Vec<i64>) = rows
            .iter()
            .enumerate()
            .filter_map(|(i, &row)| facet.rows[row].map(|class| (i as i64, class as i64)))
            .unzip();
        if at.is_empty() {
            continue;
        }
        let len = at.len();
        let at = Tensor::<1, Int>::from_data(TensorData::new(at, [len]), &device);
        let classes = Tensor::<1, Int>::from_data(TensorData::new(classes, [len]), &device);
        let logits = head.forward(features.clone().select(0, at));
        let loss = CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits, classes);
        total = Some(match total {
            Some(sum) => sum + loss,
            None => loss,
        });
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Two facets read from different inputs of a noisy table whose inputs have very
    /// different scales: the probes learn both on training rows, classify held-out rows, and
    /// give unit-length descriptors; folding the standardisation in keeps what they predict.
    #[test]
    fn probes_learn_each_facet_from_its_inputs() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let rows = 400;
        let (mut data, mut first, mut second) = (Vec::new(), Vec::new(), Vec::new());
        for row in 0..rows {
            let (a, b) = (row % 3, (row / 3) % 2);
            // Inputs 0-2: one-hot of facet one, scaled by 100; inputs 3-4 of facet two; 5-7 noise.
            for i in 0..3 {
                data.push(if i == a { 100.0 } else { 0.0 } + rng.random_range(-30.0..30.0));
            }
            for i in 0..2 {
                data.push(if i == b { 1.0 } else { 0.0 } + rng.random_range(-0.3..0.3));
            }
            for _ in 0..3 {
                data.push(rng.random_range(-5.0..5.0));
            }
            first.push(Some(a));
            // Every tenth row has no label for facet two.
            second.push((row % 10 != 0).then_some(b));
        }
        let table = FeatureTable {
            dims: [8, 1, 1],
            data,
        };
        let facets = [
            FacetTargets {
                facet: "one".into(),
                classes: 3,
                rows: first.clone(),
            },
            FacetTargets {
                facet: "two".into(),
                classes: 2,
                rows: second,
            },
        ];
        let shape = ProbeShape {
            grid: 1,
            inputs: 8,
            facets: vec![("one".into(), 3), ("two".into(), 2)],
            weight: 1.0,
        };
        let train: Vec<usize> = (0..300).collect();
        let device = Device::flex();
        let training = LocatorTraining {
            learning_rate: 1e-2,
            ..probe_training(1)
        };
        let probe = train_probes(&table, &facets, &train, &shape, &training, &device);
        let held: Vec<usize> = (300..rows).collect();
        let inputs = table.batch(&held, &device).reshape([held.len(), 8]);
        let probabilities = probe.probabilities(inputs.clone());
        let accuracy = |facet: usize, truth: &dyn Fn(usize) -> usize| {
            let predicted: Vec<i64> = probabilities[facet]
                .clone()
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_into_vec::<i64>()
                .unwrap();
            let right = held
                .iter()
                .zip(&predicted)
                .filter(|&(&row, &p)| truth(row) == p as usize)
                .count();
            right as f64 / held.len() as f64
        };
        let one = accuracy(0, &|row| row % 3);
        let two = accuracy(1, &|row| (row / 3) % 2);
        assert!(one > 0.95 && two > 0.95, "one {one}, two {two}");
        let descriptor: Vec<f32> = probe
            .descriptor(inputs)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(descriptor.len(), held.len() * 5);
        for row in descriptor.chunks(5) {
            let norm: f32 = row.iter().map(|v| v * v).sum();
            assert!((norm - 1.0).abs() < 1e-4, "{row:?}");
        }
    }
}
