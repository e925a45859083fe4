//! The Rust ResNet against torchvision: same weights and input must give the same feature map,
//! pooled vector and logits. Fixtures come from `fixtures/make_resnet_fixture.py`.

mod common;

use std::collections::BTreeMap;

use atelier_models::TorchWeights;
use atelier_models::{Backbone, BlockKind, ResNetConfig};
use burn::prelude::*;
use common::{assert_close, assert_matches_pytorch, fixture, read_safetensors};

/// The reduced networks of the fixture script: torchvision's blocks, stage widths / 8, 10 classes.
fn fixture_config(block: BlockKind) -> ResNetConfig {
    let blocks = match block {
        BlockKind::Basic => [2, 2, 2, 2],
        BlockKind::Bottleneck => [2, 1, 1, 1],
    };
    ResNetConfig {
        block,
        blocks_per_stage: blocks,
        stage_widths: [8, 16, 32, 64],
        num_classes: Some(10),
    }
}

fn check_against_torchvision(name: &str, block: BlockKind, weights_file: &str) {
    let device = Device::flex();
    let mut model = fixture_config(block).init(&device).unwrap();
    model.load_weights(&fixture(weights_file)).unwrap();
    assert_matches_pytorch(
        weights_file,
        &model,
        &format!("{name}_io.safetensors"),
        &device,
    );
}

#[test]
fn basic_block_resnet_matches_torchvision_from_pth() {
    check_against_torchvision("resnet_basic", BlockKind::Basic, "resnet_basic.pth");
}

#[test]
fn basic_block_resnet_matches_torchvision_from_safetensors() {
    check_against_torchvision("resnet_basic", BlockKind::Basic, "resnet_basic.safetensors");
}

#[test]
fn bottleneck_resnet_matches_torchvision_from_pth() {
    check_against_torchvision(
        "resnet_bottleneck",
        BlockKind::Bottleneck,
        "resnet_bottleneck.pth",
    );
}

#[test]
fn bottleneck_resnet_matches_torchvision_from_safetensors() {
    check_against_torchvision(
        "resnet_bottleneck",
        BlockKind::Bottleneck,
        "resnet_bottleneck.safetensors",
    );
}

#[test]
fn backbone_without_classifier_loads_a_file_that_has_one() {
    let device = Device::flex();
    let mut model = fixture_config(BlockKind::Basic)
        .with_num_classes(None)
        .init(&device)
        .unwrap();
    model
        .load_weights(&fixture("resnet_basic.safetensors"))
        .unwrap();
    let reference = read_safetensors(&fixture("resnet_basic_io.safetensors"));
    let features = model.forward_features(reference["input"].to_device::<4>(&device));
    assert_close("headless pooled", features.pooled, &reference["pooled"]);
    assert!(model.classify(Tensor::zeros([1, 64], &device)).is_none());
}

#[test]
fn classifier_of_another_size_is_a_shape_error_naming_fc() {
    let device = Device::flex();
    let mut model = fixture_config(BlockKind::Basic)
        .with_num_classes(Some(7))
        .init(&device)
        .unwrap();
    let err = model
        .load_weights(&fixture("resnet_basic.pth"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("'fc."), "{err}");
    assert!(err.contains("resnet_basic.pth"), "{err}");
    // Shapes are reported in PyTorch's [out, in] orientation.
    assert!(err.contains("[10, 64]") || err.contains("[10]"), "{err}");
}

#[test]
fn wrong_block_kind_is_reported_by_key() {
    let device = Device::flex();
    let mut model = fixture_config(BlockKind::Bottleneck).init(&device).unwrap();
    let err = model
        .load_weights(&fixture("resnet_basic.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("resnet_basic.safetensors"), "{err}");
    assert!(err.contains("layer"), "{err}");
}

/// The full-size presets must have exactly torchvision's state-dict keys and shapes, so
/// torchvision's pretrained files load (checked without the 45-100 MB weight files).
#[test]
fn full_size_presets_have_torchvision_keys_and_shapes() {
    let layouts: BTreeMap<String, BTreeMap<String, Vec<usize>>> = serde_json::from_str(
        &std::fs::read_to_string(fixture("torchvision_resnet_keys.json")).unwrap(),
    )
    .unwrap();
    let device = Device::flex();
    for (arch, config) in [
        ("resnet18", ResNetConfig::resnet18()),
        ("resnet34", ResNetConfig::resnet34()),
        ("resnet50", ResNetConfig::resnet50()),
    ] {
        let model = config.init(&device).unwrap();
        let expected: BTreeMap<String, Vec<usize>> = layouts[arch]
            .iter()
            .filter(|(key, _)| !key.ends_with("num_batches_tracked"))
            .map(|(key, shape)| (key.clone(), shape.clone()))
            .collect();
        let actual = model.expected_state_dict();
        let missing: Vec<_> = expected
            .keys()
            .filter(|k| !actual.contains_key(*k))
            .collect();
        let extra: Vec<_> = actual
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .collect();
        assert!(
            missing.is_empty(),
            "{arch}: not in the Rust model: {missing:?}"
        );
        assert!(extra.is_empty(), "{arch}: not in torchvision: {extra:?}");
        for (key, shape) in &expected {
            assert_eq!(&actual[key], shape, "{arch}: shape of {key}");
        }
        assert_eq!(
            model.feature_dim(),
            if arch == "resnet50" { 2048 } else { 512 }
        );
        println!("{arch}: {} state-dict tensors match", expected.len());
    }
}
