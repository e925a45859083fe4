//! atelier's 3×3 stride-1 convolution, which takes Winograd's transforms on the CPU, against
//! PyTorch's `conv2d`: the output and the input, weight and bias gradients for one output
//! weighting. The fixture comes from `fixtures/make_conv_fixture.py`.

mod common;

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::prelude::*;
use common::{assert_close, fixture, read_safetensors};

#[test]
fn winograd_convolution_and_its_gradients_match_pytorch() {
    let io = read_safetensors(&fixture("conv3x3_io.safetensors"));
    let device = Device::flex().autodiff();
    let mut conv = Conv2dConfig::new([16, 24], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&device);
    conv.weight = Param::from_tensor(io["weight"].to_device::<4>(&device));
    conv.bias = Some(Param::from_tensor(io["bias"].to_device::<1>(&device)));
    let x = io["input"].to_device::<4>(&device).require_grad();
    let y = atelier_models::conv2d(&conv, x.clone());
    assert_close("output", y.clone(), &io["output"]);
    let weighting = io["output_grad"].to_device::<4>(&device);
    let grads = (y * weighting).sum().backward();
    assert_close("input gradient", x.grad(&grads).unwrap(), &io["input_grad"]);
    let weight_grad = conv.weight.val().grad(&grads).unwrap();
    assert_close("weight gradient", weight_grad, &io["weight_grad"]);
    let bias = conv.bias.as_ref().unwrap().val();
    assert_close(
        "bias gradient",
        bias.grad(&grads).unwrap(),
        &io["bias_grad"],
    );
}

/// The other convolutions atelier computes itself on the CPU (`fixtures/make_layers_fixture.py`):
/// a 3×3 stride-2 convolution (im2col products), a 3×3 stride-2 depthwise one (the phase-split
/// kernel), a 5×5 stride-1 depthwise one and 1×1 ones at strides 1 and 2 whose weights learn
/// (matrix products), each forward and backward.
#[test]
fn strided_and_depthwise_convolutions_and_their_gradients_match_pytorch() {
    let io = read_safetensors(&fixture("layers_io.safetensors"));
    let device = Device::flex().autodiff();
    // name, stride, padding, groups
    for (case, stride, padding, groups) in [
        ("dense_s2", 2, 1, 1),
        ("depthwise_s2", 2, 1, 6),
        ("depthwise_5x5", 1, 2, 4),
        ("pointwise", 1, 0, 1),
        ("pointwise_s2", 2, 0, 1),
    ] {
        let tensor = |what: &str| &io[&format!("{case}.{what}")];
        let weight = tensor("weight").to_device::<4>(&device);
        let [out_channels, per_group, kernel, _] = weight.dims();
        let mut conv = Conv2dConfig::new([per_group * groups, out_channels], [kernel, kernel])
            .with_stride([stride, stride])
            .with_groups(groups)
            .with_padding(PaddingConfig2d::Explicit(
                padding, padding, padding, padding,
            ))
            .with_bias(false)
            .init(&device);
        conv.weight = Param::from_tensor(weight);
        let x = tensor("input").to_device::<4>(&device).require_grad();
        let y = atelier_models::conv2d(&conv, x.clone());
        assert_close(&format!("{case}: output"), y.clone(), tensor("output"));
        let grads = (y * tensor("output_grad").to_device::<4>(&device))
            .sum()
            .backward();
        let input_grad = x.grad(&grads).unwrap();
        assert_close(
            &format!("{case}: input gradient"),
            input_grad,
            tensor("input_grad"),
        );
        let weight_grad = conv.weight.val().grad(&grads).unwrap();
        assert_close(
            &format!("{case}: weight gradient"),
            weight_grad,
            tensor("weight_grad"),
        );
    }
}
