//! Training runs and their lifecycle: a run starts running, then is completed or failed, or
//! interrupted when its process is gone (taking a failed or interrupted run under a lease, in
//! `leases`, resumes it).
//!
//! Config, progress and summary are opaque JSON values here, so that the catalogue does not
//! depend on the training crate; they are stored as JSON text on both backends.

use std::fmt;

use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::sql::{assembled, now_millis, parse_json};

/// Where a run stands. A run starts `Running`; [`crate::Catalog::finish_run`] ends it;
/// [`crate::Catalog::interrupt_orphaned_runs`] marks a running run whose process is gone
/// `Interrupted`; [`crate::Catalog::take_run`] takes a failed or interrupted run back to
/// `Running`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    /// The process that trained it stopped without finishing (a crash, a restart): it can be
    /// resumed from its checkpoints, or marked failed.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// The status spelt as [`RunStatus::as_str`] spells it, or `None`.
    pub fn parse(value: &str) -> Option<RunStatus> {
        match value {
            "running" => Some(RunStatus::Running),
            "completed" => Some(RunStatus::Completed),
            "failed" => Some(RunStatus::Failed),
            "interrupted" => Some(RunStatus::Interrupted),
            _ => None,
        }
    }

    fn from_db(value: &str) -> Result<RunStatus, CatalogError> {
        RunStatus::parse(value).ok_or_else(|| CatalogError::Corrupt {
            table: "runs",
            column: "status",
            value: value.to_string(),
        })
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run to start; it begins as [`RunStatus::Running`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewRun {
    /// What was trained, e.g. `"facets"`.
    pub kind: String,
    pub config: Value,
    /// The run this one continues or was derived from.
    pub parent_run: Option<i64>,
    /// The process that records the run holds it from the start (so that a run queued but not
    /// yet training is not taken for an orphan); `None` leaves it unheld.
    pub lease: Option<RunLease>,
}

/// How a run ended. `status` must be `Completed` or `Failed`; `summary`, `model_ref` and
/// `error` replace whatever the run held.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunFinish {
    pub status: RunStatus,
    pub summary: Option<Value>,
    pub model_ref: Option<String>,
    pub error: Option<String>,
}

/// Everything stored about a run. Timestamps are UTC unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub kind: String,
    pub status: RunStatus,
    pub created_at: i64,
    pub updated_at: i64,
    /// When it last completed or failed; `None` while running.
    pub finished_at: Option<i64>,
    pub config: Value,
    pub progress: Option<Value>,
    pub summary: Option<Value>,
    pub model_ref: Option<String>,
    pub error: Option<String>,
    pub parent_run: Option<i64>,
    /// Who holds the run while it is queued or trains; `None` once it finished or was
    /// interrupted.
    pub lease: Option<RunLease>,
}

/// Who holds a run, and until when (UTC unix milliseconds) unless renewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunLease {
    pub owner: String,
    pub expires_at: i64,
}

impl RunLease {
    /// Whether the lease still holds at `now`.
    pub fn is_alive(&self, now: i64) -> bool {
        self.expires_at > now
    }
}

const RUN_COLUMNS: &str = "id, kind, status, created_at, updated_at, finished_at, config, \
                           progress, summary, model_ref, error, parent_run, lease_owner, \
                           lease_expires_at";

/// Which runs a finish may end.
#[derive(Debug, Clone, Copy)]
enum FinishGuard<'a> {
    /// A running or interrupted run, whoever holds it.
    Any,
    /// A running run that this owner still holds.
    HeldBy(&'a str),
    /// An interrupted run only (marking it failed).
    Interrupted,
}

