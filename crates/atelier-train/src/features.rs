//! Frozen-backbone features: each image goes through the backbone once, and the epochs over the
//! heads then read this table instead of running the backbone again.
//!
//! With a cache folder, each image's feature map is also kept on disk under a key made of
//! everything that determines it (backbone, weight file contents, input size and
//! normalisation, pooling) and the image's content hash, so a retrain after relabelling, or a
//! second experiment on the same catalogue, skips the backbone for every image it has seen.

use std::fs;
use std::path::{Path, PathBuf};

use atelier_models::preprocess::PlanarImage;
use atelier_models::{AnyBackbone, Backbone, FeatureTap};
use atelier_vision::decode::{DecodeLimits, decode_file};
use burn::prelude::*;
use image::RgbImage;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::config::TrainConfig;
use crate::data::Example;
use crate::error::TrainError;
use crate::input::{InputConfig, eval_planes, to_batch};
use crate::prefetch::pipelined;
use crate::progress::Observer;

/// One feature map per image, `[channels, height, width]` each, in example order.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureTable {
    pub dims: [usize; 3],
    pub data: Vec<f32>,
}

impl FeatureTable {
    pub fn len(&self) -> usize {
        self.data.len() / self.per_image().max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn per_image(&self) -> usize {
        self.dims.iter().product()
    }

    /// The maps of `rows`, in that order.
    pub fn select(&self, rows: &[usize]) -> FeatureTable {
        let per_image = self.per_image();
        let mut data = Vec::with_capacity(rows.len() * per_image);
        for &row in rows {
            data.extend_from_slice(&self.data[row * per_image..][..per_image]);
        }
        FeatureTable {
            dims: self.dims,
            data,
        }
    }

    /// Each image's map of `self` followed, along the channels, by its map of `other` (same
    /// images in the same order, same map size).
    pub fn concat_channels(&self, other: &FeatureTable) -> FeatureTable {
        assert_eq!(self.len(), other.len(), "tables of different images");
        assert_eq!(self.dims[1..], other.dims[1..], "maps of different sizes");
        let (a, b) = (self.per_image(), other.per_image());
        let mut data = Vec::with_capacity(self.data.len() + other.data.len());
        for i in 0..self.len() {
            data.extend_from_slice(&self.data[i * a..][..a]);
            data.extend_from_slice(&other.data[i * b..][..b]);
        }
        FeatureTable {
            dims: [self.dims[0] + other.dims[0], self.dims[1], self.dims[2]],
            data,
        }
    }

    /// The rows `indices` as a `[indices.len(), channels, height, width]` tensor on `device`.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Tensor<4> {
        self.batch_flipped(indices, &[], device)
    }

    /// Like [`FeatureTable::batch`], with the maps of rows whose `flip` entry is true mirrored
    /// left to right. A convolutional feature map of a mirrored photo is close to the mirrored
    /// map, so this is the horizontal-flip augmentation at no backbone cost.
    pub fn batch_flipped(&self, indices: &[usize], flip: &[bool], device: &Device) -> Tensor<4> {
        let per_image = self.per_image();
        let [c, h, w] = self.dims;
        let mut data = Vec::with_capacity(indices.len() * per_image);
        for (row, &i) in indices.iter().enumerate() {
            let start = data.len();
            data.extend_from_slice(&self.data[i * per_image..][..per_image]);
            if flip.get(row).copied().unwrap_or(false) {
                for line in data[start..].chunks_exact_mut(w) {
                    line.reverse();
                }
            }
        }
        Tensor::from_data(TensorData::new(data, [indices.len(), c, h, w]), device)
    }
}

/// Decodes an image for training or evaluation; an unreadable file names itself.
pub fn load_rgb(path: &Path) -> Result<RgbImage, TrainError> {
    decode_file(path, &DecodeLimits::default())
        .map(|decoded| decoded.rgb)
        .map_err(|error| TrainError::Image {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })
}

