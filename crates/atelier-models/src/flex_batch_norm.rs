//! Batch norm with batch statistics (training) on the flex CPU backend, forward and backward
//! each in a few fused passes over the activation.
//!
//! This replaces, on flex, burn-backend 0.22's default `ModuleOps::batch_norm_train` and
//! `batch_norm_train_backward` (which flex keeps): about a dozen full-size tensor operations
//! each way (axis swaps, reductions, broadcasts), every one allocating and writing an
//! activation-sized tensor. Here the forward pass reads the activation three times (mean,
//! variance, output) and the backward pass twice (the two per-channel sums, then the input
//! gradient), channels or planes in parallel. The autodiff rule is burn's own (same gradients);
//! the tests below check the output, the three gradients and the running statistics against
//! burn's `BatchNorm`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Dispatch, backend_extension};
use burn::nn::BatchNorm;
use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

/// Batch norm with the batch's own statistics, returning the output, the mean and the biased
/// variance per channel. Implemented for flex, with and without autodiff.
#[backend_extension(Flex, Autodiff)]
pub trait FlexBatchNormBackend: burn::backend::Backend {
    /// `(output, mean, variance)` of batch norm over `x` (`[batch, channels, height, width]`).
    fn flex_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl FlexBatchNormBackend for Flex {
    fn flex_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let forward = Forward::compute(&x, &gamma, &beta, epsilon);
        (forward.output, forward.mean, forward.variance)
    }
}

impl<C: CheckpointStrategy> FlexBatchNormBackend for Autodiff<Flex, C> {
    fn flex_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (x, x_node) = x.into_parts();
        let (gamma, gamma_node) = gamma.into_parts();
        let (beta, beta_node) = beta.into_parts();
        let forward = Forward::compute(&x, &gamma, &beta, epsilon);
        let (mean, variance) = (forward.mean.clone(), forward.variance.clone());
        let prepared = BatchNormBackward
            .prepare::<C>([x_node, gamma_node, beta_node])
            .compute_bound()
            .stateful();
        let output = match prepared {
            OpsKind::Tracked(prep) => prep.finish(
                (x, gamma, mean.clone(), variance.clone(), epsilon),
                forward.output,
            ),
            OpsKind::UnTracked(prep) => prep.finish(forward.output),
        };
        (output, Self::from_inner(mean), Self::from_inner(variance))
    }
}

/// The backward step: gradients of the input, `gamma` and `beta`.
#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    type State = (FlexTensor, FlexTensor, FlexTensor, FlexTensor, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let output_grad = grads.consume::<Flex>(&ops.node);
        let (x, gamma, mean, variance, epsilon) = ops.state;
        let gradients = backward(&x, &gamma, &mean, &variance, epsilon, &output_grad);
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, gradients.x);
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, gradients.gamma);
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, gradients.beta);
        }
    }
}

/// `bn` applied to `x`: through this module's fused passes where batch norm uses batch
/// statistics on flex with f32 values (updating the running statistics as burn's layer does),
/// else with burn's `BatchNorm::forward`.
pub(crate) fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    let fused = device.is_autodiff()
        && bn.training.is_enabled()
        && crate::on_flex(&device)
        && x.dtype() == DType::F32;
    if !fused {
        return bn.forward(x);
    }
    let (output, mean, variance) = <Dispatch as FlexBatchNormBackend>::flex_batch_norm_train(
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        bn.epsilon,
    );
    let momentum = bn.momentum;
    let blend = |running: Tensor<1>, batch: Tensor<1>| {
        running
            .to_device(&device)
            .mul_scalar(1.0 - momentum)
            .add(batch.detach().mul_scalar(momentum))
            .detach()
    };
    let (mean, variance) = (Tensor::from_dispatch(mean), Tensor::from_dispatch(variance));
    bn.running_mean
        .update(blend(bn.running_mean.value_sync(), mean));
    bn.running_var
        .update(blend(bn.running_var.value_sync(), variance));
    Tensor::from_dispatch(output)
}

