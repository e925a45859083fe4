//! Dress outlines built from the facet values on a given person: bodice top (neckline and
//! armholes), side seams and skirt (silhouette), hem (length) and sleeves.
//!
//! All five shape facets change the outline itself, never only the colour, so each value
//! can be told apart from the silhouette of the fabric against skin and background.

use super::facets::{Facets, Length, Neckline, Silhouette, Sleeve};
use super::figure::{
    ANKLE_Y, Arm, FOREARM, HIP_Y, KNEE_Y, NECK_HW, Person, UNDERARM_Y, UPPER_ARM, WAIST_Y,
};
use super::geometry::{Pt, along, band, clip_below, cubic, mirror_closed, pt};
use super::rng::Dice;

/// How the skirt hangs, used for both the outline and the shading of folds.
#[derive(Clone, Debug)]
pub struct Profile {
    pub silhouette: Silhouette,
    /// Half-width of the bodice across the chest.
    pub chest_hw: f32,
    pub waist_hw: f32,
    pub hip_hw: f32,
    pub hem_y: f32,
    pub hem_hw: f32,
    /// Skirt half-width just above the knee (mermaid only).
    pub knee_hw: f32,
    /// Fold cycles across half the skirt, their phase, where they begin and how deep they are.
    pub fold_cycles: f32,
    pub fold_phase: f32,
    pub fold_start_y: f32,
    pub fold_depth: f32,
    /// Hem ripple height (figure units) that follows the folds.
    pub hem_wave: f32,
    /// Drape below a cowl neckline, if any.
    pub cowl: Option<Cowl>,
}

/// Soft U-shaped folds hanging below a cowl neckline: parabolas `y = centre_y + depth -
/// rise * x^2`, shaded (not outlined) so they read as cloth.
#[derive(Clone, Copy, Debug)]
pub struct Cowl {
    pub centre_y: f32,
    pub width: f32,
    pub rise: f32,
}

impl Cowl {
    /// Vertical tilt of the fabric normal at `p` (negative faces up towards the light).
    pub fn tilt(&self, p: Pt) -> f32 {
        let across = (p.x / self.width).abs();
        if across >= 1.0 {
            return 0.0;
        }
        // Depth below the neckline along the parabola through p.
        let depth = p.y - self.centre_y + self.rise * p.x * p.x;
        if !(0.0..7.0).contains(&depth) {
            return 0.0;
        }
        let fade = (1.0 - depth / 7.0).sqrt() * (1.0 - across * across);
        // Starts in shadow just under the rolled edge, then alternates ridge and crease.
        fade * (std::f32::consts::TAU * (depth / 2.5 + 0.25)).sin()
    }
}

impl Profile {
    /// Half-width of the dress body at height `y`.
    pub fn half_width(&self, y: f32) -> f32 {
        if self.silhouette == Silhouette::Shift {
            let t = ((y - UNDERARM_Y) / (self.hem_y - UNDERARM_Y)).clamp(0.0, 1.0);
            return self.chest_hw + (self.hem_hw - self.chest_hw) * t;
        }
        if y < UNDERARM_Y {
            return self.chest_hw;
        }
        if y < WAIST_Y {
            let t = (y - UNDERARM_Y) / (WAIST_Y - UNDERARM_Y);
            return self.chest_hw + (self.waist_hw - self.chest_hw) * t * t;
        }
        self.skirt_half_width(y)
    }

