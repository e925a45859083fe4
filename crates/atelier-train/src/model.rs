//! The facet model: an optional spatial transformer, one shared backbone, and one
//! classification head per facet.
//!
//! Heads read the backbone's final feature map in one of three ways ([`HeadKind`]):
//! - `Pooled`: global average pooling, then a linear layer per facet (the classic transfer
//!   learning head);
//! - `Grid`: average pooling to a small grid (2x2 by default), then a linear layer per facet;
//! - `Spatial`: a shared 1x1 convolution squeezes the channels, and each facet's linear layer
//!   sees the whole squeezed map. Where a detail is (sleeves at the sides of the shoulders, a
//!   hem near the bottom) survives, which pooling throws away; for small details on frozen
//!   ImageNet features this is what lifts necklines and sleeves.

use atelier_models::spatial_transformer::{SpatialTransformer, SpatialTransformerConfig};
use atelier_models::{AnyBackbone, Backbone, FeatureTap};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::adaptive_avg_pool2d;
use image::RgbImage;
use rayon::prelude::*;

use crate::config::HeadKind;
use crate::crop::DetailCrop;
use crate::input::{InputConfig, eval_planes, to_batch};
use crate::locator::DressLocator;
use crate::standardize::ChannelStats;

/// The per-facet heads over a `[batch, channels, height, width]` feature map.
#[derive(Module, Debug)]
pub struct FacetHeads {
    squeeze: Option<Conv2d>,
    heads: Vec<Linear>,
    /// Side of the pooling grid of a `Grid` head (0 for the other kinds).
    grid: usize,
}

impl FacetHeads {
    /// Heads for a feature map of `channels` x `map_size` x `map_size`, one per entry of
    /// `classes` (the facet's number of labels).
    pub fn new(
        kind: HeadKind,
        channels: usize,
        map_size: usize,
        classes: &[usize],
        device: &Device,
    ) -> Self {
        let (squeeze, inputs) = match kind {
            HeadKind::Pooled => (None, channels),
            HeadKind::Grid { cells } => (None, channels * cells * cells),
            HeadKind::Spatial { channels: squeezed } => (
                Some(Conv2dConfig::new([channels, squeezed], [1, 1]).init(device)),
                squeezed * map_size * map_size,
            ),
        };
        let heads = classes
            .iter()
            .map(|&k| LinearConfig::new(inputs, k).init(device))
            .collect();
        let grid = match kind {
            HeadKind::Grid { cells } => cells,
            _ => 0,
        };
        Self {
            squeeze,
            heads,
            grid,
        }
    }

    /// These heads re-expressed for raw feature maps, when they were trained on maps
    /// standardised with `stats` (see [`crate::standardize`]).
    pub fn fold_standardization(self, stats: &ChannelStats) -> Self {
        match self.squeeze {
            Some(squeeze) => Self {
                squeeze: Some(stats.fold_into_conv1x1(squeeze)),
                ..self
            },
            None => {
                let per_channel = self.grid.max(1) * self.grid.max(1);
                Self {
                    heads: self
                        .heads
                        .into_iter()
                        .map(|head| stats.fold_into_linear(head, per_channel))
                        .collect(),
                    ..self
                }
            }
        }
    }

    /// Logits `[batch, classes]` for every facet, in the dataset's facet order.
    pub fn forward(&self, feature_map: Tensor<4>) -> Vec<Tensor<2>> {
        let input = self.inputs(feature_map);
        self.heads
            .iter()
            .map(|head| head.forward(input.clone()))
            .collect()
    }

    /// What every facet's linear layer reads: `[batch, inputs]`.
    pub fn inputs(&self, feature_map: Tensor<4>) -> Tensor<2> {
        let [batch, channels, height, width] = feature_map.dims();
        match &self.squeeze {
            None if self.grid > 0 => adaptive_avg_pool2d(feature_map, [self.grid, self.grid])
                .reshape([batch, channels * self.grid * self.grid]),
            None => feature_map
                .reshape([batch, channels, height * width])
                .mean_dim(2)
                .reshape([batch, channels]),
            Some(squeeze) => {
                let squeezed = relu(atelier_models::conv2d(squeeze, feature_map));
                let [_, c, h, w] = squeezed.dims();
                squeezed.reshape([batch, c * h * w])
            }
        }
    }
}

