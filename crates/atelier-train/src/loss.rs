//! The training loss: class-weighted, optionally focal, cross-entropy per facet, with images that
//! have no label for a facet masked out of that facet's term; its noise-robust generalisation;
//! and the class-weight schemes.
//!
//! For one facet with logits `z`, target `y`, class weights `w` and focal exponent `gamma`:
//! `loss = sum_i m_i w[y_i] (1 - p_i)^gamma l(p_i) / sum_i m_i w[y_i]`, where `p_i` is the
//! softmax probability of `y_i`, `m_i` is 0 when image `i` has no label, and `l(p) = -log p`.
//! With `gamma = 0` and unit weights this is PyTorch's
//! `cross_entropy(..., weight=w, ignore_index=...)` with mean reduction, which also divides by
//! the summed weights of the labelled examples.
//!
//! With generalised cross-entropy (Zhang & Sabuncu, 2018) `l(p) = (1 - p^q) / q` for `q` in
//! `(0, 1]`: `q -> 0` is cross-entropy and `q = 1` is the mean absolute error. Its gradient is
//! cross-entropy's times `p^q`, so an image whose label the model finds implausible (a likely
//! mistag) pulls far less than under cross-entropy, which grows without bound as `p -> 0`.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

/// How each class's loss is weighted, to keep rare classes from being ignored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case")]
pub enum ClassWeighting {
    /// Every class weighs 1.
    None,
    /// `n / (k * n_c)`: each class contributes as if the classes were balanced
    /// (scikit-learn's "balanced").
    Inverse,
    /// Effective number of samples (Cui et al., 2019): `(1 - beta) / (1 - beta^n_c)`, scaled so
    /// that the weights of the present classes sum to their count. `beta` in `[0, 1)`; 0.999 or
    /// 0.9999 are usual, and `beta -> 1` approaches `Inverse`.
    Effective { beta: f64 },
}

impl ClassWeighting {
    /// Effective-number weights with the usual beta.
    pub const EFFECTIVE: ClassWeighting = ClassWeighting::Effective { beta: 0.999 };

    /// Weights for classes with the given training counts. A class with no training example
    /// gets weight 0 (it never appears as a target, and an infinite weight would be meaningless).
    pub fn weights(&self, counts: &[u64]) -> Vec<f64> {
        let present = counts.iter().filter(|&&n| n > 0).count() as f64;
        let total: u64 = counts.iter().sum();
        let raw: Vec<f64> = counts
            .iter()
            .map(|&n| match (n, self) {
                (0, _) => 0.0,
                (_, Self::None) => 1.0,
                (n, Self::Inverse) => total as f64 / (present * n as f64),
                (n, Self::Effective { beta }) => (1.0 - beta) / (1.0 - beta.powf(n as f64)),
            })
            .collect();
        match self {
            Self::Effective { .. } => {
                let sum: f64 = raw.iter().sum();
                if sum > 0.0 {
                    raw.iter().map(|w| w * present / sum).collect()
                } else {
                    raw
                }
            }
            _ => raw,
        }
    }
}

/// The per-image loss of the target's probability `p` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TargetLoss {
    /// `(1 - p)^gamma * -log p`; `gamma = 0` is plain cross-entropy.
    Focal { gamma: f32 },
    /// Generalised cross-entropy `(1 - p^q) / q`, bounded and robust to wrong labels.
    Generalized { q: f32 },
}

