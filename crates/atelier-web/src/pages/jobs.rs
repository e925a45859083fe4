//! The job queue: queued, running and ended jobs with their worker, progress and error; a
//! reviewer cancels a queued or running job or queues a failed one again.

use atelier_app::jobs::find_job;
use atelier_catalog::{JobRecord, JobStatus, Role, now_millis};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
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
use crate::views::timestamp;

/// Jobs shown on the page.
const LISTED: usize = 200;

#[derive(Deserialize)]
pub struct JobsQuery {
    status: Option<String>,
}

/// A job as listed: the stored record, plus whether its worker was lost.
#[derive(Debug, Serialize)]
pub struct JobRow {
    #[serde(flatten)]
    pub job: JobRecord,
    /// Running, but its worker's lease ran out: it waits for another worker to resume it.
    pub stalled: bool,
    /// The training run's progress (for a training job).
    pub run_progress: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct JobsPage {
    pub status: Option<JobStatus>,
    pub jobs: Vec<JobRow>,
}

pub async fn list(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Query(query): Query<JobsQuery>,
) -> Result<Response, WebError> {
    let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(JobStatus::parse(text).ok_or_else(|| {
            WebError::BadRequest(format!(
                "status {text:?}: use queued, running, succeeded, failed or cancelled"
            ))
        })?),
    };
    let now = now_millis();
    let mut jobs = Vec::new();
    for job in state.catalog.jobs(status, LISTED).await? {
        let run_progress = match (job.status, job.run_id) {
            (JobStatus::Running, Some(run)) => {
                state.catalog.run(run).await?.and_then(|r| r.progress)
            }
            _ => None,
        };
        jobs.push(JobRow {
            stalled: job.is_stalled(now),
            job,
            run_progress,
        });
    }
    let data = JobsPage { status, jobs };
    Ok(respond(format, &data, |data| render(data, &user)))
}

fn render(data: &JobsPage, user: &User) -> Markup {
    let active = data
        .jobs
        .iter()
        .any(|row| matches!(row.job.status, JobStatus::Queued | JobStatus::Running));
    let body = html! {
        // The page follows the queue while anything waits or runs.
        @if active { div.progress data-reload="3000" { "Jobs are queued or running; this page follows them." } }
        form.filters method="get" action="/jobs" {
            label { "Status "
                select name="status" {
                    option value="" selected[data.status.is_none()] { "any" }
                    @for status in JobStatus::ALL {
                        option value=(status.as_str()) selected[data.status == Some(status)] { (status.as_str()) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        @if data.jobs.is_empty() {
            p.empty { "No jobs. Retrains started here, and " code { "--queue" } "d commands, queue jobs for the workers (" code { "atelier worker" } ")." }
        } @else {
            table.jobs {
                thead { tr { th { "Job" } th { "Kind" } th { "Status" } th { "Queued" } th { "Worker" } th { "Progress, result or error" } th {} } }
                tbody { @for row in &data.jobs { (job_row(row, user)) } }
            }
        }
    };
    page("Jobs", user, &[], body)
}

fn job_row(row: &JobRow, user: &User) -> Markup {
    let job = &row.job;
    let status = if row.stalled {
        "stalled"
    } else {
        job.status.as_str()
    };
    html! {
        tr id=(format!("job-{}", job.id)) {
            td { "#" (job.id) }
            td.kind { (job.kind) @if let Some(run) = job.run_id { " · " a href=(format!("/runs/{run}")) { "run #" (run) } } }
            td {
                span class=(format!("badge status-{status}")) { (status) }
                @if job.attempts > 1 { span.muted { " attempt " (job.attempts) } }
                @if job.cancel_requested && job.status == JobStatus::Running { span.muted { " · stopping" } }
            }
            td.queued { (timestamp(job.created_at)) br; span.muted { "by " (job.requested_by) } }
            td { @if let Some(worker) = &job.worker { code { (worker) } } }
            td.outcome {
                @if row.stalled { "its worker stopped answering; the next worker resumes it from its last checkpoint" }
                @else if let Some(progress) = &row.run_progress { (progress["phase"].as_str().unwrap_or("training")) }
                @else if let (JobStatus::Running, Some(progress)) = (job.status, &job.progress) { (job_progress(progress)) }
                @else if let Some(error) = &job.error { span.error { (error) } }
                @else if let Some(result) = &job.result { (result_text(result)) }
            }
            td { @if user.role >= Role::Reviewer { (actions(job, user)) } }
        }
    }
}

/// A job's own progress: `import · 1200 of 3000 rows`.
fn job_progress(progress: &serde_json::Value) -> String {
    let phase = progress["phase"].as_str().unwrap_or("working");
    match (progress["done"].as_u64(), progress["total"].as_u64()) {
        (Some(done), Some(total)) => format!("{phase} · {done} of {total} rows"),
        _ => phase.to_string(),
    }
}

/// A result object as `key value · key value`; anything else as JSON.
fn result_text(result: &serde_json::Value) -> String {
    match result.as_object() {
        Some(fields) => fields
            .iter()
            .filter(|(_, value)| !value.is_null())
            .map(|(key, value)| match value.as_str() {
                Some(text) => format!("{} {text}", key.replace('_', " ")),
                None => format!("{} {value}", key.replace('_', " ")),
            })
            .collect::<Vec<_>>()
            .join(" · "),
        None => result.to_string(),
    }
}

fn actions(job: &JobRecord, user: &User) -> Markup {
    html! {
        @if matches!(job.status, JobStatus::Queued | JobStatus::Running) && !job.cancel_requested {
            form.inline method="post" action=(format!("/jobs/{}/cancel", job.id)) {
                input type="hidden" name="csrf" value=(user.csrf_token);
                button.secondary type="submit" { "Cancel" }
            }
        }
        @if matches!(job.status, JobStatus::Failed | JobStatus::Cancelled) {
            form.inline method="post" action=(format!("/jobs/{}/retry", job.id)) {
                input type="hidden" name="csrf" value=(user.csrf_token);
                button type="submit" { "Retry" }
            }
        }
    }
}

/// One job (JSON twin: the stored record).
pub async fn show(
    State(state): State<AppState>,
    _user: User,
    format: Format,
    Path(job): Path<i64>,
) -> Result<Response, WebError> {
    let record = find_job(&state.catalog, job).await?;
    Ok(match format {
        Format::Json => axum::Json(record).into_response(),
        Format::Html => Redirect::to(&format!("/jobs#job-{job}")).into_response(),
    })
}

/// Cancels a queued job, or asks a running one to stop.
pub async fn cancel(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Path(job): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let _: serde::de::IgnoredAny = body::write(&user, Role::Reviewer, &headers, &body)?;
    let status = state.catalog.cancel_job(job, &user.name).await?;
    tracing::info!("{} cancelled job {job}", user.name);
    Ok(answer(format, job, status))
}

/// Queues a failed or cancelled job again.
pub async fn retry(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Path(job): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let _: serde::de::IgnoredAny = body::write(&user, Role::Reviewer, &headers, &body)?;
    state.catalog.retry_job(job).await?;
    tracing::info!("{} queued job {job} again", user.name);
    Ok(answer(format, job, JobStatus::Queued))
}

fn answer(format: Format, job: i64, status: JobStatus) -> Response {
    match format {
        Format::Json => {
            axum::Json(serde_json::json!({ "job": job, "status": status })).into_response()
        }
        Format::Html => Redirect::to("/jobs").into_response(),
    }
}
