//! Everything that defines a training run; stored with the run and the model so that a run can
//! be resumed, repeated (`atelier retrain`) and explained.

use std::path::PathBuf;

use atelier_models::FeatureTap;
use serde::{Deserialize, Deserializer, Serialize};

use crate::backbones::BackboneChoice;
use crate::error::TrainError;
use crate::input::Augmentation;
use crate::locator::DetailCrop;
use crate::loss::{ClassWeighting, TargetLoss};
use crate::model::HeadKind;
use crate::schedule::{OptimizerChoice, Schedule};

/// Where tensors live: `Cpu` is burn's pure-Rust `flex` backend; `Vulkan` needs the `vulkan`
/// cargo feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    Cpu,
    Vulkan,
}

/// The settings of a facet training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub backbone: BackboneChoice,
    /// Pretrained backbone weights (`.pth` or `.safetensors`); `None` starts from random
    /// weights.
    pub weights: Option<PathBuf>,
    /// Facet names to train, in head order.
    pub facets: Vec<String>,
    pub image_size: u32,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub optimizer: OptimizerChoice,
    pub schedule: Schedule,
    pub class_weighting: ClassWeighting,
    /// Focal-loss exponent; 0 is plain cross-entropy.
    pub focal_gamma: f64,
    /// Train the heads with generalised cross-entropy of this exponent `q` in `(0, 1]` instead
    /// of (focal) cross-entropy: bounded per-image losses, so mistagged training labels pull
    /// less (see [`crate::loss`]). Not together with a focal exponent.
    #[serde(default)]
    pub gce_q: Option<f64>,
    pub head: HeadKind,
    /// Read the backbone's feature map at this output stride instead of its final one (e.g. 16
    /// for EfficientNet-Lite0's 112-channel map): finer detail for frozen heads.
    #[serde(default)]
    pub feature_stride: Option<usize>,
    /// Read the output of this backbone stage (1-based; e.g. 6 for EfficientNet-Lite0's
    /// 192-channel map before its last block and head) instead of the final map; see
    /// [`atelier_models::Backbone::forward_to_stage`]. Not together with `feature_stride`.
    #[serde(default)]
    pub feature_stage: Option<usize>,
    /// Keep the backbone's weights fixed. Without a spatial transformer its features are then
    /// computed once per image and cached.
    pub freeze_backbone: bool,
    /// Zoomed views of the upper body, each a square placed by one dress locator trained on
    /// the catalogue's dress boxes (see [`crate::locator`]); the heads read them after the whole
    /// photo. Needs a frozen backbone with cached features. Stored configurations from before
    /// several views existed name one optional square `detail_crop`; they still load.
    #[serde(
        default,
        alias = "detail_crop",
        deserialize_with = "one_or_more_detail_crops"
    )]
    pub detail_crops: Vec<DetailCrop>,
    pub spatial_transformer: bool,
    /// Training-time augmentation; only used when images go through the network each epoch
    /// (cached features are computed from unaugmented images).
    pub augmentation: Augmentation,
    /// Part of the train split held out for model selection and early stopping.
    pub validation_fraction: f64,
    /// Stop after this many epochs without a better validation score.
    pub patience: Option<usize>,
    pub seed: u64,
    pub device: DeviceChoice,
    /// Cross-fitting for out-of-fold predictions: 0 (off) or K >= 2. After the main model, K
    /// more models of this configuration are each trained without one K-th of the train split
    /// and predict it (see [`crate::folds`]); the run's train-split predictions and train
    /// tables then come from models that never saw the image.
    #[serde(default)]
    pub folds: usize,
    /// With `folds`: the fold models run first, and the main model trains without the train
    /// labels confident learning then suspects with at least this margin (see
    /// [`crate::mistags::drop_suspected_labels`]). The catalogue keeps those labels.
    #[serde(default)]
    pub drop_suspects: Option<f32>,
}

