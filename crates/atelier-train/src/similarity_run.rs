//! A similarity run from photos to a saved-ready model and its numbers: locate the dress (the
//! locator learns from the train split's dress boxes), cut the square around it, pool the
//! backbone map of the crop, train the embedding on the designs that are not held out, and
//! score the off-the-shelf and the trained embedding side by side on the held-out designs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backbones::BackboneChoice;
use crate::config::{DeviceChoice, Recipe, TrainConfig};
use crate::data::Dataset;
use crate::dress_boxes::{LocatorReport, SureBox, locate_dresses, refine_in_crops, view_maps};
use crate::error::TrainError;
use crate::facet_probe::{
    FacetProbe, FacetTargets, ProbeShape, probe_accuracy, probe_training, train_probes,
};
use crate::features::{self, FeatureTable, View};
use crate::hubness::{self, Hubness};
use crate::input::InputConfig;
use crate::map_fit::LocatorTraining;
use crate::metric::Triplet;
use crate::progress::Observer;
use crate::similarity::{
    Ranking, SimilarityConfig, SwapQuery, held_out_design, joined, recall_at, swap_accuracy,
    train_embedding, triplet_accuracy, unit_rows,
};
use crate::similarity_model::{DRESS_CROP, SimilarityManifest, SimilarityNet};

/// Everything that defines a similarity run, stored with the run and the model. The backbone
/// settings default to the `demo` facet recipe's (frozen EfficientNet-Lite0, stage 6, 224
/// pixels), so a catalogue tagged with it has the whole-photo features cached already.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimilarityRunConfig {
    pub backbone: BackboneChoice,
    /// Pretrained backbone weights; the application fills in EfficientNet-Lite0's.
    pub weights: Option<PathBuf>,
    pub image_size: u32,
    pub feature_stage: Option<usize>,
    pub batch_size: usize,
    pub device: DeviceChoice,
    pub similarity: SimilarityConfig,
}

impl Default for SimilarityRunConfig {
    fn default() -> Self {
        let demo = Recipe::Demo.config();
        Self {
            backbone: demo.backbone,
            weights: None,
            image_size: demo.image_size,
            feature_stage: demo.feature_stage,
            batch_size: demo.batch_size,
            device: demo.device,
            similarity: SimilarityConfig::default(),
        }
    }
}

impl SimilarityRunConfig {
    /// The frozen-backbone facet configuration whose feature extraction (and cache) the run
    /// shares.
    pub fn features(&self) -> TrainConfig {
        TrainConfig {
            backbone: self.backbone,
            weights: self.weights.clone(),
            image_size: self.image_size,
            feature_stage: self.feature_stage,
            batch_size: self.batch_size,
            device: self.device,
            seed: self.similarity.seed,
            freeze_backbone: true,
            ..TrainConfig::default()
        }
    }

    /// Refuses settings that cannot work, naming the field.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.features().validate()?;
        self.similarity.validate()
    }
}

/// The photos of a similarity run: `dataset.examples` (no facets needed; dress boxes on the
/// train split teach the locator) with the design of each photo.
#[derive(Debug, Clone)]
pub struct SimilarityData {
    pub dataset: Dataset,
    /// Per example, its design id; `None` for a photo of no known design (it is only ever a
    /// dissimilar photo).
    pub designs: Vec<Option<String>>,
    /// Variant families: (design, its base design, the facet that differs).
    pub variants: Vec<(String, String, String)>,
    /// Per example, its current label of each facet (for swap queries).
    pub labels: Vec<BTreeMap<String, String>>,
    /// Triplets people stored (reference, similar, dissimilar), as example indices. Training
    /// learns from some and never sees the others, which score the run (see
    /// `split_stored_triplets`).
    pub stored_triplets: Vec<Triplet>,
}

/// One embedding's numbers on the held-out designs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetrievalScores {
    pub recall_at_1: Option<f64>,
    pub recall_at_10: Option<f64>,
    pub triplet_accuracy: Option<f64>,
    /// On the triplets people stored.
    pub stored_triplet_accuracy: Option<f64>,
    pub swap_accuracy: Option<f64>,
}

