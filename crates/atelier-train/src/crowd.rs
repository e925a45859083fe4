//! Aggregating crowd workers' votes on one facet into labels: majority vote, and Dawid and
//! Skene's confusion-matrix model (A. P. Dawid and A. M. Skene, "Maximum Likelihood
//! Estimation of Observer Error-Rates Using the EM Algorithm", Applied Statistics 28(1),
//! 1979), with optional gold answers.
//!
//! Each worker labels some tasks (images) with one of the facet's `K` labels, in the facet's
//! label order. [`majority_vote`] takes the most voted label per task; [`dawid_skene`]
//! estimates, by expectation–maximisation, one `K × K` confusion matrix per worker (the
//! probability of each answer given each true label) and the class priors, and from them the
//! posterior of every label for every task. A worker who answers at random, always gives the
//! same answer or systematically picks the wrong label then weighs as little — or, for the
//! last, as usefully — as their answers deserve.
//!
//! The model follows crowd-kit 1.4's `DawidSkene` (its defaults: 100 iterations at most,
//! tolerance 1e-5, majority-vote initialisation, gold posteriors fixed to one-hot): the
//! fixture test `tests/crowd.rs` checks labels and posteriors against its output. The two
//! differ only in the stopping rule ([`DawidSkeneConfig::tolerance`]); [`Smoothing`] offers
//! Laplace's rule besides crowd-kit's.
//!
//! [`pooled`] fits the same model over several facets at once, with each worker's confusion
//! drawn towards their accuracy over all facets: what a batch with a few dozen votes per worker
//! and facet needs for posteriors that can be trusted.
//!
//! [`simulation`] draws a deterministic crowd with known confusion to measure both.

pub mod pooled;
pub mod simulation;

/// Why a vote set cannot be aggregated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrowdError {
    /// A facet with no labels.
    #[error("a facet needs at least one label to aggregate votes on")]
    NoLabels,
    /// No tasks at all.
    #[error("there are no tasks to aggregate votes on")]
    NoTasks,
    /// A vote names a task, worker or label beyond the counts given.
    #[error("vote {vote}: {field} {value} is out of range (there are {count})")]
    VoteOutOfRange {
        vote: usize,
        field: &'static str,
        value: usize,
        count: usize,
    },
    /// A task nobody voted on: drop it before aggregating, or collect votes for it.
    #[error("task {task} has no votes: drop it or collect votes for it before aggregating")]
    TaskWithoutVotes { task: usize },
    /// The gold answers are not one entry per task.
    #[error("gold answers cover {given} tasks, but there are {tasks}: give one entry per task")]
    GoldLength { given: usize, tasks: usize },
    /// A gold answer beyond the facet's labels.
    #[error("gold answer of task {task} is label {label}, but there are {labels} labels")]
    GoldOutOfRange {
        task: usize,
        label: usize,
        labels: usize,
    },
    /// A setting that cannot work: `field` names it, `problem` says what is wrong and the fix.
    #[error("{field} {problem}")]
    Setting {
        field: &'static str,
        problem: String,
    },
}

/// One worker's answer on one task: indices into the tasks, the workers and the facet's
/// label order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    pub task: usize,
    pub worker: usize,
    pub label: usize,
}

/// A checked set of votes on one facet: every index in range, every task voted on at least
/// once. A worker who answers one task twice counts twice, as crowd-kit counts such rows.
#[derive(Debug, Clone, PartialEq)]
pub struct VoteSet {
    tasks: usize,
    workers: usize,
    labels: usize,
    votes: Vec<Vote>,
    gold: Vec<Option<usize>>,
    /// Votes ordered by task: those of task `t` are `by_task[task_start[t]..task_start[t + 1]]`.
    by_task: Vec<Vote>,
    task_start: Vec<usize>,
}

