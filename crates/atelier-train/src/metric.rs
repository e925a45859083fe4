//! Metric learning for dress similarity: embeddings compared by distance, the triplet hinge
//! loss that trains them, and the mining of triplets inside a batch.
//!
//! - An embedding is a row vector scaled to unit length ([`l2_normalize`]), so that the squared
//!   Euclidean distance of two embeddings is `2 - 2 cos` and lies in `[0, 4]`.
//! - Off-the-shelf embeddings pool a backbone's feature map with generalised-mean pooling
//!   ([`gem_pool`], Radenović et al. 2018: `p = 1` is average pooling, large `p` approaches max
//!   pooling), and keep a coarse grid of unit-length cells ([`grid_cells`]) to compare where
//!   two dresses agree.
//! - The trained embedding learns from triplets (query, similar, dissimilar) with the hinge
//!   `max(0, m + d(q, p) - d(q, n))` of DeepRank (Wang et al. 2014), [`triplet_loss`], where
//!   `d` is the squared Euclidean distance.
//! - [`mine`] picks the triplets of a batch from its distance matrix and the group of each row
//!   (images of one design are one group): every anchor with its hardest positive and its
//!   hardest negative (batch-hard, Hermans et al. 2017), or each anchor-positive pair with the
//!   closest negative that is still farther than the positive (semi-hard, Schroff et al. 2015).

use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::adaptive_avg_pool2d;
use serde::{Deserialize, Serialize};

/// Below this norm a row is treated as zero rather than blown up.
const NORM_FLOOR: f32 = 1e-12;

/// `x` (`[rows, dim]`) with every row scaled to unit Euclidean length.
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norms = x
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .clamp_min(NORM_FLOOR);
    x / norms
}

/// Generalised-mean pooling of a `[batch, channels, height, width]` map to
/// `[batch, channels]`: `(mean over positions of max(x, eps)^p)^(1/p)`.
pub fn gem_pool(map: Tensor<4>, p: f32) -> Tensor<2> {
    let [batch, channels, height, width] = map.dims();
    map.clamp_min(1e-6)
        .powf_scalar(p)
        .reshape([batch, channels, height * width])
        .mean_dim(2)
        .powf_scalar(1.0 / p)
        .reshape([batch, channels])
}

/// The map averaged over a `side` x `side` grid, each cell's vector scaled to unit length:
/// `[batch, side * side, channels]`, cells in row-major order.
pub fn grid_cells(map: Tensor<4>, side: usize) -> Tensor<3> {
    let [batch, channels, _, _] = map.dims();
    let cells = adaptive_avg_pool2d(map, [side, side])
        .reshape([batch, channels, side * side])
        .swap_dims(1, 2)
        .reshape([batch * side * side, channels]);
    l2_normalize(cells).reshape([batch, side * side, channels])
}

/// Squared Euclidean distance of each row of `a` to the same row of `b`: `[rows]`.
pub fn row_distances(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    let [rows, _] = a.dims();
    (a - b).powi_scalar(2).sum_dim(1).reshape([rows])
}

/// Squared Euclidean distance between every pair of rows of `x` (`[n, n]`), from the Gram
/// matrix; tiny negative values from rounding are clamped to 0.
pub fn pairwise_distances(x: Tensor<2>) -> Tensor<2> {
    let [n, _] = x.dims();
    let squares = x.clone().powi_scalar(2).sum_dim(1);
    let gram = x.clone().matmul(x.transpose());
    (squares.clone() + squares.reshape([1, n]) - gram.mul_scalar(2.0)).clamp_min(0.0)
}

/// The mean over triplets of `max(0, margin + d(anchor, positive) - d(anchor, negative))`,
/// with `d` the squared Euclidean distance of the rows; shape `[1]`.
pub fn triplet_loss(
    anchor: Tensor<2>,
    positive: Tensor<2>,
    negative: Tensor<2>,
    margin: f32,
) -> Tensor<1> {
    let to_positive = row_distances(anchor.clone(), positive);
    let to_negative = row_distances(anchor, negative);
    relu((to_positive - to_negative).add_scalar(margin)).mean()
}

/// How [`mine`] picks triplets in a batch.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mining {
    /// Per anchor: the farthest positive and the closest negative.
    BatchHard,
    /// Per anchor-positive pair: the closest negative farther than the positive; when every
    /// negative is closer, the farthest negative.
    SemiHard,
}

/// One triplet, as row indices into the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Triplet {
    pub anchor: usize,
    pub positive: usize,
    pub negative: usize,
}

