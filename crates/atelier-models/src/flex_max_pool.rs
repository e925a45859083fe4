//! 2-D max pooling on the flex CPU backend: the maximum of each window's rows first (one
//! vectorised pass over whole input rows), then of each window's columns.
//!
//! This replaces, on flex, burn-flex 0.22's `max_pool2d` and `max_pool2d_with_indices`, which
//! visit every output pixel's window through a closure that recomputes its valid range with
//! divisions (12 % of a ResNet-18 inference pass on 2 cores, for its one 3×3 stride-2 pool).
//! The backward pass finds each window's maximum again (the first element equal to it, in
//! row-major order, as burn's index does; a NaN window keeps its last NaN) and adds the
//! output gradient there, so the forward pass stores no indices. The tests below check output
//! and input gradient against burn's `MaxPool2d`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Dispatch, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use crate::flex_conv::written_zeros;
use crate::simd::with_simd;

/// Max pooling without dilation, `[kernel, stride, padding]` per axis (rows, then columns).
/// Implemented for flex, with and without autodiff.
#[backend_extension(Flex, Autodiff)]
pub trait FlexMaxPoolBackend: burn::backend::Backend {
    /// The maximum over each window of `x` (`[batch, channels, height, width]`).
    fn flex_max_pool2d(x: FloatTensor<Self>, window: [[usize; 3]; 2]) -> FloatTensor<Self>;
}

impl FlexMaxPoolBackend for Flex {
    fn flex_max_pool2d(x: FloatTensor<Self>, window: [[usize; 3]; 2]) -> FloatTensor<Self> {
        forward(&x, Window::new(&x, window))
    }
}

impl<C: CheckpointStrategy> FlexMaxPoolBackend for Autodiff<Flex, C> {
    fn flex_max_pool2d(x: FloatTensor<Self>, window: [[usize; 3]; 2]) -> FloatTensor<Self> {
        let (x, node) = x.into_parts();
        let geometry = Window::new(&x, window);
        let output = forward(&x, geometry);
        match MaxPoolBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((x, output.clone(), geometry), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }
}

/// The backward step: the output gradient added at each window's maximum.
#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    type State = (FlexTensor, FlexTensor, Window);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let output_grad = grads.consume::<Flex>(&ops.node);
        let (x, output, window) = ops.state;
        if let Some(node) = node {
            grads.register::<Flex>(node.id, backward(&x, &output, &output_grad, window));
        }
    }
}

/// `pool` applied to `x`: through this module on flex with f32 values and no dilation, else
/// with burn's `MaxPool2d::forward`.
pub(crate) fn max_pool(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let explicit = match pool.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        _ => None,
    };
    let fits = pool.dilation == [1, 1]
        && !pool.ceil_mode
        && x.dtype() == DType::F32
        && crate::on_flex(&x.device());
    match explicit.filter(|_| fits) {
        Some([rows, columns]) => {
            let window = [
                [pool.kernel_size[0], pool.stride[0], rows],
                [pool.kernel_size[1], pool.stride[1], columns],
            ];
            let output =
                <Dispatch as FlexMaxPoolBackend>::flex_max_pool2d(x.into_dispatch(), window);
            Tensor::from_dispatch(output)
        }
        None => pool.forward(x),
    }
}

/// One pooling's sizes: input planes `h × w`, output `ho × wo`, and per axis the kernel,
/// stride and padding.
#[derive(Debug, Clone, Copy)]
struct Window {
    planes: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    axes: [[usize; 3]; 2],
}

impl Window {
    fn new(x: &FlexTensor, axes: [[usize; 3]; 2]) -> Self {
        let dims = x.layout().shape();
        let out = |size: usize, [kernel, stride, padding]: [usize; 3]| {
            (size + 2 * padding).saturating_sub(kernel) / stride + 1
        };
        Self {
            planes: dims[0] * dims[1],
            h: dims[2],
            w: dims[3],
            ho: out(dims[2], axes[0]),
            wo: out(dims[3], axes[1]),
            axes,
        }
    }

