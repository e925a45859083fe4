//! Jobs: the catalogue's queue of work for workers on any machine (training, indexing, checks,
//! imports). A job is queued ([`Catalog::enqueue_job`]), taken by exactly one worker under a
//! lease ([`Catalog::claim_job`]: `FOR UPDATE SKIP LOCKED` on PostgreSQL, one guarded write
//! on SQLite, whose writers take turns), kept by heart-beats ([`Catalog::renew_job`], which
//! also carries progress and tells the worker when a cancel was asked for) and ended once
//! ([`Catalog::finish_job`], guarded by the worker's lease, so a worker that lost its job
//! records nothing). A running job whose lease ran out, or whose worker the caller knows is
//! gone, is taken again by the next worker that asks.
//!
//! On PostgreSQL, queuing a job notifies the channel [`JOBS_CHANNEL`] in the same transaction,
//! so waiting workers wake at once; on SQLite workers poll.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::model::Backend;
use crate::runs::ensure_run_exists;
use crate::sql::{ParamStyle, assembled, now_millis, parse_json, placeholders};

/// The PostgreSQL channel that [`Catalog::enqueue_job`] notifies.
pub const JOBS_CHANNEL: &str = "atelier_jobs";

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// The status spelt as [`JobStatus::as_str`] spells it, or `None`.
    pub fn parse(value: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Whether the job has ended (succeeded, failed or cancelled).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job to queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// What kind of work it is (the application layer names the kinds).
    pub kind: String,
    /// What it works on, as the kind defines.
    pub params: Value,
    /// The run a training job trains.
    pub run_id: Option<i64>,
    /// Who asked for it: a user name, or `cli`.
    pub requested_by: String,
    /// The device a worker must train on to take it (`cpu`, `vulkan`); `None`: any worker.
    pub device: Option<String>,
    /// The process holding `run_id`'s lease (the one that recorded the run), which hands the
    /// run over to the job queue: its lease is ended in the same transaction.
    pub run_holder: Option<String>,
}

/// Everything stored about a job. Timestamps are UTC unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRecord {
    pub id: i64,
    pub kind: String,
    pub params: Value,
    pub run_id: Option<i64>,
    pub status: JobStatus,
    pub requested_by: String,
    /// The device a worker must train on to take it; `None`: any worker.
    pub device: Option<String>,
    /// The worker that holds it, or last held it.
    pub worker: Option<String>,
    /// When the holder's lease runs out unless renewed.
    pub lease_expires_at: Option<i64>,
    /// How many times a worker took it (more than one: it was resumed after a worker died).
    pub attempts: i64,
    pub cancel_requested: bool,
    pub progress: Option<Value>,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
}

impl JobRecord {
    /// A running job whose worker's lease ran out at `now`: it waits for another worker.
    pub fn is_stalled(&self, now: i64) -> bool {
        self.status == JobStatus::Running && self.lease_expires_at.is_none_or(|t| t <= now)
    }
}

/// What a worker's heart-beat learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobBeat {
    /// The worker still holds the job (false: it was taken over or ended; stop working on it).
    pub held: bool,
    /// Someone asked for the job to be cancelled.
    pub cancel_requested: bool,
}

const COLUMNS: &str = "id, kind, params, run_id, status, requested_by, device, worker, lease_expires_at, \
     attempts, cancel_requested, progress, result, error, created_at, started_at, finished_at, \
     updated_at";

/// A running job another worker may take: its lease ran out (or it has none).
const TAKEABLE: &str = "(status = 'queued' OR (status = 'running' \
     AND COALESCE(lease_expires_at, 0) <= $2))";

