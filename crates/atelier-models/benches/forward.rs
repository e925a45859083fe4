//! Forward-pass time of the full-size backbones (random weights) at 224x224, batch 8, on the
//! pure-Rust CPU backend (`Device::flex()`), through the classifier.
//!
//! Run with `cargo bench --bench forward`; `ATELIER_BENCH_ITERATIONS` sets the timed runs per
//! model (default 5; the fastest is reported, after one untimed warm-up run).

use std::time::{Duration, Instant};

use atelier_models::{AnyBackbone, Backbone, EfficientNetLiteConfig, ResNetConfig};
use burn::prelude::*;
use burn::tensor::Distribution;

const BATCH: usize = 8;
const SIZE: usize = 224;

fn time_forward(model: &AnyBackbone, input: &Tensor<4>) -> Duration {
    let start = Instant::now();
    let features = model.forward_features(input.clone());
    let logits = model
        .classify(features.pooled)
        .expect("benchmark models have a classifier");
    // Reading the result back waits for all queued work.
    let _ = logits.into_data();
    start.elapsed()
}

fn main() {
    let iterations: usize = std::env::var("ATELIER_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let device = Device::flex();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "flex backend, {threads} hardware threads, batch {BATCH}, {SIZE}x{SIZE}, best of {iterations}"
    );
    let models = [
        (
            "ResNet-18",
            AnyBackbone::ResNet(ResNetConfig::resnet18().init(&device).unwrap()),
        ),
        (
            "ResNet-50",
            AnyBackbone::ResNet(ResNetConfig::resnet50().init(&device).unwrap()),
        ),
        (
            "EfficientNet-Lite0",
            AnyBackbone::EfficientNetLite(EfficientNetLiteConfig::lite0().init(&device).unwrap()),
        ),
    ];
    let input = Tensor::<4>::random(
        [BATCH, 3, SIZE, SIZE],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    for (name, model) in &models {
        time_forward(model, &input);
        let best = (0..iterations)
            .map(|_| time_forward(model, &input))
            .min()
            .unwrap_or_default();
        println!(
            "{name:>20}: {:8.1} ms per batch, {:7.1} ms per image",
            best.as_secs_f64() * 1e3,
            best.as_secs_f64() * 1e3 / BATCH as f64
        );
    }
}
