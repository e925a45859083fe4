//! The colours of a dress: a coarse RGB histogram of the middle of the dress square, where
//! the dress is and the background rarely shows, which the similarity embedding reads beside
//! the backbone's features (backbone features pooled over the crop keep little of the hue).

use image::RgbImage;

/// Bins per colour channel.
pub const BINS: usize = 6;
/// Length of a colour descriptor.
pub const COLOUR_DIMS: usize = BINS * BINS * BINS;

/// The part of the dress square that is read, as fractions of its side `[x0, y0, x1, y1]`:
/// the middle column, from below the neckline to above the hem of a dress that fills the
/// square's height.
pub const BAND: [f32; 4] = [0.3, 0.15, 0.7, 0.85];

/// The square roots of the shares of the band's pixels in each of the `BINS`³ colour cells
/// (unit length: the cosine of two descriptors is their Bhattacharyya coefficient). Each
/// pixel is shared between the cells around it by trilinear interpolation between the cells'
/// centres, so a slight change of light moves weight between cells instead of flipping it.
pub fn dress_colours(square: &RgbImage) -> Vec<f32> {
    let (w, h) = (square.width() as f32, square.height() as f32);
    let [x0, y0, x1, y1] = BAND;
    let xs = (x0 * w) as u32..((x1 * w) as u32).max((x0 * w) as u32 + 1);
    let ys = (y0 * h) as u32..((y1 * h) as u32).max((y0 * h) as u32 + 1);
    let mut counts = vec![0f32; COLOUR_DIMS];
    for y in ys.clone() {
        for x in xs.clone() {
            if x < square.width() && y < square.height() {
                let [r, g, b] = square.get_pixel(x, y).0.map(neighbours);
                for (ri, rw) in r {
                    for (gi, gw) in g {
                        for (bi, bw) in b {
                            counts[(ri * BINS + gi) * BINS + bi] += rw * gw * bw;
                        }
                    }
                }
            }
        }
    }
    let total: f32 = counts.iter().sum::<f32>().max(1.0);
    counts.iter().map(|c| (c / total).sqrt()).collect()
}

/// The two cells whose centres surround a channel value, with their interpolation weights
/// (both the edge cell below the first centre and above the last).
fn neighbours(value: u8) -> [(usize, f32); 2] {
    let position = (f32::from(value) + 0.5) / 256.0 * BINS as f32 - 0.5;
    let below = position.floor();
    let share = position - below;
    let cell = |c: f32| c.clamp(0.0, (BINS - 1) as f32) as usize;
    [(cell(below), 1.0 - share), (cell(below + 1.0), share)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn a_dress_of_two_colours_by_hand() {
        // Left half of the band red (255, 0, 0), right half dark blue (0, 0, 100); 6 bins.
        assert_eq!(BINS, 6);
        let square = RgbImage::from_fn(100, 100, |x, _| {
            if x < 50 {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 0, 100])
            }
        });
        let colours = dress_colours(&square);
        // Pure red: 255 lies past the last cell's centre, 0 before the first: all of it in
        // cell (5, 0, 0) = 180, half the band. Blue 100: (100.5 / 256) * 6 - 0.5 = 1.85546875,
        // so 0.14453125 of it in blue cell 1 and 0.85546875 in cell 2, of the other half.
        assert!(
            (colours[180] - 0.5f32.sqrt()).abs() < 5e-5,
            "{}",
            colours[180]
        );
        assert!((colours[1] - (0.5f32 * 0.144_531_25).sqrt()).abs() < 5e-5);
        assert!((colours[2] - (0.5f32 * 0.855_468_75).sqrt()).abs() < 5e-5);
        let norm: f32 = colours.iter().map(|c| c * c).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        // The background outside the band does not count.
        let framed = RgbImage::from_fn(100, 100, |x, y| {
            if (30..70).contains(&x) && (15..85).contains(&y) {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 255, 0])
            }
        });
        assert!((dress_colours(&framed)[180] - 1.0).abs() < 5e-5);
    }
}