    /// The input positions `[first, end)` that output position `o` of `axis` covers.
    #[inline(always)]
    fn range(&self, axis: usize, o: usize, size: usize) -> std::ops::Range<usize> {
        let [kernel, stride, padding] = self.axes[axis];
        let start = o * stride;
        start.saturating_sub(padding)..(start + kernel).saturating_sub(padding).min(size)
    }
}

with_simd! {
    /// One plane's maxima: per output row, the maximum over the window's input rows in one
    /// pass over whole rows (into `rows_max`), then over each window's columns.
    fn pool_plane(input: &[f32], out: &mut [f32], rows_max: &mut [f32], window: &Window) {
        let Window { h, w, ho, wo, .. } = *window;
        for oh in 0..ho {
            rows_max.fill(f32::NEG_INFINITY);
            for ih in window.range(0, oh, h) {
                // A select rather than a branch, so that the loop is vectorised.
                for (best, &v) in rows_max.iter_mut().zip(&input[ih * w..][..w]) {
                    *best = if wins(v, *best) { v } else { *best };
                }
            }
            for (ow, target) in out[oh * wo..][..wo].iter_mut().enumerate() {
                *target = rows_max[window.range(1, ow, w)].iter().fold(
                    f32::NEG_INFINITY,
                    |best, &v| if wins(v, best) { v } else { best },
                );
            }
        }
    }
}

/// Whether `candidate` replaces `best` as a window's maximum: larger, or NaN (NaN wins, as in
/// burn and PyTorch).
#[inline(always)]
fn wins(candidate: f32, best: f32) -> bool {
    (candidate > best) | candidate.is_nan()
}

fn forward(x: &FlexTensor, window: Window) -> FlexTensor {
    let x = x.to_contiguous();
    let values = x.storage::<f32>();
    let Window { h, w, ho, wo, .. } = window;
    let mut output = vec![0.0f32; window.planes * ho * wo];
    output.par_chunks_mut(ho * wo).enumerate().for_each_init(
        || vec![f32::NEG_INFINITY; w],
        |rows_max, (plane, out)| {
            pool_plane(&values[plane * h * w..][..h * w], out, rows_max, &window);
        },
    );
    let [n, c, ..] = x.layout().shape()[..] else {
        unreachable!("max pooling takes 4-D tensors")
    };
    FlexTensor::from_data(TensorData::new(output, [n, c, ho, wo]))
}

fn backward(
    x: &FlexTensor,
    output: &FlexTensor,
    output_grad: &FlexTensor,
    window: Window,
) -> FlexTensor {
    let (x, output, output_grad) = (
        x.to_contiguous(),
        output.to_contiguous(),
        output_grad.to_contiguous(),
    );
    let (values, maxima, grads) = (
        x.storage::<f32>(),
        output.storage::<f32>(),
        output_grad.storage::<f32>(),
    );
    let Window { h, w, ho, wo, .. } = window;
    let mut dx = written_zeros(values.len());
    dx.par_chunks_mut(h * w)
        .enumerate()
        .for_each(|(plane, dx)| {
            let input = &values[plane * h * w..][..h * w];
            for oh in 0..ho {
                for ow in 0..wo {
                    let index = (plane * ho + oh) * wo + ow;
                    if let Some(at) = argmax(input, window, oh, ow, maxima[index]) {
                        dx[at] += grads[index];
                    }
                }
            }
        });
    FlexTensor::from_data(TensorData::new(dx, x.layout().shape().to_vec()))
}

