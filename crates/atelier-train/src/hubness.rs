//! Hubness correction for nearest-neighbour search over embeddings: some photos sit in crowded
//! parts of the embedding space and come up as the nearest neighbour of many queries they do
//! not match (hubs). Each stored photo gets a bias, minus half of how much higher its mean
//! cosine with its `k` nearest catalogue photos is than the catalogue's average, and a search
//! ranks by cosine plus bias. For one query this is the ranking of Conneau et al.'s CSLS
//! (2 cos(q, x) - r(q) - r(x), "Word translation without parallel data", 2018, with k = 10):
//! the query's own term is the same for every photo it is compared with.
//!
//! On the demo catalogue's held-out designs it lifted the trained embedding's Recall@1 from
//! 0.943 to 0.955 (swap accuracy unchanged); on a catalogue rendered with another seed it left
//! Recall@1 as it was (0.948) and lifted the off-the-shelf one from 0.490 to 0.510.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Query rows scored against the whole gallery per matrix product (a block of scores is
/// `BLOCK x rows` floats).
const BLOCK: usize = 256;

/// How a model's embeddings are corrected for hubness, saved with the model so that photos
/// embedded later get biases on the same scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hubness {
    /// Nearest catalogue photos whose cosines are averaged.
    pub neighbours: usize,
    /// The catalogue's mean of that average for the trained embedding when the run trained.
    pub trained_mean: f32,
    /// The same for the off-the-shelf embedding.
    pub off_the_shelf_mean: f32,
}

/// The bias of a photo whose `k` nearest neighbours have mean cosine `neighbour_mean`, in a
/// catalogue where that mean averages `catalogue_mean`.
pub fn bias(neighbour_mean: f32, catalogue_mean: f32) -> f32 {
    -(neighbour_mean - catalogue_mean) / 2.0
}

/// For each row index in `of`, the mean cosine of `rows[row]` with its `k` nearest other rows
/// (all rows unit length; fewer when there are fewer others; 0 with none).
pub fn neighbour_means(rows: &[Vec<f32>], of: &[usize], k: usize, device: &Device) -> Vec<f32> {
    let n = rows.len();
    let k = k.min(n.saturating_sub(1));
    if k == 0 || of.is_empty() {
        return vec![0.0; of.len()];
    }
    let dim = rows[0].len();
    let flat: Vec<f32> = rows.concat();
    let gallery = Tensor::<1>::from_floats(flat.as_slice(), device)
        .reshape([n, dim])
        .transpose();
    let mut means = Vec::with_capacity(of.len());
    for block in of.chunks(BLOCK) {
        let queries: Vec<f32> = block
            .iter()
            .flat_map(|&r| rows[r].iter().copied())
            .collect();
        let queries =
            Tensor::<1>::from_floats(queries.as_slice(), device).reshape([block.len(), dim]);
        let scores: Vec<f32> = queries
            .matmul(gallery.clone())
            .into_data()
            .try_into_vec()
            .expect("f32 scores");
        for (line, &row) in scores.chunks_exact(n).zip(block) {
            means.push(top_mean(line, row, k));
        }
    }
    means
}

/// The mean of the `k` largest values of `line` other than the one at `own`.
fn top_mean(line: &[f32], own: usize, k: usize) -> f32 {
    let mut others: Vec<f32> = line
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != own)
        .map(|(_, &v)| v)
        .collect();
    others.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    others[..k].iter().sum::<f32>() / k as f32
}

/// Per row, its bias (see [`bias`]) against all the rows, and the mean the biases are
/// centred on.
pub fn biases(rows: &[Vec<f32>], k: usize, device: &Device) -> (Vec<f32>, f32) {
    let all: Vec<usize> = (0..rows.len()).collect();
    let means = neighbour_means(rows, &all, k, device);
    let centre = match means.len() {
        0 => 0.0,
        n => means.iter().sum::<f32>() / n as f32,
    };
    let biases = means.iter().map(|&m| bias(m, centre)).collect();
    (biases, centre)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(angle: f32) -> Vec<f32> {
        vec![angle.cos(), angle.sin()]
    }

    /// Four unit vectors at 0, 0.1, 0.2 and 1.5 radians: with k = 2 the means are averages of
    /// cosines of the angle differences, computed by hand.
    #[test]
    fn neighbour_means_average_the_nearest_other_cosines_by_hand() {
        let rows = vec![unit(0.0), unit(0.1), unit(0.2), unit(1.5)];
        let device = Device::flex();
        let got = neighbour_means(&rows, &[0, 1, 2, 3], 2, &device);
        let c = |d: f32| d.cos();
        let want = [
            (c(0.1) + c(0.2)) / 2.0,
            (c(0.1) + c(0.1)) / 2.0,
            (c(0.1) + c(0.2)) / 2.0,
            (c(1.3) + c(1.4)) / 2.0,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} {want:?}");
        }
        // A row identical to another is its neighbour at cosine 1, but never its own.
        let twins = vec![unit(0.3), unit(0.3), unit(2.0)];
        let got = neighbour_means(&twins, &[0, 2], 1, &device);
        assert!(
            (got[0] - 1.0).abs() < 1e-5 && (got[1] - c(1.7)).abs() < 1e-5,
            "{got:?}"
        );
        assert_eq!(neighbour_means(&twins[..1], &[0], 10, &device), vec![0.0]);
    }

    /// The crowded row (the middle of the three close ones) gets the most negative bias, the
    /// lone row a positive one, and the biases are centred on the mean.
    #[test]
    fn biases_push_crowded_rows_down_around_the_mean() {
        let rows = vec![unit(0.0), unit(0.1), unit(0.2), unit(1.5)];
        let (biases, centre) = biases(&rows, 2, &Device::flex());
        let means = neighbour_means(&rows, &[0, 1, 2, 3], 2, &Device::flex());
        assert!((centre - means.iter().sum::<f32>() / 4.0).abs() < 1e-6);
        assert!(
            biases[1] < biases[0] && biases[0] < 0.0 && biases[3] > 0.0,
            "{biases:?}"
        );
        assert!(biases.iter().sum::<f32>().abs() < 1e-5);
        assert!((biases[3] - -(means[3] - centre) / 2.0).abs() < 1e-6);
    }
}