    fn skirt_half_width(&self, y: f32) -> f32 {
        use std::f32::consts::FRAC_PI_2;
        let (w0, wh) = (self.waist_hw, self.hip_hw);
        let to_hip = ((y - WAIST_Y) / (HIP_Y - WAIST_Y)).clamp(0.0, 1.0);
        let fitted = w0 + (wh - w0) * (to_hip * FRAC_PI_2).sin();
        let along_skirt = ((y - WAIST_Y) / (self.hem_y - WAIST_Y)).clamp(0.0, 1.0);
        match self.silhouette {
            Silhouette::Sheath => {
                if y <= HIP_Y {
                    fitted
                } else {
                    wh - (0.035 * (y - HIP_Y)).min(1.3)
                }
            }
            Silhouette::ALine => {
                let flare = w0 + (self.hem_hw - w0) * along_skirt.powf(0.8);
                flare.max(fitted + 0.3)
            }
            Silhouette::FitAndFlare => {
                let start = self.fold_start_y;
                if y <= start {
                    fitted
                } else {
                    let t = ((y - start) / (self.hem_y - start)).clamp(0.0, 1.0);
                    wh + (self.hem_hw - wh) * (1.0 - (1.0 - t) * (1.0 - t))
                }
            }
            Silhouette::BallGown => {
                let t = along_skirt;
                let dome = w0 + (self.hem_hw - w0) * (1.0 - (1.0 - t).powi(3));
                dome.max(fitted + 1.0)
            }
            Silhouette::Mermaid => {
                let knee_top = self.fold_start_y;
                if y <= HIP_Y {
                    fitted
                } else if y <= knee_top {
                    let t = (y - HIP_Y) / (knee_top - HIP_Y);
                    let s = t * t * (3.0 - 2.0 * t);
                    wh + (self.knee_hw - wh) * s
                } else {
                    let t = ((y - knee_top) / (self.hem_y - knee_top)).clamp(0.0, 1.0);
                    self.knee_hw + (self.hem_hw - self.knee_hw) * t.powf(1.7)
                }
            }
            Silhouette::Shift => self.half_width(y),
        }
    }

    /// Hem height at horizontal position `u` (0 = centre, 1 = side): a slight downward
    /// curve (the hem's front seen from chest height) plus ripples where folds end.
    pub fn hem_at(&self, u: f32) -> f32 {
        let droop = 0.035 * self.hem_hw * (1.0 - u * u);
        let ripple =
            self.hem_wave * (std::f32::consts::TAU * self.fold_cycles * u + self.fold_phase).cos();
        self.hem_y + droop + ripple
    }
}

/// One sleeve: outline plus the arm axis it wraps (for shading across its width).
#[derive(Clone, Debug)]
pub struct SleeveShape {
    pub outline: Vec<Pt>,
    pub axis: Vec<Pt>,
    pub half_width: f32,
}

/// A line drawn on the fabric for drape or construction (waist seam, cowl folds).
#[derive(Clone, Debug)]
pub struct FoldLine {
    pub points: Vec<Pt>,
    /// True for a crease in shadow, false for a lit ridge.
    pub dark: bool,
    pub width: f32,
}

/// Complete dress geometry for one picture.
#[derive(Clone, Debug)]
pub struct Dress {
    pub body: Vec<Pt>,
    pub holes: Vec<Vec<Pt>>,
    pub sleeves: Vec<SleeveShape>,
    pub profile: Profile,
    pub folds: Vec<FoldLine>,
    /// Outermost ankle and knee positions that stay hidden under a long narrow skirt.
    pub max_ankle: f32,
    pub max_knee: f32,
}

impl Dress {
    /// All outline points (body and sleeves), for framing.
    pub fn points(&self) -> impl Iterator<Item = &Pt> {
        self.body
            .iter()
            .chain(self.sleeves.iter().flat_map(|s| s.outline.iter()))
    }
}

fn hem_height(length: Length, silhouette: Silhouette, dice: &mut Dice) -> f32 {
    match length {
        Length::Mini => dice.range(53.5, 56.0),
        Length::Knee => dice.range(61.5, 64.0),
        Length::Midi => dice.range(72.5, 75.5),
        Length::Maxi if silhouette == Silhouette::BallGown => dice.range(88.0, 89.5),
        Length::Maxi => dice.range(85.5, 88.0),
    }
}

/// Hem half-width; the flared silhouettes get wider the longer they are.
fn hem_half_width(silhouette: Silhouette, length: Length, hip_hw: f32, dice: &mut Dice) -> f32 {
    let l = length.index();
    let base = match silhouette {
        // Set from the profile once the hem height is known.
        Silhouette::Sheath => return hip_hw,
        Silhouette::Shift => return hip_hw.max(8.6) + 1.5 + 0.4 * l as f32,
        Silhouette::ALine => [13.5, 17.0, 20.0, 24.0][l],
        Silhouette::FitAndFlare => [16.5, 21.0, 25.0, 29.0][l],
        Silhouette::BallGown => [26.0, 27.0, 31.0, 35.0][l],
        Silhouette::Mermaid => [13.0, 13.0, 13.5, 19.0][l],
    };
    base * dice.range(0.94, 1.06)
}

