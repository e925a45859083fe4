//! relu6 outside a recorded graph on the flex CPU backend: one parallel pass in place.
//!
//! This replaces, on flex, burn's `activation::relu6` (a `clamp`, which burn-flex 0.22 runs
//! through its serial `unary_op`, with a NaN check of the bounds per element): about 16 % of
//! the demo's Lite0 feature pass on 2 cores, on one core. The values are the clamp's, NaN
//! included (checked in `efficientnet`'s relu6 test and below).

use burn::backend::flex::Flex;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Dispatch, backend_extension};
use burn::prelude::*;
use burn::tensor::DType;
use rayon::prelude::*;

/// relu6 without autodiff, implemented for flex only.
#[backend_extension(Flex)]
pub trait FlexActivationBackend: burn::backend::Backend {
    /// `x.clamp(0, 6)` of every value, NaN kept.
    fn flex_relu6(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl FlexActivationBackend for Flex {
    fn flex_relu6(mut x: FloatTensor<Self>) -> FloatTensor<Self> {
        if x.dtype() != DType::F32 {
            return Flex::float_clamp(x, 0.0.into(), 6.0.into());
        }
        // Every value of the buffer, so that any view of it is clamped too; a shared buffer
        // is copied first.
        x.storage_mut::<f32>()
            .par_chunks_mut(1 << 14)
            .for_each(|chunk| {
                for value in chunk {
                    *value = value.clamp(0.0, 6.0);
                }
            });
        x
    }
}

/// relu6 of `x` outside a recorded graph: through [`FlexActivationBackend`] when `x` is an f32
/// tensor on flex without autodiff, else burn's `activation::relu6`.
pub(crate) fn relu6(x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    if device.is_autodiff() || !crate::on_flex(&device) || x.dtype() != DType::F32 {
        return burn::tensor::activation::relu6(x);
    }
    let output = <Dispatch as FlexActivationBackend>::flex_relu6(x.into_dispatch());
    Tensor::from_dispatch(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NaN stays NaN, infinities clamp, and a shared buffer is left untouched.
    #[test]
    fn clamps_like_burn_and_keeps_nan() {
        let device = Device::flex();
        let inputs = [f32::NAN, f32::NEG_INFINITY, -0.5, 3.0, 6.5, f32::INFINITY];
        let x = Tensor::<1>::from_floats(inputs.as_slice(), &device).reshape([1, 1, 2, 3]);
        let kept = x.clone();
        let ours: Vec<f32> = relu6(x).into_data().try_to_vec().unwrap();
        assert!(ours[0].is_nan());
        assert_eq!(&ours[1..], &[0.0, 0.0, 3.0, 6.0, 6.0]);
        let kept: Vec<f32> = kept.into_data().try_to_vec().unwrap();
        assert_eq!(&kept[1..], &inputs[1..], "the clone keeps its values");
        let autodiff = Tensor::<1>::from_floats([-1.0, 7.0], &Device::flex().autodiff());
        let autodiff: Vec<f32> = relu6(autodiff.reshape([1, 1, 1, 2]))
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(
            autodiff,
            vec![0.0, 6.0],
            "autodiff devices take burn's path"
        );
    }
}
