//! Run leases: which process holds a run. The process that trains a run (or has queued it)
//! writes its owner id and renews `lease_expires_at` while it lives; nobody else may train the
//! run until the lease has expired. A `running` run whose holder is gone (its lease expired, or
//! the caller knows the owner process is dead) becomes `interrupted`: its page can offer to
//! resume it or to mark it failed, instead of showing "running" forever.

use sqlx::Row;

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::runs::RunStatus;
use crate::sql::now_millis;

impl Catalog {
    /// Takes run `run` for `owner` until `expires_at` (UTC unix ms) and makes it `running` again
    /// if it had failed or was interrupted (clearing its error and finish time).
    /// [`CatalogError::RunHeld`] while another owner's lease is alive, unless that owner is
    /// `gone_owner` (a holder the caller knows is dead); [`CatalogError::RunState`] for a
    /// completed run. One guarded statement, so two processes racing for a run cannot both get
    /// it.
    pub async fn take_run(
        &self,
        run: i64,
        owner: &str,
        expires_at: i64,
        gone_owner: Option<&str>,
    ) -> Result<(), CatalogError> {
        let now = now_millis();
        let taken = sqlx::query(
            "UPDATE runs SET status = 'running', finished_at = NULL, error = NULL, \
         lease_owner = $1, lease_expires_at = $2, updated_at = $3 \
         WHERE id = $4 AND status <> 'completed' \
         AND (lease_owner IS NULL OR lease_owner = $5 OR lease_owner = $6 \
              OR lease_expires_at <= $7)",
        )
        .bind(owner)
        .bind(expires_at)
        .bind(now)
        .bind(run)
        .bind(owner)
        .bind(gone_owner.unwrap_or(owner))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db("taking a run's lease"))?;
        if taken.rows_affected() == 1 {
            return Ok(());
        }
        let row =
            sqlx::query("SELECT status, lease_owner, lease_expires_at FROM runs WHERE id = $1")
                .bind(run)
                .fetch_optional(&self.pool)
                .await
                .map_err(db("reading a run's lease"))?
                .ok_or(CatalogError::UnknownRun(run))?;
        let status: String = row.try_get("status").map_err(db("reading a run's lease"))?;
        let holder: Option<String> = row
            .try_get("lease_owner")
            .map_err(db("reading a run's lease"))?;
        let until: Option<i64> = row
            .try_get("lease_expires_at")
            .map_err(db("reading a run's lease"))?;
        match (holder, until) {
            (Some(holder), Some(until)) if status != RunStatus::Completed.as_str() => {
                Err(CatalogError::RunHeld {
                    run,
                    owner: holder,
                    seconds_left: ((until - now).max(0) + 999) / 1000,
                })
            }
            _ => Err(CatalogError::RunState {
                run,
                status,
                action: "train it",
                allowed: "a running, failed or interrupted",
            }),
        }
    }

    /// Extends `owner`'s leases on `runs` to `expires_at`; returns the runs it no longer holds
    /// (finished, or taken over after its lease expired).
    pub async fn renew_run_leases(
        &self,
        owner: &str,
        runs: &[i64],
        expires_at: i64,
    ) -> Result<Vec<i64>, CatalogError> {
        let mut lost = Vec::new();
        for &run in runs {
            let renewed = sqlx::query(
                "UPDATE runs SET lease_expires_at = $1 \
             WHERE id = $2 AND lease_owner = $3 AND status = 'running'",
            )
            .bind(expires_at)
            .bind(run)
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(db("renewing a run's lease"))?;
            if renewed.rows_affected() == 0 {
                lost.push(run);
            }
        }
        Ok(lost)
    }

    /// Marks `interrupted` every running run whose holder is gone (no lease, an expired one,
    /// or an owner `gone` reports dead, such as a process on this machine that no longer exists)
    /// and returns them. Runs that a queued or running job trains are left to the job queue,
    /// whose next worker resumes them. Each update is guarded by the lease it read, so a holder that renews at
    /// the same moment keeps its run.
    pub async fn interrupt_orphaned_runs(
        &self,
        gone: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Vec<i64>, CatalogError> {
        let context = "finding runs whose process is gone";
        let now = now_millis();
        let rows = sqlx::query(
            "SELECT id, lease_owner, lease_expires_at FROM runs WHERE status = 'running' \
         AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.run_id = runs.id \
         AND jobs.status IN ('queued', 'running')) ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db(context))?;
        let mut interrupted = Vec::new();
        for row in rows {
            let run: i64 = row.try_get("id").map_err(db(context))?;
            let owner: Option<String> = row.try_get("lease_owner").map_err(db(context))?;
            let until: Option<i64> = row.try_get("lease_expires_at").map_err(db(context))?;
            let orphaned = match (&owner, until) {
                (Some(owner), Some(until)) => until <= now || gone(owner),
                _ => true,
            };
            if !orphaned {
                continue;
            }
            let holder = owner.as_deref().unwrap_or("no process");
            let error = format!(
                "interrupted: the process that held this run ({holder}) stopped before it \
                 finished; resume it, or mark it failed"
            );
            let marked = sqlx::query(
                "UPDATE runs SET status = 'interrupted', error = $1, lease_owner = NULL, \
             lease_expires_at = NULL, updated_at = $2 \
             WHERE id = $3 AND status = 'running' AND COALESCE(lease_owner, '') = $4 \
             AND COALESCE(lease_expires_at, 0) = $5",
            )
            .bind(error)
            .bind(now)
            .bind(run)
            .bind(owner.clone().unwrap_or_default())
            .bind(until.unwrap_or(0))
            .execute(&self.pool)
            .await
            .map_err(db("marking a run interrupted"))?;
            if marked.rows_affected() == 1 {
                interrupted.push(run);
            }
        }
        Ok(interrupted)
    }
}
