//! A small stack of conv-BN-ReLU layers: fast enough for unit tests and smoke runs of the
//! training pipeline, with the same [`Backbone`] interface as the real networks.
//!
//! Each layer is a bias-free 3x3 convolution with stride 2 and padding 1, a batch norm
//! (eps 1e-5) and a ReLU; parameter paths are `layers.N.conv.weight`, `layers.N.bn.*` and
//! `fc.*`, so a PyTorch twin of it (see `fixtures/make_tiny_fixture.py`) loads directly.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::backbone::{
    Backbone, BackboneFeatures, ConfigError, Normalization, global_average_pool,
};
use crate::weights::{StateDictLayout, TorchWeights};

/// Shape of a [`TinyCnn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinyCnnConfig {
    /// Output channels of each layer; the input has 3.
    pub channels: Vec<usize>,
    /// Classes of the `fc` classifier; `None` builds the backbone without it.
    pub num_classes: Option<usize>,
}

impl Default for TinyCnnConfig {
    /// Three layers (8, 16, 32 channels), no classifier.
    fn default() -> Self {
        Self {
            channels: vec![8, 16, 32],
            num_classes: None,
        }
    }
}

impl TinyCnnConfig {
    pub fn new(channels: Vec<usize>, num_classes: Option<usize>) -> Self {
        Self {
            channels,
            num_classes,
        }
    }

    pub fn init(&self, device: &Device) -> Result<TinyCnn, ConfigError> {
        let problem = if self.channels.is_empty() {
            Some("at least one layer is needed".to_owned())
        } else if self.channels.contains(&0) {
            Some(format!(
                "layer channels must be positive, got {:?}",
                self.channels
            ))
        } else if self.num_classes == Some(0) {
            Some("num_classes must be positive (use None for no classifier)".to_owned())
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(ConfigError {
                model: "TinyCnn",
                problem,
            });
        }
        let inputs = std::iter::once(3).chain(self.channels.iter().copied());
        let layers = inputs
            .zip(self.channels.iter().copied())
            .map(|(in_channels, out_channels)| ConvBnRelu::new(in_channels, out_channels, device))
            .collect();
        let feature_dim = *self.channels.last().unwrap_or(&3);
        Ok(TinyCnn {
            layers,
            fc: self
                .num_classes
                .map(|classes| LinearConfig::new(feature_dim, classes).init(device)),
            config: self.clone(),
        })
    }
}

/// See the module documentation. Build it with [`TinyCnnConfig::init`].
#[derive(Module, Debug)]
pub struct TinyCnn {
    layers: Vec<ConvBnRelu>,
    fc: Option<Linear>,
    #[module(skip)]
    config: TinyCnnConfig,
}

impl TinyCnn {
    pub fn config(&self) -> &TinyCnnConfig {
        &self.config
    }
}

impl TorchWeights for TinyCnn {
    fn state_dict_layout(&self) -> StateDictLayout {
        StateDictLayout {
            model_name: format!("TinyCnn {:?}", self.config.channels),
            renames: vec![],
            torch_key: |key| key.to_owned(),
            ignored_prefixes: if self.fc.is_none() {
                vec!["fc."]
            } else {
                vec![]
            },
        }
    }
}

impl Backbone for TinyCnn {
    fn forward_features(&self, images: Tensor<4>) -> BackboneFeatures {
        let mut x = images;
        for layer in &self.layers {
            x = layer.forward(x);
        }
        BackboneFeatures {
            pooled: global_average_pool(x.clone()),
            feature_map: x,
        }
    }

    fn forward_to_stride(&self, images: Tensor<4>, stride: usize) -> Tensor<4> {
        let mut x = images;
        // Each layer halves the resolution; the first one always runs.
        for (index, layer) in self.layers.iter().enumerate() {
            if index > 0 && (2 << index) > stride {
                break;
            }
            x = layer.forward(x);
        }
        x
    }

    fn forward_to_stage(&self, images: Tensor<4>, stage: usize) -> Tensor<4> {
        let mut x = images;
        for layer in self.layers.iter().take(stage.max(1)) {
            x = layer.forward(x);
        }
        x
    }

    fn stage_count(&self) -> usize {
        self.layers.len()
    }

    fn feature_dim(&self) -> usize {
        *self.config.channels.last().unwrap_or(&3)
    }

    fn normalization(&self) -> Normalization {
        Normalization::IMAGENET
    }

    fn output_stride(&self) -> usize {
        1 << self.layers.len()
    }

    fn num_classes(&self) -> Option<usize> {
        self.config.num_classes
    }

    fn classify(&self, pooled: Tensor<2>) -> Option<Tensor<2>> {
        self.fc.as_ref().map(|fc| fc.forward(pooled))
    }
}

#[derive(Module, Debug)]
pub struct ConvBnRelu {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBnRelu {
    fn new(in_channels: usize, out_channels: usize, device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([in_channels, out_channels], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .with_initializer(Initializer::KaimingNormal {
                    gain: std::f64::consts::SQRT_2,
                    fan_out_only: true,
                })
                .init(device),
            bn: BatchNormConfig::new(out_channels).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.bn.forward(self.conv.forward(x)))
    }
}