/// The plane index of output `(oh, ow)`'s maximum `best`: its first occurrence in row-major
/// order, or the window's last NaN when `best` is NaN.
fn argmax(input: &[f32], window: Window, oh: usize, ow: usize, best: f32) -> Option<usize> {
    let mut positions = window.range(0, oh, window.h).flat_map(|ih| {
        window
            .range(1, ow, window.w)
            .map(move |iw| ih * window.w + iw)
    });
    if best.is_nan() {
        positions.rfind(|&at| input[at].is_nan())
    } else {
        positions.find(|&at| input[at] == best)
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::Distribution;

    use super::*;

    use crate::testing::values;

    /// ResNet's stem pool (3×3, stride 2, padding 1) against PyTorch's `max_pool2d`, output
    /// and input gradient (`fixtures/make_layers_fixture.py`; no ties in the input).
    #[test]
    fn matches_pytorch_max_pool() {
        use crate::testing::layers_fixture_tensor as fixture;
        let device = Device::flex().autodiff();
        let layer = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        let x = fixture::<4>("max_pool.input", &device).require_grad();
        let y = max_pool(&layer, x.clone());
        let expected = |what: &str| crate::testing::layers_fixture(&format!("max_pool.{what}")).1;
        assert_eq!(values(y.clone()), expected("output"), "output");
        let grads = (y * fixture::<4>("max_pool.output_grad", &device))
            .sum()
            .backward();
        let ours = values(x.grad(&grads).unwrap());
        crate::testing::assert_close(ours, expected("input_grad"), 1e-6, "input gradient");
    }

    /// Output and input gradient against burn's `MaxPool2d` (the independent reference): the
    /// ResNet stem's 3×3 stride-2 pool with padding 1 on odd and even sizes, a 2×2 stride-2
    /// pool, and ties (values rounded to a few levels, so windows hold equal maxima).
    #[test]
    fn matches_burn_max_pool() {
        let device = Device::flex().autodiff();
        let pools = [
            MaxPoolConfigCase::new([3, 3], [2, 2], 1, [2, 3, 11, 12]),
            MaxPoolConfigCase::new([3, 3], [2, 2], 1, [1, 2, 8, 9]),
            MaxPoolConfigCase::new([2, 2], [2, 2], 0, [2, 2, 6, 7]),
        ];
        for (case, pool) in pools.iter().enumerate() {
            let layer = MaxPool2dConfig::new(pool.kernel)
                .with_strides(pool.stride)
                .with_padding(PaddingConfig2d::Explicit(
                    pool.padding,
                    pool.padding,
                    pool.padding,
                    pool.padding,
                ))
                .init();
            let x = Tensor::<4>::random(pool.shape, Distribution::Uniform(-2.0, 2.0), &device)
                .round()
                .require_grad();
            let ours = max_pool(&layer, x.clone());
            let reference = layer.forward(x.clone());
            assert_eq!(
                values(ours.clone()),
                values(reference.clone()),
                "case {case}: output"
            );
            let weighting =
                Tensor::<4>::random(reference.dims(), Distribution::Normal(0.0, 1.0), &device);
            let ours = (ours * weighting.clone()).sum().backward();
            let reference = (reference * weighting).sum().backward();
            assert_eq!(
                values(x.grad(&ours).unwrap()),
                values(x.grad(&reference).unwrap()),
                "case {case}: input gradient"
            );
        }
    }

    struct MaxPoolConfigCase {
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: usize,
        shape: [usize; 4],
    }

    impl MaxPoolConfigCase {
        fn new(kernel: [usize; 2], stride: [usize; 2], padding: usize, shape: [usize; 4]) -> Self {
            Self {
                kernel,
                stride,
                padding,
                shape,
            }
        }
    }

    /// Hand-computed: a 4×4 plane 0..16 with a 2×2 stride-2 pool keeps 5, 7, 13, 15.
    #[test]
    fn pools_by_hand() {
        let device = Device::flex();
        let layer = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        let x = Tensor::<4>::from_data(
            TensorData::new((0..16).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 4, 4]),
            &device,
        );
        assert_eq!(values(max_pool(&layer, x)), vec![5.0, 7.0, 13.0, 15.0]);
    }
}
