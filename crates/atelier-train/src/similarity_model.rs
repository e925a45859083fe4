//! A similarity model: the backbone, the dress locator and the embedding network that turn a
//! photo into its dress box, a crop of the dress and the crop's embedding. Saved as a folder
//! like a facet model (`model.json`, `weights.bpk`, `metrics.json`, `checksums.json`; see
//! [`crate::artifact`]): written under a temporary name, checked file by file before use.
//!
//! Each photo yields two embeddings: the off-the-shelf one (the crop's GeM-pooled backbone map,
//! unit length) and the trained one ([`crate::similarity::EmbeddingNet`] over the same pooled
//! vector and the dress's colours, joined with the facet probes' descriptor and the colour
//! histogram: see [`crate::similarity::joined`]), plus a 3x3 grid of unit-length cells of the
//! crop's map that explains where two dresses agree.

use std::path::Path;

use atelier_models::{AnyBackbone, Backbone};
use burn::prelude::*;
use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::artifact::{
    METRICS_FILE, MODEL_FILE, WEIGHTS_FILE, checked_manifest, write_model_folder,
};
use crate::backbones::BackboneChoice;
use crate::checkpoint::{load_module, read_json, save_module, write_json_atomically};
use crate::colour::{COLOUR_DIMS, dress_colours};
use crate::crop::Region;
use crate::crop::{DetailCrop, from_square};
use crate::dress_boxes::{BoxStage, SureBox, ordered};
use crate::error::TrainError;
use crate::facet_probe::{FacetProbe, ProbeShape};
use crate::hubness::Hubness;
use crate::input::{InputConfig, eval_planes, to_batch};
use crate::locator::DressLocator;
use crate::metric::{gem_pool, grid_cells, l2_normalize};
use crate::similarity::{EmbeddingNet, SimilarityConfig, joined};
use atelier_models::FeatureTap;
use burn::tensor::module::adaptive_avg_pool2d;

const FORMAT: &str = "atelier-similarity-model";
const FORMAT_VERSION: u32 = 1;

/// Side of the explanation grid.
pub const EXPLAIN_GRID: usize = 3;

/// The square around the whole dress: 1.1 box heights, its top 5 % of a box height above the
/// box, centred on it (a dress box is taller than wide, so this holds the whole dress).
pub const DRESS_CROP: DetailCrop = DetailCrop {
    side: 1.1,
    top_margin: 0.05,
};

/// Everything needed to rebuild and use a similarity network, besides its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimilarityManifest {
    pub format: String,
    pub format_version: u32,
    pub run: Option<i64>,
    pub backbone: BackboneChoice,
    /// The backbone stage whose map is read (`None`: the final map).
    pub feature_stage: Option<usize>,
    pub input: InputConfig,
    pub crop: DetailCrop,
    pub similarity: SimilarityConfig,
    /// Channels of the backbone map.
    pub channels: usize,
    /// Width of what the embedding network reads: the channels, times the grid's cells when
    /// the run reads a grid.
    pub embedding_inputs: usize,
    /// Side of the backbone map of a whole photo (what the locator reads).
    pub map_size: usize,
    /// Whether the model boxes dresses in two stages, each a box regressor and a foreground
    /// classifier (see [`crate::dress_boxes`]); models written before those existed box with
    /// the whole-photo regressor alone.
    #[serde(default)]
    pub foreground: bool,
    /// The facet probes whose descriptor joins the trained embedding (see
    /// [`crate::facet_probe`]); `None` for models without them.
    #[serde(default)]
    pub probe: Option<ProbeShape>,
    /// Whether the embedding network reads the dress's colours ([`crate::colour`]) after the
    /// pooled map (`embedding_inputs` counts them).
    #[serde(default)]
    pub colour: bool,
    /// Weight of the dress's colours as a descriptor in the embedding (0: not part of it).
    #[serde(default)]
    pub colour_weight: f32,
    /// How searches correct the run's embeddings for hubness ([`crate::hubness`]); `None`:
    /// they rank by plain cosine.
    #[serde(default)]
    pub hubness: Option<Hubness>,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl SimilarityManifest {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        run: Option<i64>,
        backbone: BackboneChoice,
        feature_stage: Option<usize>,
        input: InputConfig,
        similarity: SimilarityConfig,
        channels: usize,
        embedding_inputs: usize,
        map_size: usize,
        created_at: i64,
    ) -> Self {
        Self {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            run,
            backbone,
            feature_stage,
            input,
            crop: DRESS_CROP,
            similarity,
            channels,
            embedding_inputs,
            map_size,
            foreground: false,
            probe: None,
            colour: false,
            colour_weight: 0.0,
            hubness: None,
            created_at,
        }
    }

    /// Whether the model reads the dress's colours, as input or as a part of the embedding.
    pub fn reads_colours(&self) -> bool {
        self.colour || self.colour_weight > 0.0
    }

    pub fn tap(&self) -> FeatureTap {
        self.feature_stage
            .map_or(FeatureTap::Final, FeatureTap::Stage)
    }

    /// A network of this architecture with untrained weights.
    pub fn build_net(&self, device: &Device) -> Result<SimilarityNet, TrainError> {
        crate::init::exclusive(|| {
            Ok(SimilarityNet {
                backbone: self.backbone.build(None, device)?,
                locator: DressLocator::new(self.channels, self.map_size, device),
                refiner: self
                    .foreground
                    .then(|| BoxStage::new(self.channels, self.map_size, device)),
                embedding: EmbeddingNet::new(self.embedding_inputs, &self.similarity, device),
                probe: self
                    .probe
                    .as_ref()
                    .map(|shape| FacetProbe::new(shape, device)),
            })
        })
    }
}