impl VoteSet {
    /// Checks the votes of `workers` workers on `tasks` tasks over `labels` labels.
    ///
    /// Errors: no labels, no tasks, an index out of range, or a task without votes
    /// ([`CrowdError`]); a worker without votes is allowed (their confusion matrix stays
    /// uniform).
    pub fn new(
        tasks: usize,
        workers: usize,
        labels: usize,
        votes: Vec<Vote>,
    ) -> Result<Self, CrowdError> {
        if labels == 0 {
            return Err(CrowdError::NoLabels);
        }
        if tasks == 0 {
            return Err(CrowdError::NoTasks);
        }
        for (index, vote) in votes.iter().enumerate() {
            let fields = [
                ("task", vote.task, tasks),
                ("worker", vote.worker, workers),
                ("label", vote.label, labels),
            ];
            if let Some(&(field, value, count)) = fields.iter().find(|(_, v, n)| v >= n) {
                return Err(CrowdError::VoteOutOfRange {
                    vote: index,
                    field,
                    value,
                    count,
                });
            }
        }
        let mut by_task = votes.clone();
        by_task.sort_by_key(|v| v.task);
        let mut task_start = vec![0; tasks + 1];
        for vote in &by_task {
            task_start[vote.task + 1] += 1;
        }
        for t in 0..tasks {
            if task_start[t + 1] == 0 {
                return Err(CrowdError::TaskWithoutVotes { task: t });
            }
            task_start[t + 1] += task_start[t];
        }
        Ok(VoteSet {
            tasks,
            workers,
            labels,
            votes,
            gold: vec![None; tasks],
            by_task,
            task_start,
        })
    }

    /// Adds gold answers, one entry per task (`None` where there is none): trusted labels
    /// that stay fixed through EM and score the workers who answered them.
    pub fn with_gold(mut self, gold: Vec<Option<usize>>) -> Result<Self, CrowdError> {
        if gold.len() != self.tasks {
            return Err(CrowdError::GoldLength {
                given: gold.len(),
                tasks: self.tasks,
            });
        }
        if let Some((task, &Some(label))) = gold
            .iter()
            .enumerate()
            .find(|(_, g)| g.is_some_and(|l| l >= self.labels))
        {
            return Err(CrowdError::GoldOutOfRange {
                task,
                label,
                labels: self.labels,
            });
        }
        self.gold = gold;
        Ok(self)
    }

    pub fn tasks(&self) -> usize {
        self.tasks
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn labels(&self) -> usize {
        self.labels
    }

    /// The votes in the order given.
    pub fn votes(&self) -> &[Vote] {
        &self.votes
    }

    /// Gold answers per task (all `None` without [`VoteSet::with_gold`]).
    pub fn gold(&self) -> &[Option<usize>] {
        &self.gold
    }

    /// The votes on one task.
    pub fn task_votes(&self, task: usize) -> &[Vote] {
        &self.by_task[self.task_start[task]..self.task_start[task + 1]]
    }

    /// Per task, the share of its votes for each label (rows sum to 1).
    pub fn vote_shares(&self) -> Vec<Vec<f64>> {
        (0..self.tasks)
            .map(|t| {
                let votes = self.task_votes(t);
                let mut shares = vec![0.0; self.labels];
                for vote in votes {
                    shares[vote.label] += 1.0;
                }
                let n = votes.len() as f64;
                shares.iter_mut().for_each(|s| *s /= n);
                shares
            })
            .collect()
    }
}

/// The index of the largest value, the lowest index among equals.
fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Majority vote on one task.
#[derive(Debug, Clone, PartialEq)]
pub struct MajorityLabel {
    /// The most voted label; a tie goes to the lowest label index (as crowd-kit's
    /// `MajorityVote` does with labels numbered in the facet's order).
    pub label: usize,
    /// The share of the task's votes for that label.
    pub agreement: f64,
    /// The task's number of votes.
    pub votes: usize,
}

/// The most voted label of every task (ties to the lowest label index) and its share of the
/// votes. Gold answers are ignored.
pub fn majority_vote(votes: &VoteSet) -> Vec<MajorityLabel> {
    votes
        .vote_shares()
        .into_iter()
        .enumerate()
        .map(|(t, shares)| {
            let label = argmax(&shares);
            MajorityLabel {
                label,
                agreement: shares[label],
                votes: votes.task_votes(t).len(),
            }
        })
        .collect()
}

/// Settings of [`dawid_skene`]; [`Default`] holds the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct DawidSkeneConfig {
    /// Most EM iterations (one iteration: an E-step, then an M-step). Default 100, as
    /// crowd-kit.
    pub max_iterations: usize,
    /// Stop when the log-likelihood of the votes, per vote, rose by less than this over one
    /// iteration; `None` runs all `max_iterations` (to inspect a fixed number of steps).
    /// Default `Some(1e-5)`, crowd-kit's tolerance (it measures an evidence lower bound per
    /// vote after the M-step; this is the log-likelihood at the E-step, which EM never
    /// lowers).
    pub tolerance: Option<f64>,
    /// How confusion counts and class masses are kept off zero. Default
    /// `Smoothing::Floor(1e-10)`, crowd-kit's rule.
    pub smoothing: Smoothing,
}

