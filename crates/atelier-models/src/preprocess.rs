//! Turning RGB8 photos into network input: resize the shorter side, centre crop, normalise.
//!
//! The resize is bilinear with antialiasing, defined exactly as PyTorch's
//! `F.interpolate(x, size, mode="bilinear", align_corners=False, antialias=True)` on float input
//! (the same triangle filter as PIL's `Image.resize(..., BILINEAR)`): output pixel `i` has its
//! centre at `scale * (i + 0.5)` in input coordinates (`scale = in / out`); when shrinking, the
//! triangle is stretched by `scale` so every input pixel contributes, which avoids aliasing;
//! weights are normalised to sum to 1. Rows are resampled first, then columns, in float32 on the
//! 0..=255 scale, with no rounding in between. The Python side of the tests does the same
//! (`fixtures/make_imagenet_reference.py`).

use burn::prelude::*;
use image::RgbImage;

use crate::backbone::Normalization;

/// Why an image could not be turned into network input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreprocessError {
    #[error("image is {width}x{height} pixels; it needs at least one pixel in each direction")]
    EmptyImage { width: u32, height: u32 },
    #[error(
        "resize_shorter_side {resize_shorter_side} is smaller than crop {crop}; the centre crop \
         must fit inside the resized image"
    )]
    CropLargerThanResize { resize_shorter_side: u32, crop: u32 },
    #[error(
        "image {index} is {width}x{height} but the batch expects {expected}x{expected}; \
         preprocess every image with the same transform"
    )]
    SizeMismatch {
        index: usize,
        width: usize,
        height: usize,
        expected: usize,
    },
}

/// An image as three float32 planes (R, G, B), each `height` rows of `width` values.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanarImage {
    pub width: usize,
    pub height: usize,
    /// `3 * height * width` values, channel-major then row-major.
    pub data: Vec<f32>,
}

impl PlanarImage {
    /// Splits an RGB8 image into planes, keeping values on the 0..=255 scale.
    pub fn from_rgb8(image: &RgbImage) -> Self {
        let (width, height) = (image.width() as usize, image.height() as usize);
        let plane = width * height;
        let mut data = vec![0.0f32; 3 * plane];
        for (i, pixel) in image.as_raw().chunks_exact(3).enumerate() {
            data[i] = f32::from(pixel[0]);
            data[plane + i] = f32::from(pixel[1]);
            data[2 * plane + i] = f32::from(pixel[2]);
        }
        Self {
            width,
            height,
            data,
        }
    }
}

/// Evaluation-time transform: resize so the shorter side is `resize_shorter_side`, take the
/// centre `crop` x `crop` square, scale to 0..=1 and normalise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalTransform {
    pub resize_shorter_side: u32,
    pub crop: u32,
    pub normalization: Normalization,
}

impl EvalTransform {
    /// The usual ImageNet evaluation transform: shorter side 256, centre crop 224.
    pub fn imagenet(normalization: Normalization) -> Self {
        Self {
            resize_shorter_side: 256,
            crop: 224,
            normalization,
        }
    }

    /// Size of the resized image before cropping: the shorter side becomes
    /// `resize_shorter_side`, the longer one `floor(resize_shorter_side * long / short)`
    /// (torchvision's rule), as (width, height).
    pub fn resized_size(&self, width: u32, height: u32) -> (usize, usize) {
        let target = u64::from(self.resize_shorter_side);
        let (w, h) = (u64::from(width), u64::from(height));
        if h <= w {
            ((target * w / h) as usize, target as usize)
        } else {
            (target as usize, (target * h / w) as usize)
        }
    }

    /// Returns the normalised `3 x crop x crop` network input for one image.
    pub fn apply(&self, image: &RgbImage) -> Result<PlanarImage, PreprocessError> {
        let (width, height) = image.dimensions();
        if width == 0 || height == 0 {
            return Err(PreprocessError::EmptyImage { width, height });
        }
        if self.crop > self.resize_shorter_side || self.crop == 0 {
            return Err(PreprocessError::CropLargerThanResize {
                resize_shorter_side: self.resize_shorter_side,
                crop: self.crop,
            });
        }
        let (resized_w, resized_h) = self.resized_size(width, height);
        let crop = self.crop as usize;
        let left = (resized_w - crop) / 2;
        let top = (resized_h - crop) / 2;
        let source = PlanarImage::from_rgb8(image);
        let mut out = resize_region(&source, (resized_w, resized_h), (left, top), (crop, crop));
        normalize(&mut out, self.normalization);
        Ok(out)
    }

