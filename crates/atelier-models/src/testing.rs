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
