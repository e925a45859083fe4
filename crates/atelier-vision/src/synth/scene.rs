//! One picture: person, dress, background, framing and lighting, with the dress mask and
//! its tight bounding box in output pixels.

use super::background::{self, BackgroundKind};
use super::canvas::Canvas;
use super::color::Rgb;
use super::design::{Design, Fabric};
use super::dress::{self, Dress};
use super::fabric;
use super::figure::{HEAD_CENTRE, HEAD_RY, Person, SOLE_Y};
use super::geometry::{Pt, apply, bounds_after, pt};
use super::rng::{Dice, Stream};
use image::{GrayImage, RgbImage};
use tiny_skia::{Mask, Pixmap, Transform};

/// Tight box around the dress in output pixels, half-open: the dress covers at least half
/// of some pixel in column `x0` and in column `x1 - 1`, and none beyond (same for rows).
/// Sleeves are part of the dress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DressBox {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

/// A rendered picture before JPEG encoding.
pub struct Rendering {
    pub image: RgbImage,
    /// Dress coverage per pixel (0 = none, 255 = full), including parts hidden by the arms.
    pub dress_mask: GrayImage,
    pub dress_box: DressBox,
    /// JPEG quality this picture is to be written with (70..=95).
    pub jpeg_quality: u8,
}

/// Coverage at or above this counts as dress for the box (half a pixel).
pub const BOX_COVERAGE: u8 = 128;

/// Renders picture `index` of a run seeded with `seed`, showing `design`, at `size` x
/// `size` pixels. With `show_dress` false everything is drawn except the dress (same
/// person, pose, framing and background), which lets tests check the mask against pixels.
/// `size` must be at least 16.
pub fn render(design: &Design, seed: u64, index: u64, size: u32, show_dress: bool) -> Rendering {
    let size = size.max(16);
    let mut dice = Dice::new(seed, Stream::Shot, index);
    let person = Person::sample(&mut dice);
    let dress = dress::build(&design.facets, &person, &mut dice);
    let legs = person.legs(dress.max_ankle, dress.max_knee, dress.profile.hem_y - 1.5);
    let ts = frame(&dress, &person, size, &mut dice);
    let mut canvas = backdrop(&dress, &person, ts, size, &mut dice);
    let lighting = Lighting::sample(&mut dice);
    let jpeg_quality = dice.int(70, 95) as u8;

    person.draw_back_hair(&mut canvas);
    person.draw_legs(&mut canvas, &legs);
    person.draw_torso(&mut canvas);
    person.draw_head(&mut canvas);
    let painter = DressPainter::new(&canvas, &dress, &design.fabric, size);
    if show_dress {
        painter.paint_body(&mut canvas);
    }
    for arm in &person.arms {
        person.draw_arm(&mut canvas, arm);
    }
    if show_dress {
        painter.paint_sleeves(&mut canvas);
    }

    let dress_mask = union(&painter.body_mask, &painter.sleeve_masks, size);
    let dress_box = dress_box(&dress_mask, &dress, ts, size);
    let image = lighting.apply(&canvas.pixmap);
    Rendering {
        image,
        dress_mask,
        dress_box,
        jpeg_quality,
    }
}

/// Pixels per figure unit under `ts` (its scale, whatever the rotation).
fn pixels_per_unit(ts: Transform) -> f32 {
    (ts.sx * ts.sx + ts.ky * ts.ky).sqrt()
}

/// A canvas with the background drawn and, where the feet are in the picture, a soft
/// shadow on the floor under them.
fn backdrop(dress: &Dress, person: &Person, ts: Transform, size: u32, dice: &mut Dice) -> Canvas {
    let Some(pixmap) = Pixmap::new(size, size) else {
        unreachable!("size is at least 16")
    };
    let mut canvas = Canvas { pixmap, ts };
    let kind = background::sample_kind(dice);
    background::draw(&mut canvas.pixmap, kind, dice);
    let shadow_strength = match kind {
        BackgroundKind::StudioWhite | BackgroundKind::StudioGrey => dice.range(0.25, 0.45),
        _ => dice.range(0.15, 0.35),
    };
    let feet = apply(ts, pt(0.5 * (person.stance[1] - person.stance[0]), SOLE_Y));
    if feet.y < size as f32 * 1.05 {
        let spread = (person.stance[0] + person.stance[1] + 6.0).max(dress.profile.hem_hw * 1.6);
        let spread_px = spread * pixels_per_unit(ts);
        background::floor_shadow(&mut canvas.pixmap, feet, spread_px, shadow_strength);
    }
    canvas
}

