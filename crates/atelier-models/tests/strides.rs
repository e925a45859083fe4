//! `Backbone::forward_to_stride` and `Backbone::forward_to_stage`: intermediate feature maps
//! have the documented stride and channels, a stage end equals the stride tap that stops at the
//! same layer, and asking for the final stride or a stage past the last gives exactly the final
//! feature map.

use atelier_models::{
    Backbone, Device, EfficientNetLite, EfficientNetLiteConfig, FeatureTap, ResNet, ResNetConfig,
    TinyCnnConfig,
};
use burn::prelude::*;
use burn::tensor::Distribution;

fn images(size: usize) -> Tensor<4> {
    Tensor::random(
        [2, 3, size, size],
        Distribution::Normal(0.0, 1.0),
        &Device::flex(),
    )
}

/// EfficientNet-Lite0 without its classifier (random weights: only shapes and taps matter).
fn lite0() -> EfficientNetLite {
    EfficientNetLiteConfig::lite0()
        .with_num_classes(None)
        .init(&Device::flex())
        .unwrap()
}

/// ResNet-18's layout with narrow stages, without a classifier.
fn small_resnet18() -> ResNet {
    ResNetConfig::resnet18()
        .with_num_classes(None)
        .with_stage_widths([8, 16, 32, 64])
        .init(&Device::flex())
        .unwrap()
}

fn assert_same(a: Tensor<4>, b: Tensor<4>) {
    assert_eq!(a.dims(), b.dims());
    let largest = (a - b).abs().max().into_scalar::<f32>();
    assert!(largest == 0.0, "differs by {largest}");
}

#[test]
fn efficientnet_lite0_taps_stage_ends() {
    let model = lite0();
    let x = images(64);
    // Stage ends: stride 8 -> 40 channels, 16 -> 112 (after the stride-1 stage 5), 32 -> the
    // 1280-channel head.
    assert_eq!(model.forward_to_stride(x.clone(), 8).dims(), [2, 40, 8, 8]);
    assert_eq!(
        model.forward_to_stride(x.clone(), 16).dims(),
        [2, 112, 4, 4]
    );
    assert_same(
        model.forward_to_stride(x.clone(), 32),
        model.forward_features(x.clone()).feature_map,
    );
    assert_same(
        model.forward_to_stride(x.clone(), usize::MAX),
        model.forward_features(x).feature_map,
    );
}

#[test]
fn resnet_taps_its_layers() {
    let model = small_resnet18();
    let x = images(64);
    assert_eq!(model.forward_to_stride(x.clone(), 4).dims(), [2, 8, 16, 16]);
    assert_eq!(model.forward_to_stride(x.clone(), 16).dims(), [2, 32, 4, 4]);
    assert_same(
        model.forward_to_stride(x.clone(), 32),
        model.forward_features(x).feature_map,
    );
}

#[test]
fn tiny_cnn_taps_each_layer() {
    let model = TinyCnnConfig::default().init(&Device::flex()).unwrap();
    let x = images(32);
    assert_eq!(model.forward_to_stride(x.clone(), 2).dims(), [2, 8, 16, 16]);
    assert_eq!(model.forward_to_stride(x.clone(), 4).dims(), [2, 16, 8, 8]);
    assert_same(
        model.forward_to_stride(x.clone(), 8),
        model.forward_features(x).feature_map,
    );
}

#[test]
fn efficientnet_lite0_taps_each_stage() {
    let model = lite0();
    assert_eq!(model.stage_count(), 7);
    let x = images(64);
    // Lite0's stage outputs: 16, 24, 40, 80, 112, 192 and 320 channels at strides 2, 4, 8, 16,
    // 16, 32 and 32.
    let shapes = [
        [2, 16, 32, 32],
        [2, 24, 16, 16],
        [2, 40, 8, 8],
        [2, 80, 4, 4],
        [2, 112, 4, 4],
        [2, 192, 2, 2],
        [2, 320, 2, 2],
    ];
    for (stage, shape) in (1..).zip(shapes) {
        assert_eq!(
            model.forward_to_stage(x.clone(), stage).dims(),
            shape,
            "stage {stage}"
        );
    }
    // Stage 5 is the last layer at stride 16, so both taps stop at the same block.
    assert_same(
        model.forward_to_stage(x.clone(), 5),
        model.forward_to_stride(x.clone(), 16),
    );
    assert_same(
        model.forward_to(x.clone(), FeatureTap::Stage(8)),
        model.forward_features(x.clone()).feature_map,
    );
    assert_same(
        model.forward_to(x.clone(), FeatureTap::Final),
        model.forward_features(x).feature_map,
    );
}

#[test]
fn resnet_and_tiny_stages_are_their_layers() {
    let resnet = small_resnet18();
    let x = images(64);
    assert_eq!(resnet.stage_count(), 4);
    assert_same(
        resnet.forward_to_stage(x.clone(), 2),
        resnet.forward_to_stride(x.clone(), 8),
    );
    assert_same(
        resnet.forward_to(x.clone(), FeatureTap::Stage(4)),
        resnet.forward_features(x).feature_map,
    );

    let tiny = TinyCnnConfig::default().init(&Device::flex()).unwrap();
    let x = images(32);
    assert_eq!(tiny.stage_count(), 3);
    assert_same(
        tiny.forward_to(x.clone(), FeatureTap::Stage(2)),
        tiny.forward_to(x, FeatureTap::Stride(4)),
    );
}
