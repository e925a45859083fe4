//! The runs list, one run's page (with its progress while it trains), the side-by-side
//! comparison of two runs, and starting a retrain.

use std::collections::HashMap;

use atelier_app::RunSummary;
use atelier_app::similarity::SIMILARITY_RUN;
use atelier_app::{any_run, jobs};
use atelier_catalog::{JobRecord, JobStatus, Role, RunFacetResult, RunRecord, RunStatus};
use atelier_train::metrics::SplitMetrics;
use atelier_train::similarity_run::{RetrievalScores, SimilarityEvaluation};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::AppState;
use crate::auth::User;
use crate::error::WebError;
use crate::format::{Format, respond};
use crate::pages::body;
use crate::pages::run_facts::training_facts;
use crate::views::chart::delta;
use crate::views::layout::page;
use crate::views::retrieval;
use crate::views::{score, timestamp, url_encode};

/// One facet's headline numbers in a run.
#[derive(Debug, Serialize)]
pub struct FacetScore {
    pub facet: String,
    pub train_macro_f1: Option<f64>,
    pub test_macro_f1: Option<f64>,
}

/// A run as listed.
#[derive(Debug, Serialize)]
pub struct RunRow {
    pub id: i64,
    /// `facets` or `similarity`.
    pub kind: String,
    pub status: RunStatus,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub parent_run: Option<i64>,
    pub backbone: String,
    pub folds: u64,
    pub facets: Vec<FacetScore>,
    /// A similarity run's trained embedding on its held-out designs.
    pub retrieval: Option<RetrievalScores>,
    pub progress: Option<Value>,
    pub error: Option<String>,
}