/// How [`dawid_skene`]'s M-step keeps probabilities off zero, so that a worker with one vote
/// or a class nobody chose leaves no zero or NaN.
///
/// Either way a worker's answer distribution (each row of their confusion matrix) lives on the
/// labels that worker gave at least once: an answer they never gave never enters the
/// likelihood, and maximum likelihood gives it probability 0. A worker without votes has
/// uniform rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Smoothing {
    /// Every count below the value is raised to it before normalising: crowd-kit's rule (it
    /// clips at 1e-10), which leaves counts of real votes untouched.
    Floor(f64),
    /// The value is added to every count (1 is Laplace's rule): pulls workers with few votes
    /// towards answering at random, and makes posteriors less extreme.
    Add(f64),
}

impl Smoothing {
    fn value(self) -> f64 {
        match self {
            Smoothing::Floor(v) | Smoothing::Add(v) => v,
        }
    }

    fn apply(self, count: f64) -> f64 {
        match self {
            Smoothing::Floor(floor) => count.max(floor),
            Smoothing::Add(alpha) => count + alpha,
        }
    }
}

impl Default for DawidSkeneConfig {
    fn default() -> Self {
        DawidSkeneConfig {
            max_iterations: 100,
            tolerance: Some(1e-5),
            smoothing: Smoothing::Floor(1e-10),
        }
    }
}

impl DawidSkeneConfig {
    /// Exactly `iterations` EM iterations, no convergence test (defaults otherwise).
    pub fn fixed_iterations(iterations: usize) -> Self {
        DawidSkeneConfig {
            max_iterations: iterations,
            tolerance: None,
            ..Self::default()
        }
    }
}

/// Dawid–Skene's estimate for one task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEstimate {
    /// The label of highest posterior (the lowest index among equals); the gold answer on a
    /// gold task.
    pub label: usize,
    /// Posterior probability of every label (sums to 1; one-hot on a gold task).
    pub posterior: Vec<f64>,
    /// Share of the task's votes for `label`.
    pub agreement: f64,
    /// The task's number of votes.
    pub votes: usize,
}

/// Dawid–Skene's estimate of one worker.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerEstimate {
    /// `confusion[true_label][answer]`: the probability of each answer given each true label
    /// (rows sum to 1).
    pub confusion: Vec<Vec<f64>>,
    /// The probability that an answer is right: the diagonal of `confusion` weighted by the
    /// class priors.
    pub accuracy: f64,
    /// The worker's number of votes.
    pub votes: usize,
    /// Share of the worker's votes on gold tasks that match the gold answer; `None` when the
    /// worker answered no gold task.
    pub gold_accuracy: Option<f64>,
}

/// What [`dawid_skene`] estimates.
#[derive(Debug, Clone, PartialEq)]
pub struct DawidSkene {
    pub tasks: Vec<TaskEstimate>,
    pub workers: Vec<WorkerEstimate>,
    /// Class priors (sum to 1).
    pub priors: Vec<f64>,
    /// EM iterations run.
    pub iterations: usize,
    /// Whether the tolerance stopped EM before `max_iterations`.
    pub converged: bool,
    /// Log-likelihood of the votes per vote at each iteration's E-step (under the parameters
    /// the previous M-step estimated; gold tasks count with their gold label).
    pub log_likelihood: Vec<f64>,
}

/// The model's parameters: class priors and, per worker, confusion matrices stored flat as
/// `confusion[(worker * K + true_label) * K + answer]`.
struct Parameters {
    priors: Vec<f64>,
    confusion: Vec<f64>,
}

