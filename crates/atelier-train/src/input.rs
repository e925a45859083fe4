//! Turning decoded photos into network input, for training (with augmentation) and for
//! evaluation and tagging (without).
//!
//! The whole photo is kept: it is scaled so its longer side fits `image_size` and the rest of the
//! square is filled with the normalisation mean (zero after normalising). A centre crop, the
//! ImageNet habit, would cut off hems and necklines of tall product photos, and these are exactly
//! what the length and neckline facets are about.
//!
//! Training augmentation: a random resized crop (area 60-100 % of the square, aspect 3:4 to
//! 4:3), a horizontal flip (dress facets are mirror-symmetric), and brightness, contrast and
//! saturation jitter. Each image's augmentation is drawn from an RNG seeded by the run seed, the
//! epoch and the image's position, so a resumed run sees exactly the same pixels.

use atelier_models::Normalization;
use atelier_models::preprocess::{PlanarImage, resize_region};
use burn::prelude::*;
use image::RgbImage;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The input geometry and normalisation a model expects; stored with the model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InputConfig {
    /// Side of the square network input in pixels.
    pub image_size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl InputConfig {
    pub fn new(image_size: u32, normalization: Normalization) -> Self {
        Self {
            image_size,
            mean: normalization.mean,
            std: normalization.std,
        }
    }
}

/// Strength of the training augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Augmentation {
    /// Smallest fraction of the square's area a random crop keeps; 1 turns cropping off.
    pub min_crop_area: f32,
    pub horizontal_flip: bool,
    /// Brightness, contrast and saturation factors are drawn from `1 ± jitter`.
    pub color_jitter: f32,
}

impl Augmentation {
    /// No augmentation: every epoch sees the same letterboxed photo.
    pub const NONE: Augmentation = Augmentation {
        min_crop_area: 1.0,
        horizontal_flip: false,
        color_jitter: 0.0,
    };
}

impl Default for Augmentation {
    fn default() -> Self {
        Self {
            min_crop_area: 0.6,
            horizontal_flip: true,
            color_jitter: 0.2,
        }
    }
}

/// The square, letterboxed, normalised planes for evaluation.
pub fn eval_planes(image: &RgbImage, input: &InputConfig) -> PlanarImage {
    let square = letterbox(image, input);
    let size = input.image_size as usize;
    let mut planes = if square.width == size {
        square
    } else {
        resize_region(&square, (size, size), (0, 0), (size, size))
    };
    normalize(&mut planes, input);
    planes
}

/// Augmented planes for training; `seed` fixes every random choice.
pub fn train_planes(
    image: &RgbImage,
    input: &InputConfig,
    augmentation: &Augmentation,
    seed: u64,
) -> PlanarImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let square = letterbox(image, input);
    let size = input.image_size as usize;
    let mut planes = if augmentation.min_crop_area >= 1.0 {
        square
    } else {
        let side = square.width as f32;
        let area = rng.random_range(augmentation.min_crop_area..=1.0) * side * side;
        let aspect = (rng.random_range((0.75f32).ln()..=(4.0f32 / 3.0).ln())).exp();
        let crop_w = ((area * aspect).sqrt().round() as usize).clamp(1, square.width);
        let crop_h = ((area / aspect).sqrt().round() as usize).clamp(1, square.height);
        let x0 = rng.random_range(0..=square.width - crop_w);
        let y0 = rng.random_range(0..=square.height - crop_h);
        let cropped = crop(&square, x0, y0, crop_w, crop_h);
        resize_region(&cropped, (size, size), (0, 0), (size, size))
    };
    if augmentation.horizontal_flip && rng.random_bool(0.5) {
        flip_horizontally(&mut planes);
    }
    if augmentation.color_jitter > 0.0 {
        jitter_colors(&mut planes, augmentation.color_jitter, &mut rng);
    }
    normalize(&mut planes, input);
    planes
}

/// A seed for one image in one epoch of one run.
pub fn augmentation_seed(run_seed: u64, epoch: usize, example: usize) -> u64 {
    run_seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((epoch as u64) << 32)
        .wrapping_add(example as u64)
}

/// Stacks equally sized planes into `[batch, 3, size, size]`.
pub fn to_batch(planes: &[PlanarImage], device: &Device) -> Tensor<4> {
    let size = planes.first().map_or(0, |p| p.width);
    let mut data = Vec::with_capacity(planes.len() * 3 * size * size);
    for plane in planes {
        debug_assert_eq!((plane.width, plane.height), (size, size));
        data.extend_from_slice(&plane.data);
    }
    Tensor::from_data(TensorData::new(data, [planes.len(), 3, size, size]), device)
}

/// Scales the longer side to `image_size` (keeping the aspect ratio) and pads the shorter one
/// symmetrically with the mean colour, on the 0..=255 scale. Square inputs are just scaled.
fn letterbox(image: &RgbImage, input: &InputConfig) -> PlanarImage {
    let source = PlanarImage::from_rgb8(image);
    let size = input.image_size as usize;
    let (w, h) = (source.width, source.height);
    if w == h {
        return if w == size {
            source
        } else {
            resize_region(&source, (size, size), (0, 0), (size, size))
        };
    }
    let scale = size as f64 / w.max(h) as f64;
    let new_w = ((w as f64 * scale).round() as usize).clamp(1, size);
    let new_h = ((h as f64 * scale).round() as usize).clamp(1, size);
    let resized = resize_region(&source, (new_w, new_h), (0, 0), (new_w, new_h));
    let (left, top) = ((size - new_w) / 2, (size - new_h) / 2);
    let mut data = vec![0.0f32; 3 * size * size];
    for channel in 0..3 {
        let fill = input.mean[channel] * 255.0;
        let plane = &mut data[channel * size * size..][..size * size];
        plane.fill(fill);
        let source_plane = &resized.data[channel * new_w * new_h..][..new_w * new_h];
        for (y, row) in source_plane.chunks_exact(new_w).enumerate() {
            plane[(top + y) * size + left..][..new_w].copy_from_slice(row);
        }
    }
    PlanarImage {
        width: size,
        height: size,
        data,
    }
}