impl TrainConfig {
    /// Defaults for a backbone: a frozen pretrained backbone with spatial heads, which is what
    /// reaches a useful tagger in minutes on a CPU.
    pub fn new(backbone: BackboneChoice, facets: Vec<String>) -> Self {
        Self {
            backbone,
            weights: None,
            facets,
            image_size: 224,
            epochs: 30,
            batch_size: 32,
            learning_rate: 1e-3,
            optimizer: OptimizerChoice::AdamW { weight_decay: 1e-4 },
            schedule: Schedule::Cosine { warmup_epochs: 1.0 },
            class_weighting: ClassWeighting::None,
            focal_gamma: 0.0,
            gce_q: None,
            head: HeadKind::Spatial { channels: 32 },
            feature_stride: None,
            feature_stage: None,
            freeze_backbone: true,
            detail_crops: Vec::new(),
            spatial_transformer: false,
            augmentation: Augmentation::default(),
            validation_fraction: 0.1,
            patience: None,
            seed: 1,
            device: DeviceChoice::Cpu,
            folds: 0,
            drop_suspects: None,
        }
    }

    /// The feature map the heads read. A configuration naming both a stride and a stage reads
    /// the stage (the CLI refuses to build one).
    pub fn feature_tap(&self) -> FeatureTap {
        match (self.feature_stride, self.feature_stage) {
            (_, Some(stage)) => FeatureTap::Stage(stage),
            (Some(stride), None) => FeatureTap::Stride(stride),
            (None, None) => FeatureTap::Final,
        }
    }

    /// The per-image loss the heads train with.
    pub fn target_loss(&self) -> TargetLoss {
        match self.gce_q {
            Some(q) => TargetLoss::Generalized { q: q as f32 },
            None => TargetLoss::Focal {
                gamma: self.focal_gamma as f32,
            },
        }
    }

    /// Refuses settings that cannot work together, with a message that names the fix; runs
    /// check this before anything is recorded.
    pub fn check(&self) -> Result<(), TrainError> {
        crate::folds::check_cross_fitting(self)?;
        if self.focal_gamma < 0.0 {
            return Err(TrainError::Config(format!(
                "--focal-gamma {}: use 0 (plain cross-entropy) or more",
                self.focal_gamma
            )));
        }
        match self.gce_q {
            Some(q) if !(q > 0.0 && q <= 1.0) => Err(TrainError::Config(format!(
                "--gce-q {q}: the exponent of generalised cross-entropy lies in (0, 1]; 0.7 is usual"
            ))),
            Some(_) if self.focal_gamma > 0.0 => Err(TrainError::Config(
                "--gce-q and --focal-gamma are two different losses; choose one".into(),
            )),
            _ => Ok(()),
        }
    }

    /// How many feature maps the heads read, stacked along the channels: the whole photo and
    /// each detail view.
    pub fn views(&self) -> usize {
        1 + self.detail_crops.len()
    }

    /// Whether backbone features can be computed once and reused across epochs.
    pub fn caches_features(&self) -> bool {
        self.freeze_backbone && !self.spatial_transformer
    }
}

/// `detail_crops` as stored now (a list), or as stored before several views existed (one
/// square, or null for none).
fn one_or_more_detail_crops<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<DetailCrop>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Several(Vec<DetailCrop>),
        One(DetailCrop),
    }
    Ok(match Option::<Stored>::deserialize(deserializer)? {
        Some(Stored::Several(crops)) => crops,
        Some(Stored::One(crop)) => vec![crop],
        None => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs and models stored before several detail views existed keep loading, with the same
    /// single view (or none).
    #[test]
    fn configurations_with_one_detail_crop_still_load() {
        let mut config = TrainConfig::new(BackboneChoice::Tiny, vec!["sleeve".into()]);
        let crop = DetailCrop {
            side: 0.72,
            top_margin: 0.05,
        };
        let mut old = serde_json::to_value(&config).unwrap();
        let object = old.as_object_mut().unwrap();
        object.remove("detail_crops");
        object.insert("detail_crop".into(), serde_json::to_value(crop).unwrap());
        let loaded: TrainConfig = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(loaded.detail_crops, vec![crop]);
        old["detail_crop"] = serde_json::Value::Null;
        let loaded: TrainConfig = serde_json::from_value(old).unwrap();
        assert!(loaded.detail_crops.is_empty());

        config.detail_crops = vec![crop, DetailCrop { side: 0.9, ..crop }];
        let round_trip: TrainConfig =
            serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
        assert_eq!(round_trip, config);
        assert_eq!(round_trip.views(), 3);
    }
}
