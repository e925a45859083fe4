//! Everything that defines a training run, stored with the run and the model so that a run can
//! be resumed, repeated (`atelier retrain`) and explained: [`TrainConfig`], whose
//! [`Default`] holds every default once; the named [`Recipe`]s that start from it; and
//! [`TrainConfig::validate`], the one check every front end runs before a run is recorded.
//!
//! This module is a leaf: the setting types it names live in modules that import nothing of
//! the crate (backbones, crop geometry, input, loss, schedule).

use std::mem::discriminant;
use std::path::PathBuf;

use atelier_models::FeatureTap;
use serde::{Deserialize, Deserializer, Serialize};

use crate::backbones::BackboneChoice;
use crate::crop::DetailCrop;
use crate::error::TrainError;
use crate::input::Augmentation;
use crate::loss::{ClassWeighting, TargetLoss};
use crate::schedule::{OptimizerChoice, Schedule};

/// Where tensors live: `Cpu` is burn's pure-Rust `flex` backend; `Cuda` (NVIDIA, first GPU)
/// and `Vulkan` (wgpu, default adapter) need the cargo features of the same names.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    Cpu,
    Cuda,
    Vulkan,
}

impl DeviceChoice {
    /// The name the CLI, the configuration files and the job queue use.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
            DeviceChoice::Vulkan => "vulkan",
        }
    }

    /// Whether this build has the backend (the device may still be missing at run time).
    pub fn is_built(self) -> bool {
        match self {
            DeviceChoice::Cpu => true,
            DeviceChoice::Cuda => cfg!(feature = "cuda"),
            DeviceChoice::Vulkan => cfg!(feature = "vulkan"),
        }
    }
}

/// How the heads read the feature map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HeadKind {
    /// Global average pooling, then a linear layer per facet.
    Pooled,
    /// A 1x1 convolution squeezes the map to `channels`, then a linear layer per facet reads
    /// every position.
    Spatial { channels: usize },
    /// Average pooling to a `cells` x `cells` grid, then a linear layer per facet: keeps
    /// coarse position (top/bottom, left/right) at the cost of a pooled head.
    Grid { cells: usize },
}

/// A named starting point for a run's configuration; options given beside it override it.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recipe {
    /// Fine-tunes the whole of EfficientNet-Lite0 from its ImageNet weights with augmented
    /// photos: [`TrainConfig::default`]. Slow on a CPU; the most a large catalogue can get.
    Finetune,
    /// The demo's recipe (`frozen-lite0-views`): frozen EfficientNet-Lite0 features, computed
    /// once, of the whole photo and of two upper-body views placed by a dress locator, read by
    /// grid heads with a noise-robust loss; out-of-fold models find disputed labels and the
    /// main model learns without them. Minutes on a CPU; see [`Recipe::config`] for why each
    /// setting is what it is.
    #[cfg_attr(feature = "clap", value(alias = "frozen-lite0-views"))]
    #[serde(alias = "frozen-lite0-views")]
    Demo,
}

impl Recipe {
    /// The recipe's configuration for the catalogue's facets (`facets` empty: all of them).
    pub fn config(self) -> TrainConfig {
        match self {
            Recipe::Finetune => TrainConfig::default(),
            Recipe::Demo => TrainConfig {
                freeze_backbone: true,
                // Stage 6 of Lite0 (192 channels at stride 32, before its last block and the
                // 1280-channel ImageNet head) keeps where a sleeve ends and how a neckline is
                // cut, which the head's class-like features blur: on the demo's photos with
                // clean labels it lifted sleeve test macro-F1 from 0.86 to 0.90 and neckline
                // from 0.91 to 0.96.
                feature_stage: Some(6),
                // Necklines and sleeve ends are a few pixels of a full-length photo. 0.72 box
                // heights is wide enough for most sleeve ends and still a 1.5-2x zoom on the
                // neckline; 0.9 reaches the wrists of short dresses, whose box is short.
                detail_crops: [0.72, 0.9]
                    .map(|side| DetailCrop {
                        side,
                        ..DetailCrop::default()
                    })
                    .to_vec(),
                // A 3x3 grid keeps top/middle/bottom and left/centre/right apart.
                head: HeadKind::Grid { cells: 3 },
                // Flipping a cached map is not the map of the flipped photo; augmenting cost
                // 0.02-0.03 test macro-F1 on sleeve and length.
                augmentation: Augmentation::NONE,
                // Mistagged labels pull hard under cross-entropy; generalised cross-entropy
                // bounds them (sleeve test macro-F1 against the truth 0.88 -> 0.94 with 5 %
                // flipped labels).
                gce_q: Some(0.7),
                class_weighting: ClassWeighting::Effective { beta: 0.999 },
                // Picking the epoch by a tenth of 2 400 noisy labels made test F1 depend on the
                // seed; the cosine schedule's last epoch is steadier.
                validation_fraction: 0.0,
                epochs: 30,
                folds: 3,
                drop_suspects: Some(0.5),
                ..TrainConfig::default()
            },
        }
    }
}

