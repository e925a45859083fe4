//! Crowd vote aggregation ([`atelier_train::crowd`]): one EM step computed by hand, gold
//! answers, spammers and adversaries, majority vote's tie rule, inputs that cannot be
//! aggregated, crowd-kit's `DawidSkene` on the same votes (`fixtures/crowd/`, made by
//! `fixtures/crowd/make_crowdkit_reference.py`), the pooled model against an independent NumPy
//! implementation (`fixtures/crowd/make_pooled_reference.py`) and the simulated crowd.

use atelier_train::crowd::pooled::{PooledConfig, dawid_skene_pooled};
use atelier_train::crowd::simulation::{Scores, SimulationConfig, WorkerKind, score, simulate};
use atelier_train::crowd::{
    CrowdError, DawidSkene, DawidSkeneConfig, Smoothing, Vote, VoteSet, dawid_skene, majority_vote,
};
use serde_json::Value;

fn votes(list: &[(usize, usize, usize)]) -> Vec<Vote> {
    list.iter()
        .map(|&(task, worker, label)| Vote {
            task,
            worker,
            label,
        })
        .collect()
}

fn close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} against {expected}"
    );
}

/// Four tasks, two workers, two labels; votes as (task, worker, label):
///
/// ```text
/// t0: w0→0, w1→0    t1: w0→0, w1→1    t2: w0→1, w1→1    t3: w0→0
/// ```
///
/// Initialisation (vote shares): q0 = (1, 0), q1 = (½, ½), q2 = (0, 1), q3 = (1, 0).
/// First M-step: priors = mean q = (2.5/4, 1.5/4) = (5/8, 3/8). Confusion rows are true
/// labels, columns answers, each row the q-weighted answer counts normalised:
///   w0, true 0: answers 0 ← q0+q1+q3 = 1+½+1 = 2.5, 1 ← q2 = 0        → (1, 0)
///   w0, true 1: answers 0 ← ½ (t1) + 0 + 0 = ½, 1 ← 1 (t2)            → (1/3, 2/3)
///   w1, true 0: answers 0 ← 1 (t0), 1 ← ½ (t1) + 0 (t2)               → (2/3, 1/3)
///   w1, true 1: answers 0 ← 0, 1 ← ½ + 1 = 1.5                        → (0, 1)
/// Iteration 1, E-step: prior × each vote's confusion entry, normalised per task:
///   t0: 5/8·1·2/3 = 5/12  vs 3/8·1/3·0 = 0     → (1, 0),     evidence 5/12
///   t1: 5/8·1·1/3 = 5/24  vs 3/8·1/3·1 = 3/24  → (5/8, 3/8), evidence 1/3
///   t2: 5/8·0·1/3 = 0     vs 3/8·2/3·1 = 1/4   → (0, 1),     evidence 1/4
///   t3: 5/8·1 = 5/8       vs 3/8·1/3 = 1/8     → (5/6, 1/6), evidence 3/4
/// log-likelihood per vote (7 votes) = (ln 5/12 + ln 1/3 + ln 1/4 + ln 3/4) / 7.
/// Iteration 1, M-step: class masses 1+5/8+0+5/6 = 59/24 and 3/8+1+1/6 = 37/24, so
/// priors = (59/96, 37/96);
///   w0, true 0: answers 0 ← 1+5/8+5/6 = 59/24, 1 ← 0            → (1, 0)
///   w0, true 1: answers 0 ← 3/8+1/6 = 13/24, 1 ← 1 = 24/24      → (13/37, 24/37)
///   w1, true 0: answers 0 ← 1, 1 ← 5/8                          → (8/13, 5/13)
///   w1, true 1: answers 0 ← 0, 1 ← 3/8+1 = 11/8                 → (0, 1)
/// Accuracies (prior-weighted diagonals): w0 59/96·1 + 37/96·24/37 = 83/96,
/// w1 59/96·8/13 + 37/96·1 = 953/1248.
/// The default smoothing (counts floored at 1e-10) moves each of these by less than 1e-9.
#[test]
fn one_em_step_matches_the_hand_computation() {
    let set = VoteSet::new(
        4,
        2,
        2,
        votes(&[
            (0, 0, 0),
            (0, 1, 0),
            (1, 0, 0),
            (1, 1, 1),
            (2, 0, 1),
            (2, 1, 1),
            (3, 0, 0),
        ]),
    )
    .unwrap();
    let start = dawid_skene(&set, &DawidSkeneConfig::fixed_iterations(0)).unwrap();
    assert_eq!(start.iterations, 0);
    close(start.priors[0], 5.0 / 8.0, 1e-9, "initial prior");
    close(
        start.workers[0].confusion[1][0],
        1.0 / 3.0,
        1e-9,
        "initial w0",
    );
    close(
        start.workers[1].confusion[0][1],
        1.0 / 3.0,
        1e-9,
        "initial w1",
    );
    assert_eq!(start.tasks[1].posterior, vec![0.5, 0.5]);

    let one = dawid_skene(&set, &DawidSkeneConfig::fixed_iterations(1)).unwrap();
    assert_eq!((one.iterations, one.converged), (1, false));
    let posteriors = [
        [1.0, 0.0],
        [5.0 / 8.0, 3.0 / 8.0],
        [0.0, 1.0],
        [5.0 / 6.0, 1.0 / 6.0],
    ];
    for (task, expected) in one.tasks.iter().zip(posteriors) {
        for (p, e) in task.posterior.iter().zip(expected) {
            close(*p, e, 1e-9, "posterior after one step");
        }
    }
    let labels: Vec<usize> = one.tasks.iter().map(|t| t.label).collect();
    assert_eq!(labels, [0, 0, 1, 0]);
    assert_eq!(one.tasks[1].agreement, 0.5);
    close(one.priors[0], 59.0 / 96.0, 1e-9, "prior");
    close(one.priors[1], 37.0 / 96.0, 1e-9, "prior");
    let w0 = &one.workers[0].confusion;
    let w1 = &one.workers[1].confusion;
    close(w0[0][0], 1.0, 1e-9, "w0 0→0");
    close(w0[1][0], 13.0 / 37.0, 1e-9, "w0 1→0");
    close(w0[1][1], 24.0 / 37.0, 1e-9, "w0 1→1");
    close(w1[0][0], 8.0 / 13.0, 1e-9, "w1 0→0");
    close(w1[0][1], 5.0 / 13.0, 1e-9, "w1 0→1");
    close(w1[1][1], 1.0, 1e-9, "w1 1→1");
    close(one.workers[0].accuracy, 83.0 / 96.0, 1e-9, "w0 accuracy");
    close(one.workers[1].accuracy, 953.0 / 1248.0, 1e-9, "w1 accuracy");
    assert_eq!((one.workers[0].votes, one.workers[1].votes), (4, 3));
    let expected = ((5.0f64 / 12.0).ln() + (1.0f64 / 3.0).ln() + 0.25f64.ln() + 0.75f64.ln()) / 7.0;
    close(one.log_likelihood[0], expected, 1e-9, "log-likelihood");
}

