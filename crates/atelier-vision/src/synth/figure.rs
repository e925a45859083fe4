//! The person wearing the dress: proportions, pose, skin, hair and shoes, in figure units
//! (y down, x = 0 on the centre line, top of the head near y = 0, soles near y = 90).
//!
//! Facet landmarks (waist, hips, knee, ankle, elbow, wrist) are fixed heights or arm
//! lengths so that "knee length" or "elbow sleeve" always means the same place on the body;
//! only widths, pose and appearance vary between pictures.

use super::canvas::Canvas;
use super::color::Rgb;
use super::geometry::{Pt, band, clip_below, cubic, cubic_at, ellipse, pt};
use super::rng::Dice;

pub const HEAD_CENTRE: Pt = pt(0.0, 6.2);
pub const HEAD_RX: f32 = 3.75;
pub const HEAD_RY: f32 = 5.05;
pub const NECK_HW: f32 = 1.55;
/// Where the neck meets the shoulder slope.
pub const NECK_BASE_Y: f32 = 13.2;
pub const UNDERARM_Y: f32 = 23.6;
pub const WAIST_Y: f32 = 33.0;
pub const HIP_Y: f32 = 42.0;
pub const KNEE_Y: f32 = 63.0;
pub const ANKLE_Y: f32 = 86.0;
pub const SOLE_Y: f32 = 90.3;
pub const UPPER_ARM: f32 = 14.8;
pub const FOREARM: f32 = 12.4;

const SKIN_TONES: [Rgb; 8] = [
    Rgb::from_u8(244, 214, 192),
    Rgb::from_u8(234, 196, 166),
    Rgb::from_u8(222, 178, 140),
    Rgb::from_u8(200, 150, 110),
    Rgb::from_u8(176, 124, 88),
    Rgb::from_u8(146, 98, 68),
    Rgb::from_u8(116, 76, 54),
    Rgb::from_u8(88, 58, 42),
];

const HAIR_COLOURS: [Rgb; 7] = [
    Rgb::from_u8(26, 22, 20),
    Rgb::from_u8(58, 40, 28),
    Rgb::from_u8(100, 68, 44),
    Rgb::from_u8(128, 62, 36),
    Rgb::from_u8(196, 160, 104),
    Rgb::from_u8(156, 152, 148),
    Rgb::from_u8(222, 210, 184),
];

const SHOE_COLOURS: [Rgb; 6] = [
    Rgb::from_u8(24, 22, 22),
    Rgb::from_u8(196, 160, 130),
    Rgb::from_u8(150, 30, 40),
    Rgb::from_u8(236, 232, 226),
    Rgb::from_u8(176, 150, 90),
    Rgb::from_u8(70, 50, 40),
];

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HairStyle {
    Pixie,
    Bob,
    Long,
    Bun,
}

/// One arm, shoulder to wrist, plus the hand outline.
#[derive(Clone, Debug)]
pub struct Arm {
    /// Shoulder joint, mid upper arm, elbow, mid forearm, wrist.
    pub axis: [Pt; 5],
    pub half_widths: [f32; 5],
    pub hand: Vec<Pt>,
}

/// The visible part of one leg (below the hem) and the shoe.
#[derive(Clone, Debug)]
pub struct Leg {
    pub outline: Vec<Pt>,
    pub shoe: Vec<Pt>,
}

/// Appearance and pose of the person in one picture.
#[derive(Clone, Debug)]
pub struct Person {
    /// Horizontal scale of shoulders and chest (about 1).
    pub shoulder_k: f32,
    pub waist_hw: f32,
    pub hip_hw: f32,
    pub skin: Rgb,
    pub hair: Rgb,
    pub hair_style: HairStyle,
    pub shoes: Rgb,
    /// Index 0 is the arm on the image's left (x < 0), 1 on the right.
    pub arms: [Arm; 2],
    /// Preferred ankle distance from the centre line per side (the dress may narrow it).
    pub stance: [f32; 2],
    /// Small sideways offset of the hairline parting.
    pub parting: f32,
}