/// Builds the dress for `facets` on `person`: skirt profile, bodice top, side seams and
/// hem, then sleeves.
pub fn build(facets: &Facets, person: &Person, dice: &mut Dice) -> Dress {
    let mut profile = skirt_profile(facets, person, dice);
    let off_shoulder_y = dice.range(20.0, 20.8);
    let Bodice {
        mut half,
        holes,
        mut folds,
        cowl,
    } = bodice_top(facets, person, dice, off_shoulder_y);
    profile.cowl = cowl;

    folds.extend(side_seam(&mut half, &profile, person.shoulder_k));
    skirt_side_and_hem(&mut half, &profile);
    let body = mirror_closed(&half);

    let clip = (facets.neckline == Neckline::OffShoulder).then_some(off_shoulder_y);
    let sleeves = person
        .arms
        .iter()
        .filter_map(|arm| sleeve_shape(arm, facets.sleeve, clip))
        .collect();

    let (max_ankle, max_knee) = hidden_leg_limits(&profile);
    Dress {
        body,
        holes,
        sleeves,
        max_ankle,
        max_knee,
        profile,
        folds,
    }
}

/// How the skirt hangs for these facets on this person (no cowl yet).
fn skirt_profile(facets: &Facets, person: &Person, dice: &mut Dice) -> Profile {
    let k = person.shoulder_k;
    let silhouette = facets.silhouette;
    let hem_y = hem_height(facets.length, silhouette, dice);
    let hip_hw = person.hip_hw + 0.6;
    let (fold_cycles, fold_start_y, fold_depth, hem_wave) = match silhouette {
        Silhouette::Sheath => (1.0, HIP_Y, 0.12, 0.0),
        Silhouette::Shift => (1.5, UNDERARM_Y, 0.15, 0.0),
        Silhouette::ALine => (2.5, WAIST_Y, 0.2, 0.2),
        Silhouette::FitAndFlare => (3.5, HIP_Y + 1.5, 0.22, 0.3),
        Silhouette::BallGown => (4.5, WAIST_Y, 0.17, 0.25),
        Silhouette::Mermaid => (3.0, KNEE_Y - 3.0, 0.22, 0.25),
    };
    let mut profile = Profile {
        silhouette,
        chest_hw: if silhouette == Silhouette::Shift {
            7.7 * k
        } else {
            7.45 * k
        },
        waist_hw: person.waist_hw + 0.45,
        hip_hw,
        hem_y,
        hem_hw: hem_half_width(silhouette, facets.length, hip_hw, dice),
        knee_hw: 6.6,
        fold_cycles,
        fold_phase: dice.range(0.0, std::f32::consts::TAU),
        fold_start_y,
        fold_depth,
        hem_wave,
        cowl: None,
    };
    if silhouette == Silhouette::Sheath {
        profile.hem_hw = profile.half_width(hem_y);
    }
    profile
}

/// Continues the right half outline from the underarm to the waist (a fitted bodice) and
/// returns the waist seam line; a shift has no waist, so nothing is added for it.
fn side_seam(half: &mut Vec<Pt>, profile: &Profile, k: f32) -> Option<FoldLine> {
    let under = pt(profile.chest_hw, UNDERARM_Y);
    half.push(under);
    if profile.silhouette == Silhouette::Shift {
        return None;
    }
    let waist_hw = profile.waist_hw;
    cubic(
        half,
        under,
        pt(7.75 * k, 27.0),
        pt(waist_hw, 30.0),
        pt(waist_hw, WAIST_Y),
    );
    Some(FoldLine {
        points: (0..=12)
            .map(|i| {
                let x = -waist_hw + 2.0 * waist_hw * i as f32 / 12.0;
                pt(x, WAIST_Y + 0.25 * (1.0 - (x / waist_hw).powi(2)))
            })
            .collect(),
        dark: true,
        width: 0.3,
    })
}

