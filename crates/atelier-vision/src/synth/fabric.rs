//! Fabric surface, painted per pixel inside the dress mask: the print (solid, stripes, dots,
//! small florals) evaluated in figure coordinates with analytic anti-aliasing, then shading
//! that makes it read as cloth rather than a flat sticker (cylindrical falloff across the
//! body, fold ripples in flared skirts, cowl drape, and a specular highlight whose strength
//! is the fabric's sheen).

use super::color::Rgb;
use super::design::{Fabric, Print};
use super::dress::{Profile, SleeveShape};
use super::geometry::{Pt, ellipse, pt};
use super::rng::{Dice, Stream};
use tiny_skia::{FillRule, Mask, Paint, Pixmap, Transform};

/// Pixel rectangle (x0, y0, x1, y1), half-open.
pub type Area = (u32, u32, u32, u32);

/// Evaluates a fabric's print colour at figure-space points.
pub struct PrintSampler {
    base: [f32; 3],
    accent: [f32; 3],
    print: Print,
    /// Stripe direction (unit normal to the bands).
    stripe_dir: Pt,
    /// Size of one output pixel in figure units, for anti-aliasing.
    pixel: f32,
    floral: Option<FloralTile>,
}

/// Flowers are drawn once per picture into a small repeating tile near output resolution.
struct FloralTile {
    rgb: Vec<[f32; 3]>,
    n: usize,
    units: f32,
}

impl PrintSampler {
    /// `px_per_unit` is the figure's scale in output pixels per figure unit.
    pub fn new(fabric: &Fabric, px_per_unit: f32) -> PrintSampler {
        let floral = match fabric.print {
            Print::Floral { size, seed } => floral_tile(fabric, size, seed, px_per_unit),
            _ => None,
        };
        PrintSampler {
            base: fabric.base.0,
            accent: fabric.accent.0,
            print: fabric.print,
            stripe_dir: match fabric.print {
                Print::Stripes { angle_deg, .. } => {
                    let (s, c) = angle_deg.to_radians().sin_cos();
                    pt(c, s)
                }
                _ => pt(1.0, 0.0),
            },
            pixel: 1.0 / px_per_unit.max(1e-3),
            floral,
        }
    }

    /// Print colour at `p`, box-filtered over one output pixel.
    pub fn at(&self, p: Pt) -> [f32; 3] {
        let accent_share = match self.print {
            Print::Solid => 0.0,
            Print::Stripes { period, duty, .. } => {
                let x = p.dot(self.stripe_dir) / period;
                let w = (self.pixel / period).max(1e-4);
                // Exact box filter of a square wave: integral of "frac(x) < duty" over the
                // pixel footprint, divided by its width.
                let integral = |x: f32| x.floor() * duty + (x - x.floor()).min(duty);
                ((integral(x + 0.5 * w) - integral(x - 0.5 * w)) / w).clamp(0.0, 1.0)
            }
            Print::Dots { spacing, radius } => {
                // Staggered lattice: dots at (1/4, 1/4) and (3/4, 3/4) of every cell.
                let (qx, qy) = (p.x / spacing, p.y / spacing);
                let (fx, fy) = (qx - qx.floor(), qy - qy.floor());
                let d = |cx: f32, cy: f32| ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt() * spacing;
                let dist = d(0.25, 0.25).min(d(0.75, 0.75));
                ((radius - dist) / self.pixel + 0.5).clamp(0.0, 1.0)
            }
            Print::Floral { .. } => {
                return self.floral.as_ref().map_or(self.base, |t| t.sample(p));
            }
        };
        let (b, a) = (self.base, self.accent);
        [
            b[0] + (a[0] - b[0]) * accent_share,
            b[1] + (a[1] - b[1]) * accent_share,
            b[2] + (a[2] - b[2]) * accent_share,
        ]
    }
}