impl Person {
    pub fn sample(dice: &mut Dice) -> Person {
        let shoulder_k = dice.range(0.95, 1.05);
        let skin = dice.pick(&SKIN_TONES).vary(dice, 4.0, 0.05, 0.03);
        let hair = dice.pick(&HAIR_COLOURS).vary(dice, 6.0, 0.05, 0.04);
        let hair_style = dice.pick(&[
            HairStyle::Pixie,
            HairStyle::Bob,
            HairStyle::Long,
            HairStyle::Bun,
        ]);
        let shoes = dice.pick(&SHOE_COLOURS);
        // Mostly relaxed arms held a little away from the body; sometimes a hand on the hip.
        let pose = |dice: &mut Dice| {
            if dice.chance(0.22) {
                ArmPose::HandOnHip {
                    upper_deg: dice.range(40.0, 50.0),
                }
            } else {
                let upper = dice.range(15.0, 30.0);
                ArmPose::Hanging {
                    upper_deg: upper,
                    fore_deg: upper + dice.range(-4.0, 14.0),
                }
            }
        };
        let (left, right) = (pose(dice), pose(dice));
        Person {
            shoulder_k,
            waist_hw: 5.2 * dice.range(0.95, 1.07),
            hip_hw: 8.2 * dice.range(0.96, 1.06),
            skin,
            hair,
            hair_style,
            shoes,
            arms: [
                build_arm(left, shoulder_k, -1.0),
                build_arm(right, shoulder_k, 1.0),
            ],
            stance: [dice.range(2.6, 5.6), dice.range(2.6, 5.6)],
            parting: dice.jitter(0.8),
        }
    }

    /// Shoulder slope from the neck to the top of the shoulder (right side).
    pub fn shoulder_curve(&self) -> [Pt; 4] {
        let k = self.shoulder_k;
        [
            pt(NECK_HW, NECK_BASE_Y),
            pt(NECK_HW + 0.35, 15.0),
            pt(4.6 * k, 15.3),
            pt(7.9 * k, 16.4),
        ]
    }

    /// Height of the shoulder line at `x` (right side, `NECK_HW..=7.9k`).
    pub fn shoulder_y(&self, x: f32) -> f32 {
        let c = self.shoulder_curve();
        let (mut lo, mut hi) = (0.0f32, 1.0f32);
        for _ in 0..24 {
            let mid = 0.5 * (lo + hi);
            if cubic_at(c, mid).x < x {
                lo = mid
            } else {
                hi = mid
            }
        }
        cubic_at(c, 0.5 * (lo + hi)).y
    }

    /// Rounded outer shoulder (deltoid) from the end of the shoulder slope down to the
    /// underarm, right side; `ease` widens it for fabric lying on top.
    pub fn deltoid(&self, out: &mut Vec<Pt>, ease: f32) {
        let k = self.shoulder_k;
        let start = pt(7.9 * k, 16.4 - ease);
        cubic(
            out,
            start,
            pt(9.3 * k + ease, 16.7 - ease),
            pt(10.0 * k + ease, 18.4),
            pt(9.6 * k + ease, 21.0),
        );
        out.push(pt(7.4 * k + ease * 0.5, UNDERARM_Y));
    }

    /// Skin of neck, shoulders and chest down to the waist; the dress always covers
    /// everything below (and the legs start under the skirt).
    pub fn torso_outline(&self) -> Vec<Pt> {
        let k = self.shoulder_k;
        let mut half = vec![pt(0.0, 9.0), pt(NECK_HW, 9.0)];
        let c = self.shoulder_curve();
        half.push(c[0]);
        cubic(&mut half, c[0], c[1], c[2], c[3]);
        self.deltoid(&mut half, 0.0);
        let under = *half.last().unwrap_or(&pt(7.4 * k, UNDERARM_Y));
        cubic(
            &mut half,
            under,
            pt(7.6 * k, 27.0),
            pt(self.waist_hw, 30.0),
            pt(self.waist_hw, WAIST_Y),
        );
        half.push(pt(0.0, WAIST_Y));
        super::geometry::mirror_closed(&half)
    }

