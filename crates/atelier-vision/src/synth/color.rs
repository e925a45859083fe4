//! Linear-ish RGB colour values in 0..1 and the few operations the renderer needs.

use super::rng::Dice;
use tiny_skia::Color;

/// An opaque colour with channels in 0..=1 (sRGB values, blended naively like most
/// drawing programs do).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rgb(pub [f32; 3]);

impl Rgb {
    pub const WHITE: Rgb = Rgb([1.0, 1.0, 1.0]);
    pub const BLACK: Rgb = Rgb([0.0, 0.0, 0.0]);

    pub const fn from_u8(r: u8, g: u8, b: u8) -> Rgb {
        Rgb([r as f32 / 255.0, g as f32 / 255.0, b as f32 / 255.0])
    }

    pub fn to_color(self, alpha: f32) -> Color {
        let [r, g, b] = self.0;
        Color::from_rgba(
            r.clamp(0.0, 1.0),
            g.clamp(0.0, 1.0),
            b.clamp(0.0, 1.0),
            alpha.clamp(0.0, 1.0),
        )
        .unwrap_or(Color::BLACK)
    }

    /// `self` moved towards `other` by `t` (0 = self, 1 = other).
    pub fn mix(self, other: Rgb, t: f32) -> Rgb {
        let [a, b, c] = self.0;
        let [x, y, z] = other.0;
        Rgb([a + (x - a) * t, b + (y - b) * t, c + (z - c) * t])
    }

    /// Multiplies every channel, e.g. 0.8 for a shadow tone of the same hue.
    pub fn scale(self, k: f32) -> Rgb {
        let [r, g, b] = self.0;
        Rgb([(r * k).min(1.0), (g * k).min(1.0), (b * k).min(1.0)])
    }

    /// Perceived brightness (Rec. 601 weights).
    pub fn luma(self) -> f32 {
        let [r, g, b] = self.0;
        0.299 * r + 0.587 * g + 0.114 * b
    }

    /// A nearby colour: hue, saturation and lightness nudged by up to the given amounts, so
    /// that two designs from the same palette entry are not identical.
    pub fn vary(self, dice: &mut Dice, hue_deg: f32, sat: f32, light: f32) -> Rgb {
        let (h, s, l) = self.to_hsl();
        let h = (h + dice.jitter(hue_deg) / 360.0).rem_euclid(1.0);
        let s = (s + dice.jitter(sat)).clamp(0.0, 1.0);
        let l = (l + dice.jitter(light)).clamp(0.02, 0.99);
        Rgb::from_hsl(h, s, l)
    }

    /// Hue, saturation, lightness, all in 0..1.
    pub fn to_hsl(self) -> (f32, f32, f32) {
        let [r, g, b] = self.0;
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let l = (max + min) / 2.0;
        let d = max - min;
        if d < 1e-6 {
            return (0.0, 0.0, l);
        }
        let s = d / (1.0 - (2.0 * l - 1.0).abs()).max(1e-6);
        let h = if max == r {
            ((g - b) / d).rem_euclid(6.0)
        } else if max == g {
            (b - r) / d + 2.0
        } else {
            (r - g) / d + 4.0
        };
        (h / 6.0, s.min(1.0), l)
    }

    pub fn from_hsl(h: f32, s: f32, l: f32) -> Rgb {
        let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
        let hp = h.rem_euclid(1.0) * 6.0;
        let x = c * (1.0 - (hp.rem_euclid(2.0) - 1.0).abs());
        let (r, g, b) = match hp as u32 {
            0 => (c, x, 0.0),
            1 => (x, c, 0.0),
            2 => (0.0, c, x),
            3 => (0.0, x, c),
            4 => (x, 0.0, c),
            _ => (c, 0.0, x),
        };
        let m = l - c / 2.0;
        Rgb([r + m, g + m, b + m])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsl_round_trip() {
        for c in [
            Rgb::from_u8(200, 30, 60),
            Rgb::from_u8(20, 140, 90),
            Rgb::from_u8(40, 70, 200),
            Rgb::from_u8(128, 128, 128),
        ] {
            let (h, s, l) = c.to_hsl();
            let back = Rgb::from_hsl(h, s, l);
            for k in 0..3 {
                assert!((back.0[k] - c.0[k]).abs() < 1e-4, "{c:?} -> {back:?}");
            }
        }
        // Pure red is hue 0, full saturation, half lightness.
        let (h, s, l) = Rgb::from_u8(255, 0, 0).to_hsl();
        assert!(h.abs() < 1e-6 && (s - 1.0).abs() < 1e-6 && (l - 0.5).abs() < 1e-6);
    }
}
