//! Comparisons the unit tests of the crate's own kernels share.

use burn::prelude::*;

/// A tensor's values, in order.
pub(crate) fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().unwrap()
}

/// Every value of `ours` within `tolerance` × the largest magnitude in `reference` (at least
/// 1e-3) of the reference's.
pub(crate) fn assert_close(ours: Vec<f32>, reference: Vec<f32>, tolerance: f32, what: &str) {
    assert_eq!(ours.len(), reference.len(), "{what}");
    let scale = reference.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    for (index, (x, y)) in ours.iter().zip(&reference).enumerate() {
        assert!(
            (x - y).abs() <= tolerance * scale,
            "{what}: element {index}: {x} vs {y}"
        );
    }
}

/// [`assert_close`] on two tensors.
pub(crate) fn assert_tensors_close(
    ours: Tensor<4>,
    reference: Tensor<4>,
    tolerance: f32,
    what: &str,
) {
    assert_close(values(ours), values(reference), tolerance, what);
}

/// Tensor `name` of `fixtures/layers_io.safetensors` (made by `make_layers_fixture.py`): its
/// shape and values.
pub(crate) fn layers_fixture(name: &str) -> (Vec<usize>, Vec<f32>) {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/layers_io.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors fixture");
    let view = file.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let values = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (view.shape().to_vec(), values)
}

/// [`layers_fixture`] as a tensor on `device`.
pub(crate) fn layers_fixture_tensor<const D: usize>(name: &str, device: &Device) -> Tensor<D> {
    let (shape, values) = layers_fixture(name);
    Tensor::from_data(TensorData::new(values, shape), device)
}
