//! The facet model: an optional spatial transformer, one shared backbone, and one
//! classification head per facet.
//!
//! Heads read the backbone's final feature map in one of two ways ([`HeadKind`]):
//! - `Pooled`: global average pooling, then a linear layer per facet (the classic transfer
//!   learning head);
//! - `Spatial`: a shared 1x1 convolution squeezes the channels, and each facet's linear layer
//!   sees the whole squeezed map. Where a detail is (sleeves at the sides of the shoulders, a
//!   hem near the bottom) survives, which pooling throws away; for small details on frozen
//!   ImageNet features this is what lifts necklines and sleeves.

use atelier_models::spatial_transformer::{SpatialTransformer, SpatialTransformerConfig};
use atelier_models::{AnyBackbone, Backbone};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

/// How the heads read the feature map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HeadKind {
    Pooled,
    Spatial { channels: usize },
}

/// The per-facet heads over a `[batch, channels, height, width]` feature map.
#[derive(Module, Debug)]
pub struct FacetHeads {
    squeeze: Option<Conv2d>,
    heads: Vec<Linear>,
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
            HeadKind::Spatial { channels: squeezed } => (
                Some(Conv2dConfig::new([channels, squeezed], [1, 1]).init(device)),
                squeezed * map_size * map_size,
            ),
        };
        let heads = classes
            .iter()
            .map(|&k| LinearConfig::new(inputs, k).init(device))
            .collect();
        Self { squeeze, heads }
    }

    /// Logits `[batch, classes]` for every facet, in the dataset's facet order.
    pub fn forward(&self, feature_map: Tensor<4>) -> Vec<Tensor<2>> {
        let [batch, channels, height, width] = feature_map.dims();
        let input = match &self.squeeze {
            None => feature_map
                .reshape([batch, channels, height * width])
                .mean_dim(2)
                .reshape([batch, channels]),
            Some(squeeze) => {
                let squeezed = relu(squeeze.forward(feature_map));
                let [_, c, h, w] = squeezed.dims();
                squeezed.reshape([batch, c * h * w])
            }
        };
        self.heads
            .iter()
            .map(|head| head.forward(input.clone()))
            .collect()
    }
}

/// The whole network from normalised pixels to per-facet logits.
#[derive(Module, Debug)]
pub struct FacetNet {
    pub spatial_transformer: Option<SpatialTransformer>,
    pub backbone: AnyBackbone,
    pub heads: FacetHeads,
    /// Output stride of the feature map the heads read (`usize::MAX`: the final map).
    pub feature_stride: usize,
}

impl FacetNet {
    /// A network with a spatial transformer when asked for (initialised to the identity).
    pub fn new(
        backbone: AnyBackbone,
        heads: FacetHeads,
        spatial_transformer: bool,
        feature_stride: Option<usize>,
        device: &Device,
    ) -> Self {
        Self {
            feature_stride: feature_stride.unwrap_or(usize::MAX),
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
        self.backbone.forward_to_stride(images, self.feature_stride)
    }

    /// Per-facet logits for normalised images `[batch, 3, size, size]`.
    pub fn forward(&self, images: Tensor<4>) -> Vec<Tensor<2>> {
        self.heads.forward(self.feature_map(images))
    }
}
