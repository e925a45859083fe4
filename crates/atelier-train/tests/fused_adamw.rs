//! [`FusedAdamW`] against `torch.optim.AdamW` (`fixtures/adamw/`, made by
//! `fixtures/adamw/make_adamw_reference.py`): the same values after each of 10 steps within
//! 1e-5; and against burn's `AdamW` on a parameter large enough to be split over threads.

use atelier_train::fused_adamw::FusedAdamW;
use burn::optim::{AdamWConfig, Optimizer};
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;

fn floats(value: &Value) -> Vec<f32> {
    serde_json::from_value(value.clone()).unwrap()
}

fn values<const D: usize>(tensor: &Tensor<D>) -> Vec<f32> {
    tensor.to_data().try_into_vec::<f32>().unwrap()
}

/// Runs the fixture's steps on parameter `index` of shape `shape` with `optimizer`; returns the
/// largest difference from PyTorch's values over all steps.
fn largest_difference<O: Optimizer, const D: usize>(
    optimizer: &O,
    reference: &Value,
    index: usize,
    shape: [usize; D],
) -> f32 {
    let device = Device::flex();
    let tensor = |values: Vec<f32>| Tensor::<D>::from_data(TensorData::new(values, shape), &device);
    let mut weight = tensor(floats(&reference["initial"][index]));
    let mut state = None;
    let mut largest = 0f32;
    for step in reference["steps"].as_array().unwrap() {
        let grad = tensor(floats(&step["grads"][index]));
        let lr = step["lr"].as_f64().unwrap();
        (weight, state) = optimizer.step(lr, weight, grad, state);
        for (ours, theirs) in values(&weight).iter().zip(floats(&step["after"][index])) {
            largest = largest.max((ours - theirs).abs());
        }
    }
    largest
}

#[test]
fn fused_adamw_matches_pytorch_over_ten_steps() {
    let reference: Value =
        serde_json::from_str(include_str!("../fixtures/adamw/adamw_reference.json")).unwrap();
    let setting = |key: &str| reference[key].as_f64().unwrap() as f32;
    let fused = FusedAdamW {
        beta_1: setting("beta_1"),
        beta_2: setting("beta_2"),
        epsilon: setting("epsilon"),
        weight_decay: setting("weight_decay"),
    };
    let burn = AdamWConfig::new()
        .with_beta_1(fused.beta_1)
        .with_beta_2(fused.beta_2)
        .with_epsilon(fused.epsilon)
        .with_weight_decay(fused.weight_decay)
        .build();
    assert_eq!(reference["steps"].as_array().unwrap().len(), 10);
    for (name, matrix, vector) in [
        (
            "fused",
            largest_difference(&fused, &reference, 0, [6, 5]),
            largest_difference(&fused, &reference, 1, [7]),
        ),
        (
            "burn",
            largest_difference(&burn, &reference, 0, [6, 5]),
            largest_difference(&burn, &reference, 1, [7]),
        ),
    ] {
        eprintln!("{name}: largest difference from PyTorch {matrix:e} and {vector:e}");
        assert!(matrix < 1e-5 && vector < 1e-5, "{name}: {matrix} {vector}");
    }
}

/// 100 000 values (split over rayon's threads), three steps with burn's defaults: the same
/// values and moments as burn's `AdamW`, up to f32 rounding.
#[test]
fn fused_adamw_matches_burn_on_a_large_parameter() {
    let device = Device::flex();
    let n = 100_000;
    let ramp = |scale: f32, shift: f32| {
        let values: Vec<f32> = (0..n)
            .map(|i| ((i as f32 * 0.618).fract() - 0.5) * scale + shift)
            .collect();
        Tensor::<1>::from_data(TensorData::new(values, [n]), &device)
    };
    let fused = FusedAdamW::default();
    let burn = AdamWConfig::new().build();
    let (mut ours, mut theirs) = (ramp(2.0, 0.1), ramp(2.0, 0.1));
    let (mut our_state, mut their_state) = (None, None);
    for step in 0..3 {
        let grad = ramp(0.5 + step as f32, -0.05);
        (ours, our_state) = fused.step(1e-3, ours, grad.clone(), our_state);
        (theirs, their_state) = burn.step(1e-3, theirs, grad, their_state);
    }
    let close = |a: Vec<f32>, b: Vec<f32>, what: &str| {
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-6 * (1.0 + y.abs()),
                "{what} {i}: {x} against {y}"
            );
        }
    };
    close(values(&ours), values(&theirs), "weight");
    let (ours, theirs) = (our_state.unwrap().momentum, their_state.unwrap().momentum);
    assert_eq!(ours.time, 3);
    assert_eq!(theirs.time, 3);
    close(
        values(&ours.moment_1),
        values(&theirs.moment_1),
        "first moment",
    );
    close(
        values(&ours.moment_2),
        values(&theirs.moment_2),
        "second moment",
    );
}