/// Workers 0 and 1 always answer 0; worker 2 answers the truth (task parity). Without gold
/// the majority outvotes worker 2; the gold answers of six tasks show who is right.
#[test]
fn gold_answers_stay_fixed_and_change_a_workers_estimate() {
    let tasks = 20;
    let mut list = Vec::new();
    for t in 0..tasks {
        list.extend([(t, 0, 0), (t, 1, 0), (t, 2, t % 2)]);
    }
    let plain = VoteSet::new(tasks, 3, 2, votes(&list)).unwrap();
    let gold: Vec<Option<usize>> = (0..tasks).map(|t| (t < 6).then_some(t % 2)).collect();
    let golden = plain.clone().with_gold(gold).unwrap();
    let config = DawidSkeneConfig::default();
    let without = dawid_skene(&plain, &config).unwrap();
    let with = dawid_skene(&golden, &config).unwrap();

    for t in 0..6 {
        let mut one_hot = vec![0.0; 2];
        one_hot[t % 2] = 1.0;
        assert_eq!(with.tasks[t].posterior, one_hot, "gold task {t}");
        assert_eq!(with.tasks[t].label, t % 2);
    }
    assert!(without.workers[2].gold_accuracy.is_none());
    assert_eq!(with.workers[2].gold_accuracy, Some(1.0));
    assert_eq!(with.workers[0].gold_accuracy, Some(0.5));
    assert!(
        with.workers[2].accuracy > without.workers[2].accuracy + 0.3,
        "worker 2: {} with gold, {} without",
        with.workers[2].accuracy,
        without.workers[2].accuracy
    );
    // Gold shows that half the tasks are 1: the priors follow, and worker 2, now trusted,
    // carries the tasks without gold that the other two outvoted.
    assert!((with.priors[1] - 0.5).abs() < 0.05, "{:?}", with.priors);
    assert!(without.priors[1] < 0.2, "{:?}", without.priors);
    for t in 6..tasks {
        assert_eq!(without.tasks[t].label, 0, "task {t} without gold");
        assert_eq!(with.tasks[t].label, t % 2, "task {t} with gold");
    }
}