impl Catalog {
    /// Starts a training run (status running) and returns its id, which is never reused.
    pub async fn create_run(&self, new: &NewRun) -> Result<i64, CatalogError> {
        let context = "creating a run";
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        if let Some(parent) = new.parent_run {
            ensure_run_exists(&mut tx, parent).await?;
        }
        let id = sqlx::query(
            "INSERT INTO runs (kind, status, created_at, updated_at, config, parent_run, \
             lease_owner, lease_expires_at) \
             VALUES ($1, 'running', $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(new.kind.as_str())
        .bind(now)
        .bind(now)
        .bind(new.config.to_string())
        .bind(new.parent_run)
        .bind(new.lease.as_ref().map(|l| l.owner.clone()))
        .bind(new.lease.as_ref().map(|l| l.expires_at))
        .fetch_one(&mut *tx)
        .await
        .and_then(|row| row.try_get::<i64, _>("id"))
        .map_err(db(context))?;
        tx.commit().await.map_err(db(context))?;
        Ok(id)
    }

    /// Replaces the progress JSON of a running run.
    pub async fn set_run_progress(&self, run: i64, progress: &Value) -> Result<(), CatalogError> {
        let context = "recording run progress";
        let updated = sqlx::query(
            "UPDATE runs SET progress = $1, updated_at = $2 WHERE id = $3 AND status = 'running'",
        )
        .bind(progress.to_string())
        .bind(now_millis())
        .bind(run)
        .execute(&self.pool)
        .await
        .map_err(db(context))?;
        if updated.rows_affected() == 0 {
            return Err(refusal(&self.pool, run, "record progress", "a running").await);
        }
        Ok(())
    }

    /// Ends a running or interrupted run as completed or failed.
    pub async fn finish_run(&self, run: i64, finish: &RunFinish) -> Result<(), CatalogError> {
        self.finish_guarded(run, finish, FinishGuard::Any).await
    }

    /// Ends an interrupted run as failed with `error` (a reviewer gives up on resuming it);
    /// any other state is refused.
    pub async fn fail_interrupted_run(&self, run: i64, error: &str) -> Result<(), CatalogError> {
        let finish = RunFinish {
            status: RunStatus::Failed,
            summary: None,
            model_ref: None,
            error: Some(error.to_string()),
        };
        self.finish_guarded(run, &finish, FinishGuard::Interrupted)
            .await
    }

    /// Like [`Catalog::finish_run`], but only while `owner` still holds the run's lease: a
    /// process whose lease expired and was taken over must not record its results.
    pub async fn finish_held_run(
        &self,
        run: i64,
        owner: &str,
        finish: &RunFinish,
    ) -> Result<(), CatalogError> {
        self.finish_guarded(run, finish, FinishGuard::HeldBy(owner))
            .await
    }

    /// One run, or `None` if the id is unknown.
    pub async fn run(&self, id: i64) -> Result<Option<RunRecord>, CatalogError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        let row = assembled(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a run"))?;
        row.as_ref().map(run_record).transpose()
    }

    /// Every run, newest first.
    pub async fn runs(&self) -> Result<Vec<RunRecord>, CatalogError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC");
        assembled(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing runs"))?
            .iter()
            .map(run_record)
            .collect()
    }

    /// Ends a run as `finish` says, if `guard` allows it in its current state.
    async fn finish_guarded(
        &self,
        run: i64,
        finish: &RunFinish,
        guard: FinishGuard<'_>,
    ) -> Result<(), CatalogError> {
        let context = "finishing a run";
        if matches!(finish.status, RunStatus::Running | RunStatus::Interrupted) {
            return Err(CatalogError::InvalidRunData {
                run,
                message: "a run is finished as completed or failed".to_string(),
            });
        }
        let now = now_millis();
        let (condition, holder, allowed) = match guard {
            FinishGuard::Any => (
                "status IN ('running', 'interrupted') AND $8 = ''",
                "",
                "a running or interrupted",
            ),
            FinishGuard::HeldBy(owner) => (
                "status = 'running' AND lease_owner = $8",
                owner,
                "a running run this process holds, or",
            ),
            FinishGuard::Interrupted => {
                ("status = 'interrupted' AND $8 = ''", "", "an interrupted")
            }
        };
        let sql = format!(
            "UPDATE runs SET status = $1, summary = $2, model_ref = $3, error = $4, \
             finished_at = $5, updated_at = $6, lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $7 AND {condition}"
        );
        let updated = assembled(sql)
            .bind(finish.status.as_str())
            .bind(finish.summary.as_ref().map(Value::to_string))
            .bind(finish.model_ref.as_deref())
            .bind(finish.error.as_deref())
            .bind(now)
            .bind(now)
            .bind(run)
            .bind(holder.to_string())
            .execute(&self.pool)
            .await
            .map_err(db(context))?;
        if updated.rows_affected() == 0 {
            return Err(refusal(&self.pool, run, "finish it", allowed).await);
        }
        Ok(())
    }
}

/// Why a guarded `UPDATE runs` matched nothing: the run is unknown or in the wrong state.
async fn refusal(
    pool: &AnyPool,
    run: i64,
    action: &'static str,
    allowed: &'static str,
) -> CatalogError {
    let status = sqlx::query_scalar::<_, String>("SELECT status FROM runs WHERE id = $1")
        .bind(run)
        .fetch_optional(pool)
        .await;
    match status {
        Ok(None) => CatalogError::UnknownRun(run),
        Ok(Some(status)) => CatalogError::RunState {
            run,
            status,
            action,
            allowed,
        },
        Err(source) => CatalogError::Database {
            context: "reading a run's status",
            source,
        },
    }
}

pub(crate) async fn ensure_run_exists(
    conn: &mut AnyConnection,
    run: i64,
) -> Result<(), CatalogError> {
    let found = sqlx::query("SELECT 1 FROM runs WHERE id = $1")
        .bind(run)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("looking up a run"))?;
    match found {
        Some(_) => Ok(()),
        None => Err(CatalogError::UnknownRun(run)),
    }
}

