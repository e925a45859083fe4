//! Jobs: heavy work queued in the catalogue instead of done in the process that asked for it,
//! and the worker that takes it, for `atelier worker` on any machine and the worker inside
//! `atelier serve` alike. A worker takes one job at a time (training uses every core), renews
//! its lease every [`lease::HEARTBEAT`], stops a job that was cancelled, and records the job's
//! end once. When a worker dies, the next worker that asks takes its job again: at once when
//! the dead worker ran on the same machine, otherwise after its lease ran out; a training job
//! then resumes from its run's last checkpoint (in the store when workers mirror them, see
//! [`crate::checkpoint_mirror`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use atelier_catalog::{
    Catalog, CatalogError, ImportOptions, JobRecord, JobStatus, NewJob, RunStatus,
};
use atelier_train::DeviceChoice;
use atelier_train::progress::{EpochRecord, Observer, RunStart};
use atelier_vision::decode::DecodeLimits;
use serde::Serialize;
use serde_json::{Value, json};

use crate::ann::IndexFiles;
use crate::error::AppError;
use crate::runner::{RunPaths, find_run};
use crate::{any_run, check, lease, similar};

/// What kind of work a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Train a recorded run (facets or similarity, a retrain or a resume) to the end.
    Train,
    /// Bring a similarity run's embeddings (and approximate index) in step with the catalogue.
    Index,
    /// Decode every image and quarantine the unusable ones.
    Check,
    /// Synchronise the catalogue with a manifest or folder tree (in S3, or a path that every
    /// worker taking imports can read).
    Import,
}

impl JobKind {
    pub const ALL: [JobKind; 4] = [
        JobKind::Train,
        JobKind::Index,
        JobKind::Check,
        JobKind::Import,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Train => "train",
            JobKind::Index => "index",
            JobKind::Check => "check",
            JobKind::Import => "import",
        }
    }

    pub fn parse(text: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// What a worker does and where it keeps its files.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The kinds of job it takes.
    pub kinds: Vec<JobKind>,
    /// Checkpoints, models, feature cache and store of the runs it trains.
    pub paths: RunPaths,
    /// Where similarity runs' approximate indexes live (`None`: exact scans only).
    pub index_files: Option<IndexFiles>,
    /// How long an idle worker waits before it looks for jobs again (PostgreSQL also wakes it
    /// when a job is queued).
    pub poll: Duration,
    /// The device it trains on: it takes only the runs recorded for that device (and every
    /// job that needs none).
    pub device: DeviceChoice,
}

impl WorkerConfig {
    /// Every kind, on the CPU, looking for jobs every two seconds when idle.
    pub fn new(paths: RunPaths, index_files: Option<IndexFiles>) -> WorkerConfig {
        WorkerConfig {
            kinds: JobKind::ALL.to_vec(),
            paths,
            index_files,
            poll: Duration::from_secs(2),
            device: DeviceChoice::Cpu,
        }
    }
}

/// The device recorded run `record` trains on.
fn run_device(record: &atelier_catalog::RunRecord) -> Result<DeviceChoice, AppError> {
    Ok(match record.kind.as_str() {
        crate::similarity::SIMILARITY_RUN => {
            crate::similarity::stored_similarity_config(record)?.device
        }
        _ => crate::runner::stored_config(record)?.device,
    })
}

/// Queues the training of recorded run `run`, handing over the lease this process took when
/// it recorded the run. Returns the job id.
pub async fn queue_run(catalog: &Catalog, run: i64, requested_by: &str) -> Result<i64, AppError> {
    let device = run_device(&find_run(catalog, run).await?)?;
    Ok(catalog
        .enqueue_job(&NewJob {
            kind: JobKind::Train.as_str().into(),
            params: json!({ "run": run }),
            run_id: Some(run),
            requested_by: requested_by.into(),
            device: Some(device.name().into()),
            run_holder: Some(lease::owner().to_string()),
        })
        .await?)
}

