//! TinyCnn against its PyTorch twin (`fixtures/make_tiny_fixture.py`, legacy-format .pth), and
//! the weight loader's behaviour on damaged or mismatched files.

mod common;

use std::path::{Path, PathBuf};

use atelier_models::TorchWeights;
use atelier_models::{AnyBackbone, Backbone, TinyCnn, TinyCnnConfig, WeightsError};
use burn::prelude::*;
use common::{HostTensor, assert_close, assert_matches_pytorch, fixture, read_safetensors};
use safetensors::{Dtype, tensor::TensorView};

fn fixture_model(device: &Device) -> TinyCnn {
    TinyCnnConfig::new(vec![8, 16, 32], Some(5))
        .init(device)
        .unwrap()
}

fn check(weights_file: &str) {
    let device = Device::flex();
    let mut model = fixture_model(&device);
    model.load_weights(&fixture(weights_file)).unwrap();
    assert_matches_pytorch("tiny", &model, "tiny_cnn_io.safetensors", &device);
}

#[test]
fn tiny_cnn_matches_pytorch_from_legacy_pth() {
    check("tiny_cnn.pth");
}

#[test]
fn tiny_cnn_matches_pytorch_from_safetensors() {
    check("tiny_cnn.safetensors");
}

#[test]
fn any_backbone_loads_and_runs_the_wrapped_model() {
    let device = Device::flex();
    let mut model = AnyBackbone::Tiny(fixture_model(&device));
    model
        .load_weights(&fixture("tiny_cnn.safetensors"))
        .unwrap();
    let reference = read_safetensors(&fixture("tiny_cnn_io.safetensors"));
    let features = model.forward_features(reference["input"].to_device::<4>(&device));
    assert_close("any-backbone pooled", features.pooled, &reference["pooled"]);
    assert_eq!(model.feature_dim(), 32);
    assert_eq!(model.output_stride(), 8);
}

