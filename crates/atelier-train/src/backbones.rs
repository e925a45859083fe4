//! Choosing and building a backbone by name, as the command line and stored models name them.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use atelier_models::{
    AnyBackbone, Backbone, EfficientNetLiteConfig, FeatureTap, ResNetConfig, TinyCnnConfig,
};
use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// The backbones a facet model can be built on.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackboneChoice {
    Resnet18,
    Resnet34,
    Resnet50,
    EfficientnetLite0,
    Tiny,
}

impl BackboneChoice {
    pub const ALL: [BackboneChoice; 5] = [
        Self::Resnet18,
        Self::Resnet34,
        Self::Resnet50,
        Self::EfficientnetLite0,
        Self::Tiny,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Resnet18 => "resnet18",
            Self::Resnet34 => "resnet34",
            Self::Resnet50 => "resnet50",
            Self::EfficientnetLite0 => "efficientnet-lite0",
            Self::Tiny => "tiny",
        }
    }

    /// How many stages a feature tap can stop after (see
    /// [`atelier_models::Backbone::forward_to_stage`]).
    pub fn stage_count(self) -> usize {
        match self {
            Self::Resnet18 | Self::Resnet34 | Self::Resnet50 => 4,
            Self::EfficientnetLite0 => EfficientNetLiteConfig::lite0().stages.len(),
            Self::Tiny => TinyCnnConfig::default().channels.len(),
        }
    }

    /// Builds the backbone without its ImageNet classifier, loading `weights` when given (an
    /// ImageNet classifier in the file is ignored).
    pub fn build(self, weights: Option<&Path>, device: &Device) -> Result<AnyBackbone, TrainError> {
        let mut backbone = match self {
            Self::Resnet18 => AnyBackbone::ResNet(
                ResNetConfig::resnet18()
                    .with_num_classes(None)
                    .init(device)?,
            ),
            Self::Resnet34 => AnyBackbone::ResNet(
                ResNetConfig::resnet34()
                    .with_num_classes(None)
                    .init(device)?,
            ),
            Self::Resnet50 => AnyBackbone::ResNet(
                ResNetConfig::resnet50()
                    .with_num_classes(None)
                    .init(device)?,
            ),
            Self::EfficientnetLite0 => AnyBackbone::EfficientNetLite(
                EfficientNetLiteConfig::lite0()
                    .with_num_classes(None)
                    .init(device)?,
            ),
            Self::Tiny => AnyBackbone::Tiny(TinyCnnConfig::default().init(device)?),
        };
        if let Some(path) = weights {
            backbone.load_weights(path)?;
        }
        Ok(backbone)
    }

    /// `[channels, height, width]` of the feature map that `tap` names, for
    /// a square input of `image_size` pixels. Padding rules differ between architectures (and
    /// round differently for odd sizes), so this runs one blank image through the backbone
    /// rather than trusting a formula.
    pub fn feature_shape(
        backbone: &AnyBackbone,
        image_size: u32,
        tap: FeatureTap,
        device: &Device,
    ) -> [usize; 3] {
        let size = image_size as usize;
        let probe = Tensor::<4>::zeros([1, 3, size, size], device);
        let [_, channels, height, width] = backbone.valid().forward_to(probe, tap).dims();
        [channels, height, width]
    }
}

impl fmt::Display for BackboneChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackboneChoice {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|choice| choice.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown backbone `{name}`; choose one of {}",
                    names.join(", ")
                )
            })
    }
}