/// The sizes: images, channels and values per channel and image.
#[derive(Debug, Clone, Copy)]
struct Shape3 {
    n: usize,
    c: usize,
    s: usize,
}

impl Shape3 {
    fn of(x: &FlexTensor) -> Self {
        let dims = x.layout().shape();
        Self {
            n: dims[0],
            c: dims[1],
            s: dims[2..].iter().product(),
        }
    }

    /// Values per channel over the batch.
    fn count(&self) -> f64 {
        (self.n * self.s) as f64
    }

    /// Channel `c`'s values in image `image`.
    fn plane<'a>(&self, values: &'a [f32], image: usize, c: usize) -> &'a [f32] {
        &values[(image * self.c + c) * self.s..][..self.s]
    }
}

/// The forward pass's output and batch statistics.
struct Forward {
    output: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
}

impl Forward {
    fn compute(x: &FlexTensor, gamma: &FlexTensor, beta: &FlexTensor, epsilon: f64) -> Self {
        let (x, gamma, beta) = (
            x.to_contiguous(),
            gamma.to_contiguous(),
            beta.to_contiguous(),
        );
        let shape = Shape3::of(&x);
        let values = x.storage::<f32>();
        let (gamma, beta) = (gamma.storage::<f32>(), beta.storage::<f32>());
        let statistics: Vec<(f64, f64)> = (0..shape.c)
            .into_par_iter()
            .map(|c| channel_statistics(values, shape, c))
            .collect();
        let mut output = vec![0.0f32; values.len()];
        output
            .par_chunks_mut(shape.s)
            .enumerate()
            .for_each(|(plane, out)| {
                let (image, c) = (plane / shape.c, plane % shape.c);
                let (mean, variance) = statistics[c];
                let scale = f64::from(gamma[c]) / (variance + epsilon).sqrt();
                let shift = f64::from(beta[c]) - mean * scale;
                let (scale, shift) = (scale as f32, shift as f32);
                for (o, v) in out.iter_mut().zip(shape.plane(values, image, c)) {
                    *o = v * scale + shift;
                }
            });
        Self {
            output: FlexTensor::from_data(TensorData::new(output, x.layout().shape().to_vec())),
            mean: per_channel(&statistics, |s| s.0),
            variance: per_channel(&statistics, |s| s.1),
        }
    }
}

/// The mean and biased variance of channel `c` over the batch (two passes: the mean, then the
/// squared deviations from it).
fn channel_statistics(values: &[f32], shape: Shape3, c: usize) -> (f64, f64) {
    let planes = || (0..shape.n).map(move |image| shape.plane(values, image, c));
    let mean = planes().map(|plane| lane_sum(plane, |v| v)).sum::<f64>() / shape.count();
    let centre = mean as f32;
    let squares = planes()
        .map(|plane| lane_sum(plane, |v| (v - centre) * (v - centre)))
        .sum::<f64>();
    (mean, squares / shape.count())
}

/// `Σ f(v)` over `values`, in eight f32 lanes (which the compiler vectorises) summed in f64.
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let rest: f64 = chunks.remainder().iter().map(|&v| f64::from(f(v))).sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f(v);
        }
    }
    rest + lanes.iter().map(|&l| f64::from(l)).sum::<f64>()
}

/// Gradients of the input, `gamma` and `beta`.
struct Gradients3 {
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
}