impl RunRow {
    pub fn from_record(record: &RunRecord) -> RunRow {
        let train = &record.config["train"];
        let summary = RunSummary::of(record);
        let facets = train["facets"]
            .as_array()
            .map(|names| {
                names
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|facet| {
                        let scores = summary.as_ref().and_then(|s| s.facets.get(facet));
                        FacetScore {
                            facet: facet.to_string(),
                            train_macro_f1: scores.map(|s| s.train_macro_f1),
                            test_macro_f1: scores.map(|s| s.test_macro_f1),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let backbone = train["backbone"]
            .as_str()
            .or_else(|| record.config["similarity"]["backbone"].as_str());
        RunRow {
            id: record.id,
            kind: record.kind.clone(),
            status: record.status,
            created_at: record.created_at,
            finished_at: record.finished_at,
            parent_run: record.parent_run,
            backbone: backbone.unwrap_or("?").to_string(),
            folds: train["folds"].as_u64().unwrap_or(0),
            facets,
            retrieval: retrieval::evaluation(record).map(|e| e.trained),
            progress: record.progress.clone(),
            error: record.error.clone(),
        }
    }
}

/// The stored run `run`, or a 404 that points to the runs list.
pub async fn find_run(state: &AppState, run: i64) -> Result<RunRecord, WebError> {
    state
        .catalog
        .run(run)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("no run #{run}; see the runs list")))
}

#[derive(Debug, Serialize)]
pub struct RunsPage {
    pub runs: Vec<RunRow>,
}

pub async fn list(
    State(state): State<AppState>,
    user: User,
    format: Format,
) -> Result<Response, WebError> {
    let runs = state
        .catalog
        .runs()
        .await?
        .iter()
        .map(RunRow::from_record)
        .collect();
    let data = RunsPage { runs };
    Ok(respond(format, &data, |data| render_list(data, &user)))
}

/// `#7 running on WORKER (attempt 2)`, linking to the jobs page.
fn job_fact(job: &JobRecord) -> Markup {
    let stalled = job.is_stalled(atelier_catalog::now_millis());
    html! {
        a href=(format!("/jobs#job-{}", job.id)) { "#" (job.id) }
        " " @if stalled { "stalled: waiting for another worker to resume it" } @else { (job.status.as_str()) }
        @if let Some(worker) = &job.worker { " · worker " code { (worker) } }
        @if job.attempts > 1 { " · attempt " (job.attempts) }
    }
}

fn status_badge(status: RunStatus) -> Markup {
    html! { span class=(format!("badge status-{}", status.as_str())) { (status.as_str()) } }
}

fn progress_text(progress: &Value) -> String {
    let phase = progress["phase"].as_str().unwrap_or("training");
    let mut text = phase.to_string();
    // A training phase is already named `epoch E/N`.
    if let (Some(epoch), Some(epochs)) = (progress["epoch"].as_u64(), progress["epochs"].as_u64())
        && !phase.starts_with("epoch ")
    {
        text.push_str(&format!(" · epoch {epoch}/{epochs}"));
    }
    if let (Some(fold), Some(folds)) = (progress["fold"].as_u64(), progress["folds"].as_u64())
        && folds > 0
    {
        text.push_str(&format!(" · fold {fold}/{folds}"));
    }
    text
}

fn render_list(data: &RunsPage, user: &User) -> Markup {
    let body = html! {
        @if data.runs.is_empty() {
            p.empty { "No training runs yet. Train one with " code { "atelier train facets" } "." }
        } @else {
            form method="get" action="/runs/compare" {
                p.muted { "Pick two runs (A, B) and compare their per-class F1 (facet runs) or their retrieval numbers (similarity runs)." }
                table.runs {
                    thead { tr {
                        th { "A" } th { "B" } th { "Run" } th { "Status" } th { "Started" } th { "Backbone" }
                        th { "Facets: macro-F1 train / test · similarity: held-out designs" }
                    } }
                    tbody {
                        @for (i, run) in data.runs.iter().enumerate() {
                            tr {
                                td { input type="radio" name="a" value=(run.id) checked[i == 1] aria-label=(format!("compare run {} as A", run.id)); }
                                td { input type="radio" name="b" value=(run.id) checked[i == 0] aria-label=(format!("compare run {} as B", run.id)); }
                                td { a href=(format!("/runs/{}", run.id)) { "#" (run.id) }
                                    @if let Some(parent) = run.parent_run { span.muted { " (retrain of #" (parent) ")" } } }
                                td { (status_badge(run.status))
                                    @if let (RunStatus::Running, Some(progress)) = (run.status, &run.progress) {
                                        " " span.muted { (progress_text(progress)) }
                                    } }
                                td { (timestamp(run.created_at)) }
                                td { (run.backbone) @if run.folds > 0 { span.muted { " · " (run.folds) "-fold" } } }
                                td.facets {
                                    @if let Some(scores) = &run.retrieval { (retrieval::list_cell(scores)) }
                                    @for facet in &run.facets {
                                        a.facet-score href=(format!("/runs/{}/facets/{}", run.id, url_encode(&facet.facet))) {
                                            span.name { (facet.facet) }
                                            span { (score(facet.train_macro_f1)) " / " strong { (score(facet.test_macro_f1)) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if data.runs.len() >= 2 { button type="submit" { "Compare A and B" } }
            }
        }
    };
    page("Training runs", user, &[], body)
}

/// One facet of one run with its tables.
#[derive(Debug, Serialize)]
pub struct RunFacet {
    pub facet: String,
    pub labels: Vec<String>,
    pub train: Option<SplitMetrics>,
    pub test: Option<SplitMetrics>,
}

impl RunFacet {
    pub fn from_result(result: RunFacetResult) -> RunFacet {
        RunFacet {
            train: result
                .train_metrics
                .and_then(|v| serde_json::from_value(v).ok()),
            test: result
                .test_metrics
                .and_then(|v| serde_json::from_value(v).ok()),
            facet: result.facet,
            labels: result.labels,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RunPage {
    pub run: RunRow,
    pub config: Value,
    pub summary: Option<RunSummary>,
    pub model_ref: Option<String>,
    pub facets: Vec<RunFacet>,
    pub retrains: Vec<i64>,
    /// The newest job that trains this run (queued, running, or how it ended).
    pub job: Option<JobRecord>,
    /// A similarity run's numbers on its held-out designs.
    pub similarity: Option<SimilarityEvaluation>,
}

pub async fn show(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Path(run): Path<i64>,
) -> Result<Response, WebError> {
    let record = find_run(&state, run).await?;
    let facets = state
        .catalog
        .run_facets(run)
        .await?
        .into_iter()
        .map(RunFacet::from_result)
        .collect();
    let retrains = state
        .catalog
        .runs()
        .await?
        .iter()
        .filter(|r| r.parent_run == Some(run))
        .map(|r| r.id)
        .collect();
    let data = RunPage {
        run: RunRow::from_record(&record),
        config: record.config.clone(),
        summary: RunSummary::of(&record),
        model_ref: record.model_ref.clone(),
        facets,
        retrains,
        job: state.catalog.job_of_run(run).await?,
        similarity: retrieval::evaluation(&record),
    };
    Ok(respond(format, &data, |data| render_run(data, &user)))
}

fn render_run(data: &RunPage, user: &User) -> Markup {
    let run = &data.run;
    let running = run.status == RunStatus::Running;
    let queued = running
        && run.progress.is_none()
        && data
            .job
            .as_ref()
            .is_some_and(|j| j.status == JobStatus::Queued);
    let badge = if queued {
        html! { span.badge.status-queued { "queued" } }
    } else {
        status_badge(run.status)
    };
    let body = html! {
        @if running {
            // The page reloads itself while the run trains.
            div.progress data-reload="3000" {
                (badge) " "
                @if let Some(progress) = &run.progress { (progress_text(progress)) }
                @else if data.job.as_ref().is_some_and(|j| j.status == JobStatus::Queued) { "queued: waiting for a worker" }
                @else { "waiting to start" }
            }
        }
        dl.facts {
            dt { "Status" } dd { (badge) }
            dt { "Started" } dd { (timestamp(run.created_at)) }
            @if let Some(finished) = run.finished_at { dt { "Finished" } dd { (timestamp(finished)) } }
            dt { "Backbone" } dd { (run.backbone) }
            @if run.folds > 0 { dt { "Out-of-fold" } dd { (run.folds) " folds: train scores and mistags use models that never saw the image" } }
            @for (term, text) in training_facts(&data.config, data.summary.as_ref()) { dt { (term) } dd { (text) } }
            @if let Some(parent) = run.parent_run { dt { "Retrain of" } dd { a href=(format!("/runs/{parent}")) { "#" (parent) } " · " a href=(format!("/runs/compare?a={parent}&b={}", run.id)) { "compare with it" } } }
            @if !data.retrains.is_empty() { dt { "Retrained as" } dd { @for id in &data.retrains { a href=(format!("/runs/{id}")) { "#" (id) } " " } } }
            @if let Some(model) = &data.model_ref { dt { "Model" } dd { code { (model) } } }
            @if let Some(job) = &data.job { dt { "Job" } dd { (job_fact(job)) } }
            @if let Some(error) = &run.error { dt { "Error" } dd.error { (error) } }
        }
        @if !data.facets.is_empty() {
            h2 { "Facets" }
            table.scores {
                thead { tr { th { "Facet" } th { "Train macro-F1" } th { "Test macro-F1" } th { "Test accuracy" } th {} } }
                tbody {
                    @for facet in &data.facets {
                        tr {
                            td { a href=(format!("/runs/{}/facets/{}", run.id, url_encode(&facet.facet))) { (facet.facet) } }
                            td { (score(facet.train.as_ref().map(|m| m.macro_f1))) }
                            td { strong { (score(facet.test.as_ref().map(|m| m.macro_f1))) } }
                            td { (score(facet.test.as_ref().map(|m| m.accuracy))) }
                            td { a href=(format!("/runs/{}/facets/{}", run.id, url_encode(&facet.facet))) { "F1 view, errors →" } }
                        }
                    }
                }
            }
            p { a.button href=(format!("/runs/{}/mistags", run.id)) { "Suspected mistags →" } }
        }
        @if let Some(evaluation) = &data.similarity { (retrieval::table(evaluation)) }
        @if run.status == RunStatus::Interrupted {
            section.interrupted {
                h2 { "Interrupted" }
                p { "The process that trained this run stopped before it finished (a crash or a restart). "
                    "Resuming goes on from its last checkpoint; marking it failed ends it for good." }
                @if user.role >= Role::Reviewer {
                    form.inline method="post" action=(format!("/runs/{}/resume", run.id)) {
                        input type="hidden" name="csrf" value=(user.csrf_token);
                        button type="submit" { "Resume" }
                    }
                    form.inline method="post" action=(format!("/runs/{}/fail", run.id)) {
                        input type="hidden" name="csrf" value=(user.csrf_token);
                        button.secondary type="submit" { "Mark failed" }
                    }
                } @else {
                    p.muted { "A reviewer can resume it or mark it failed." }
                }
            }
        }
        @if user.role >= Role::Reviewer && matches!(run.status, RunStatus::Completed | RunStatus::Failed) {
            form.retrain method="post" action=(format!("/runs/{}/retrain", run.id)) {
                input type="hidden" name="csrf" value=(user.csrf_token);
                p.muted { "Retrain with this run's settings on the current labels (your fixes included"
                    @if run.kind == SIMILARITY_RUN { ", boxes and triplets" } "). It trains in the background; the new run's page shows its progress." }
                button type="submit" { "Retrain" }
            }
        }
    };
    page(
        &format!("Run #{}", run.id),
        user,
        &[("Runs".into(), "/runs".into())],
        body,
    )
}

#[derive(Deserialize)]
pub struct CompareQuery {
    a: i64,
    b: i64,
}

/// One class in both runs.
#[derive(Debug, Serialize)]
pub struct ClassCompare {
    pub label: String,
    pub train_a: Option<f64>,
    pub train_b: Option<f64>,
    pub test_a: Option<f64>,
    pub test_b: Option<f64>,
    pub test_delta: Option<f64>,
    pub train_delta: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct FacetCompare {
    pub facet: String,
    pub test_macro_a: Option<f64>,
    pub test_macro_b: Option<f64>,
    pub test_macro_delta: Option<f64>,
    pub classes: Vec<ClassCompare>,
}

#[derive(Debug, Serialize)]
pub struct ComparePage {
    pub a: i64,
    pub b: i64,
    pub facets: Vec<FacetCompare>,
    /// For two similarity runs: their trained embeddings' numbers.
    pub retrieval: Vec<retrieval::MetricCompare>,
}

fn diff(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(b? - a?)
}

fn class_f1(metrics: Option<&SplitMetrics>, label: &str) -> Option<f64> {
    metrics?
        .per_class
        .iter()
        .find(|c| c.label == label)
        .map(|c| c.f1)
}

pub async fn compare(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Query(query): Query<CompareQuery>,
) -> Result<Response, WebError> {
    let mut runs = Vec::new();
    let mut evaluations = Vec::new();
    for id in [query.a, query.b] {
        evaluations.push(retrieval::evaluation(&find_run(&state, id).await?));
        let facets: HashMap<String, RunFacet> = state
            .catalog
            .run_facets(id)
            .await?
            .into_iter()
            .map(|r| (r.facet.clone(), RunFacet::from_result(r)))
            .collect();
        runs.push(facets);
    }
    let (a, b) = (&runs[0], &runs[1]);
    let mut names: Vec<&String> = b.keys().filter(|f| a.contains_key(*f)).collect();
    names.sort();
    let facets = names
        .into_iter()
        .map(|name| {
            let (fa, fb) = (&a[name], &b[name]);
            let classes = fb
                .labels
                .iter()
                .chain(fa.labels.iter().filter(|l| !fb.labels.contains(l)))
                .map(|label| {
                    let train_a = class_f1(fa.train.as_ref(), label);
                    let train_b = class_f1(fb.train.as_ref(), label);
                    let test_a = class_f1(fa.test.as_ref(), label);
                    let test_b = class_f1(fb.test.as_ref(), label);
                    ClassCompare {
                        label: label.clone(),
                        train_a,
                        train_b,
                        test_a,
                        test_b,
                        test_delta: diff(test_a, test_b),
                        train_delta: diff(train_a, train_b),
                    }
                })
                .collect();
            let test_macro_a = fa.test.as_ref().map(|m| m.macro_f1);
            let test_macro_b = fb.test.as_ref().map(|m| m.macro_f1);
            FacetCompare {
                facet: name.clone(),
                test_macro_a,
                test_macro_b,
                test_macro_delta: diff(test_macro_a, test_macro_b),
                classes,
            }
        })
        .collect();
    let data = ComparePage {
        a: query.a,
        b: query.b,
        facets,
        retrieval: match (&evaluations[0], &evaluations[1]) {
            (Some(a), Some(b)) => retrieval::compare(a, b),
            _ => Vec::new(),
        },
    };
    Ok(respond(format, &data, |data| render_compare(data, &user)))
}

fn render_compare(data: &ComparePage, user: &User) -> Markup {
    let (a, b) = (data.a, data.b);
    let body = html! {
        p.muted { "F1 per class of run " a href=(format!("/runs/{a}")) { "#" (a) } " (A) and run "
            a href=(format!("/runs/{b}")) { "#" (b) } " (B). Δ = B − A: " span.delta.up { "green" } " is better, " span.delta.down { "red" } " is worse." }
        @if !data.retrieval.is_empty() { (retrieval::compare_table(&data.retrieval)) }
        @if data.facets.is_empty() && data.retrieval.is_empty() { p.empty { "The two runs have no facet in common." } }
        @for facet in &data.facets {
            h2 { (facet.facet) " " span.muted { "test macro-F1 " (score(facet.test_macro_a)) " → " (score(facet.test_macro_b)) " " } (delta(facet.test_macro_delta)) }
            table.compare {
                thead {
                    tr { th rowspan="2" { "Class" } th colspan="3" { "Test F1" } th colspan="3" { "Train F1" } }
                    tr { th { "A" } th { "B" } th { "Δ" } th { "A" } th { "B" } th { "Δ" } }
                }
                tbody {
                    @for class in &facet.classes {
                        tr {
                            td { (class.label) }
                            td { (score(class.test_a)) } td { (score(class.test_b)) } td { (delta(class.test_delta)) }
                            td { (score(class.train_a)) } td { (score(class.train_b)) } td { (delta(class.train_delta)) }
                        }
                    }
                }
            }
        }
    };
    page(
        &format!("Compare runs #{a} and #{b}"),
        user,
        &[("Runs".into(), "/runs".into())],
        body,
    )
}

/// Where a run write sends its caller: the run's JSON, or back to its page.
fn run_answer(format: Format, run: i64, status: RunStatus) -> Response {
    match format {
        Format::Json => {
            axum::Json(serde_json::json!({ "run": run, "status": status })).into_response()
        }
        Format::Html => Redirect::to(&format!("/runs/{run}")).into_response(),
    }
}

/// A reviewer's write to run `run` (resume, mark failed): checks the role and the CSRF token,
/// then finds the run.
async fn run_write(
    state: &AppState,
    user: &User,
    run: i64,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<RunRecord, WebError> {
    let _: serde::de::IgnoredAny = body::write(user, Role::Reviewer, headers, body)?;
    find_run(state, run).await
}

/// Resumes an interrupted run (or a failed one) from its last checkpoint, in the background.
pub async fn resume(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Path(run): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let record = run_write(&state, &user, run, &headers, &body).await?;
    if !matches!(record.status, RunStatus::Interrupted | RunStatus::Failed) {
        return Err(WebError::Conflict {
            message: format!(
                "run #{run} is {}; only an interrupted or failed run can be resumed",
                record.status
            ),
            current: serde_json::json!({ "run": run, "status": record.status }),
        });
    }
    let job = jobs::queue_run(&state.catalog, run, &user.name).await?;
    tracing::info!("{} resumed run {run} (job {job})", user.name);
    Ok(run_answer(format, run, record.status))
}

/// Ends an interrupted run as failed.
pub async fn mark_failed(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Path(run): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let record = run_write(&state, &user, run, &headers, &body).await?;
    let why = record.error.as_deref().unwrap_or("interrupted");
    state
        .catalog
        .fail_interrupted_run(run, &format!("marked failed by {}: {why}", user.name))
        .await?;
    Ok(run_answer(format, run, RunStatus::Failed))
}

/// Starts a retrain of `run` with its settings on the current labels.
pub async fn retrain(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Path(run): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let _: serde::de::IgnoredAny = body::write(&user, Role::Reviewer, &headers, &body)?;
    let new_run = any_run::create_retrain(&state.catalog, run, &state.config.run_paths).await?;
    let job = jobs::queue_run(&state.catalog, new_run, &user.name).await?;
    tracing::info!(
        "{} started run {new_run}, a retrain of run {run} (job {job})",
        user.name
    );
    Ok(match format {
        Format::Json => axum::Json(serde_json::json!({
            "run": new_run,
            "parent_run": run,
            "job": job,
        }))
        .into_response(),
        Format::Html => Redirect::to(&format!("/runs/{new_run}")).into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::progress_text;
    use serde_json::json;

    #[test]
    fn progress_names_the_epoch_once() {
        let training =
            json!({"phase": "epoch 1/15", "epoch": 1, "epochs": 15, "fold": null, "folds": 0});
        assert_eq!(progress_text(&training), "epoch 1/15");
        let features =
            json!({"phase": "features", "epoch": 0, "epochs": 15, "fold": 2, "folds": 3});
        assert_eq!(progress_text(&features), "features · epoch 0/15 · fold 2/3");
    }
}
