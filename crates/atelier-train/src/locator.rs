//! The dress locator and the detail view it makes possible.
//!
//! Necklines and sleeve ends are a few pixels wide in a full-length product photo, below what a
//! frozen ImageNet backbone resolves on a 7x7 map. So a model may look twice: once at the whole
//! photo, and once at a zoomed square over the upper body (the *detail view*), cropped from the
//! original pixels, not from the downscaled input.
//!
//! Where to crop comes from a small box regressor over the whole photo's feature map, trained on
//! the catalogue's dress boxes ([`DressLocator`]). Its prediction, not the stored box, is used for
//! every image (train, test and new photos alike), so what the heads see at tagging time is
//! what they were trained and evaluated on.
//!
//! Coordinates: the locator predicts `[x0, y0, x1, y1]` in `0..1` of the letterboxed input
//! square (see [`crate::input`]); [`crate::crop::to_square`] and [`crate::crop::from_square`] convert
//! from and to the original image's pixels.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use std::path::Path;

use rayon::prelude::*;

use crate::config::TrainConfig;
use crate::crop::{DetailCrop, to_square};
use crate::data::{Dataset, Split};
use crate::error::TrainError;
use crate::features::{self, FeatureCache, FeatureTable, View, load_rgb};
use crate::input::InputConfig;
use crate::progress::Observer;
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
        let squeezed = relu(self.squeeze.forward(feature_map));
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

/// How long and how fast the locator trains; it reads cached features, so this takes seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocatorTraining {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

impl Default for LocatorTraining {
    fn default() -> Self {
        Self {
            epochs: 40,
            batch_size: 64,
            learning_rate: 1e-3,
            seed: 1,
        }
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
    let stats = ChannelStats::of(table, rows);
    let mut fit_table = table.select(rows);
    stats.apply(&mut fit_table);
    let train_device = device.clone().autodiff();
    let mut locator = crate::init::exclusive(|| {
        train_device.seed(training.seed);
        let locator = DressLocator::new(channels, map_size, &train_device);
        crate::init::materialize(&locator);
        locator
    });
    let mut optimizer = AdamWConfig::new().with_weight_decay(1e-4).init();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(training.seed);
    let steps_per_epoch = rows.len().div_ceil(training.batch_size.max(1));
    let total_steps = (steps_per_epoch * training.epochs).max(1);
    let mut step = 0;
    for _ in 0..training.epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(training.batch_size.max(1)) {
            let target: Vec<f32> = batch.iter().flat_map(|&k| targets[k]).collect();
            let target =
                Tensor::<2>::from_data(TensorData::new(target, [batch.len(), 4]), &train_device);
            let predicted = locator.forward(fit_table.batch(batch, &train_device));
            let loss = (predicted - target).abs().mean();
            let gradients = GradientsParams::from_grads(loss.backward(), &locator);
            // Cosine decay: the last epochs settle instead of jittering around the optimum.
            let progress = step as f64 / total_steps as f64;
            let rate =
                training.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
            locator = optimizer.step(rate, locator, gradients);
            step += 1;
        }
    }
    locator.valid().fold_standardization(&stats)
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

/// How well the locator placed the boxes it was not trained on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct LocatorReport {
    /// Train images with a dress box (the locator learned from these).
    pub fit_images: usize,
    /// Mean IoU between predicted and stored boxes on the test split's boxed images, if any.
    pub test_mean_iou: Option<f32>,
}

/// Trains the dress locator of a detail-view run on the whole-photo features of the train
/// split's boxed images, then sets every example's `detail_regions`, one per crop, from the
/// locator's own box (train and test alike, as tagging will). Cross-fitted fold models reuse
/// these regions, so the detail features are computed once per run.
pub fn place_detail_views(
    dataset: &mut Dataset,
    config: &TrainConfig,
    crops: &[DetailCrop],
    feature_cache: Option<&Path>,
    observer: &mut dyn Observer,
) -> Result<(DressLocator, LocatorReport), TrainError> {
    let device = crate::device::device_for(config.device)?;
    let backbone = crate::init::exclusive(|| {
        device.seed(config.seed);
        config.backbone.build(config.weights.as_deref(), &device)
    })?;
    let input = InputConfig::new(
        config.image_size,
        atelier_models::Backbone::normalization(&backbone),
    );
    let cache = feature_cache
        .map(|root| FeatureCache::new(root, config, &input, false))
        .transpose()?;
    let table = features::extract(
        &backbone,
        &dataset.examples,
        View::Whole,
        &input,
        config.batch_size,
        config.feature_tap(),
        false,
        cache.as_ref(),
        &device,
        observer,
    )?;
    // Decoding (not the file header) gives the size after EXIF rotation, as training sees it.
    observer.phase("image sizes", dataset.examples.len() as u64);
    let sizes = dataset
        .examples
        .par_iter()
        .map(|e| load_rgb(&e.path).map(|rgb| rgb.dimensions()))
        .collect::<Result<Vec<_>, _>>()?;
    observer.phase_end();

    let boxed = |split: Split| -> Vec<usize> {
        (0..dataset.examples.len())
            .filter(|&i| {
                dataset.examples[i].split == split && dataset.examples[i].dress_box.is_some()
            })
            .collect()
    };
    let square_box = |i: usize| {
        let (w, h) = sizes[i];
        to_square(dataset.examples[i].dress_box.expect("boxed"), w, h)
    };
    let fit_rows = boxed(Split::Train);
    if fit_rows.is_empty() {
        return Err(TrainError::EmptyDataset {
            what: "train images with a dress box".into(),
            fix: "import a manifest with x0,y0,x1,y1 dress boxes, or train without detail views"
                .into(),
        });
    }
    let targets: Vec<[f32; 4]> = fit_rows.iter().map(|&i| square_box(i)).collect();
    observer.phase("dress locator", 1);
    let training = LocatorTraining {
        seed: config.seed,
        ..LocatorTraining::default()
    };
    let locator = fit_locator(&table, &fit_rows, &targets, &training, &device);
    let predicted = predict_boxes(&locator, &table, config.batch_size, &device);
    observer.advance(1, None);
    observer.phase_end();

    let test_rows = boxed(Split::Test);
    let test_mean_iou = (!test_rows.is_empty()).then(|| {
        test_rows
            .iter()
            .map(|&i| iou(predicted[i], square_box(i)))
            .sum::<f32>()
            / test_rows.len() as f32
    });
    for ((example, square), (w, h)) in dataset.examples.iter_mut().zip(&predicted).zip(&sizes) {
        example.detail_regions = crops
            .iter()
            .map(|crop| crop.region_for(*square, *w, *h))
            .collect();
    }
    Ok((
        locator,
        LocatorReport {
            fit_images: fit_rows.len(),
            test_mean_iou,
        },
    ))
}

/// Intersection over union of two boxes.
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: [f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_by_hand() {
        assert_eq!(iou([0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]), 1.0 / 7.0);
        assert_eq!(iou([0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0]), 0.0);
    }

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