    /// Legs with the ankles no further out than `max_ankle` and knees no further out than
    /// `max_knee` (outer edge), so a narrow long skirt still hides them. Only the part below
    /// `visible_from` is kept: the rest is under the skirt and would only cost drawing time.
    pub fn legs(&self, max_ankle: f32, max_knee: f32, visible_from: f32) -> [Leg; 2] {
        let build = |side: f32, stance: f32| {
            let hip = pt(side * 4.1, HIP_Y + 1.0);
            let ankle_x = stance.min(max_ankle).max(1.6);
            let knee_x = (4.1 + (ankle_x - 4.1) * 0.45).min(max_knee - 2.2).max(1.9);
            let knee = pt(side * knee_x, KNEE_Y);
            let ankle = pt(side * ankle_x, ANKLE_Y);
            let axis = [
                hip,
                hip.lerp(knee, 0.5),
                knee,
                knee.lerp(ankle, 0.3),
                ankle,
                pt(side * (ankle_x + 0.1), ANKLE_Y + 1.6),
            ];
            let outline = clip_below(&band(&axis, &[4.0, 3.0, 2.2, 2.5, 1.2, 1.15]), visible_from);
            let toe = pt(side * (ankle_x + 0.35), SOLE_Y - 1.7);
            let shoe = ellipse(toe, 1.35, 2.0, side * 0.12, 24);
            Leg { outline, shoe }
        };
        [build(-1.0, self.stance[0]), build(1.0, self.stance[1])]
    }

    pub fn draw_back_hair(&self, canvas: &mut Canvas) {
        let c = HEAD_CENTRE;
        match self.hair_style {
            HairStyle::Long => {
                let top = pt(0.0, c.y - HEAD_RY - 0.5);
                let mut half = vec![top];
                cubic(
                    &mut half,
                    top,
                    pt(3.4, c.y - HEAD_RY - 0.5),
                    pt(4.6, c.y - 2.0),
                    pt(4.5, c.y + 2.0),
                );
                cubic(
                    &mut half,
                    pt(4.5, c.y + 2.0),
                    pt(4.4, 13.0),
                    pt(5.2, 17.0),
                    pt(4.9, 21.0),
                );
                half.push(pt(0.0, 21.5));
                canvas.fill(&super::geometry::mirror_closed(&half), self.hair, 1.0);
            }
            HairStyle::Bob => {
                let top = pt(0.0, c.y - HEAD_RY - 0.6);
                let mut half = vec![top];
                cubic(
                    &mut half,
                    top,
                    pt(3.6, c.y - HEAD_RY - 0.6),
                    pt(4.7, c.y - 2.0),
                    pt(4.6, c.y + 2.5),
                );
                cubic(
                    &mut half,
                    pt(4.6, c.y + 2.5),
                    pt(4.6, 10.5),
                    pt(4.4, 11.6),
                    pt(3.4, 11.8),
                );
                half.push(pt(0.0, 11.0));
                canvas.fill(&super::geometry::mirror_closed(&half), self.hair, 1.0);
            }
            HairStyle::Bun => {
                canvas.part(
                    &ellipse(pt(0.0, c.y - HEAD_RY - 0.4), 2.1, 1.8, 0.0, 28),
                    self.hair,
                    0.3,
                );
            }
            HairStyle::Pixie => {}
        }
    }

    pub fn draw_legs(&self, canvas: &mut Canvas, legs: &[Leg; 2]) {
        for leg in legs {
            canvas.fill(&leg.outline, self.skin, 1.0);
            canvas.stroke(&leg.outline, false, self.skin.scale(0.62), 0.55, 0.3);
            canvas.fill(&leg.shoe, self.shoes, 1.0);
        }
    }

    pub fn draw_torso(&self, canvas: &mut Canvas) {
        canvas.part(&self.torso_outline(), self.skin, 0.3);
    }

    pub fn draw_head(&self, canvas: &mut Canvas) {
        let c = HEAD_CENTRE;
        for side in [-1.0f32, 1.0] {
            canvas.fill(
                &ellipse(pt(side * (HEAD_RX - 0.1), c.y + 0.6), 0.6, 1.05, 0.0, 16),
                self.skin.scale(0.93),
                1.0,
            );
        }
        // Egg-shaped head: narrower towards the chin.
        let head: Vec<Pt> = (0..48)
            .map(|i| {
                let a = i as f32 / 48.0 * std::f32::consts::TAU;
                let (s, co) = a.sin_cos();
                let narrow = if s > 0.0 { 1.0 - 0.22 * s * s } else { 1.0 };
                pt(c.x + HEAD_RX * co * narrow, c.y + HEAD_RY * s)
            })
            .collect();
        canvas.part(&head, self.skin, 0.3);
        // A calm, minimal face: eyes, brows and lips.
        let eye = Rgb::from_u8(40, 32, 30);
        for side in [-1.0f32, 1.0] {
            canvas.fill(
                &ellipse(pt(side * 1.3, c.y + 0.5), 0.42, 0.24, 0.0, 12),
                eye,
                0.75,
            );
            canvas.fill(
                &ellipse(pt(side * 1.35, c.y - 0.55), 0.6, 0.13, side * -0.15, 12),
                self.hair.scale(0.8),
                0.7,
            );
        }
        let lips = self.skin.mix(Rgb::from_u8(170, 60, 70), 0.45);
        canvas.fill(
            &ellipse(pt(0.0, c.y + 3.0), 0.85, 0.32, 0.0, 14),
            lips,
            0.85,
        );
        self.draw_front_hair(canvas);
    }

