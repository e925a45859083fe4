//! The similarity embedding: a small network over frozen backbone features of the dress crop,
//! trained with the triplet hinge on triplets mined inside batches of designs (DeepRank's
//! loss, batch construction of Hermans et al. 2017: P designs, K photos each), and the numbers
//! that judge an embedding on designs it never saw.
//!
//! - [`EmbeddingNet`]: standardised pooled features -> hidden layer -> unit-length embedding.
//!   The standardisation is folded into the first layer after training, so the saved network
//!   reads raw pooled features ([`crate::standardize`]).
//! - [`held_out_design`]: a hash of (seed, design id) keeps a fraction of the designs out of
//!   training entirely; every retrieval number is measured on them.
//! - [`recall_at`] (the In-shop protocol: each photo of a design with two or more photos
//!   queries all the others), [`triplet_accuracy`] and [`swap_accuracy`].

use std::collections::BTreeMap;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, ModuleOptimizer};

use crate::fused_adamw::FusedAdamW;
use burn::prelude::*;
use burn::tensor::activation::relu;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::features::FeatureTable;
use crate::metric::{Mining, Triplet, l2_normalize, mine, pairwise_distances, triplet_loss};
use crate::progress::{EpochRecord, Observer};
use crate::standardize::ChannelStats;

/// The settings of a similarity run; [`Default`] holds every default once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimilarityConfig {
    /// Length of the embedding.
    pub embedding_dim: usize,
    /// Width of the hidden layer.
    pub hidden: usize,
    /// The triplet hinge's margin, in squared distance between unit vectors (0 to 4).
    pub margin: f32,
    pub epochs: usize,
    /// Designs per batch (P).
    pub designs_per_batch: usize,
    /// Photos per design in a batch (K); designs with fewer give all they have.
    pub photos_per_design: usize,
    pub learning_rate: f64,
    pub mining: Mining,
    /// Exponent of the generalised-mean pooling of the backbone map.
    pub gem_p: f32,
    /// 0: the network reads the crop's map pooled to one vector (GeM). N: it reads the map
    /// averaged over an N x N grid, the cells' vectors side by side, which keeps where on the
    /// dress each feature is (neckline at the top, hem at the bottom).
    pub grid: usize,
    /// Share of the designs held out of training; the retrieval numbers are theirs.
    pub eval_fraction: f64,
    /// Hard negatives from the whole training set: from the second epoch on, each batch is a
    /// design and the designs nearest to it under the current embedding (instead of designs
    /// drawn at random), so the in-batch mining meets the most confusable designs.
    pub neighbour_batches: bool,
    /// Weight of the facet descriptor in the embedding (see [`crate::facet_probe`]): linear
    /// probes of the crop's map learn the photos' current labels, and their probabilities sit
    /// beside the triplet-trained embedding. 0 leaves them out.
    pub facet_weight: f32,
    /// Side of the grid the probes read the crop's map averaged over (at most the map's own,
    /// 7 for 224-pixel crops at stride 32: the whole map).
    pub facet_grid: usize,
    /// Whether the embedding network also reads the colours of the middle of the dress
    /// ([`crate::colour`]).
    pub colour: bool,
    /// Weight of those colours as a descriptor of their own in the embedding (0 leaves them
    /// out).
    pub colour_weight: f32,
    /// Nearest catalogue photos whose mean cosine measures how crowded a photo's
    /// neighbourhood is, for the hubness correction searches rank with
    /// ([`crate::hubness`]); 0 ranks by plain cosine.
    pub hub_neighbours: usize,
    pub seed: u64,
}

impl Default for SimilarityConfig {
    fn default() -> Self {
        Self {
            embedding_dim: 128,
            hidden: 512,
            margin: 0.2,
            epochs: 120,
            designs_per_batch: 24,
            photos_per_design: 4,
            learning_rate: 1e-3,
            mining: Mining::SemiHard,
            gem_p: 3.0,
            grid: 0,
            eval_fraction: 0.2,
            neighbour_batches: false,
            facet_weight: 1.5,
            facet_grid: 7,
            colour: true,
            colour_weight: 1.0,
            hub_neighbours: 10,
            seed: 1,
        }
    }
}

impl SimilarityConfig {
    /// Whether a run reads the dress's colours, as input or as a part of the embedding.
    pub fn reads_colours(&self) -> bool {
        self.colour || self.colour_weight > 0.0
    }