#[test]
fn a_spammer_scores_low_and_an_adversary_is_read_backwards() {
    let simulation = simulate(&SimulationConfig {
        tasks: 600,
        votes_per_task: 5,
        ..SimulationConfig::default()
    })
    .unwrap();
    let ds = dawid_skene(&simulation.votes, &DawidSkeneConfig::default()).unwrap();
    let k = simulation.votes.labels();
    for (worker, kind) in simulation.workers.iter().enumerate() {
        let estimate = &ds.workers[worker];
        match kind {
            WorkerKind::Spammer => assert!(estimate.accuracy < 0.35, "spammer {worker}"),
            WorkerKind::Adversary => {
                assert!(estimate.accuracy < 0.05, "adversary {worker}");
                // The label after the truth, weighted by the priors (a rare class has few
                // of the adversary's votes to be estimated from).
                let next: f64 = (0..k)
                    .map(|c| ds.priors[c] * estimate.confusion[c][(c + 1) % k])
                    .sum();
                assert!(next > 0.9, "adversary answers the next label: {next}");
            }
            WorkerKind::Honest { accuracy } if *accuracy >= 0.9 => {
                assert!(estimate.accuracy > 0.8, "worker {worker} at {accuracy}")
            }
            WorkerKind::Honest { .. } => {}
        }
    }

    // Two labels; workers 0 and 1 are mostly right, worker 2 always wrong. The last task has
    // only worker 2's vote: majority vote takes it, Dawid–Skene reads it backwards.
    let mut list = Vec::new();
    for t in 0..40 {
        let truth = t % 2;
        let wrong = 1 - truth;
        list.push((t, 0, if t % 10 == 3 { wrong } else { truth }));
        list.push((t, 1, if t % 10 == 7 { wrong } else { truth }));
        list.push((t, 2, wrong));
    }
    list.push((40, 2, 1));
    let set = VoteSet::new(41, 3, 2, votes(&list)).unwrap();
    let ds = dawid_skene(&set, &DawidSkeneConfig::default()).unwrap();
    assert_eq!(majority_vote(&set)[40].label, 1);
    assert_eq!(ds.tasks[40].label, 0);
    assert!(ds.tasks[40].posterior[0] > 0.99);
    assert_eq!(ds.tasks[40].agreement, 0.0);
}

#[test]
fn majority_vote_breaks_ties_to_the_lowest_label() {
    let set = VoteSet::new(
        3,
        4,
        4,
        votes(&[
            (0, 0, 2),
            (0, 1, 1),
            (1, 0, 3),
            (1, 1, 3),
            (1, 2, 0),
            (2, 0, 3),
            (2, 1, 2),
            (2, 2, 2),
            (2, 3, 3),
        ]),
    )
    .unwrap();
    let majority = majority_vote(&set);
    let labels: Vec<usize> = majority.iter().map(|m| m.label).collect();
    assert_eq!(labels, [1, 3, 2]);
    assert_eq!(majority[0].agreement, 0.5);
    close(majority[1].agreement, 2.0 / 3.0, 1e-12, "agreement");
    assert_eq!(majority[2].votes, 4);
}

#[test]
fn inputs_that_cannot_be_aggregated_are_errors() {
    assert_eq!(VoteSet::new(0, 3, 2, vec![]), Err(CrowdError::NoTasks));
    assert_eq!(VoteSet::new(2, 3, 0, vec![]), Err(CrowdError::NoLabels));
    assert_eq!(
        VoteSet::new(2, 3, 2, votes(&[(0, 0, 1)])),
        Err(CrowdError::TaskWithoutVotes { task: 1 })
    );
    assert_eq!(
        VoteSet::new(1, 3, 2, votes(&[(0, 3, 1)])),
        Err(CrowdError::VoteOutOfRange {
            vote: 0,
            field: "worker",
            value: 3,
            count: 3
        })
    );
    let set = VoteSet::new(1, 1, 2, votes(&[(0, 0, 1)])).unwrap();
    assert_eq!(
        set.clone().with_gold(vec![]),
        Err(CrowdError::GoldLength { given: 0, tasks: 1 })
    );
    assert_eq!(
        set.clone().with_gold(vec![Some(2)]),
        Err(CrowdError::GoldOutOfRange {
            task: 0,
            label: 2,
            labels: 2
        })
    );
    let zero = DawidSkeneConfig {
        smoothing: Smoothing::Add(0.0),
        ..DawidSkeneConfig::default()
    };
    let error = dawid_skene(&set, &zero).unwrap_err();
    assert!(error.to_string().starts_with("smoothing is 0"), "{error}");
}