/// The backbone, the dress locator (the whole photo's box regressor and the second box stage
/// over the dress crop) and the embedding network.
#[derive(Module, Debug)]
pub struct SimilarityNet {
    pub backbone: AnyBackbone,
    pub locator: DressLocator,
    /// The second box stage, over the map of the square cut around the first box.
    pub refiner: Option<BoxStage>,
    pub embedding: EmbeddingNet,
    /// The facet probes over the crop's map.
    pub probe: Option<FacetProbe>,
}

/// What a similarity model makes of one photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhotoEmbedding {
    /// The located dress box in the photo's pixels `[x0, y0, x1, y1]`.
    pub dress_box: [f32; 4],
    /// The foreground classifier's confidence that the box holds the dress (the mean
    /// probability of the cells inside it); `None` for a model without the classifier.
    pub foreground: Option<f32>,
    /// The IoU of the second stage's regressor box with its final one; `None` likewise.
    #[serde(default)]
    pub agreement: Option<f32>,
    /// The square around the dress that was embedded, `[x0, y0, side]` in the photo's pixels
    /// (it may reach outside the photo; that part is mid grey).
    pub crop: [i64; 3],
    /// The trained embedding (unit length).
    pub embedding: Vec<f32>,
    /// The crop's pooled backbone map, scaled to unit length.
    pub off_the_shelf: Vec<f32>,
    /// [`EXPLAIN_GRID`]² unit-length cells of the crop's map, row-major.
    pub cells: Vec<Vec<f32>>,
}

impl SimilarityNet {
    /// Locates, crops and embeds `photos` (one batch).
    pub fn embed_photos(
        &self,
        manifest: &SimilarityManifest,
        photos: &[RgbImage],
        device: &Device,
    ) -> Vec<PhotoEmbedding> {
        let input = &manifest.input;
        let tap = manifest.tap();
        let whole: Vec<_> = photos.par_iter().map(|p| eval_planes(p, input)).collect();
        let located = self.locate(self.backbone.forward_to(to_batch(&whole, device), tap));
        let regions: Vec<_> = photos
            .iter()
            .zip(&located)
            .map(|(photo, square)| {
                let (w, h) = photo.dimensions();
                let region = manifest.crop.region_for(*square, w, h);
                (from_square(*square, w, h), region)
            })
            .collect();
        let reads_colours = manifest.reads_colours();
        let (crops, colours): (Vec<_>, Vec<_>) = photos
            .par_iter()
            .zip(&regions)
            .map(|(photo, (_, region))| {
                let square = crate::crop::crop(photo, *region);
                let colours = reads_colours.then(|| dress_colours(&square));
                (eval_planes(&square, input), colours)
            })
            .unzip();
        let map = self.backbone.forward_to(to_batch(&crops, device), tap);
        let boxes = self.refine(map.clone(), regions.clone());
        let pooled = match manifest.similarity.grid {
            0 => gem_pool(map.clone(), manifest.similarity.gem_p),
            side => {
                let [batch, channels, _, _] = map.dims();
                adaptive_avg_pool2d(map.clone(), [side, side])
                    .reshape([batch, channels * side * side])
            }
        };
        let rows = |t: Tensor<2>| -> Vec<Vec<f32>> {
            let [n, d] = t.dims();
            let values: Vec<f32> = t.into_data().try_into_vec().expect("f32 embeddings");
            (0..n).map(|i| values[i * d..][..d].to_vec()).collect()
        };
        let colours = reads_colours.then(|| {
            let values: Vec<f32> = colours.into_iter().flatten().flatten().collect();
            Tensor::<1>::from_floats(values.as_slice(), device).reshape([photos.len(), COLOUR_DIMS])
        });
        let trained = rows(self.trained_embedding(manifest, map.clone(), pooled.clone(), colours));
        let plain = rows(l2_normalize(pooled));
        let grid = grid_cells(map, EXPLAIN_GRID);
        let [_, cells, channels] = grid.dims();
        let grid: Vec<f32> = grid.into_data().try_into_vec().expect("f32 cells");
        regions
            .into_iter()
            .zip(boxes)
            .zip(trained.into_iter().zip(plain))
            .enumerate()
            .map(
                |(i, (((_, region), (dress_box, sure)), (embedding, off_the_shelf)))| {
                    PhotoEmbedding {
                        dress_box,
                        foreground: sure.map(|s| s.foreground),
                        agreement: sure.map(|s| s.agreement),
                        crop: [region.x0, region.y0, i64::from(region.side)],
                        embedding,
                        off_the_shelf,
                        cells: grid[i * cells * channels..][..cells * channels]
                            .chunks(channels)
                            .map(<[f32]>::to_vec)
                            .collect(),
                    }
                },
            )
            .collect()
    }
}

