//! The preview sheet: one captioned row per facet value (all five facets), each showing
//! designs forced to that value, so a person can check the pictures agree with the labels.

use super::SynthError;
use super::design::sample_design;
use super::facets::FACETS;
use super::manifest::write_atomic;
use super::rng::{Dice, Stream};
use super::scene;
use image::{ImageEncoder, Rgb as Px, RgbImage};
use rayon::prelude::*;
use std::path::Path;

/// Example pictures per row.
pub const PREVIEW_EXAMPLES: usize = 6;

const MARGIN: u32 = 10;
const GAP: u32 = 4;
const INK: Px<u8> = Px([34, 34, 40]);
const PAPER: Px<u8> = Px([255, 255, 255]);
const BAND: Px<u8> = Px([243, 243, 246]);

/// Draws `text` with the 8x8 bitmap font scaled by `scale`, top-left at (x, y).
fn draw_text(img: &mut RgbImage, text: &str, x: u32, y: u32, scale: u32, colour: Px<u8>) {
    for (i, ch) in text.chars().enumerate() {
        let code = ch as usize;
        let glyph = if code < 128 {
            font8x8::legacy::BASIC_LEGACY[code]
        } else {
            [0; 8]
        };
        let gx = x + i as u32 * 8 * scale;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8u32 {
                if bits >> col & 1 == 1 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let (px, py) = (gx + col * scale + dx, y + row as u32 * scale + dy);
                            if px < img.width() && py < img.height() {
                                img.put_pixel(px, py, colour);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn fill_rect(img: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, colour: Px<u8>) {
    for py in y..(y + h).min(img.height()) {
        for px in x..(x + w).min(img.width()) {
            img.put_pixel(px, py, colour);
        }
    }
}

/// Writes a PNG preview sheet: 29 rows ("facet: value" caption, then
/// [`PREVIEW_EXAMPLES`] pictures of `size` pixels, 48..=512), pictures shown before JPEG
/// compression.
pub fn write_preview_sheet(path: &Path, seed: u64, size: u32) -> Result<(), SynthError> {
    if !(48..=512).contains(&size) {
        return Err(SynthError::InvalidOption {
            option: "preview thumbnail size",
            value: size.to_string(),
            allowed: "48 to 512 pixels",
        });
    }
    let rows = caption_rows();
    let layout = Layout::new(&rows, size);
    let mut sheet = RgbImage::from_pixel(layout.width, layout.height, PAPER);
    draw_text(
        &mut sheet,
        &format!("atelier synth preview, seed {seed}"),
        MARGIN,
        MARGIN,
        layout.scale,
        INK,
    );
    let thumbs = render_thumbnails(&rows, seed, size);
    layout.draw_captions(&mut sheet, &rows);
    layout.place_thumbnails(&mut sheet, thumbs);
    write_atomic(path, &encode_png(&sheet, path)?)
}

/// One row of the sheet: facet index, value index and its caption.
type Row = (usize, usize, String);

/// Every value of every facet, in facet order, captioned "facet: value".
fn caption_rows() -> Vec<Row> {
    FACETS
        .iter()
        .enumerate()
        .flat_map(|(f, (name, values))| {
            values
                .iter()
                .enumerate()
                .map(move |(v, value)| (f, v, format!("{name}: {value}")))
        })
        .collect()
}

/// Sizes and positions on the sheet, in pixels.
struct Layout {
    /// Thumbnail width and height.
    size: u32,
    /// Text scale (the font is 8 pixels at scale 1).
    scale: u32,
    caption_w: u32,
    title_h: u32,
    row_h: u32,
    width: u32,
    height: u32,
}

impl Layout {
    fn new(rows: &[Row], size: u32) -> Layout {
        let scale = if size >= 96 { 2 } else { 1 };
        let caption_w =
            rows.iter().map(|r| r.2.len() as u32).max().unwrap_or(0) * 8 * scale + 2 * MARGIN;
        let title_h = 8 * scale * 2 + MARGIN;
        let row_h = size + GAP;
        Layout {
            size,
            scale,
            caption_w,
            title_h,
            row_h,
            width: caption_w + PREVIEW_EXAMPLES as u32 * (size + GAP) + MARGIN,
            height: title_h + rows.len() as u32 * row_h + MARGIN,
        }
    }

    /// Row captions, on a light band behind every other facet.
    fn draw_captions(&self, sheet: &mut RgbImage, rows: &[Row]) {
        for (r, (facet, _, caption)) in rows.iter().enumerate() {
            let y = self.title_h + r as u32 * self.row_h;
            if facet % 2 == 1 {
                fill_rect(sheet, 0, y, self.width, self.row_h, BAND);
            }
            let text_y = y + self.size / 2 - 4 * self.scale;
            draw_text(sheet, caption, MARGIN, text_y, self.scale, INK);
        }
    }

    /// Copies each `(row, example, picture)` into its cell.
    fn place_thumbnails(&self, sheet: &mut RgbImage, thumbs: Vec<(usize, usize, RgbImage)>) {
        for (r, k, thumb) in thumbs {
            let x = self.caption_w + k as u32 * (self.size + GAP);
            let y = self.title_h + r as u32 * self.row_h + GAP / 2;
            image::imageops::replace(sheet, &thumb, x as i64, y as i64);
        }
    }
}

/// [`PREVIEW_EXAMPLES`] pictures per row, each of a design drawn with the row's facet value
/// forced, as `(row, example, picture)`.
fn render_thumbnails(rows: &[Row], seed: u64, size: u32) -> Vec<(usize, usize, RgbImage)> {
    rows.par_iter()
        .enumerate()
        .flat_map_iter(|(r, &(facet, value, _))| {
            (0..PREVIEW_EXAMPLES).map(move |k| {
                let stream = (r * PREVIEW_EXAMPLES + k) as u64;
                let design = sample_design(
                    r * PREVIEW_EXAMPLES + k,
                    &mut Dice::new(seed, Stream::Preview, stream),
                    Some((facet, value)),
                );
                let rendering = scene::render(&design, seed ^ 0x5EED_5EED, stream, size, true);
                (r, k, rendering.image)
            })
        })
        .collect()
}

/// The sheet as a PNG (best compression); `path` only names the file in errors.
fn encode_png(sheet: &RgbImage, path: &Path) -> Result<Vec<u8>, SynthError> {
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut png,
        image::codecs::png::CompressionType::Best,
        image::codecs::png::FilterType::Adaptive,
    )
    .write_image(
        sheet.as_raw(),
        sheet.width(),
        sheet.height(),
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| SynthError::Encode {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(png)
}
