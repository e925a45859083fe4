//! A batch's votes turned into labels: Dawid–Skene over all the batch's facets at once (each
//! worker's confusion per facet, drawn towards their accuracy over every facet; the current
//! labels as one more worker; gold answers fixed; `atelier_train::crowd::pooled`) with plain
//! majority vote beside it,
//! and the confident changes written to the catalogue, each guarded by the label version the
//! task was exported at.

use std::collections::{BTreeMap, HashMap};

use atelier_catalog::{Catalog, CatalogError, CrowdTask, LabelEdit};
use atelier_train::crowd::pooled::{PooledConfig, dawid_skene_pooled};
use atelier_train::crowd::{DawidSkene, Vote, VoteSet, majority_vote};
use serde::Serialize;

use crate::error::AppError;

/// The worker name under which every task's current label enters the aggregation as one more
/// vote. Dawid–Skene estimates how often the catalogue's labels in the batch are right, like
/// any worker's answers, and weighs them accordingly: on a mistag-queue batch about half are,
/// which is still far more than a random label, and without that vote the posterior of a
/// change leaves out the evidence for the label it replaces (over-confident changes). The
/// name cannot come from Mechanical Turk or a reviewer (they are refused on import).
pub const CATALOGUE_WORKER: &str = "(catalogue)";

/// One task's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskAggregate {
    pub token: String,
    pub image_id: String,
    pub facet: String,
    /// The label now, and its version when the task was exported.
    pub current_label: Option<String>,
    pub label_version: i64,
    pub gold_label: Option<String>,
    /// (worker, label) of every vote.
    pub votes: Vec<(String, String)>,
    /// Dawid–Skene's label and its posterior probability.
    pub label: String,
    pub posterior: f64,
    /// Majority vote's label, and the share of the votes for Dawid–Skene's label.
    pub majority: String,
    pub agreement: f64,
}

/// One worker's numbers on one facet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerAggregate {
    pub worker: String,
    pub facet: String,
    pub votes: usize,
    /// Dawid–Skene's estimate of the share of their answers that are right.
    pub accuracy: f64,
    /// Share of their answers to gold questions that match the gold answer.
    pub gold_accuracy: Option<f64>,
    /// Share of their answers that match Dawid–Skene's labels.
    pub agreement: f64,
}

/// A batch's aggregation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregation {
    pub batch: i64,
    /// The tasks with at least one vote.
    pub tasks: Vec<TaskAggregate>,
    /// Tasks nobody answered yet.
    pub unanswered: usize,
    pub workers: Vec<WorkerAggregate>,
}

/// Aggregates batch `batch`'s votes: Dawid–Skene over all its facets at once
/// ([`dawid_skene_pooled`]: each worker's confusion per facet, drawn towards their accuracy
/// over every facet), with each task's current label as a vote of [`CATALOGUE_WORKER`]; plain
/// majority vote of the crowd's votes beside it.
pub async fn aggregate(catalog: &Catalog, batch: i64) -> Result<Aggregation, AppError> {
    let tasks = catalog.crowd_tasks(batch).await?;
    let votes = catalog.crowd_votes(batch).await?;
    let mut by_task: HashMap<i64, Vec<(String, String)>> = HashMap::new();
    for vote in votes {
        by_task
            .entry(vote.task_id)
            .or_default()
            .push((vote.worker, vote.label));
    }
    let mut facets: BTreeMap<&str, Vec<&CrowdTask>> = BTreeMap::new();
    for task in tasks.iter().filter(|t| by_task.contains_key(&t.id)) {
        facets.entry(task.facet.as_str()).or_default().push(task);
    }
    let mut aggregation = Aggregation {
        batch,
        tasks: Vec::new(),
        unanswered: tasks.len() - facets.values().map(Vec::len).sum::<usize>(),
        workers: Vec::new(),
    };
    if facets.is_empty() {
        return Ok(aggregation);
    }
    let mut workers = vec![CATALOGUE_WORKER.to_string()];
    workers.extend(by_task.values().flatten().map(|(w, _)| w.clone()));
    workers[1..].sort();
    workers.dedup();
    let index: HashMap<&str, usize> = workers
        .iter()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i))
        .collect();
    let facets: Vec<FacetVotes> = facets
        .into_iter()
        .map(|(facet, tasks)| FacetVotes::new(facet, tasks, &by_task, &index))
        .collect::<Result<_, _>>()?;
    let sets: Vec<VoteSet> = facets.iter().map(|f| f.with_catalogue.clone()).collect();
    let estimates = dawid_skene_pooled(&sets, &PooledConfig::default())
        .map_err(|e| AppError::Invalid(format!("the votes cannot be aggregated: {e}")))?;
    for (facet, estimate) in facets.iter().zip(&estimates) {
        facet.report(estimate, &by_task, &workers, &mut aggregation);
    }
    Ok(aggregation)
}