/// Writes `tensors` (name, dtype, shape, raw little-endian bytes) as a safetensors file.
fn write_safetensors(path: &Path, tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            (
                name.clone(),
                TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// The fixture's tensors as (name, dtype, shape, bytes), for editing.
fn fixture_entries() -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(fixture("tiny_cnn.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut entries: Vec<_> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn load_error(path: &Path) -> WeightsError {
    let mut model = fixture_model(&Device::flex());
    model.load_weights(path).unwrap_err()
}

fn edited(
    dir: &tempfile::TempDir,
    name: &str,
    edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>),
) -> PathBuf {
    let mut entries = fixture_entries();
    edit(&mut entries);
    let path = dir.path().join(name);
    write_safetensors(&path, &entries);
    path
}

#[test]
fn missing_tensor_is_named_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(&dir, "missing.safetensors", |entries| {
        entries.retain(|(name, ..)| name != "layers.1.bn.running_var");
    });
    let err = load_error(&path);
    assert!(matches!(err, WeightsError::Missing { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("'layers.1.bn.running_var'"), "{message}");
    assert!(message.contains("missing.safetensors"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn missing_batch_norm_weight_is_named_in_pytorch_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(&dir, "no_gamma.safetensors", |entries| {
        entries.retain(|(name, ..)| name != "layers.2.bn.weight");
    });
    let message = load_error(&path).to_string();
    assert!(message.contains("'layers.2.bn.weight'"), "{message}");
}

#[test]
fn unexpected_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(&dir, "extra.safetensors", |entries| {
        entries.push((
            "layers.0.attention.weight".into(),
            Dtype::F32,
            vec![2],
            f32_bytes(&[1.0, 2.0]),
        ));
    });
    let err = load_error(&path);
    assert!(matches!(err, WeightsError::Unexpected { .. }), "{err:?}");
    assert!(
        err.to_string().contains("'layers.0.attention.weight'"),
        "{err}"
    );
}

#[test]
fn mis_shaped_tensor_is_named_with_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(&dir, "shape.safetensors", |entries| {
        let conv = entries
            .iter_mut()
            .find(|(name, ..)| name == "layers.0.conv.weight")
            .unwrap();
        conv.2 = vec![8, 3, 1, 1];
        conv.3 = f32_bytes(&[0.5; 24]);
    });
    let err = load_error(&path);
    let message = err.to_string();
    assert!(matches!(err, WeightsError::ShapeMismatch { .. }), "{err:?}");
    assert!(message.contains("'layers.0.conv.weight'"), "{message}");
    assert!(
        message.contains("[8, 3, 1, 1]") && message.contains("[8, 3, 3, 3]"),
        "{message}"
    );
}

#[test]
fn half_precision_weights_are_refused_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(&dir, "half.safetensors", |entries| {
        let fc = entries
            .iter_mut()
            .find(|(name, ..)| name == "fc.bias")
            .unwrap();
        fc.1 = Dtype::F16;
        fc.3 = vec![0u8; 10];
    });
    let err = load_error(&path);
    assert!(
        matches!(err, WeightsError::UnsupportedDtype { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("'fc.bias'"), "{err}");
}

#[test]
fn damaged_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    for source in ["tiny_cnn.pth", "tiny_cnn.safetensors", "resnet_basic.pth"] {
        let bytes = std::fs::read(fixture(source)).unwrap();
        for keep in [bytes.len() / 2, bytes.len() - 7, 12] {
            let path = dir.path().join(format!("cut_{keep}_{source}"));
            std::fs::write(&path, &bytes[..keep]).unwrap();
            let mut model = fixture_model(&Device::flex());
            let err = model.load_weights(&path).unwrap_err();
            let message = err.to_string();
            println!("{message}");
            assert!(
                message.contains(&format!("cut_{keep}_{source}")),
                "{message}"
            );
            assert!(!message.contains('\n'), "{message}");
        }
    }
    let text = dir.path().join("notes.pth");
    std::fs::write(&text, "not a checkpoint").unwrap();
    assert!(matches!(
        load_error(&text),
        WeightsError::UnknownFormat { .. }
    ));
    let absent = dir.path().join("absent.safetensors");
    assert!(matches!(load_error(&absent), WeightsError::Io { .. }));
}

#[test]
fn failed_load_leaves_the_model_unchanged() {
    let device = Device::flex();
    let mut model = fixture_model(&device);
    model
        .load_weights(&fixture("tiny_cnn.safetensors"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = edited(&dir, "bad.safetensors", |entries| {
        // Everything loadable except one missing tensor at the end of the file.
        for entry in entries.iter_mut() {
            if entry.1 == Dtype::F32 {
                let n = entry.3.len() / 4;
                entry.3 = f32_bytes(&vec![0.25; n]);
            }
        }
        entries.retain(|(name, ..)| name != "fc.weight");
    });
    assert!(model.load_weights(&path).is_err());
    let reference = read_safetensors(&fixture("tiny_cnn_io.safetensors"));
    let pooled = model
        .forward_features(reference["input"].to_device::<4>(&device))
        .pooled;
    assert_close("pooled after failed load", pooled, &reference["pooled"]);
}

#[test]
fn headless_model_ignores_the_classifier_in_the_file() {
    let device = Device::flex();
    let mut model = TinyCnnConfig::new(vec![8, 16, 32], None)
        .init(&device)
        .unwrap();
    model.load_weights(&fixture("tiny_cnn.pth")).unwrap();
    let reference: std::collections::HashMap<String, HostTensor> =
        read_safetensors(&fixture("tiny_cnn_io.safetensors"));
    let features = model.forward_features(reference["input"].to_device::<4>(&device));
    assert_close(
        "headless tiny pooled",
        features.pooled,
        &reference["pooled"],
    );
}

#[test]
fn invalid_config_is_an_error() {
    let err = TinyCnnConfig::new(vec![8, 0], None)
        .init(&Device::flex())
        .unwrap_err();
    assert!(err.to_string().contains("TinyCnn"), "{err}");
}

#[test]
fn data_parallel_prefix_is_stripped() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(&dir, "data_parallel.safetensors", |entries| {
        for entry in entries.iter_mut() {
            entry.0 = format!("module.{}", entry.0);
        }
    });
    let device = Device::flex();
    let mut model = fixture_model(&device);
    model.load_weights(&path).unwrap();
    let reference = read_safetensors(&fixture("tiny_cnn_io.safetensors"));
    let features = model.forward_features(reference["input"].to_device::<4>(&device));
    assert_close("prefixed pooled", features.pooled, &reference["pooled"]);
}
