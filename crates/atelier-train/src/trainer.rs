//! The training loop: frozen-feature or full fine-tuning, per-epoch validation and checkpoints,
//! resume, and the final predictions of the best epoch on every image.
//!
//! Two modes share one loop ([`fit`]):
//! - cached: the backbone is frozen and there is no spatial transformer, so each image's feature
//!   map is computed once ([`crate::features`]) and epochs train only the heads;
//! - images: every batch is decoded, augmented and sent through the whole network; a frozen
//!   backbone still passes gradients back to a spatial transformer in front of it.
//!
//! Reproducibility: parameters are initialised after seeding the device, the epoch order and
//! every augmentation are drawn from RNGs seeded by (seed, epoch, image), and the validation
//! part is a hash of (seed, image id). A run resumed from its last checkpoint therefore takes
//! the same steps as an uninterrupted one.

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{
    GradientsParams, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig, momentum::MomentumConfig,
};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::backbones::BackboneChoice;
use crate::checkpoint::{Checkpoints, RunState};
use crate::config::{HeadKind, TrainConfig};
use crate::data::{Dataset, Part};
use crate::error::TrainError;
use crate::evaluate::{FacetEvaluation, Probabilities, evaluate, mean_macro_f1};
use crate::features::{self, View, load_rgb};
use crate::fused_adamw::FusedAdamW;
use crate::init::{self, materialize};
use crate::input::{InputConfig, augmentation_seed, eval_planes, to_batch, train_planes};
use crate::loss::facet_loss;
use crate::model::{FacetHeads, FacetNet};
use crate::progress::{EpochRecord, Observer};
use crate::schedule::OptimizerChoice;
use crate::standardize::ChannelStats;
use atelier_models::AnyBackbone;
use atelier_models::spatial_transformer::{SpatialTransformer, SpatialTransformerConfig};

/// Per-facet logits for a batch (example indices) of a given epoch, on the training device.
type TrainForward<'a, M> = dyn Fn(&M, &[usize], usize) -> Result<Vec<Tensor<2>>, TrainError> + 'a;
/// Per-facet logits for a batch of example indices, without autodiff.
type Predict<'a, M> = dyn Fn(&M, &[usize]) -> Result<Vec<Tensor<2>>, TrainError> + 'a;
/// Per-facet logits for a batch of example indices with the model already chosen.
type PredictBatch<'a> = dyn Fn(&[usize]) -> Result<Vec<Tensor<2>>, TrainError> + 'a;

/// What a finished run produced.
pub struct TrainOutcome {
    /// The best epoch's network, on a device without autodiff, ready for inference.
    pub net: FacetNet,
    pub input: InputConfig,
    /// Per facet, the loss weight of each class (in label order).
    pub class_weights: Vec<Vec<f64>>,
    pub history: Vec<EpochRecord>,
    pub best_epoch: usize,
    pub stopped_early: bool,
    /// Probabilities of the best epoch's network for every example of the dataset.
    pub probabilities: Probabilities,
    pub evaluation: Vec<FacetEvaluation>,
}

/// Trains (or resumes, when `checkpoint_dir` holds a run with the same configuration) and
/// evaluates the best epoch on every image.
///
/// `feature_cache` is a folder where frozen-backbone features are kept between runs (see
/// [`features::FeatureCache`]).
pub fn train(
    dataset: &Dataset,
    config: &TrainConfig,
    checkpoint_dir: &Path,
    feature_cache: Option<&Path>,
    observer: &mut dyn Observer,
) -> Result<TrainOutcome, TrainError> {
    validate(dataset, config)?;
    let device = crate::device::device_for(config.device)?;
    let checkpoints = Checkpoints::open(checkpoint_dir, config)?;
    let plan = Plan::new(dataset, config)?;
    let modules = Modules::init(dataset, config, &device)?;
    let input = InputConfig::new(
        config.image_size,
        atelier_models::Backbone::normalization(&modules.backbone),
    );
    let context = FitContext {
        dataset,
        config,
        parts: &plan.parts,
        fit_indices: &plan.fit_indices,
        validation_indices: &plan.validation_indices,
        class_weights: &plan.loss_weights,
        checkpoints: &checkpoints,
    };
    let (net, state, probabilities) = if config.caches_features() {
        fit_cached_heads(&context, modules, &input, feature_cache, &device, observer)?
    } else {
        fit_network(&context, modules, &input, &device, observer)?
    };
    let evaluation = evaluate(dataset, &probabilities);
    Ok(TrainOutcome {
        net,
        input,
        class_weights: plan.class_weights,
        history: state.history,
        best_epoch: state.best_epoch,
        stopped_early: state.stopped_early,
        probabilities,
        evaluation,
    })
}