impl SimilarityNet {
    /// The trained embedding of crops' maps (and `pooled`, their pooled vectors, and
    /// `colours`, the crops' [`crate::colour`] descriptors when the model reads them): the
    /// embedding network's, with the facet probes' descriptor and the colours beside it when
    /// the model has them.
    fn trained_embedding(
        &self,
        manifest: &SimilarityManifest,
        map: Tensor<4>,
        pooled: Tensor<2>,
        colours: Option<Tensor<2>>,
    ) -> Tensor<2> {
        let inputs = match (&colours, manifest.colour) {
            (Some(colours), true) => Tensor::cat(vec![pooled, colours.clone()], 1),
            _ => pooled,
        };
        let mut descriptors = Vec::new();
        if let (Some(probe), Some(shape)) = (&self.probe, &manifest.probe) {
            let [batch, channels, _, _] = map.dims();
            let side = shape.grid;
            let grid =
                adaptive_avg_pool2d(map, [side, side]).reshape([batch, channels * side * side]);
            descriptors.push((probe.descriptor(grid), shape.weight));
        }
        if let Some(colours) = colours.filter(|_| manifest.colour_weight > 0.0) {
            descriptors.push((colours, manifest.colour_weight));
        }
        joined(self.embedding.forward(inputs), descriptors)
    }

    /// Each photo's first dress box (fractions of the square, corners in order) from
    /// whole-photo maps: the regressor's.
    pub fn locate(&self, whole: Tensor<4>) -> Vec<[f32; 4]> {
        self.locator.boxes(whole).into_iter().map(ordered).collect()
    }

    /// Each photo's final box in its pixels and the foreground classifier's confidence in it:
    /// the second stage's, read from the crops' maps, when the model has it.
    fn refine(
        &self,
        crop_maps: Tensor<4>,
        first: Vec<([f32; 4], Region)>,
    ) -> Vec<([f32; 4], Option<SureBox>)> {
        let Some(refiner) = &self.refiner else {
            return first
                .into_iter()
                .map(|(pixels, _)| (pixels, None))
                .collect();
        };
        refiner
            .boxes(crop_maps)
            .into_iter()
            .zip(first)
            .map(|(boxed, (_, region))| {
                let sure = boxed.sure_box(region);
                (sure.pixels, Some(sure))
            })
            .collect()
    }
}

/// Where two photos' dresses agree: the cosine similarity of each aligned cell of their
/// [`EXPLAIN_GRID`] grids (row-major; 0 for an empty cell), and the better of that and the
/// same against the second photo mirrored (`mirrored`, the mirror image's own cells), as
/// TiefVision compares a dress with its flip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellAgreement {
    pub cells: Vec<f32>,
    /// The mean over the cells.
    pub mean: f32,
    /// Whether the mirrored photo agreed better (and gave `cells`).
    pub flipped: bool,
    /// The squares the two grids cover, to draw the cells over the crops (filled by
    /// [`SimilarityNet::agreements`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_crop: Option<CropView>,
    /// The other photo's square: in the mirrored photo's pixels when `flipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<CropView>,
}

/// The square a grid covers, `[x0, y0, side]` in the pixels of a photo of `size` (width,
/// height); it may reach outside the photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropView {
    pub square: [i64; 3],
    pub size: [u32; 2],
}