/// The triplets of a batch of `groups.len()` rows whose pairwise distances are `distances`
/// (row-major `[n, n]`). A row with no positive or no negative in the batch anchors nothing.
/// Ties go to the lower row index, so the result depends only on the inputs.
pub fn mine(distances: &[f32], groups: &[u64], mining: Mining) -> Vec<Triplet> {
    let n = groups.len();
    assert_eq!(distances.len(), n * n, "an n x n distance matrix");
    let mut triplets = Vec::new();
    for anchor in 0..n {
        let row = &distances[anchor * n..][..n];
        let positives: Vec<usize> = (0..n)
            .filter(|&j| j != anchor && groups[j] == groups[anchor])
            .collect();
        let negatives: Vec<usize> = (0..n).filter(|&j| groups[j] != groups[anchor]).collect();
        if positives.is_empty() || negatives.is_empty() {
            continue;
        }
        match mining {
            Mining::BatchHard => {
                let positive = pick(&positives, |j| row[j], Pick::Largest);
                let negative = pick(&negatives, |j| row[j], Pick::Smallest);
                triplets.push(Triplet {
                    anchor,
                    positive,
                    negative,
                });
            }
            Mining::SemiHard => {
                for &positive in &positives {
                    let farther: Vec<usize> = negatives
                        .iter()
                        .copied()
                        .filter(|&j| row[j] > row[positive])
                        .collect();
                    let negative = if farther.is_empty() {
                        pick(&negatives, |j| row[j], Pick::Largest)
                    } else {
                        pick(&farther, |j| row[j], Pick::Smallest)
                    };
                    triplets.push(Triplet {
                        anchor,
                        positive,
                        negative,
                    });
                }
            }
        }
    }
    triplets
}

#[derive(Clone, Copy, PartialEq)]
enum Pick {
    Smallest,
    Largest,
}