/// Continues the right half outline down the skirt side to the hem, then along the hem to
/// the centre.
fn skirt_side_and_hem(half: &mut Vec<Pt>, profile: &Profile) {
    let side_end = profile.hem_at(1.0);
    let mut y = if profile.silhouette == Silhouette::Shift {
        UNDERARM_Y
    } else {
        WAIST_Y
    };
    while y < side_end - 0.4 {
        y += 0.8;
        let yy = y.min(side_end);
        half.push(pt(profile.half_width(yy.min(profile.hem_y)), yy));
    }
    let n = 32;
    for i in (0..=n).rev() {
        let u = i as f32 / n as f32;
        half.push(pt(u * profile.hem_hw, profile.hem_at(u)));
    }
}

/// Outermost ankle and knee positions a long or knee-covering narrow skirt keeps hidden
/// (`f32::MAX` where the skirt does not reach).
fn hidden_leg_limits(profile: &Profile) -> (f32, f32) {
    let max_ankle = if profile.hem_y > ANKLE_Y - 3.0 {
        profile.half_width(ANKLE_Y) - 1.6
    } else {
        f32::MAX
    };
    let max_knee = if profile.hem_y > KNEE_Y + 2.0 {
        profile.half_width(KNEE_Y) - 0.3
    } else {
        f32::MAX
    };
    (max_ankle, max_knee)
}

/// The top of the dress body above the underarms.
struct Bodice {
    /// Right half of the outline, from the centre front of the neckline to just above the
    /// underarm.
    half: Vec<Pt>,
    holes: Vec<Vec<Pt>>,
    folds: Vec<FoldLine>,
    cowl: Option<Cowl>,
}

/// Builds the bodice top: neckline cut, then shoulder strap or shoulder seam, then armhole.
/// A halter or off-shoulder neckline has its own straps or band and no shoulder line.
fn bodice_top(facets: &Facets, person: &Person, dice: &mut Dice, off_shoulder_y: f32) -> Bodice {
    let mut bodice = Bodice {
        half: Vec::new(),
        holes: Vec::new(),
        folds: Vec::new(),
        cowl: None,
    };
    let line = ShoulderLine { person };
    let half = &mut bodice.half;
    let x_n = match facets.neckline {
        Neckline::Crew => crew_neck(&line, dice, half),
        Neckline::VNeck => v_neck(&line, dice, half),
        Neckline::Boat => boat_neck(&line, dice, half),
        Neckline::Square => square_neck(&line, dice, half),
        Neckline::Sweetheart => sweetheart_neck(&line, dice, half),
        Neckline::Cowl => {
            let (x_n, cowl) = cowl_neck(&line, dice, half);
            bodice.cowl = Some(cowl);
            x_n
        }
        Neckline::Halter => {
            halter_neck(person.shoulder_k, dice, &mut bodice);
            return bodice;
        }
        Neckline::OffShoulder => {
            off_shoulder_band(person.shoulder_k, off_shoulder_y, &mut bodice);
            return bodice;
        }
    };
    shoulder_and_armhole(&line, facets.sleeve, x_n, &mut bodice.half);
    bodice
}

/// The skin line along the top of the shoulders, where necklines and straps end.
struct ShoulderLine<'a> {
    person: &'a Person,
}

impl ShoulderLine<'_> {
    /// Fabric sits a hair above the skin line so no skin shows along the shoulder.
    const LIFT: f32 = 0.12;

    /// The person's shoulder-width factor.
    fn k(&self) -> f32 {
        self.person.shoulder_k
    }

    /// The fabric's edge on the shoulder at `x`.
    fn at(&self, x: f32) -> Pt {
        pt(x, self.person.shoulder_y(x) - Self::LIFT)
    }

    /// Points along the shoulder slope from `x0` to `x1` (exclusive of `x0`); past the
    /// shoulder tip the edge stays at the tip's height.
    fn push_between(&self, x0: f32, x1: f32, out: &mut Vec<Pt>) {
        let steps = ((x1 - x0) * 2.0).ceil().max(1.0) as usize;
        for i in 1..=steps {
            let x = x0 + (x1 - x0) * i as f32 / steps as f32;
            let x_on = x.min(7.9 * self.k());
            out.push(pt(x, self.person.shoulder_y(x_on) - Self::LIFT));
        }
    }
}