/// One facet's answered tasks as vote sets over the batch's worker list.
struct FacetVotes<'a> {
    facet: &'a str,
    tasks: Vec<&'a CrowdTask>,
    /// The crowd's votes only (majority vote).
    crowd: VoteSet,
    /// The crowd's votes and the current labels (Dawid–Skene).
    with_catalogue: VoteSet,
}

impl<'a> FacetVotes<'a> {
    fn new(
        facet: &'a str,
        tasks: Vec<&'a CrowdTask>,
        by_task: &HashMap<i64, Vec<(String, String)>>,
        workers: &HashMap<&str, usize>,
    ) -> Result<Self, AppError> {
        let labels = &tasks[0].labels;
        let label_index = |label: &str| labels.iter().position(|l| l == label);
        let worker_index = |name: &str| workers.get(name).copied();
        let mut votes = Vec::new();
        for (t, task) in tasks.iter().enumerate() {
            for (worker, label) in &by_task[&task.id] {
                if let (Some(worker), Some(label)) = (worker_index(worker), label_index(label)) {
                    votes.push(Vote {
                        task: t,
                        worker,
                        label,
                    });
                }
            }
        }
        let current = tasks.iter().enumerate().filter_map(|(t, task)| {
            let label = label_index(task.current_label.as_deref()?)?;
            Some(Vote {
                task: t,
                worker: 0,
                label,
            })
        });
        let with_catalogue: Vec<Vote> = votes.iter().copied().chain(current).collect();
        let gold: Vec<Option<usize>> = tasks
            .iter()
            .map(|t| t.gold_label.as_deref().and_then(label_index))
            .collect();
        let set = |votes| {
            VoteSet::new(tasks.len(), workers.len(), labels.len(), votes)
                .and_then(|set| set.with_gold(gold.clone()))
                .map_err(|e| {
                    AppError::Invalid(format!("the votes on {facet} cannot be aggregated: {e}"))
                })
        };
        Ok(FacetVotes {
            facet,
            crowd: set(votes)?,
            with_catalogue: set(with_catalogue)?,
            tasks,
        })
    }

