//! Dress designs (facet labels plus fabric) and the plan of which design each image shows.
//!
//! Facet values are long-tailed: per facet the commonest value is about ten times as
//! frequent as the rarest. Occasion is not drawn as a shape: it sets the odds of the fabric
//! (colour, pattern, sheen) and of the length, and in [`STYLE_AGREEMENT`] of designs the
//! fabric follows the occasion's own style (otherwise another occasion's), so the label is
//! learnable from the picture without being a fixed colour code.

use super::color::Rgb;
use super::facets::{
    Facets, LENGTH, Length, NECKLINE, Neckline, OCCASION, Occasion, SILHOUETTE, SLEEVE, Silhouette,
    Sleeve, neckline_allows_sleeve, silhouette_allows_length,
};
use super::rng::{Dice, Stream};

/// Relative frequency of each silhouette, in label order, before the length rule.
pub const SILHOUETTE_WEIGHTS: [f64; 6] = [0.27, 0.25, 0.18, 0.14, 0.10, 0.06];
/// Relative frequency of each neckline, in label order.
pub const NECKLINE_WEIGHTS: [f64; 8] = [0.25, 0.19, 0.09, 0.13, 0.11, 0.06, 0.022, 0.10];
/// Relative frequency of each sleeve, in label order, before the neckline rule.
pub const SLEEVE_WEIGHTS: [f64; 6] = [0.28, 0.10, 0.22, 0.028, 0.12, 0.18];
/// Relative frequency of each occasion, in label order.
pub const OCCASION_WEIGHTS: [f64; 5] = [0.40, 0.26, 0.16, 0.145, 0.035];
/// Length odds (mini, knee, midi, maxi) per occasion, in occasion label order.
pub const LENGTH_GIVEN_OCCASION: [[f64; 4]; 5] = [
    [0.09, 0.66, 0.22, 0.03],
    [0.01, 0.58, 0.39, 0.02],
    [0.08, 0.74, 0.15, 0.03],
    [0.00, 0.05, 0.15, 0.80],
    [0.00, 0.04, 0.08, 0.88],
];
/// Probability that a design's fabric follows its own occasion's style.
pub const STYLE_AGREEMENT: f64 = 0.8;

/// Probability that a design is rendered more than once (2 to 4 times, as "same dress" pairs).
pub const REPEAT_PROBABILITY: f64 = 1.0 / 3.0;

/// How the fabric surface is printed, sizes in figure units (the figure is ~90 units tall).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Print {
    Solid,
    /// Bands `period` apart, `duty` of each period in the accent colour, at `angle_deg`
    /// from vertical.
    Stripes {
        period: f32,
        duty: f32,
        angle_deg: f32,
    },
    /// Accent dots of `radius` on a staggered grid `spacing` apart.
    Dots {
        spacing: f32,
        radius: f32,
    },
    /// Scattered small flowers about `size` across; `seed` places them.
    Floral {
        size: f32,
        seed: u64,
    },
}

/// Everything about a dress's surface.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fabric {
    pub base: Rgb,
    pub accent: Rgb,
    pub print: Print,
    /// 0 = matte cotton, 1 = glossy satin (strength of the specular highlight).
    pub sheen: f32,
}

/// One dress: its ground-truth facets and its fabric. Rendering the same design twice
/// gives the "same dress" on a different figure, pose, background and framing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Design {
    pub id: usize,
    pub facets: Facets,
    pub fabric: Fabric,
}

impl Design {
    /// Stable name used in the manifest, e.g. `d000123`.
    pub fn name(&self) -> String {
        format!("d{:06}", self.id)
    }
}

/// A facet value the sampler must use, e.g. `(NECKLINE, 5)` for halter (preview rows).
pub type ForcedValue = Option<(usize, usize)>;

fn forced_value(forced: ForcedValue, facet: usize) -> Option<usize> {
    forced.and_then(|(f, v)| (f == facet).then_some(v))
}

/// Weighted draw limited to the values `allowed` accepts (unless the value is forced).
fn draw(
    dice: &mut Dice,
    weights: &[f64],
    forced: Option<usize>,
    allowed: impl Fn(usize) -> bool,
) -> usize {
    if let Some(v) = forced {
        return v.min(weights.len() - 1);
    }
    let masked: Vec<f64> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| if allowed(i) { w } else { 0.0 })
        .collect();
    dice.weighted(&masked)
}

