//! The interface every backbone offers to the heads built on top of it (multi-head classifier,
//! spatial transformer, box regressor), and [`AnyBackbone`] for choosing one at run time.

use std::path::Path;

use burn::prelude::*;

use crate::efficientnet::EfficientNetLite;
use crate::resnet::ResNet;
use crate::tiny::TinyCnn;
use crate::weights::{TorchWeights, WeightsError};

/// Per-channel input normalisation for RGB values scaled to `0..=1`: `(x - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// torchvision's ImageNet statistics, which its ResNets were trained with.
    pub const IMAGENET: Self = Self {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };

    /// Maps 0..=255 to about -1..=1 (mean 127, std 128 on the 0..=255 scale). EfficientNet-Lite
    /// was trained this way ("inception-style", chosen for better post-training quantisation).
    pub const INCEPTION: Self = Self {
        mean: [127.0 / 255.0; 3],
        std: [128.0 / 255.0; 3],
    };
}

/// Which feature map of a backbone a head reads.
///
/// The final map is the most ImageNet-specific: EfficientNet-Lite's 1x1 head convolution turns
/// its last block's 320 channels into 1280 class-like detectors. Earlier maps keep more of a
/// garment's geometry (where a sleeve ends, how deep a neckline goes), which a frozen backbone's
/// heads can then read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeatureTap {
    /// The final feature map, as in [`Backbone::forward_features`].
    #[default]
    Final,
    /// The map after the last layer whose output stride is this (a power of two); see
    /// [`Backbone::forward_to_stride`].
    Stride(usize),
    /// The output of the backbone's stage with this 1-based number; see
    /// [`Backbone::forward_to_stage`].
    Stage(usize),
}

/// What a backbone computes for a batch of images.
#[derive(Debug, Clone)]
pub struct BackboneFeatures {
    /// The last feature map, `[batch, feature_dim, height, width]`.
    pub feature_map: Tensor<4>,
    /// `feature_map` averaged over height and width, `[batch, feature_dim]`.
    pub pooled: Tensor<2>,
}

/// A convolutional feature extractor with an optional ImageNet classifier.
pub trait Backbone {
    /// Runs the network on normalised images `[batch, 3, height, width]`.
    fn forward_features(&self, images: Tensor<4>) -> BackboneFeatures;

    /// The feature map after the last layer whose output stride is `stride` (a power of two;
    /// values above [`Backbone::output_stride`] mean the final map). Only the layers up to it
    /// run. Earlier maps keep more spatial detail (a neckline's shape, a sleeve's end), which
    /// frozen heads can use; the final map equals `forward_features(..).feature_map`.
    fn forward_to_stride(&self, images: Tensor<4>, stride: usize) -> Tensor<4>;

    /// The output of stage `stage`, counted from 1 (EfficientNet-Lite: its 7 MBConv stages;
    /// ResNet: `layer1..layer4`; the small CNN: its conv layers). Numbers above
    /// [`Backbone::stage_count`] mean the final map; 0 is read as 1. Only the layers up to it
    /// run.
    fn forward_to_stage(&self, images: Tensor<4>, stage: usize) -> Tensor<4>;

    /// How many stages [`Backbone::forward_to_stage`] can stop after.
    fn stage_count(&self) -> usize;

    /// The feature map that `tap` names.
    fn forward_to(&self, images: Tensor<4>, tap: FeatureTap) -> Tensor<4> {
        match tap {
            FeatureTap::Final => self.forward_features(images).feature_map,
            FeatureTap::Stride(stride) => self.forward_to_stride(images, stride),
            FeatureTap::Stage(stage) => self.forward_to_stage(images, stage),
        }
    }

    /// Channels of the feature map (and length of the pooled vector).
    fn feature_dim(&self) -> usize;

    /// How input pixels must be normalised for the pretrained weights.
    fn normalization(&self) -> Normalization;

    /// Input pixels per feature-map cell along each axis (the feature map is
    /// `ceil(input / output_stride)` in each dimension).
    fn output_stride(&self) -> usize;

    /// Classes of the built-in classifier, or `None` when the model was built without one.
    fn num_classes(&self) -> Option<usize>;

