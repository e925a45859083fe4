//! Backgrounds: studio white or grey paper, colour gradients, textured walls, and cluttered
//! rooms made of random shapes. Chosen independently of the dress.

use super::color::Rgb;
use super::geometry::{Pt, ellipse, pt};
use super::rng::Dice;
use tiny_skia::{
    Color, FillRule, GradientStop, Paint, PathBuilder, Pixmap, Point, RadialGradient, Rect, Shader,
    SpreadMode, Transform,
};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BackgroundKind {
    StudioWhite,
    StudioGrey,
    Gradient,
    Textured,
    Cluttered,
}

const KINDS: [BackgroundKind; 5] = [
    BackgroundKind::StudioWhite,
    BackgroundKind::StudioGrey,
    BackgroundKind::Gradient,
    BackgroundKind::Textured,
    BackgroundKind::Cluttered,
];
const KIND_WEIGHTS: [f64; 5] = [0.26, 0.2, 0.18, 0.16, 0.2];

pub fn sample_kind(dice: &mut Dice) -> BackgroundKind {
    KINDS[dice.weighted(&KIND_WEIGHTS)]
}

/// A muted colour suitable for walls and props.
fn muted(dice: &mut Dice, light_lo: f32, light_hi: f32) -> Rgb {
    Rgb::from_hsl(
        dice.range(0.0, 1.0),
        dice.range(0.08, 0.35),
        dice.range(light_lo, light_hi),
    )
}