/// What a similarity run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimilarityEvaluation {
    pub held_out_designs: usize,
    pub held_out_photos: usize,
    /// Photos of held-out designs with another photo of their design (Recall@k queries).
    pub queries: usize,
    pub triplets: usize,
    pub swap_queries: usize,
    /// Stored triplets training learnt from, and those that score the run.
    #[serde(default)]
    pub stored_triplets_learnt: usize,
    #[serde(default)]
    pub stored_triplets_scored: usize,
    pub off_the_shelf: RetrievalScores,
    pub trained: RetrievalScores,
    pub locator: LocatorReport,
    /// Per facet, how often the facet probes name a held-out photo's current label.
    #[serde(default)]
    pub facet_probe_accuracy: BTreeMap<String, f64>,
}

/// A finished similarity run: the network, what it measured, and both embeddings of every
/// example (in example order).
pub struct SimilarityOutcome {
    pub manifest: SimilarityManifest,
    pub net: SimilarityNet,
    pub evaluation: SimilarityEvaluation,
    pub trained: Vec<Vec<f32>>,
    pub off_the_shelf: Vec<Vec<f32>>,
    /// Per example, the hubness bias a search adds to its cosine ([`crate::hubness`]), for
    /// each embedding; empty when the run ranks by plain cosine.
    pub trained_bias: Vec<f32>,
    pub off_the_shelf_bias: Vec<f32>,
    /// Each photo's final dress box, as the run's model locates it.
    pub boxes: Vec<SureBox>,
}

/// Runs a similarity run on `data` (see [`SimilarityData`]).
pub fn run_similarity(
    data: &mut SimilarityData,
    settings: &SimilarityRunConfig,
    run: Option<i64>,
    feature_cache: Option<&Path>,
    observer: &mut dyn Observer,
) -> Result<SimilarityOutcome, TrainError> {
    settings.validate()?;
    let backbone = &settings.features();
    let config = &settings.similarity;
    let located = locate_dresses(&data.dataset, backbone, feature_cache, true, observer)?;
    located.place(&mut data.dataset, &[DRESS_CROP]);
    let device = crate::device::device_for(backbone.device)?;
    let (network, input, maps) = view_maps(
        &data.dataset,
        backbone,
        View::Detail(0),
        feature_cache,
        &device,
        observer,
    )?;
    let [channels, _, _] = maps.dims;
    let (refiner, report, boxes) = refine_in_crops(
        &data.dataset,
        &located,
        &maps,
        &LocatorTraining::seeded(backbone.seed),
        &device,
    );
    let Inputs {
        pooled,
        colours,
        network: inputs,
    } = embedding_inputs(&data.dataset, &maps, config)?;
    let groups = design_groups(&data.designs);
    let held = held_out_rows(data, config);
    let train_rows: Vec<usize> = (0..held.len()).filter(|&i| !held[i]).collect();
    let (learnt, scored) = split_stored_triplets(data, &held, config);
    let net = train_embedding(
        &inputs,
        &groups,
        &train_rows,
        &learnt,
        config,
        &device,
        observer,
    )?;
    let probed = fit_probes(data, &maps, &train_rows, config, backbone.seed, &device);
    let descriptors = Descriptors::new(probed.as_ref(), colours.as_ref(), config);
    let trained = joined_rows(&net, &inputs, &descriptors, &device);
    let off_the_shelf = unit_rows(&pooled);
    let hubs = Hubs::new(&trained, &off_the_shelf, config.hub_neighbours, &device);
    let stored = StoredTriplets {
        learnt: learnt.len(),
        scored: &scored,
    };
    let rankings = hubs.rankings(&trained, &off_the_shelf);
    let mut evaluation = evaluate(data, &groups, &held, rankings, stored, report);
    let map_size = whole_map_size(&network, backbone, &device);
    let mut manifest = new_manifest(run, backbone, input, config, channels, &inputs, map_size);
    manifest.hubness = hubs.hubness;
    let probe = probed.map(|probed| {
        evaluation.facet_probe_accuracy = probed.accuracy;
        manifest.probe = Some(probed.shape);
        probed.probe
    });
    Ok(SimilarityOutcome {
        manifest,
        net: SimilarityNet {
            backbone: network,
            locator: located.locator,
            refiner: Some(refiner),
            embedding: net,
            probe,
        },
        evaluation,
        trained,
        off_the_shelf,
        trained_bias: hubs.trained,
        off_the_shelf_bias: hubs.off_the_shelf,
        boxes,
    })
}