    /// Preprocesses a batch into one `[batch, 3, crop, crop]` tensor.
    pub fn apply_batch(
        &self,
        images: &[&RgbImage],
        device: &Device,
    ) -> Result<Tensor<4>, PreprocessError> {
        let planes = images
            .iter()
            .map(|image| self.apply(image))
            .collect::<Result<Vec<_>, _>>()?;
        stack_planes(&planes, self.crop as usize, device)
    }
}

/// Stacks equally sized planar images into a `[batch, 3, size, size]` tensor.
pub fn stack_planes(
    planes: &[PlanarImage],
    size: usize,
    device: &Device,
) -> Result<Tensor<4>, PreprocessError> {
    let mut data = Vec::with_capacity(planes.len() * 3 * size * size);
    for (index, plane) in planes.iter().enumerate() {
        if plane.width != size || plane.height != size {
            return Err(PreprocessError::SizeMismatch {
                index,
                width: plane.width,
                height: plane.height,
                expected: size,
            });
        }
        data.extend_from_slice(&plane.data);
    }
    Ok(Tensor::from_data(
        TensorData::new(data, [planes.len(), 3, size, size]),
        device,
    ))
}

/// `(x / 255 - mean) / std` per channel, in the same operation order as the PyTorch reference.
fn normalize(image: &mut PlanarImage, normalization: Normalization) {
    let plane = image.width * image.height;
    for (channel, values) in image.data.chunks_exact_mut(plane).enumerate() {
        let (mean, std) = (normalization.mean[channel], normalization.std[channel]);
        for value in values {
            *value = (*value / 255.0 - mean) / std;
        }
    }
}

/// Resamples `source` to `resized` (width, height) and returns only the `size` window starting
/// at `offset` (both as (x, y)); the rest of the resized image is never computed.
pub fn resize_region(
    source: &PlanarImage,
    resized: (usize, usize),
    offset: (usize, usize),
    size: (usize, usize),
) -> PlanarImage {
    let columns = AxisFilter::new(source.width, resized.0, offset.0, size.0);
    let rows = AxisFilter::new(source.height, resized.1, offset.1, size.1);
    let (out_w, out_h) = size;
    let mut data = vec![0.0f32; 3 * out_w * out_h];
    // One source row after horizontal filtering.
    let mut row_buffer = vec![0.0f32; source.height * out_w];
    for channel in 0..3 {
        let plane =
            &source.data[channel * source.width * source.height..][..source.width * source.height];
        for (y, source_row) in plane.chunks_exact(source.width).enumerate() {
            let filtered = &mut row_buffer[y * out_w..][..out_w];
            for (x, out) in filtered.iter_mut().enumerate() {
                *out = columns.apply(x, |i| source_row[i]);
            }
        }
        let out_plane = &mut data[channel * out_w * out_h..][..out_w * out_h];
        for (y, out_row) in out_plane.chunks_exact_mut(out_w).enumerate() {
            for (x, out) in out_row.iter_mut().enumerate() {
                *out = rows.apply(y, |i| row_buffer[i * out_w + x]);
            }
        }
    }
    PlanarImage {
        width: out_w,
        height: out_h,
        data,
    }
}

/// Filter taps along one axis for a window of output positions.
struct AxisFilter {
    /// First input index each output position reads.
    starts: Vec<usize>,
    /// Normalised weights for consecutive input indices from `starts[i]`.
    weights: Vec<Vec<f32>>,
}

impl AxisFilter {
    fn new(in_size: usize, out_size: usize, first: usize, count: usize) -> Self {
        let scale = in_size as f64 / out_size as f64;
        // The triangle's half-width in input pixels: 1 when enlarging, `scale` when shrinking.
        let (support, inv_scale) = if scale >= 1.0 {
            (scale, 1.0 / scale)
        } else {
            (1.0, 1.0)
        };
        let mut starts = Vec::with_capacity(count);
        let mut weights = Vec::with_capacity(count);
        for i in first..first + count {
            let center = scale * (i as f64 + 0.5);
            // Truncation toward zero, then clamping, as in PyTorch's index computation.
            let start = ((center - support + 0.5) as i64).max(0) as usize;
            let end = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let taps: Vec<f64> = (start..end)
                .map(|j| triangle((j as f64 - center + 0.5) * inv_scale))
                .collect();
            let total: f64 = taps.iter().sum();
            let norm = if total == 0.0 { 1.0 } else { 1.0 / total };
            starts.push(start);
            weights.push(taps.iter().map(|w| (w * norm) as f32).collect());
        }
        Self { starts, weights }
    }