fn paint_with(shader: Shader<'_>) -> Paint<'_> {
    Paint {
        shader,
        anti_alias: true,
        ..Paint::default()
    }
}

/// Writes every pixel from `colour_at(x, y)` (0..1 RGB, pixel centres); one pass, no
/// blending. Float-to-byte casts saturate, so no clamping is needed.
fn fill_per_pixel(pixmap: &mut Pixmap, colour_at: impl Fn(f32, f32) -> [f32; 3]) {
    let s = pixmap.width() as usize;
    for (y, row) in pixmap.data_mut().chunks_exact_mut(4 * s).enumerate() {
        let fy = y as f32 + 0.5;
        for (x, px) in row.chunks_exact_mut(4).enumerate() {
            let c = colour_at(x as f32 + 0.5, fy);
            px[0] = (c[0] * 255.0) as u8;
            px[1] = (c[1] * 255.0) as u8;
            px[2] = (c[2] * 255.0) as u8;
            px[3] = 255;
        }
    }
}

/// Paper sweep: a soft pool of light behind the subject falling off towards the corners,
/// and a slightly darker floor.
fn studio(pixmap: &mut Pixmap, dice: &mut Dice, base: Rgb) {
    let s = pixmap.width() as f32;
    let centre = pt(s * dice.range(0.35, 0.65), s * dice.range(0.3, 0.5));
    let radius = s * dice.range(0.6, 0.9);
    let inv_radius2 = 1.0 / (radius * radius);
    let floor = s * dice.range(0.64, 0.82);
    let inv_floor_span = 1.0 / (s - floor).max(1.0);
    let floor_dark = dice.range(0.04, 0.1);
    let c = base.0;
    fill_per_pixel(pixmap, |x, y| {
        // 18% brighter at the centre of the pool, 12% darker beyond its rim; the falloff
        // 2t - t^2 (t = squared distance) meets the rim with zero slope, so no ring shows.
        let t = (((x - centre.x).powi(2) + (y - centre.y).powi(2)) * inv_radius2).min(1.0);
        let pool = 1.18 - 0.3 * t * (2.0 - t);
        let f = ((y - floor) * inv_floor_span).clamp(0.0, 1.0);
        let k = pool * (1.0 - floor_dark * f);
        [c[0] * k, c[1] * k, c[2] * k]
    });
}

fn gradient(pixmap: &mut Pixmap, dice: &mut Dice) {
    let s = pixmap.width() as f32;
    let a = muted(dice, 0.45, 0.88);
    let b = a.mix(muted(dice, 0.35, 0.85), dice.range(0.4, 1.0));
    let angle = dice.range(0.0, std::f32::consts::TAU);
    let dir = pt(angle.cos(), angle.sin());
    let half = s * 0.6;
    fill_per_pixel(pixmap, |x, y| {
        let t =
            ((((x - 0.5 * s) * dir.x + (y - 0.5 * s) * dir.y) / half + 1.0) * 0.5).clamp(0.0, 1.0);
        a.mix(b, t).0
    });
}

/// Smooth value noise in 0..1 on a `cells` x `cells` lattice, bilinear with smoothstep.
struct ValueNoise {
    cells: usize,
    values: Vec<f32>,
}

impl ValueNoise {
    fn new(dice: &mut Dice, cells: usize) -> ValueNoise {
        let values = (0..(cells + 1) * (cells + 1))
            .map(|_| dice.range(0.0, 1.0))
            .collect();
        ValueNoise { cells, values }
    }

    /// `x`, `y` in 0..1.
    fn at(&self, x: f32, y: f32) -> f32 {
        let n = self.cells;
        let (gx, gy) = (x * n as f32, y * n as f32);
        let (ix, iy) = ((gx as usize).min(n - 1), (gy as usize).min(n - 1));
        let (fx, fy) = (gx - ix as f32, gy - iy as f32);
        let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
        let v = |i: usize, j: usize| self.values[j * (n + 1) + i];
        let top = v(ix, iy) + (v(ix + 1, iy) - v(ix, iy)) * sx;
        let bottom = v(ix, iy + 1) + (v(ix + 1, iy + 1) - v(ix, iy + 1)) * sx;
        top + (bottom - top) * sy
    }
}

/// Spacing in pixels of the grid on which [`textured`] evaluates its smooth noise.
const NOISE_STEP: usize = 4;

/// Plaster, concrete or linen: a muted colour modulated by two octaves of noise plus grain.
/// The smooth noise is evaluated on a grid every [`NOISE_STEP`] pixels and interpolated.
fn textured(pixmap: &mut Pixmap, dice: &mut Dice) {
    let base = muted(dice, 0.4, 0.85);
    let coarse_cells = dice.int(3, 8);
    let coarse = ValueNoise::new(dice, coarse_cells);
    let fine_cells = dice.int(24, 48);
    let fine = ValueNoise::new(dice, fine_cells);
    let amp = dice.range(0.06, 0.16);
    let grain = dice.range(0.02, 0.06);
    let weave = dice.chance(0.35);
    let grain_seed = dice.next_u64() as u32;
    let s = pixmap.width() as usize;
    let g = s / NOISE_STEP + 2;
    let grid: Vec<f32> = (0..g * g)
        .map(|i| {
            let (u, v) = (
                ((i % g) * NOISE_STEP) as f32 / s as f32,
                ((i / g) * NOISE_STEP) as f32 / s as f32,
            );
            let (u, v) = (u.min(1.0), v.min(1.0));
            1.0 + amp * 2.0 * (coarse.at(u, v) - 0.5) + amp * 0.6 * (fine.at(u, v) - 0.5)
        })
        .collect();
    let rgb = base.0.map(|c| c * 255.0);
    let inv_step = 1.0 / NOISE_STEP as f32;
    for (y, row) in pixmap.data_mut().chunks_exact_mut(4 * s).enumerate() {
        let (gy, ty) = (y / NOISE_STEP, (y % NOISE_STEP) as f32 * inv_step);
        for (x, px) in row.chunks_exact_mut(4).enumerate() {
            let (gx, tx) = (x / NOISE_STEP, (x % NOISE_STEP) as f32 * inv_step);
            let at = |i: usize, j: usize| grid[j * g + i];
            let top = at(gx, gy) + (at(gx + 1, gy) - at(gx, gy)) * tx;
            let bottom = at(gx, gy + 1) + (at(gx + 1, gy + 1) - at(gx, gy + 1)) * tx;
            let mut k = top + (bottom - top) * ty;
            if weave && (x + y) % 3 == 0 {
                k -= grain;
            }
            k += grain * (hash01(x as u32, y as u32, grain_seed) - 0.5);
            px[0] = (rgb[0] * k) as u8;
            px[1] = (rgb[1] * k) as u8;
            px[2] = (rgb[2] * k) as u8;
            px[3] = 255;
        }
    }
}

/// Cheap deterministic per-pixel noise in 0..1 (integer hash of position and seed).
fn hash01(x: u32, y: u32, seed: u32) -> f32 {
    let mut h =
        x.wrapping_mul(0x8DA6_B343) ^ y.wrapping_mul(0xD816_3841) ^ seed.wrapping_mul(0xCB1A_B31F);
    h ^= h >> 13;
    h = h.wrapping_mul(0x5BD1_E995);
    h ^= h >> 15;
    (h >> 8) as f32 / (1u32 << 24) as f32
}

/// A room-like jumble: wall, floor, and props as random rectangles, circles and triangles.
fn cluttered(pixmap: &mut Pixmap, dice: &mut Dice) {
    let s = pixmap.width() as f32;
    let wall = muted(dice, 0.55, 0.88);
    pixmap.fill(wall.to_color(1.0));
    let floor_y = s * dice.range(0.68, 0.86);
    let floor = muted(dice, 0.3, 0.6);
    if let Some(r) = Rect::from_xywh(0.0, floor_y, s, s - floor_y) {
        let mut p = Paint::default();
        p.set_color(floor.to_color(1.0));
        pixmap.fill_rect(r, &p, Transform::identity(), None);
    }
    let shapes = dice.int(10, 26);
    for _ in 0..shapes {
        let colour = Rgb::from_hsl(
            dice.range(0.0, 1.0),
            dice.range(0.1, 0.5),
            dice.range(0.25, 0.8),
        );
        let alpha = dice.range(0.55, 1.0);
        let c = pt(dice.range(-0.05, 1.05) * s, dice.range(-0.05, 1.0) * s);
        let size = s * dice.range(0.04, 0.22);
        let mut paint = Paint::default();
        paint.set_color(colour.to_color(alpha));
        paint.anti_alias = true;
        let path = match dice.int(0, 3) {
            0 => {
                let h = size * dice.range(0.5, 2.5);
                Rect::from_xywh(c.x, c.y, size, h).map(PathBuilder::from_rect)
            }
            1 => PathBuilder::from_circle(c.x, c.y, size * 0.5),
            2 => {
                let mut pb = PathBuilder::new();
                pb.move_to(c.x, c.y - size);
                pb.line_to(c.x + size * dice.range(0.5, 1.0), c.y + size * 0.6);
                pb.line_to(c.x - size * dice.range(0.5, 1.0), c.y + size * 0.6);
                pb.close();
                pb.finish()
            }
            _ => {
                // A shelf or frame: thin long bar.
                Rect::from_xywh(c.x - size, c.y, size * 2.5, (size * 0.12).max(1.0))
                    .map(PathBuilder::from_rect)
            }
        };
        if let Some(path) = path {
            pixmap.fill_path(
                &path,
                &paint,
                FillRule::Winding,
                Transform::identity(),
                None,
            );
        }
    }
}

/// Fills the whole pixmap with a background of the given kind.
pub fn draw(pixmap: &mut Pixmap, kind: BackgroundKind, dice: &mut Dice) {
    match kind {
        BackgroundKind::StudioWhite => {
            let v = dice.range(0.9, 0.985);
            let tint = Rgb([v, v, v]).mix(muted(dice, 0.85, 0.95), dice.range(0.0, 0.3));
            studio(pixmap, dice, tint);
        }
        BackgroundKind::StudioGrey => {
            let v = dice.range(0.55, 0.82);
            let tint = Rgb([v, v, v]).mix(muted(dice, 0.5, 0.8), dice.range(0.0, 0.35));
            studio(pixmap, dice, tint);
        }
        BackgroundKind::Gradient => gradient(pixmap, dice),
        BackgroundKind::Textured => textured(pixmap, dice),
        BackgroundKind::Cluttered => cluttered(pixmap, dice),
    }
}

/// Soft contact shadow on the floor, centred at `feet` (image pixels), `width` across.
pub fn floor_shadow(pixmap: &mut Pixmap, feet: Pt, width: f32, strength: f32) {
    let r = width * 0.5;
    let ts = Transform::from_translate(feet.x, feet.y).pre_scale(1.0, 0.22);
    if let Some(sh) = RadialGradient::new(
        Point::from_xy(0.0, 0.0),
        0.0,
        Point::from_xy(0.0, 0.0),
        r,
        vec![
            GradientStop::new(
                0.0,
                Color::from_rgba(0.0, 0.0, 0.0, strength).unwrap_or(Color::BLACK),
            ),
            GradientStop::new(1.0, Color::TRANSPARENT),
        ],
        SpreadMode::Pad,
        ts,
    ) {
        let shape = ellipse(feet, r, r * 0.22, 0.0, 32);
        if let Some(path) = super::geometry::polygon(&shape) {
            pixmap.fill_path(
                &path,
                &paint_with(sh),
                FillRule::Winding,
                Transform::identity(),
                None,
            );
        }
    }
}
