//! ResNet-18/34/50 laid out like torchvision's, so its state dicts load as they are.
//!
//! Parameter paths equal torchvision's keys (`conv1.weight`, `layer2.0.downsample.0.weight`,
//! `layer3.1.bn2.running_var`, `fc.bias`, ...) except `downsample.0`/`downsample.1`, which are
//! named fields here (`downsample.conv`/`downsample.bn`) and renamed on import. Bottleneck blocks
//! stride in their 3x3 convolution (torchvision's "ResNet v1.5"). Batch norms use eps 1e-5 and,
//! on a device without autodiff, their running statistics.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::backbone::{
    Backbone, BackboneFeatures, ConfigError, Normalization, global_average_pool,
};
use crate::conv_bn::conv_bn;
use crate::flex_max_pool::max_pool;
use crate::weights::{StateDictLayout, TorchWeights};

/// The residual block a ResNet is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3x3 convolutions (ResNet-18/34).
    Basic,
    /// 1x1 reduce, 3x3, 1x1 expand by 4 (ResNet-50 and deeper).
    Bottleneck,
}

impl BlockKind {
    /// Output channels of a block relative to its stage width.
    pub fn expansion(self) -> usize {
        match self {
            Self::Basic => 1,
            Self::Bottleneck => 4,
        }
    }
}

/// Shape of a ResNet. The presets match torchvision; the fields can be changed to build the
/// reduced networks used as test fixtures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResNetConfig {
    pub block: BlockKind,
    /// Residual blocks in each of the four stages (`layer1`..`layer4`).
    pub blocks_per_stage: [usize; 4],
    /// Width of each stage (torchvision's `planes`: 64, 128, 256, 512). The stem has
    /// `stage_widths[0]` channels; a stage outputs `width * block.expansion()` channels.
    pub stage_widths: [usize; 4],
    /// Classes of the `fc` classifier; `None` builds the backbone without it.
    pub num_classes: Option<usize>,
}

const TORCHVISION_WIDTHS: [usize; 4] = [64, 128, 256, 512];

impl ResNetConfig {
    /// torchvision's `resnet18`, with its 1000-class ImageNet classifier.
    pub fn resnet18() -> Self {
        Self {
            block: BlockKind::Basic,
            blocks_per_stage: [2, 2, 2, 2],
            stage_widths: TORCHVISION_WIDTHS,
            num_classes: Some(1000),
        }
    }

    /// torchvision's `resnet34`, with its 1000-class ImageNet classifier.
    pub fn resnet34() -> Self {
        Self {
            block: BlockKind::Basic,
            blocks_per_stage: [3, 4, 6, 3],
            stage_widths: TORCHVISION_WIDTHS,
            num_classes: Some(1000),
        }
    }

    /// torchvision's `resnet50`, with its 1000-class ImageNet classifier.
    pub fn resnet50() -> Self {
        Self {
            block: BlockKind::Bottleneck,
            blocks_per_stage: [3, 4, 6, 3],
            stage_widths: TORCHVISION_WIDTHS,
            num_classes: Some(1000),
        }
    }

    pub fn with_num_classes(mut self, num_classes: Option<usize>) -> Self {
        self.num_classes = num_classes;
        self
    }

    pub fn with_blocks_per_stage(mut self, blocks_per_stage: [usize; 4]) -> Self {
        self.blocks_per_stage = blocks_per_stage;
        self
    }

    pub fn with_stage_widths(mut self, stage_widths: [usize; 4]) -> Self {
        self.stage_widths = stage_widths;
        self
    }

    /// Channels of the final feature map.
    pub fn feature_dim(&self) -> usize {
        self.stage_widths[3] * self.block.expansion()
    }