impl FloralTile {
    /// Bilinear sample with wrap-around.
    fn sample(&self, p: Pt) -> [f32; 3] {
        let n = self.n;
        let scale = n as f32 / self.units;
        let wrap = |v: f32| v - (v / n as f32).floor() * n as f32;
        let (gx, gy) = (wrap(p.x * scale - 0.5), wrap(p.y * scale - 0.5));
        let (x0, y0) = ((gx as usize).min(n - 1), (gy as usize).min(n - 1));
        let (x1, y1) = ((x0 + 1) % n, (y0 + 1) % n);
        let (tx, ty) = (gx - x0 as f32, gy - y0 as f32);
        let at = |x: usize, y: usize| self.rgb[y * n + x];
        let mut out = [0.0; 3];
        for (c, o) in out.iter_mut().enumerate() {
            let top = at(x0, y0)[c] + (at(x1, y0)[c] - at(x0, y0)[c]) * tx;
            let bottom = at(x0, y1)[c] + (at(x1, y1)[c] - at(x0, y1)[c]) * tx;
            *o = top + (bottom - top) * ty;
        }
        out
    }
}

/// Scatters small five-petal flowers with leaves over a tile, wrapping at the edges so the
/// tile repeats without seams.
fn floral_tile(fabric: &Fabric, size: f32, seed: u64, px_per_unit: f32) -> Option<FloralTile> {
    let units = 3.2 * size;
    let n = ((units * px_per_unit).round() as u32).clamp(8, 384);
    let mut pixmap = Pixmap::new(n, n)?;
    pixmap.fill(fabric.base.to_color(1.0));
    let mut dice = Dice::new(seed, Stream::Design, 0);
    let scale = n as f32 / units;
    let ts = Transform::from_scale(scale, scale);
    let petal = fabric.accent;
    let heart = fabric.base.mix(Rgb::from_u8(240, 200, 80), 0.5);
    let leaf = fabric.base.mix(Rgb::from_u8(60, 110, 60), 0.55);
    let flowers = 5;
    for i in 0..flowers {
        // Stratified positions so flowers do not clump.
        let cx = (i as f32 + dice.range(0.1, 0.9)) / flowers as f32 * units;
        let cy = dice.range(0.0, units);
        let r = size * dice.range(0.32, 0.5);
        let turn = dice.range(0.0, 1.3);
        // Copies shifted by a tile are needed only where they reach into the tile.
        let reach = 2.0 * r;
        for dx in [-units, 0.0, units] {
            for dy in [-units, 0.0, units] {
                let c = pt(cx + dx, cy + dy);
                if c.x < -reach || c.x > units + reach || c.y < -reach || c.y > units + reach {
                    continue;
                }
                let mut fill = |shape: Vec<Pt>, colour: Rgb| {
                    if let Some(path) = super::geometry::polygon(&shape) {
                        let mut paint = Paint::default();
                        paint.set_color(colour.to_color(1.0));
                        paint.anti_alias = true;
                        pixmap.fill_path(&path, &paint, FillRule::Winding, ts, None);
                    }
                };
                for k in 0..2 {
                    let a = turn + 2.2 + k as f32 * 2.4;
                    fill(
                        ellipse(
                            c + pt(a.cos(), a.sin()) * (r * 1.15),
                            r * 0.55,
                            r * 0.22,
                            a,
                            12,
                        ),
                        leaf,
                    );
                }
                for k in 0..5 {
                    let a = turn + k as f32 * std::f32::consts::TAU / 5.0;
                    fill(
                        ellipse(
                            c + pt(a.cos(), a.sin()) * (r * 0.55),
                            r * 0.5,
                            r * 0.32,
                            a,
                            12,
                        ),
                        petal,
                    );
                }
                fill(ellipse(c, r * 0.28, r * 0.28, 0.0, 10), heart);
            }
        }
    }
    let rgb = pixmap
        .data()
        .chunks_exact(4)
        .map(|p| [p[0], p[1], p[2]].map(|v| v as f32 / 255.0))
        .collect();
    Some(FloralTile {
        rgb,
        n: n as usize,
        units,
    })
}

/// Light from the upper left front.
const LIGHT: [f32; 3] = [-0.38, -0.22, 0.9];
const AMBIENT: f32 = 0.5;
const DIFFUSE: f32 = 0.55;

pub struct Lighting {
    light: [f32; 3],
    half: [f32; 3],
    frontal: f32,
    sheen: f32,
    /// Specular exponent as a number of squarings (2^n): 8, 16 or 32.
    squarings: u32,
}