/// Queues an import of `source` (an `s3://` manifest or prefix, or a local path, made absolute
/// here: the worker must be able to read it) with `options` (its progress callback is not
/// kept).
pub async fn queue_import(
    catalog: &Catalog,
    source: &str,
    options: &ImportOptions,
    requested_by: &str,
) -> Result<i64, AppError> {
    let source = if atelier_store::images::is_remote(source) {
        source.to_string()
    } else {
        std::path::absolute(source)
            .map_err(|e| AppError::io(std::path::Path::new(source), e))?
            .display()
            .to_string()
    };
    let params = json!({
        "source": source,
        "test_fraction": options.test_fraction,
        "allow_new_labels": options.allow_new_labels,
        "allow_missing": options.allow_missing,
        "allow_removals": options.allow_removals,
    });
    enqueue_plain(catalog, JobKind::Import, params, requested_by).await
}

/// Queues bringing similarity run `run` (`None`: the newest completed one) in step with the
/// catalogue.
pub async fn queue_index(
    catalog: &Catalog,
    run: Option<i64>,
    requested_by: &str,
) -> Result<i64, AppError> {
    enqueue_plain(catalog, JobKind::Index, json!({ "run": run }), requested_by).await
}

/// Queues a decoding check of every image with `limits`.
pub async fn queue_check(
    catalog: &Catalog,
    limits: &DecodeLimits,
    requested_by: &str,
) -> Result<i64, AppError> {
    let params = json!({
        "max_side": limits.max_side,
        "max_pixels": limits.max_pixels,
        "min_side": limits.min_side,
        "max_file_bytes": limits.max_file_bytes,
    });
    enqueue_plain(catalog, JobKind::Check, params, requested_by).await
}

async fn enqueue_plain(
    catalog: &Catalog,
    kind: JobKind,
    params: Value,
    requested_by: &str,
) -> Result<i64, AppError> {
    Ok(catalog
        .enqueue_job(&NewJob {
            kind: kind.as_str().into(),
            params,
            run_id: None,
            requested_by: requested_by.into(),
            device: None,
            run_holder: None,
        })
        .await?)
}

/// The limits a check job was queued with (the defaults for those it does not name).
fn check_limits(params: &Value) -> DecodeLimits {
    let defaults = DecodeLimits::default();
    let number = |name: &str| params[name].as_u64();
    DecodeLimits {
        max_side: number("max_side").map_or(defaults.max_side, |v| v as u32),
        max_pixels: number("max_pixels").unwrap_or(defaults.max_pixels),
        min_side: number("min_side").map_or(defaults.min_side, |v| v as u32),
        max_file_bytes: number("max_file_bytes").unwrap_or(defaults.max_file_bytes),
    }
}

/// Job `job`, or an error naming it.
pub async fn find_job(catalog: &Catalog, job: i64) -> Result<JobRecord, AppError> {
    Ok(catalog
        .job(job)
        .await?
        .ok_or(CatalogError::UnknownJob(job))?)
}