/// The whole network from normalised pixels to per-facet logits.
#[derive(Module, Debug)]
pub struct FacetNet {
    pub spatial_transformer: Option<SpatialTransformer>,
    pub backbone: AnyBackbone,
    pub heads: FacetHeads,
    /// The backbone's feature map the heads read.
    #[module(skip)]
    pub feature_tap: FeatureTap,
    /// For models with detail views: places them from the whole photo's feature map.
    pub locator: Option<DressLocator>,
}

impl FacetNet {
    /// A network with a spatial transformer when asked for (initialised to the identity).
    pub fn new(
        backbone: AnyBackbone,
        heads: FacetHeads,
        spatial_transformer: bool,
        feature_tap: FeatureTap,
        locator: Option<DressLocator>,
        device: &Device,
    ) -> Self {
        Self {
            locator,
            feature_tap,
            spatial_transformer: spatial_transformer
                .then(|| SpatialTransformerConfig::default().init(device)),
            backbone,
            heads,
        }
    }

    /// The backbone's feature map the heads read, for normalised images (after the spatial
    /// transformer).
    pub fn feature_map(&self, images: Tensor<4>) -> Tensor<4> {
        let images = match &self.spatial_transformer {
            Some(transformer) => transformer.forward(images),
            None => images,
        };
        self.backbone.forward_to(images, self.feature_tap)
    }

    /// Per-facet logits for normalised images `[batch, 3, size, size]` (whole view only).
    pub fn forward(&self, images: Tensor<4>) -> Vec<Tensor<2>> {
        self.heads.forward(self.feature_map(images))
    }

    /// Per-facet logits for decoded photos: the whole view, and for a model with detail views
    /// also the crops its locator places, cut from the original pixels exactly as in training.
    pub fn forward_photos(
        &self,
        photos: &[RgbImage],
        input: &InputConfig,
        detail_crops: &[DetailCrop],
        device: &Device,
    ) -> Vec<Tensor<2>> {
        let planes: Vec<_> = photos.par_iter().map(|p| eval_planes(p, input)).collect();
        let whole = self.feature_map(to_batch(&planes, device));
        let Some(locator) = self.locator.as_ref().filter(|_| !detail_crops.is_empty()) else {
            return self.heads.forward(whole);
        };
        let boxes = locator.boxes(whole.clone());
        let mut maps = vec![whole];
        for crop in detail_crops {
            let detail_planes: Vec<_> = photos
                .par_iter()
                .zip(&boxes)
                .map(|(photo, square)| {
                    let region = crop.region_for(*square, photo.width(), photo.height());
                    eval_planes(&crate::crop::crop(photo, region), input)
                })
                .collect();
            maps.push(self.feature_map(to_batch(&detail_planes, device)));
        }
        self.heads.forward(Tensor::cat(maps, 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 7x7 map pooled to a 2x2 grid uses PyTorch's adaptive windows, rows and columns
    /// `[0, 4)` and `[3, 7)`: the centre cell is in all four, a corner in one.
    #[test]
    fn grid_heads_pool_overlapping_windows_by_hand() {
        let device = Device::flex();
        let heads = FacetHeads::new(HeadKind::Grid { cells: 2 }, 2, 1, &[3], &device);
        let mut map = vec![0.0f32; 2 * 49];
        map[3 * 7 + 3] = 16.0; // channel 0, centre
        map[49 + 6 * 7 + 6] = 32.0; // channel 1, bottom-right corner
        let map = Tensor::<4>::from_data(TensorData::new(map, [1, 2, 7, 7]), &device);
        let inputs: Vec<f32> = heads.inputs(map).into_data().try_into_vec().unwrap();
        // Channel-major: channel 0's four cells, then channel 1's.
        assert_eq!(inputs, [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 2.0]);
        assert_eq!(
            heads.forward(Tensor::zeros([4, 2, 7, 7], &device))[0].dims(),
            [4, 3]
        );
    }
}
