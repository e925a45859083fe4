//! Optimiser choice and learning-rate schedules, as stored in a run's configuration.

use serde::{Deserialize, Serialize};

/// Which optimiser updates the trainable parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum OptimizerChoice {
    /// Decoupled weight decay Adam.
    AdamW { weight_decay: f64 },
    /// Stochastic gradient descent with (heavy-ball) momentum and L2 weight decay.
    Sgd { momentum: f64, weight_decay: f64 },
}

/// How the learning rate changes over the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Schedule {
    /// Linear warm-up over `warmup_epochs`, then half a cosine from the base rate to 0 at the
    /// end of the last epoch.
    Cosine { warmup_epochs: f64 },
    /// The base rate multiplied by `gamma` every `every_epochs` epochs.
    Step { every_epochs: usize, gamma: f64 },
}

impl OptimizerChoice {
    /// AdamW with its default weight decay.
    pub const ADAMW: OptimizerChoice = OptimizerChoice::AdamW { weight_decay: 1e-4 };
    /// SGD with its default momentum and weight decay.
    pub const SGD: OptimizerChoice = OptimizerChoice::Sgd {
        momentum: 0.9,
        weight_decay: 1e-4,
    };
}

impl Schedule {
    /// Cosine decay after one warm-up epoch.
    pub const COSINE: Schedule = Schedule::Cosine { warmup_epochs: 1.0 };
    /// A tenth of the rate every 10 epochs.
    pub const STEP: Schedule = Schedule::Step {
        every_epochs: 10,
        gamma: 0.1,
    };

    /// The learning rate for optimiser step `step` (0-based) of a run with `steps_per_epoch`
    /// steps in each of `epochs` epochs.
    pub fn rate(&self, base: f64, step: usize, steps_per_epoch: usize, epochs: usize) -> f64 {
        let steps_per_epoch = steps_per_epoch.max(1);
        match *self {
            Schedule::Cosine { warmup_epochs } => {
                let total = (epochs * steps_per_epoch) as f64;
                let warmup = (warmup_epochs * steps_per_epoch as f64).min(total);
                // Rates are taken at the middle of a step so that neither the first nor the
                // last step has a zero rate.
                let t = step as f64 + 0.5;
                if t < warmup {
                    base * t / warmup
                } else {
                    let progress = ((t - warmup) / (total - warmup).max(1.0)).min(1.0);
                    base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
                }
            }
            Schedule::Step {
                every_epochs,
                gamma,
            } => {
                let epoch = step / steps_per_epoch;
                base * gamma.powi((epoch / every_epochs.max(1)) as i32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_warms_up_then_decays_to_near_zero() {
        let schedule = Schedule::Cosine { warmup_epochs: 1.0 };
        let rates: Vec<f64> = (0..40).map(|s| schedule.rate(0.1, s, 10, 4)).collect();
        assert!((rates[0] - 0.1 * 0.05).abs() < 1e-12, "first warm-up step");
        assert!(
            rates[..10].windows(2).all(|w| w[0] < w[1]),
            "rising during warm-up"
        );
        assert!(
            rates[10..].windows(2).all(|w| w[0] > w[1]),
            "falling after it"
        );
        // Halfway through the decay (step 25 of 10..40, at its middle 25.5 -> progress 0.5167).
        let expected = 0.05 * (1.0 + (std::f64::consts::PI * 15.5 / 30.0).cos());
        assert!((rates[25] - expected).abs() < 1e-12);
        assert!(rates[39] < 0.001 && rates[39] > 0.0);
    }

    #[test]
    fn step_multiplies_by_gamma_every_n_epochs() {
        let schedule = Schedule::Step {
            every_epochs: 2,
            gamma: 0.1,
        };
        let at_epoch = |e: usize| schedule.rate(1.0, e * 5, 5, 6);
        assert_eq!(at_epoch(0), 1.0);
        assert_eq!(at_epoch(1), 1.0);
        assert!((at_epoch(2) - 0.1).abs() < 1e-12);
        assert!((at_epoch(5) - 0.01).abs() < 1e-12);
    }
}