    /// The facet's tasks and workers (those who voted on it) into `into`.
    fn report(
        &self,
        estimate: &DawidSkene,
        by_task: &HashMap<i64, Vec<(String, String)>>,
        workers: &[String],
        into: &mut Aggregation,
    ) {
        let labels = &self.tasks[0].labels;
        let majority = majority_vote(&self.crowd);
        for (t, task) in self.tasks.iter().enumerate() {
            let chosen = &estimate.tasks[t];
            let votes = &by_task[&task.id];
            let label = &labels[chosen.label];
            let agreeing = votes.iter().filter(|(_, l)| l == label).count();
            into.tasks.push(TaskAggregate {
                token: task.token.clone(),
                image_id: task.image_id.clone(),
                facet: self.facet.to_string(),
                current_label: task.current_label.clone(),
                label_version: task.label_version,
                gold_label: task.gold_label.clone(),
                votes: votes.clone(),
                label: label.clone(),
                posterior: chosen.posterior[chosen.label],
                majority: labels[majority[t].label].clone(),
                agreement: agreeing as f64 / votes.len() as f64,
            });
        }
        let mut agreeing = vec![0usize; workers.len()];
        for vote in self.with_catalogue.votes() {
            if vote.label == estimate.tasks[vote.task].label {
                agreeing[vote.worker] += 1;
            }
        }
        for ((worker, estimated), agreeing) in workers.iter().zip(&estimate.workers).zip(agreeing) {
            if estimated.votes == 0 {
                continue;
            }
            into.workers.push(WorkerAggregate {
                worker: worker.clone(),
                facet: self.facet.to_string(),
                votes: estimated.votes,
                accuracy: estimated.accuracy,
                gold_accuracy: estimated.gold_accuracy,
                agreement: agreeing as f64 / estimated.votes as f64,
            });
        }
    }
}

/// What applying a batch did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ApplyReport {
    /// Labels changed (a `crowd` label event each).
    pub changed: usize,
    /// Tasks whose aggregated label is the current one.
    pub confirmed: usize,
    /// Tasks below the posterior threshold: the disputed queue.
    pub disputed: Vec<TaskAggregate>,
    /// Tasks left alone because the label changed since the export (a reviewer's word stands)
    /// or the image is no longer active.
    pub changed_since_export: usize,
    /// Gold questions (their answer was known) and unanswered tasks.
    pub gold: usize,
    pub unanswered: usize,
}

/// Changes a label where the aggregated label differs from the current one with a posterior
/// of at least `min_posterior`; each change is a `crowd` label event by `actor` with a reason
/// naming the votes, written only if the label is still at the version the task was exported
/// at. Tasks below the threshold are returned as disputed.
pub async fn apply(
    catalog: &Catalog,
    batch: i64,
    min_posterior: f64,
    actor: &str,
) -> Result<ApplyReport, AppError> {
    if !(0.0..=1.0).contains(&min_posterior) {
        return Err(AppError::Invalid(format!(
            "minimum posterior {min_posterior} is outside [0, 1]; give e.g. 0.9"
        )));
    }
    let run = catalog
        .crowd_batch(batch)
        .await?
        .ok_or(CatalogError::UnknownCrowdBatch(batch))?
        .run_id;
    let aggregation = aggregate(catalog, batch).await?;
    let mut report = ApplyReport {
        unanswered: aggregation.unanswered,
        ..ApplyReport::default()
    };
    for task in aggregation.tasks {
        if task.gold_label.is_some() {
            report.gold += 1;
        } else if task.posterior < min_posterior {
            report.disputed.push(task);
        } else if task.current_label.as_deref() == Some(task.label.as_str()) {
            report.confirmed += 1;
        } else {
            match catalog
                .set_crowd_labels(&[crowd_edit(&task, batch, actor, run)])
                .await
            {
                Ok(_) => report.changed += 1,
                // Retagged, removed or quarantined since the export.
                Err(CatalogError::Conflict { .. } | CatalogError::ImageNotActive { .. }) => {
                    report.changed_since_export += 1
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    Ok(report)
}

fn crowd_edit(task: &TaskAggregate, batch: i64, actor: &str, run: Option<i64>) -> LabelEdit {
    let agreeing = task.votes.iter().filter(|(_, l)| *l == task.label).count();
    LabelEdit {
        image: task.image_id.clone(),
        facet: task.facet.clone(),
        label: Some(task.label.clone()),
        expected_version: task.label_version,
        actor: actor.to_string(),
        reason: Some(format!(
            "crowd batch {batch}: {agreeing} of {} votes for {} (posterior {:.3})",
            task.votes.len(),
            task.label,
            task.posterior
        )),
        run_id: run,
    }
}