    /// Refuses settings that cannot work, naming the field.
    pub fn validate(&self) -> Result<(), TrainError> {
        let problem =
            |field: &'static str, problem: String| Err(TrainError::Setting { field, problem });
        if self.embedding_dim == 0 || self.hidden == 0 {
            return problem("embedding_dim", "and hidden must be at least 1".into());
        }
        if !(self.margin > 0.0 && self.margin < 4.0) {
            return problem(
                "margin",
                format!("{}: use a value in (0, 4), e.g. 0.2", self.margin),
            );
        }
        if self.epochs == 0 {
            return problem("epochs", "0: use at least 1".into());
        }
        if self.designs_per_batch < 2 || self.photos_per_design < 2 {
            return problem(
                "designs_per_batch",
                "and photos_per_design must be at least 2: a triplet needs two designs and \
                 two photos of one"
                    .into(),
            );
        }
        if !(self.gem_p >= 1.0 && self.gem_p.is_finite()) {
            return problem("gem_p", format!("{}: use 1 (average) or more", self.gem_p));
        }
        if self.grid > 7 {
            return problem(
                "grid",
                format!("{}: use 0 (one pooled vector) to 7", self.grid),
            );
        }
        if !(self.facet_weight >= 0.0 && self.facet_weight.is_finite()) {
            return problem(
                "facet_weight",
                format!(
                    "{}: use 0 (no facet descriptor) or more, e.g. 1",
                    self.facet_weight
                ),
            );
        }
        if !(self.colour_weight >= 0.0 && self.colour_weight.is_finite()) {
            return problem(
                "colour_weight",
                format!(
                    "{}: use 0 (no colour descriptor) or more, e.g. 0.5",
                    self.colour_weight
                ),
            );
        }
        if !(1..=7).contains(&self.facet_grid) {
            return problem("facet_grid", format!("{}: use 1 to 7", self.facet_grid));
        }
        if !(0.0..1.0).contains(&self.eval_fraction) {
            return problem(
                "eval_fraction",
                format!("{} is outside [0, 1) (0.2 is usual)", self.eval_fraction),
            );
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return problem(
                "learning_rate",
                format!("{} is not a positive rate", self.learning_rate),
            );
        }
        Ok(())
    }
}

/// Whether `design` is held out of similarity training: a hash of the seed and the design id
/// below `fraction`, so the split is the same on every run with the seed and never depends on
/// which other designs exist.
pub fn held_out_design(design: &str, seed: u64, fraction: f64) -> bool {
    crate::data::hash_unit(design, seed) < fraction
}

/// Pooled features -> hidden layer (ReLU) -> unit-length embedding.
#[derive(Module, Debug)]
pub struct EmbeddingNet {
    hidden: Linear,
    output: Linear,
}

impl EmbeddingNet {
    pub fn new(inputs: usize, config: &SimilarityConfig, device: &Device) -> Self {
        Self {
            hidden: LinearConfig::new(inputs, config.hidden).init(device),
            output: LinearConfig::new(config.hidden, config.embedding_dim).init(device),
        }
    }

    /// Unit-length embeddings `[batch, dim]` of pooled features `[batch, inputs]`.
    pub fn forward(&self, pooled: Tensor<2>) -> Tensor<2> {
        l2_normalize(self.output.forward(relu(self.hidden.forward(pooled))))
    }

    /// The network reading raw features that behaves like this one reading features
    /// standardised with `stats`.
    pub fn fold_standardization(self, stats: &ChannelStats) -> Self {
        Self {
            hidden: stats.fold_into_linear(self.hidden, 1),
            ..self
        }
    }
}

/// A pooled feature table: `[channels, 1, 1]` per row.
fn pooled_dims(table: &FeatureTable) -> Result<usize, TrainError> {
    match table.dims {
        [channels, 1, 1] => Ok(channels),
        dims => Err(TrainError::Config(format!(
            "similarity training reads pooled features, not {dims:?} maps"
        ))),
    }
}

