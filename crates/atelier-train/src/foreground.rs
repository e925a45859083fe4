//! The foreground classifier: per cell of a whole photo's backbone map, the probability that
//! the cell shows the dress, and the box that cell sees (its distances to the box's four
//! edges), as in OverFeat's classifier and per-location regressor.
//!
//! Cells whose probability reaches [`FOREGROUND_THRESHOLD`] each vote their box and the votes
//! are averaged, weighted by probability ([`CellVotes::vote`]). A photo's box is then the mean
//! of that vote and the global regressor's box ([`combine`]); the dress locator's report
//! gives the test split's IoU of each (see [`crate::locator::LocatorReport`]).
//!
//! Coordinates are fractions of the letterboxed input square, as in [`crate::locator`]; cell
//! `(row, col)` of an `h` x `w` map covers `[col/w, (col+1)/w] x [row/h, (row+1)/h]`.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, relu, sigmoid, softplus};

use crate::features::FeatureTable;
use crate::map_fit::{LocatorTraining, fit_on_table};
use crate::standardize::ChannelStats;

/// Cells at or above this probability vote for the box.
pub const FOREGROUND_THRESHOLD: f32 = 0.5;

/// Channels of the classifier's squeeze.
const HIDDEN: usize = 32;

/// Per cell: a foreground logit and four edge distances, from a 1x1 squeeze of the map.
#[derive(Module, Debug)]
pub struct ForegroundLocator {
    squeeze: Conv2d,
    context: Conv2d,
    head: Conv2d,
}

impl ForegroundLocator {
    pub fn new(channels: usize, device: &Device) -> Self {
        Self {
            squeeze: Conv2dConfig::new([channels, HIDDEN], [1, 1]).init(device),
            context: Conv2dConfig::new([HIDDEN, HIDDEN], [3, 3])
                .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            head: Conv2dConfig::new([HIDDEN, 5], [1, 1]).init(device),
        }
    }

    /// This classifier re-expressed for raw maps, when it was trained on maps standardised
    /// with `stats`.
    pub fn fold_standardization(self, stats: &ChannelStats) -> Self {
        Self {
            squeeze: stats.fold_into_conv1x1(self.squeeze),
            context: self.context,
            head: self.head,
        }
    }

    /// Foreground logits `[batch, h, w]` and edge distances `[batch, 4, h, w]` (left, top,
    /// right, bottom from the cell's centre, in fractions of the square; never negative).
    pub fn forward(&self, feature_map: Tensor<4>) -> (Tensor<3>, Tensor<4>) {
        let squeezed = relu(atelier_models::conv2d(&self.squeeze, feature_map));
        let context = relu(atelier_models::conv2d(&self.context, squeezed));
        let out = atelier_models::conv2d(&self.head, context);
        let [batch, _, h, w] = out.dims();
        let logits = out.clone().narrow(1, 0, 1).reshape([batch, h, w]);
        let edges = softplus(out.narrow(1, 1, 4), 1.0);
        (logits, edges)
    }

    /// Each photo's cell probabilities and cell boxes.
    pub fn votes(&self, feature_map: Tensor<4>) -> Vec<CellVotes> {
        let (logits, edges) = self.forward(feature_map);
        let [batch, h, w] = logits.dims();
        let probability: Vec<f32> = sigmoid(logits).into_data().try_into_vec().expect("f32");
        let edges: Vec<f32> = edges.into_data().try_into_vec().expect("f32");
        let cells = h * w;
        (0..batch)
            .map(|b| {
                let boxes = (0..cells)
                    .map(|cell| {
                        let [cx, cy] = cell_centre(cell, h, w);
                        let edge = |k: usize| edges[(b * 4 + k) * cells + cell];
                        [cx - edge(0), cy - edge(1), cx + edge(2), cy + edge(3)]
                    })
                    .collect();
                CellVotes {
                    size: [h, w],
                    probability: probability[b * cells..][..cells].to_vec(),
                    boxes,
                }
            })
            .collect()
    }
}

/// What the classifier says about one photo, cell by cell (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct CellVotes {
    /// `[h, w]` of the map.
    pub size: [usize; 2],
    pub probability: Vec<f32>,
    pub boxes: Vec<[f32; 4]>,
}

impl CellVotes {
    /// The probability-weighted mean box of the cells at or above `threshold`; with none
    /// there, the most probable cell's box.
    pub fn vote(&self, threshold: f32) -> [f32; 4] {
        let voters: Vec<usize> = (0..self.probability.len())
            .filter(|&c| self.probability[c] >= threshold)
            .collect();
        let voters = if voters.is_empty() {
            let best = (0..self.probability.len())
                .max_by(|&a, &b| self.probability[a].total_cmp(&self.probability[b]))
                .unwrap_or(0);
            vec![best]
        } else {
            voters
        };
        let total: f32 = voters.iter().map(|&c| self.probability[c]).sum();
        let mut mean = [0.0f32; 4];
        for &c in &voters {
            let weight = if total > 0.0 {
                self.probability[c] / total
            } else {
                1.0 / voters.len() as f32
            };
            for (m, v) in mean.iter_mut().zip(self.boxes[c]) {
                *m += weight * v;
            }
        }
        mean
    }

