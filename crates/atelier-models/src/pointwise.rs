//! 1×1 convolutions (the bottleneck blocks, the shortcuts, EfficientNet's expansions and
//! projections) as matrix products over the channel axis.
//!
//! This replaces, for those layers only, burn's `conv2d` (burn-backend 0.22), whose default
//! `conv2d_weight_backward` computes the weight gradient as a convolution with the input
//! channels as its batch: for a 1×1 kernel, C_in separate matrix–vector products that each
//! re-read the whole output gradient (4.3× PyTorch's time over ResNet-50's backward pass; see
//! `docs/benchmarks.md`). Written as `W[1, C_out, C_in] · X[N, C_in, H·W]`, autodiff's matmul
//! backward gives the weight gradient as one product per image (`dY[n] · X[n]ᵀ`, summed over
//! the batch) and the input gradient as `Wᵀ · dY`. A stride of 2 picks every other row and
//! column first, which is what a 1×1 kernel with that stride and no padding reads.
//!
//! Only layers whose weights learn take this path: without a weight gradient to compute,
//! `conv2d`'s forward (one product over the whole batch in the flex backend) is faster than a
//! product per image (measured on 2 cores, batch 8: EfficientNet-Lite0 inference 26.7 images/s
//! through `conv2d`, 24.1 through products; ResNet-50 training 1.59 images/s through `conv2d`,
//! 2.23 through products).
//!
//! The weights stay in the [`Conv2d`] module, in torchvision's `[C_out, C_in, 1, 1]` layout, so
//! saved models and imported weights are unchanged. Any other convolution goes to `conv2d`.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

use crate::flex_conv;

/// `conv` applied to `x` (`[batch, channels, height, width]`): as a matrix product when it is
/// a 1×1 convolution without padding, dilation or groups whose weights learn; through
/// [`flex_conv`] when another dense or depthwise convolution learns on flex; else with
/// burn's `conv2d`.
pub(crate) fn conv_forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if is_pointwise(conv) && conv.weight.val().is_require_grad() {
        pointwise(conv, x)
    } else if flex_conv::applies(conv, &x) {
        flex_conv::forward(conv, x)
    } else {
        conv.forward(x)
    }
}

/// Whether `conv` reads one pixel per output pixel with every input channel.
fn is_pointwise(conv: &Conv2d) -> bool {
    let unpadded = match conv.padding {
        PaddingConfig2d::Valid => true,
        // A 1×1 kernel keeps the size without padding at stride 1.
        PaddingConfig2d::Same => conv.stride == [1, 1],
        PaddingConfig2d::Explicit(top, left, bottom, right) => top + left + bottom + right == 0,
    };
    conv.kernel_size == [1, 1] && conv.dilation == [1, 1] && conv.groups == 1 && unpadded
}

/// The 1×1 convolution as `W · X` per image, plus the bias.
fn pointwise(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let [rows, cols] = conv.stride;
    let x = if rows == 1 && cols == 1 {
        x
    } else {
        x.slice(s![.., .., ..;rows, ..;cols])
    };
    let [batch, channels, height, width] = x.dims();
    let [out_channels, ..] = conv.weight.dims();
    let weight = conv.weight.val().reshape([1, out_channels, channels]);
    let y = weight
        .matmul(x.reshape([batch, channels, height * width]))
        .reshape([batch, out_channels, height, width]);
    match &conv.bias {
        Some(bias) => y + bias.val().reshape([1, out_channels, 1, 1]),
        None => y,
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;

    use super::*;

    fn assert_close(a: Tensor<4>, b: Tensor<4>, what: &str) {
        crate::testing::assert_tensors_close(a, b, 1e-4, what);
    }

    /// Forward values and the gradients of input, weight and bias against burn's `conv2d`
    /// (the independent reference), for strides 1 and 2, with and without a bias, on an
    /// input whose odd height and width leave a last row and column for stride 2.
    #[test]
    fn matches_conv2d_forward_and_backward() {
        let device = Device::flex().autodiff();
        for (stride, bias) in [(1, false), (1, true), (2, false), (2, true)] {
            let conv = Conv2dConfig::new([6, 5], [1, 1])
                .with_stride([stride, stride])
                .with_bias(bias)
                .init(&device);
            let input = Tensor::<4>::random([3, 6, 7, 9], Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
            // A weighting of the outputs, so that every output element gets its own gradient.
            let [_, _, h, w] = conv.forward(input.clone()).dims();
            let weighting =
                Tensor::<4>::random([3, 5, h, w], Distribution::Normal(0.0, 1.0), &device);
            let what = format!("stride {stride}, bias {bias}");

            assert!(is_pointwise(&conv), "{what}");
            assert!(
                conv.weight.val().is_require_grad(),
                "{what}: learning weights"
            );
            let fast = pointwise(&conv, input.clone());
            let reference = conv.forward(input.clone());
            assert_close(fast.clone(), reference.clone(), &format!("{what}: output"));

            let fast_grads = (fast * weighting.clone()).sum().backward();
            let reference_grads = (reference * weighting).sum().backward();
            let grad = |grads: &_, tensor: &Tensor<4>| tensor.grad(grads).unwrap();
            assert_close(
                grad(&fast_grads, &input),
                grad(&reference_grads, &input),
                &format!("{what}: input gradient"),
            );
            assert_close(
                grad(&fast_grads, &conv.weight.val()),
                grad(&reference_grads, &conv.weight.val()),
                &format!("{what}: weight gradient"),
            );
            if let Some(b) = &conv.bias {
                let of = |grads| b.val().grad(grads).unwrap().reshape([1, 5, 1, 1]);
                assert_close(
                    of(&fast_grads),
                    of(&reference_grads),
                    &format!("{what}: bias gradient"),
                );
            }
        }
    }

    #[test]
    fn other_convolutions_are_left_to_conv2d() {
        let device = Device::flex();
        let three = Conv2dConfig::new([4, 4], [3, 3]).init(&device);
        let padded = Conv2dConfig::new([4, 4], [1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let grouped = Conv2dConfig::new([4, 4], [1, 1])
            .with_groups(2)
            .init(&device);
        let pointwise = Conv2dConfig::new([4, 4], [1, 1]).init(&device);
        // Without autodiff no weight learns: conv2d's forward is the faster one there.
        assert!(!pointwise.weight.val().is_require_grad());
        assert!(!is_pointwise(&three));
        assert!(!is_pointwise(&padded));
        assert!(!is_pointwise(&grouped));
        assert!(is_pointwise(&pointwise));
    }
}