/// The [`CellAgreement`] of `query` with `other`, given `other`'s mirror image too.
pub fn cell_agreement(
    query: &PhotoEmbedding,
    other: &PhotoEmbedding,
    mirrored: &PhotoEmbedding,
) -> CellAgreement {
    let aligned = |b: &PhotoEmbedding| -> Vec<f32> {
        query
            .cells
            .iter()
            .zip(&b.cells)
            .map(|(x, y)| x.iter().zip(y).map(|(p, q)| p * q).sum())
            .collect()
    };
    let mean = |cells: &[f32]| cells.iter().sum::<f32>() / cells.len().max(1) as f32;
    let (straight, flipped) = (aligned(other), aligned(mirrored));
    if mean(&flipped) > mean(&straight) {
        CellAgreement {
            mean: mean(&flipped),
            cells: flipped,
            flipped: true,
            query_crop: None,
            crop: None,
        }
    } else {
        CellAgreement {
            mean: mean(&straight),
            cells: straight,
            flipped: false,
            query_crop: None,
            crop: None,
        }
    }
}

impl SimilarityNet {
    /// Where each of `others` agrees with `query`, cell by cell (see [`cell_agreement`]).
    pub fn agreements(
        &self,
        manifest: &SimilarityManifest,
        query: &RgbImage,
        others: &[RgbImage],
        device: &Device,
    ) -> Vec<CellAgreement> {
        let query_photo = query;
        let query = self.embed_photos(manifest, std::slice::from_ref(query), device);
        let mirrors: Vec<RgbImage> = others
            .iter()
            .map(image::imageops::flip_horizontal)
            .collect();
        let straight = self.embed_photos(manifest, others, device);
        let mirrored = self.embed_photos(manifest, &mirrors, device);
        let view = |embedded: &PhotoEmbedding, photo: &RgbImage| CropView {
            square: embedded.crop,
            size: [photo.width(), photo.height()],
        };
        let query_crop = view(&query[0], query_photo);
        straight
            .iter()
            .zip(&mirrored)
            .zip(others)
            .map(|((other, mirror), photo)| {
                let mut agreement = cell_agreement(&query[0], other, mirror);
                agreement.query_crop = Some(query_crop);
                let seen = if agreement.flipped { mirror } else { other };
                agreement.crop = Some(view(seen, photo));
                agreement
            })
            .collect()
    }
}

/// Writes a similarity model folder at `dir` (which must not exist yet) with its evaluation.
pub fn save_similarity_model(
    dir: &Path,
    manifest: &SimilarityManifest,
    net: &SimilarityNet,
    evaluation: &Value,
) -> Result<(), TrainError> {
    write_model_folder(dir, |folder| {
        save_module(net, &folder.join(WEIGHTS_FILE))?;
        write_json_atomically(&folder.join(METRICS_FILE), evaluation)?;
        write_json_atomically(&folder.join(MODEL_FILE), manifest)
    })
}

/// Reads a similarity model folder, after checking every file against its checksums.
pub fn load_similarity_model(
    dir: &Path,
    device: &Device,
) -> Result<(SimilarityManifest, SimilarityNet), TrainError> {
    let manifest = load_similarity_manifest(dir)?;
    let net = load_module(manifest.build_net(device)?, &dir.join(WEIGHTS_FILE))?;
    Ok((manifest, net))
}