    /// How sure the classifier is that `square_box` holds the dress: the mean probability of
    /// the cells whose centre lies inside it (0 when none does).
    pub fn foreground(&self, square_box: [f32; 4]) -> f32 {
        let [h, w] = self.size;
        let inside: Vec<f32> = (0..h * w)
            .filter(|&c| contains(square_box, cell_centre(c, h, w)))
            .map(|c| self.probability[c])
            .collect();
        if inside.is_empty() {
            0.0
        } else {
            inside.iter().sum::<f32>() / inside.len() as f32
        }
    }
}

/// The located box: the mean of the global regressor's box and the cells' vote.
pub fn combine(regressor: [f32; 4], vote: [f32; 4]) -> [f32; 4] {
    std::array::from_fn(|k| (regressor[k] + vote[k]) / 2.0)
}

fn cell_centre(cell: usize, h: usize, w: usize) -> [f32; 2] {
    let (row, col) = (cell / w, cell % w);
    [(col as f32 + 0.5) / w as f32, (row as f32 + 0.5) / h as f32]
}

fn contains(b: [f32; 4], [x, y]: [f32; 2]) -> bool {
    (b[0]..=b[2]).contains(&x) && (b[1]..=b[3]).contains(&y)
}

/// What one cell should say about a photo whose dress box is `square_box`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellTarget {
    /// The share of the cell the box covers (the classifier's soft target).
    pub coverage: f32,
    /// Distances from the cell's centre to the box's left, top, right and bottom edges.
    pub edges: [f32; 4],
    /// Whether the cell's centre lies inside the box (only those cells learn the edges).
    pub inside: bool,
}

/// The targets of every cell of an `h` x `w` map, row-major.
pub fn cell_targets(square_box: [f32; 4], h: usize, w: usize) -> Vec<CellTarget> {
    let [x0, y0, x1, y1] = square_box;
    (0..h * w)
        .map(|cell| {
            let (row, col) = (cell / w, cell % w);
            let overlap = |lo: f32, hi: f32, a: f32, b: f32| (hi.min(b) - lo.max(a)).max(0.0);
            let (cw, ch) = (1.0 / w as f32, 1.0 / h as f32);
            let (left, top) = (col as f32 * cw, row as f32 * ch);
            let coverage =
                overlap(left, left + cw, x0, x1) * overlap(top, top + ch, y0, y1) / (cw * ch);
            let [cx, cy] = cell_centre(cell, h, w);
            CellTarget {
                coverage,
                edges: [cx - x0, cy - y0, x1 - cx, y1 - cy],
                inside: contains(square_box, [cx, cy]),
            }
        })
        .collect()
}

/// Fits the classifier to the boxes `targets` (fractions of the square) of the rows `rows` of
/// `table`: binary cross-entropy against each cell's coverage, plus an L1 loss on the edge
/// distances of the cells inside the box. Like [`crate::locator::fit_locator`] it trains on
/// standardised maps and is returned folded back for raw ones.
pub fn fit_foreground(
    table: &FeatureTable,
    rows: &[usize],
    targets: &[[f32; 4]],
    training: &LocatorTraining,
    device: &Device,
) -> ForegroundLocator {
    let [channels, h, w] = table.dims;
    let cells: Vec<Vec<CellTarget>> = targets.iter().map(|t| cell_targets(*t, h, w)).collect();
    let (classifier, stats) = fit_on_table(
        table,
        rows,
        training,
        device,
        |device| ForegroundLocator::new(channels, device),
        |classifier: &ForegroundLocator, maps, batch| {
            let device = maps.device();
            let (logits, edges) = classifier.forward(maps);
            cell_loss(logits, edges, batch.iter().map(|&k| &cells[k][..]), &device)
        },
    );
    classifier.fold_standardization(&stats)
}