/// One vote per worker, three labels of which one nobody chose, and a worker without votes:
/// every number stays finite and every posterior sums to 1.
#[test]
fn sparse_votes_leave_no_nan() {
    let set = VoteSet::new(3, 4, 3, votes(&[(0, 0, 0), (1, 1, 2), (2, 2, 2)])).unwrap();
    let ds = dawid_skene(&set, &DawidSkeneConfig::default()).unwrap();
    for task in &ds.tasks {
        assert!(task.posterior.iter().all(|p| p.is_finite()));
        close(task.posterior.iter().sum(), 1.0, 1e-12, "posterior sum");
    }
    for worker in &ds.workers {
        assert!(worker.accuracy.is_finite());
        for row in &worker.confusion {
            close(row.iter().sum(), 1.0, 1e-12, "confusion row");
        }
    }
    assert_eq!(ds.workers[3].votes, 0);
    close(
        ds.workers[3].confusion[1][2],
        1.0 / 3.0,
        1e-12,
        "unused worker",
    );
    assert!(ds.priors[1] < 1e-9 && ds.priors[1] > 0.0);
    assert!(ds.log_likelihood.iter().all(|l| l.is_finite()));
}

fn fixture_votes() -> Vec<Vote> {
    let text = include_str!("../fixtures/crowd/votes.csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            let field = |i: usize| record[i].parse::<usize>().unwrap();
            Vote {
                task: field(0),
                worker: field(1),
                label: field(2),
            }
        })
        .collect()
}

/// crowd-kit's `DawidSkene` on the fixture's votes (150 tasks, 7 workers, 3 labels), without
/// and with gold answers, for a fixed number of iterations and with both sides' defaults.
/// Labels must be equal. Step for step the two compute the same numbers: after the fixed
/// iterations posteriors, priors and confusion entries agree to 1e-8 (only rounding separates
/// them; the largest difference is about 1e-10). With the defaults they differ only in when
/// they stop: crowd-kit when its evidence lower bound per vote gains less than 1e-5 after an
/// M-step, atelier when the log-likelihood per vote at the E-step does (a quantity EM never
/// lowers; crowd-kit's counts the prior once per vote and can fall). They must stop at most
/// two iterations apart, and the tolerance is how far crowd-kit's own posteriors move when it
/// runs that many iterations more or fewer (recorded in the fixture: 0.01 to 0.02 here).
#[test]
fn matches_crowdkit_dawid_skene() {
    let reference: Value =
        serde_json::from_str(include_str!("../fixtures/crowd/crowdkit_reference.json")).unwrap();
    let count = |key: &str| reference[key].as_u64().unwrap() as usize;
    let set = VoteSet::new(
        count("tasks"),
        count("workers"),
        count("labels"),
        fixture_votes(),
    )
    .unwrap();
    let truth: Vec<usize> = serde_json::from_value(reference["truth"].clone()).unwrap();
    let gold = (0..set.tasks())
        .map(|t| (t < count("gold_tasks")).then_some(truth[t]))
        .collect();
    let golden = set.clone().with_gold(gold).unwrap();
    let steps = DawidSkeneConfig::fixed_iterations(
        reference["steps"]["iterations"].as_u64().unwrap() as usize,
    );
    let default = DawidSkeneConfig::default();
    let cases = [
        ("steps", &set, &steps),
        ("gold_steps", &golden, &steps),
        ("default", &set, &default),
        ("gold", &golden, &default),
    ];
    for (name, votes, config) in cases {
        let case = &reference[name];
        let ds = dawid_skene(votes, config).unwrap();
        let theirs = case["iterations"].as_u64().unwrap() as usize;
        let tolerance = if config.tolerance.is_none() {
            assert_eq!(ds.iterations, theirs, "{name}");
            1e-8
        } else {
            let offset = ds.iterations as i64 - theirs as i64;
            assert!(offset.abs() <= 2, "{name}: {} iterations", ds.iterations);
            case["moves"][(offset + 2) as usize].as_f64().unwrap() + 1e-8
        };
        compare_with_crowdkit(name, &ds, case, tolerance);
    }
}