/// The candidate with the smallest or largest value; the first one (lowest index) on ties.
fn pick(candidates: &[usize], value: impl Fn(usize) -> f32, which: Pick) -> usize {
    let mut best = candidates[0];
    for &j in &candidates[1..] {
        let better = match which {
            Pick::Smallest => value(j) < value(best),
            Pick::Largest => value(j) > value(best),
        };
        if better {
            best = j;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::flex()
    }

    fn tensor2(rows: &[&[f32]], device: &Device) -> Tensor<2> {
        let cols = rows[0].len();
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), cols]), device)
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn rows_are_scaled_to_unit_length_and_zero_rows_stay_zero() {
        let x = tensor2(&[&[3.0, 4.0], &[0.0, 0.0], &[-1.0, 0.0]], &device());
        close(&values(l2_normalize(x)), &[0.6, 0.8, 0.0, 0.0, -1.0, 0.0]);
    }

    #[test]
    fn gem_is_the_mean_at_p_1_and_the_power_mean_otherwise() {
        // One image, one channel, a 2x2 map of 1, 2, 3, 4.
        let map = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2]),
            &device(),
        );
        close(&values(gem_pool(map.clone(), 1.0)), &[2.5]);
        // ((1 + 8 + 27 + 64) / 4)^(1/3) = 25^(1/3).
        close(&values(gem_pool(map, 3.0)), &[25f32.powf(1.0 / 3.0)]);
    }

    #[test]
    fn grid_cells_average_each_quarter_and_have_unit_length() {
        // Two channels on a 2x2 map; a 2x2 grid keeps each position as its own cell.
        let map = Tensor::<4>::from_data(
            TensorData::new(
                vec![3.0f32, 0.0, 1.0, 1.0, 4.0, 2.0, 1.0, 0.0],
                [1, 2, 2, 2],
            ),
            &device(),
        );
        let cells = values(grid_cells(map, 2));
        // Cell (row, col) has channels (map[0][row][col], map[1][row][col]).
        close(
            &cells,
            &[0.6, 0.8, 0.0, 1.0, 0.70710677, 0.70710677, 1.0, 0.0],
        );
    }

    #[test]
    fn pairwise_distances_match_the_formula() {
        let x = tensor2(&[&[0.0, 0.0], &[3.0, 4.0], &[1.0, 1.0]], &device());
        close(
            &values(pairwise_distances(x)),
            &[0.0, 25.0, 2.0, 25.0, 0.0, 13.0, 2.0, 13.0, 0.0],
        );
    }

    /// Two triplets, one violating the margin and one not, by hand:
    /// - a=(1,0), p=(0.6,0.8), n=(0,1): d(a,p) = 0.16 + 0.64 = 0.8, d(a,n) = 2, so
    ///   0.2 + 0.8 - 2 < 0: no loss, no gradient;
    /// - a=(1,0), p=(0,1), n=(0.6,0.8): 0.2 + 2 - 0.8 = 1.4.
    ///
    /// The mean is 0.7. For the active triplet, dL/da = 2(n - p), dL/dp = 2(p - a),
    /// dL/dn = 2(a - n), each halved by the mean over two triplets.
    #[test]
    fn the_triplet_hinge_and_its_gradient_by_hand() {
        let device = device().autodiff();
        let a = tensor2(&[&[1.0, 0.0], &[1.0, 0.0]], &device).require_grad();
        let p = tensor2(&[&[0.6, 0.8], &[0.0, 1.0]], &device).require_grad();
        let n = tensor2(&[&[0.0, 1.0], &[0.6, 0.8]], &device).require_grad();
        let loss = triplet_loss(a.clone(), p.clone(), n.clone(), 0.2);
        close(&values(loss.clone()), &[0.7]);
        let grads = loss.backward();
        let grad = |t: &Tensor<2>| values(t.grad(&grads).expect("a gradient"));
        close(&grad(&a), &[0.0, 0.0, 0.6, -0.2]);
        close(&grad(&p), &[0.0, 0.0, -1.0, 1.0]);
        close(&grad(&n), &[0.0, 0.0, 0.4, -0.8]);
    }

    /// Four rows: 0 and 1 are one design, 2 and 3 another.
    const DISTANCES: [f32; 16] = [
        0.0, 0.5, 0.3, 0.9, //
        0.5, 0.0, 0.7, 0.2, //
        0.3, 0.7, 0.0, 0.6, //
        0.9, 0.2, 0.6, 0.0,
    ];
    const GROUPS: [u64; 4] = [7, 7, 9, 9];

    fn as_tuples(triplets: &[Triplet]) -> Vec<(usize, usize, usize)> {
        triplets
            .iter()
            .map(|t| (t.anchor, t.positive, t.negative))
            .collect()
    }

    #[test]
    fn batch_hard_takes_the_farthest_positive_and_the_closest_negative() {
        let triplets = mine(&DISTANCES, &GROUPS, Mining::BatchHard);
        // Each anchor has one positive; its closest negative: 0 -> 2 (0.3), 1 -> 3 (0.2),
        // 2 -> 0 (0.3), 3 -> 1 (0.2).
        assert_eq!(
            as_tuples(&triplets),
            [(0, 1, 2), (1, 0, 3), (2, 3, 0), (3, 2, 1)]
        );
    }

    #[test]
    fn semi_hard_takes_the_closest_negative_beyond_the_positive() {
        let triplets = mine(&DISTANCES, &GROUPS, Mining::SemiHard);
        // 0: positive 1 at 0.5; negatives 2 (0.3) and 3 (0.9); beyond 0.5 only 3.
        // 1: positive 0 at 0.5; negatives 2 (0.7), 3 (0.2): 2.
        // 2: positive 3 at 0.6; negatives 0 (0.3), 1 (0.7): 1.
        // 3: positive 2 at 0.6; negatives 0 (0.9), 1 (0.2): 0.
        assert_eq!(
            as_tuples(&triplets),
            [(0, 1, 3), (1, 0, 2), (2, 3, 1), (3, 2, 0)]
        );
        // When every negative is closer than the positive, the farthest negative is used.
        let close_negatives = [
            0.0, 0.9, 0.1, 0.2, 0.9, 0.0, 0.1, 0.2, 0.1, 0.1, 0.0, 0.9, 0.2, 0.2, 0.9, 0.0,
        ];
        let triplets = mine(&close_negatives, &GROUPS, Mining::SemiHard);
        assert_eq!(
            triplets[0],
            Triplet {
                anchor: 0,
                positive: 1,
                negative: 3
            }
        );
    }

    #[test]
    fn rows_without_a_positive_or_negative_anchor_nothing() {
        let distances = [0.0, 0.4, 0.4, 0.0];
        assert!(mine(&distances, &[1, 2], Mining::BatchHard).is_empty());
        assert!(mine(&distances, &[1, 1], Mining::SemiHard).is_empty());
        // Ties go to the lower index: both negatives at the same distance.
        let tied = [
            0.0, 0.1, 0.5, 0.5, 0.1, 0.0, 0.5, 0.5, 0.5, 0.5, 0.0, 0.3, 0.5, 0.5, 0.3, 0.0,
        ];
        let triplets = mine(&tied, &GROUPS, Mining::BatchHard);
        assert_eq!(triplets[0].negative, 2);
    }
}