/// Draws the facets of one design, honouring the drawability rules of [`Facets`].
pub fn sample_facets(dice: &mut Dice, forced: ForcedValue) -> Facets {
    let occasion = draw(
        dice,
        &OCCASION_WEIGHTS,
        forced_value(forced, OCCASION),
        |_| true,
    );
    let forced_silhouette = forced_value(forced, SILHOUETTE).and_then(Silhouette::from_index);
    let length = draw(
        dice,
        &LENGTH_GIVEN_OCCASION[occasion],
        forced_value(forced, LENGTH),
        |l| match (forced_silhouette, Length::from_index(l)) {
            (Some(s), Some(l)) => silhouette_allows_length(s, l),
            _ => true,
        },
    );
    let length = Length::from_index(length).unwrap_or(Length::Knee);
    let silhouette = draw(
        dice,
        &SILHOUETTE_WEIGHTS,
        forced_value(forced, SILHOUETTE),
        |s| Silhouette::from_index(s).is_some_and(|s| silhouette_allows_length(s, length)),
    );
    let forced_sleeve = forced_value(forced, SLEEVE).and_then(Sleeve::from_index);
    let neckline = draw(
        dice,
        &NECKLINE_WEIGHTS,
        forced_value(forced, NECKLINE),
        |n| match (Neckline::from_index(n), forced_sleeve) {
            (Some(n), Some(s)) => neckline_allows_sleeve(n, s),
            _ => true,
        },
    );
    let neckline = Neckline::from_index(neckline).unwrap_or(Neckline::Crew);
    let sleeve = draw(dice, &SLEEVE_WEIGHTS, forced_value(forced, SLEEVE), |s| {
        Sleeve::from_index(s).is_some_and(|s| neckline_allows_sleeve(neckline, s))
    });
    Facets {
        silhouette: Silhouette::from_index(silhouette).unwrap_or(Silhouette::Sheath),
        neckline,
        sleeve: Sleeve::from_index(sleeve).unwrap_or(Sleeve::Short),
        length,
        occasion: Occasion::from_index(occasion).unwrap_or(Occasion::Casual),
    }
}

/// Draws a whole design: facets, then a fabric in the occasion's style most of the time.
pub fn sample_design(id: usize, dice: &mut Dice, forced: ForcedValue) -> Design {
    let facets = sample_facets(dice, forced);
    let style = fabric_style(dice, facets.occasion);
    Design {
        id,
        facets,
        fabric: sample_fabric(dice, style),
    }
}

/// The occasion whose style the fabric follows: usually the design's own.
fn fabric_style(dice: &mut Dice, occasion: Occasion) -> Occasion {
    if dice.chance(STYLE_AGREEMENT) {
        occasion
    } else {
        let others: Vec<Occasion> = Occasion::ALL
            .iter()
            .copied()
            .filter(|&o| o != occasion)
            .collect();
        dice.pick(&others)
    }
}