    /// "ResNet-18" for the presets, otherwise a description of the shape.
    pub fn name(&self) -> String {
        let depth = match (self.block, self.blocks_per_stage) {
            (BlockKind::Basic, [2, 2, 2, 2]) => Some(18),
            (BlockKind::Basic, [3, 4, 6, 3]) => Some(34),
            (BlockKind::Bottleneck, [3, 4, 6, 3]) => Some(50),
            _ => None,
        };
        match depth {
            Some(depth) if self.stage_widths == TORCHVISION_WIDTHS => format!("ResNet-{depth}"),
            _ => format!(
                "ResNet ({:?} blocks {:?}, widths {:?})",
                self.block, self.blocks_per_stage, self.stage_widths
            ),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let problem = if self.blocks_per_stage.contains(&0) {
            Some(format!(
                "every stage needs at least one block, got {:?}",
                self.blocks_per_stage
            ))
        } else if self.stage_widths.contains(&0) {
            Some(format!(
                "stage widths must be positive, got {:?}",
                self.stage_widths
            ))
        } else if self.num_classes == Some(0) {
            Some("num_classes must be positive (use None for no classifier)".to_owned())
        } else {
            None
        };
        match problem {
            Some(problem) => Err(ConfigError {
                model: "ResNet",
                problem,
            }),
            None => Ok(()),
        }
    }

    /// Builds the network with freshly initialised weights (torchvision's initialisation:
    /// Kaiming-normal convolutions, BatchNorm weight 1 and bias 0).
    pub fn init(&self, device: &Device) -> Result<ResNet, ConfigError> {
        self.validate()?;
        let stem_width = self.stage_widths[0];
        let mut in_channels = stem_width;
        let mut stage = |index: usize| {
            let stride = if index == 0 { 1 } else { 2 };
            let width = self.stage_widths[index];
            let blocks: Vec<ResidualBlock> = (0..self.blocks_per_stage[index])
                .map(|i| {
                    let block = ResidualBlock::new(
                        self.block,
                        in_channels,
                        width,
                        if i == 0 { stride } else { 1 },
                        device,
                    );
                    in_channels = width * self.block.expansion();
                    block
                })
                .collect();
            blocks
        };
        let layer1 = stage(0);
        let layer2 = stage(1);
        let layer3 = stage(2);
        let layer4 = stage(3);
        Ok(ResNet {
            conv1: conv(3, stem_width, 7, 2, 3, device),
            bn1: batch_norm(stem_width, device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
            fc: self
                .num_classes
                .map(|classes| LinearConfig::new(self.feature_dim(), classes).init(device)),
            config: self.clone(),
        })
    }
}

/// A torchvision-compatible ResNet. Build it with [`ResNetConfig::init`].
#[derive(Module, Debug)]
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    maxpool: MaxPool2d,
    layer1: Vec<ResidualBlock>,
    layer2: Vec<ResidualBlock>,
    layer3: Vec<ResidualBlock>,
    layer4: Vec<ResidualBlock>,
    fc: Option<Linear>,
    #[module(skip)]
    config: ResNetConfig,
}

impl ResNet {
    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }
}

impl TorchWeights for ResNet {
    fn state_dict_layout(&self) -> StateDictLayout {
        StateDictLayout {
            model_name: self.config.name(),
            renames: vec![
                (r"\.downsample\.0\.", ".downsample.conv."),
                (r"\.downsample\.1\.", ".downsample.bn."),
            ],
            torch_key: |key| {
                key.replace(".downsample.conv.", ".downsample.0.")
                    .replace(".downsample.bn.", ".downsample.1.")
            },
            ignored_prefixes: if self.fc.is_none() {
                vec!["fc."]
            } else {
                vec![]
            },
        }
    }
}

impl Backbone for ResNet {
    fn forward_features(&self, images: Tensor<4>) -> BackboneFeatures {
        let x = relu(conv_bn(&self.conv1, &self.bn1, images));
        let mut x = max_pool(&self.maxpool, x);
        for block in self
            .layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
        {
            x = block.forward(x);
        }
        BackboneFeatures {
            pooled: global_average_pool(x.clone()),
            feature_map: x,
        }
    }