/// Everything needed to paint one dress on a canvas: its coverage masks (taken before any
/// of it is drawn) and the fabric's print, shading and edge tone.
struct DressPainter<'a> {
    dress: &'a Dress,
    body_mask: Mask,
    sleeve_masks: Vec<Mask>,
    to_figure: Transform,
    print: fabric::PrintSampler,
    shading: fabric::Lighting,
    sheen: f32,
    edge: Rgb,
    size: u32,
}

impl<'a> DressPainter<'a> {
    fn new(canvas: &Canvas, dress: &'a Dress, fabric: &Fabric, size: u32) -> Self {
        let holes: Vec<&[Pt]> = dress.holes.iter().map(|h| h.as_slice()).collect();
        let body_mask = canvas.mask(&[&dress.body], &holes);
        let sleeve_masks = dress
            .sleeves
            .iter()
            .map(|s| canvas.mask(&[&s.outline], &[]))
            .collect();
        DressPainter {
            dress,
            body_mask,
            sleeve_masks,
            to_figure: canvas.ts.invert().unwrap_or_default(),
            print: fabric::PrintSampler::new(fabric, pixels_per_unit(canvas.ts)),
            shading: fabric::Lighting::new(fabric.sheen),
            sheen: fabric.sheen,
            edge: fabric.base.scale(0.5),
            size,
        }
    }

    /// The dress body (under the arms): shaded fabric, fold lines, then its outline and
    /// the outlines of any holes.
    fn paint_body(&self, canvas: &mut Canvas) {
        let (dress, edge) = (self.dress, self.edge);
        let area = pixel_area(&dress.body, canvas.ts, self.size);
        fabric::paint_body(
            &mut canvas.pixmap,
            &self.body_mask,
            area,
            self.to_figure,
            &self.print,
            &self.shading,
            &dress.profile,
        );
        for fold in &dress.folds {
            let (tone, alpha) = if fold.dark {
                (edge, 0.35)
            } else {
                (Rgb::WHITE, 0.22 + 0.2 * self.sheen)
            };
            canvas.stroke(&fold.points, false, tone, alpha, fold.width);
        }
        canvas.stroke(&dress.body, true, edge, 0.5, 0.3);
        for hole in &dress.holes {
            canvas.stroke(hole, true, edge, 0.5, 0.3);
        }
    }

    /// The sleeves (over the arms): shaded fabric, then their outlines.
    fn paint_sleeves(&self, canvas: &mut Canvas) {
        for (sleeve, mask) in self.dress.sleeves.iter().zip(&self.sleeve_masks) {
            let area = pixel_area(&sleeve.outline, canvas.ts, self.size);
            fabric::paint_sleeve(
                &mut canvas.pixmap,
                mask,
                area,
                self.to_figure,
                &self.print,
                &self.shading,
                sleeve,
            );
            canvas.stroke(&sleeve.outline, true, self.edge, 0.5, 0.3);
        }
    }
}

/// The dress box from the mask, or, if no pixel is half covered (a dress too small to
/// see), from the outline's bounds.
fn dress_box(mask: &GrayImage, dress: &Dress, ts: Transform, size: u32) -> DressBox {
    tight_box(mask).unwrap_or_else(|| {
        let (x0, y0, x1, y1) = bounds_after(&dress.points().copied().collect::<Vec<_>>(), ts);
        let c = |v: f32| v.clamp(0.0, size as f32) as u32;
        DressBox {
            x0: c(x0),
            y0: c(y0),
            x1: c(x1.ceil()).max(c(x0) + 1),
            y1: c(y1.ceil()).max(c(y0) + 1),
        }
    })
}

/// Pixel box (x0, y0, x1, y1) holding the transformed points, clamped to the image.
fn pixel_area(points: &[Pt], ts: Transform, size: u32) -> (u32, u32, u32, u32) {
    let (x0, y0, x1, y1) = bounds_after(points, ts);
    let c = |v: f32| v.clamp(0.0, size as f32) as u32;
    (
        c(x0.floor() - 1.0),
        c(y0.floor() - 1.0),
        c(x1.ceil() + 1.0),
        c(y1.ceil() + 1.0),
    )
}

/// Per-pixel maximum of the body and sleeve coverages.
fn union(body: &Mask, sleeves: &[Mask], size: u32) -> GrayImage {
    let mut data = body.data().to_vec();
    for sleeve in sleeves {
        for (d, &s) in data.iter_mut().zip(sleeve.data()) {
            *d = (*d).max(s);
        }
    }
    GrayImage::from_raw(size, size, data).unwrap_or_else(|| GrayImage::new(size, size))
}