// Each neckline below starts the right half outline at the centre front and ends it on the
// shoulder, returning where it meets the shoulder (`x_n`).

fn crew_neck(line: &ShoulderLine, dice: &mut Dice, half: &mut Vec<Pt>) -> f32 {
    let x_n = 2.35;
    let top = line.at(x_n);
    let yc = top.y + dice.range(1.6, 2.1);
    half.push(pt(0.0, yc));
    cubic(
        half,
        pt(0.0, yc),
        pt(x_n * 0.6, yc),
        pt(x_n, yc - (yc - top.y) * 0.45),
        top,
    );
    x_n
}

fn v_neck(line: &ShoulderLine, dice: &mut Dice, half: &mut Vec<Pt>) -> f32 {
    let x_n = 3.0;
    let top = line.at(x_n);
    let yc = dice.range(23.0, 25.5);
    half.push(pt(0.0, yc));
    half.push(pt(0.0, yc).lerp(top, 0.5));
    half.push(top);
    x_n
}

fn boat_neck(line: &ShoulderLine, dice: &mut Dice, half: &mut Vec<Pt>) -> f32 {
    let k = line.k();
    let x_n = 7.2 * k;
    let top = line.at(x_n);
    let yc = dice.range(17.2, 17.7);
    half.push(pt(0.0, yc));
    cubic(half, pt(0.0, yc), pt(3.0, yc), pt(6.2 * k, yc - 0.1), top);
    x_n
}

fn square_neck(line: &ShoulderLine, dice: &mut Dice, half: &mut Vec<Pt>) -> f32 {
    let x_n = 4.1;
    let yc = dice.range(21.2, 22.6);
    half.push(pt(0.0, yc));
    half.push(pt(x_n, yc));
    half.push(line.at(x_n));
    x_n
}

fn sweetheart_neck(line: &ShoulderLine, dice: &mut Dice, half: &mut Vec<Pt>) -> f32 {
    let x_n = 4.3 * line.k();
    let dip = dice.range(23.0, 24.0);
    half.push(pt(0.0, dip));
    cubic(
        half,
        pt(0.0, dip),
        pt(0.4, 20.6),
        pt(1.6, 19.6),
        pt(2.8, 19.6),
    );
    cubic(
        half,
        pt(2.8, 19.6),
        pt(3.9, 19.6),
        pt(4.6, 20.3),
        pt(4.75, 21.2),
    );
    half.push(line.at(x_n));
    x_n
}

/// Also returns the drape that hangs below the neckline.
fn cowl_neck(line: &ShoulderLine, dice: &mut Dice, half: &mut Vec<Pt>) -> (f32, Cowl) {
    let k = line.k();
    let x_n = 4.9 * k;
    let top = line.at(x_n);
    let yc = dice.range(19.4, 20.4);
    half.push(pt(0.0, yc));
    cubic(
        half,
        pt(0.0, yc),
        pt(2.6, yc),
        pt(4.4 * k, top.y + 1.6),
        top,
    );
    let cowl = Cowl {
        centre_y: yc,
        width: x_n,
        rise: (yc - top.y) / (x_n * x_n),
    };
    (x_n, cowl)
}

/// A band round the neck, two wide straps down to the underarms, bare shoulders, and a V of
/// skin between the straps.
fn halter_neck(k: f32, dice: &mut Dice, bodice: &mut Bodice) {
    let half = &mut bodice.half;
    half.push(pt(0.0, 12.4));
    half.push(pt(NECK_HW + 0.35, 12.5));
    half.push(pt(NECK_HW + 0.6, 14.3));
    cubic(
        half,
        pt(NECK_HW + 0.6, 14.3),
        pt(3.2, 16.8),
        pt(5.8 * k, 20.4),
        pt(7.2 * k, 23.0),
    );
    let depth = dice.range(20.5, 22.0);
    bodice
        .holes
        .push(vec![pt(-1.05, 14.25), pt(1.05, 14.25), pt(0.0, depth)]);
}

