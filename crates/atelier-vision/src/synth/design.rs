//! Dress designs (facet labels plus fabric) and the plan of which design each image shows.
//!
//! Facet values are long-tailed: per facet the commonest value is about ten times as
//! frequent as the rarest. Occasion is not drawn as a shape: it sets the odds of the fabric
//! (colour, pattern, sheen) and of the length, and in [`STYLE_AGREEMENT`] of designs the
//! fabric follows the occasion's own style (otherwise another occasion's), so the label is
//! learnable from the picture without being a fixed colour code.
//!
//! Designs come in two kinds. A base design has dealt facets and its own fabric. With
//! probability [`VARIANT_PROBABILITY`] (0.18) a base design starts a variant family: 1 to
//! [`MAX_VARIANTS`] (2) variant designs, each the same dress (fabric: colours, print, sheen;
//! occasion) with exactly one of silhouette, neckline, sleeve or length changed to another
//! drawable value (see [`vary_one_facet`]). That makes about a fifth of all designs variants
//! (3,000 pictures, seed 7: 268 of 1,442 base designs have variants, 397 variants in all), so
//! a data set of a few dozen pictures already holds a family to test "similar, not the same"
//! on, while most designs stay unrelated. A variant has its own id and, like any design, may
//! repeat 2 to 4 times; it never varies another variant.

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

/// Probability that a base design gets a variant family (see the module docs).
pub const VARIANT_PROBABILITY: f64 = 0.18;
/// Most variants in one family; the number is uniform in `1..=MAX_VARIANTS`.
pub const MAX_VARIANTS: usize = 2;
/// The facets a variant may change, as positions in [`FACETS`](super::facets::FACETS).
/// Occasion never changes: its cues are the fabric, which a variant keeps.
pub const VARIABLE_FACETS: [usize; 4] = [SILHOUETTE, NECKLINE, SLEEVE, LENGTH];

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

/// How a variant design differs from the design it varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variation {
    /// Id of the varied design, always a base design (one without a variation).
    pub base: usize,
    /// The one changed facet, one of [`VARIABLE_FACETS`].
    pub facet: usize,
}

/// One dress: its ground-truth facets and its fabric. Rendering the same design twice
/// gives the "same dress" on a different figure, pose, background and framing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Design {
    pub id: usize,
    pub facets: Facets,
    pub fabric: Fabric,
    /// `Some` for a variant: same fabric and occasion as its base, one facet changed.
    pub variation: Option<Variation>,
}

impl Design {
    /// Stable name used in the manifest, e.g. `d000123`.
    pub fn name(&self) -> String {
        design_name(self.id)
    }
}