/// The training loss of a batch (see [`fit_foreground`]).
fn cell_loss<'a>(
    logits: Tensor<3>,
    edges: Tensor<4>,
    targets: impl Iterator<Item = &'a [CellTarget]>,
    device: &Device,
) -> Tensor<1> {
    let [batch, h, w] = logits.dims();
    let (mut coverage, mut distances, mut inside) = (Vec::new(), Vec::new(), Vec::new());
    for photo in targets {
        coverage.extend(photo.iter().map(|t| t.coverage));
        for k in 0..4 {
            distances.extend(photo.iter().map(|t| t.edges[k]));
            inside.extend(photo.iter().map(|t| f32::from(u8::from(t.inside))));
        }
    }
    let coverage = Tensor::<3>::from_data(TensorData::new(coverage, [batch, h, w]), device);
    let distances = Tensor::<4>::from_data(TensorData::new(distances, [batch, 4, h, w]), device);
    let inside = Tensor::<4>::from_data(TensorData::new(inside, [batch, 4, h, w]), device);
    let classify = -(coverage.clone() * log_sigmoid(logits.clone())
        + (coverage.neg() + 1.0) * log_sigmoid(logits.neg()))
    .mean();
    let counted = inside.clone().sum().clamp_min(1.0);
    let regress = ((edges - distances).abs() * inside).sum() / counted;
    classify + regress
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crop::iou;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn cell_targets_by_hand() {
        // A 2x2 map; the box covers the left column fully and half of the right column's
        // width in the top row only.
        let targets = cell_targets([0.0, 0.0, 0.75, 0.5], 2, 2);
        let coverage: Vec<f32> = targets.iter().map(|t| t.coverage).collect();
        assert_eq!(coverage, vec![1.0, 0.5, 0.0, 0.0]);
        // Cell (0, 0) has its centre at (0.25, 0.25).
        assert_eq!(targets[0].edges, [0.25, 0.25, 0.5, 0.25]);
        assert!(targets[0].inside && targets[1].inside);
        assert!(!targets[2].inside && !targets[3].inside);
    }

    #[test]
    fn votes_average_the_confident_cells_by_probability() {
        let votes = CellVotes {
            size: [1, 3],
            probability: vec![0.9, 0.3, 0.6],
            boxes: vec![[0.0, 0.0, 1.0, 1.0], [9.0; 4], [0.5, 0.5, 1.0, 1.0]],
        };
        // Cells 0 and 2 vote with weights 0.6 and 0.4.
        let voted = votes.vote(0.5);
        for (got, want) in voted.iter().zip([0.2, 0.2, 1.0, 1.0]) {
            assert!((got - want).abs() < 1e-6, "{voted:?}");
        }
        // Nobody above 0.95: the best cell alone.
        assert_eq!(votes.vote(0.95), [0.0, 0.0, 1.0, 1.0]);
        // Centres at x = 1/6, 1/2, 5/6, y = 1/2: a box over the right two thirds holds cells
        // 1 and 2.
        assert!((votes.foreground([0.4, 0.0, 1.0, 1.0]) - 0.45).abs() < 1e-6);
        assert_eq!(votes.foreground([0.0, 0.0, 0.1, 0.1]), 0.0);
        assert_eq!(
            combine([0.0, 0.0, 1.0, 1.0], [0.2, 0.4, 0.6, 0.8]),
            [0.1, 0.2, 0.8, 0.9]
        );
    }

    /// Maps whose cells show how much of them the box covers (channel 0) and their distances
    /// to its edges (channels 1-4), plus noise: a classifier that learned both places boxes
    /// far better than the mean box.
    #[test]
    fn the_classifier_learns_which_cells_show_the_dress() {
        let device = Device::flex();
        let (channels, size, count) = (5usize, 6usize, 120usize);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (mut data, mut boxes) = (Vec::new(), Vec::new());
        for _ in 0..count {
            let x0: f32 = rng.random_range(0.05..0.35);
            let y0: f32 = rng.random_range(0.05..0.35);
            let b = [
                x0,
                y0,
                x0 + rng.random_range(0.3..0.6),
                y0 + rng.random_range(0.3..0.6),
            ];
            let targets = cell_targets(b, size, size);
            for c in 0..channels {
                for t in &targets {
                    let signal = if c == 0 {
                        t.coverage * 3.0
                    } else {
                        t.edges[c - 1] * 3.0
                    };
                    data.push(signal + rng.random_range(-0.1..0.1));
                }
            }
            boxes.push(b);
        }
        let table = FeatureTable {
            dims: [channels, size, size],
            data,
        };
        let fit: Vec<usize> = (0..80).collect();
        let training = LocatorTraining {
            epochs: 120,
            batch_size: 16,
            learning_rate: 1e-2,
            seed: 2,
            ..LocatorTraining::default()
        };
        let classifier = fit_foreground(&table, &fit, &boxes[..80], &training, &device);
        let held: Vec<usize> = (80..count).collect();
        let votes = classifier.votes(table.select(&held).batch(&[0], &device));
        assert_eq!(votes.len(), 1);
        let all = classifier.votes(
            table
                .select(&held)
                .batch(&(0..held.len()).collect::<Vec<_>>(), &device),
        );
        let held_iou: f32 = all
            .iter()
            .zip(&held)
            .map(|(v, &i)| iou(v.vote(FOREGROUND_THRESHOLD), boxes[i]))
            .sum::<f32>()
            / held.len() as f32;
        let mean_box = [0.2, 0.2, 0.65, 0.65];
        let baseline: f32 =
            held.iter().map(|&i| iou(mean_box, boxes[i])).sum::<f32>() / held.len() as f32;
        assert!(
            held_iou > 0.8 && held_iou > baseline + 0.15,
            "held-out IoU {held_iou:.3}, mean-box baseline {baseline:.3}"
        );
        // Inside the true box the cells are confident; far outside they are not.
        let first = &all[0];
        let b = boxes[held[0]];
        assert!(first.foreground(b) > 0.7, "{}", first.foreground(b));
    }
}