    fn draw_front_hair(&self, canvas: &mut Canvas) {
        let c = HEAD_CENTRE;
        let grow = match self.hair_style {
            HairStyle::Pixie => 0.25,
            _ => 0.4,
        };
        // Cap of hair: outer arc over the top of the head, inner hairline above the brows.
        let mut cap = Vec::new();
        let n = 24;
        for i in 0..=n {
            let a = std::f32::consts::PI + i as f32 / n as f32 * std::f32::consts::PI;
            cap.push(pt(
                c.x + (HEAD_RX + grow) * a.cos(),
                c.y + 0.6 + (HEAD_RY + grow) * a.sin(),
            ));
        }
        let p = self.parting;
        let right = pt(HEAD_RX + grow - 0.1, c.y + 0.8);
        let left = pt(-HEAD_RX - grow + 0.1, c.y + 0.8);
        let mut hairline = vec![right];
        cubic(
            &mut hairline,
            right,
            pt(2.8, c.y - 1.4),
            pt(1.0 + p, c.y - 2.6),
            pt(p, c.y - 2.9),
        );
        cubic(
            &mut hairline,
            pt(p, c.y - 2.9),
            pt(-1.0 + p, c.y - 2.4),
            pt(-2.8, c.y - 1.6),
            left,
        );
        cap.extend(hairline);
        canvas.fill(&cap, self.hair, 1.0);
    }

    pub fn draw_arm(&self, canvas: &mut Canvas, arm: &Arm) {
        let outline = arm_outline(arm, 0.0);
        canvas.fill(&arm.hand, self.skin.scale(0.97), 1.0);
        canvas.fill(&outline, self.skin, 1.0);
        // Open outline: no seam line across the top where the arm joins the shoulder.
        canvas.stroke(&outline, false, self.skin.scale(0.62), 0.55, 0.3);
    }
}

/// Skin outline of an arm from just above the shoulder joint to the wrist; `ease` widens it.
pub fn arm_outline(arm: &Arm, ease: f32) -> Vec<Pt> {
    let widths: Vec<f32> = arm.half_widths.iter().map(|w| w + ease).collect();
    band(&arm.axis, &widths)
}

#[derive(Clone, Copy, Debug)]
enum ArmPose {
    /// Angles from straight down, positive away from the body.
    Hanging {
        upper_deg: f32,
        fore_deg: f32,
    },
    HandOnHip {
        upper_deg: f32,
    },
}

fn build_arm(pose: ArmPose, shoulder_k: f32, side: f32) -> Arm {
    let joint = pt(8.1 * shoulder_k, 19.6);
    let (elbow, fore_dir) = match pose {
        ArmPose::Hanging {
            upper_deg,
            fore_deg,
        } => (
            joint + Pt::down_at(upper_deg) * UPPER_ARM,
            Pt::down_at(fore_deg),
        ),
        ArmPose::HandOnHip { upper_deg } => {
            let elbow = joint + Pt::down_at(upper_deg) * UPPER_ARM;
            (elbow, (pt(6.9, 37.0) - elbow).unit())
        }
    };
    let wrist = elbow + fore_dir * FOREARM;
    let axis = [
        joint,
        joint.lerp(elbow, 0.45),
        elbow,
        elbow.lerp(wrist, 0.4),
        wrist,
    ];
    let hand_centre = wrist + fore_dir * 2.2;
    let angle = fore_dir.y.atan2(fore_dir.x) - std::f32::consts::FRAC_PI_2;
    let hand = ellipse(hand_centre, 1.05, 2.45, angle, 20);
    let flip = |p: Pt| pt(p.x * side, p.y);
    Arm {
        axis: axis.map(flip),
        half_widths: [2.05, 1.8, 1.38, 1.42, 0.95],
        hand: hand.into_iter().map(flip).collect(),
    }
}
