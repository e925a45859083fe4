//! Tagging new images with a trained model: for each facet the label, its confidence and every
//! label's probability in the facet's order. A file that cannot be decoded gets its own error
//! and does not stop the others.

use std::convert::Infallible;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::activation::softmax;
use image::RgbImage;
use rayon::prelude::*;

use crate::artifact::{ModelManifest, load_model};
use crate::error::TrainError;
use crate::evaluate::argmax;
use crate::features::load_rgb;
use crate::model::FacetNet;
use crate::prefetch::pipelined;

/// One facet's prediction for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct FacetTag {
    pub facet: String,
    pub label: String,
    pub confidence: f32,
    /// `(label, probability)` in the facet's label order.
    pub scores: Vec<(String, f32)>,
}

/// A tagging result for one path.
#[derive(Debug, Clone, PartialEq)]
pub struct TagResult {
    pub path: PathBuf,
    /// The facets' predictions, or why the file could not be tagged.
    pub outcome: Result<Vec<FacetTag>, String>,
}

/// A loaded model ready to tag images.
pub struct Tagger {
    pub manifest: ModelManifest,
    net: FacetNet,
    device: Device,
}

/// A batch of photo files decoded in parallel (an error message for each that fails), with
/// their paths.
fn decode_batch(paths: &[PathBuf]) -> (&[PathBuf], Vec<Result<RgbImage, String>>) {
    let photos = paths
        .par_iter()
        .map(|path| load_rgb(path).map_err(|error| error.to_string()))
        .collect();
    (paths, photos)
}

impl Tagger {
    pub fn load(model_dir: &Path, device: &Device) -> Result<Self, TrainError> {
        let (manifest, net) = load_model(model_dir, device)?;
        Ok(Self {
            manifest,
            net,
            device: device.clone(),
        })
    }

    /// Tags `paths` in batches of `batch_size`, returning one result per path in order; the
    /// next batch's photos decode while the network runs on this one.
    pub fn tag(&self, paths: &[PathBuf], batch_size: usize) -> Vec<TagResult> {
        let mut results = Vec::with_capacity(paths.len());
        let batches = paths.chunks(batch_size.max(1));
        let tagged: Result<(), Infallible> = pipelined(batches, decode_batch, |(batch, photos)| {
            results.extend(self.tag_batch(batch, photos));
            Ok(())
        });
        let Ok(()) = tagged;
        results
    }

    fn tag_batch(
        &self,
        paths: &[PathBuf],
        photos: Vec<Result<RgbImage, String>>,
    ) -> Vec<TagResult> {
        let good: Vec<_> = photos
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .cloned()
            .collect();
        let mut predicted = if good.is_empty() {
            Vec::new()
        } else {
            self.predict(&good)
        }
        .into_iter();
        paths
            .iter()
            .zip(photos)
            .map(|(path, photo)| TagResult {
                path: path.clone(),
                outcome: match photo {
                    Ok(_) => Ok(predicted.next().expect("one prediction per decoded image")),
                    Err(error) => Err(error),
                },
            })
            .collect()
    }

    /// Per image, per facet tags for a batch of decoded photos.
    fn predict(&self, photos: &[RgbImage]) -> Vec<Vec<FacetTag>> {
        let logits = self.net.forward_photos(
            photos,
            &self.manifest.input,
            &self.manifest.training.detail_crops,
            &self.device,
        );
        let mut tags: Vec<Vec<FacetTag>> = vec![Vec::new(); photos.len()];
        for (facet, logits) in self.manifest.facets.iter().zip(logits) {
            let classes = facet.labels.len();
            let values: Vec<f32> = softmax(logits, 1)
                .into_data()
                .try_into_vec()
                .expect("float32 probabilities");
            for (row, tag) in tags.iter_mut().enumerate() {
                let scores = &values[row * classes..][..classes];
                let (best, confidence) = argmax(scores);
                tag.push(FacetTag {
                    facet: facet.name.clone(),
                    label: facet.labels[best].clone(),
                    confidence,
                    scores: facet
                        .labels
                        .iter()
                        .cloned()
                        .zip(scores.iter().copied())
                        .collect(),
                });
            }
        }
        tags
    }
}