/// The hubness biases of both embeddings' rows ([`crate::hubness`]), empty when the run ranks
/// by plain cosine, and what the model saves of them.
struct Hubs {
    trained: Vec<f32>,
    off_the_shelf: Vec<f32>,
    hubness: Option<Hubness>,
}

impl Hubs {
    fn new(
        trained: &[Vec<f32>],
        plain: &[Vec<f32>],
        neighbours: usize,
        device: &burn::prelude::Device,
    ) -> Hubs {
        if neighbours == 0 {
            return Hubs {
                trained: Vec::new(),
                off_the_shelf: Vec::new(),
                hubness: None,
            };
        }
        let (trained, trained_mean) = hubness::biases(trained, neighbours, device);
        let (off_the_shelf, off_the_shelf_mean) = hubness::biases(plain, neighbours, device);
        Hubs {
            trained,
            off_the_shelf,
            hubness: Some(Hubness {
                neighbours,
                trained_mean,
                off_the_shelf_mean,
            }),
        }
    }

    /// How searches rank the trained and the off-the-shelf embedding.
    fn rankings<'a>(&'a self, trained: &'a [Vec<f32>], plain: &'a [Vec<f32>]) -> [Ranking<'a>; 2] {
        [
            Ranking {
                embeddings: trained,
                bias: &self.trained,
            },
            Ranking {
                embeddings: plain,
                bias: &self.off_the_shelf,
            },
        ]
    }
}

/// The manifest of a run's model before its probes are known: two box stages, and the colours
/// as configured.
fn new_manifest(
    run: Option<i64>,
    backbone: &TrainConfig,
    input: InputConfig,
    config: &SimilarityConfig,
    channels: usize,
    inputs: &FeatureTable,
    map_size: usize,
) -> SimilarityManifest {
    SimilarityManifest {
        foreground: true,
        colour: config.colour,
        colour_weight: config.colour_weight,
        ..SimilarityManifest::new(
            run,
            backbone.backbone,
            backbone.feature_stage,
            input,
            config.clone(),
            channels,
            inputs.dims[0],
            map_size,
            atelier_core::now_millis(),
        )
    }
}

/// What the embedding is made from, one row per example: the crop's pooled map (what the
/// off-the-shelf embedding is), the colours when the run reads them, and what the embedding
/// network reads (the pooled map, with the colours after it when configured).
struct Inputs {
    pooled: FeatureTable,
    colours: Option<FeatureTable>,
    network: FeatureTable,
}

fn embedding_inputs(
    dataset: &Dataset,
    maps: &FeatureTable,
    config: &SimilarityConfig,
) -> Result<Inputs, TrainError> {
    let pooled = match config.grid {
        0 => gem_pool_table(maps, config.gem_p),
        side => grid_pool_table(maps, side),
    };
    let colours = dress_colour_table(dataset, config)?;
    let network = match (&colours, config.colour) {
        (Some(colours), true) => with_columns(&pooled, colours),
        _ => pooled.clone(),
    };
    Ok(Inputs {
        pooled,
        colours,
        network,
    })
}

/// Per example, whether its design is held out of training.
fn held_out_rows(data: &SimilarityData, config: &SimilarityConfig) -> Vec<bool> {
    data.designs
        .iter()
        .map(|d| {
            d.as_deref()
                .is_some_and(|d| held_out_design(d, config.seed, config.eval_fraction))
        })
        .collect()
}

