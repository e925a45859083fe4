//! One convolution layer at a time: burn's `Conv2d::forward` against [`atelier_models::conv2d`]
//! (what the backbones run), inference and one training step (forward and backward with the
//! weights learning), for the dense and depthwise layer shapes of ResNet-18/50 and
//! EfficientNet-Lite0 at 224 px, batch 8, on `Device::flex()`.
//!
//! Run with `cargo bench -p atelier-models --bench conv`; `ATELIER_BENCH_ITERATIONS` sets the
//! timed runs per layer (default 5; the fastest is reported, after one untimed warm-up) and
//! `ATELIER_BENCH_LAYERS` keeps the layers whose name contains it.

use std::time::{Duration, Instant};

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::Distribution;

const BATCH: usize = 8;

/// A layer: name, input channels, output channels, kernel, stride, groups, input size.
type Layer = (&'static str, usize, usize, usize, usize, usize, usize);

const LAYERS: [Layer; 10] = [
    ("resnet stem 7x7 s2", 3, 64, 7, 2, 1, 224),
    ("resnet18 3x3 64", 64, 64, 3, 1, 1, 56),
    ("resnet18 3x3 128 s2", 64, 128, 3, 2, 1, 56),
    ("resnet18 3x3 128", 128, 128, 3, 1, 1, 28),
    ("resnet18 3x3 256", 256, 256, 3, 1, 1, 14),
    ("resnet18 3x3 512", 512, 512, 3, 1, 1, 7),
    ("lite0 stem 3x3 s2", 3, 32, 3, 2, 1, 224),
    ("lite0 dw 3x3 96 s2", 96, 96, 3, 2, 96, 112),
    ("lite0 dw 5x5 240", 240, 240, 5, 1, 240, 28),
    ("lite0 dw 3x3 480", 480, 480, 3, 1, 480, 14),
];

fn layer(spec: &Layer, device: &Device) -> (Conv2d, Tensor<4>) {
    let &(_, cin, cout, kernel, stride, groups, size) = spec;
    let padding = kernel / 2;
    let conv = Conv2dConfig::new([cin, cout], [kernel, kernel])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_bias(false)
        .init(device);
    let x = Tensor::<4>::random(
        [BATCH, cin, size, size],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    (conv, x)
}

fn best(iterations: usize, mut run: impl FnMut() -> Duration) -> f64 {
    run();
    let fastest = (0..iterations).map(|_| run()).min().unwrap_or_default();
    fastest.as_secs_f64() * 1e3
}

fn inference(conv: &Conv2d, x: &Tensor<4>, ours: bool) -> Duration {
    let start = Instant::now();
    let y = if ours {
        atelier_models::conv2d(conv, x.clone())
    } else {
        conv.forward(x.clone())
    };
    let _ = y.into_data();
    start.elapsed()
}

fn training(conv: &Conv2d, x: &Tensor<4>, ours: bool) -> Duration {
    let x = x.clone().require_grad();
    let start = Instant::now();
    let y = if ours {
        atelier_models::conv2d(conv, x.clone())
    } else {
        conv.forward(x.clone())
    };
    let grads = y.sum().backward();
    let _ = conv.weight.val().grad(&grads).map(|g| g.into_data());
    let _ = x.grad(&grads).map(|g| g.into_data());
    start.elapsed()
}

fn main() {
    atelier_models::keep_freed_memory();
    let iterations: usize = std::env::var("ATELIER_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    println!("flex backend, batch {BATCH}, best of {iterations}; ms per batch");
    println!(
        "{:<22} {:>10} {:>10} {:>7} {:>10} {:>10} {:>7}",
        "layer", "infer burn", "atelier", "ratio", "train burn", "atelier", "ratio"
    );
    let plain = Device::flex();
    let autodiff = Device::flex().autodiff();
    let only = std::env::var("ATELIER_BENCH_LAYERS").unwrap_or_default();
    for spec in LAYERS.iter().filter(|spec| spec.0.contains(&only)) {
        let (conv, x) = layer(spec, &plain);
        let burn_inference = best(iterations, || inference(&conv, &x, false));
        let our_inference = best(iterations, || inference(&conv, &x, true));
        let (conv, x) = layer(spec, &autodiff);
        let burn_training = best(iterations, || training(&conv, &x, false));
        let our_training = best(iterations, || training(&conv, &x, true));
        println!(
            "{:<22} {burn_inference:>10.1} {our_inference:>10.1} {:>7.2} {burn_training:>10.1} {our_training:>10.1} {:>7.2}",
            spec.0,
            burn_inference / our_inference,
            burn_training / our_training,
        );
    }
}
