//! 2-D points, sampled curves and polygon helpers. Shapes are kept as point lists (not only
//! as tiny-skia paths) so they can be mirrored, clipped and measured for framing.

use std::ops::{Add, Mul, Sub};
use tiny_skia::{Path, PathBuilder, Transform};

#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Pt {
    pub x: f32,
    pub y: f32,
}

pub const fn pt(x: f32, y: f32) -> Pt {
    Pt { x, y }
}

impl Add for Pt {
    type Output = Pt;
    fn add(self, o: Pt) -> Pt {
        pt(self.x + o.x, self.y + o.y)
    }
}

impl Sub for Pt {
    type Output = Pt;
    fn sub(self, o: Pt) -> Pt {
        pt(self.x - o.x, self.y - o.y)
    }
}

impl Mul<f32> for Pt {
    type Output = Pt;
    fn mul(self, k: f32) -> Pt {
        pt(self.x * k, self.y * k)
    }
}

impl Pt {
    pub fn len(self) -> f32 {
        self.x.hypot(self.y)
    }

    /// Unit vector in the same direction (zero stays zero).
    pub fn unit(self) -> Pt {
        let l = self.len();
        if l > 1e-9 { self * (1.0 / l) } else { self }
    }

    /// The vector turned 90 degrees (to the right of the direction of travel, y down).
    pub fn perp(self) -> Pt {
        pt(-self.y, self.x)
    }

    pub fn lerp(self, o: Pt, t: f32) -> Pt {
        self + (o - self) * t
    }

    pub fn dot(self, o: Pt) -> f32 {
        self.x * o.x + self.y * o.y
    }

    pub fn mirror(self) -> Pt {
        pt(-self.x, self.y)
    }

    /// Unit vector pointing down and rotated by `deg` towards +x (0 = straight down).
    pub fn down_at(deg: f32) -> Pt {
        let r = deg.to_radians();
        pt(r.sin(), r.cos())
    }
}

/// Appends points of the cubic Bezier `p0 p1 p2 p3` to `out`, excluding `p0` (so runs of
/// curves can be chained) and including `p3`. About one sample per unit of control-polygon
/// length (a figure unit is 1-12 pixels), at least four per curve.
pub fn cubic(out: &mut Vec<Pt>, p0: Pt, p1: Pt, p2: Pt, p3: Pt) {
    let rough = (p1 - p0).len() + (p2 - p1).len() + (p3 - p2).len();
    let n = (rough.ceil() as usize).clamp(4, 48);
    for i in 1..=n {
        let t = i as f32 / n as f32;
        let u = 1.0 - t;
        let p =
            p0 * (u * u * u) + p1 * (3.0 * u * u * t) + p2 * (3.0 * u * t * t) + p3 * (t * t * t);
        out.push(p);
    }
}

/// Point on the cubic at parameter `t`.
pub fn cubic_at(p: [Pt; 4], t: f32) -> Pt {
    let u = 1.0 - t;
    p[0] * (u * u * u) + p[1] * (3.0 * u * u * t) + p[2] * (3.0 * u * t * t) + p[3] * (t * t * t)
}

/// Ellipse outline centred at `c`, rotated by `rot` radians.
pub fn ellipse(c: Pt, rx: f32, ry: f32, rot: f32, n: usize) -> Vec<Pt> {
    let (s, co) = rot.sin_cos();
    (0..n)
        .map(|i| {
            let a = i as f32 / n as f32 * std::f32::consts::TAU;
            let (x, y) = (rx * a.cos(), ry * a.sin());
            pt(c.x + x * co - y * s, c.y + x * s + y * co)
        })
        .collect()
}

/// Closed symmetric outline from its right half, given from the top of the centre line
/// down the right side to the bottom of the centre line.
pub fn mirror_closed(right_half: &[Pt]) -> Vec<Pt> {
    let mut out: Vec<Pt> = right_half.to_vec();
    out.extend(right_half.iter().rev().map(|p| p.mirror()));
    out
}

/// Keeps the part of a closed polygon with `y >= y_min` (Sutherland-Hodgman, one edge).
pub fn clip_below(poly: &[Pt], y_min: f32) -> Vec<Pt> {
    let mut out = Vec::with_capacity(poly.len() + 2);
    for i in 0..poly.len() {
        let a = poly[i];
        let b = poly[(i + 1) % poly.len()];
        let a_in = a.y >= y_min;
        let b_in = b.y >= y_min;
        if a_in {
            out.push(a);
        }
        if a_in != b_in {
            let t = (y_min - a.y) / (b.y - a.y);
            out.push(a.lerp(b, t));
        }
    }
    out
}