/// Palette entries per style; each is varied slightly per design.
fn palette(style: Occasion) -> &'static [Rgb] {
    const CASUAL: &[Rgb] = &[
        Rgb::from_u8(236, 124, 104), // coral
        Rgb::from_u8(240, 198, 84),  // sunflower
        Rgb::from_u8(118, 172, 220), // sky blue
        Rgb::from_u8(140, 204, 172), // mint
        Rgb::from_u8(236, 150, 178), // pink
        Rgb::from_u8(236, 148, 70),  // orange
        Rgb::from_u8(64, 176, 178),  // turquoise
        Rgb::from_u8(176, 158, 214), // lavender
        Rgb::from_u8(206, 62, 60),   // tomato red
        Rgb::from_u8(112, 164, 84),  // leaf green
        Rgb::from_u8(92, 122, 170),  // denim
        Rgb::from_u8(244, 240, 230), // off-white
    ];
    const WORK: &[Rgb] = &[
        Rgb::from_u8(36, 46, 80),    // navy
        Rgb::from_u8(62, 64, 70),    // charcoal
        Rgb::from_u8(128, 130, 136), // grey
        Rgb::from_u8(184, 152, 112), // camel
        Rgb::from_u8(100, 102, 70),  // olive
        Rgb::from_u8(108, 48, 58),   // muted burgundy
        Rgb::from_u8(84, 100, 128),  // slate blue
        Rgb::from_u8(30, 30, 34),    // black
        Rgb::from_u8(148, 134, 120), // taupe
        Rgb::from_u8(226, 216, 196), // cream
    ];
    const COCKTAIL: &[Rgb] = &[
        Rgb::from_u8(22, 22, 26),   // black
        Rgb::from_u8(196, 22, 42),  // red
        Rgb::from_u8(204, 40, 128), // fuchsia
        Rgb::from_u8(0, 134, 92),   // emerald
        Rgb::from_u8(40, 72, 196),  // royal blue
        Rgb::from_u8(232, 82, 150), // hot pink
        Rgb::from_u8(206, 166, 64), // gold
        Rgb::from_u8(118, 42, 158), // purple
    ];
    const EVENING: &[Rgb] = &[
        Rgb::from_u8(18, 18, 22),    // black
        Rgb::from_u8(22, 28, 64),    // midnight
        Rgb::from_u8(98, 16, 36),    // burgundy
        Rgb::from_u8(12, 88, 62),    // deep emerald
        Rgb::from_u8(24, 52, 138),   // sapphire
        Rgb::from_u8(88, 40, 118),   // amethyst
        Rgb::from_u8(176, 178, 188), // silver
        Rgb::from_u8(198, 172, 118), // champagne gold
    ];
    const BRIDAL: &[Rgb] = &[
        Rgb::from_u8(250, 250, 248), // white
        Rgb::from_u8(248, 242, 226), // ivory
        Rgb::from_u8(240, 226, 202), // champagne
        Rgb::from_u8(246, 224, 218), // blush
    ];
    match style {
        Occasion::Casual => CASUAL,
        Occasion::Work => WORK,
        Occasion::Cocktail => COCKTAIL,
        Occasion::Evening => EVENING,
        Occasion::Bridal => BRIDAL,
    }
}

/// Print odds (solid, stripes, dots, floral) per style.
fn print_weights(style: Occasion) -> [f64; 4] {
    match style {
        Occasion::Casual => [0.25, 0.15, 0.25, 0.35],
        Occasion::Work => [0.65, 0.27, 0.08, 0.0],
        Occasion::Cocktail => [0.80, 0.06, 0.12, 0.02],
        Occasion::Evening => [0.88, 0.0, 0.02, 0.10],
        Occasion::Bridal => [0.78, 0.0, 0.02, 0.20],
    }
}

/// Sheen range per style.
fn sheen_range(style: Occasion) -> (f32, f32) {
    match style {
        Occasion::Casual => (0.0, 0.12),
        Occasion::Work => (0.05, 0.2),
        Occasion::Cocktail => (0.25, 0.65),
        Occasion::Evening => (0.55, 0.95),
        Occasion::Bridal => (0.5, 0.9),
    }
}

fn sample_fabric(dice: &mut Dice, style: Occasion) -> Fabric {
    let base = dice.pick(palette(style)).vary(dice, 8.0, 0.08, 0.05);
    let print_kind = dice.weighted(&print_weights(style));
    let (sheen_lo, sheen_hi) = sheen_range(style);
    let sheen = dice.range(sheen_lo, sheen_hi);
    // Accent: white or dark on casual prints, tonal elsewhere so work and evening stay calm.
    let accent = match style {
        Occasion::Casual => {
            let choices = [
                Rgb::from_u8(250, 248, 240),
                base.scale(0.45),
                Rgb::from_hsl((base.to_hsl().0 + 0.5).rem_euclid(1.0), 0.55, 0.55),
            ];
            dice.pick(&choices)
        }
        Occasion::Work => {
            if base.luma() < 0.45 {
                base.mix(Rgb::WHITE, 0.45)
            } else {
                base.scale(0.6)
            }
        }
        Occasion::Bridal => base.scale(0.9),
        Occasion::Cocktail | Occasion::Evening => {
            if base.luma() < 0.2 {
                base.mix(Rgb::WHITE, 0.3)
            } else {
                base.scale(0.65)
            }
        }
    };
    let print = match print_kind {
        1 if style == Occasion::Work => Print::Stripes {
            period: dice.range(1.4, 2.4),
            duty: dice.range(0.1, 0.18),
            angle_deg: 0.0,
        },
        1 => Print::Stripes {
            period: dice.range(2.0, 4.2),
            duty: dice.range(0.3, 0.5),
            angle_deg: dice.pick(&[0.0, 0.0, 90.0, 90.0, 45.0]),
        },
        2 => {
            let spacing = dice.range(2.2, 4.5);
            Print::Dots {
                spacing,
                radius: spacing * dice.range(0.13, 0.22),
            }
        }
        3 => Print::Floral {
            size: dice.range(2.4, 4.2),
            seed: dice.next_u64(),
        },
        _ => Print::Solid,
    };
    Fabric {
        base,
        accent,
        print,
        sheen,
    }
}

