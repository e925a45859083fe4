//! The Crowd pages: the batches with their progress; one batch's aggregation (the worker table,
//! the disputed tasks with their votes) and, for reviewers, the apply action; and reviewers
//! answering a batch's tasks themselves (one photo, the labels as buttons, keys 1–9), their
//! answers stored as votes like any worker's.

use atelier_app::crowd::{self, Aggregation, ApplyReport};
use atelier_catalog::{CrowdBatch, CrowdTask, Role};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::User;
use crate::error::WebError;
use crate::format::{Format, respond};
use crate::pages::body;
use crate::views::layout::page;
use crate::views::{short_id, thumbnail, timestamp};

/// The posterior under which a task counts as disputed on the page (what `apply` defaults to).
const DISPUTED_BELOW: f64 = 0.9;

#[derive(Debug, Serialize)]
pub struct BatchesPage {
    pub batches: Vec<CrowdBatch>,
}

pub async fn list(
    State(state): State<AppState>,
    user: User,
    format: Format,
) -> Result<Response, WebError> {
    let data = BatchesPage {
        batches: state.catalog.crowd_batches().await?,
    };
    Ok(respond(format, &data, |data| render_list(data, &user)))
}

fn render_list(data: &BatchesPage, user: &User) -> Markup {
    let body = html! {
        @if data.batches.is_empty() {
            p.empty { "No crowd batches yet. Export one with " code { "atelier crowd export" } "." }
        } @else {
            table.crowd {
                thead { tr { th { "Batch" } th { "Tasks from" } th { "Tasks" } th { "Votes" } th { "Exported" } } }
                tbody {
                    @for batch in &data.batches {
                        tr {
                            td { a href=(format!("/crowd/{}", batch.id)) { "#" (batch.id) } }
                            td { (batch.source) @if let Some(run) = batch.run_id { " of " a href=(format!("/runs/{run}")) { "run #" (run) } } }
                            td { (batch.tasks) }
                            td { (batch.votes) " of " (batch.tasks * batch.votes_per_task) " asked" }
                            td { (timestamp(batch.created_at)) span.muted { " by " (batch.created_by) } }
                        }
                    }
                }
            }
        }
    };
    page("Crowd", user, &[], body)
}

#[derive(Debug, Serialize)]
pub struct BatchPage {
    pub aggregation: Aggregation,
    /// Tasks whose aggregated label has a posterior under 0.9.
    pub disputed: usize,
}

pub async fn show(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Path(batch): Path<i64>,
) -> Result<Response, WebError> {
    let aggregation = crowd::aggregate(&state.catalog, batch).await?;
    let disputed = aggregation
        .tasks
        .iter()
        .filter(|t| t.gold_label.is_none() && t.posterior < DISPUTED_BELOW)
        .count();
    let data = BatchPage {
        aggregation,
        disputed,
    };
    Ok(respond(format, &data, |data| render_batch(data, &user)))
}

fn render_batch(data: &BatchPage, user: &User) -> Markup {
    let batch = data.aggregation.batch;
    let disputed: Vec<_> = data
        .aggregation
        .tasks
        .iter()
        .filter(|t| t.gold_label.is_none() && t.posterior < DISPUTED_BELOW)
        .collect();
    let body = html! {
        p.muted {
            (data.aggregation.tasks.len()) " answered tasks, " (data.aggregation.unanswered) " unanswered, "
            (data.disputed) " disputed (posterior under 0.9). Labels are Dawid–Skene's over all facets: each worker's confusion is estimated per facet, drawn towards their accuracy over every facet; the current labels count as one more worker, (catalogue); gold answers are held fixed."
        }
        @if user.role >= Role::Reviewer {
            p { a.button href=(format!("/crowd/{batch}/answer")) { "Answer tasks →" } }
            form.inline method="post" action=(format!("/crowd/{batch}/apply")) {
                input type="hidden" name="csrf" value=(user.csrf_token);
                label { "Apply labels with a posterior of at least " input type="number" name="min_posterior" value="0.9" min="0" max="1" step="0.01"; }
                " " button type="submit" { "Apply" }
            }
        }
        h2 { "Workers" }
        p.muted { code { "(catalogue)" } " is the batch's current labels counted as one more worker: its estimated accuracy says how often they are right (low for a batch taken from the top of the mistag queue)." }
        table.workers {
            thead { tr { th { "Worker" } th { "Facet" } th { "Votes" } th { "Estimated accuracy" } th { "Gold accuracy" } th { "Agreement" } } }
            tbody {
                @for worker in &data.aggregation.workers {
                    tr {
                        td { code { (worker.worker) } } td { (worker.facet) } td { (worker.votes) }
                        td { (format!("{:.2}", worker.accuracy)) }
                        td { (worker.gold_accuracy.map_or("–".to_string(), |g| format!("{g:.2}"))) }
                        td { (format!("{:.2}", worker.agreement)) }
                    }
                }
            }
        }
        h2 { "Disputed tasks" }
        @if disputed.is_empty() { p.empty { "None." } }
        div.cards {
            @for task in disputed {
                article.card {
                    (thumbnail(&task.image_id, None))
                    div.meta {
                        a.mono href=(format!("/images/{}", task.image_id)) { (short_id(&task.image_id)) }
                        div { (task.facet) ": " strong { (task.label) } " at " (format!("{:.2}", task.posterior)) }
                        div.muted { "now " (task.current_label.as_deref().unwrap_or("–")) " · votes: "
                            @for (worker, label) in &task.votes { (label) " (" (worker) ") " } }
                    }
                }
            }
        }
    };
    page(
        &format!("Crowd batch #{batch}"),
        user,
        &[("Crowd".into(), "/crowd".into())],
        body,
    )
}