/// Trains an embedding on the rows `train_rows` of `pooled`, where `groups[row]` is the
/// design of each row (photos of one design are similar; every other design is dissimilar),
/// and on `stored`, triplets people stored (rows of `pooled`), in batches of
/// [`STORED_PER_BATCH`] after each epoch's design batches. Returns the network, folded to
/// read raw pooled features.
pub fn train_embedding(
    pooled: &FeatureTable,
    groups: &[u64],
    train_rows: &[usize],
    stored: &[Triplet],
    config: &SimilarityConfig,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<EmbeddingNet, TrainError> {
    config.validate()?;
    let inputs = pooled_dims(pooled)?;
    let designs = designs_with_pairs(groups, train_rows);
    if designs.len() < 2 {
        return Err(TrainError::EmptyDataset {
            what: "designs with two or more training photos".into(),
            fix: "import photos with a design id (the manifest's `design` column), several per \
                  design"
                .into(),
        });
    }
    let stats = ChannelStats::of(pooled, train_rows);
    let mut table = pooled.clone();
    stats.apply(&mut table);
    let train_device = device.clone().autodiff();
    let mut net = crate::init::exclusive(|| {
        train_device.seed(config.seed);
        let net = EmbeddingNet::new(inputs, config, &train_device);
        crate::init::materialize(&net);
        net
    });
    let mut optimizer: ModuleOptimizer = FusedAdamW::default().init();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut stored = stored.to_vec();
    for epoch in 0..config.epochs {
        let started = std::time::Instant::now();
        let batches = if config.neighbour_batches && epoch > 0 {
            let current = embed(&net.valid(), &table, device);
            neighbour_batches(&designs, &current, config, &mut rng)
        } else {
            epoch_batches(&designs, config, &mut rng)
        };
        stored.shuffle(&mut rng);
        observer.phase(
            &format!("similarity epoch {}/{}", epoch + 1, config.epochs),
            batches.len() as u64,
        );
        let rate = cosine_rate(config, epoch);
        let mut losses = Vec::new();
        for (done, batch) in batches.iter().enumerate() {
            if observer.stop_requested() {
                return Err(TrainError::Stopped {
                    completed_epochs: epoch,
                });
            }
            let (next, loss) = train_step(
                net,
                &mut optimizer,
                &table,
                groups,
                batch,
                config,
                rate,
                &train_device,
            );
            net = next;
            losses.extend(loss);
            observer.advance(done as u64 + 1, losses.last().copied());
        }
        for chunk in stored.chunks(STORED_PER_BATCH) {
            let (next, loss) = stored_step(
                net,
                &mut optimizer,
                &table,
                chunk,
                config.margin,
                rate,
                &train_device,
            );
            net = next;
            losses.push(loss);
        }
        observer.phase_end();
        observer.epoch_end(&EpochRecord {
            epoch: epoch + 1,
            learning_rate: rate,
            train_loss: losses.iter().sum::<f64>() / losses.len().max(1) as f64,
            validation_macro_f1: None,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok(net.valid().fold_standardization(&stats))
}

/// The learning rate of an epoch: half a cosine from the base rate to 0.
fn cosine_rate(config: &SimilarityConfig, epoch: usize) -> f64 {
    let progress = epoch as f64 / config.epochs as f64;
    config.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// One optimiser step on a batch of rows; the loss is `None` when the batch yields no
/// triplet.
#[allow(clippy::too_many_arguments)]
fn train_step(
    net: EmbeddingNet,
    optimizer: &mut ModuleOptimizer,
    table: &FeatureTable,
    groups: &[u64],
    batch: &[usize],
    config: &SimilarityConfig,
    rate: f64,
    device: &Device,
) -> (EmbeddingNet, Option<f64>) {
    let [channels, _, _] = table.dims;
    let inputs = table.batch(batch, device).reshape([batch.len(), channels]);
    let embeddings = net.forward(inputs);
    let distances: Vec<f32> = pairwise_distances(embeddings.clone())
        .into_data()
        .try_into_vec()
        .expect("f32 distances");
    let batch_groups: Vec<u64> = batch.iter().map(|&row| groups[row]).collect();
    let triplets = mine(&distances, &batch_groups, config.mining);
    if triplets.is_empty() {
        return (net, None);
    }
    let (net, value) = step_on(net, optimizer, embeddings, &triplets, config.margin, rate);
    (net, Some(value))
}

/// Stored triplets per optimiser step.
pub const STORED_PER_BATCH: usize = 64;

/// One optimiser step on stored triplets (rows of `table`); returns the loss.
fn stored_step(
    net: EmbeddingNet,
    optimizer: &mut ModuleOptimizer,
    table: &FeatureTable,
    triplets: &[Triplet],
    margin: f32,
    rate: f64,
    device: &Device,
) -> (EmbeddingNet, f64) {
    let mut rows: Vec<usize> = triplets
        .iter()
        .flat_map(|t| [t.anchor, t.positive, t.negative])
        .collect();
    rows.sort_unstable();
    rows.dedup();
    let at = |row: usize| rows.binary_search(&row).expect("listed row");
    let local: Vec<Triplet> = triplets
        .iter()
        .map(|t| Triplet {
            anchor: at(t.anchor),
            positive: at(t.positive),
            negative: at(t.negative),
        })
        .collect();
    let [channels, _, _] = table.dims;
    let inputs = table.batch(&rows, device).reshape([rows.len(), channels]);
    let embeddings = net.forward(inputs);
    step_on(net, optimizer, embeddings, &local, margin, rate)
}

/// The triplet loss of `triplets` (rows of `embeddings`), and one optimiser step on it.
fn step_on(
    net: EmbeddingNet,
    optimizer: &mut ModuleOptimizer,
    embeddings: Tensor<2>,
    triplets: &[Triplet],
    margin: f32,
    rate: f64,
) -> (EmbeddingNet, f64) {
    let device = embeddings.device();
    let rows = |pick: fn(&Triplet) -> usize| {
        let indices: Vec<i64> = triplets.iter().map(|t| pick(t) as i64).collect();
        let indices =
            Tensor::<1, Int>::from_data(TensorData::new(indices, [triplets.len()]), &device);
        embeddings.clone().select(0, indices)
    };
    let loss = triplet_loss(
        rows(|t| t.anchor),
        rows(|t| t.positive),
        rows(|t| t.negative),
        margin,
    );
    let value = f64::from(loss.clone().into_scalar::<f32>());
    let gradients = GradientsParams::from_grads(loss.backward(), &net);
    (optimizer.step(rate, net, gradients), value)
}

/// The designs of `rows` that have two or more of them, each with its rows in order.
fn designs_with_pairs(groups: &[u64], rows: &[usize]) -> Vec<Vec<usize>> {
    let mut by_design: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for &row in rows {
        by_design.entry(groups[row]).or_default().push(row);
    }
    by_design
        .into_values()
        .filter(|rows| rows.len() >= 2)
        .collect()
}

/// One epoch's batches of designs that look alike: in a seeded order, each design not yet
/// placed starts a batch with the `designs_per_batch - 1` unplaced designs whose mean
/// embeddings (of `embeddings`, one per table row) are closest to its own; photos per design
/// as in [`epoch_batches`].
fn neighbour_batches(
    designs: &[Vec<usize>],
    embeddings: &[Vec<f32>],
    config: &SimilarityConfig,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<usize>> {
    let centre = |rows: &[usize]| -> Vec<f32> {
        let mut sum = vec![0.0f32; embeddings[rows[0]].len()];
        for &row in rows {
            for (s, v) in sum.iter_mut().zip(&embeddings[row]) {
                *s += v;
            }
        }
        let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        sum.iter().map(|v| v / norm).collect()
    };
    let centres: Vec<Vec<f32>> = designs.iter().map(|rows| centre(rows)).collect();
    let mut order: Vec<usize> = (0..designs.len()).collect();
    order.shuffle(rng);
    let mut placed = vec![false; designs.len()];
    let mut groups = Vec::new();
    for &first in &order {
        if placed[first] {
            continue;
        }
        placed[first] = true;
        let mut near: Vec<(f32, usize)> = (0..designs.len())
            .filter(|&d| !placed[d])
            .map(|d| {
                let dot: f32 = centres[first]
                    .iter()
                    .zip(&centres[d])
                    .map(|(a, b)| a * b)
                    .sum();
                (dot, d)
            })
            .collect();
        near.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut group = vec![first];
        for &(_, d) in near.iter().take(config.designs_per_batch - 1) {
            placed[d] = true;
            group.push(d);
        }
        groups.push(group);
    }
    groups
        .into_iter()
        .filter(|group| group.len() >= 2)
        .map(|group| batch_photos(designs, &group, config, rng))
        .collect()
}

/// A batch of the designs `chosen`: up to `photos_per_design` photos of each, drawn in a
/// seeded order.
fn batch_photos(
    designs: &[Vec<usize>],
    chosen: &[usize],
    config: &SimilarityConfig,
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    chosen
        .iter()
        .flat_map(|&design| {
            let mut photos = designs[design].clone();
            photos.shuffle(rng);
            photos.truncate(config.photos_per_design);
            photos
        })
        .collect()
}

/// One epoch's batches: the designs in a seeded order, `designs_per_batch` at a time, each
/// with up to `photos_per_design` of its photos (drawn in a seeded order). A last batch with
/// a single design is dropped: it has no negative.
fn epoch_batches(
    designs: &[Vec<usize>],
    config: &SimilarityConfig,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..designs.len()).collect();
    order.shuffle(rng);
    order
        .chunks(config.designs_per_batch)
        .filter(|chunk| chunk.len() >= 2)
        .map(|chunk| batch_photos(designs, chunk, config, rng))
        .collect()
}

/// Unit-length embeddings of every row of `pooled` (`[rows][dim]`), in batches.
pub fn embed(net: &EmbeddingNet, pooled: &FeatureTable, device: &Device) -> Vec<Vec<f32>> {
    let [channels, _, _] = pooled.dims;
    let rows: Vec<usize> = (0..pooled.len()).collect();
    let mut out = Vec::with_capacity(rows.len());
    for batch in rows.chunks(256) {
        let inputs = pooled.batch(batch, device).reshape([batch.len(), channels]);
        let values: Vec<f32> = net.forward(inputs).into_data().try_into_vec().expect("f32");
        out.extend(
            values
                .chunks(values.len() / batch.len())
                .map(<[f32]>::to_vec),
        );
    }
    out
}

/// The embedding a similarity model answers with: the triplet-trained `embedding` and each
/// unit-length descriptor times its weight side by side, scaled to unit length. The cosine of
/// two such embeddings is the weighted mean of the parts' cosines.
pub fn joined(embedding: Tensor<2>, descriptors: Vec<(Tensor<2>, f32)>) -> Tensor<2> {
    if descriptors.is_empty() {
        return embedding;
    }
    let mut parts = vec![embedding];
    parts.extend(
        descriptors
            .into_iter()
            .map(|(descriptor, weight)| descriptor * weight),
    );
    l2_normalize(Tensor::cat(parts, 1))
}

/// The off-the-shelf embedding: each pooled row scaled to unit length.
pub fn unit_rows(pooled: &FeatureTable) -> Vec<Vec<f32>> {
    let [channels, _, _] = pooled.dims;
    pooled
        .data
        .chunks(channels)
        .map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter().map(|v| v / norm).collect()
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Unit-length embeddings and how a search ranks them: by cosine plus the bias of the photo
/// found ([`crate::hubness`]; photos past the end of `bias` have none).
#[derive(Debug, Clone, Copy)]
pub struct Ranking<'a> {
    pub embeddings: &'a [Vec<f32>],
    pub bias: &'a [f32],
}

impl Ranking<'_> {
    /// How row `found` ranks as an answer to row `query`.
    fn score(&self, query: usize, found: usize) -> f32 {
        let cosine = dot(&self.embeddings[query], &self.embeddings[found]);
        cosine + self.bias.get(found).copied().unwrap_or(0.0)
    }
}

impl<'a> From<&'a [Vec<f32>]> for Ranking<'a> {
    /// Plain cosine.
    fn from(embeddings: &'a [Vec<f32>]) -> Self {
        Ranking {
            embeddings,
            bias: &[],
        }
    }
}

impl<'a> From<&'a Vec<Vec<f32>>> for Ranking<'a> {
    /// Plain cosine.
    fn from(embeddings: &'a Vec<Vec<f32>>) -> Self {
        Ranking::from(embeddings.as_slice())
    }
}

/// Recall@k of the In-shop protocol: every query row whose design has another photo among
/// `gallery` ranks all of `gallery` except itself (see [`Ranking`]); a hit is a photo of the
/// same design in the top `k`. Ties rank by row. `None` without a single query.
pub fn recall_at<'a>(
    ranking: impl Into<Ranking<'a>>,
    groups: &[u64],
    queries: &[usize],
    gallery: &[usize],
    k: usize,
) -> Option<f64> {
    let ranking = ranking.into();
    let mut asked = 0usize;
    let mut hits = 0usize;
    for &query in queries {
        let others: Vec<usize> = gallery.iter().copied().filter(|&g| g != query).collect();
        if !others.iter().any(|&g| groups[g] == groups[query]) {
            continue;
        }
        asked += 1;
        let mut ranked: Vec<(f32, usize)> = others
            .iter()
            .map(|&g| (ranking.score(query, g), g))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        if ranked
            .iter()
            .take(k)
            .any(|&(_, g)| groups[g] == groups[query])
        {
            hits += 1;
        }
    }
    (asked > 0).then(|| hits as f64 / asked as f64)
}

/// The share of `(query, similar, dissimilar)` triplets whose similar photo ranks above the
/// dissimilar one as an answer to the query (see [`Ranking`]). `None` for no triplets.
pub fn triplet_accuracy<'a>(ranking: impl Into<Ranking<'a>>, triplets: &[Triplet]) -> Option<f64> {
    let ranking = ranking.into();
    if triplets.is_empty() {
        return None;
    }
    let right = triplets
        .iter()
        .filter(|t| ranking.score(t.anchor, t.positive) > ranking.score(t.anchor, t.negative))
        .count();
    Some(right as f64 / triplets.len() as f64)
}