/// Which design every image shows.
#[derive(Clone, Debug)]
pub struct DatasetPlan {
    pub designs: Vec<Design>,
    /// `shots[i]` is the index into `designs` of image `i`.
    pub shots: Vec<usize>,
}

/// Plans `count` images: each new design is shown once, or with probability
/// [`REPEAT_PROBABILITY`] 2 to 4 times; image order is shuffled so copies are not adjacent.
///
/// Facet values are dealt to designs from shuffled "decks" holding each value in exact
/// proportion to its weight (conditional weights within each occasion, length or neckline
/// group), so the class balance of a data set matches the weights closely even for a few
/// thousand pictures; which design gets which value is still random.
pub fn plan_dataset(count: usize, seed: u64) -> DatasetPlan {
    let mut dice = Dice::new(seed, Stream::Plan, 0);
    let mut shots = Vec::with_capacity(count);
    let mut n_designs = 0;
    while shots.len() < count {
        let copies = if dice.chance(REPEAT_PROBABILITY) {
            dice.int(2, 4)
        } else {
            1
        };
        let copies = copies.min(count - shots.len());
        shots.extend(std::iter::repeat_n(n_designs, copies));
        n_designs += 1;
    }
    for i in (1..shots.len()).rev() {
        let j = dice.int(0, i);
        shots.swap(i, j);
    }
    let designs = dealt_facets(n_designs, &mut dice)
        .into_iter()
        .enumerate()
        .map(|(id, facets)| {
            let mut design_dice = Dice::new(seed, Stream::Design, id as u64);
            let style = fabric_style(&mut design_dice, facets.occasion);
            let fabric = sample_fabric(&mut design_dice, style);
            Design { id, facets, fabric }
        })
        .collect();
    DatasetPlan { designs, shots }
}