impl Lighting {
    pub fn new(sheen: f32) -> Lighting {
        let norm = |v: [f32; 3]| {
            let l = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            [v[0] / l, v[1] / l, v[2] / l]
        };
        let light = norm(LIGHT);
        let half = norm([light[0], light[1], light[2] + 1.0]);
        Lighting {
            light,
            half,
            frontal: AMBIENT + DIFFUSE * light[2],
            sheen,
            squarings: if sheen < 0.3 {
                3
            } else if sheen < 0.65 {
                4
            } else {
                5
            },
        }
    }

    /// Brightness factor and specular amount at a surface point: `u` is the position across
    /// a cylinder (-1..1), `bump` leans the normal sideways (folds), `tilt` (-1..1) marks
    /// drape ridges (negative, lit) and creases (positive, shadowed).
    fn at(&self, s: Surface) -> (f32, f32) {
        let u = s.u.clamp(-0.97, 0.97);
        let nz = (1.0 - u * u).sqrt();
        let nx = u + s.bump;
        let inv_len = 1.0 / (nx * nx + nz * nz).sqrt();
        let (nx, nz) = (nx * inv_len, nz * inv_len);
        let diffuse = (nx * self.light[0] + nz * self.light[2]).max(0.0);
        // Drape bands (tilt) are applied directly as light and shadow: with a near-frontal
        // light a physically tilted normal would barely change the brightness.
        let shade = (AMBIENT + DIFFUSE * diffuse) / self.frontal * (1.0 - 0.45 * s.tilt);
        let mut spec = 0.15 * (-s.tilt).max(0.0);
        if self.sheen > 0.0 {
            let mut highlight = (nx * self.half[0] + nz * self.half[2]).max(0.0);
            for _ in 0..self.squarings {
                highlight *= highlight;
            }
            spec += self.sheen * 0.45 * highlight;
        }
        (shade, spec)
    }
}

/// Local surface orientation, see [`Lighting::at`].
#[derive(Clone, Copy)]
pub struct Surface {
    u: f32,
    bump: f32,
    tilt: f32,
}

/// Paints shaded fabric inside `mask` within `area`, over what is already there (blended by
/// mask coverage). `surface` maps a figure-space point to its orientation.
fn paint(
    pixmap: &mut Pixmap,
    mask: &Mask,
    area: Area,
    to_figure: Transform,
    print: &PrintSampler,
    lighting: &Lighting,
    surface: impl Fn(Pt) -> Surface,
) {
    let width = pixmap.width() as usize;
    let coverage = mask.data();
    let data = pixmap.data_mut();
    for y in area.1..area.3 {
        for x in area.0..area.2 {
            let i = y as usize * width + x as usize;
            let c = coverage[i];
            if c == 0 {
                continue;
            }
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            let p = pt(
                to_figure.sx * fx + to_figure.kx * fy + to_figure.tx,
                to_figure.ky * fx + to_figure.sy * fy + to_figure.ty,
            );
            let (shade, spec) = lighting.at(surface(p));
            let colour = print.at(p);
            let cov = c as f32 / 255.0;
            let dst = &mut data[i * 4..i * 4 + 3];
            for (v, base) in dst.iter_mut().zip(colour) {
                let lit = (base * shade).min(1.0);
                let lit = (lit + (1.0 - lit) * spec) * 255.0;
                let old = *v as f32;
                // Saturating cast: no clamp needed.
                *v = (old + (lit - old) * cov) as u8;
            }
        }
    }
}

/// Half-width of the dress body tabulated every quarter unit, so the per-pixel pass does
/// not re-evaluate the silhouette curves.
struct WidthTable {
    step: f32,
    values: Vec<f32>,
}

impl WidthTable {
    fn new(profile: &Profile) -> WidthTable {
        let step = 0.25;
        let n = (profile.hem_y / step).ceil() as usize + 2;
        let values = (0..n)
            .map(|i| profile.half_width(i as f32 * step).max(1.0))
            .collect();
        WidthTable { step, values }
    }

    fn at(&self, y: f32) -> f32 {
        let g = (y / self.step).max(0.0);
        let i = (g as usize).min(self.values.len() - 2);
        let t = (g - i as f32).min(1.0);
        self.values[i] + (self.values[i + 1] - self.values[i]) * t
    }
}