/// The colours ([`crate::colour`]) of every example's dress square (`detail_regions[0]`), cut
/// from the decoded photo, one `[COLOUR_DIMS, 1, 1]` row each; `None` when the run reads no
/// colours.
fn dress_colour_table(
    dataset: &Dataset,
    config: &SimilarityConfig,
) -> Result<Option<FeatureTable>, TrainError> {
    use rayon::prelude::*;
    if !config.reads_colours() {
        return Ok(None);
    }
    let rows: Vec<Vec<f32>> = dataset
        .examples
        .par_iter()
        .map(|example| {
            let photo = features::load_rgb(&example.path)?;
            let region = example.detail_regions.first().copied().ok_or_else(|| {
                TrainError::Config("the dress square was not placed before its colours".into())
            })?;
            Ok(crate::colour::dress_colours(&crate::crop::crop(
                &photo, region,
            )))
        })
        .collect::<Result<_, TrainError>>()?;
    Ok(Some(FeatureTable {
        dims: [crate::colour::COLOUR_DIMS, 1, 1],
        data: rows.concat(),
    }))
}

/// `table` and `extra` (both `[width, 1, 1]` rows, as many) side by side.
fn with_columns(table: &FeatureTable, extra: &FeatureTable) -> FeatureTable {
    let (width, added) = (table.dims[0], extra.dims[0]);
    let data = table
        .data
        .chunks(width)
        .zip(extra.data.chunks(added))
        .flat_map(|(row, more)| row.iter().chain(more).copied())
        .collect();
    FeatureTable {
        dims: [width + added, 1, 1],
        data,
    }
}

/// The facet probes of a run with a facet weight, fitted on the training rows' current labels
/// over the crops' maps averaged on the configured grid; with their shape and that grid table.
fn fit_probes(
    data: &SimilarityData,
    maps: &FeatureTable,
    train_rows: &[usize],
    config: &SimilarityConfig,
    seed: u64,
    device: &burn::prelude::Device,
) -> Option<Probed> {
    if config.facet_weight <= 0.0 {
        return None;
    }
    let facets = facet_targets(&data.labels);
    if facets.is_empty() {
        return None;
    }
    // A grid finer than the map would only repeat its cells.
    let side = config.facet_grid.min(maps.dims[1]).min(maps.dims[2]);
    let grid = grid_pool_table(maps, side);
    let shape = ProbeShape {
        grid: side,
        inputs: grid.dims[0],
        facets: facets
            .iter()
            .map(|f| (f.facet.clone(), f.classes))
            .collect(),
        weight: config.facet_weight,
    };
    let probe = train_probes(
        &grid,
        &facets,
        train_rows,
        &shape,
        &probe_training(seed),
        device,
    );
    let held: Vec<usize> = (0..data.labels.len())
        .filter(|row| train_rows.binary_search(row).is_err())
        .collect();
    let accuracy = probe_accuracy(&probe, &grid, &facets, &held, device)
        .into_iter()
        .filter_map(|(facet, share)| share.map(|share| (facet, share)))
        .collect();
    Some(Probed {
        probe,
        shape,
        grid,
        accuracy,
    })
}

/// Fitted facet probes, their shape, the grid table they read and their accuracy per facet
/// on the photos of held-out designs.
struct Probed {
    probe: FacetProbe,
    shape: ProbeShape,
    grid: FeatureTable,
    accuracy: BTreeMap<String, f64>,
}

/// What joins the trained embedding of each row: the facet probes (with their weight and the
/// grid table they read) and the colours (with their weight), when the run has them.
struct Descriptors<'a> {
    probe: Option<(&'a FacetProbe, f32, &'a FeatureTable)>,
    colours: Option<(&'a FeatureTable, f32)>,
}