/// `n` values with counts proportional to `weights` (largest-remainder rounding), shuffled.
fn deck(n: usize, weights: &[f64], dice: &mut Dice) -> Vec<usize> {
    let total: f64 = weights.iter().sum();
    if n == 0 || total <= 0.0 {
        return vec![0; n];
    }
    let exact: Vec<f64> = weights.iter().map(|w| w / total * n as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    // Stable sort: ties go to the earlier (more common) value.
    by_remainder
        .sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    let missing = n - counts.iter().sum::<usize>();
    for &v in by_remainder.iter().take(missing) {
        counts[v] += 1;
    }
    let mut cards: Vec<usize> = counts
        .iter()
        .enumerate()
        .flat_map(|(v, &c)| std::iter::repeat_n(v, c))
        .collect();
    for i in (1..cards.len()).rev() {
        let j = dice.int(0, i);
        cards.swap(i, j);
    }
    cards
}

/// Deals one facet to `n` designs that are split into groups (`group[i]` for design `i`),
/// each group from its own deck with `weights(group)`.
fn deal_by_group(
    group: &[usize],
    n_groups: usize,
    weights: impl Fn(usize) -> Vec<f64>,
    dice: &mut Dice,
) -> Vec<usize> {
    let mut out = vec![0; group.len()];
    for g in 0..n_groups {
        let members: Vec<usize> = (0..group.len()).filter(|&i| group[i] == g).collect();
        for (&m, v) in members.iter().zip(deck(members.len(), &weights(g), dice)) {
            out[m] = v;
        }
    }
    out
}

/// Facets of `n` designs dealt in exact proportions, honouring the drawability rules.
fn dealt_facets(n: usize, dice: &mut Dice) -> Vec<Facets> {
    let all = vec![0; n];
    let occasions = deal_by_group(&all, 1, |_| OCCASION_WEIGHTS.to_vec(), dice);
    let lengths = deal_by_group(
        &occasions,
        OCCASION_WEIGHTS.len(),
        |o| LENGTH_GIVEN_OCCASION[o].to_vec(),
        dice,
    );
    let silhouettes = deal_by_group(
        &lengths,
        Length::ALL.len(),
        |l| {
            let length = Length::ALL[l];
            Silhouette::ALL
                .iter()
                .map(|&s| {
                    if silhouette_allows_length(s, length) {
                        SILHOUETTE_WEIGHTS[s.index()]
                    } else {
                        0.0
                    }
                })
                .collect()
        },
        dice,
    );
    let necklines = deal_by_group(&all, 1, |_| NECKLINE_WEIGHTS.to_vec(), dice);
    let sleeves = deal_by_group(
        &necklines,
        Neckline::ALL.len(),
        |nl| {
            let neckline = Neckline::ALL[nl];
            Sleeve::ALL
                .iter()
                .map(|&s| {
                    if neckline_allows_sleeve(neckline, s) {
                        SLEEVE_WEIGHTS[s.index()]
                    } else {
                        0.0
                    }
                })
                .collect()
        },
        dice,
    );
    (0..n)
        .map(|i| Facets {
            silhouette: Silhouette::ALL[silhouettes[i]],
            neckline: Neckline::ALL[necklines[i]],
            sleeve: Sleeve::ALL[sleeves[i]],
            length: Length::ALL[lengths[i]],
            occasion: Occasion::ALL[occasions[i]],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::facets::FACETS;

    #[test]
    fn forced_values_are_honoured_and_drawable() {
        for (facet, (_, values)) in FACETS.iter().enumerate() {
            for value in 0..values.len() {
                for k in 0..20 {
                    let mut dice = Dice::new(3, Stream::Preview, k);
                    let d = sample_design(0, &mut dice, Some((facet, value)));
                    assert_eq!(d.facets.indices()[facet], value);
                    assert!(d.facets.is_drawable(), "{:?}", d.facets);
                }
            }
        }
    }

    #[test]
    fn style_follows_occasion_most_of_the_time() {
        // Bridal palettes are near-white; count how often bridal designs get them.
        let mut bridal = 0;
        let mut whiteish = 0;
        for k in 0..4000 {
            let d = sample_design(0, &mut Dice::new(5, Stream::Design, k), Some((OCCASION, 4)));
            bridal += 1;
            whiteish += usize::from(d.fabric.base.luma() > 0.85);
        }
        let share = whiteish as f64 / bridal as f64;
        // 80% own style plus a little from casual/work off-whites.
        assert!((0.76..0.9).contains(&share), "share {share}");
    }

    #[test]
    fn decks_hold_exact_proportions() {
        let mut dice = Dice::new(1, Stream::Plan, 0);
        let cards = deck(1000, &[0.5, 0.3, 0.2, 0.0], &mut dice);
        let count = |v| cards.iter().filter(|&&c| c == v).count();
        assert_eq!((count(0), count(1), count(2), count(3)), (500, 300, 200, 0));
        // Rounding: 7 cards over three equal weights -> 3, 2, 2.
        let cards = deck(7, &[1.0, 1.0, 1.0], &mut dice);
        let count = |v| cards.iter().filter(|&&c| c == v).count();
        assert_eq!((count(0), count(1), count(2)), (3, 2, 2));
        // Shuffled, not sorted.
        let cards = deck(100, &[0.5, 0.5], &mut dice);
        assert!(cards.windows(2).any(|w| w[0] > w[1]));
    }

    #[test]
    fn dealt_facets_are_drawable_and_balanced() {
        let facets = dealt_facets(5000, &mut Dice::new(2, Stream::Plan, 0));
        assert!(facets.iter().all(|f| f.is_drawable()));
        let halter = facets
            .iter()
            .filter(|f| f.neckline == Neckline::Halter)
            .count();
        let expected = NECKLINE_WEIGHTS[5] / NECKLINE_WEIGHTS.iter().sum::<f64>() * 5000.0;
        assert!(
            (halter as f64 - expected).abs() <= 1.0,
            "{halter} vs {expected}"
        );
    }

    #[test]
    fn neckline_rules_shape_sleeves() {
        for k in 0..500 {
            let f = sample_facets(&mut Dice::new(9, Stream::Design, k), Some((NECKLINE, 5)));
            assert_eq!(f.sleeve, Sleeve::Sleeveless);
            let f = sample_facets(&mut Dice::new(9, Stream::Design, k), Some((NECKLINE, 6)));
            assert_ne!(f.sleeve, Sleeve::Sleeveless);
        }
    }
}