/// Two incommensurate ripples across the skirt (so folds are uneven, like real cloth),
/// tabulated over |u| in 0..1.25.
fn fold_wave_table(profile: &Profile) -> Vec<f32> {
    (0..=256)
        .map(|i| {
            let a = i as f32 / 256.0 * 1.25;
            let phase = std::f32::consts::TAU * profile.fold_cycles * a + profile.fold_phase;
            0.7 * phase.sin() + 0.3 * (1.73 * phase + 1.1).sin()
        })
        .collect()
}

/// Paints the dress body: cylinder across the width, folds fanning down the skirt.
pub fn paint_body(
    pixmap: &mut Pixmap,
    mask: &Mask,
    area: Area,
    to_figure: Transform,
    print: &PrintSampler,
    lighting: &Lighting,
    profile: &Profile,
) {
    let widths = WidthTable::new(profile);
    let waves = fold_wave_table(profile);
    let start = profile.fold_start_y;
    let span = (profile.hem_y - start).max(1.0);
    paint(pixmap, mask, area, to_figure, print, lighting, |p| {
        let u = p.x / widths.at(p.y.min(profile.hem_y));
        let grow = ((p.y - start) / span).clamp(0.0, 1.0).sqrt();
        let wave = waves[((u.abs() * (256.0 / 1.25)) as usize).min(256)];
        let tilt = profile.cowl.map_or(0.0, |c| c.tilt(p));
        Surface {
            u,
            bump: u.signum() * profile.fold_depth * grow * wave,
            tilt,
        }
    });
}

/// Paints a sleeve, shaded as a cylinder around its arm axis.
pub fn paint_sleeve(
    pixmap: &mut Pixmap,
    mask: &Mask,
    area: Area,
    to_figure: Transform,
    print: &PrintSampler,
    lighting: &Lighting,
    sleeve: &SleeveShape,
) {
    let axis = &sleeve.axis;
    let hw = sleeve.half_width.max(0.5);
    paint(pixmap, mask, area, to_figure, print, lighting, |p| {
        let mut best = (f32::MAX, 0.0f32);
        for w in axis.windows(2) {
            let d = w[1] - w[0];
            let l2 = d.dot(d).max(1e-6);
            let t = ((p - w[0]).dot(d) / l2).clamp(0.0, 1.0);
            let off = p - (w[0] + d * t);
            let dist = off.len();
            if dist < best.0 {
                // Signed distance, positive to the right of a downward axis, so the light
                // falls on one side of the sleeve.
                best = (dist, off.dot(pt(d.y, -d.x).unit()));
            }
        }
        Surface {
            u: best.1 / hw,
            bump: 0.0,
            tilt: 0.0,
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(print: Print) -> PrintSampler {
        let fabric = Fabric {
            base: Rgb::BLACK,
            accent: Rgb::WHITE,
            print,
            sheen: 0.0,
        };
        PrintSampler::new(&fabric, 4.0)
    }

    #[test]
    fn stripes_cover_their_duty_on_average() {
        let s = sampler(Print::Stripes {
            period: 2.0,
            duty: 0.3,
            angle_deg: 0.0,
        });
        // Average over many pixel-sized steps equals the accent share.
        let n = 4000;
        let mean: f32 = (0..n)
            .map(|i| s.at(pt(i as f32 * 0.25 + 0.013, 5.0))[0])
            .sum::<f32>()
            / n as f32;
        assert!((mean - 0.3).abs() < 0.01, "mean {mean}");
        // Well inside a band it is pure accent, well outside pure base.
        assert!((s.at(pt(0.3, 0.0))[0] - 1.0).abs() < 1e-5);
        assert!(s.at(pt(1.3, 0.0))[0].abs() < 1e-5);
        // Vertical stripes do not change along y.
        assert_eq!(s.at(pt(0.3, 0.0)), s.at(pt(0.3, 17.0)));
    }

    #[test]
    fn dots_cover_their_area_share() {
        let (spacing, radius) = (3.0f32, 0.6f32);
        let s = sampler(Print::Dots { spacing, radius });
        let n = 300;
        let mut sum = 0.0;
        for i in 0..n {
            for j in 0..n {
                sum += s.at(pt(i as f32 * 0.0371, j as f32 * 0.0413))[0];
            }
        }
        let share = sum / (n * n) as f32;
        let expected = 2.0 * std::f32::consts::PI * radius * radius / (spacing * spacing);
        assert!(
            (share - expected).abs() < 0.02,
            "share {share} expected {expected}"
        );
    }
}
