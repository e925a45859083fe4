//! A deterministic simulated crowd with known confusion, to measure vote aggregation against
//! the truth.
//!
//! The crowd ([`crowd`]) has 30 workers: 27 honest ones whose accuracies are spread evenly
//! from 0.55 to 0.95, two spammers who always answer the first label, and one adversary who
//! always answers the label after the true one (the last label's next is the first). An
//! honest worker's wrong answer is, half the time, a neighbour of the true label in the
//! facet's order (the next or the previous, like a knee length taken for a midi), otherwise
//! any wrong label at random. True labels are drawn with priors proportional to `K − c` for
//! label `c` (the first label most common, as in a catalogue's facets), and every task is
//! answered by `votes_per_task` distinct workers drawn at random. Everything comes from one
//! seeded ChaCha8 stream, so a seed gives the same votes on every machine.

use std::io::Write;
use std::path::Path;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{CrowdError, DawidSkene, MajorityLabel, Vote, VoteSet};

/// Lowest and highest accuracy of the honest workers.
const HONEST_ACCURACY: (f64, f64) = (0.55, 0.95);
/// Honest workers, spammers and adversaries in [`crowd`].
const HONEST: usize = 27;
const SPAMMERS: usize = 2;
const ADVERSARIES: usize = 1;
/// Share of an honest worker's mistakes that go to a neighbouring label.
const NEIGHBOUR_SHARE: f64 = 0.5;

/// How a simulated worker answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WorkerKind {
    /// Right with probability `accuracy`; otherwise a neighbouring label half the time, any
    /// wrong label the other half.
    Honest { accuracy: f64 },
    /// Always the first label.
    Spammer,
    /// Always the label after the true one (wrapping to the first).
    Adversary,
}

/// The simulated crowd's 30 workers, in worker-index order: the honest ones by rising
/// accuracy, then the two spammers, then the adversary.
pub fn crowd() -> Vec<WorkerKind> {
    let (low, high) = HONEST_ACCURACY;
    let honest = (0..HONEST).map(|i| WorkerKind::Honest {
        accuracy: low + (high - low) * i as f64 / (HONEST - 1) as f64,
    });
    honest
        .chain(std::iter::repeat_n(WorkerKind::Spammer, SPAMMERS))
        .chain(std::iter::repeat_n(WorkerKind::Adversary, ADVERSARIES))
        .collect()
}

/// What to simulate; [`Default`] holds the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationConfig {
    /// Tasks (images). Default 2 000.
    pub tasks: usize,
    /// Labels of the facet. Default 6, as the catalogue's silhouette and sleeve facets.
    pub labels: usize,
    /// Distinct workers per task. Default 3.
    pub votes_per_task: usize,
    /// Seed of the ChaCha8 stream. Default 7.
    pub seed: u64,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            tasks: 2000,
            labels: 6,
            votes_per_task: 3,
            seed: 7,
        }
    }
}

/// A simulated vote set and the truth behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    pub votes: VoteSet,
    /// The true label of every task.
    pub truth: Vec<usize>,
    /// How each worker answers.
    pub workers: Vec<WorkerKind>,
}

/// Draws the votes of [`crowd`] on `config.tasks` tasks.
///
/// Errors: fewer than 2 labels, no tasks, or votes per task not between 1 and 30
/// ([`CrowdError::Setting`]).
pub fn simulate(config: &SimulationConfig) -> Result<Simulation, CrowdError> {
    let workers = crowd();
    check(config, workers.len())?;
    let k = config.labels;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let weight_total = (k * (k + 1) / 2) as f64;
    let mut truth = Vec::with_capacity(config.tasks);
    let mut votes = Vec::with_capacity(config.tasks * config.votes_per_task);
    let mut order: Vec<usize> = (0..workers.len()).collect();
    for task in 0..config.tasks {
        let mut draw = rng.random_range(0.0..weight_total);
        let mut label = 0;
        while draw >= (k - label) as f64 && label + 1 < k {
            draw -= (k - label) as f64;
            label += 1;
        }
        truth.push(label);
        let drawn = TaskDraw {
            task,
            truth: label,
            labels: k,
            votes_per_task: config.votes_per_task,
        };
        drawn.votes(&workers, &mut order, &mut rng, &mut votes);
    }
    let votes = VoteSet::new(config.tasks, workers.len(), k, votes)?;
    Ok(Simulation {
        votes,
        truth,
        workers,
    })
}

