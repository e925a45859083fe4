//! The spatial transformer: identity at initialisation, gradients reaching the localisation
//! network, and `affine_grid`/`transform` (outputs and gradients) against PyTorch's
//! `affine_grid` + `grid_sample` (`fixtures/make_spatial_transformer_fixture.py`).

mod common;

use atelier_models::spatial_transformer::{affine_grid, transform};
use atelier_models::{SpatialTransformer, SpatialTransformerConfig};
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use burn::tensor::{Distribution, Gradients};
use common::{HostTensor, assert_close, assert_values_close, fixture, read_safetensors};

fn max_abs<const D: usize>(tensor: Tensor<D>) -> f32 {
    tensor.abs().max().into_scalar::<f32>()
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().iter::<f32>().collect()
}

#[test]
fn identity_at_initialisation() {
    let device = Device::flex();
    let model = SpatialTransformerConfig::default().init(&device);
    let images = Tensor::<4>::random([2, 3, 32, 40], Distribution::Normal(0.0, 1.0), &device);

    let theta = model.theta(images.clone());
    let identity = Tensor::<3>::from_floats([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]; 2], &device);
    assert_eq!(
        max_abs(theta - identity),
        0.0,
        "initial theta is the identity"
    );

    let output = model.forward(images.clone());
    assert_eq!(output.dims(), [2, 3, 32, 40]);
    let diff = max_abs(output - images);
    assert!(
        diff < 1e-5,
        "identity output differs from input by {diff:e}"
    );
}

/// The loss `mean(output * weights)` and its gradients, for a model on an autodiff device.
fn loss_gradients(
    model: &SpatialTransformer,
    images: &Tensor<4>,
    weights: &Tensor<4>,
) -> Gradients {
    // A mean keeps the step below small: with a sum, one step of lr 0.1 moves theta so far
    // that every sample lands outside the image and all gradients vanish.
    (model.forward(images.clone()) * weights.clone())
        .mean()
        .backward()
}

fn first_conv_grad(model: &SpatialTransformer, grads: &Gradients) -> Tensor<4> {
    model.localization[0]
        .conv
        .weight
        .grad(grads)
        .expect("the first localisation conv takes part in the loss")
}

#[test]
fn gradients_reach_the_localisation_network() {
    let device = Device::flex().autodiff();
    let model = SpatialTransformerConfig::default().init(&device);
    let images = Tensor::<4>::random([2, 3, 32, 40], Distribution::Normal(0.0, 1.0), &device);
    let weights = Tensor::<4>::random([2, 3, 32, 40], Distribution::Normal(0.0, 1.0), &device);

    let grads = loss_gradients(&model, &images, &weights);
    let theta_weight_grad = model
        .fc_theta
        .weight
        .grad(&grads)
        .expect("fc_theta.weight takes part in the loss");
    let theta_bias_grad = model.fc_theta.bias.as_ref().unwrap().grad(&grads).unwrap();
    assert!(
        max_abs(theta_weight_grad) > 1e-3,
        "the zero-initialised fc_theta.weight must get a gradient, or training never leaves identity"
    );
    assert!(max_abs(theta_bias_grad) > 1e-3);
    // With fc_theta's weights at zero, theta does not depend on anything before them, so the
    // conv gradients are exactly zero on the first step: that is the design, not a broken graph.
    assert_eq!(max_abs(first_conv_grad(&model, &grads)), 0.0);

    // One SGD step moves fc_theta off zero; from then on the whole network learns.
    let params = GradientsParams::from_grads(grads, &model);
    let model = SgdConfig::new().init().step(0.1, model, params);
    let grads = loss_gradients(&model, &images, &weights);
    let conv_grad = max_abs(first_conv_grad(&model, &grads));
    assert!(
        conv_grad > 1e-6,
        "first localisation conv gets no gradient after a step ({conv_grad:e})"
    );
    let hidden_grad = max_abs(model.fc_hidden.weight.grad(&grads).unwrap());
    assert!(
        hidden_grad > 1e-6,
        "fc_hidden gets no gradient ({hidden_grad:e})"
    );

    // The step really changed the transform: it is no longer the identity.
    let theta = model.valid().theta(images.inner());
    let identity =
        Tensor::<3>::from_floats([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]; 2], &theta.device());
    assert!(max_abs(theta - identity) > 1e-4);
}