/// Where cached feature maps of one backbone configuration live.
pub struct FeatureCache {
    dir: PathBuf,
}

impl FeatureCache {
    /// The cache of the features `config` trains on, for images prepared as `input` (`pool` as
    /// for [`extract`]), under `root`. The weight file is hashed, so a changed file never serves
    /// stale features.
    pub fn new(
        root: &Path,
        config: &TrainConfig,
        input: &InputConfig,
        pool: bool,
    ) -> Result<Self, TrainError> {
        let (backbone, weights) = (config.backbone.name(), config.weights.as_deref());
        let mut key = Sha256::new();
        key.update(b"atelier-features-v1\0");
        key.update(backbone.as_bytes());
        match weights {
            Some(path) => {
                let bytes = fs::read(path).map_err(|e| TrainError::io(path, e))?;
                key.update(Sha256::digest(&bytes));
            }
            None => key.update(b"random"),
        }
        key.update(serde_json::to_vec(input).unwrap_or_default());
        // Spelled so that the final map's key is what it was before taps other than strides
        // existed: caches made then still hit.
        match config.feature_tap() {
            FeatureTap::Final => {}
            FeatureTap::Stride(stride) => {
                key.update(b"stride");
                key.update(stride.to_le_bytes());
            }
            FeatureTap::Stage(stage) => {
                key.update(b"stage");
                key.update(stage.to_le_bytes());
            }
        }
        key.update([u8::from(pool)]);
        let dir = root.join(&hex::encode(key.finalize())[..24]);
        Ok(Self { dir })
    }

    /// The same configuration's cache for another view of the images (see [`View`]).
    fn for_view(&self, view: View) -> Self {
        match view {
            View::Whole => Self {
                dir: self.dir.clone(),
            },
            // Every detail view shares one folder: the file names say where the crop is.
            View::Detail(_) => Self {
                dir: self.dir.with_extension("detail"),
            },
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        let prefix = key.get(..2).unwrap_or("xx");
        self.dir.join(prefix).join(format!("{key}.f32"))
    }

    fn load(&self, key: &str, len: usize) -> Option<Vec<f32>> {
        let bytes = fs::read(self.path(key)).ok()?;
        if bytes.len() != len * 4 {
            return None;
        }
        Some(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        )
    }

    fn store(&self, key: &str, values: &[f32]) -> Result<(), TrainError> {
        let path = self.path(key);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        crate::checkpoint::write_atomically(&path, &bytes)
    }
}

/// What part of each photo goes through the backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The whole photo, letterboxed.
    Whole,
    /// The example's detail region number `n` (0-based; set by [`crate::locator`]), cropped
    /// from the original pixels.
    Detail(usize),
}

/// The photo `example` as the backbone sees it in `view`.
pub fn view_planes(
    example: &Example,
    view: View,
    input: &InputConfig,
) -> Result<PlanarImage, TrainError> {
    let rgb = load_rgb(&example.path)?;
    match view {
        View::Whole => Ok(eval_planes(&rgb, input)),
        View::Detail(n) => {
            let region = *example.detail_regions.get(n).ok_or_else(|| {
                TrainError::Config(format!(
                    "{}: no detail region; the dress locator runs before detail features",
                    example.path.display()
                ))
            })?;
            Ok(eval_planes(&crate::crop::crop(&rgb, region), input))
        }
    }
}

/// The cache file name of an example's features in a view: the detail view also depends on
/// where the crop is.
fn cache_key(example: &Example, view: View) -> String {
    match view {
        View::Detail(n) => match example.detail_regions.get(n) {
            Some(r) => format!("{}-{}_{}_{}", example.image_id, r.x0, r.y0, r.side),
            None => example.image_id.clone(),
        },
        View::Whole => example.image_id.clone(),
    }
}