fn compare_with_crowdkit(name: &str, ds: &DawidSkene, case: &Value, tolerance: f64) {
    let labels: Vec<usize> = serde_json::from_value(case["labels"].clone()).unwrap();
    let ours: Vec<usize> = ds.tasks.iter().map(|t| t.label).collect();
    assert_eq!(ours, labels, "{name}: labels");
    let probabilities: Vec<Vec<f64>> =
        serde_json::from_value(case["probabilities"].clone()).unwrap();
    for (t, (task, theirs)) in ds.tasks.iter().zip(&probabilities).enumerate() {
        for (p, q) in task.posterior.iter().zip(theirs) {
            close(*p, *q, tolerance, &format!("{name}: task {t}"));
        }
    }
    let priors: Vec<f64> = serde_json::from_value(case["priors"].clone()).unwrap();
    for (p, q) in ds.priors.iter().zip(&priors) {
        close(*p, *q, tolerance, &format!("{name}: prior"));
    }
    let errors: Vec<Vec<Vec<f64>>> = serde_json::from_value(case["errors"].clone()).unwrap();
    for (w, (worker, theirs)) in ds.workers.iter().zip(&errors).enumerate() {
        for (row, their_row) in worker.confusion.iter().zip(theirs) {
            for (p, q) in row.iter().zip(their_row) {
                close(*p, *q, tolerance, &format!("{name}: worker {w}"));
            }
        }
    }
    eprintln!(
        "{name}: {} iterations against crowd-kit's {}",
        ds.iterations, case["iterations"]
    );
}

/// 2 000 tasks over 6 labels, 5 votes each, seed 7 (about 40 ms in a debug build): Dawid–Skene
/// beats majority vote, and the tasks whose posterior reaches 0.9 are right at least 97 % of
/// the time.
#[test]
fn dawid_skene_beats_majority_vote_on_the_simulated_crowd() {
    let config = SimulationConfig {
        votes_per_task: 5,
        ..SimulationConfig::default()
    };
    let simulation = simulate(&config).unwrap();
    assert_eq!(simulation.votes.votes().len(), 10_000);
    assert_eq!(
        simulate(&config).unwrap(),
        simulation,
        "same seed, same votes"
    );
    let majority = majority_vote(&simulation.votes);
    let ds = dawid_skene(&simulation.votes, &DawidSkeneConfig::default()).unwrap();
    assert!(ds.converged);
    let scores = score(&simulation.truth, &majority, &ds, 0.9);
    assert!(
        scores.dawid_skene_accuracy > scores.majority_accuracy + 0.02,
        "{scores:?}"
    );
    assert!(scores.applied_precision >= 0.97, "{scores:?}");
    assert!(scores.applied > 1_500, "{scores:?}");
}

/// The pooled model on the fixture's two facets (8 workers, gold answers on 5 tasks), 30
/// iterations, against `fixtures/crowd/make_pooled_reference.py`'s NumPy implementation:
/// posteriors, confusion matrices and priors agree to 1e-9.
#[test]
fn pooled_matches_the_numpy_reference() {
    let reference: Value =
        serde_json::from_str(include_str!("../fixtures/crowd/pooled_reference.json")).unwrap();
    let workers = reference["workers"].as_u64().unwrap() as usize;
    let sets: Vec<VoteSet> = reference["facets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|facet| {
            let list: Vec<(usize, usize, usize)> =
                serde_json::from_value(facet["votes"].clone()).unwrap();
            let gold: Vec<Option<usize>> = serde_json::from_value(facet["gold"].clone()).unwrap();
            let count = |key: &str| facet[key].as_u64().unwrap() as usize;
            VoteSet::new(count("tasks"), workers, count("labels"), votes(&list))
                .unwrap()
                .with_gold(gold)
                .unwrap()
        })
        .collect();
    let config = PooledConfig {
        strength: reference["strength"].as_f64().unwrap(),
        max_iterations: reference["iterations"].as_u64().unwrap() as usize,
        tolerance: None,
    };
    let fitted = dawid_skene_pooled(&sets, &config).unwrap();
    for (f, (ds, theirs)) in fitted
        .iter()
        .zip(reference["fitted"].as_array().unwrap())
        .enumerate()
    {
        assert_eq!(ds.iterations, config.max_iterations);
        let posterior: Vec<Vec<f64>> = serde_json::from_value(theirs["posterior"].clone()).unwrap();
        for (t, (task, row)) in ds.tasks.iter().zip(&posterior).enumerate() {
            for (p, q) in task.posterior.iter().zip(row) {
                close(*p, *q, 1e-9, &format!("facet {f}, task {t}"));
            }
        }
        let confusion: Vec<Vec<Vec<f64>>> =
            serde_json::from_value(theirs["confusion"].clone()).unwrap();
        for (w, (worker, matrix)) in ds.workers.iter().zip(&confusion).enumerate() {
            for (row, their_row) in worker.confusion.iter().zip(matrix) {
                for (p, q) in row.iter().zip(their_row) {
                    close(*p, *q, 1e-9, &format!("facet {f}, worker {w}"));
                }
            }
        }
        let priors: Vec<f64> = serde_json::from_value(theirs["priors"].clone()).unwrap();
        for (p, q) in ds.priors.iter().zip(&priors) {
            close(*p, *q, 1e-9, &format!("facet {f}, prior"));
        }
    }
}