/// The votes of [`crowd`] on tasks whose true labels are `truth` (of `labels` labels),
/// `votes_per_task` distinct workers each, from the ChaCha8 stream of `seed`: a simulated crowd
/// answering real tasks, such as a catalogue's, whose truth is known.
pub fn crowd_answers(
    truth: &[usize],
    labels: usize,
    votes_per_task: usize,
    seed: u64,
) -> Result<Vec<Vote>, CrowdError> {
    let workers = crowd();
    let config = SimulationConfig {
        tasks: truth.len(),
        labels,
        votes_per_task,
        seed,
    };
    check(&config, workers.len())?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..workers.len()).collect();
    let mut votes = Vec::with_capacity(truth.len() * votes_per_task);
    for (task, &label) in truth.iter().enumerate() {
        if label >= labels {
            return Err(CrowdError::Setting {
                field: "truth",
                problem: format!("of task {task} is label {label}, but there are {labels}"),
            });
        }
        let drawn = TaskDraw {
            task,
            truth: label,
            labels,
            votes_per_task,
        };
        drawn.votes(&workers, &mut order, &mut rng, &mut votes);
    }
    Ok(votes)
}

/// One task's votes to draw.
struct TaskDraw {
    task: usize,
    truth: usize,
    labels: usize,
    votes_per_task: usize,
}

impl TaskDraw {
    /// Draws `votes_per_task` distinct workers (a partial shuffle of `order`) and their answers.
    fn votes(
        &self,
        workers: &[WorkerKind],
        order: &mut [usize],
        rng: &mut ChaCha8Rng,
        into: &mut Vec<Vote>,
    ) {
        for slot in 0..self.votes_per_task {
            let pick = rng.random_range(slot..order.len());
            order.swap(slot, pick);
            let worker = order[slot];
            into.push(Vote {
                task: self.task,
                worker,
                label: answer(workers[worker], self.truth, self.labels, rng),
            });
        }
    }
}

fn check(config: &SimulationConfig, workers: usize) -> Result<(), CrowdError> {
    let setting = |field, problem: String| Err(CrowdError::Setting { field, problem });
    if config.labels < 2 {
        return setting("labels", format!("is {}: use at least 2", config.labels));
    }
    if config.votes_per_task == 0 || config.votes_per_task > workers {
        return setting(
            "votes_per_task",
            format!(
                "is {}: use 1 to {workers} (the crowd's size)",
                config.votes_per_task
            ),
        );
    }
    Ok(())
}

/// One answer of a worker of `kind` on a task whose true label is `truth`.
fn answer(kind: WorkerKind, truth: usize, k: usize, rng: &mut ChaCha8Rng) -> usize {
    match kind {
        WorkerKind::Spammer => 0,
        WorkerKind::Adversary => (truth + 1) % k,
        WorkerKind::Honest { accuracy } => {
            if rng.random_range(0.0..1.0) < accuracy {
                truth
            } else if rng.random_range(0.0..1.0) < NEIGHBOUR_SHARE {
                let up = truth + 1 < k && (truth == 0 || rng.random_range(0..2) == 1);
                if up { truth + 1 } else { truth - 1 }
            } else {
                let other = rng.random_range(0..k - 1);
                if other >= truth { other + 1 } else { other }
            }
        }
    }
}