/// One swap query: from `query`, among the `candidates` (the photos with the wanted label),
/// is the best match a photo of `sibling` (the design that differs from the query's in just
/// that facet)?
#[derive(Debug, Clone, PartialEq)]
pub struct SwapQuery {
    pub query: usize,
    pub candidates: Vec<usize>,
    pub sibling: u64,
}

/// The share of swap queries whose best-ranked candidate (see [`Ranking`]) is a photo of the
/// sibling design.
pub fn swap_accuracy<'a>(
    ranking: impl Into<Ranking<'a>>,
    groups: &[u64],
    queries: &[SwapQuery],
) -> Option<f64> {
    let ranking = ranking.into();
    if queries.is_empty() {
        return None;
    }
    let right = queries
        .iter()
        .filter(|swap| {
            let best = swap
                .candidates
                .iter()
                .copied()
                .filter(|&c| c != swap.query)
                .max_by(|&a, &b| {
                    ranking
                        .score(swap.query, a)
                        .total_cmp(&ranking.score(swap.query, b))
                        .then(b.cmp(&a))
                });
            best.is_some_and(|best| groups[best] == swap.sibling)
        })
        .count();
    Some(right as f64 / queries.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    /// Unit parts joined with weight w: the cosine of two joined embeddings is
    /// (cos of the embeddings + w² cos of the descriptors) / (1 + w²).
    #[test]
    fn joined_embeddings_weigh_their_parts_by_hand() {
        let device = Device::flex();
        let rows = |values: &[f32], width: usize| {
            Tensor::<1>::from_floats(values, &device).reshape([values.len() / width, width])
        };
        // Embeddings: cos 0.6. Descriptors: cos 0 (orthogonal).
        let embedding = rows(&[1.0, 0.0, 0.6, 0.8], 2);
        let descriptor = rows(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0], 3);
        let out: Vec<f32> = joined(embedding.clone(), vec![(descriptor, 2.0)])
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let (a, b) = (&out[..5], &out[5..]);
        // |(1, 0, 2, 0, 0)| = sqrt 5.
        let root5 = 5f32.sqrt();
        let expected_a = [1.0 / root5, 0.0, 2.0 / root5, 0.0, 0.0];
        for (got, want) in a.iter().zip(expected_a) {
            assert!((got - want).abs() < 1e-6, "{a:?}");
        }
        let cosine: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        assert!((cosine - (0.6 + 4.0 * 0.0) / 5.0).abs() < 1e-6, "{cosine}");
        // Without descriptors the embedding is returned as it is.
        let same: Vec<f32> = joined(embedding, Vec::new())
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(same, vec![1.0, 0.0, 0.6, 0.8]);
    }

    #[test]
    fn held_out_designs_depend_on_the_seed_and_id_only_and_match_the_fraction() {
        let held: Vec<bool> = (0..2000)
            .map(|i| held_out_design(&format!("d{i:06}"), 1, 0.2))
            .collect();
        let share = held.iter().filter(|&&h| h).count() as f64 / held.len() as f64;
        assert!((share - 0.2).abs() < 0.03, "{share}");
        assert_eq!(held_out_design("d000001", 1, 0.2), held[1]);
        assert!(!held_out_design("d000001", 1, 0.0));
        let other_seed: Vec<bool> = (0..2000)
            .map(|i| held_out_design(&format!("d{i:06}"), 2, 0.2))
            .collect();
        assert_ne!(held, other_seed);
    }

    /// Hand-made embeddings: rows 0 and 1 are design 5, rows 2 and 3 design 6, row 4 design 7
    /// (a single photo: never a query, still in the gallery).
    fn toy() -> (Vec<Vec<f32>>, Vec<u64>) {
        let embeddings = vec![
            vec![1.0, 0.0],
            vec![0.6, 0.8],
            vec![0.0, 1.0],
            vec![-1.0, 0.0],
            vec![0.8, 0.6],
        ];
        (embeddings, vec![5, 5, 6, 6, 7])
    }

    #[test]
    fn recall_follows_the_in_shop_protocol_by_hand() {
        let (embeddings, groups) = toy();
        let all: Vec<usize> = (0..5).collect();
        // Query 0: nearest others 4 (0.8), 1 (0.6): rank 2. Query 1: 4 (0.96), then 2 (0.8),
        // then 0 (0.6): rank 3. Query 2: 1 (0.8), 4 (0.6), 0 (0), 3 (0): rank 4 (tie by row).
        // Query 3: 2 (0), 1 (-0.6), ...: rank 1.
        assert_eq!(recall_at(&embeddings, &groups, &all, &all, 1), Some(0.25));
        assert_eq!(recall_at(&embeddings, &groups, &all, &all, 2), Some(0.5));
        assert_eq!(recall_at(&embeddings, &groups, &all, &all, 3), Some(0.75));
        assert_eq!(recall_at(&embeddings, &groups, &all, &all, 4), Some(1.0));
        assert_eq!(recall_at(&embeddings, &groups, &[4], &all, 1), None);
        // A bias of -0.3 on photo 4 (a hub: the nearest photo of queries 0 and 1) puts query
        // 0's partner 1 (0.6) above it (0.8 - 0.3 = 0.5): rank 1. Query 1: 2 (0.8), 4 (0.66),
        // then 0 (0.6): rank 3 still. Query 2: 1 (0.8), 4 (0.3), 0 and 3 (0): rank 4 still.
        // Recall@1 0.5 instead of 0.25, @2 0.5, @3 0.75; and the triplet (0; 1, 4) right.
        let bias = [0.0, 0.0, 0.0, 0.0, -0.3];
        let ranking = Ranking {
            embeddings: &embeddings,
            bias: &bias,
        };
        assert_eq!(recall_at(ranking, &groups, &all, &all, 1), Some(0.5));
        assert_eq!(recall_at(ranking, &groups, &all, &all, 2), Some(0.5));
        assert_eq!(recall_at(ranking, &groups, &all, &all, 3), Some(0.75));
        let triplet = Triplet {
            anchor: 0,
            positive: 1,
            negative: 4,
        };
        assert_eq!(triplet_accuracy(&embeddings, &[triplet]), Some(0.0));
        assert_eq!(triplet_accuracy(ranking, &[triplet]), Some(1.0));
    }

    #[test]
    fn triplet_and_swap_accuracy_by_hand() {
        let (embeddings, groups) = toy();
        let triplets = [
            Triplet {
                anchor: 0,
                positive: 1,
                negative: 2,
            },
            Triplet {
                anchor: 0,
                positive: 1,
                negative: 4,
            },
        ];
        assert_eq!(triplet_accuracy(&embeddings, &triplets), Some(0.5));
        let swaps = [
            // From 0 among {2, 3, 4}: 4 is closest, a photo of design 7.
            SwapQuery {
                query: 0,
                candidates: vec![2, 3, 4],
                sibling: 7,
            },
            // From 3 among {1, 2}: 2 (0) beats 1 (-0.6); design 6 is not the sibling 5.
            SwapQuery {
                query: 3,
                candidates: vec![1, 2],
                sibling: 5,
            },
        ];
        assert_eq!(swap_accuracy(&embeddings, &groups, &swaps), Some(0.5));
    }

    /// Features where each design is a direction plus noise that is larger than the spread
    /// between designs along a few nuisance dimensions: the trained embedding must find the
    /// design directions, and then beats the raw features on held-out designs.
    #[test]
    fn training_separates_designs_it_never_saw() {
        let channels = 24;
        let (mut data, mut groups) = (Vec::new(), Vec::new());
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        use rand::RngExt;
        for design in 0..60u64 {
            let centre: Vec<f32> = (0..8).map(|_| rng.random_range(-1.0..1.0)).collect();
            for _ in 0..4 {
                for &value in &centre {
                    data.push(value + rng.random_range(-0.15..0.15));
                }
                for _ in centre.len()..channels {
                    data.push(rng.random_range(-3.0..3.0));
                }
                groups.push(design);
            }
        }
        let table = FeatureTable {
            dims: [channels, 1, 1],
            data,
        };
        let held: Vec<usize> = (0..groups.len()).filter(|&r| groups[r] >= 45).collect();
        let train: Vec<usize> = (0..groups.len()).filter(|&r| groups[r] < 45).collect();
        let config = SimilarityConfig {
            embedding_dim: 16,
            hidden: 64,
            epochs: 150,
            learning_rate: 3e-3,
            designs_per_batch: 8,
            ..SimilarityConfig::default()
        };
        let device = Device::flex();
        let net =
            train_embedding(&table, &groups, &train, &[], &config, &device, &mut Silent).unwrap();
        let trained = embed(&net, &table, &device);
        let raw = unit_rows(&table);
        let trained_recall = recall_at(&trained, &groups, &held, &held, 1).unwrap();
        let raw_recall = recall_at(&raw, &groups, &held, &held, 1).unwrap();
        assert!(
            trained_recall >= 0.85,
            "trained {trained_recall}, raw {raw_recall}"
        );
        assert!(
            trained_recall > raw_recall + 0.5,
            "trained {trained_recall}, raw {raw_recall}"
        );
        for row in &trained {
            let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4);
        }
    }

    /// Photos whose style (channel 0, +1 or -1) has nothing to do with their design: design
    /// batches alone leave style triplets to chance, and training on stored style triplets
    /// satisfies them. (With photos of both styles in every design, what the network learns
    /// from 30 designs does not carry over to unseen ones; that is the data, not the loop.)
    #[test]
    fn stored_triplets_are_learnt_from() {
        let channels = 12;
        let (mut data, mut groups, mut styles) = (Vec::new(), Vec::new(), Vec::new());
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        use rand::RngExt;
        for design in 0..40u64 {
            let centre: Vec<f32> = (0..3).map(|_| rng.random_range(-0.5..0.5)).collect();
            for photo in 0..4 {
                let style = if (design + photo) % 2 == 0 {
                    1.0f32
                } else {
                    -1.0
                };
                data.push(style + rng.random_range(-0.1..0.1));
                for &value in &centre {
                    data.push(value + rng.random_range(-0.1..0.1));
                }
                for _ in 1 + centre.len()..channels {
                    data.push(rng.random_range(-0.5..0.5));
                }
                groups.push(design);
                styles.push(style);
            }
        }
        let table = FeatureTable {
            dims: [channels, 1, 1],
            data,
        };
        // Each row, the next row of its style from another design, the next of the other style.
        let style_triplets = |rows: &[usize]| -> Vec<Triplet> {
            rows.iter()
                .enumerate()
                .filter_map(|(i, &a)| {
                    let next = |same: bool| {
                        (1..rows.len())
                            .map(|step| rows[(i + step) % rows.len()])
                            .find(|&b| groups[b] != groups[a] && (styles[b] == styles[a]) == same)
                    };
                    Some(Triplet {
                        anchor: a,
                        positive: next(true)?,
                        negative: next(false)?,
                    })
                })
                .collect()
        };
        let train: Vec<usize> = (0..groups.len()).filter(|&r| groups[r] < 30).collect();
        let config = SimilarityConfig {
            embedding_dim: 8,
            hidden: 32,
            epochs: 100,
            learning_rate: 3e-3,
            designs_per_batch: 8,
            ..SimilarityConfig::default()
        };
        let device = Device::flex();
        let stored = style_triplets(&train);
        let accuracy = |learnt: &[Triplet]| {
            let net = train_embedding(
                &table,
                &groups,
                &train,
                learnt,
                &config,
                &device,
                &mut Silent,
            )
            .unwrap();
            triplet_accuracy(&embed(&net, &table, &device), &stored).unwrap()
        };
        let without = accuracy(&[]);
        let with = accuracy(&stored);
        assert!(
            with > 0.95 && without < 0.7,
            "with {with}, without {without}"
        );
    }

    /// Designs 0 and 2 look alike, and so do 1 and 3: neighbour batches pair them.
    #[test]
    fn neighbour_batches_put_look_alike_designs_together() {
        let designs = vec![vec![0, 1], vec![2, 3], vec![4, 5], vec![6, 7]];
        let look = |x: f32, y: f32| vec![x, y];
        let embeddings = vec![
            look(1.0, 0.0),
            look(0.9, 0.1),
            look(0.0, 1.0),
            look(0.1, 0.9),
            look(0.95, 0.05),
            look(1.0, 0.02),
            look(0.05, 1.0),
            look(0.0, 0.97),
        ];
        let config = SimilarityConfig {
            designs_per_batch: 2,
            ..SimilarityConfig::default()
        };
        for seed in 0..4 {
            let batches = neighbour_batches(
                &designs,
                &embeddings,
                &config,
                &mut ChaCha8Rng::seed_from_u64(seed),
            );
            let mut pairs: Vec<Vec<usize>> = batches
                .iter()
                .map(|batch| {
                    let mut d: Vec<usize> = batch.iter().map(|&row| row / 2).collect();
                    d.sort_unstable();
                    d.dedup();
                    d
                })
                .collect();
            pairs.sort();
            assert_eq!(pairs, vec![vec![0, 2], vec![1, 3]], "seed {seed}");
        }
    }

    #[test]
    fn batches_take_p_designs_and_at_most_k_photos_each() {
        let groups: Vec<u64> = vec![0, 0, 0, 0, 0, 1, 1, 2, 3, 3, 4, 4];
        let rows: Vec<usize> = (0..groups.len()).collect();
        let designs = designs_with_pairs(&groups, &rows);
        // Design 2 has one photo: it cannot be a positive pair.
        assert_eq!(designs.len(), 4);
        let config = SimilarityConfig {
            designs_per_batch: 3,
            photos_per_design: 3,
            ..SimilarityConfig::default()
        };
        let batches = epoch_batches(&designs, &config, &mut ChaCha8Rng::seed_from_u64(1));
        // Four designs, three a batch: the second batch would hold one design and is dropped.
        assert_eq!(batches.len(), 1);
        let mut per_design: BTreeMap<u64, usize> = BTreeMap::new();
        for &row in &batches[0] {
            *per_design.entry(groups[row]).or_default() += 1;
        }
        assert_eq!(per_design.len(), 3);
        assert!(
            per_design.values().all(|&n| (2..=3).contains(&n)),
            "{per_design:?}"
        );
    }
}