/// A straight edge at `y`, below the shoulders; the sleeves continue it across the arms.
fn off_shoulder_band(k: f32, y: f32, bodice: &mut Bodice) {
    let half = &mut bodice.half;
    half.push(pt(0.0, y + 0.2));
    half.push(pt(4.5, y + 0.1));
    half.push(pt(9.2 * k, y));
    half.push(pt(8.7 * k, 22.4));
    bodice.folds.push(FoldLine {
        points: (0..=16)
            .map(|i| pt(-8.6 * k + 17.2 * k * i as f32 / 16.0, y + 1.3))
            .collect(),
        dark: true,
        width: 0.3,
    });
}

/// From the neckline at `x_n` along the shoulder, then down the armhole to the underarm: a
/// strap and a cut-in armhole when sleeveless, else the shoulder seam and the deltoid curve.
fn shoulder_and_armhole(line: &ShoulderLine, sleeve: Sleeve, x_n: f32, half: &mut Vec<Pt>) {
    let k = line.k();
    if sleeve == Sleeve::Sleeveless {
        let x_s = (x_n + 2.4).min(7.0 * k).max(x_n + 1.6);
        line.push_between(x_n, x_s, half);
        let s = line.at(x_s.min(7.9 * k));
        cubic(
            half,
            s,
            pt(s.x - 0.15, s.y + 2.8),
            pt(6.5 * k, 22.8),
            pt(7.35 * k, UNDERARM_Y - 0.2),
        );
    } else {
        line.push_between(x_n, 7.9 * k, half);
        line.person.deltoid(half, 0.3);
    }
}

/// Arm half-width at arc length `s` from the shoulder joint.
fn arm_half_width(arm: &Arm, s: f32) -> f32 {
    let marks = [
        0.0,
        0.45 * UPPER_ARM,
        UPPER_ARM,
        UPPER_ARM + 0.4 * FOREARM,
        UPPER_ARM + FOREARM,
    ];
    let w = arm.half_widths;
    if s <= marks[0] {
        return w[0];
    }
    for i in 0..4 {
        if s <= marks[i + 1] {
            let t = (s - marks[i]) / (marks[i + 1] - marks[i]);
            return w[i] + (w[i + 1] - w[i]) * t;
        }
    }
    w[4]
}

/// Sleeve outline, or `None` for sleeveless. `clip_y` cuts the top straight across (the
/// off-shoulder band).
fn sleeve_shape(arm: &Arm, sleeve: Sleeve, clip_y: Option<f32>) -> Option<SleeveShape> {
    let (mut s_end, ease_top, ease_end) = match sleeve {
        Sleeve::Sleeveless => return None,
        Sleeve::Cap => (3.4, 0.45, 1.05),
        Sleeve::Short => (7.6, 0.5, 0.7),
        Sleeve::Elbow => (UPPER_ARM + 0.9, 0.45, 0.55),
        Sleeve::ThreeQuarter => (UPPER_ARM + 0.58 * FOREARM, 0.45, 0.7),
        Sleeve::Long => (UPPER_ARM + FOREARM + 0.4, 0.4, 0.5),
    };
    let s_start = if clip_y.is_some() { -3.0 } else { 0.0 };
    if let Some(y) = clip_y {
        // Make sure some sleeve remains below the band edge.
        let dir_y = (arm.axis[1] - arm.axis[0]).unit().y.max(0.3);
        let s_cross = (y - arm.axis[0].y) / dir_y;
        s_end = s_end.max(s_cross + 2.6);
    }
    // Sample the axis between s_start and s_end, keeping the elbow as a vertex.
    let mut stations = vec![s_start];
    for mark in [0.45 * UPPER_ARM, UPPER_ARM, UPPER_ARM + 0.4 * FOREARM] {
        if mark > s_start && mark < s_end {
            stations.push(mark);
        }
    }
    stations.push(s_end);
    let span = s_end - s_start;
    let axis: Vec<Pt> = stations.iter().map(|&s| along(&arm.axis, s).0).collect();
    let widths: Vec<f32> = stations
        .iter()
        .map(|&s| arm_half_width(arm, s) + ease_top + (ease_end - ease_top) * (s - s_start) / span)
        .collect();
    let mut outline = band(&axis, &widths);
    if let Some(y) = clip_y {
        outline = clip_below(&outline, y);
    }
    let half_width = widths.iter().sum::<f32>() / widths.len() as f32;
    Some(SleeveShape {
        outline,
        axis,
        half_width,
    })
}