    /// Applies the built-in classifier to pooled features, giving logits `[batch, classes]`.
    fn classify(&self, pooled: Tensor<2>) -> Option<Tensor<2>>;
}

/// Global average pooling: `[batch, channels, height, width]` to `[batch, channels]`.
pub(crate) fn global_average_pool(feature_map: Tensor<4>) -> Tensor<2> {
    let [batch, channels, height, width] = feature_map.dims();
    feature_map
        .reshape([batch, channels, height * width])
        .mean_dim(2)
        .reshape([batch, channels])
}

/// One of this crate's backbones, for code that picks the architecture from configuration.
// A program holds one or two of these, so the size gap between variants costs nothing worth
// boxing for (and burn's Module derive does not see through a Box).
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum AnyBackbone {
    ResNet(ResNet),
    EfficientNetLite(EfficientNetLite),
    Tiny(TinyCnn),
}

impl AnyBackbone {
    /// Loads a PyTorch state dict (`.pth` or `.safetensors`) into the wrapped model; see
    /// [`ResNet::load_weights`].
    pub fn load_weights(&mut self, path: &Path) -> Result<(), WeightsError> {
        match self {
            Self::ResNet(model) => model.load_weights(path),
            Self::EfficientNetLite(model) => model.load_weights(path),
            Self::Tiny(model) => model.load_weights(path),
        }
    }
}

impl Backbone for AnyBackbone {
    fn forward_features(&self, images: Tensor<4>) -> BackboneFeatures {
        match self {
            Self::ResNet(model) => model.forward_features(images),
            Self::EfficientNetLite(model) => model.forward_features(images),
            Self::Tiny(model) => model.forward_features(images),
        }
    }

    fn forward_to_stride(&self, images: Tensor<4>, stride: usize) -> Tensor<4> {
        match self {
            Self::ResNet(model) => model.forward_to_stride(images, stride),
            Self::EfficientNetLite(model) => model.forward_to_stride(images, stride),
            Self::Tiny(model) => model.forward_to_stride(images, stride),
        }
    }

    fn forward_to_stage(&self, images: Tensor<4>, stage: usize) -> Tensor<4> {
        match self {
            Self::ResNet(model) => model.forward_to_stage(images, stage),
            Self::EfficientNetLite(model) => model.forward_to_stage(images, stage),
            Self::Tiny(model) => model.forward_to_stage(images, stage),
        }
    }

    fn stage_count(&self) -> usize {
        match self {
            Self::ResNet(model) => model.stage_count(),
            Self::EfficientNetLite(model) => model.stage_count(),
            Self::Tiny(model) => model.stage_count(),
        }
    }

    fn feature_dim(&self) -> usize {
        match self {
            Self::ResNet(model) => model.feature_dim(),
            Self::EfficientNetLite(model) => model.feature_dim(),
            Self::Tiny(model) => model.feature_dim(),
        }
    }

    fn normalization(&self) -> Normalization {
        match self {
            Self::ResNet(model) => model.normalization(),
            Self::EfficientNetLite(model) => model.normalization(),
            Self::Tiny(model) => model.normalization(),
        }
    }

    fn output_stride(&self) -> usize {
        match self {
            Self::ResNet(model) => model.output_stride(),
            Self::EfficientNetLite(model) => model.output_stride(),
            Self::Tiny(model) => model.output_stride(),
        }
    }

    fn num_classes(&self) -> Option<usize> {
        match self {
            Self::ResNet(model) => model.num_classes(),
            Self::EfficientNetLite(model) => model.num_classes(),
            Self::Tiny(model) => model.num_classes(),
        }
    }

    fn classify(&self, pooled: Tensor<2>) -> Option<Tensor<2>> {
        match self {
            Self::ResNet(model) => model.classify(pooled),
            Self::EfficientNetLite(model) => model.classify(pooled),
            Self::Tiny(model) => model.classify(pooled),
        }
    }
}

/// A model configuration that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {model} configuration: {problem}")]
pub struct ConfigError {
    pub model: &'static str,
    pub problem: String,
}