/// Works until `stop` turns true: takes jobs of `config.kinds` one at a time, waiting for new
/// ones when there are none. Errors of single jobs are recorded with them; only failures to
/// reach the catalogue end the loop, after a few tries.
pub async fn work(
    catalog: &Catalog,
    config: &WorkerConfig,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), AppError> {
    let mut waiter = catalog.job_waiter().await?;
    let mut failures = 0;
    while !*stop.borrow() {
        match run_next(catalog, config).await {
            Ok(Some(_)) => failures = 0,
            Ok(None) => {
                failures = 0;
                let mut stopped = stop.clone();
                tokio::select! {
                    () = waiter.wait(config.poll) => {}
                    _ = stopped.changed() => {}
                }
            }
            Err(error) if failures < 5 => {
                failures += 1;
                tracing::warn!("worker: {error}; trying again");
                tokio::time::sleep(config.poll).await;
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Takes the next job this worker may do, does it and records its end; `None` when there was
/// none. The returned record is the job as it ended.
pub async fn run_next(
    catalog: &Catalog,
    config: &WorkerConfig,
) -> Result<Option<JobRecord>, AppError> {
    let kinds: Vec<String> = config.kinds.iter().map(|k| k.as_str().into()).collect();
    let device = config.device.name();
    let Some(job) = catalog
        .claim_job(
            lease::owner(),
            &kinds,
            device,
            lease::expiry(),
            &lease::owner_is_gone,
        )
        .await?
    else {
        return Ok(None);
    };
    tracing::info!(
        "worker {}: job {} ({}), attempt {}",
        lease::owner(),
        job.id,
        job.kind,
        job.attempts
    );
    let flags = Flags::default();
    let heartbeat = tokio::spawn(beat(catalog.clone(), job.id, flags.clone()));
    let outcome = execute(catalog, config, &job, &flags).await;
    heartbeat.abort();
    record_end(catalog, &job, &flags, outcome).await?;
    Ok(catalog.job(job.id).await?)
}

/// What the heart-beat tells the work, and the progress it carries to the job's row.
#[derive(Clone, Default)]
struct Flags {
    cancelled: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
    progress: Arc<std::sync::Mutex<Option<Value>>>,
}

impl Flags {
    fn stop(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst) || self.lost.load(Ordering::SeqCst)
    }
}

/// Renews the job's lease every heart-beat until aborted; raises the flags when a cancel was
/// asked for or the job was lost.
async fn beat(catalog: Catalog, job: i64, flags: Flags) {
    let mut ticks = tokio::time::interval(lease::HEARTBEAT);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let progress = flags
            .progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match catalog
            .renew_job(job, lease::owner(), lease::expiry(), progress.as_ref())
            .await
        {
            Ok(beat) => {
                if beat.cancel_requested {
                    flags.cancelled.store(true, Ordering::SeqCst);
                }
                if !beat.held {
                    flags.lost.store(true, Ordering::SeqCst);
                }
            }
            Err(error) => tracing::warn!("could not renew the lease of job {job}: {error}"),
        }
    }
}

/// Does the job's work; the result is stored with the job.
async fn execute(
    catalog: &Catalog,
    config: &WorkerConfig,
    job: &JobRecord,
    flags: &Flags,
) -> Result<Value, AppError> {
    match JobKind::parse(&job.kind) {
        Some(JobKind::Train) => train(catalog, config, job, flags).await,
        Some(JobKind::Index) => {
            let run = job.params["run"].as_i64();
            let report =
                similar::index(catalog, run, config.index_files.as_ref(), config.device).await?;
            Ok(serde_json::to_value(report).unwrap_or_default())
        }
        Some(JobKind::Check) => {
            let limits = check_limits(&job.params);
            let summary = check::check_catalog(catalog, limits, |_| {}, Arc::new(|| {})).await?;
            Ok(json!({
                "checked": summary.checked,
                "ok": summary.ok,
                "quarantined": summary.quarantined,
            }))
        }
        Some(JobKind::Import) => import(catalog, job, flags).await,
        None => Err(AppError::Invalid(format!(
            "job {} is of kind `{}`, which this worker does not know (an older atelier?)",
            job.id, job.kind
        ))),
    }
}

/// Imports the job's source with its options; the rows done so far go to the job's progress.
async fn import(catalog: &Catalog, job: &JobRecord, flags: &Flags) -> Result<Value, AppError> {
    let params = &job.params;
    let source = params["source"]
        .as_str()
        .ok_or_else(|| AppError::Invalid(format!("import job {} names no source", job.id)))?;
    let progress = flags.progress.clone();
    let defaults = ImportOptions::default();
    let options = ImportOptions {
        test_fraction: params["test_fraction"]
            .as_f64()
            .unwrap_or(defaults.test_fraction),
        allow_new_labels: params["allow_new_labels"].as_bool().unwrap_or(false),
        allow_missing: params["allow_missing"].as_bool().unwrap_or(false),
        allow_removals: params["allow_removals"].as_bool().unwrap_or(false),
        on_progress: Some(Arc::new(move |p: atelier_catalog::ImportProgress| {
            let value = json!({"phase": "import", "done": p.rows_done, "total": p.rows_total});
            *progress.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
        })),
        ..defaults
    };
    let report =
        crate::images::import(catalog, source, &options, crate::images::resolver()).await?;
    Ok(serde_json::to_value(&report).unwrap_or_default())
}

/// Trains the job's run; a run that already completed (its worker died after finishing it
/// but before ending the job) is not trained again.
async fn train(
    catalog: &Catalog,
    config: &WorkerConfig,
    job: &JobRecord,
    flags: &Flags,
) -> Result<Value, AppError> {
    let run = job
        .run_id
        .ok_or_else(|| AppError::Invalid(format!("training job {} names no run", job.id)))?;
    let mut held_tries = 0;
    loop {
        let record = find_run(catalog, run).await?;
        if record.status == RunStatus::Completed {
            return Ok(json!({ "run": run, "model": record.model_ref }));
        }
        let observer = Box::new(JobObserver {
            flags: flags.clone(),
        });
        match any_run::execute(catalog, run, &config.paths, observer).await {
            Ok(model_dir) => return Ok(json!({ "run": run, "model": model_dir })),
            // The run's last holder (on another machine) has not let go yet: its lease runs
            // out within one lease time, while this worker keeps the job.
            Err(AppError::Catalog(CatalogError::RunHeld { seconds_left, .. }))
                if held_tries < 3 && seconds_left <= lease::LEASE_TTL.as_secs() as i64 =>
            {
                held_tries += 1;
                tokio::time::sleep(Duration::from_secs(seconds_left as u64 + 1)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Ends the job as its work ended: succeeded, cancelled (when a cancel stopped it) or failed.
/// A worker that lost the job records nothing.
async fn record_end(
    catalog: &Catalog,
    job: &JobRecord,
    flags: &Flags,
    outcome: Result<Value, AppError>,
) -> Result<(), AppError> {
    if flags.lost.load(Ordering::SeqCst) {
        tracing::warn!(
            "job {} was taken over by another worker; its end is theirs",
            job.id
        );
        return Ok(());
    }
    let cancelled = flags.cancelled.load(Ordering::SeqCst);
    let (status, result, error) = match outcome {
        Ok(result) => (JobStatus::Succeeded, Some(result), None),
        Err(error) if cancelled => {
            let why = catalog.job(job.id).await?.and_then(|j| j.error);
            tracing::info!("job {} cancelled: {error}", job.id);
            (
                JobStatus::Cancelled,
                None,
                Some(why.unwrap_or_else(|| "cancelled".into())),
            )
        }
        Err(error) => {
            tracing::error!("job {} failed: {error}", job.id);
            (JobStatus::Failed, None, Some(error.to_string()))
        }
    };
    let ended = catalog
        .finish_job(
            job.id,
            lease::owner(),
            status,
            result.as_ref(),
            error.as_deref(),
        )
        .await;
    match ended {
        Err(CatalogError::JobLost { .. }) => {
            tracing::warn!("job {} was taken over before it could be recorded", job.id);
            Ok(())
        }
        other => Ok(other?),
    }
}

/// Stops training when the job is cancelled or lost.
struct JobObserver {
    flags: Flags,
}

impl Observer for JobObserver {
    fn run_start(&mut self, _start: &RunStart) {}
    fn epoch_end(&mut self, _record: &EpochRecord) {}
    fn stop_requested(&self) -> bool {
        self.flags.stop()
    }
}