/// The settings of a facet training run. A stored configuration (a run's, or a `run.json`
/// written by hand) may leave fields out; they take the defaults of [`TrainConfig::default`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    pub backbone: BackboneChoice,
    /// Pretrained backbone weights (`.pth` or `.safetensors`); `None` starts from random
    /// weights (the application fills in EfficientNet-Lite0's ImageNet weights).
    pub weights: Option<PathBuf>,
    /// Facet names to train, in head order; empty means every facet of the catalogue.
    pub facets: Vec<String>,
    /// Side of the square network input in pixels, 16 to 1024.
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
    pub gce_q: Option<f64>,
    pub head: HeadKind,
    /// Read the backbone's feature map at this output stride instead of its final one (e.g. 16
    /// for EfficientNet-Lite0's 112-channel map): finer detail for frozen heads.
    pub feature_stride: Option<usize>,
    /// Read the output of this backbone stage (1-based; e.g. 6 for EfficientNet-Lite0's
    /// 192-channel map before its last block and head) instead of the final map; see
    /// [`atelier_models::Backbone::forward_to_stage`]. Not together with `feature_stride`.
    pub feature_stage: Option<usize>,
    /// Keep the backbone's weights fixed. Without a spatial transformer its features are then
    /// computed once per image and cached.
    pub freeze_backbone: bool,
    /// Zoomed views of the upper body, each a square placed by one dress locator trained on
    /// the catalogue's dress boxes (see [`crate::locator`]); the heads read them after the whole
    /// photo. Needs a frozen backbone with cached features. Stored configurations from before
    /// several views existed name one optional square `detail_crop`; they still load.
    #[serde(alias = "detail_crop", deserialize_with = "one_or_more_detail_crops")]
    pub detail_crops: Vec<DetailCrop>,
    pub spatial_transformer: bool,
    /// Training-time augmentation; only used when images go through the network each epoch
    /// (cached features are computed from unaugmented images).
    pub augmentation: Augmentation,
    /// Part of the train split held out for model selection and early stopping, in `[0, 1)`.
    pub validation_fraction: f64,
    /// Stop after this many epochs without a better validation score.
    pub patience: Option<usize>,
    pub seed: u64,
    pub device: DeviceChoice,
    /// Cross-fitting for out-of-fold predictions: 0 (off) or K >= 2. After the main model, K
    /// more models of this configuration are each trained without one K-th of the train split
    /// and predict it (see [`crate::folds`]); the run's train-split predictions and train
    /// tables then come from models that never saw the image.
    pub folds: usize,
    /// With `folds`: the fold models run first, and the main model trains without the train
    /// labels confident learning then suspects with at least this margin (see
    /// [`crate::mistags::drop_suspected_labels`]). The catalogue keeps those labels.
    pub drop_suspects: Option<f32>,
}