impl Catalog {
    /// Queues a job (checking that its run exists) and returns its id. On PostgreSQL the
    /// transaction also notifies [`JOBS_CHANNEL`].
    pub async fn enqueue_job(&self, job: &NewJob) -> Result<i64, CatalogError> {
        let context = "queuing a job";
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        if let Some(run) = job.run_id {
            ensure_run_exists(&mut tx, run).await?;
            let active = sqlx::query(
                "SELECT id FROM jobs WHERE run_id = $1 AND status IN ('queued', 'running')",
            )
            .bind(run)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(context))?;
            if let Some(row) = active {
                let job = row.try_get("id").map_err(db(context))?;
                return Err(CatalogError::RunQueued { run, job });
            }
            if let Some(holder) = &job.run_holder {
                sqlx::query(
                    "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL \
                     WHERE id = $1 AND lease_owner = $2",
                )
                .bind(run)
                .bind(holder.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db(context))?;
            }
        }
        let id: i64 = sqlx::query(
            "INSERT INTO jobs (kind, params, run_id, status, requested_by, device, created_at, \
             updated_at) VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7) RETURNING id",
        )
        .bind(job.kind.as_str())
        .bind(job.params.to_string())
        .bind(job.run_id)
        .bind(job.requested_by.as_str())
        .bind(job.device.as_deref())
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .and_then(|row| row.try_get("id"))
        .map_err(db(context))?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(JOBS_CHANNEL)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db(context))?;
        }
        tx.commit().await.map_err(db(context))?;
        Ok(id)
    }

    /// Takes the oldest job of one of `kinds`, needing no device or `device`, that is queued,
    /// or running under a lease that ran out, or running for a worker that `gone` reports dead,
    /// for `worker` until `expires_at`. `None` when there is none. Two workers asking at once
    /// never get the same job.
    pub async fn claim_job(
        &self,
        worker: &str,
        kinds: &[String],
        device: &str,
        expires_at: i64,
        gone: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Option<JobRecord>, CatalogError> {
        if kinds.is_empty() {
            return Ok(None);
        }
        self.expire_gone_workers(gone).await?;
        let now = now_millis();
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let kinds_in = placeholders(ParamStyle::Numbered, 6, kinds.len());
        let sql = format!(
            "UPDATE jobs SET status = 'running', worker = $1, lease_expires_at = $3, \
             attempts = attempts + 1, started_at = COALESCE(started_at, $4), updated_at = $4 \
             WHERE {TAKEABLE} AND id = (SELECT id FROM jobs WHERE {TAKEABLE} \
             AND cancel_requested = 0 AND (device IS NULL OR device = $5) \
             AND kind IN ({kinds_in}) ORDER BY id LIMIT 1{lock}) \
             RETURNING {COLUMNS}"
        );
        let mut query = assembled(sql)
            .bind(worker.to_string())
            .bind(now)
            .bind(expires_at)
            .bind(now)
            .bind(device.to_string());
        for kind in kinds {
            query = query.bind(kind.clone());
        }
        let row = query
            .fetch_optional(&self.pool)
            .await
            .map_err(db("taking a job"))?;
        row.as_ref().map(job_record).transpose()
    }

    /// Lets the running jobs of workers that `gone` reports dead be taken at once: their lease
    /// is ended (guarded by the holder it read, so a live worker's renewal is never undone).
    async fn expire_gone_workers(
        &self,
        gone: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<(), CatalogError> {
        let context = "finding jobs whose worker is gone";
        let now = now_millis();
        let rows = sqlx::query(
            "SELECT id, worker FROM jobs WHERE status = 'running' AND lease_expires_at > $1",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db(context))?;
        for row in rows {
            let id: i64 = row.try_get("id").map_err(db(context))?;
            let worker: Option<String> = row.try_get("worker").map_err(db(context))?;
            let Some(worker) = worker.filter(|w| gone(w)) else {
                continue;
            };
            sqlx::query(
                "UPDATE jobs SET lease_expires_at = $1 WHERE id = $2 AND worker = $3 \
                 AND status = 'running'",
            )
            .bind(now)
            .bind(id)
            .bind(worker)
            .execute(&self.pool)
            .await
            .map_err(db(context))?;
        }
        Ok(())
    }

    /// Renews `worker`'s lease on job `job` until `expires_at` and, when given, replaces its
    /// progress. Says whether the worker still holds it and whether a cancel was asked for.
    pub async fn renew_job(
        &self,
        job: i64,
        worker: &str,
        expires_at: i64,
        progress: Option<&Value>,
    ) -> Result<JobBeat, CatalogError> {
        let context = "renewing a job's lease";
        let row = sqlx::query(
            "UPDATE jobs SET lease_expires_at = $1, progress = COALESCE($2, progress), \
             updated_at = $3 WHERE id = $4 AND worker = $5 AND status = 'running' \
             RETURNING cancel_requested",
        )
        .bind(expires_at)
        .bind(progress.map(Value::to_string))
        .bind(now_millis())
        .bind(job)
        .bind(worker)
        .fetch_optional(&self.pool)
        .await
        .map_err(db(context))?;
        Ok(match row {
            Some(row) => JobBeat {
                held: true,
                cancel_requested: row
                    .try_get::<i64, _>("cancel_requested")
                    .map_err(db(context))?
                    != 0,
            },
            None => JobBeat {
                held: false,
                cancel_requested: false,
            },
        })
    }

    /// Ends job `job`, which `worker` holds, as `status` (succeeded, failed or cancelled) with
    /// its result or error. [`CatalogError::JobLost`] when the worker no longer holds it: then
    /// nothing is written.
    pub async fn finish_job(
        &self,
        job: i64,
        worker: &str,
        status: JobStatus,
        result: Option<&Value>,
        error: Option<&str>,
    ) -> Result<(), CatalogError> {
        debug_assert!(status.is_final());
        let now = now_millis();
        let done = sqlx::query(
            "UPDATE jobs SET status = $1, result = $2, error = $3, finished_at = $4, \
             updated_at = $4, lease_expires_at = NULL WHERE id = $5 AND worker = $6 \
             AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(result.map(Value::to_string))
        .bind(error)
        .bind(now)
        .bind(job)
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(db("finishing a job"))?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::JobLost {
                job,
                worker: worker.to_string(),
            });
        }
        Ok(())
    }

    /// Cancels job `job`: a queued job at once (returns [`JobStatus::Cancelled`]); a running one
    /// is asked to stop, which its worker does at its next heart-beat (returns
    /// [`JobStatus::Running`]). [`CatalogError::JobState`] for a job that has ended.
    pub async fn cancel_job(&self, job: i64, by: &str) -> Result<JobStatus, CatalogError> {
        let context = "cancelling a job";
        let now = now_millis();
        let reason = format!("cancelled by {by}");
        let mut tx = self.begin_write().await?;
        let cancelled = sqlx::query(
            "UPDATE jobs SET status = 'cancelled', error = $1, finished_at = $2, \
             updated_at = $2, cancel_requested = 1 WHERE id = $3 AND status = 'queued' \
             RETURNING run_id",
        )
        .bind(&reason)
        .bind(now)
        .bind(job)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db(context))?;
        if let Some(row) = cancelled {
            // A queued run that no process holds ends with its job.
            let run: Option<i64> = row.try_get("run_id").map_err(db(context))?;
            sqlx::query(
                "UPDATE runs SET status = 'failed', error = $1, finished_at = $2, \
                 updated_at = $2 WHERE id = $3 AND status = 'running' AND lease_owner IS NULL",
            )
            .bind(&reason)
            .bind(now)
            .bind(run)
            .execute(&mut *tx)
            .await
            .map_err(db(context))?;
            tx.commit().await.map_err(db(context))?;
            return Ok(JobStatus::Cancelled);
        }
        tx.commit().await.map_err(db(context))?;
        let asked = sqlx::query(
            "UPDATE jobs SET cancel_requested = 1, error = $1, updated_at = $2 \
             WHERE id = $3 AND status = 'running'",
        )
        .bind(&reason)
        .bind(now)
        .bind(job)
        .execute(&self.pool)
        .await
        .map_err(db(context))?;
        if asked.rows_affected() == 1 {
            return Ok(JobStatus::Running);
        }
        Err(self
            .job_state_error(job, "cancel it", "a queued or running")
            .await)
    }

    /// Queues a failed or cancelled job again (same id; a training job resumes its run).
    pub async fn retry_job(&self, job: i64) -> Result<(), CatalogError> {
        let now = now_millis();
        let requeued = sqlx::query(
            "UPDATE jobs SET status = 'queued', error = NULL, result = NULL, finished_at = NULL, \
             cancel_requested = 0, lease_expires_at = NULL, updated_at = $1 \
             WHERE id = $2 AND status IN ('failed', 'cancelled')",
        )
        .bind(now)
        .bind(job)
        .execute(&self.pool)
        .await
        .map_err(db("queuing a job again"))?;
        if requeued.rows_affected() == 0 {
            return Err(self
                .job_state_error(job, "retry it", "a failed or cancelled")
                .await);
        }
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(JOBS_CHANNEL)
                .bind(job.to_string())
                .execute(&self.pool)
                .await
                .map_err(db("queuing a job again"))?;
        }
        Ok(())
    }

    async fn job_state_error(
        &self,
        job: i64,
        action: &'static str,
        allowed: &'static str,
    ) -> CatalogError {
        match self.job(job).await {
            Ok(Some(record)) => CatalogError::JobState {
                job,
                status: record.status.to_string(),
                action,
                allowed,
            },
            Ok(None) => CatalogError::UnknownJob(job),
            Err(error) => error,
        }
    }

    /// Job `job`, if it exists.
    pub async fn job(&self, job: i64) -> Result<Option<JobRecord>, CatalogError> {
        let row = assembled(format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
            .bind(job)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a job"))?;
        row.as_ref().map(job_record).transpose()
    }

    /// The newest `limit` jobs, newest first; with `status`, only jobs in it.
    pub async fn jobs(
        &self,
        status: Option<JobStatus>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, CatalogError> {
        let filter = if status.is_some() {
            "WHERE status = $2"
        } else {
            ""
        };
        let mut query = assembled(format!(
            "SELECT {COLUMNS} FROM jobs {filter} ORDER BY id DESC LIMIT $1"
        ))
        .bind(limit.min(i64::MAX as usize) as i64);
        if let Some(status) = status {
            query = query.bind(status.as_str());
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing jobs"))?;
        rows.iter().map(job_record).collect()
    }

    /// The newest job that trains run `run`, if any.
    pub async fn job_of_run(&self, run: i64) -> Result<Option<JobRecord>, CatalogError> {
        let row = assembled(format!(
            "SELECT {COLUMNS} FROM jobs WHERE run_id = $1 ORDER BY id DESC LIMIT 1"
        ))
        .bind(run)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a run's job"))?;
        row.as_ref().map(job_record).transpose()
    }
}

fn job_record(row: &AnyRow) -> Result<JobRecord, CatalogError> {
    let get = db("reading a job");
    let status: String = row.try_get("status").map_err(&get)?;
    let json = |column: &'static str| -> Result<Option<Value>, CatalogError> {
        let text: Option<String> = row.try_get(column).map_err(&get)?;
        text.map(|t| parse_json("jobs", column, &t)).transpose()
    };
    Ok(JobRecord {
        id: row.try_get("id").map_err(&get)?,
        kind: row.try_get("kind").map_err(&get)?,
        params: json("params")?.unwrap_or(Value::Null),
        run_id: row.try_get("run_id").map_err(&get)?,
        status: JobStatus::parse(&status).ok_or_else(|| CatalogError::Corrupt {
            table: "jobs",
            column: "status",
            value: status.clone(),
        })?,
        requested_by: row.try_get("requested_by").map_err(&get)?,
        device: row.try_get("device").map_err(&get)?,
        worker: row.try_get("worker").map_err(&get)?,
        lease_expires_at: row.try_get("lease_expires_at").map_err(&get)?,
        attempts: row.try_get("attempts").map_err(&get)?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested").map_err(&get)? != 0,
        progress: json("progress")?,
        result: json("result")?,
        error: row.try_get("error").map_err(&get)?,
        created_at: row.try_get("created_at").map_err(&get)?,
        started_at: row.try_get("started_at").map_err(&get)?,
        finished_at: row.try_get("finished_at").map_err(&get)?,
        updated_at: row.try_get("updated_at").map_err(&get)?,
    })
}

/// How a waiting worker learns of new jobs: PostgreSQL notifications on [`JOBS_CHANNEL`], or
/// (SQLite, or a lost connection) just the time running out.
pub struct JobWaiter {
    listener: Option<sqlx::postgres::PgListener>,
}

impl Catalog {
    /// A waiter for new jobs (on PostgreSQL it listens from now on).
    pub async fn job_waiter(&self) -> Result<JobWaiter, CatalogError> {
        let Some(url) = &self.listen_url else {
            return Ok(JobWaiter { listener: None });
        };
        let mut listener = sqlx::postgres::PgListener::connect(url)
            .await
            .map_err(db("listening for new jobs"))?;
        listener
            .listen(JOBS_CHANNEL)
            .await
            .map_err(db("listening for new jobs"))?;
        Ok(JobWaiter {
            listener: Some(listener),
        })
    }
}

impl JobWaiter {
    /// Waits until a job is queued (PostgreSQL) or `timeout` has passed.
    pub async fn wait(&mut self, timeout: Duration) {
        let Some(listener) = &mut self.listener else {
            tokio::time::sleep(timeout).await;
            return;
        };
        match tokio::time::timeout(timeout, listener.recv()).await {
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(error)) => {
                tracing::warn!("lost the job notifications ({error}); polling instead");
                self.listener = None;
                tokio::time::sleep(timeout).await;
            }
        }
    }
}