/// Five facets of 300 tasks (4 to 8 labels), 3 votes a task from the simulated crowd: each
/// worker has about 30 votes per facet. Fitted facet by facet, Dawid–Skene's posteriors are
/// over-confident; pooled over the facets, more labels are right and those with a posterior
/// of 0.9 are right more often.
#[test]
fn pooling_over_facets_beats_facet_by_facet_on_sparse_votes() {
    let simulations: Vec<_> = [4, 5, 6, 6, 8]
        .iter()
        .enumerate()
        .map(|(f, &labels)| {
            simulate(&SimulationConfig {
                tasks: 300,
                labels,
                votes_per_task: 3,
                seed: 100 + f as u64,
            })
            .unwrap()
        })
        .collect();
    let sets: Vec<VoteSet> = simulations.iter().map(|s| s.votes.clone()).collect();
    let pooled = dawid_skene_pooled(&sets, &PooledConfig::default()).unwrap();
    let mut alone = Vec::new();
    let mut together = Vec::new();
    for (simulation, pooled) in simulations.iter().zip(&pooled) {
        let majority = majority_vote(&simulation.votes);
        let ds = dawid_skene(&simulation.votes, &DawidSkeneConfig::default()).unwrap();
        alone.push(score(&simulation.truth, &majority, &ds, 0.9));
        together.push(score(&simulation.truth, &majority, pooled, 0.9));
    }
    let mean = |scores: &[Scores], pick: fn(&Scores) -> f64| {
        scores.iter().map(pick).sum::<f64>() / scores.len() as f64
    };
    let accuracy = |s: &Scores| s.dawid_skene_accuracy;
    let precision = |s: &Scores| s.applied_precision;
    let majority = |s: &Scores| s.majority_accuracy;
    eprintln!(
        "accuracy: majority {:.3}, facet by facet {:.3}, pooled {:.3}; precision at 0.9: {:.3} and {:.3}",
        mean(&alone, majority),
        mean(&alone, accuracy),
        mean(&together, accuracy),
        mean(&alone, precision),
        mean(&together, precision)
    );
    assert!(mean(&together, accuracy) > mean(&alone, accuracy) + 0.02);
    assert!(mean(&together, precision) > mean(&alone, precision));
    assert!(pooled.iter().all(|ds| ds.converged));
}

#[test]
fn pooled_refuses_sets_of_different_crowds() {
    let one = VoteSet::new(1, 2, 2, votes(&[(0, 0, 1)])).unwrap();
    let other = VoteSet::new(1, 3, 2, votes(&[(0, 2, 1)])).unwrap();
    let error = dawid_skene_pooled(&[one.clone(), other], &PooledConfig::default()).unwrap_err();
    assert!(
        matches!(
            error,
            CrowdError::Setting {
                field: "workers",
                ..
            }
        ),
        "{error}"
    );
    let weak = PooledConfig {
        strength: 0.0,
        ..PooledConfig::default()
    };
    assert!(matches!(
        dawid_skene_pooled(&[one], &weak),
        Err(CrowdError::Setting {
            field: "strength",
            ..
        })
    ));
    assert_eq!(
        dawid_skene_pooled(&[], &weak).unwrap_err(),
        CrowdError::NoTasks
    );
}