impl Default for TrainConfig {
    /// Every default, once: fine-tuning EfficientNet-Lite0 with spatial heads, AdamW and a
    /// cosine schedule with one warm-up epoch, on augmented 224-pixel photos.
    fn default() -> Self {
        Self {
            backbone: BackboneChoice::EfficientnetLite0,
            weights: None,
            facets: Vec::new(),
            image_size: 224,
            epochs: 20,
            batch_size: 32,
            learning_rate: 1e-3,
            optimizer: OptimizerChoice::ADAMW,
            schedule: Schedule::COSINE,
            class_weighting: ClassWeighting::None,
            focal_gamma: 0.0,
            gce_q: None,
            head: HeadKind::SPATIAL,
            feature_stride: None,
            feature_stage: None,
            freeze_backbone: false,
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
}

impl HeadKind {
    /// A spatial head with its default squeeze.
    pub const SPATIAL: HeadKind = HeadKind::Spatial { channels: 32 };
    /// A grid head with its default 2x2 grid (top and bottom, left and right).
    pub const GRID: HeadKind = HeadKind::Grid { cells: 2 };
}

/// `chosen` if it is another kind of setting than `current` (e.g. a grid head instead of a
/// spatial one, with the grid's default size); otherwise `current`, which keeps its
/// parameters (a recipe's 3x3 grid stays 3x3 when `--head grid` is given again).
pub fn choose<T: Copy>(current: T, chosen: Option<T>) -> T {
    match chosen {
        Some(chosen) if discriminant(&chosen) != discriminant(&current) => chosen,
        _ => current,
    }
}

impl TrainConfig {
    /// The defaults on `backbone` for `facets`.
    pub fn new(backbone: BackboneChoice, facets: Vec<String>) -> Self {
        Self {
            backbone,
            facets,
            ..Self::default()
        }
    }

    /// Sets the number of cross-fitting folds; 0 also turns off dropping suspects, which needs
    /// the fold models.
    pub fn set_folds(&mut self, folds: usize) {
        self.folds = folds;
        if folds == 0 {
            self.drop_suspects = None;
        }
    }

    /// The feature map the heads read ([`TrainConfig::validate`] refuses a configuration
    /// naming both a stride and a stage).
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

    /// How many feature maps the heads read, stacked along the channels: the whole photo and
    /// each detail view.
    pub fn views(&self) -> usize {
        1 + self.detail_crops.len()
    }

    /// Whether backbone features can be computed once and reused across epochs.
    pub fn caches_features(&self) -> bool {
        self.freeze_backbone && !self.spatial_transformer
    }

    /// Refuses settings that cannot work, alone or together, with a
    /// [`TrainError::Setting`] that names the field and the fix. Every front end calls this
    /// before a run is recorded, and training calls it again.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.validate_loop()?;
        self.validate_loss()?;
        self.validate_network()?;
        self.validate_views()?;
        self.validate_cross_fitting()?;
        self.validate_device()
    }

    fn validate_loop(&self) -> Result<(), TrainError> {
        require(self.epochs >= 1, "epochs", || {
            format!("{}: use at least 1", self.epochs)
        })?;
        require(self.batch_size >= 1, "batch_size", || {
            format!("{}: use at least 1", self.batch_size)
        })?;
        require((16..=1024).contains(&self.image_size), "image_size", || {
            format!(
                "{} is outside 16 to 1024 pixels (224 is usual)",
                self.image_size
            )
        })?;
        require(
            self.learning_rate.is_finite() && self.learning_rate > 0.0,
            "learning_rate",
            || {
                format!(
                    "{} is not a positive rate (1e-3 is usual)",
                    self.learning_rate
                )
            },
        )?;
        require(
            (0.0..1.0).contains(&self.validation_fraction),
            "validation_fraction",
            || {
                format!(
                    "{} is outside [0, 1) (0.1 is usual)",
                    self.validation_fraction
                )
            },
        )?;
        self.validate_optimizer()?;
        self.validate_schedule()?;
        let augmentation = self.augmentation;
        require(
            augmentation.min_crop_area > 0.0
                && augmentation.min_crop_area <= 1.0
                && (0.0..1.0).contains(&augmentation.color_jitter),
            "augmentation",
            || "has a min_crop_area outside (0, 1] or a color_jitter outside [0, 1)".into(),
        )
    }

    fn validate_optimizer(&self) -> Result<(), TrainError> {
        let (momentum, weight_decay) = match self.optimizer {
            OptimizerChoice::AdamW { weight_decay } => (0.0, weight_decay),
            OptimizerChoice::Sgd {
                momentum,
                weight_decay,
            } => (momentum, weight_decay),
        };
        require(
            (0.0..1.0).contains(&momentum) && weight_decay >= 0.0 && weight_decay.is_finite(),
            "optimizer",
            || "has a momentum outside [0, 1) or a negative weight decay".into(),
        )
    }

    fn validate_schedule(&self) -> Result<(), TrainError> {
        let fine = match self.schedule {
            Schedule::Cosine { warmup_epochs } => warmup_epochs >= 0.0 && warmup_epochs.is_finite(),
            Schedule::Step {
                every_epochs,
                gamma,
            } => every_epochs >= 1 && gamma > 0.0 && gamma.is_finite(),
        };
        require(fine, "schedule", || {
            "has a negative warm-up, or steps every 0 epochs or by a gamma of 0 or less".into()
        })
    }

    fn validate_loss(&self) -> Result<(), TrainError> {
        require(
            self.focal_gamma >= 0.0 && self.focal_gamma.is_finite(),
            "focal_gamma",
            || format!("{}: use 0 (plain cross-entropy) or more", self.focal_gamma),
        )?;
        if let Some(q) = self.gce_q {
            require(q > 0.0 && q <= 1.0, "gce_q", || {
                format!(
                    "{q}: the exponent of generalised cross-entropy lies in (0, 1]; 0.7 is usual"
                )
            })?;
            require(self.focal_gamma == 0.0, "gce_q", || {
                "cannot go with a focal exponent: they are two different losses; choose one".into()
            })?;
        }
        if let ClassWeighting::Effective { beta } = self.class_weighting {
            require((0.0..1.0).contains(&beta), "class_weighting", || {
                format!("effective with beta {beta}: beta lies in [0, 1) (0.999 is usual)")
            })?;
        }
        Ok(())
    }

    fn validate_network(&self) -> Result<(), TrainError> {
        match self.head {
            HeadKind::Spatial { channels } => require(channels >= 1, "head", || {
                "spatial with 0 channels: use 1 or more".into()
            })?,
            HeadKind::Grid { cells } => require((1..=7).contains(&cells), "head", || {
                format!("grid of {cells} x {cells} cells: use 1 to 7 a side")
            })?,
            HeadKind::Pooled => {}
        }
        if let Some(stride) = self.feature_stride {
            require(
                stride.is_power_of_two() && (2..=64).contains(&stride),
                "feature_stride",
                || format!("{stride}: use a power of two from 2 to 64 (e.g. 16)"),
            )?;
            require(self.feature_stage.is_none(), "feature_stride", || {
                "cannot go with a feature stage: both choose the map the heads read; keep one"
                    .into()
            })?;
        }
        if let Some(stage) = self.feature_stage {
            let stages = self.backbone.stage_count();
            require((1..=stages).contains(&stage), "feature_stage", || {
                format!(
                    "{stage}: {} has stages 1 to {stages} (leave it out for the final map)",
                    self.backbone
                )
            })?;
        }
        if let Some(weights) = &self.weights {
            require(weights.is_file(), "weights", || {
                format!("{} is not a file", weights.display())
            })?;
        }
        Ok(())
    }

    fn validate_views(&self) -> Result<(), TrainError> {
        if self.detail_crops.is_empty() {
            return Ok(());
        }
        require(self.caches_features(), "detail_crops", || {
            "need cached features: freeze the backbone and leave out the spatial transformer".into()
        })?;
        for crop in &self.detail_crops {
            require(
                (0.1..=2.0).contains(&crop.side) && crop.top_margin.is_finite(),
                "detail_crops",
                || {
                    format!(
                        "side {}: use a fraction of the dress box height from 0.1 to 2 (e.g. \
                         0.72)",
                        crop.side
                    )
                },
            )?;
        }
        Ok(())
    }

    fn validate_cross_fitting(&self) -> Result<(), TrainError> {
        require(self.folds != 1, "folds", || {
            "1 would train a model on no images; use 0 (no out-of-fold predictions) or at \
             least 2 (e.g. 5)"
                .into()
        })?;
        if let Some(margin) = self.drop_suspects {
            require(self.folds >= 2, "drop_suspects", || {
                "needs out-of-fold scores: add 3 (or more) cross-fitting folds".into()
            })?;
            require((-1.0..=1.0).contains(&margin), "drop_suspects", || {
                format!(
                    "{margin}: a margin is a difference of probabilities; use a value from 0 \
                     to 1 (e.g. 0.5)"
                )
            })?;
        }
        Ok(())
    }

    fn validate_device(&self) -> Result<(), TrainError> {
        require(self.device.is_built(), "device", || {
            crate::device::not_built(self.device)
        })
    }
}

/// `Ok` if `holds`, else the setting error for `field` with the message `problem` builds.
fn require(
    holds: bool,
    field: &'static str,
    problem: impl FnOnce() -> String,
) -> Result<(), TrainError> {
    if holds {
        Ok(())
    } else {
        Err(TrainError::Setting {
            field,
            problem: problem(),
        })
    }
}

#[cfg(feature = "clap")]
mod choices {
    //! Command-line names for the settings that carry parameters: each names a kind, with the
    //! kind's default parameters (see [`super::choose`] for how a recipe's are kept).