/// Images per backbone pass of [`extract`]. Smaller batches run faster on the CPU backend,
/// whose every operation allocates its output afresh: `atelier backbone predict` on 128 of the
/// demo's photos (2 cores) did 19.7–21.2 images/s in batches of 8 and 13.7–14.0 in batches of
/// 32.
pub const FEATURE_BATCH: usize = 8;

/// Runs `backbone` (on a device without autodiff) over every example's `view`, in batches of
/// [`FEATURE_BATCH`]. With `pool`, each map is averaged to `[channels, 1, 1]`, which is all a
/// pooled head needs and far smaller. Feature maps found in `cache` are read instead of
/// computed, and computed ones are added to it.
#[allow(clippy::too_many_arguments)]
pub fn extract(
    backbone: &AnyBackbone,
    examples: &[Example],
    view: View,
    input: &InputConfig,
    tap: FeatureTap,
    pool: bool,
    cache: Option<&FeatureCache>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<FeatureTable, TrainError> {
    let phase = match view {
        View::Whole => "backbone features".to_string(),
        View::Detail(n) => format!("backbone features of detail view {}", n + 1),
    };
    observer.phase(&phase, examples.len() as u64);
    let cache = cache.map(|c| c.for_view(view));
    let cache = cache.as_ref();
    let dims = output_dims(backbone, input, tap, pool, device);
    let per_image: usize = dims.iter().product();
    let mut data = vec![0.0f32; examples.len() * per_image];
    let mut missing = Vec::new();
    for (i, example) in examples.iter().enumerate() {
        match cache.and_then(|c| c.load(&cache_key(example, view), per_image)) {
            Some(values) => data[i * per_image..][..per_image].copy_from_slice(&values),
            None => missing.push(i),
        }
    }
    let mut done = (examples.len() - missing.len()) as u64;
    observer.advance(done, None);
    let decode = |chunk: Vec<usize>| {
        let planes = chunk
            .par_iter()
            .map(|&i| view_planes(&examples[i], view, input))
            .collect::<Result<Vec<_>, _>>();
        (chunk, planes)
    };
    // The next batch's photos decode while the backbone runs on this one.
    let chunks = missing.chunks(FEATURE_BATCH).map(<[usize]>::to_vec);
    pipelined(chunks, decode, |(chunk, planes)| {
        if observer.stop_requested() {
            return Err(TrainError::Stopped {
                completed_epochs: 0,
            });
        }
        let map = forward_map(backbone, to_batch(&planes?, device), tap, pool);
        let values = map.into_data().try_into_vec::<f32>().map_err(|error| {
            TrainError::Config(format!("backbone output is not float32: {error:?}"))
        })?;
        for (row, &i) in chunk.iter().enumerate() {
            let features = &values[row * per_image..][..per_image];
            data[i * per_image..][..per_image].copy_from_slice(features);
            if let Some(cache) = cache {
                cache.store(&cache_key(&examples[i], view), features)?;
            }
        }
        done += chunk.len() as u64;
        observer.advance(done, None);
        Ok(())
    })?;
    observer.phase_end();
    Ok(FeatureTable { dims, data })
}

fn forward_map(
    backbone: &AnyBackbone,
    images: Tensor<4>,
    tap: FeatureTap,
    pool: bool,
) -> Tensor<4> {
    let map = backbone.forward_to(images, tap);
    if pool {
        let [b, c, h, w] = map.dims();
        map.reshape([b, c, h * w]).mean_dim(2).reshape([b, c, 1, 1])
    } else {
        map
    }
}

/// `[channels, height, width]` of one image's features.
fn output_dims(
    backbone: &AnyBackbone,
    input: &InputConfig,
    tap: FeatureTap,
    pool: bool,
    device: &Device,
) -> [usize; 3] {
    let [channels, height, width] =
        crate::backbones::BackboneChoice::feature_shape(backbone, input.image_size, tap, device);
    if pool {
        [channels, 1, 1]
    } else {
        [channels, height, width]
    }
}