/// Which images a run fits on and validates with, and the class weights of its loss.
struct Plan {
    parts: Vec<Part>,
    fit_indices: Vec<usize>,
    validation_indices: Vec<usize>,
    class_weights: Vec<Vec<f64>>,
    loss_weights: Vec<Vec<f32>>,
}

impl Plan {
    fn new(dataset: &Dataset, config: &TrainConfig) -> Result<Plan, TrainError> {
        let parts = dataset.parts(config.validation_fraction, config.seed);
        let fit_indices: Vec<usize> = indices_of(&parts, Part::Fit);
        if fit_indices.is_empty() {
            return Err(TrainError::EmptyDataset {
                what: "training images".into(),
                fix: "import images into the train split, with labels for the chosen facets".into(),
            });
        }
        let class_weights: Vec<Vec<f64>> = dataset
            .class_counts(&parts)
            .iter()
            .map(|counts| config.class_weighting.weights(counts))
            .collect();
        let loss_weights = class_weights
            .iter()
            .map(|w| w.iter().map(|&x| x as f32).collect())
            .collect();
        Ok(Plan {
            validation_indices: indices_of(&parts, Part::Validation),
            parts,
            fit_indices,
            class_weights,
            loss_weights,
        })
    }
}

/// The freshly initialised modules of a run.
struct Modules {
    backbone: AnyBackbone,
    heads: FacetHeads,
    spatial_transformer: Option<SpatialTransformer>,
}

impl Modules {
    /// Seeding and building every module in one exclusive section keeps the initial weights a
    /// function of the seed alone, even when another run initialises at the same time.
    fn init(dataset: &Dataset, config: &TrainConfig, device: &Device) -> Result<Self, TrainError> {
        let classes: Vec<usize> = dataset.facets.iter().map(|f| f.labels.len()).collect();
        let pooled = matches!(config.head, HeadKind::Pooled);
        let train_device = device.clone().autodiff();
        init::exclusive(|| {
            device.seed(config.seed);
            let backbone = config.backbone.build(config.weights.as_deref(), device)?;
            let [feature_dim, map_size, _] = BackboneChoice::feature_shape(
                &backbone,
                config.image_size,
                config.feature_tap(),
                device,
            );
            // With detail views the heads read every view's map, stacked along the channels.
            let heads = FacetHeads::new(
                config.head,
                feature_dim * config.views(),
                if pooled { 1 } else { map_size },
                &classes,
                &train_device,
            );
            let spatial_transformer = config
                .spatial_transformer
                .then(|| SpatialTransformerConfig::default().init(&train_device));
            // Parameters are initialised lazily, on first use; draw them now, under the lock.
            materialize(&backbone);
            materialize(&heads);
            if let Some(transformer) = &spatial_transformer {
                materialize(transformer);
            }
            Ok(Modules {
                backbone,
                heads,
                spatial_transformer,
            })
        })
    }
}