fn reference() -> std::collections::HashMap<String, HostTensor> {
    read_safetensors(&fixture("spatial_transformer_io.safetensors"))
}

#[test]
fn affine_grid_matches_pytorch() {
    let device = Device::flex();
    let reference = reference();
    let [_, _, height, width] = reference["input"].shape[..] else {
        panic!("input is 4-D")
    };
    let grid = affine_grid(reference["theta"].to_device(&device), height, width);
    assert_close("affine grid", grid, &reference["grid"]);
}

#[test]
fn transform_matches_pytorch() {
    let device = Device::flex();
    let reference = reference();
    let output = transform(
        reference["input"].to_device(&device),
        reference["theta"].to_device(&device),
    );
    let actual = values(output.clone());
    let expected = &reference["output"].values;
    let worst = actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "transform differs from PyTorch by {worst:e}");
    assert_close("transform", output.clone(), &reference["output"]);

    // The third theta zooms out: a good part of its output lies outside the input and must be
    // exactly zero (zeros padding), as in PyTorch's.
    let zoomed_out = values(output.slice(s![2..3]));
    let zeros = zoomed_out.iter().filter(|v| **v == 0.0).count();
    assert!(
        zeros > zoomed_out.len() / 4,
        "expected many zero samples outside the image, got {zeros} of {}",
        zoomed_out.len()
    );
}

#[test]
fn transform_gradients_match_pytorch() {
    let device = Device::flex().autodiff();
    let reference = reference();
    let images = reference["input"].to_device::<4>(&device).require_grad();
    let theta = reference["theta"].to_device::<3>(&device).require_grad();
    let weights = reference["loss_weights"].to_device::<4>(&device);

    let output = transform(images.clone(), theta.clone());
    // The autodiff path samples with burn's composed ops rather than the CPU kernel; its
    // forward values must agree too.
    assert_close(
        "transform (autodiff)",
        output.clone().inner(),
        &reference["output"],
    );
    let grads = (output * weights).sum().backward();

    let grad_theta = theta.grad(&grads).expect("theta takes part in the loss");
    assert_values_close(
        "d loss / d theta",
        &values(grad_theta),
        &reference["grad_theta"].values,
        1e-4,
    );
    let grad_input = images.grad(&grads).expect("images take part in the loss");
    assert_close("d loss / d input", grad_input, &reference["grad_input"]);
}

#[test]
fn invalid_configurations_name_the_field() {
    let device = Device::flex();
    let too_small = SpatialTransformerConfig {
        localization_input: 3,
        ..Default::default()
    };
    let error = too_small.try_init(&device).unwrap_err().to_string();
    assert!(error.contains("localization_input 3"), "{error}");
    assert!(error.contains("at least 4"), "{error}");

    let zero_channels = SpatialTransformerConfig {
        localization_channels: vec![8, 0],
        ..Default::default()
    };
    let error = zero_channels.try_init(&device).unwrap_err().to_string();
    assert!(error.contains("localization_channels"), "{error}");

    let no_hidden = SpatialTransformerConfig {
        hidden: 0,
        ..Default::default()
    };
    assert!(
        no_hidden
            .try_init(&device)
            .unwrap_err()
            .to_string()
            .contains("hidden")
    );

    // No conv blocks is allowed: the thumbnail goes straight to the fully connected layers.
    let linear_only = SpatialTransformerConfig {
        localization_channels: vec![],
        localization_input: 8,
        hidden: 4,
    };
    let model = linear_only.init(&device);
    let images = Tensor::<4>::random([1, 3, 10, 12], Distribution::Normal(0.0, 1.0), &device);
    assert_eq!(model.forward(images).dims(), [1, 3, 10, 12]);
}