/// The manifest of the similarity model saved in `dir` (its files checked as
/// [`load_similarity_model`] checks them), without its network.
pub fn load_similarity_manifest(dir: &Path) -> Result<SimilarityManifest, TrainError> {
    let manifest_path = checked_manifest(dir, "atelier train similarity")?;
    let manifest: SimilarityManifest = read_json(&manifest_path)?;
    if manifest.format != FORMAT || manifest.format_version > FORMAT_VERSION {
        return Err(TrainError::artifact(
            &manifest_path,
            format!(
                "format {} version {} is not a similarity model this atelier reads ({FORMAT} up \
                 to {FORMAT_VERSION})",
                manifest.format, manifest.format_version
            ),
        ));
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn tiny_model(device: &Device) -> (SimilarityManifest, SimilarityNet) {
        let backbone = BackboneChoice::Tiny;
        let built = backbone.build(None, device).unwrap();
        let input = InputConfig::new(64, built.normalization());
        let [channels, map_size, _] =
            BackboneChoice::feature_shape(&built, 64, FeatureTap::Final, device);
        let similarity = SimilarityConfig {
            embedding_dim: 8,
            hidden: 16,
            ..SimilarityConfig::default()
        };
        let manifest = SimilarityManifest::new(
            Some(3),
            backbone,
            None,
            input,
            similarity,
            channels,
            channels + crate::colour::COLOUR_DIMS,
            map_size,
            0,
        );
        let manifest = SimilarityManifest {
            foreground: true,
            probe: Some(ProbeShape {
                grid: 2,
                inputs: channels * 4,
                facets: vec![("neckline".into(), 3), ("sleeve".into(), 2)],
                weight: 1.5,
            }),
            colour: true,
            colour_weight: 0.7,
            hubness: Some(Hubness {
                neighbours: 10,
                trained_mean: 0.8,
                off_the_shelf_mean: 0.95,
            }),
            ..manifest
        };
        let net = manifest.build_net(device).unwrap();
        (manifest, net)
    }

    fn photo(shade: u8) -> RgbImage {
        RgbImage::from_fn(48, 80, |x, y| Rgb([shade, (x * 5) as u8, (y * 3) as u8]))
    }

    /// A saved model embeds photos exactly as the network it was saved from; the embeddings
    /// and the explanation cells have unit length and the box lies on the photo's scale.
    #[test]
    fn cell_agreement_by_hand() {
        let photo = |cells: Vec<Vec<f32>>| PhotoEmbedding {
            dress_box: [0.0; 4],
            foreground: None,
            agreement: None,
            crop: [0, 0, 1],
            embedding: Vec::new(),
            off_the_shelf: Vec::new(),
            cells,
        };
        let query = photo(vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        let other = photo(vec![vec![0.6, 0.8], vec![0.0, 0.0]]);
        let mirror = photo(vec![vec![0.0, 1.0], vec![1.0, 0.0]]);
        let got = cell_agreement(&query, &other, &mirror);
        assert_eq!(got.cells, vec![0.6, 0.0]);
        assert!(!got.flipped && (got.mean - 0.3).abs() < 1e-6);
        let mirror = photo(vec![vec![1.0, 0.0], vec![0.0, 0.8]]);
        let got = cell_agreement(&query, &other, &mirror);
        assert!(got.flipped && got.cells == vec![1.0, 0.8], "{got:?}");
    }

    #[test]
    fn a_saved_model_embeds_like_the_original() {
        let device = Device::flex();
        let (manifest, net) = tiny_model(&device);
        let photos = [photo(30), photo(200)];
        let before = net.embed_photos(&manifest, &photos, &device);
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("similar");
        save_similarity_model(&folder, &manifest, &net, &serde_json::json!({"ok": true})).unwrap();
        assert!(save_similarity_model(&folder, &manifest, &net, &Value::Null).is_err());
        let (loaded_manifest, loaded) = load_similarity_model(&folder, &device).unwrap();
        assert_eq!(loaded_manifest, manifest);
        let after = loaded.embed_photos(&manifest, &photos, &device);
        assert_eq!(before, after);
        for embedded in &after {
            let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm(&embedded.embedding) - 1.0).abs() < 1e-4);
            // The network's 8, the probes' 3 + 2, the colours'.
            assert_eq!(embedded.embedding.len(), 8 + 5 + crate::colour::COLOUR_DIMS);
            assert!((norm(&embedded.off_the_shelf) - 1.0).abs() < 1e-4);
            assert_eq!(embedded.cells.len(), EXPLAIN_GRID * EXPLAIN_GRID);
            assert!(
                embedded
                    .cells
                    .iter()
                    .all(|c| (norm(c) - 1.0).abs() < 1e-3 || norm(c) == 0.0)
            );
            assert!(
                embedded
                    .foreground
                    .is_some_and(|f| (0.0..=1.0).contains(&f))
            );
            let [x0, y0, x1, y1] = embedded.dress_box;
            assert!(
                x0 < x1 && y0 < y1 && x1 <= 80.0 && y1 <= 80.0,
                "{:?}",
                embedded.dress_box
            );
        }
        // A photo agrees with itself in every cell; with a mirror image of itself, the
        // straight comparison still wins.
        let mirror = net.embed_photos(
            &manifest,
            &[image::imageops::flip_horizontal(&photos[0])],
            &device,
        );
        let own = cell_agreement(&after[0], &after[0], &mirror[0]);
        assert!(!own.flipped && (own.mean - 1.0).abs() < 1e-3, "{own:?}");
        let other = cell_agreement(&after[0], &after[1], &mirror[0]);
        assert_eq!(other.cells.len(), EXPLAIN_GRID * EXPLAIN_GRID);
        assert!(other.mean < own.mean + 1e-6);
        // A facet model folder is not a similarity model.
        std::fs::write(folder.join(MODEL_FILE), "{}").unwrap();
        assert!(load_similarity_model(&folder, &device).is_err());
    }
}
