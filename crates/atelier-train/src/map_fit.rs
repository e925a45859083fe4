//! Fitting a small module to cached backbone maps: the loop the dress locator, the
//! foreground classifier and the facet probes share ([`fit_on_table`]) and its settings
//! ([`LocatorTraining`]).

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::features::FeatureTable;
use crate::standardize::ChannelStats;

/// How long and how fast a module fitted to cached maps trains (the defaults are the
/// locator's); it reads cached features, so this takes seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocatorTraining {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f32,
    pub seed: u64,
}

impl Default for LocatorTraining {
    fn default() -> Self {
        Self {
            epochs: 40,
            batch_size: 64,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            seed: 1,
        }
    }
}

impl LocatorTraining {
    /// The defaults with another seed.
    pub fn seeded(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }
}

/// Trains a module built by `build` on the maps of the rows `rows` of `table`, standardised
/// per channel over those rows, minimising `loss(module, maps, batch)` where `batch` holds
/// positions in `rows`: AdamW with a cosine-decayed rate, shuffled batches. Returns the
/// inference module and the statistics it was trained under. `device` is the inference
/// device; training runs on its autodiff twin. The result depends only on the inputs and
/// `training.seed`.
pub fn fit_on_table<M: Module>(
    table: &FeatureTable,
    rows: &[usize],
    training: &LocatorTraining,
    device: &Device,
    build: impl FnOnce(&Device) -> M,
    loss: impl Fn(&M, Tensor<4>, &[usize]) -> Tensor<1>,
) -> (M, ChannelStats) {
    let stats = ChannelStats::of(table, rows);
    let mut fit_table = table.select(rows);
    stats.apply(&mut fit_table);
    let train_device = device.clone().autodiff();
    let mut module = crate::init::exclusive(|| {
        train_device.seed(training.seed);
        let module = build(&train_device);
        crate::init::materialize(&module);
        module
    });
    let mut optimizer = AdamWConfig::new()
        .with_weight_decay(training.weight_decay)
        .init();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(training.seed);
    let batch_size = training.batch_size.max(1);
    let total_steps = (rows.len().div_ceil(batch_size) * training.epochs).max(1);
    let mut step = 0;
    for _ in 0..training.epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(batch_size) {
            let value = loss(&module, fit_table.batch(batch, &train_device), batch);
            let gradients = GradientsParams::from_grads(value.backward(), &module);
            // Cosine decay: the last epochs settle instead of jittering around the optimum.
            let progress = step as f64 / total_steps as f64;
            let rate =
                training.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
            module = optimizer.step(rate, module, gradients);
            step += 1;
        }
    }
    (module.valid(), stats)
}
