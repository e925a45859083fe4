//! Helpers shared by the integration tests: fixture paths, reading reference tensors written by
//! the Python scripts in `fixtures/`, and comparing outputs with a stated tolerance.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use atelier_models::Backbone;
use burn::prelude::*;
use safetensors::{Dtype, SafeTensors};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A float32 tensor read from a fixture: shape and row-major values.
#[derive(Debug, Clone)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl HostTensor {
    pub fn to_device<const D: usize>(&self, device: &Device) -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(self.values.clone(), self.shape.clone()),
            device,
        )
    }
}

/// Reads every float32 tensor of a safetensors file.
pub fn read_safetensors(path: &Path) -> HashMap<String, HostTensor> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = SafeTensors::deserialize(&bytes).expect("valid safetensors fixture");
    file.tensors()
        .into_iter()
        .filter(|(_, view)| view.dtype() == Dtype::F32)
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let tensor = HostTensor {
                shape: view.shape().to_vec(),
                values,
            };
            (name, tensor)
        })
        .collect()
}

/// Largest absolute and relative deviation of `actual` from `expected`.
#[derive(Debug, Clone, Copy)]
pub struct Deviation {
    pub max_abs: f32,
    /// Largest `|a - e| / |e|` over elements with `|e|` at least 1% of the largest `|e|`
    /// (relative error of near-zero elements says nothing about the computation).
    pub max_rel: f32,
    /// Largest `|e|`, for scale.
    pub max_expected: f32,
}

/// Compares element-wise and panics with the worst element when
/// `|a - e| > rtol * |e| + atol` with `rtol = 1e-4` and `atol = 1e-4 * max|e|`.
///
/// The absolute part is scaled by the tensor's magnitude: float32 results computed in a
/// different summation order differ by a few ulps of the *partial sums*, which for elements
/// close to zero can be many times their own size.
pub fn assert_close<const D: usize>(
    what: &str,
    actual: Tensor<D>,
    expected: &HostTensor,
) -> Deviation {
    assert_eq!(
        actual.dims().to_vec(),
        expected.shape,
        "{what}: shape differs from the PyTorch reference"
    );
    let actual: Vec<f32> = actual.into_data().iter::<f32>().collect();
    assert_values_close(what, &actual, &expected.values, 1e-4)
}

pub fn assert_values_close(what: &str, actual: &[f32], expected: &[f32], rtol: f32) -> Deviation {
    assert_eq!(actual.len(), expected.len(), "{what}: length differs");
    let max_expected = expected.iter().fold(0.0f32, |m, e| m.max(e.abs()));
    let atol = rtol * max_expected;
    let mut deviation = Deviation {
        max_abs: 0.0,
        max_rel: 0.0,
        max_expected,
    };
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let diff = (a - e).abs();
        assert!(
            diff <= rtol * e.abs() + atol,
            "{what}: element {i} is {a}, PyTorch gives {e} (|diff| {diff:e}, allowed rtol {rtol:e} + atol {atol:e})"
        );
        deviation.max_abs = deviation.max_abs.max(diff);
        if e.abs() >= 0.01 * max_expected {
            deviation.max_rel = deviation.max_rel.max(diff / e.abs());
        }
    }
    println!(
        "{what}: max |diff| {:.3e}, max rel {:.3e} (max |ref| {:.3e})",
        deviation.max_abs, deviation.max_rel, deviation.max_expected
    );
    deviation
}

/// Runs `model` on the input of the `*_io.safetensors` fixture `io_file` and checks its feature
/// map, pooled vector and logits against PyTorch's, naming `what` in any failure.
pub fn assert_matches_pytorch<M: Backbone>(what: &str, model: &M, io_file: &str, device: &Device) {
    let reference = read_safetensors(&fixture(io_file));
    let features = model.forward_features(reference["input"].to_device::<4>(device));
    let logits = model
        .classify(features.pooled.clone())
        .expect("fixture models have a classifier");
    assert_close(
        &format!("{what} feature map"),
        features.feature_map,
        &reference["feature_map"],
    );
    assert_close(
        &format!("{what} pooled"),
        features.pooled,
        &reference["pooled"],
    );
    assert_close(&format!("{what} logits"), logits, &reference["logits"]);
}
