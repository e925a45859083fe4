//! A tiny-skia pixmap plus the figure-to-pixel transform, with the fill and stroke calls
//! the renderer uses (all anti-aliased, coordinates in figure units).

use super::color::Rgb;
use super::geometry::{Pt, add_polygon, polygon, polyline};
use tiny_skia::{FillRule, Mask, Paint, PathBuilder, Pixmap, Stroke, Transform};

pub struct Canvas {
    pub pixmap: Pixmap,
    /// Figure units to image pixels.
    pub ts: Transform,
}

fn solid(color: Rgb, alpha: f32) -> Paint<'static> {
    let mut paint = Paint::default();
    paint.set_color(color.to_color(alpha));
    paint.anti_alias = true;
    paint
}

impl Canvas {
    pub fn fill(&mut self, points: &[Pt], color: Rgb, alpha: f32) {
        if let Some(path) = polygon(points) {
            self.pixmap.fill_path(
                &path,
                &solid(color, alpha),
                FillRule::Winding,
                self.ts,
                None,
            );
        }
    }

    /// Outline of a closed shape (or an open line) `width` figure units wide.
    pub fn stroke(&mut self, points: &[Pt], closed: bool, color: Rgb, alpha: f32, width: f32) {
        let path = if closed {
            let mut pb = PathBuilder::new();
            add_polygon(&mut pb, points);
            pb.finish()
        } else {
            polyline(points)
        };
        if let Some(path) = path {
            let stroke = Stroke {
                width,
                line_join: tiny_skia::LineJoin::Round,
                ..Stroke::default()
            };
            self.pixmap
                .stroke_path(&path, &solid(color, alpha), &stroke, self.ts, None);
        }
    }

    /// A skin or fabric part: filled, then outlined in a darker tone so overlapping parts
    /// stay readable at thumbnail size.
    pub fn part(&mut self, points: &[Pt], color: Rgb, edge: f32) {
        self.fill(points, color, 1.0);
        self.stroke(points, true, color.scale(0.62), 0.55, edge);
    }

    /// Coverage mask (anti-aliased) of the union of the given polygons; `holes` are cut out.
    pub fn mask(&self, shapes: &[&[Pt]], holes: &[&[Pt]]) -> Mask {
        let (w, h) = (self.pixmap.width(), self.pixmap.height());
        let mut mask = Mask::new(w, h).expect("canvas size is validated to be non-zero");
        for shape in shapes {
            if holes.is_empty() {
                if let Some(path) = polygon(shape) {
                    mask.fill_path(&path, FillRule::Winding, true, self.ts);
                }
            } else {
                let mut pb = PathBuilder::new();
                add_polygon(&mut pb, shape);
                for hole in holes {
                    add_polygon(&mut pb, hole);
                }
                if let Some(path) = pb.finish() {
                    mask.fill_path(&path, FillRule::EvenOdd, true, self.ts);
                }
            }
        }
        mask
    }
}