    use clap::ValueEnum;
    use clap::builder::PossibleValue;

    use super::HeadKind;
    use crate::loss::ClassWeighting;
    use crate::schedule::{OptimizerChoice, Schedule};

    impl ValueEnum for HeadKind {
        fn value_variants<'a>() -> &'a [Self] {
            &[HeadKind::SPATIAL, HeadKind::GRID, HeadKind::Pooled]
        }

        fn to_possible_value(&self) -> Option<PossibleValue> {
            Some(match self {
                HeadKind::Spatial { .. } => PossibleValue::new("spatial")
                    .help("1x1 squeeze to 32 channels, then linear over the whole map"),
                HeadKind::Grid { .. } => PossibleValue::new("grid")
                    .help("average over a 2x2 grid, then linear: keeps coarse position"),
                HeadKind::Pooled => {
                    PossibleValue::new("pooled").help("global average, then linear")
                }
            })
        }
    }

    impl ValueEnum for OptimizerChoice {
        fn value_variants<'a>() -> &'a [Self] {
            &[OptimizerChoice::ADAMW, OptimizerChoice::SGD]
        }

        fn to_possible_value(&self) -> Option<PossibleValue> {
            Some(match self {
                OptimizerChoice::AdamW { .. } => PossibleValue::new("adamw"),
                OptimizerChoice::Sgd { .. } => PossibleValue::new("sgd").help("with momentum 0.9"),
            })
        }
    }

