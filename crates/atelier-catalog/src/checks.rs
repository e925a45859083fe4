//! Decode checks: which images to check, and storing what the checker found.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use crate::Catalog;
use crate::content::PLACEHOLDER_PREFIX;
use crate::counters::{self, LABELS_COUNTER};
use crate::error::{CatalogError, db};
use crate::model::{CheckOutcome, CheckReport, ImageRef, Status};
use crate::sql::status_from_db;
use crate::sql::{ParamStyle, assembled, now_millis, placeholders, value_tuples};

/// Outcomes stored per statement (6 values each).
const CHECK_BATCH: usize = 1_000;

const CONTEXT: &str = "recording checks";

struct StoredState {
    status: Status,
    reason: Option<String>,
    updated_at: i64,
}

/// New state of one checked image.
struct CheckedRow<'a> {
    id: &'a str,
    width: Option<i64>,
    height: Option<i64>,
    status: Status,
    reason: Option<String>,
    updated_at: i64,
}

impl Catalog {
    /// Every image that is not removed and has content (placeholders of unreadable files are
    /// left out: they need a re-import, not a decode), ordered by id.
    pub async fn images_for_check(&self) -> Result<Vec<ImageRef>, CatalogError> {
        let context = "listing images to check";
        let pattern = format!("{PLACEHOLDER_PREFIX}%");
        sqlx::query(
            "SELECT id, uri, status FROM images WHERE status <> 'removed' AND id NOT LIKE $1 \
             ORDER BY id",
        )
        .bind(pattern.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db(context))?
        .iter()
        .map(|row| {
            let status: String = row.try_get("status").map_err(db(context))?;
            Ok(ImageRef {
                id: row.try_get("id").map_err(db(context))?,
                uri: row.try_get("uri").map_err(db(context))?,
                status: status_from_db(&status)?,
            })
        })
        .collect()
    }

    /// Stores decode results: good images become active with their size, bad ones quarantined
    /// with the reason. Removed images keep their status. One transaction.
    pub async fn record_checks(
        &self,
        outcomes: &[CheckOutcome],
    ) -> Result<CheckReport, CatalogError> {
        let now = now_millis();
        let style = ParamStyle::for_backend(self.backend);
        let mut report = CheckReport::default();
        let mut tx = self.begin_write().await?;
        for batch in outcomes.chunks(CHECK_BATCH) {
            let stored = stored_states(&mut tx, style, batch).await?;
            let mut rows = Vec::with_capacity(batch.len());
            for outcome in batch {
                match stored.get(&outcome.id) {
                    Some(old) => rows.push(checked_row(outcome, old, now, &mut report)),
                    None => report.unknown_ids.push(outcome.id.clone()),
                }
            }
            write_checked(&mut tx, style, now, &rows).await?;
        }
        counters::bump(&mut tx, LABELS_COUNTER)
            .await
            .map_err(db(CONTEXT))?;
        tx.commit().await.map_err(db(CONTEXT))?;
        Ok(report)
    }
}

/// The stored state of the batch's images, by id (unknown ids are left out).
async fn stored_states(
    conn: &mut AnyConnection,
    style: ParamStyle,
    batch: &[CheckOutcome],
) -> Result<HashMap<String, StoredState>, CatalogError> {
    let sql = format!(
        "SELECT id, status, quarantine_reason, updated_at FROM images WHERE id IN ({})",
        placeholders(style, 1, batch.len())
    );
    let mut query = assembled(sql);
    for outcome in batch {
        query = query.bind(outcome.id.as_str());
    }
    query
        .fetch_all(&mut *conn)
        .await
        .map_err(db(CONTEXT))?
        .iter()
        .map(|row| {
            let status: String = row.try_get("status").map_err(db(CONTEXT))?;
            Ok((
                row.try_get("id").map_err(db(CONTEXT))?,
                StoredState {
                    status: status_from_db(&status)?,
                    reason: row.try_get("quarantine_reason").map_err(db(CONTEXT))?,
                    updated_at: row.try_get("updated_at").map_err(db(CONTEXT))?,
                },
            ))
        })
        .collect()
}

/// The new state of an image checked as `outcome` says, counted in `report`.
fn checked_row<'a>(
    outcome: &'a CheckOutcome,
    old: &StoredState,
    now: i64,
    report: &mut CheckReport,
) -> CheckedRow<'a> {
    let result = match &outcome.result {
        // Its id is not a content hash; only a re-import can give it one.
        Ok(_) if outcome.id.starts_with(PLACEHOLDER_PREFIX) => Err(
            "the file was unreadable at import; re-import its source to give it a content id"
                .to_string(),
        ),
        other => other.clone(),
    };
    let (width, height, status, reason) = match result {
        Ok(size) => {
            report.ok += 1;
            (
                Some(size.width.into()),
                Some(size.height.into()),
                Status::Active,
                None,
            )
        }
        Err(reason) => {
            report.bad += 1;
            (None, None, Status::Quarantined, Some(reason))
        }
    };
    let (status, reason) = if old.status == Status::Removed {
        (Status::Removed, reason.or_else(|| old.reason.clone()))
    } else {
        (status, reason)
    };
    match (old.status, status) {
        (Status::Quarantined, Status::Active) => report.reactivated += 1,
        (Status::Active, Status::Quarantined) => report.newly_quarantined += 1,
        _ => {}
    }
    // Re-checking an image with the same verdict does not count as changing it.
    let updated_at = if status != old.status || reason != old.reason {
        now
    } else {
        old.updated_at
    };
    CheckedRow {
        id: &outcome.id,
        width,
        height,
        status,
        reason,
        updated_at,
    }
}

/// Writes the new states of checked images, checked at `now`.
async fn write_checked(
    conn: &mut AnyConnection,
    style: ParamStyle,
    now: i64,
    rows: &[CheckedRow<'_>],
) -> Result<(), CatalogError> {
    if rows.is_empty() {
        return Ok(());
    }
    // A VALUES list joined in with UPDATE ... FROM works on both backends; its columns are
    // named column1, column2, ... by both.
    let sql = format!(
        "UPDATE images SET width = v.column2, height = v.column3, status = v.column4, \
         quarantine_reason = v.column5, checked_at = {}, \
         updated_at = v.column6 \
         FROM (VALUES {}) AS v WHERE images.id = v.column1",
        placeholders(style, 1, 1),
        value_tuples(style, 2, rows.len(), 6)
    );
    let mut query = assembled(sql).bind(now);
    for row in rows {
        query = query
            .bind(row.id)
            .bind(row.width)
            .bind(row.height)
            .bind(row.status.as_str())
            .bind(row.reason.as_deref())
            .bind(row.updated_at);
    }
    query.execute(&mut *conn).await.map_err(db(CONTEXT))?;
    Ok(())
}