fn crop(source: &PlanarImage, x0: usize, y0: usize, w: usize, h: usize) -> PlanarImage {
    let mut data = Vec::with_capacity(3 * w * h);
    for channel in 0..3 {
        let plane = &source.data[channel * source.width * source.height..];
        for y in y0..y0 + h {
            data.extend_from_slice(&plane[y * source.width + x0..][..w]);
        }
    }
    PlanarImage {
        width: w,
        height: h,
        data,
    }
}

fn flip_horizontally(planes: &mut PlanarImage) {
    for row in planes.data.chunks_exact_mut(planes.width) {
        row.reverse();
    }
}

/// Brightness and contrast scale around the picture's mean grey; saturation blends each pixel
/// with its own grey value. Values stay on the 0..=255 scale and are clamped to it.
fn jitter_colors(planes: &mut PlanarImage, strength: f32, rng: &mut impl Rng) {
    let brightness = rng.random_range(1.0 - strength..=1.0 + strength);
    let contrast = rng.random_range(1.0 - strength..=1.0 + strength);
    let saturation = rng.random_range(1.0 - strength..=1.0 + strength);
    let n = planes.width * planes.height;
    let (r, rest) = planes.data.split_at_mut(n);
    let (g, b) = rest.split_at_mut(n);
    let grey = |r: f32, g: f32, b: f32| 0.299 * r + 0.587 * g + 0.114 * b;
    let mean_grey = (0..n).map(|i| grey(r[i], g[i], b[i])).sum::<f32>() / n as f32 * brightness;
    for i in 0..n {
        let mut pixel = [r[i] * brightness, g[i] * brightness, b[i] * brightness];
        let pixel_grey = grey(pixel[0], pixel[1], pixel[2]);
        for value in &mut pixel {
            *value = pixel_grey + (*value - pixel_grey) * saturation;
            *value = (mean_grey + (*value - mean_grey) * contrast).clamp(0.0, 255.0);
        }
        (r[i], g[i], b[i]) = (pixel[0], pixel[1], pixel[2]);
    }
}

fn normalize(planes: &mut PlanarImage, input: &InputConfig) {
    let n = planes.width * planes.height;
    for (channel, values) in planes.data.chunks_exact_mut(n).enumerate() {
        let (mean, std) = (input.mean[channel], input.std[channel]);
        for value in values {
            *value = (*value / 255.0 - mean) / std;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(size: u32) -> InputConfig {
        InputConfig::new(size, Normalization::INCEPTION)
    }

    fn gradient_image(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, 90])
        })
    }

    #[test]
    fn a_tall_photo_is_letterboxed_not_cropped() {
        // A 40x80 photo with a red top row and a blue bottom row, into a 20x20 input.
        let mut image = RgbImage::from_pixel(40, 80, image::Rgb([255, 255, 255]));
        for x in 0..40 {
            image.put_pixel(x, 0, image::Rgb([255, 0, 0]));
            image.put_pixel(x, 79, image::Rgb([0, 0, 255]));
        }
        let planes = eval_planes(&image, &input(20));
        assert_eq!((planes.width, planes.height), (20, 20));
        let at = |c: usize, x: usize, y: usize| planes.data[c * 400 + y * 20 + x];
        // The scaled photo is 10 wide, centred: columns 0..5 and 15..20 are padding (0 after
        // normalising to the mean).
        assert_eq!(at(0, 2, 10), 0.0);
        assert_eq!(at(2, 17, 3), 0.0);
        // Top and bottom rows keep their colour tint: the hem and neckline survive.
        assert!(at(2, 10, 0) < at(0, 10, 0), "top row is red-ish");
        assert!(at(0, 10, 19) < at(2, 10, 19), "bottom row is blue-ish");
    }

    #[test]
    fn augmentation_is_reproducible_and_varies_with_the_seed() {
        let image = gradient_image(64, 64);
        let augmentation = Augmentation::default();
        let a = train_planes(&image, &input(32), &augmentation, 11);
        let b = train_planes(&image, &input(32), &augmentation, 11);
        let c = train_planes(&image, &input(32), &augmentation, 12);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!((a.width, a.height, a.data.len()), (32, 32, 3 * 32 * 32));
    }

    #[test]
    fn no_augmentation_equals_evaluation_input() {
        let image = gradient_image(48, 48);
        let none = Augmentation {
            min_crop_area: 1.0,
            horizontal_flip: false,
            color_jitter: 0.0,
        };
        assert_eq!(
            train_planes(&image, &input(24), &none, 5),
            eval_planes(&image, &input(24))
        );
    }

    #[test]
    fn flipping_twice_restores_the_image() {
        let mut planes = eval_planes(&gradient_image(16, 16), &input(16));
        let original = planes.clone();
        flip_horizontally(&mut planes);
        assert_ne!(planes, original);
        assert_eq!(planes.data[0], original.data[15]);
        flip_horizontally(&mut planes);
        assert_eq!(planes, original);
    }
}