/// Dawid and Skene's EM over the votes.
///
/// Initialisation: each task's posterior is its vote shares (the gold label one-hot on gold
/// tasks), from which a first M-step estimates priors and confusion matrices. Each iteration
/// then computes the posteriors from the priors and confusions in log space (fixing gold
/// tasks to their label), and estimates priors and confusions again from the posteriors. The
/// result holds the last E-step's posteriors and the last M-step's parameters.
///
/// Errors: only a smoothing value that is not a positive number ([`CrowdError::Setting`]).
pub fn dawid_skene(votes: &VoteSet, config: &DawidSkeneConfig) -> Result<DawidSkene, CrowdError> {
    let value = config.smoothing.value();
    if !(value > 0.0 && value.is_finite()) {
        return Err(CrowdError::Setting {
            field: "smoothing",
            problem: format!(
                "is {value}: it must be a positive number (the default floor is 1e-10)"
            ),
        });
    }
    let support = answer_support(votes);
    let mut posterior = votes.vote_shares();
    fix_gold(votes, &mut posterior);
    let mut parameters = m_step(votes, &support, &posterior, config.smoothing);
    let mut log_likelihood = Vec::new();
    let mut converged = false;
    let mut iterations = 0;
    while iterations < config.max_iterations {
        let likelihood = e_step(votes, &parameters, &mut posterior);
        parameters = m_step(votes, &support, &posterior, config.smoothing);
        iterations += 1;
        let per_vote = likelihood / votes.votes.len() as f64;
        let gain = log_likelihood.last().map(|&last| per_vote - last);
        log_likelihood.push(per_vote);
        if let (Some(gain), Some(tolerance)) = (gain, config.tolerance)
            && gain < tolerance
        {
            converged = true;
            break;
        }
    }
    Ok(summarise(
        votes,
        parameters,
        posterior,
        iterations,
        converged,
        log_likelihood,
    ))
}

/// Sets the posterior of every gold task to its gold label, one-hot.
fn fix_gold(votes: &VoteSet, posterior: &mut [Vec<f64>]) {
    for (row, gold) in posterior.iter_mut().zip(&votes.gold) {
        if let Some(label) = *gold {
            row.iter_mut().for_each(|p| *p = 0.0);
            row[label] = 1.0;
        }
    }
}

/// Per worker and label, whether the worker gave that label at least once (all labels for a
/// worker without votes), flat as `support[worker * K + label]`.
fn answer_support(votes: &VoteSet) -> Vec<bool> {
    let k = votes.labels;
    let mut support = vec![false; votes.workers * k];
    for vote in &votes.votes {
        support[vote.worker * k + vote.label] = true;
    }
    for row in support.chunks_mut(k) {
        if !row.contains(&true) {
            row.fill(true);
        }
    }
    support
}

/// Priors and confusion matrices that maximise the expected complete-data likelihood under
/// `posterior`, each count smoothed; a confusion row is normalised over the worker's
/// `support` (zero elsewhere).
fn m_step(
    votes: &VoteSet,
    support: &[bool],
    posterior: &[Vec<f64>],
    smoothing: Smoothing,
) -> Parameters {
    let k = votes.labels;
    let mut confusion = vec![0.0; votes.workers * k * k];
    for vote in &votes.votes {
        for (truth, &p) in posterior[vote.task].iter().enumerate() {
            confusion[(vote.worker * k + truth) * k + vote.label] += p;
        }
    }
    for (row_index, row) in confusion.chunks_mut(k).enumerate() {
        let worker_support = &support[(row_index / k) * k..][..k];
        for (count, &given) in row.iter_mut().zip(worker_support) {
            *count = if given { smoothing.apply(*count) } else { 0.0 };
        }
        let total: f64 = row.iter().sum();
        row.iter_mut().for_each(|c| *c /= total);
    }
    let mut priors = vec![0.0; k];
    for row in posterior {
        priors.iter_mut().zip(row).for_each(|(p, q)| *p += q);
    }
    priors.iter_mut().for_each(|p| *p = smoothing.apply(*p));
    let total: f64 = priors.iter().sum();
    priors.iter_mut().for_each(|p| *p /= total);
    Parameters { priors, confusion }
}

/// Posteriors of every task under `parameters` (gold tasks fixed), computed in log space and
/// normalised from the largest term; returns the log-likelihood of all votes.
fn e_step(votes: &VoteSet, parameters: &Parameters, posterior: &mut [Vec<f64>]) -> f64 {
    let k = votes.labels;
    let log_priors: Vec<f64> = parameters.priors.iter().map(|p| p.ln()).collect();
    let mut total = 0.0;
    let mut joint = vec![0.0; k];
    for (t, row) in posterior.iter_mut().enumerate() {
        joint.copy_from_slice(&log_priors);
        for vote in votes.task_votes(t) {
            for (truth, j) in joint.iter_mut().enumerate() {
                *j += parameters.confusion[(vote.worker * k + truth) * k + vote.label].ln();
            }
        }
        total += task_posterior(&joint, votes.gold[t], row);
    }
    if votes.gold.iter().any(Option::is_some) {
        fix_gold(votes, posterior);
    }
    total
}