    fn forward_to_stride(&self, images: Tensor<4>, stride: usize) -> Tensor<4> {
        let x = relu(conv_bn(&self.conv1, &self.bn1, images));
        let mut x = max_pool(&self.maxpool, x);
        // layer1 keeps stride 4; layer2..4 each halve the resolution.
        for (layer, layer_stride) in [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .zip([4, 8, 16, 32])
        {
            if layer_stride > stride.max(4) {
                break;
            }
            for block in layer {
                x = block.forward(x);
            }
        }
        x
    }

    fn forward_to_stage(&self, images: Tensor<4>, stage: usize) -> Tensor<4> {
        let x = relu(conv_bn(&self.conv1, &self.bn1, images));
        let mut x = max_pool(&self.maxpool, x);
        let layers = [&self.layer1, &self.layer2, &self.layer3, &self.layer4];
        for layer in layers.into_iter().take(stage.max(1)) {
            for block in layer {
                x = block.forward(x);
            }
        }
        x
    }

    fn stage_count(&self) -> usize {
        4
    }

    fn feature_dim(&self) -> usize {
        self.config.feature_dim()
    }

    fn normalization(&self) -> Normalization {
        Normalization::IMAGENET
    }

    fn output_stride(&self) -> usize {
        32
    }

    fn num_classes(&self) -> Option<usize> {
        self.config.num_classes
    }

    fn classify(&self, pooled: Tensor<2>) -> Option<Tensor<2>> {
        self.fc.as_ref().map(|fc| fc.forward(pooled))
    }
}

/// torchvision's `BasicBlock` or `Bottleneck`. Enum variant names do not appear in parameter
/// paths, so both load from `layerN.M.*` keys.
// All blocks of a network are the same variant, so boxing would save no memory.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ResidualBlock {
    Basic(BasicBlock),
    Bottleneck(Bottleneck),
}

impl ResidualBlock {
    fn new(
        kind: BlockKind,
        in_channels: usize,
        width: usize,
        stride: usize,
        device: &Device,
    ) -> Self {
        let out_channels = width * kind.expansion();
        // A projection shortcut wherever the identity would not have the block's output shape.
        let downsample = (stride != 1 || in_channels != out_channels).then(|| Downsample {
            conv: conv(in_channels, out_channels, 1, stride, 0, device),
            bn: batch_norm(out_channels, device),
        });
        match kind {
            BlockKind::Basic => Self::Basic(BasicBlock {
                conv1: conv(in_channels, width, 3, stride, 1, device),
                bn1: batch_norm(width, device),
                conv2: conv(width, width, 3, 1, 1, device),
                bn2: batch_norm(width, device),
                downsample,
            }),
            BlockKind::Bottleneck => Self::Bottleneck(Bottleneck {
                conv1: conv(in_channels, width, 1, 1, 0, device),
                bn1: batch_norm(width, device),
                conv2: conv(width, width, 3, stride, 1, device),
                bn2: batch_norm(width, device),
                conv3: conv(width, out_channels, 1, 1, 0, device),
                bn3: batch_norm(out_channels, device),
                downsample,
            }),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Basic(block) => block.forward(x),
            Self::Bottleneck(block) => block.forward(x),
        }
    }
}

#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<Downsample>,
}

impl BasicBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = match &self.downsample {
            Some(downsample) => downsample.forward(x.clone()),
            None => x.clone(),
        };
        let y = relu(conv_bn(&self.conv1, &self.bn1, x));
        let y = conv_bn(&self.conv2, &self.bn2, y);
        relu(y + shortcut)
    }
}

#[derive(Module, Debug)]
pub struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    downsample: Option<Downsample>,
}

impl Bottleneck {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = match &self.downsample {
            Some(downsample) => downsample.forward(x.clone()),
            None => x.clone(),
        };
        let y = relu(conv_bn(&self.conv1, &self.bn1, x));
        let y = relu(conv_bn(&self.conv2, &self.bn2, y));
        let y = conv_bn(&self.conv3, &self.bn3, y);
        relu(y + shortcut)
    }
}

/// The 1x1 projection shortcut (torchvision's `downsample` Sequential: conv, then batch norm).
#[derive(Module, Debug)]
pub struct Downsample {
    conv: Conv2d,
    bn: BatchNorm,
}

impl Downsample {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv_bn(&self.conv, &self.bn, x)
    }
}

/// A bias-free square convolution with symmetric zero padding, initialised like torchvision.
fn conv(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([in_channels, out_channels], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: true,
        })
        .init(device)
}

fn batch_norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels)
        .with_epsilon(1e-5)
        .init(device)
}