/// Smallest half-open box holding every pixel with coverage >= [`BOX_COVERAGE`].
pub fn tight_box(mask: &GrayImage) -> Option<DressBox> {
    let w = mask.width() as usize;
    let mut b: Option<DressBox> = None;
    for (y, row) in mask.as_raw().chunks_exact(w.max(1)).enumerate() {
        let Some(first) = row.iter().position(|&c| c >= BOX_COVERAGE) else {
            continue;
        };
        let last = row
            .iter()
            .rposition(|&c| c >= BOX_COVERAGE)
            .unwrap_or(first);
        let (x0, x1, y) = (first as u32, last as u32 + 1, y as u32);
        let e = b.get_or_insert(DressBox {
            x0,
            y0: y,
            x1,
            y1: y + 1,
        });
        e.x0 = e.x0.min(x0);
        e.x1 = e.x1.max(x1);
        e.y1 = y + 1;
    }
    b
}

/// Chooses scale, rotation and position: either the whole figure (head to feet) or a
/// closer crop that keeps the whole dress and some leg below the hem. The dress always
/// ends up fully inside the image with a small margin.
fn frame(dress: &Dress, person: &Person, size: u32, dice: &mut Dice) -> Transform {
    let s = size as f32;
    let dress_points: Vec<Pt> = dress.points().copied().collect();
    let (dx0, dy0, dx1, dy1) = bounds_after(&dress_points, Transform::identity());
    let whole_figure = dice.chance(0.5);
    let (left, top, right, bottom) = if whole_figure {
        let hands = person.arms.iter().flat_map(|a| a.hand.iter());
        let (hx0, _, hx1, _) =
            bounds_after(&hands.copied().collect::<Vec<_>>(), Transform::identity());
        (
            dx0.min(hx0).min(-9.0),
            HEAD_CENTRE.y - HEAD_RY - 2.4,
            dx1.max(hx1).max(9.0),
            SOLE_Y + 0.6,
        )
    } else {
        let top = dice.range(3.0, dy0.min(14.0));
        let bottom = (dy1 + dice.range(5.0, 16.0)).min(SOLE_Y + 0.6);
        (dx0 - 1.0, top, dx1 + 1.0, bottom)
    };
    let fill = if whole_figure {
        dice.range(0.8, 0.95)
    } else {
        dice.range(0.88, 1.0)
    };
    let extent = (bottom - top).max(right - left);
    let mut scale = s * fill / extent;
    let angle = dice.jitter(4.0);
    let centre = pt(0.5 * (left + right), 0.5 * (top + bottom));
    let slack = (s - scale * extent).max(0.0);
    let offset = pt(dice.jitter(0.5) * slack, dice.jitter(0.5) * slack);
    let margin = (s * 0.01).max(1.5);
    let mut ts = Transform::identity();
    for _ in 0..40 {
        let base = Transform::from_rotate(angle).pre_scale(scale, scale);
        let c = apply(base, centre);
        ts = base.post_translate(s * 0.5 + offset.x - c.x, s * 0.5 + offset.y - c.y);
        let (x0, y0, x1, y1) = bounds_after(&dress_points, ts);
        if x1 - x0 > s - 2.0 * margin || y1 - y0 > s - 2.0 * margin {
            scale *= 0.96;
            continue;
        }
        let shift_x = (margin - x0).max(0.0) - (x1 - (s - margin)).max(0.0);
        let shift_y = (margin - y0).max(0.0) - (y1 - (s - margin)).max(0.0);
        ts = ts.post_translate(shift_x, shift_y);
        break;
    }
    ts
}

/// Global exposure, contrast and colour cast, as from a different camera or lamp.
struct Lighting {
    gain: [f32; 3],
    contrast: f32,
}

impl Lighting {
    fn sample(dice: &mut Dice) -> Lighting {
        let exposure = dice.range(0.88, 1.1);
        let cast = [dice.jitter(0.04), dice.jitter(0.03), dice.jitter(0.04)];
        Lighting {
            gain: cast.map(|c| exposure * (1.0 + c)),
            contrast: dice.range(0.86, 1.12),
        }
    }

    fn apply(&self, pixmap: &Pixmap) -> RgbImage {
        let luts: Vec<[u8; 256]> = self
            .gain
            .iter()
            .map(|&g| {
                let mut lut = [0u8; 256];
                for (v, out) in lut.iter_mut().enumerate() {
                    let x = (v as f32 / 255.0 * g - 0.5) * self.contrast + 0.5;
                    *out = (x * 255.0).round().clamp(0.0, 255.0) as u8;
                }
                lut
            })
            .collect();
        let (w, h) = (pixmap.width(), pixmap.height());
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for px in pixmap.data().chunks_exact(4) {
            rgb.push(luts[0][px[0] as usize]);
            rgb.push(luts[1][px[1] as usize]);
            rgb.push(luts[2][px[2] as usize]);
        }
        RgbImage::from_raw(w, h, rgb).unwrap_or_else(|| RgbImage::new(w, h))
    }
}