/// One facet's loss for a batch.
///
/// `logits` is `[batch, classes]`; `targets` has one entry per image, `None` for images without
/// a label for this facet; `class_weights` has one entry per class. Returns a scalar tensor
/// (shape `[1]`), zero when no image in the batch is labelled.
pub fn facet_loss(
    logits: Tensor<2>,
    targets: &[Option<usize>],
    class_weights: &[f32],
    target_loss: TargetLoss,
) -> Tensor<1> {
    let device = logits.device();
    let [batch, classes] = logits.dims();
    assert_eq!(batch, targets.len(), "one target per image");
    assert_eq!(classes, class_weights.len(), "one weight per class");
    // Unlabelled rows gather class 0 and are then zeroed by their weight.
    let indices: Vec<i64> = targets.iter().map(|t| t.unwrap_or(0) as i64).collect();
    let weights: Vec<f32> = targets
        .iter()
        .map(|t| t.map_or(0.0, |class| class_weights[class]))
        .collect();
    let weight_sum: f32 = weights.iter().sum();
    if weight_sum <= 0.0 {
        return logits.sum().mul_scalar(0.0);
    }
    let indices = Tensor::<2, Int>::from_data(TensorData::new(indices, [batch, 1]), &device);
    let weights = Tensor::<2>::from_data(TensorData::new(weights, [batch, 1]), &device);
    let log_probability = log_softmax(logits, 1).gather(1, indices);
    let per_image = match target_loss {
        TargetLoss::Focal { gamma } if gamma > 0.0 => {
            // (1 - p)^gamma down-weights the examples the model already gets right.
            let focus = log_probability
                .clone()
                .exp()
                .neg()
                .add_scalar(1.0)
                .clamp_min(0.0);
            log_probability.neg() * focus.powf_scalar(gamma)
        }
        TargetLoss::Focal { .. } => log_probability.neg(),
        // p^q is computed as exp(q log p), which stays finite where p underflows.
        TargetLoss::Generalized { q } => log_probability
            .mul_scalar(q)
            .exp()
            .neg()
            .add_scalar(1.0)
            .div_scalar(q),
    };
    (per_image * weights).sum().div_scalar(weight_sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::flex()
    }

    fn scalar(t: Tensor<1>) -> f64 {
        f64::from(t.into_scalar::<f32>())
    }

    /// The textbook formula, written independently on plain floats, for any per-image loss of
    /// the target's probability.
    fn reference(
        logits: &[[f64; 3]],
        targets: &[Option<usize>],
        weights: &[f64; 3],
        loss_of_p: impl Fn(f64) -> f64,
    ) -> f64 {
        let (mut numerator, mut denominator) = (0.0, 0.0);
        for (row, target) in logits.iter().zip(targets) {
            let Some(y) = *target else { continue };
            let norm: f64 = row.iter().map(|z| z.exp()).sum();
            let p = row[y].exp() / norm;
            numerator += weights[y] * loss_of_p(p);
            denominator += weights[y];
        }
        numerator / denominator
    }

    const LOGITS: [[f64; 3]; 4] = [
        [2.0, -1.0, 0.5],
        [0.1, 0.2, 0.3],
        [-3.0, 4.0, 1.0],
        [1.0, 1.0, -2.0],
    ];
    const TARGETS: [Option<usize>; 4] = [Some(0), None, Some(2), Some(1)];
    const WEIGHTS: [f64; 3] = [0.5, 2.0, 1.5];

    fn loss_of(logits: &[[f64; 3]], target_loss: TargetLoss) -> f64 {
        let flat: Vec<f32> = logits.iter().flatten().map(|&v| v as f32).collect();
        let tensor = Tensor::<2>::from_data(TensorData::new(flat, [logits.len(), 3]), &device());
        let w32: Vec<f32> = WEIGHTS.iter().map(|&w| w as f32).collect();
        scalar(facet_loss(
            tensor,
            &TARGETS[..logits.len()],
            &w32,
            target_loss,
        ))
    }

    #[test]
    fn masked_weighted_focal_loss_matches_the_formula() {
        for gamma in [0.0, 1.0, 2.5] {
            let got = loss_of(
                &LOGITS,
                TargetLoss::Focal {
                    gamma: gamma as f32,
                },
            );
            let want = reference(&LOGITS, &TARGETS, &WEIGHTS, |p| {
                (1.0 - p).powf(gamma) * -p.ln()
            });
            assert!((got - want).abs() < 1e-5, "gamma {gamma}: {got} vs {want}");
        }
    }

    #[test]
    fn generalized_cross_entropy_matches_the_formula_and_its_limits() {
        for q in [0.3, 0.7, 1.0] {
            let got = loss_of(&LOGITS, TargetLoss::Generalized { q: q as f32 });
            let want = reference(&LOGITS, &TARGETS, &WEIGHTS, |p| (1.0 - p.powf(q)) / q);
            assert!((got - want).abs() < 1e-5, "q {q}: {got} vs {want}");
        }
        // q -> 0 is cross-entropy; q = 1 is the mean absolute error 1 - p.
        let cross_entropy = reference(&LOGITS, &TARGETS, &WEIGHTS, |p| -p.ln());
        let small_q = loss_of(&LOGITS, TargetLoss::Generalized { q: 1e-3 });
        assert!(
            (small_q - cross_entropy).abs() < 5e-3,
            "{small_q} vs {cross_entropy}"
        );
        let absolute = reference(&LOGITS, &TARGETS, &WEIGHTS, |p| 1.0 - p);
        let q_one = loss_of(&LOGITS, TargetLoss::Generalized { q: 1.0 });
        assert!((q_one - absolute).abs() < 1e-5);
        // Bounded by 1/q however wrong the label, where cross-entropy grows without limit.
        let hopeless = [[30.0, -30.0, -30.0]; 4].map(|mut row| {
            row.rotate_right(1);
            row
        });
        let bounded = loss_of(&hopeless[..1], TargetLoss::Generalized { q: 0.5 });
        assert!(bounded <= 2.0 + 1e-6 && bounded > 1.99, "{bounded}");
        assert!(loss_of(&hopeless[..1], TargetLoss::Focal { gamma: 0.0 }) > 50.0);
    }

    /// The reason to use it: the gradient an image sends to its logits is cross-entropy's
    /// times `p^q`, so a confidently contradicted label (a likely mistag) barely pulls.
    #[test]
    fn generalized_cross_entropy_scales_the_gradient_by_p_to_the_q() {
        let q = 0.7;
        let logits_of = |row: [f32; 3]| {
            Tensor::<2>::from_data(
                TensorData::new(row.to_vec(), [1, 3]),
                &Device::flex().autodiff(),
            )
            .require_grad()
        };
        for row in [[3.0f32, -1.0, 0.0], [-2.0, 2.5, 0.5], [0.2, 0.1, -0.3]] {
            let gradient = |target_loss| {
                let logits = logits_of(row);
                let grads =
                    facet_loss(logits.clone(), &[Some(0)], &[1.0; 3], target_loss).backward();
                logits
                    .grad(&grads)
                    .expect("a gradient")
                    .into_data()
                    .try_into_vec::<f32>()
                    .unwrap()
            };
            let cross_entropy = gradient(TargetLoss::Focal { gamma: 0.0 });
            let generalized = gradient(TargetLoss::Generalized { q });
            let norm: f64 = row.iter().map(|&z| f64::from(z).exp()).sum();
            let p = f64::from(row[0]).exp() / norm;
            for (g, c) in generalized.iter().zip(&cross_entropy) {
                let want = f64::from(*c) * p.powf(f64::from(q));
                assert!((f64::from(*g) - want).abs() < 1e-5, "{g} vs {want} (p {p})");
            }
        }
    }

    #[test]
    fn an_unlabelled_image_does_not_change_the_loss() {
        let weights = [1.0f32, 1.0];
        let base = Tensor::<2>::from_data([[1.0f32, -1.0], [0.3, 0.9]], &device());
        let with_noise = Tensor::<2>::from_data([[1.0f32, -1.0], [50.0, -50.0]], &device());
        let targets = [Some(1), None];
        let plain = TargetLoss::Focal { gamma: 0.0 };
        let a = scalar(facet_loss(base, &targets, &weights, plain));
        let b = scalar(facet_loss(with_noise, &targets, &weights, plain));
        assert_eq!(a, b);
        let all_unlabelled = Tensor::<2>::from_data([[1.0f32, -1.0]], &device());
        assert_eq!(
            scalar(facet_loss(all_unlabelled, &[None], &weights, plain)),
            0.0
        );
    }

    #[test]
    fn class_weights_follow_their_definitions() {
        let counts = [90, 9, 1, 0];
        assert_eq!(ClassWeighting::None.weights(&counts), [1.0, 1.0, 1.0, 0.0]);
        // n / (k * n_c) with n = 100 and k = 3 present classes.
        let inverse = ClassWeighting::Inverse.weights(&counts);
        for (got, want) in inverse
            .iter()
            .zip([100.0 / 270.0, 100.0 / 27.0, 100.0 / 3.0, 0.0])
        {
            assert!((got - want).abs() < 1e-12);
        }
        let beta = 0.99;
        let effective = ClassWeighting::Effective { beta }.weights(&counts);
        let raw: Vec<f64> = [90.0, 9.0, 1.0]
            .iter()
            .map(|n: &f64| (1.0 - beta) / (1.0 - beta.powf(*n)))
            .collect();
        let scale = 3.0 / raw.iter().sum::<f64>();
        for (got, want) in effective.iter().zip(raw.iter().map(|w| w * scale)) {
            assert!((got - want).abs() < 1e-12);
        }
        assert_eq!(effective[3], 0.0);
        // Rarer classes weigh more, and beta near 0 gives almost equal weights.
        assert!(effective[2] > effective[1] && effective[1] > effective[0]);
        let flat = ClassWeighting::Effective { beta: 0.0 }.weights(&counts);
        assert!(flat[..3].iter().all(|w| (w - 1.0).abs() < 1e-12));
    }
}
