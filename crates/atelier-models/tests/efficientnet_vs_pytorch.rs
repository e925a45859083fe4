//! The Rust EfficientNet-Lite against the `efficientnet_lite_pytorch` package's own model code,
//! on the reduced network of `fixtures/make_efficientnet_fixture.py` (random weights, odd input
//! size so TensorFlow-style asymmetric padding is exercised).

mod common;

use atelier_models::TorchWeights;
use atelier_models::{Backbone, EfficientNetLiteConfig, MbConvStage};
use burn::prelude::*;
use common::{assert_matches_pytorch, fixture};

/// Lite0 with width and depth coefficients 0.5, as printed by the fixture script.
fn fixture_config() -> EfficientNetLiteConfig {
    let stage = |repeats, kernel_size, stride, expand_ratio, out_channels| MbConvStage {
        repeats,
        kernel_size,
        stride,
        expand_ratio,
        out_channels,
    };
    EfficientNetLiteConfig {
        stem_channels: 32,
        stages: vec![
            stage(1, 3, 1, 1, 8),
            stage(1, 3, 2, 6, 16),
            stage(1, 5, 2, 6, 24),
            stage(2, 3, 2, 6, 40),
            stage(2, 5, 1, 6, 56),
            stage(2, 5, 2, 6, 96),
            stage(1, 3, 1, 6, 160),
        ],
        head_channels: 1280,
        num_classes: Some(10),
    }
}

fn check(weights_file: &str) {
    let device = Device::flex();
    let mut model = fixture_config().init(&device).unwrap();
    model.load_weights(&fixture(weights_file)).unwrap();
    assert_matches_pytorch(
        weights_file,
        &model,
        "efficientnet_small_io.safetensors",
        &device,
    );
}

#[test]
fn small_efficientnet_lite_matches_pytorch_from_pth() {
    check("efficientnet_small.pth");
}

#[test]
fn small_efficientnet_lite_matches_pytorch_from_safetensors() {
    check("efficientnet_small.safetensors");
}

#[test]
fn lite0_expects_the_packaged_state_dict_layout() {
    let model = EfficientNetLiteConfig::lite0()
        .init(&Device::flex())
        .unwrap();
    let keys = model.expected_state_dict();
    // 296 entries in efficientnet-lite0-57934424.pth, 49 of them num_batches_tracked.
    assert_eq!(keys.len(), 296 - 49);
    assert_eq!(keys["_conv_stem.weight"], vec![32, 3, 3, 3]);
    assert_eq!(keys["_blocks.0._depthwise_conv.weight"], vec![32, 1, 3, 3]);
    assert!(!keys.contains_key("_blocks.0._expand_conv.weight"));
    assert_eq!(
        keys["_blocks.15._project_conv.weight"],
        vec![320, 1152, 1, 1]
    );
    assert_eq!(keys["_bn1.running_var"], vec![1280]);
    assert_eq!(keys["_fc.weight"], vec![1000, 1280]);
    assert_eq!(model.feature_dim(), 1280);
}
