//! `atelier worker` and `atelier jobs`: parsing the options, printing jobs; the queue and the
//! worker loop are `atelier_app::jobs`.

use std::time::Duration;

use atelier_app::jobs::{self, JobKind, WorkerConfig};
use atelier_catalog::{Catalog, JobRecord, JobStatus, now_millis};
use serde_json::json;

use crate::args::{GlobalArgs, JobKindArg, JobStatusArg, JobsAction, JobsArgs, WorkerArgs};
use crate::commands::{similar, train};
use crate::error::{CliError, CliResult};
use crate::output::print_json;

/// Works until killed (or, with `--until-idle`, until no job is left).
pub async fn worker(catalog: &Catalog, args: &WorkerArgs, global: &GlobalArgs) -> CliResult {
    if !(args.poll.is_finite() && args.poll > 0.0) {
        return Err(CliError::bad_input(format!(
            "--poll {}: give a number of seconds above 0, such as 2",
            args.poll
        )));
    }
    let mut paths = train::run_paths(&args.checkpoint_dir, &global.store)?;
    paths.mirror_checkpoints = true;
    let mut config = WorkerConfig::new(
        paths,
        Some(similar::index_files(global.db_url(), &args.ann)),
    );
    if !args.kinds.is_empty() {
        config.kinds = args.kinds.iter().map(|k| job_kind(*k)).collect();
    }
    config.poll = Duration::from_secs_f64(args.poll);
    // A device this build cannot use is refused now, not at the first job.
    crate::commands::train::check_device(args.device)?;
    config.device = args.device;
    let kinds: Vec<&str> = config.kinds.iter().map(|k| k.as_str()).collect();
    eprintln!(
        "worker {} takes {} jobs from {} (store {})",
        atelier_app::lease::owner(),
        kinds.join(", "),
        global.db_url(),
        global.store
    );
    if args.until_idle {
        let mut done = Vec::new();
        while let Some(job) = jobs::run_next(catalog, &config).await? {
            done.push(job);
        }
        return report_done(&done, global.json);
    }
    // Stopping a worker is killing it: its job is taken over from its last checkpoint, at
    // once by a worker on this machine, after the lease time by one elsewhere.
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    jobs::work(catalog, &config, stopped).await?;
    Ok(())
}

fn report_done(done: &[JobRecord], json: bool) -> CliResult {
    if json {
        return print_json(&json!({ "jobs": done }));
    }
    for job in done {
        println!("{}", line(job, now_millis()));
    }
    Ok(())
}

fn job_kind(kind: JobKindArg) -> JobKind {
    match kind {
        JobKindArg::Train => JobKind::Train,
        JobKindArg::Index => JobKind::Index,
        JobKindArg::Check => JobKind::Check,
        JobKindArg::Import => JobKind::Import,
    }
}

fn job_status(status: JobStatusArg) -> JobStatus {
    match status {
        JobStatusArg::Queued => JobStatus::Queued,
        JobStatusArg::Running => JobStatus::Running,
        JobStatusArg::Succeeded => JobStatus::Succeeded,
        JobStatusArg::Failed => JobStatus::Failed,
        JobStatusArg::Cancelled => JobStatus::Cancelled,
    }
}

pub async fn run(catalog: &Catalog, args: &JobsArgs, json: bool) -> CliResult {
    match &args.action {
        JobsAction::List { status, limit } => {
            let found = catalog.jobs(status.map(job_status), *limit).await?;
            if json {
                return print_json(&json!({ "jobs": found }));
            }
            if found.is_empty() {
                println!("no jobs");
            }
            let now = now_millis();
            for job in &found {
                println!("{}", line(job, now));
            }
            Ok(())
        }
        JobsAction::Show { job } => {
            let record = jobs::find_job(catalog, *job).await?;
            if json {
                return print_json(&record);
            }
            println!("{}", line(&record, now_millis()));
            println!("  requested by {}", record.requested_by);
            println!("  parameters   {}", record.params);
            if let Some(progress) = &record.progress {
                println!("  progress     {progress}");
            }
            if let Some(result) = &record.result {
                println!("  result       {result}");
            }
            Ok(())
        }
        JobsAction::Cancel { job, actor } => {
            let status = catalog.cancel_job(*job, actor).await?;
            let text = match status {
                JobStatus::Cancelled => format!("job {job} cancelled"),
                _ => format!("job {job} is running: its worker stops at its next heart-beat"),
            };
            answer(json, json!({ "job": job, "status": status }), &text)
        }
        JobsAction::Retry { job } => {
            catalog.retry_job(*job).await?;
            answer(
                json,
                json!({ "job": job, "status": JobStatus::Queued }),
                &format!("job {job} queued again"),
            )
        }
    }
}

fn answer(json: bool, value: serde_json::Value, text: &str) -> CliResult {
    if json {
        return print_json(&value);
    }
    println!("{text}");
    Ok(())
}

/// `#7 train (run 12) running on HOST:PID:NONCE, attempt 2` and the error when there is one.
fn line(job: &JobRecord, now: i64) -> String {
    let mut text = format!("#{} {}", job.id, job.kind);
    if let Some(run) = job.run_id {
        text.push_str(&format!(" (run {run})"));
    }
    let status = if job.is_stalled(now) {
        "running, worker lost: waiting for another worker".to_string()
    } else {
        job.status.to_string()
    };
    text.push_str(&format!(" {status}"));
    if let Some(worker) = &job.worker {
        text.push_str(&format!(" · worker {worker}"));
    }
    if job.attempts > 1 {
        text.push_str(&format!(" · attempt {}", job.attempts));
    }
    if let Some(error) = &job.error {
        text.push_str(&format!(" · {error}"));
    }
    text
}

/// Prints a queued job's id (the `--queue` of `train`, `retrain`, `index` and `check`).
pub fn print_queued(job: i64, run: Option<i64>, json: bool) -> CliResult {
    if json {
        return print_json(&json!({ "job": job, "run": run, "status": JobStatus::Queued }));
    }
    match run {
        Some(run) => {
            println!("run {run} queued as job {job}; a worker (`atelier worker`) trains it")
        }
        None => println!("queued as job {job}; a worker (`atelier worker`) does it"),
    }
    Ok(())
}