/// A frozen backbone: its features are computed once (and cached), standardised with the
/// train split's statistics, and only the heads train on them; the heads are then folded back
/// to read raw maps (see `crate::standardize`).
fn fit_cached_heads(
    context: &FitContext,
    modules: Modules,
    input: &InputConfig,
    feature_cache: Option<&Path>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<(FacetNet, RunState, Probabilities), TrainError> {
    let (dataset, config) = (context.dataset, context.config);
    let train_device = device.clone().autodiff();
    let mut table = extract_views(
        context,
        &modules.backbone,
        input,
        feature_cache,
        device,
        observer,
    )?;
    let train_rows: Vec<usize> = context
        .fit_indices
        .iter()
        .chain(context.validation_indices)
        .copied()
        .collect();
    let stats = ChannelStats::of(&table, &train_rows);
    stats.apply(&mut table);
    let flip = config.augmentation.horizontal_flip;
    let train_forward = |heads: &FacetHeads, batch: &[usize], epoch: usize| {
        let flips: Vec<bool> = batch
            .iter()
            .map(|&i| flip && augmentation_seed(config.seed, epoch, i) % 2 == 1)
            .collect();
        Ok(heads.forward(table.batch_flipped(batch, &flips, &train_device)))
    };
    let predict =
        |heads: &FacetHeads, batch: &[usize]| Ok(heads.valid().forward(table.batch(batch, device)));
    let (heads, state) = fit(context, modules.heads, &train_forward, &predict, observer)?;
    let all: Vec<usize> = (0..dataset.examples.len()).collect();
    let batch_predict = |batch: &[usize]| predict(&heads, batch);
    let probabilities = predict_all(&all, config.batch_size, &batch_predict, observer)?;
    // The runner attaches the dress locator it placed the detail views with.
    let net = FacetNet::new(
        modules.backbone,
        heads.valid().fold_standardization(&stats),
        false,
        config.feature_tap(),
        None,
        device,
    );
    Ok((net, state, probabilities))
}

/// The feature table of every example: the whole photo's map, then each detail view's,
/// stacked along the channels.
fn extract_views(
    context: &FitContext,
    backbone: &AnyBackbone,
    input: &InputConfig,
    feature_cache: Option<&Path>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<features::FeatureTable, TrainError> {
    let config = context.config;
    // The locator needs whole maps, so a detail-view model never caches pooled ones.
    let pool_features = matches!(config.head, HeadKind::Pooled) && config.detail_crops.is_empty();
    let cache = feature_cache
        .map(|root| features::FeatureCache::new(root, config, input, pool_features))
        .transpose()?;
    let mut extract_view = |view: View| {
        features::extract(
            backbone,
            &context.dataset.examples,
            view,
            input,
            config.feature_tap(),
            pool_features,
            cache.as_ref(),
            device,
            observer,
        )
    };
    let mut table = extract_view(View::Whole)?;
    for view in 0..config.detail_crops.len() {
        table = table.concat_channels(&extract_view(View::Detail(view))?);
    }
    Ok(table)
}

/// Images go through the whole network every epoch, augmented; the backbone trains unless it
/// is frozen.
fn fit_network(
    context: &FitContext,
    modules: Modules,
    input: &InputConfig,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<(FacetNet, RunState, Probabilities), TrainError> {
    let (dataset, config) = (context.dataset, context.config);
    let train_device = device.clone().autodiff();
    let mut net = FacetNet {
        spatial_transformer: modules.spatial_transformer,
        backbone: modules.backbone.to_device(&train_device),
        heads: modules.heads,
        feature_tap: config.feature_tap(),
        locator: None,
    };
    if config.freeze_backbone {
        net.backbone = net.backbone.freeze();
    }
    let train_forward = |net: &FacetNet, batch: &[usize], epoch: usize| {
        let planes = batch
            .par_iter()
            .map(|&i| {
                let example = &dataset.examples[i];
                let seed = augmentation_seed(config.seed, epoch, i);
                load_rgb(&example.path)
                    .map(|rgb| train_planes(&rgb, input, &config.augmentation, seed))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(net.forward(to_batch(&planes, &train_device)))
    };
    let predict = |net: &FacetNet, batch: &[usize]| {
        let images = eval_images(dataset, batch, input, device)?;
        Ok(net.valid().forward(images))
    };
    let (net, state) = fit(context, net, &train_forward, &predict, observer)?;
    let valid = net.valid();
    let all: Vec<usize> = (0..dataset.examples.len()).collect();
    let batch_predict = |batch: &[usize]| {
        let images = eval_images(dataset, batch, input, device)?;
        Ok(valid.forward(images))
    };
    let probabilities = predict_all(&all, config.batch_size, &batch_predict, observer)?;
    Ok((valid, state, probabilities))
}

fn validate(dataset: &Dataset, config: &TrainConfig) -> Result<(), TrainError> {
    config.validate()?;
    if dataset.facets.is_empty() {
        return Err(TrainError::EmptyDataset {
            what: "facets".into(),
            fix: "import labelled images first (`atelier import`)".into(),
        });
    }
    for facet in &dataset.facets {
        if facet.labels.len() < 2 {
            return Err(TrainError::Config(format!(
                "facet `{}` has {} label(s); a classifier needs at least 2 (leave it out of the \
                 run's facets)",
                facet.name,
                facet.labels.len()
            )));
        }
    }
    Ok(())
}

fn indices_of(parts: &[Part], part: Part) -> Vec<usize> {
    parts
        .iter()
        .enumerate()
        .filter(|(_, p)| **p == part)
        .map(|(i, _)| i)
        .collect()
}

fn eval_images(
    dataset: &Dataset,
    batch: &[usize],
    input: &InputConfig,
    device: &Device,
) -> Result<Tensor<4>, TrainError> {
    let planes = batch
        .par_iter()
        .map(|&i| load_rgb(&dataset.examples[i].path).map(|rgb| eval_planes(&rgb, input)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(to_batch(&planes, device))
}

/// Softmax probabilities for `indices`, computed `batch_size` at a time.
fn predict_all(
    indices: &[usize],
    batch_size: usize,
    predict: &PredictBatch,
    observer: &mut dyn Observer,
) -> Result<Probabilities, TrainError> {
    observer.phase("predict", indices.len() as u64);
    let mut probabilities: Probabilities = Vec::new();
    let mut done = 0;
    for batch in indices.chunks(batch_size.max(1)) {
        let logits = predict(batch)?;
        if probabilities.is_empty() {
            probabilities = vec![Vec::with_capacity(indices.len()); logits.len()];
        }
        for (facet, logits) in logits.into_iter().enumerate() {
            let [rows, classes] = logits.dims();
            let values = softmax(logits, 1)
                .into_data()
                .try_into_vec::<f32>()
                .map_err(|e| TrainError::Config(format!("model output is not float32: {e:?}")))?;
            for row in 0..rows {
                probabilities[facet].push(values[row * classes..][..classes].to_vec());
            }
        }
        done += batch.len() as u64;
        observer.advance(done, None);
    }
    observer.phase_end();
    Ok(probabilities)
}

struct FitContext<'a> {
    dataset: &'a Dataset,
    config: &'a TrainConfig,
    parts: &'a [Part],
    fit_indices: &'a [usize],
    validation_indices: &'a [usize],
    class_weights: &'a [Vec<f32>],
    checkpoints: &'a Checkpoints,
}

fn optimizer(config: &TrainConfig) -> ModuleOptimizer {
    match config.optimizer {
        OptimizerChoice::AdamW { weight_decay } => FusedAdamW {
            weight_decay: weight_decay as f32,
            ..FusedAdamW::default()
        }
        .init(),
        OptimizerChoice::Sgd {
            momentum,
            weight_decay,
        } => SgdConfig::new()
            .with_momentum(Some(MomentumConfig::new().with_momentum(momentum)))
            .with_weight_decay(
                (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
            )
            .init(),
    }
}

/// Runs the epochs from the last checkpoint (or the start); returns the best epoch's module
/// and the run's state.
fn fit<M: Module + Clone>(
    context: &FitContext,
    initial: M,
    train_forward: &TrainForward<M>,
    predict: &Predict<M>,
    observer: &mut dyn Observer,
) -> Result<(M, RunState), TrainError> {
    let config = context.config;
    let template = initial.clone();
    let (mut module, mut optim, mut state) = resume(context, initial)?;
    while state.completed_epochs < config.epochs && !state.stopped_early {
        let epoch = state.completed_epochs;
        let started = Instant::now();
        let (next, train_loss, learning_rate) =
            train_epoch(context, module, &mut optim, train_forward, epoch, observer)?;
        module = next;
        let validation_score = validation_score(context, &module, predict)?;
        let record = EpochRecord {
            epoch: epoch + 1,
            learning_rate,
            train_loss,
            validation_macro_f1: validation_score,
            seconds: started.elapsed().as_secs_f64(),
        };
        observer.epoch_end(&record);
        end_epoch(&mut state, record, config.patience);
        context.checkpoints.save(&state, &module, &optim)?;
        observer.checkpoint_saved(context.checkpoints.dir());
    }
    let best = if state.best_epoch == state.completed_epochs {
        module
    } else {
        context
            .checkpoints
            .load_module(template, state.best_epoch)?
    };
    Ok((best, state))
}

/// The module, optimiser and state to go on from: the last checkpoint's, or fresh ones.
fn resume<M: Module + Clone>(
    context: &FitContext,
    module: M,
) -> Result<(M, ModuleOptimizer, RunState), TrainError> {
    let optim = optimizer(context.config);
    let Some(saved) = context.checkpoints.state()? else {
        let state = RunState {
            completed_epochs: 0,
            history: Vec::new(),
            best_epoch: 0,
            best_score: f64::NEG_INFINITY,
            stopped_early: false,
        };
        return Ok((module, optim, state));
    };
    let checkpoints = context.checkpoints;
    let module = checkpoints.load_module(module, saved.completed_epochs)?;
    let optim = checkpoints.load_optimizer(optim, saved.completed_epochs)?;
    Ok((module, optim, saved))
}

/// One pass over the fit images in a seeded order; returns the module, the mean loss and the
/// last learning rate.
fn train_epoch<M: Module + Clone>(
    context: &FitContext,
    mut module: M,
    optim: &mut ModuleOptimizer,
    train_forward: &TrainForward<M>,
    epoch: usize,
    observer: &mut dyn Observer,
) -> Result<(M, f64, f64), TrainError> {
    let config = context.config;
    let batch_size = config.batch_size;
    let steps_per_epoch = context.fit_indices.len().div_ceil(batch_size);
    let mut order = context.fit_indices.to_vec();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(
        config.seed ^ (epoch as u64).wrapping_mul(0xA24B_AED4_963E_E407),
    ));
    observer.phase(
        &format!("epoch {}/{}", epoch + 1, config.epochs),
        order.len() as u64,
    );
    let (mut loss_sum, mut loss_count, mut done) = (0.0, 0usize, 0u64);
    let mut learning_rate = 0.0;
    for (step_in_epoch, batch) in order.chunks(batch_size).enumerate() {
        if observer.stop_requested() {
            return Err(TrainError::Stopped {
                completed_epochs: epoch,
            });
        }
        let step = epoch * steps_per_epoch + step_in_epoch;
        learning_rate =
            config
                .schedule
                .rate(config.learning_rate, step, steps_per_epoch, config.epochs);
        let loss = batch_loss(context, train_forward(&module, batch, epoch)?, batch);
        loss_sum += f64::from(loss.clone().into_scalar::<f32>());
        loss_count += 1;
        let gradients = GradientsParams::from_grads(loss.backward(), &module);
        module = optim.step(learning_rate, module, gradients);
        done += batch.len() as u64;
        observer.advance(done, Some(loss_sum / loss_count as f64));
    }
    observer.phase_end();
    Ok((module, loss_sum / loss_count.max(1) as f64, learning_rate))
}

/// The sum over facets of each facet's loss on a batch.
fn batch_loss(context: &FitContext, logits: Vec<Tensor<2>>, batch: &[usize]) -> Tensor<1> {
    let config = context.config;
    logits
        .into_iter()
        .enumerate()
        .map(|(facet, logits)| {
            let targets: Vec<Option<usize>> = batch
                .iter()
                .map(|&i| context.dataset.examples[i].targets[facet])
                .collect();
            facet_loss(
                logits,
                &targets,
                &context.class_weights[facet],
                config.target_loss(),
            )
        })
        .reduce(|sum, term| sum + term)
        .expect("at least one facet")
}

/// Mean macro-F1 over the facets on the validation part; `None` without one.
fn validation_score<M>(
    context: &FitContext,
    module: &M,
    predict: &Predict<M>,
) -> Result<Option<f64>, TrainError> {
    if context.validation_indices.is_empty() {
        return Ok(None);
    }
    let probabilities = predict_all(
        context.validation_indices,
        context.config.batch_size,
        &|batch| predict(module, batch),
        &mut crate::progress::Silent,
    )?;
    Ok(Some(mean_macro_f1(
        context.dataset,
        context.parts,
        Part::Validation,
        context.validation_indices,
        &probabilities,
    )))
}

/// Records a finished epoch: the best one so far by validation score (without a validation
/// part the last epoch is the model), and early stopping after `patience` epochs without one.
fn end_epoch(state: &mut RunState, record: EpochRecord, patience: Option<usize>) {
    let epoch = record.epoch;
    let score = record.validation_macro_f1.unwrap_or((epoch - 1) as f64);
    state.history.push(record);
    state.completed_epochs = epoch;
    if score > state.best_score {
        state.best_score = score;
        state.best_epoch = epoch;
    } else if let Some(patience) = patience
        && state.completed_epochs - state.best_epoch >= patience
    {
        state.stopped_early = true;
    }
}
