//! A convolution followed by batch norm, run as one convolution wherever batch norm uses its
//! running statistics (inference, frozen layers).
//!
//! This replaces, for those layers, burn's `batch_norm` (burn-backend 0.22's default
//! `ModuleOps::batch_norm`, which the flex backend keeps): four passes over the convolution's
//! output (subtract the mean, divide by the deviation, scale, shift), each as large as the
//! activation. With running statistics batch norm is the per-channel affine map `y·s + t`,
//! `s = γ / √(σ² + ε)` and `t = β − μ·s`, so it folds into the convolution before it: the
//! weights of output channel `c` times `s[c]`, and the bias `t` (plus the convolution's own bias
//! times `s`). Folding costs one pass over the weights per call, which at batch 8 is a small
//! share of one pass over the activations. The values match `bn(conv(x))` up to rounding
//! (checked by the tests below); the module's weights and running statistics are unchanged.
//!
//! Batch norm in training (on an autodiff device with its training flag on) and convolutions
//! whose weights learn keep the two separate layers, so the statistics and the gradients are
//! those of the layers as written.

use burn::module::Param;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

use crate::flex_batch_norm::batch_norm;
use crate::pointwise::conv_forward;

/// `bn(conv(x))`, folded into one convolution when batch norm uses its running statistics and
/// `conv`'s weights do not learn.
pub(crate) fn conv_bn(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let batch_statistics = x.device().is_autodiff() && bn.training.is_enabled();
    if batch_statistics || conv.weight.val().is_require_grad() {
        return batch_norm(bn, conv_forward(conv, x));
    }
    conv_forward(&folded(conv, bn), x)
}

/// `conv` with `bn`'s running-statistics affine map folded into its weights and bias.
fn folded(conv: &Conv2d, bn: &BatchNorm) -> Conv2d {
    let device = conv.weight.device();
    let mean = bn.running_mean.value().to_device(&device);
    let variance = bn.running_var.value().to_device(&device);
    let scale = bn.gamma.val() / (variance + bn.epsilon).sqrt();
    let shift = bn.beta.val() - mean * scale.clone();
    let [out_channels, ..] = conv.weight.dims();
    let weight = conv.weight.val() * scale.clone().reshape([out_channels, 1, 1, 1]);
    let bias = match &conv.bias {
        Some(bias) => bias.val() * scale + shift,
        None => shift,
    };
    let mut folded = conv.clone();
    folded.weight = Param::from_tensor(weight);
    folded.bias = Some(Param::from_tensor(bias));
    folded
}

#[cfg(test)]
mod tests {
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::{BatchNormConfig, PaddingConfig2d};
    use burn::tensor::Distribution;

    use super::*;

    fn random(shape: [usize; 1], low: f64, high: f64, device: &Device) -> Tensor<1> {
        Tensor::random(shape, Distribution::Uniform(low, high), device)
    }

    /// Folded against `bn(conv(x))` computed by burn's two layers, with running statistics far
    /// from 0 and 1: a dense 3×3 convolution with `Same` padding at stride 2, a depthwise one,
    /// and a 1×1 convolution with a bias of its own.
    #[test]
    fn folding_matches_the_two_layers() {
        let device = Device::flex();
        let cases = [
            Conv2dConfig::new([4, 6], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false),
            Conv2dConfig::new([6, 6], [3, 3])
                .with_groups(6)
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false),
            Conv2dConfig::new([4, 6], [1, 1]).with_bias(true),
        ];
        for (case, config) in cases.iter().enumerate() {
            let conv = config.init(&device);
            let mut bn = BatchNormConfig::new(6).with_epsilon(1e-3).init(&device);
            bn.gamma = Param::from_tensor(random([6], 0.5, 2.0, &device));
            bn.beta = Param::from_tensor(random([6], -1.0, 1.0, &device));
            bn.running_mean = burn::module::RunningState::new(random([6], -2.0, 2.0, &device));
            bn.running_var = burn::module::RunningState::new(random([6], 0.1, 3.0, &device));
            let channels = config.channels[0];
            let x = Tensor::<4>::random(
                [2, channels, 9, 11],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let reference: Vec<f32> = bn
                .forward(conv.forward(x.clone()))
                .into_data()
                .try_to_vec()
                .unwrap();
            let ours: Vec<f32> = conv_bn(&conv, &bn, x).into_data().try_to_vec().unwrap();
            assert_eq!(ours.len(), reference.len(), "case {case}");
            for (a, b) in ours.iter().zip(&reference) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "case {case}: {a} vs {b}"
                );
            }
        }
    }

    /// In training (autodiff device, training flag on) the layers stay separate: batch norm
    /// normalises with the batch's own statistics, so every channel's output has mean 0.
    #[test]
    fn training_keeps_batch_statistics() {
        let device = Device::flex().autodiff();
        let conv = Conv2dConfig::new([3, 5], [3, 3]).init(&device);
        let bn = BatchNormConfig::new(5).init(&device);
        let x = Tensor::<4>::random([4, 3, 8, 8], Distribution::Normal(1.0, 2.0), &device);
        let y = conv_bn(&conv, &bn, x);
        let means: Vec<f32> = y
            .swap_dims(0, 1)
            .reshape([5, 4 * 6 * 6])
            .mean_dim(1)
            .into_data()
            .try_to_vec()
            .unwrap();
        assert!(means.iter().all(|m| m.abs() < 1e-4), "{means:?}");
    }
}