#[derive(Deserialize)]
struct ApplyForm {
    #[serde(default, deserialize_with = "crate::pages::body::loose::optional_f64")]
    min_posterior: Option<f64>,
}

/// Applies a batch (reviewers).
pub async fn apply(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Path(batch): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let form: ApplyForm = body::write(&user, Role::Reviewer, &headers, &body)?;
    let min = form.min_posterior.unwrap_or(DISPUTED_BELOW);
    let report: ApplyReport = crowd::apply(&state.catalog, batch, min, &user.name).await?;
    tracing::info!(
        "{} applied crowd batch {batch}: {} changed",
        user.name,
        report.changed
    );
    Ok(match format {
        Format::Json => axum::Json(report).into_response(),
        Format::Html => Redirect::to(&format!("/crowd/{batch}")).into_response(),
    })
}

#[derive(Debug, Serialize)]
pub struct AnswerPage {
    pub batch: i64,
    /// The next task for this reviewer; `None` when they answered them all.
    pub task: Option<CrowdTask>,
}

pub async fn answer_form(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Path(batch): Path<i64>,
) -> Result<Response, WebError> {
    let worker = crowd::reviewer_worker(&user.name);
    let task = crowd::next_task_for(&state.catalog, batch, &worker).await?;
    let data = AnswerPage { batch, task };
    Ok(respond(format, &data, |data| render_answer(data, &user)))
}

fn render_answer(data: &AnswerPage, user: &User) -> Markup {
    let batch = data.batch;
    let body = html! {
        @match &data.task {
            None => p.empty { "You answered every task of this batch. " a href=(format!("/crowd/{batch}")) { "Back to the batch" } },
            Some(task) => {
                p { "Which " strong { (task.facet) } " does this dress have?" }
                form.crowd-answer method="post" action=(format!("/crowd/{batch}/answer")) {
                    input type="hidden" name="csrf" value=(user.csrf_token);
                    input type="hidden" name="token" value=(task.token);
                    img.task src=(format!("/images/{}/file", task.image_id)) alt="the dress to label";
                    div.answers {
                        @for (i, label) in task.labels.iter().enumerate() {
                            button type="submit" name="label" value=(label) data-key=(i + 1) { kbd { (i + 1) } " " (label) }
                        }
                    }
                    p.keys { kbd { "1" } "…" kbd { "9" } " answer" }
                }
            }
        }
    };
    page(
        &format!("Crowd batch #{batch}: answer"),
        user,
        &[
            ("Crowd".into(), "/crowd".into()),
            (format!("Batch #{batch}"), format!("/crowd/{batch}")),
        ],
        body,
    )
}

#[derive(Deserialize)]
struct Answer {
    token: String,
    label: String,
}

/// Stores a reviewer's answer as their vote, then the page goes on to the next task.
pub async fn answer(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Path(batch): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let answer: Answer = body::write(&user, Role::Reviewer, &headers, &body)?;
    let task = state.catalog.crowd_task(&answer.token).await?;
    if task.as_ref().is_none_or(|t| t.batch_id != batch) {
        return Err(WebError::NotFound(format!(
            "batch {batch} has no task {:?}",
            answer.token
        )));
    }
    let added = crowd::answer(&state.catalog, &answer.token, &user.name, &answer.label).await?;
    Ok(match format {
        Format::Json => axum::Json(serde_json::json!({ "added": added })).into_response(),
        Format::Html => Redirect::to(&format!("/crowd/{batch}/answer")).into_response(),
    })
}