/// Outline of a band of varying half-width around a polyline axis (an arm, a leg, a sleeve).
/// Joints are mitred so the band stays one simple polygon for bends below ~120 degrees.
pub fn band(axis: &[Pt], half_widths: &[f32]) -> Vec<Pt> {
    debug_assert_eq!(axis.len(), half_widths.len());
    let n = axis.len();
    let mut left = Vec::with_capacity(n);
    let mut right = Vec::with_capacity(n);
    for i in 0..n {
        let d_in = if i > 0 {
            (axis[i] - axis[i - 1]).unit()
        } else {
            (axis[1] - axis[0]).unit()
        };
        let d_out = if i + 1 < n {
            (axis[i + 1] - axis[i]).unit()
        } else {
            d_in
        };
        let normal = (d_in.perp() + d_out.perp()).unit();
        // Mitre: stretch the offset so both adjoining edges stay at the full half-width.
        let cos_half = normal.dot(d_out.perp()).max(0.5);
        let w = half_widths[i] / cos_half;
        left.push(axis[i] + normal * w);
        right.push(axis[i] - normal * w);
    }
    left.extend(right.into_iter().rev());
    left
}

/// Point at arc length `s` along a polyline and the direction there. Outside `0..=length`
/// the first or last segment is extended.
pub fn along(axis: &[Pt], s: f32) -> (Pt, Pt) {
    let last = axis.len().saturating_sub(2);
    let mut rest = s;
    for i in 0..=last {
        let seg = axis[i + 1] - axis[i];
        let l = seg.len();
        if rest <= l || i == last {
            let t = if l > 0.0 { rest / l } else { 0.0 };
            return (axis[i] + seg * t, seg.unit());
        }
        rest -= l;
    }
    (axis[0], pt(0.0, 1.0))
}

/// Smallest axis-aligned box holding all points after `ts`: (min_x, min_y, max_x, max_y).
pub fn bounds_after(points: &[Pt], ts: Transform) -> (f32, f32, f32, f32) {
    let mut b = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in points {
        let q = apply(ts, *p);
        b = (b.0.min(q.x), b.1.min(q.y), b.2.max(q.x), b.3.max(q.y));
    }
    b
}

pub fn apply(ts: Transform, p: Pt) -> Pt {
    pt(
        ts.sx * p.x + ts.kx * p.y + ts.tx,
        ts.ky * p.x + ts.sy * p.y + ts.ty,
    )
}

/// Closed polygon path; `None` for fewer than three points or non-finite coordinates.
pub fn polygon(points: &[Pt]) -> Option<Path> {
    let mut pb = PathBuilder::new();
    add_polygon(&mut pb, points);
    pb.finish()
}

/// Adds a closed polygon as a sub-path.
pub fn add_polygon(pb: &mut PathBuilder, points: &[Pt]) {
    if points.len() < 3 {
        return;
    }
    pb.move_to(points[0].x, points[0].y);
    for p in &points[1..] {
        pb.line_to(p.x, p.y);
    }
    pb.close();
}

/// Open polyline path (for strokes).
pub fn polyline(points: &[Pt]) -> Option<Path> {
    if points.len() < 2 {
        return None;
    }
    let mut pb = PathBuilder::new();
    pb.move_to(points[0].x, points[0].y);
    for p in &points[1..] {
        pb.line_to(p.x, p.y);
    }
    pb.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_lower_part_of_a_square() {
        let sq = [pt(0.0, 0.0), pt(2.0, 0.0), pt(2.0, 2.0), pt(0.0, 2.0)];
        let c = clip_below(&sq, 1.0);
        assert!(c.iter().all(|p| p.y >= 1.0 - 1e-6));
        let (x0, y0, x1, y1) = bounds_after(&c, Transform::identity());
        assert_eq!((x0, y0, x1, y1), (0.0, 1.0, 2.0, 2.0));
    }

    #[test]
    fn along_extends_the_end_segments() {
        let axis = [pt(0.0, 0.0), pt(0.0, 10.0), pt(10.0, 10.0)];
        assert_eq!(along(&axis, 15.0).0, pt(5.0, 10.0));
        assert_eq!(along(&axis, -2.0).0, pt(0.0, -2.0));
        assert_eq!(along(&axis, 25.0).0, pt(15.0, 10.0));
    }

    #[test]
    fn band_has_requested_width_on_a_straight_axis() {
        let b = band(&[pt(0.0, 0.0), pt(0.0, 10.0)], &[2.0, 1.0]);
        let (x0, _, x1, _) = bounds_after(&b, Transform::identity());
        assert!((x0 + 2.0).abs() < 1e-5 && (x1 - 2.0).abs() < 1e-5);
        assert_eq!(b.len(), 4);
    }
}