/// A task's posterior from the log joint probability of each label and its votes, normalised
/// from the largest term (left alone on a gold task, whose label is fixed); returns the log
/// probability of the votes (under the gold label on a gold task).
fn task_posterior(joint: &[f64], gold: Option<usize>, row: &mut [f64]) -> f64 {
    if let Some(label) = gold {
        return joint[label];
    }
    let top = joint.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for (p, j) in row.iter_mut().zip(joint) {
        *p = (j - top).exp();
        sum += *p;
    }
    row.iter_mut().for_each(|p| *p /= sum);
    top + sum.ln()
}

/// Per-task labels and per-worker estimates from the final posteriors and parameters.
fn summarise(
    votes: &VoteSet,
    parameters: Parameters,
    posterior: Vec<Vec<f64>>,
    iterations: usize,
    converged: bool,
    log_likelihood: Vec<f64>,
) -> DawidSkene {
    let k = votes.labels;
    let tasks = posterior
        .into_iter()
        .enumerate()
        .map(|(t, posterior)| {
            let label = argmax(&posterior);
            let on_task = votes.task_votes(t);
            let agreeing = on_task.iter().filter(|v| v.label == label).count();
            TaskEstimate {
                label,
                posterior,
                agreement: agreeing as f64 / on_task.len() as f64,
                votes: on_task.len(),
            }
        })
        .collect();
    let mut counts = vec![0usize; votes.workers];
    let mut gold_answers = vec![(0usize, 0usize); votes.workers];
    for vote in &votes.votes {
        counts[vote.worker] += 1;
        if let Some(gold) = votes.gold[vote.task] {
            gold_answers[vote.worker].0 += usize::from(vote.label == gold);
            gold_answers[vote.worker].1 += 1;
        }
    }
    let workers = parameters
        .confusion
        .chunks(k * k)
        .zip(counts.iter().zip(&gold_answers))
        .map(|(matrix, (&votes, &(right, answered)))| {
            let confusion: Vec<Vec<f64>> = matrix.chunks(k).map(<[f64]>::to_vec).collect();
            let accuracy = (0..k).map(|c| parameters.priors[c] * confusion[c][c]).sum();
            WorkerEstimate {
                confusion,
                accuracy,
                votes,
                gold_accuracy: (answered > 0).then(|| right as f64 / answered as f64),
            }
        })
        .collect();
    DawidSkene {
        tasks,
        workers,
        priors: parameters.priors,
        iterations,
        converged,
        log_likelihood,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_lowest_index_among_equals() {
        assert_eq!(argmax(&[0.2, 0.4, 0.4]), 1);
        assert_eq!(argmax(&[0.5, 0.5]), 0);
        assert_eq!(argmax(&[0.1, 0.2, 0.7]), 2);
    }

    #[test]
    fn a_workers_answers_live_on_the_labels_they_gave() {
        let votes = vec![
            Vote {
                task: 0,
                worker: 0,
                label: 2,
            },
            Vote {
                task: 1,
                worker: 0,
                label: 2,
            },
            Vote {
                task: 1,
                worker: 1,
                label: 0,
            },
        ];
        let set = VoteSet::new(2, 3, 3, votes).unwrap();
        let support = answer_support(&set);
        assert_eq!(
            support,
            [false, false, true, true, false, false, true, true, true]
        );
        let ds = dawid_skene(&set, &DawidSkeneConfig::default()).unwrap();
        // Worker 0 only ever answered 2; worker 2 never voted and stays uniform.
        assert!(
            ds.workers[0]
                .confusion
                .iter()
                .all(|row| row == &[0.0, 0.0, 1.0])
        );
        assert!(
            ds.workers[2]
                .confusion
                .iter()
                .flatten()
                .all(|&p| (p - 1.0 / 3.0).abs() < 1e-12)
        );
        assert_eq!(set.task_votes(1).len(), 2);
    }
}
