//! The dress box regressor: from a backbone map to the box of the dress in it.
//!
//! Necklines and sleeve ends are a few pixels wide in a full-length product photo, below what a
//! frozen ImageNet backbone resolves on a 7x7 map. So a model may look twice: once at the whole
//! photo, and once at a zoomed square over the upper body (the *detail view*), cropped from the
//! original pixels, not from the downscaled input. Where to crop comes from [`DressLocator`],
//! a small regressor over the whole photo's map trained on the catalogue's dress boxes; placing
//! the views (and the foreground classifier that similarity models add) is in
//! [`crate::dress_boxes`].
//!
//! Coordinates: the locator predicts `[x0, y0, x1, y1]` in `0..1` of the letterboxed input
//! square (see [`crate::input`]); [`crate::crop::to_square`] and [`crate::crop::from_square`] convert
//! from and to the original image's pixels.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};

use crate::features::FeatureTable;
use crate::map_fit::{LocatorTraining, fit_on_table};
use crate::standardize::ChannelStats;

/// A box regressor over a backbone feature map: a 1x1 convolution squeezes the channels, a
/// linear layer reads the whole squeezed map (where the dress is matters, so no pooling) and a
/// sigmoid keeps the four coordinates inside the square.
#[derive(Module, Debug)]
pub struct DressLocator {
    squeeze: Conv2d,
    regress: Linear,
}

/// Channels of the locator's squeeze.
const SQUEEZED: usize = 16;

impl DressLocator {
    pub fn new(channels: usize, map_size: usize, device: &Device) -> Self {
        Self {
            squeeze: Conv2dConfig::new([channels, SQUEEZED], [1, 1]).init(device),
            regress: LinearConfig::new(SQUEEZED * map_size * map_size, 4).init(device),
        }
    }

    /// This locator re-expressed for raw feature maps, when it was trained on maps
    /// standardised with `stats` (see [`crate::standardize`]).
    pub fn fold_standardization(self, stats: &ChannelStats) -> Self {
        Self {
            squeeze: stats.fold_into_conv1x1(self.squeeze),
            regress: self.regress,
        }
    }

    /// `[batch, 4]` boxes in fractions of the square for feature maps `[batch, c, h, w]`.
    pub fn forward(&self, feature_map: Tensor<4>) -> Tensor<2> {
        let squeezed = relu(atelier_models::conv2d(&self.squeeze, feature_map));
        let [batch, c, h, w] = squeezed.dims();
        sigmoid(self.regress.forward(squeezed.reshape([batch, c * h * w])))
    }

    /// Boxes for feature maps, as plain arrays.
    pub fn boxes(&self, feature_map: Tensor<4>) -> Vec<[f32; 4]> {
        let values = self
            .forward(feature_map)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap_or_default();
        values
            .chunks_exact(4)
            .map(|b| [b[0], b[1], b[2], b[3]])
            .collect()
    }
}

/// Fits a locator to `targets` (fractions of the square) for the rows `rows` of `table`, with an
/// L1 loss. It trains on those rows' maps standardised per channel and is returned folded back
/// for raw maps (see [`crate::standardize`]). `device` is the inference device; training runs
/// on its autodiff twin. The result depends only on the inputs and `training.seed`.
pub fn fit_locator(
    table: &FeatureTable,
    rows: &[usize],
    targets: &[[f32; 4]],
    training: &LocatorTraining,
    device: &Device,
) -> DressLocator {
    let [channels, map_size, _] = table.dims;
    let (locator, stats) = fit_on_table(
        table,
        rows,
        training,
        device,
        |device| DressLocator::new(channels, map_size, device),
        |locator: &DressLocator, maps, batch| {
            let target: Vec<f32> = batch.iter().flat_map(|&k| targets[k]).collect();
            let target =
                Tensor::<2>::from_data(TensorData::new(target, [batch.len(), 4]), &maps.device());
            (locator.forward(maps) - target).abs().mean()
        },
    );
    locator.fold_standardization(&stats)
}

/// The locator's boxes (fractions of the square) for every row of `table`.
pub fn predict_boxes(
    locator: &DressLocator,
    table: &FeatureTable,
    batch_size: usize,
    device: &Device,
) -> Vec<[f32; 4]> {
    let rows: Vec<usize> = (0..table.len()).collect();
    rows.chunks(batch_size.max(1))
        .flat_map(|batch| locator.boxes(table.batch(batch, device)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crop::iou;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn the_locator_learns_boxes_written_into_the_features() {
        // Each image's map carries its box in two channels at the box's corners, plus noise
        // channels; a locator that learned nothing predicts near the mean box.
        let device = Device::flex();
        let (channels, size, count) = (4usize, 4usize, 96usize);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut data = Vec::new();
        let mut targets = Vec::new();
        for _ in 0..count {
            use rand::RngExt;
            let x0: f32 = rng.random_range(0.05..0.4);
            let y0: f32 = rng.random_range(0.05..0.4);
            let x1: f32 = x0 + rng.random_range(0.2..0.5);
            let y1: f32 = y0 + rng.random_range(0.2..0.5);
            targets.push([x0, y0, x1, y1]);
            let mut map = vec![0.0f32; channels * size * size];
            for (c, value) in [x0, y0, x1, y1].iter().enumerate() {
                for cell in 0..size * size {
                    map[c * size * size + cell] = value * 4.0 + rng.random_range(-0.05..0.05);
                }
            }
            data.extend(map);
        }
        let table = FeatureTable {
            dims: [channels, size, size],
            data,
        };
        let fit: Vec<usize> = (0..64).collect();
        let training = LocatorTraining {
            epochs: 150,
            batch_size: 16,
            learning_rate: 1e-2,
            seed: 5,
            ..LocatorTraining::default()
        };
        let locator = fit_locator(&table, &fit, &targets[..64], &training, &device);
        let predicted = predict_boxes(&locator, &table, 32, &device);
        let held_out_iou: f32 = (64..count)
            .map(|i| iou(predicted[i], targets[i]))
            .sum::<f32>()
            / 32.0;
        let mean_box = [0.225, 0.225, 0.575, 0.575];
        let baseline: f32 = (64..count).map(|i| iou(mean_box, targets[i])).sum::<f32>() / 32.0;
        assert!(
            held_out_iou > 0.85 && held_out_iou > baseline + 0.2,
            "held-out IoU {held_out_iou:.3}, mean-box baseline {baseline:.3}"
        );
    }
}