/// `dβ = Σ dy`, `dγ = Σ dy·x̂` and `dx = γ/σ · (dy − dβ/M − x̂·dγ/M)` per channel, with
/// `x̂ = (x − μ)/σ`, `σ = √(var + ε)` and M values per channel.
fn backward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    mean: &FlexTensor,
    variance: &FlexTensor,
    epsilon: f64,
    output_grad: &FlexTensor,
) -> Gradients3 {
    let (x, dy) = (x.to_contiguous(), output_grad.to_contiguous());
    let shape = Shape3::of(&x);
    let (values, dy_values) = (x.storage::<f32>(), dy.storage::<f32>());
    let (gamma, mean, variance) = (
        gamma.to_contiguous(),
        mean.to_contiguous(),
        variance.to_contiguous(),
    );
    let (gamma, mean, variance) = (
        gamma.storage::<f32>(),
        mean.storage::<f32>(),
        variance.storage::<f32>(),
    );
    let inv_std: Vec<f32> = variance
        .iter()
        .map(|&v| (1.0 / (f64::from(v) + epsilon).sqrt()) as f32)
        .collect();
    // (Σ dy, Σ dy·x̂) per channel.
    let sums: Vec<(f64, f64)> = (0..shape.c)
        .into_par_iter()
        .map(|c| {
            let (m, s) = (mean[c], inv_std[c]);
            (0..shape.n).fold((0.0, 0.0), |(sum, product), image| {
                let (xs, gs) = (
                    shape.plane(values, image, c),
                    shape.plane(dy_values, image, c),
                );
                let plain = lane_sum(gs, |g| g);
                let mut lanes = [0.0f32; 8];
                let mut rest = 0.0f64;
                let (xc, gc) = (xs.chunks_exact(8), gs.chunks_exact(8));
                for (a, b) in xc.remainder().iter().zip(gc.remainder()) {
                    rest += f64::from((a - m) * s * b);
                }
                for (a, b) in xc.zip(gc) {
                    for lane in 0..8 {
                        lanes[lane] += (a[lane] - m) * s * b[lane];
                    }
                }
                let weighted = rest + lanes.iter().map(|&l| f64::from(l)).sum::<f64>();
                (sum + plain, product + weighted)
            })
        })
        .collect();
    let mut dx = vec![0.0f32; values.len()];
    dx.par_chunks_mut(shape.s)
        .enumerate()
        .for_each(|(plane, out)| {
            let (image, c) = (plane / shape.c, plane % shape.c);
            let (m, s) = (mean[c], inv_std[c]);
            let scale = gamma[c] * s;
            let mean_grad = (sums[c].0 / shape.count()) as f32;
            let mean_projection = (sums[c].1 / shape.count()) as f32;
            let xs = shape.plane(values, image, c);
            let gs = shape.plane(dy_values, image, c);
            for ((o, &v), &g) in out.iter_mut().zip(xs).zip(gs) {
                *o = scale * (g - mean_grad - (v - m) * s * mean_projection);
            }
        });
    Gradients3 {
        x: FlexTensor::from_data(TensorData::new(dx, x.layout().shape().to_vec())),
        gamma: per_channel(&sums, |s| s.1),
        beta: per_channel(&sums, |s| s.0),
    }
}

