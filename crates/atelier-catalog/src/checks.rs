//! Decode checks: which images to check, and storing what the checker found.

use std::collections::HashMap;

use sqlx::AnyPool;
use sqlx::Row;

use crate::content::PLACEHOLDER_PREFIX;
use crate::error::{CatalogError, db};
use crate::model::{Backend, CheckOutcome, CheckReport, ImageRef, Status};
use crate::sql::{ParamStyle, assembled, now_millis, placeholders, value_tuples};

/// Outcomes stored per statement (6 values each).
const CHECK_BATCH: usize = 1_000;

pub(crate) async fn images_for_check(pool: &AnyPool) -> Result<Vec<ImageRef>, CatalogError> {
    let context = "listing images to check";
    let pattern = format!("{PLACEHOLDER_PREFIX}%");
    sqlx::query(
        "SELECT id, uri, status FROM images WHERE status <> 'removed' AND id NOT LIKE $1 ORDER BY id",
    )
    .bind(pattern.as_str())
    .fetch_all(pool)
    .await
    .map_err(db(context))?
    .iter()
    .map(|row| {
        let status: String = row.try_get(2).map_err(db(context))?;
        Ok(ImageRef {
            id: row.try_get(0).map_err(db(context))?,
            uri: row.try_get(1).map_err(db(context))?,
            status: Status::from_db(&status)?,
        })
    })
    .collect()
}

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

pub(crate) async fn record_checks(
    pool: &AnyPool,
    backend: Backend,
    outcomes: &[CheckOutcome],
) -> Result<CheckReport, CatalogError> {
    let context = "recording checks";
    let now = now_millis();
    let style = ParamStyle::for_backend(backend);
    let mut report = CheckReport::default();
    let mut tx = crate::begin_write(pool, backend).await?;
    for batch in outcomes.chunks(CHECK_BATCH) {
        let sql = format!(
            "SELECT id, status, quarantine_reason, updated_at FROM images WHERE id IN ({})",
            placeholders(style, 1, batch.len())
        );
        let mut query = assembled(sql);
        for outcome in batch {
            query = query.bind(outcome.id.as_str());
        }
        let stored: HashMap<String, StoredState> = query
            .fetch_all(&mut *tx)
            .await
            .map_err(db(context))?
            .iter()
            .map(|row| {
                let status: String = row.try_get(1).map_err(db(context))?;
                Ok((
                    row.try_get(0).map_err(db(context))?,
                    StoredState {
                        status: Status::from_db(&status)?,
                        reason: row.try_get(2).map_err(db(context))?,
                        updated_at: row.try_get(3).map_err(db(context))?,
                    },
                ))
            })
            .collect::<Result<_, CatalogError>>()?;

        let mut rows = Vec::with_capacity(batch.len());
        for outcome in batch {
            let Some(old) = stored.get(&outcome.id) else {
                report.unknown_ids.push(outcome.id.clone());
                continue;
            };
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
            rows.push(CheckedRow {
                id: &outcome.id,
                width,
                height,
                status,
                reason,
                updated_at,
            });
        }
        if rows.is_empty() {
            continue;
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
        for row in &rows {
            query = query
                .bind(row.id)
                .bind(row.width)
                .bind(row.height)
                .bind(row.status.as_str())
                .bind(row.reason.as_deref())
                .bind(row.updated_at);
        }
        query.execute(&mut *tx).await.map_err(db(context))?;
    }
    tx.commit().await.map_err(db(context))?;
    Ok(report)
}