    /// Weighted sum of `value(input index)` for output position `index` (relative to the window).
    fn apply(&self, index: usize, value: impl Fn(usize) -> f32) -> f32 {
        let start = self.starts[index];
        self.weights[index]
            .iter()
            .enumerate()
            .map(|(k, w)| w * value(start + k))
            .sum()
    }
}

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planar(width: usize, height: usize, f: impl Fn(usize, usize, usize) -> f32) -> PlanarImage {
        let mut data = Vec::new();
        for c in 0..3 {
            for y in 0..height {
                for x in 0..width {
                    data.push(f(c, x, y));
                }
            }
        }
        PlanarImage {
            width,
            height,
            data,
        }
    }

    #[test]
    fn identity_resize_keeps_pixels() {
        let image = planar(5, 4, |c, x, y| (c * 100 + y * 10 + x) as f32);
        let out = resize_region(&image, (5, 4), (0, 0), (5, 4));
        assert_eq!(out, image);
    }

    #[test]
    fn constant_image_stays_constant_when_shrunk_or_enlarged() {
        let image = planar(37, 23, |c, _, _| 10.0 + c as f32);
        for (w, h) in [(5, 3), (80, 51), (37, 7)] {
            let out = resize_region(&image, (w, h), (0, 0), (w, h));
            for (i, v) in out.data.iter().enumerate() {
                let expected = 10.0 + (i / (w * h)) as f32;
                assert!((v - expected).abs() < 1e-4, "{w}x{h}: {v} vs {expected}");
            }
        }
    }

    #[test]
    fn halving_averages_pixel_pairs() {
        // Shrinking by exactly 2: each output pixel centre falls between two input pixels and
        // the stretched triangle gives weights 1/8, 3/8, 3/8, 1/8 over four inputs (2 at edges).
        let image = planar(8, 1, |_, x, _| x as f32);
        let out = resize_region(&image, (4, 1), (0, 0), (4, 1));
        let row = &out.data[..4];
        // Interior outputs are symmetric around the pair centre: 1.5, 3.5, ...
        assert!((row[1] - 2.5).abs() < 1e-5, "{row:?}");
        assert!((row[2] - 4.5).abs() < 1e-5, "{row:?}");
        // Left edge: taps on inputs 0,1,2 with weights 3/8,3/8,1/8 renormalised.
        assert!(
            (row[0] - (3.0 * 0.0 + 3.0 * 1.0 + 2.0) / 7.0).abs() < 1e-5,
            "{row:?}"
        );
    }

    #[test]
    fn window_equals_crop_of_full_resize() {
        let image = planar(31, 19, |c, x, y| ((c * 7 + x * 3 + y * 5) % 17) as f32);
        let full = resize_region(&image, (13, 11), (0, 0), (13, 11));
        let window = resize_region(&image, (13, 11), (4, 2), (6, 5));
        for c in 0..3 {
            for y in 0..5 {
                for x in 0..6 {
                    let a = window.data[c * 30 + y * 6 + x];
                    let b = full.data[c * 143 + (y + 2) * 13 + (x + 4)];
                    assert_eq!(a, b);
                }
            }
        }
    }

    #[test]
    fn shorter_side_rule_truncates_the_longer_side() {
        let t = EvalTransform::imagenet(Normalization::IMAGENET);
        assert_eq!(t.resized_size(451, 300), (384, 256));
        assert_eq!(t.resized_size(300, 451), (256, 384));
        assert_eq!(t.resized_size(512, 512), (256, 256));
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let t = EvalTransform::imagenet(Normalization::IMAGENET);
        let empty = RgbImage::new(0, 10);
        assert_eq!(
            t.apply(&empty),
            Err(PreprocessError::EmptyImage {
                width: 0,
                height: 10
            })
        );
        let bad = EvalTransform {
            resize_shorter_side: 100,
            crop: 224,
            normalization: Normalization::IMAGENET,
        };
        assert!(bad.apply(&RgbImage::new(10, 10)).is_err());
        // A 1x1 image is upscaled, not rejected.
        assert_eq!(t.apply(&RgbImage::new(1, 1)).unwrap().width, 224);
    }
}