/// One value per channel, picked from each channel's pair, as a `[channels]` tensor.
fn per_channel(pairs: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64) -> FlexTensor {
    let values: Vec<f32> = pairs.iter().map(|pair| pick(pair) as f32).collect();
    FlexTensor::from_data(TensorData::new(values, [pairs.len()]))
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::nn::BatchNormConfig;
    use burn::tensor::Distribution;

    use super::*;

    use crate::testing::values;

    fn assert_close(a: Vec<f32>, b: Vec<f32>, what: &str) {
        crate::testing::assert_close(a, b, 2e-4, what);
    }

    /// Output and input, gamma and beta gradients against PyTorch's `batch_norm` in training
    /// (`fixtures/make_layers_fixture.py`, computed in float64).
    #[test]
    fn matches_pytorch_batch_norm_in_training() {
        use crate::testing::layers_fixture_tensor as fixture;
        let device = Device::flex().autodiff();
        let mut bn = BatchNormConfig::new(4).with_epsilon(1e-5).init(&device);
        bn.gamma = Param::from_tensor(fixture::<1>("batch_norm.gamma", &device).require_grad());
        bn.beta = Param::from_tensor(fixture::<1>("batch_norm.beta", &device).require_grad());
        let x = fixture::<4>("batch_norm.input", &device).require_grad();
        let y = batch_norm(&bn, x.clone());
        let expected = |what: &str| crate::testing::layers_fixture(&format!("batch_norm.{what}")).1;
        assert_close(values(y.clone()), expected("output"), "output");
        let grads = (y * fixture::<4>("batch_norm.output_grad", &device))
            .sum()
            .backward();
        assert_close(
            values(x.grad(&grads).unwrap()),
            expected("input_grad"),
            "input gradient",
        );
        let gamma = values(bn.gamma.val().grad(&grads).unwrap());
        assert_close(gamma, expected("gamma_grad"), "gamma gradient");
        let beta = values(bn.beta.val().grad(&grads).unwrap());
        assert_close(beta, expected("beta_grad"), "beta gradient");
    }

    /// Output, input/gamma/beta gradients and the running statistics after one step, against
    /// burn's `BatchNorm` in training (the independent reference), on an activation far from
    /// zero mean and unit variance with a plane size that is not a multiple of 8.
    #[test]
    fn matches_burn_batch_norm_in_training() {
        let device = Device::flex().autodiff();
        let mut reference = BatchNormConfig::new(5).with_momentum(0.3).init(&device);
        reference.gamma = Param::from_tensor(
            Tensor::random([5], Distribution::Uniform(0.5, 2.0), &device).require_grad(),
        );
        reference.beta = Param::from_tensor(
            Tensor::random([5], Distribution::Uniform(-1.0, 1.0), &device).require_grad(),
        );
        let ours = reference.clone();
        let x = Tensor::<4>::random([3, 5, 7, 9], Distribution::Normal(3.0, 2.5), &device)
            .require_grad();
        let weighting = Tensor::<4>::random([3, 5, 7, 9], Distribution::Normal(0.0, 1.0), &device);

        let y_ours = batch_norm(&ours, x.clone());
        let y_reference = reference.forward(x.clone());
        assert_close(
            values(y_ours.clone()),
            values(y_reference.clone()),
            "output",
        );
        let g_ours = (y_ours * weighting.clone()).sum().backward();
        let g_reference = (y_reference * weighting).sum().backward();
        assert_close(
            values(x.grad(&g_ours).unwrap()),
            values(x.grad(&g_reference).unwrap()),
            "input gradient",
        );
        for (what, ours, reference) in [
            ("gamma gradient", &ours.gamma, &reference.gamma),
            ("beta gradient", &ours.beta, &reference.beta),
        ] {
            assert_close(
                values(ours.val().grad(&g_ours).unwrap()),
                values(reference.val().grad(&g_reference).unwrap()),
                what,
            );
        }
        assert_close(
            values(ours.running_mean.value()),
            values(reference.running_mean.value()),
            "running mean",
        );
        assert_close(
            values(ours.running_var.value()),
            values(reference.running_var.value()),
            "running variance",
        );
    }

    /// Hand-computed: one channel holding 1, 2, 3, 4 (mean 2.5, biased variance 1.25), gamma 2,
    /// beta 1, epsilon 1e-9: the output is 1 + 2·(v − 2.5)/√1.25.
    #[test]
    fn normalises_by_hand() {
        let device = Device::flex().autodiff();
        let mut bn = BatchNormConfig::new(1).with_epsilon(1e-9).init(&device);
        bn.gamma = Param::from_tensor(Tensor::from_floats([2.0], &device));
        bn.beta = Param::from_tensor(Tensor::from_floats([1.0], &device));
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 1, 1, 2]),
            &device,
        );
        let expected: Vec<f32> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .map(|v| 1.0 + 2.0 * (v - 2.5) / 1.25f32.sqrt())
            .collect();
        assert_close(values(batch_norm(&bn, x)), expected, "output");
    }
}