    impl ValueEnum for Schedule {
        fn value_variants<'a>() -> &'a [Self] {
            &[Schedule::COSINE, Schedule::STEP]
        }

        fn to_possible_value(&self) -> Option<PossibleValue> {
            Some(match self {
                Schedule::Cosine { .. } => {
                    PossibleValue::new("cosine").help("one warm-up epoch, then cosine decay")
                }
                Schedule::Step { .. } => {
                    PossibleValue::new("step").help("a tenth of the rate every 10 epochs")
                }
            })
        }
    }

    impl ValueEnum for ClassWeighting {
        fn value_variants<'a>() -> &'a [Self] {
            &[
                ClassWeighting::None,
                ClassWeighting::Inverse,
                ClassWeighting::EFFECTIVE,
            ]
        }

        fn to_possible_value(&self) -> Option<PossibleValue> {
            Some(match self {
                ClassWeighting::None => PossibleValue::new("none"),
                ClassWeighting::Inverse => {
                    PossibleValue::new("inverse").help("balanced: n / (k * n_c)")
                }
                ClassWeighting::Effective { .. } => {
                    PossibleValue::new("effective").help("effective number of samples, beta 0.999")
                }
            })
        }
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

    fn refused_field(config: &TrainConfig) -> &'static str {
        match config.validate() {
            Err(TrainError::Setting { field, .. }) => field,
            other => panic!("expected a setting error, got {other:?}"),
        }
    }