impl<'a> Descriptors<'a> {
    fn new(
        probed: Option<&'a Probed>,
        colours: Option<&'a FeatureTable>,
        config: &SimilarityConfig,
    ) -> Self {
        Self {
            probe: probed.map(|probed| (&probed.probe, probed.shape.weight, &probed.grid)),
            colours: colours
                .filter(|_| config.colour_weight > 0.0)
                .map(|table| (table, config.colour_weight)),
        }
    }
}

/// The embedding every row answers with (see [`joined`]), in batches.
fn joined_rows(
    net: &crate::similarity::EmbeddingNet,
    inputs: &FeatureTable,
    descriptors: &Descriptors,
    device: &burn::prelude::Device,
) -> Vec<Vec<f32>> {
    let flat = |table: &FeatureTable, batch: &[usize]| {
        table
            .batch(batch, device)
            .reshape([batch.len(), table.dims[0]])
    };
    let rows: Vec<usize> = (0..inputs.len()).collect();
    let mut out = Vec::with_capacity(rows.len());
    for batch in rows.chunks(256) {
        let mut parts = Vec::new();
        if let Some((probe, weight, grid)) = descriptors.probe {
            parts.push((probe.descriptor(flat(grid, batch)), weight));
        }
        if let Some((colours, weight)) = descriptors.colours {
            parts.push((flat(colours, batch), weight));
        }
        let values: Vec<f32> = joined(net.forward(flat(inputs, batch)), parts)
            .into_data()
            .try_into_vec()
            .expect("f32");
        out.extend(
            values
                .chunks(values.len() / batch.len())
                .map(<[f32]>::to_vec),
        );
    }
    out
}

/// Each facet's current labels as classes (its labels in name order), for the facet probes.
pub fn facet_targets(labels: &[BTreeMap<String, String>]) -> Vec<FacetTargets> {
    let mut names: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (facet, label) in labels.iter().flatten() {
        names.entry(facet).or_default().push(label);
    }
    names
        .into_iter()
        .map(|(facet, mut classes)| {
            classes.sort_unstable();
            classes.dedup();
            let rows = labels
                .iter()
                .map(|row| {
                    row.get(facet)
                        .and_then(|label| classes.binary_search(&label.as_str()).ok())
                })
                .collect();
            FacetTargets {
                facet: facet.to_string(),
                classes: classes.len(),
                rows,
            }
        })
        .collect()
}

/// The stored triplets training learns from, and those it never sees (which score the run): a
/// triplet is learnt from when a hash of its reference photo's id (as for designs) keeps it in
/// training and none of its photos belongs to a held-out design.
fn split_stored_triplets(
    data: &SimilarityData,
    held: &[bool],
    config: &SimilarityConfig,
) -> (Vec<Triplet>, Vec<Triplet>) {
    data.stored_triplets.iter().partition(|t| {
        let reference = &data.dataset.examples[t.anchor].image_id;
        !held_out_design(reference, config.seed, config.eval_fraction)
            && [t.anchor, t.positive, t.negative]
                .iter()
                .all(|&row| !held[row])
    })
}

fn whole_map_size(
    network: &atelier_models::AnyBackbone,
    backbone: &TrainConfig,
    device: &burn::prelude::Device,
) -> usize {
    let [_, side, _] = crate::backbones::BackboneChoice::feature_shape(
        network,
        backbone.image_size,
        backbone.feature_tap(),
        device,
    );
    side
}

/// Generalised-mean pooling of every map of a table to `[channels, 1, 1]` rows:
/// `(mean over positions of max(x, 1e-6)^p)^(1/p)`, the same as
/// [`crate::metric::gem_pool`] on tensors.
pub fn gem_pool_table(table: &FeatureTable, p: f32) -> FeatureTable {
    let [channels, height, width] = table.dims;
    let cells = height * width;
    let data = table
        .data
        .chunks(channels * cells)
        .flat_map(|map| {
            map.chunks(cells).map(|plane| {
                let mean =
                    plane.iter().map(|v| v.max(1e-6).powf(p)).sum::<f32>() / cells.max(1) as f32;
                mean.powf(1.0 / p)
            })
        })
        .collect();
    FeatureTable {
        dims: [channels, 1, 1],
        data,
    }
}

