//! ImageNet top-5 diagnostic: shows that pretrained weights were imported correctly by
//! classifying photographs with the network's own ImageNet head.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use image::RgbImage;
use rayon::prelude::*;

use crate::backbone::Backbone;
use crate::preprocess::{EvalTransform, PreprocessError};

/// The 1000 ImageNet-1k class names in index order (as torchvision lists them).
const CLASS_NAMES: &str = include_str!("imagenet_classes.txt");

/// Number of ImageNet-1k classes.
pub const IMAGENET_CLASSES: usize = 1000;

/// Name of ImageNet class `index`, e.g. 281 is "tabby".
pub fn imagenet_class_name(index: usize) -> Option<&'static str> {
    CLASS_NAMES.lines().nth(index)
}

/// One entry of a top-k list.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub class_index: usize,
    pub class_name: &'static str,
    pub probability: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum DiagnosticError {
    #[error(
        "the model has no ImageNet classifier; build it with num_classes Some(1000) and load \
         pretrained weights that include the classifier"
    )]
    NoClassifier,
    #[error("the model's classifier has {0} classes, not the 1000 ImageNet classes")]
    NotImageNet(usize),
    #[error("image {index}: {source}")]
    Preprocess {
        index: usize,
        source: PreprocessError,
    },
}

/// Classifies each image with the model's ImageNet head and returns its five most probable
/// classes, most probable first.
///
/// Each image goes through [`EvalTransform::imagenet`] (in parallel) with the model's own normalisation:
/// shorter side resized to 256 (antialiased bilinear), centre crop 224, scale to 0..=1,
/// normalise. Probabilities are the softmax of the logits.
pub fn imagenet_top5<M: Backbone>(
    model: &M,
    images: &[&RgbImage],
    device: &Device,
) -> Result<Vec<Vec<Prediction>>, DiagnosticError> {
    match model.num_classes() {
        None => return Err(DiagnosticError::NoClassifier),
        Some(IMAGENET_CLASSES) => {}
        Some(other) => return Err(DiagnosticError::NotImageNet(other)),
    }
    if images.is_empty() {
        return Ok(Vec::new());
    }
    let transform = EvalTransform::imagenet(model.normalization());
    let planes = images
        .par_iter()
        .enumerate()
        .map(|(index, image)| {
            transform
                .apply(image)
                .map_err(|source| DiagnosticError::Preprocess { index, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let batch = crate::preprocess::stack_planes(&planes, transform.crop as usize, device)
        .map_err(|source| DiagnosticError::Preprocess { index: 0, source })?;
    let pooled = model.forward_features(batch).pooled;
    let logits = model
        .classify(pooled)
        .ok_or(DiagnosticError::NoClassifier)?;
    // `iter` converts from whatever float type the device computes in.
    let probabilities: Vec<f32> = softmax(logits, 1).into_data().iter::<f32>().collect();
    Ok(probabilities
        .chunks_exact(IMAGENET_CLASSES)
        .map(|row| {
            top_k(row, 5)
                .into_iter()
                .map(|(class_index, probability)| Prediction {
                    class_index,
                    class_name: imagenet_class_name(class_index).unwrap_or("?"),
                    probability,
                })
                .collect()
        })
        .collect())
}

/// The `k` largest values with their indices, largest first (ties keep the lower index first).
pub fn top_k(values: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut indexed: Vec<(usize, f32)> = values.iter().copied().enumerate().collect();
    indexed.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    indexed.truncate(k);
    indexed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_cover_imagenet() {
        assert_eq!(CLASS_NAMES.lines().count(), IMAGENET_CLASSES);
        assert_eq!(imagenet_class_name(0), Some("tench"));
        assert_eq!(imagenet_class_name(281), Some("tabby"));
        assert_eq!(imagenet_class_name(999), Some("toilet tissue"));
        assert_eq!(imagenet_class_name(1000), None);
    }

    #[test]
    fn top_k_orders_by_value_then_index() {
        let values = [0.1, 0.4, 0.05, 0.4, 0.05];
        assert_eq!(top_k(&values, 3), vec![(1, 0.4), (3, 0.4), (0, 0.1)]);
        assert_eq!(top_k(&values, 10).len(), 5);
    }
}