    #[test]
    fn validate_names_the_field_of_each_impossible_setting() {
        type Change = fn(&mut TrainConfig);
        let cases: [(Change, &str); 17] = [
            (|c| c.epochs = 0, "epochs"),
            (|c| c.batch_size = 0, "batch_size"),
            (|c| c.image_size = 8, "image_size"),
            (|c| c.learning_rate = 0.0, "learning_rate"),
            (|c| c.validation_fraction = 1.0, "validation_fraction"),
            (|c| c.focal_gamma = -1.0, "focal_gamma"),
            (|c| c.gce_q = Some(1.5), "gce_q"),
            (
                |c| {
                    c.gce_q = Some(0.7);
                    c.focal_gamma = 2.0
                },
                "gce_q",
            ),
            (
                |c| c.class_weighting = ClassWeighting::Effective { beta: 1.0 },
                "class_weighting",
            ),
            (|c| c.head = HeadKind::Grid { cells: 8 }, "head"),
            (|c| c.feature_stride = Some(12), "feature_stride"),
            (|c| c.feature_stage = Some(9), "feature_stage"),
            (
                |c| c.detail_crops = vec![DetailCrop::default()],
                "detail_crops",
            ),
            (|c| c.folds = 1, "folds"),
            (|c| c.drop_suspects = Some(0.5), "drop_suspects"),
            (
                |c| {
                    c.schedule = Schedule::Step {
                        every_epochs: 0,
                        gamma: 0.1,
                    }
                },
                "schedule",
            ),
            (
                |c| c.weights = Some("/no/such/weights.pth".into()),
                "weights",
            ),
        ];
        for (change, field) in cases {
            let mut config = TrainConfig::default();
            change(&mut config);
            assert_eq!(refused_field(&config), field, "{config:?}");
        }
        // Both ways of choosing the feature map at once.
        let mut config = TrainConfig {
            feature_stride: Some(16),
            feature_stage: Some(6),
            ..TrainConfig::default()
        };
        assert_eq!(refused_field(&config), "feature_stride");
        // Detail views on a frozen backbone are fine; with a spatial transformer they are not.
        config = Recipe::Demo.config();
        assert!(config.validate().is_ok());
        config.spatial_transformer = true;
        assert_eq!(refused_field(&config), "detail_crops");
        // Messages describe the problem without naming a front end's flags.
        let config = TrainConfig {
            folds: 1,
            ..TrainConfig::default()
        };
        let message = config.validate().unwrap_err().to_string();
        assert!(message.starts_with("folds 1 would train"), "{message}");
        assert!(!message.contains("--"), "{message}");
    }

    #[test]
    fn recipes_are_valid_and_the_demo_recipe_is_the_demo_s() {
        for recipe in [Recipe::Finetune, Recipe::Demo] {
            recipe.config().validate().unwrap();
        }
        assert_eq!(Recipe::Finetune.config(), TrainConfig::default());
        let demo = Recipe::Demo.config();
        assert!(demo.freeze_backbone && demo.caches_features());
        assert_eq!(demo.feature_tap(), FeatureTap::Stage(6));
        assert_eq!(demo.head, HeadKind::Grid { cells: 3 });
        let sides: Vec<f32> = demo.detail_crops.iter().map(|c| c.side).collect();
        assert_eq!(sides, [0.72, 0.9]);
        assert_eq!(demo.target_loss(), TargetLoss::Generalized { q: 0.7 });
        assert_eq!((demo.folds, demo.drop_suspects), (3, Some(0.5)));
        assert_eq!(demo.augmentation, Augmentation::NONE);
        let named: Recipe = serde_json::from_str("\"frozen-lite0-views\"").unwrap();
        assert_eq!(named, Recipe::Demo);
    }

    /// A hand-written configuration file names only what it changes.
    #[test]
    fn a_partial_configuration_takes_the_defaults() {
        let config: TrainConfig = serde_json::from_str(
            r#"{"epochs": 5, "optimizer": {"name": "sgd", "momentum": 0.8, "weight_decay": 0}}"#,
        )
        .unwrap();
        let expected = TrainConfig {
            epochs: 5,
            optimizer: OptimizerChoice::Sgd {
                momentum: 0.8,
                weight_decay: 0.0,
            },
            ..TrainConfig::default()
        };
        assert_eq!(config, expected);
    }

    #[test]
    fn choosing_the_same_kind_keeps_its_parameters() {
        let grid3 = HeadKind::Grid { cells: 3 };
        assert_eq!(choose(grid3, Some(HeadKind::GRID)), grid3);
        assert_eq!(choose(grid3, Some(HeadKind::Pooled)), HeadKind::Pooled);
        assert_eq!(choose(grid3, None), grid3);
        assert_eq!(
            choose(HeadKind::SPATIAL, Some(HeadKind::GRID)),
            HeadKind::GRID
        );
    }
}