/// Every map of a table averaged over a `side` x `side` grid, channel-major
/// (`[channels * side * side, 1, 1]` rows), with the bins of adaptive average pooling (cell `i`
/// covers rows `floor(i * h / side)` to `ceil((i + 1) * h / side)`), as
/// `burn::tensor::module::adaptive_avg_pool2d` computes them.
pub fn grid_pool_table(table: &FeatureTable, side: usize) -> FeatureTable {
    let [channels, height, width] = table.dims;
    let bins = |i: usize, n: usize| (i * n / side, ((i + 1) * n).div_ceil(side));
    let mut data = Vec::with_capacity(table.len() * channels * side * side);
    for plane in table.data.chunks(height * width) {
        for row in 0..side {
            let (y0, y1) = bins(row, height);
            for col in 0..side {
                let (x0, x1) = bins(col, width);
                let sum: f32 = (y0..y1)
                    .flat_map(|y| plane[y * width + x0..y * width + x1].iter())
                    .sum();
                data.push(sum / ((y1 - y0) * (x1 - x0)) as f32);
            }
        }
    }
    FeatureTable {
        dims: [channels * side * side, 1, 1],
        data,
    }
}

/// A group number per example: photos of one design share it; a photo of no known design has a
/// group of its own.
pub fn design_groups(designs: &[Option<String>]) -> Vec<u64> {
    let mut numbers: BTreeMap<&str, u64> = BTreeMap::new();
    let mut next = 0u64;
    let mut fresh = || {
        next += 1;
        next - 1
    };
    designs
        .iter()
        .map(|design| match design {
            Some(design) => *numbers.entry(design.as_str()).or_insert_with(&mut fresh),
            None => fresh(),
        })
        .collect()
}

/// How many stored triplets training learnt from, and those that score the run.
struct StoredTriplets<'a> {
    learnt: usize,
    scored: &'a [Triplet],
}

fn evaluate(
    data: &SimilarityData,
    groups: &[u64],
    held: &[bool],
    [trained, off_the_shelf]: [Ranking; 2],
    stored: StoredTriplets,
    locator: LocatorReport,
) -> SimilarityEvaluation {
    let held_rows: Vec<usize> = (0..held.len()).filter(|&i| held[i]).collect();
    let everyone: Vec<usize> = (0..held.len()).collect();
    let triplets = held_out_triplets(groups, &held_rows);
    let swaps = swap_queries(data, groups, held);
    let scores = |ranking: Ranking| RetrievalScores {
        recall_at_1: recall_at(ranking, groups, &held_rows, &everyone, 1),
        recall_at_10: recall_at(ranking, groups, &held_rows, &everyone, 10),
        triplet_accuracy: triplet_accuracy(ranking, &triplets),
        stored_triplet_accuracy: triplet_accuracy(ranking, stored.scored),
        swap_accuracy: swap_accuracy(ranking, groups, &swaps),
    };
    let queries = held_rows
        .iter()
        .filter(|&&q| held_rows.iter().any(|&g| g != q && groups[g] == groups[q]))
        .count();
    let mut designs: Vec<u64> = held_rows.iter().map(|&r| groups[r]).collect();
    designs.sort_unstable();
    designs.dedup();
    SimilarityEvaluation {
        held_out_designs: designs.len(),
        held_out_photos: held_rows.len(),
        queries,
        triplets: triplets.len(),
        swap_queries: swaps.len(),
        stored_triplets_learnt: stored.learnt,
        stored_triplets_scored: stored.scored.len(),
        off_the_shelf: scores(off_the_shelf),
        trained: scores(trained),
        locator,
        facet_probe_accuracy: BTreeMap::new(),
    }
}

