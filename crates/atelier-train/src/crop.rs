//! Crop geometry: the detail square a model reads beside the whole photo ([`DetailCrop`]), the
//! pixel [`Region`] it covers, cutting it out ([`crop`]), and converting boxes between image
//! pixels and fractions of the letterboxed input square ([`to_square`], [`from_square`]), and
//! how well two boxes agree ([`iou`]).
//!
//! Pure arithmetic on boxes and pixels; the dress locator that predicts the boxes lives in
//! [`crate::locator`].

use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};

/// Which square of the original photo the detail view shows, relative to the dress box: its
/// side is `side` times the box height, its top `top_margin` box heights above the box, and it
/// is centred on the box horizontally. The defaults take in the neckline, the shoulders and
/// both arms down to the hands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DetailCrop {
    pub side: f32,
    pub top_margin: f32,
}

impl Default for DetailCrop {
    fn default() -> Self {
        Self {
            side: 0.62,
            top_margin: 0.05,
        }
    }
}

/// A square region of an image in pixels; it may reach outside the image (filled with grey).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    pub x0: i64,
    pub y0: i64,
    pub side: u32,
}

impl DetailCrop {
    /// The detail square for a dress box given in pixels of a `width` x `height` image.
    pub fn region(&self, dress_box: [f32; 4], width: u32, height: u32) -> Region {
        let [x0, y0, x1, y1] = dress_box;
        let box_height = (y1 - y0).max(1.0);
        // A degenerate prediction still gets a usable square of at least 1/8 of the image.
        let floor = width.max(height) as f32 / 8.0;
        let side = (self.side * box_height).max(floor);
        let centre_x = (x0 + x1) / 2.0;
        let top = y0 - self.top_margin * box_height;
        Region {
            x0: (centre_x - side / 2.0).round() as i64,
            y0: top.round() as i64,
            side: side.round().max(1.0) as u32,
        }
    }
}

impl DetailCrop {
    /// The detail square for a locator box given in fractions of the letterboxed square.
    pub fn region_for(&self, square_box: [f32; 4], width: u32, height: u32) -> Region {
        self.region(from_square(square_box, width, height), width, height)
    }
}

/// Cuts `region` out of `image`; parts outside the image are mid grey.
pub fn crop(image: &RgbImage, region: Region) -> RgbImage {
    let side = region.side;
    let (width, height) = (image.width() as i64, image.height() as i64);
    RgbImage::from_fn(side, side, |x, y| {
        let (sx, sy) = (region.x0 + x as i64, region.y0 + y as i64);
        if (0..width).contains(&sx) && (0..height).contains(&sy) {
            *image.get_pixel(sx as u32, sy as u32)
        } else {
            Rgb([127, 127, 127])
        }
    })
}

/// Where a `width` x `height` photo lands in the letterboxed square: `(scale, left, top)` in
/// units of the square's side (the same arithmetic as `input::letterbox`, up to its rounding).
fn letterbox_geometry(width: u32, height: u32) -> (f32, f32, f32) {
    let longer = width.max(height).max(1) as f32;
    let scale = 1.0 / longer;
    let left = (1.0 - width as f32 * scale) / 2.0;
    let top = (1.0 - height as f32 * scale) / 2.0;
    (scale, left, top)
}

/// A box in image pixels as fractions of the letterboxed square.
pub fn to_square(pixels: [f32; 4], width: u32, height: u32) -> [f32; 4] {
    let (scale, left, top) = letterbox_geometry(width, height);
    let [x0, y0, x1, y1] = pixels;
    [
        left + x0 * scale,
        top + y0 * scale,
        left + x1 * scale,
        top + y1 * scale,
    ]
}

/// A box in fractions of the letterboxed square as image pixels.
pub fn from_square(square: [f32; 4], width: u32, height: u32) -> [f32; 4] {
    let (scale, left, top) = letterbox_geometry(width, height);
    let [x0, y0, x1, y1] = square;
    [
        (x0 - left) / scale,
        (y0 - top) / scale,
        (x1 - left) / scale,
        (y1 - top) / scale,
    ]
}

/// Intersection over union of two boxes.
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: [f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detail_square_follows_the_box_by_hand() {
        // Box 100 px tall, centred at x = 60: side 62, top 5 px above the box.
        let crop = DetailCrop::default();
        let region = crop.region([40.0, 20.0, 80.0, 120.0], 256, 256);
        assert_eq!(
            region,
            Region {
                x0: 29,
                y0: 15,
                side: 62
            }
        );
        // A collapsed box still gives a square of an eighth of the image.
        let tiny = crop.region([10.0, 10.0, 10.0, 10.0], 256, 128);
        assert_eq!(tiny.side, 32);
    }

    #[test]
    fn crops_copy_pixels_and_pad_outside_with_grey() {
        let image = RgbImage::from_fn(4, 3, |x, y| Rgb([x as u8, y as u8, 9]));
        let out = crop(
            &image,
            Region {
                x0: 2,
                y0: -1,
                side: 3,
            },
        );
        assert_eq!(out.dimensions(), (3, 3));
        assert_eq!(*out.get_pixel(0, 0), Rgb([127, 127, 127]));
        assert_eq!(*out.get_pixel(0, 1), Rgb([2, 0, 9]));
        assert_eq!(*out.get_pixel(1, 2), Rgb([3, 1, 9]));
        assert_eq!(*out.get_pixel(2, 1), Rgb([127, 127, 127]));
    }

    #[test]
    fn iou_by_hand() {
        assert_eq!(iou([0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]), 1.0 / 7.0);
        assert_eq!(iou([0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0]), 0.0);
    }

    #[test]
    fn square_coordinates_round_trip_and_match_the_letterbox() {
        // A 200 x 100 landscape photo fills the square's width, centred vertically: its top
        // edge is at 0.25 of the square, its bottom at 0.75.
        let square = to_square([0.0, 0.0, 200.0, 100.0], 200, 100);
        assert_eq!(square, [0.0, 0.25, 1.0, 0.75]);
        let back = from_square([0.1, 0.3, 0.6, 0.7], 200, 100);
        let again = to_square(back, 200, 100);
        for (a, b) in again.iter().zip([0.1, 0.3, 0.6, 0.7]) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