/// The manifest name of design `id`, e.g. `d000123`.
pub fn design_name(id: usize) -> String {
    format!("d{id:06}")
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
        variation: None,
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

/// Plans `count` images: each new base design is shown once, or with probability
/// [`REPEAT_PROBABILITY`] 2 to 4 times, and is followed by its variant family if it gets one
/// (each variant shown 1 to 4 times by the same rule); image order is shuffled so copies and
/// family members are not adjacent.
///
/// Facet values are dealt to designs from shuffled "decks" holding each value in exact
/// proportion to its weight (conditional weights within each occasion, length or neckline
/// group), so the class balance of a data set matches the weights closely even for a few
/// thousand pictures; which design gets which value is still random. A variant is dealt
/// cards too but keeps its base's values except for the one facet it takes from its own
/// card (see [`vary_one_facet`]), which keeps the class balance as dealt.
pub fn plan_dataset(count: usize, seed: u64) -> DatasetPlan {
    let mut dice = Dice::new(seed, Stream::Plan, 0);
    let (mut shots, bases) = plan_shots(count, seed, &mut dice);
    for i in (1..shots.len()).rev() {
        let j = dice.int(0, i);
        shots.swap(i, j);
    }
    let dealt = dealt_facets(&bases, &mut dice);
    let mut designs: Vec<Design> = Vec::with_capacity(bases.len());
    for (id, (base, cards)) in bases.into_iter().zip(dealt).enumerate() {
        let design = match base {
            Some(base) => variant_design(id, base, &cards, &designs, seed),
            None => base_design(id, cards, seed),
        };
        designs.push(design);
    }
    DatasetPlan { designs, shots }
}

/// Base design `id` with dealt `facets` and a fabric from its own design stream.
fn base_design(id: usize, facets: Facets, seed: u64) -> Design {
    let mut dice = Dice::new(seed, Stream::Design, id as u64);
    let style = fabric_style(&mut dice, facets.occasion);
    Design {
        id,
        facets,
        fabric: sample_fabric(&mut dice, style),
        variation: None,
    }
}

/// How many pictures show one design: 1, or with [`REPEAT_PROBABILITY`] 2 to 4.
fn copies(dice: &mut Dice) -> usize {
    if dice.chance(REPEAT_PROBABILITY) {
        dice.int(2, 4)
    } else {
        1
    }
}

/// The design of each of `count` pictures in creation order, and per design id the base
/// design it varies (`None` for a base design). Base copies draw from `dice` (the plan
/// stream); whether a base gets a family, its size and the variants' copies draw from the
/// base's own family stream. A design that no longer fits in `count` is not created.
fn plan_shots(count: usize, seed: u64, dice: &mut Dice) -> (Vec<usize>, Vec<Option<usize>>) {
    let mut shots = Vec::with_capacity(count);
    let mut bases = Vec::new();
    let show = |shots: &mut Vec<usize>, id: usize, n: usize| {
        let n = n.min(count - shots.len());
        shots.extend(std::iter::repeat_n(id, n));
    };
    while shots.len() < count {
        let base = bases.len();
        show(&mut shots, base, copies(dice));
        bases.push(None);
        let mut family = Dice::new(seed, Stream::Family, base as u64);
        let n_variants = if family.chance(VARIANT_PROBABILITY) {
            family.int(1, MAX_VARIANTS)
        } else {
            0
        };
        for _ in 0..n_variants {
            if shots.len() == count {
                break;
            }
            show(&mut shots, bases.len(), copies(&mut family));
            bases.push(Some(base));
        }
    }
    (shots, bases)
}

/// Variant `id` of design `base` (an index into `planned`, which holds every design below
/// `id`) with its own dealt `cards`: the base's fabric and occasion with one facet changed to
/// a value that neither the base nor an earlier sibling has.
fn variant_design(id: usize, base: usize, cards: &Facets, planned: &[Design], seed: u64) -> Design {
    let base = &planned[base];
    let siblings: Vec<Facets> = planned
        .iter()
        .filter(|d| d.variation.is_some_and(|v| v.base == base.id))
        .map(|d| d.facets)
        .collect();
    let mut dice = Dice::new(seed, Stream::Variant, id as u64);
    let (facets, facet) = vary_one_facet(&base.facets, cards, &siblings, &mut dice)
        .expect("a base design always has another drawable silhouette");
    Design {
        id,
        facets,
        fabric: base.fabric,
        variation: Some(Variation {
            base: base.id,
            facet,
        }),
    }
}

/// `base` with exactly one of [`VARIABLE_FACETS`] changed, and which one. A change must keep
/// the design drawable and give a design that is neither `base` nor in `taken`.
///
/// The facet is uniform among those where the variant's own dealt `cards` give such a
/// change, and the new value is that card. Base value and card are independent draws with
/// the same odds and a card replaces the base's value only where the two differ, so a value
/// is gained by variants as often as it is lost and each facet's class balance stays as
/// dealt (drawing the new value from the weights instead would favour rare values, mini
/// lengths most of all). Only when no card gives a change (rare) the facet is uniform among
/// the possible ones and the value follows its weights (length: the occasion's length odds).
/// `None` if no change exists, which cannot happen with fewer than [`MAX_VARIANTS`] designs
/// in `taken` (four silhouettes allow every length).
pub fn vary_one_facet(
    base: &Facets,
    cards: &Facets,
    taken: &[Facets],
    dice: &mut Dice,
) -> Option<(Facets, usize)> {
    let allowed = |f: &Facets| f != base && f.is_drawable() && !taken.contains(f);
    let from_cards: Vec<(Facets, usize)> = VARIABLE_FACETS
        .iter()
        .filter_map(|&facet| Some((base.with_value(facet, cards.indices()[facet])?, facet)))
        .filter(|(f, _)| allowed(f))
        .collect();
    if !from_cards.is_empty() {
        return Some(dice.pick(&from_cards));
    }
    let choices: Vec<(usize, Vec<f64>)> = VARIABLE_FACETS
        .iter()
        .map(|&facet| (facet, variant_weights(base, facet, allowed)))
        .filter(|(_, weights)| weights.iter().sum::<f64>() > 0.0)
        .collect();
    if choices.is_empty() {
        return None;
    }
    let (facet, weights) = &choices[dice.int(0, choices.len() - 1)];
    let value = dice.weighted(weights);
    Some((base.with_value(*facet, value)?, *facet))
}

/// Draw weights of each value of `facet` for a variant of `base`: zero where the changed
/// design is not `allowed`.
fn variant_weights(base: &Facets, facet: usize, allowed: impl Fn(&Facets) -> bool) -> Vec<f64> {
    let weights: &[f64] = match facet {
        SILHOUETTE => &SILHOUETTE_WEIGHTS,
        NECKLINE => &NECKLINE_WEIGHTS,
        SLEEVE => &SLEEVE_WEIGHTS,
        LENGTH => &LENGTH_GIVEN_OCCASION[base.occasion.index()],
        _ => &[],
    };
    weights
        .iter()
        .enumerate()
        .map(|(value, &w)| match base.with_value(facet, value) {
            Some(f) if allowed(&f) => w,
            _ => 0.0,
        })
        .collect()
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

/// Facets of every design dealt in exact proportions, honouring the drawability rules.
/// `bases[i]` is the base design that design `i` varies: a variant takes its base's
/// occasion before lengths are dealt, so its other cards follow that occasion's odds.
fn dealt_facets(bases: &[Option<usize>], dice: &mut Dice) -> Vec<Facets> {
    let n = bases.len();
    let all = vec![0; n];
    let mut occasions = deal_by_group(&all, 1, |_| OCCASION_WEIGHTS.to_vec(), dice);
    for (i, base) in bases.iter().enumerate() {
        if let Some(b) = *base {
            occasions[i] = occasions[b];
        }
    }
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
        let facets = dealt_facets(&[None; 5000], &mut Dice::new(2, Stream::Plan, 0));
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

    /// Every drawable design, in a fixed order.
    fn all_drawable() -> Vec<Facets> {
        let mut out = Vec::new();
        for &silhouette in Silhouette::ALL {
            for &neckline in Neckline::ALL {
                for &sleeve in Sleeve::ALL {
                    for &length in Length::ALL {
                        for &occasion in Occasion::ALL {
                            let f = Facets {
                                silhouette,
                                neckline,
                                sleeve,
                                length,
                                occasion,
                            };
                            if f.is_drawable() {
                                out.push(f);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The facets where `a` and `b` differ.
    fn differing(a: &Facets, b: &Facets) -> Vec<usize> {
        let (a, b) = (a.indices(), b.indices());
        (0..5).filter(|&f| a[f] != b[f]).collect()
    }

    #[test]
    fn every_drawable_design_has_two_distinct_drawable_variants() {
        let all = all_drawable();
        let mut varied = [0usize; 5];
        for (k, base) in all.iter().enumerate() {
            // Cards equal to the base force the weighted draw; others mostly give the change.
            for cards in [*base, all[(k * 7919 + 13) % all.len()]] {
                let mut dice = Dice::new(4, Stream::Variant, k as u64);
                let mut taken = Vec::new();
                for _ in 0..MAX_VARIANTS {
                    let (v, facet) = vary_one_facet(base, &cards, &taken, &mut dice)
                        .unwrap_or_else(|| panic!("no variant of {base:?} beside {taken:?}"));
                    assert!(v.is_drawable(), "{v:?}");
                    assert_eq!(differing(base, &v), [facet], "{base:?} -> {v:?}");
                    assert!(!taken.contains(&v), "{v:?} twice");
                    varied[facet] += 1;
                    taken.push(v);
                }
            }
        }
        assert_eq!(varied[OCCASION], 0, "occasion never varies");
        assert!(
            VARIABLE_FACETS.iter().all(|&f| varied[f] > 1000),
            "{varied:?}"
        );
    }

    #[test]
    fn a_variant_takes_the_changed_value_from_its_own_card() {
        let base = Facets {
            silhouette: Silhouette::Sheath,
            neckline: Neckline::Crew,
            sleeve: Sleeve::Short,
            length: Length::Knee,
            occasion: Occasion::Work,
        };
        let cards = Facets {
            silhouette: Silhouette::ALine,
            neckline: Neckline::Crew,
            sleeve: Sleeve::Long,
            length: Length::Midi,
            occasion: Occasion::Casual,
        };
        let mut seen = [0usize; 5];
        for k in 0..300 {
            let mut dice = Dice::new(2, Stream::Variant, k);
            let (v, facet) = vary_one_facet(&base, &cards, &[], &mut dice).unwrap();
            assert_eq!(v.indices()[facet], cards.indices()[facet], "{v:?}");
            seen[facet] += 1;
        }
        // The neckline card equals the base's and occasion never varies.
        assert_eq!((seen[NECKLINE], seen[OCCASION]), (0, 0), "{seen:?}");
        assert!(seen[SILHOUETTE] > 60 && seen[SLEEVE] > 60 && seen[LENGTH] > 60);
        // A card already taken by a sibling is not used again.
        let sibling = base.with_value(LENGTH, Length::Midi.index()).unwrap();
        for k in 0..100 {
            let mut dice = Dice::new(3, Stream::Variant, k);
            let (v, _) = vary_one_facet(&base, &cards, &[sibling], &mut dice).unwrap();
            assert_ne!(v, sibling);
        }
    }

    #[test]
    fn variants_keep_the_rules_where_only_some_values_are_allowed() {
        let halter_mermaid = Facets {
            silhouette: Silhouette::Mermaid,
            neckline: Neckline::Halter,
            sleeve: Sleeve::Sleeveless,
            length: Length::Midi,
            occasion: Occasion::Evening,
        };
        // Cards that give no allowed change: a sleeve for the halter, mini for the mermaid.
        let cards = Facets {
            sleeve: Sleeve::Long,
            length: Length::Mini,
            ..halter_mermaid
        };
        let mut seen = [0usize; 5];
        for k in 0..300 {
            let mut dice = Dice::new(1, Stream::Variant, k);
            let (v, facet) = vary_one_facet(&halter_mermaid, &cards, &[], &mut dice).unwrap();
            assert!(v.is_drawable(), "{v:?}");
            seen[facet] += 1;
            // Mermaid's only other length is maxi; off-shoulder would need a sleeve.
            if facet == LENGTH {
                assert_eq!(v.length, Length::Maxi);
            }
            assert_ne!(v.neckline, Neckline::OffShoulder);
        }
        // Halter allows no other sleeve, so the other three facets share the draws.
        assert_eq!(seen[SLEEVE], 0, "{seen:?}");
        assert!(seen[SILHOUETTE] > 60 && seen[NECKLINE] > 60 && seen[LENGTH] > 60);
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