/// How aggregated labels compare with the truth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// Share of tasks whose majority-vote label is the true one.
    pub majority_accuracy: f64,
    /// Share of tasks whose Dawid–Skene label is the true one.
    pub dawid_skene_accuracy: f64,
    /// Tasks whose Dawid–Skene posterior of its label is at least the threshold: the
    /// changes a retagging would apply.
    pub applied: usize,
    /// Share of the applied tasks whose label is the true one (1 when none is applied).
    pub applied_precision: f64,
}

/// Scores majority vote and Dawid–Skene against `truth`; a task is applied when its
/// Dawid–Skene label's posterior is at least `threshold`.
pub fn score(
    truth: &[usize],
    majority: &[MajorityLabel],
    dawid_skene: &DawidSkene,
    threshold: f64,
) -> Scores {
    let n = truth.len() as f64;
    let majority_right = majority.iter().zip(truth).filter(|(m, t)| m.label == **t);
    let ds_right = dawid_skene
        .tasks
        .iter()
        .zip(truth)
        .filter(|(d, t)| d.label == **t);
    let applied: Vec<bool> = dawid_skene
        .tasks
        .iter()
        .zip(truth)
        .filter(|(d, _)| d.posterior[d.label] >= threshold)
        .map(|(d, t)| d.label == *t)
        .collect();
    let applied_right = applied.iter().filter(|right| **right).count();
    Scores {
        majority_accuracy: majority_right.count() as f64 / n,
        dawid_skene_accuracy: ds_right.count() as f64 / n,
        applied: applied.len(),
        applied_precision: if applied.is_empty() {
            1.0
        } else {
            applied_right as f64 / applied.len() as f64
        },
    }
}

/// Writes `votes.csv` (`task,worker,label`) and `truth.csv` (`task,label`) into `dir`,
/// creating it if needed.
pub fn write_csv(simulation: &Simulation, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut votes = std::io::BufWriter::new(std::fs::File::create(dir.join("votes.csv"))?);
    writeln!(votes, "task,worker,label")?;
    for vote in simulation.votes.votes() {
        writeln!(votes, "{},{},{}", vote.task, vote.worker, vote.label)?;
    }
    votes.flush()?;
    let mut truth = std::io::BufWriter::new(std::fs::File::create(dir.join("truth.csv"))?);
    writeln!(truth, "task,label")?;
    for (task, label) in simulation.truth.iter().enumerate() {
        writeln!(truth, "{task},{label}")?;
    }
    truth.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crowd_has_its_spammers_and_adversary() {
        let workers = crowd();
        assert_eq!(workers.len(), 30);
        assert_eq!(workers[0], WorkerKind::Honest { accuracy: 0.55 });
        assert!(
            matches!(workers[26], WorkerKind::Honest { accuracy } if (accuracy - 0.95).abs() < 1e-12)
        );
        assert_eq!(
            &workers[27..],
            [
                WorkerKind::Spammer,
                WorkerKind::Spammer,
                WorkerKind::Adversary
            ]
        );
    }

    #[test]
    fn answers_follow_the_workers_kind() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(answer(WorkerKind::Spammer, 4, 6, &mut rng), 0);
        assert_eq!(answer(WorkerKind::Adversary, 5, 6, &mut rng), 0);
        assert_eq!(answer(WorkerKind::Adversary, 2, 6, &mut rng), 3);
        let honest = WorkerKind::Honest { accuracy: 0.7 };
        let right = (0..10_000)
            .filter(|_| answer(honest, 3, 6, &mut rng) == 3)
            .count();
        assert!((6_800..7_200).contains(&right), "{right}");
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let config = SimulationConfig {
            votes_per_task: 31,
            ..SimulationConfig::default()
        };
        assert!(matches!(
            simulate(&config),
            Err(CrowdError::Setting {
                field: "votes_per_task",
                ..
            })
        ));
        let config = SimulationConfig {
            labels: 1,
            ..SimulationConfig::default()
        };
        assert!(matches!(
            simulate(&config),
            Err(CrowdError::Setting {
                field: "labels",
                ..
            })
        ));
    }
}