/// Triplets among held-out photos, fixed by the data alone: each photo with another photo of
/// its design is the query, the next photo of the design (in row order, wrapping) is the
/// similar one, and the dissimilar one is the photo `offset` rows further among the held-out
/// photos of other designs.
fn held_out_triplets(groups: &[u64], held_rows: &[usize]) -> Vec<Triplet> {
    let mut by_group: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for &row in held_rows {
        by_group.entry(groups[row]).or_default().push(row);
    }
    let mut triplets = Vec::new();
    for (position, &anchor) in held_rows.iter().enumerate() {
        let same = &by_group[&groups[anchor]];
        if same.len() < 2 {
            continue;
        }
        let at = same.iter().position(|&r| r == anchor).expect("own group");
        let positive = same[(at + 1) % same.len()];
        let others: Vec<usize> = held_rows
            .iter()
            .copied()
            .filter(|&r| groups[r] != groups[anchor])
            .collect();
        if others.is_empty() {
            continue;
        }
        let negative = others[(position * 7 + 3) % others.len()];
        triplets.push(Triplet {
            anchor,
            positive,
            negative,
        });
    }
    triplets
}

/// Swap queries from the variant families whose designs are both held out: from each photo of
/// one design, ask for the other's label of the varied facet among all photos with that label;
/// the answer should be a photo of the other design.
fn swap_queries(data: &SimilarityData, groups: &[u64], held: &[bool]) -> Vec<SwapQuery> {
    let rows_of = |design: &str| -> Vec<usize> {
        (0..data.designs.len())
            .filter(|&i| data.designs[i].as_deref() == Some(design))
            .collect()
    };
    let mut queries = Vec::new();
    for (design, base, facet) in &data.variants {
        let (variant_rows, base_rows) = (rows_of(design), rows_of(base));
        let (Some(&variant_row), Some(&base_row)) = (variant_rows.first(), base_rows.first())
        else {
            continue;
        };
        if !held[variant_row] || !held[base_row] {
            continue;
        }
        for (from, to) in [(&base_rows, variant_row), (&variant_rows, base_row)] {
            let Some(wanted) = data.labels[to].get(facet) else {
                continue;
            };
            let candidates: Vec<usize> = (0..data.labels.len())
                .filter(|&i| data.labels[i].get(facet) == Some(wanted))
                .collect();
            for &query in from {
                queries.push(SwapQuery {
                    query,
                    candidates: candidates.clone(),
                    sibling: groups[to],
                });
            }
        }
    }
    queries
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::*;

    #[test]
    fn table_pooling_matches_the_tensor_pooling() {
        let data: Vec<f32> = (0..2 * 3 * 4)
            .map(|i| (i as f32 * 0.37).sin() + 0.5)
            .collect();
        let table = FeatureTable {
            dims: [3, 2, 2],
            data: data.clone(),
        };
        let pooled = gem_pool_table(&table, 3.0);
        let map = Tensor::<4>::from_data(TensorData::new(data, [2, 3, 2, 2]), &Device::flex());
        let expected: Vec<f32> = crate::metric::gem_pool(map, 3.0)
            .into_data()
            .try_into_vec()
            .unwrap();
        assert_eq!(pooled.dims, [3, 1, 1]);
        for (a, b) in pooled.data.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn grid_pooling_matches_the_tensor_pooling() {
        let data: Vec<f32> = (0..2 * 3 * 7 * 7)
            .map(|i| (i as f32 * 0.13).cos())
            .collect();
        let table = FeatureTable {
            dims: [3, 7, 7],
            data: data.clone(),
        };
        let pooled = grid_pool_table(&table, 3);
        let map = Tensor::<4>::from_data(TensorData::new(data, [2, 3, 7, 7]), &Device::flex());
        let expected: Vec<f32> = burn::tensor::module::adaptive_avg_pool2d(map, [3, 3])
            .into_data()
            .try_into_vec()
            .unwrap();
        assert_eq!(pooled.dims, [27, 1, 1]);
        assert_eq!(pooled.data.len(), expected.len());
        for (a, b) in pooled.data.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn facet_targets_number_each_facet_s_labels_in_name_order() {
        let row = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(f, l)| (f.to_string(), l.to_string()))
                .collect()
        };
        let labels = [
            row(&[("neckline", "v-neck"), ("sleeve", "long")]),
            row(&[("neckline", "crew")]),
            row(&[("neckline", "v-neck"), ("sleeve", "cap")]),
        ];
        let targets = facet_targets(&labels);
        assert_eq!(targets.len(), 2);
        assert_eq!(
            (targets[0].facet.as_str(), targets[0].classes),
            ("neckline", 2)
        );
        assert_eq!(targets[0].rows, vec![Some(1), Some(0), Some(1)]);
        assert_eq!(
            (targets[1].facet.as_str(), targets[1].classes),
            ("sleeve", 2)
        );
        assert_eq!(targets[1].rows, vec![Some(1), None, Some(0)]);
    }

    #[test]
    fn columns_are_appended_row_by_row() {
        let table = FeatureTable {
            dims: [2, 1, 1],
            data: vec![1.0, 2.0, 3.0, 4.0],
        };
        let extra = FeatureTable {
            dims: [1, 1, 1],
            data: vec![9.0, 8.0],
        };
        let joined = with_columns(&table, &extra);
        assert_eq!(joined.dims, [3, 1, 1]);
        assert_eq!(joined.data, vec![1.0, 2.0, 9.0, 3.0, 4.0, 8.0]);
    }

    #[test]
    fn photos_of_one_design_share_a_group_and_unknown_designs_stand_alone() {
        let designs = [
            Some("d2".to_string()),
            None,
            Some("d1".to_string()),
            Some("d2".to_string()),
            None,
        ];
        let groups = design_groups(&designs);
        assert_eq!(groups[0], groups[3]);
        let mut distinct = groups.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "{groups:?}");
    }

    #[test]
    fn held_out_triplets_pair_a_design_s_photos_against_another_design() {
        let groups = [1, 1, 2, 2, 3, 9];
        let held = [0, 1, 2, 3, 4];
        let triplets = held_out_triplets(&groups, &held);
        // Row 4 is the only photo of design 3: it anchors nothing.
        assert_eq!(triplets.len(), 4);
        for t in &triplets {
            assert_eq!(groups[t.anchor], groups[t.positive]);
            assert_ne!(t.anchor, t.positive);
            assert_ne!(groups[t.anchor], groups[t.negative]);
            assert!(held.contains(&t.negative));
        }
    }

    #[test]
    fn swap_queries_ask_for_the_sibling_s_label_among_all_photos_with_it() {
        let label =
            |neckline: &str| BTreeMap::from([("neckline".to_string(), neckline.to_string())]);
        let data = SimilarityData {
            dataset: Dataset {
                facets: Vec::new(),
                examples: Vec::new(),
            },
            designs: vec![
                Some("a".into()),
                Some("a".into()),
                Some("b".into()),
                Some("c".into()),
            ],
            variants: vec![("b".into(), "a".into(), "neckline".into())],
            labels: vec![
                label("round"),
                label("round"),
                label("v-neck"),
                label("v-neck"),
            ],
            stored_triplets: Vec::new(),
        };
        let groups = design_groups(&data.designs);
        let queries = swap_queries(&data, &groups, &[true; 4]);
        // Two photos of a ask for a v-neck (candidates 2 and 3; the answer is b's photo), and
        // b's photo asks for a round neckline (candidates 0 and 1, both a's).
        assert_eq!(queries.len(), 3);
        assert_eq!(queries[0].candidates, vec![2, 3]);
        assert_eq!(queries[0].sibling, groups[2]);
        assert_eq!(queries[2].query, 2);
        assert_eq!(queries[2].candidates, vec![0, 1]);
        // A family with a design in training is not asked about.
        assert!(swap_queries(&data, &groups, &[true, true, false, true]).is_empty());
    }
}