/// `Err(UnknownImage)` unless the catalogue has image `image` (in any status).
pub(crate) async fn ensure_image_exists(
    conn: &mut AnyConnection,
    image: &str,
    context: &'static str,
) -> Result<(), CatalogError> {
    let found = sqlx::query("SELECT 1 FROM images WHERE id = $1")
        .bind(image)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db(context))?;
    match found {
        Some(_) => Ok(()),
        None => Err(CatalogError::UnknownImage(image.to_string())),
    }
}

fn run_record(row: &AnyRow) -> Result<RunRecord, CatalogError> {
    let get = db("reading a run");
    let status: String = row.try_get("status").map_err(&get)?;
    let json = |column: &'static str| -> Result<Option<Value>, CatalogError> {
        let text: Option<String> = row.try_get(column).map_err(&get)?;
        text.map(|t| parse_json("runs", column, &t)).transpose()
    };
    Ok(RunRecord {
        id: row.try_get("id").map_err(&get)?,
        kind: row.try_get("kind").map_err(&get)?,
        status: RunStatus::from_db(&status)?,
        created_at: row.try_get("created_at").map_err(&get)?,
        updated_at: row.try_get("updated_at").map_err(&get)?,
        finished_at: row.try_get("finished_at").map_err(&get)?,
        config: json("config")?.unwrap_or(Value::Null),
        progress: json("progress")?,
        summary: json("summary")?,
        model_ref: row.try_get("model_ref").map_err(&get)?,
        error: row.try_get("error").map_err(&get)?,
        parent_run: row.try_get("parent_run").map_err(&get)?,
        lease: match (
            row.try_get::<Option<String>, _>("lease_owner")
                .map_err(&get)?,
            row.try_get::<Option<i64>, _>("lease_expires_at")
                .map_err(&get)?,
        ) {
            (Some(owner), Some(expires_at)) => Some(RunLease { owner, expires_at }),
            _ => None,
        },
    })
}
