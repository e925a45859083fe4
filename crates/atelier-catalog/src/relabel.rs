//! Relabelling as a reviewer: audited label changes guarded by optimistic versions, and undo.
//!
//! Every `labels` row carries a version that grows by one on each change, and every change
//! writes one `label_events` row. A reviewer's edit names the version it was based on; the
//! write is guarded by that version inside the statement itself (`UPDATE ... WHERE version =
//! expected`, or an insert that does nothing when a row appeared), so that of two reviewers
//! who saw the same version exactly one wins, on SQLite and on PostgreSQL (which runs READ
//! COMMITTED, where a read followed by a write would let both through).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use crate::Catalog;
use crate::counters::{self, LABELS_COUNTER};
use crate::error::{CatalogError, db};
use crate::model::Status;
use crate::runs::ensure_run_exists;
use crate::sql::now_millis;
use crate::sql::status_from_db;
use crate::vocabulary::Vocabulary;

/// The `source` of labels and events written by reviewers.
pub(crate) const REVIEW_SOURCE: &str = "review";

/// The `source` of labels and events that crowd votes decided (`atelier crowd apply`).
pub(crate) const CROWD_SOURCE: &str = "crowd";

/// Whether a label's `source` is a person's decision, which a re-import keeps.
pub(crate) fn decided_by_people(source: &str) -> bool {
    source == REVIEW_SOURCE || source == CROWD_SOURCE
}

/// One requested label change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelEdit {
    pub image: String,
    pub facet: String,
    /// The new label; `None` clears the label.
    pub label: Option<String>,
    /// The version the editor saw; 0 means the image had no label row for the facet.
    pub expected_version: i64,
    /// Who changes the label (a user name).
    pub actor: String,
    pub reason: Option<String>,
    /// The run whose prediction suggested the change.
    pub run_id: Option<i64>,
}

/// What a label change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelChange {
    /// The recorded event; `None` when the label already had the requested value and nothing
    /// was written.
    pub event_id: Option<i64>,
    pub image: String,
    pub facet: String,
    pub old_label: Option<String>,
    pub new_label: Option<String>,
    /// The label's version after the change (unchanged when nothing was written).
    pub version: i64,
}

/// The stored label of one (image, facet): its label id and version (0 and `None` without a
/// row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Current {
    label: Option<i64>,
    version: i64,
}

/// One change to write, resolved to ids.
struct Change<'a> {
    image: &'a str,
    facet: i64,
    expected_version: i64,
    new_label: Option<i64>,
    actor: &'a str,
    reason: Option<&'a str>,
    run_id: Option<i64>,
    /// `review` or `crowd`.
    source: &'static str,
}

impl Catalog {
    /// Applies label edits as a reviewer, all or nothing, in one transaction, and returns what
    /// each did, in order. Each edit must name the label version it was based on
    /// ([`LabelEdit::expected_version`]); if the label moved on since, the whole batch fails
    /// with [`CatalogError::Conflict`] and nothing is written. An edit that asks for the label
    /// the image already has writes nothing (`event_id: None`); any other writes the label
    /// (source `review`, version + 1) and a label event with the actor, reason and run.
    /// Unknown images, facets, labels or runs, and images that are not active, fail the batch
    /// too.
    pub async fn set_labels(&self, edits: &[LabelEdit]) -> Result<Vec<LabelChange>, CatalogError> {
        self.set_labels_from(REVIEW_SOURCE, edits).await
    }

    /// Like [`Catalog::set_labels`], for the labels crowd votes decided: written with source
    /// `crowd` (which a re-import keeps, as it keeps reviewers' labels).
    pub async fn set_crowd_labels(
        &self,
        edits: &[LabelEdit],
    ) -> Result<Vec<LabelChange>, CatalogError> {
        self.set_labels_from(CROWD_SOURCE, edits).await
    }

    async fn set_labels_from(
        &self,
        source: &'static str,
        edits: &[LabelEdit],
    ) -> Result<Vec<LabelChange>, CatalogError> {
        let context = "changing labels";
        let mut tx = self.begin_write().await?;
        let vocabulary = Vocabulary::load(&mut tx).await?;
        let now = now_millis();
        let mut known_runs = HashSet::new();
        // Rows are locked in (image, facet) order, so that two batches touching the same labels
        // in different orders wait for each other instead of deadlocking on PostgreSQL. The sort
        // is stable: edits of one label still apply in the order given.
        let mut order: Vec<usize> = (0..edits.len()).collect();
        order.sort_by(|&x, &y| {
            (&edits[x].image, &edits[x].facet).cmp(&(&edits[y].image, &edits[y].facet))
        });
        let mut changes: Vec<Option<LabelChange>> = vec![None; edits.len()];
        for index in order {
            let edit = &edits[index];
            check_actor(&edit.actor)?;
            ensure_active(&mut tx, &edit.image).await?;
            let facet = vocabulary.facet_id(&edit.facet)?;
            let new_label = edit
                .label
                .as_deref()
                .map(|label| vocabulary.label_id(facet, label, || "retag".to_string()))
                .transpose()?;
            if let Some(run) = edit.run_id
                && known_runs.insert(run)
            {
                ensure_run_exists(&mut tx, run).await?;
            }
            let change = Change {
                image: &edit.image,
                facet,
                expected_version: edit.expected_version,
                new_label,
                actor: &edit.actor,
                reason: edit.reason.as_deref(),
                run_id: edit.run_id,
                source,
            };
            changes[index] = Some(apply(&mut tx, &vocabulary, &change, now).await?);
        }
        // Any error above drops the transaction, which rolls every edit of the batch back.
        counters::bump(&mut tx, LABELS_COUNTER)
            .await
            .map_err(db(context))?;
        tx.commit().await.map_err(db(context))?;
        Ok(changes.into_iter().flatten().collect())
    }

    /// Reverts one label event: sets the event's image and facet back to the event's old label,
    /// recorded as a new event by `actor` with the reason `undo of event {id}` and the event's
    /// run. The label must still be the one the event set, else [`CatalogError::Conflict`]
    /// describes what it is now; an unknown id is [`CatalogError::UnknownEvent`].
    pub async fn undo_label_event(
        &self,
        event_id: i64,
        actor: &str,
    ) -> Result<LabelChange, CatalogError> {
        let context = "undoing a label change";
        check_actor(actor)?;
        let mut tx = self.begin_write().await?;
        let Some(event) = sqlx::query(
            "SELECT image_id, facet_id, old_label_id, new_label_id, run_id \
             FROM label_events WHERE id = $1",
        )
        .bind(event_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db(context))?
        else {
            return Err(CatalogError::UnknownEvent(event_id));
        };
        let get = db(context);
        let image: String = event.try_get("image_id").map_err(&get)?;
        let facet: i64 = event.try_get("facet_id").map_err(&get)?;
        let old_label: Option<i64> = event.try_get("old_label_id").map_err(&get)?;
        let new_label: Option<i64> = event.try_get("new_label_id").map_err(&get)?;
        let run_id: Option<i64> = event.try_get("run_id").map_err(&get)?;

        ensure_active(&mut tx, &image).await?;
        let vocabulary = Vocabulary::load(&mut tx).await?;
        let current = current(&mut tx, &image, facet).await?;
        if current.label != new_label {
            // Every change of a label row writes exactly one event, so the version the event
            // produced is the number of events of the (image, facet) up to it.
            let produced: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM label_events WHERE image_id = $1 AND facet_id = $2 AND id <= $3",
            )
            .bind(image.as_str())
            .bind(facet)
            .bind(event_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db(context))?;
            return Err(conflict(&vocabulary, &image, facet, produced, current)?);
        }
        let reason = format!("undo of event {event_id}");
        let change = Change {
            image: &image,
            facet,
            expected_version: current.version,
            new_label: old_label,
            actor,
            reason: Some(&reason),
            run_id,
            source: REVIEW_SOURCE,
        };
        let undone = apply(&mut tx, &vocabulary, &change, now_millis()).await?;
        counters::bump(&mut tx, LABELS_COUNTER)
            .await
            .map_err(db(context))?;
        tx.commit().await.map_err(db(context))?;
        Ok(undone)
    }
}

/// An actor is recorded with every event; an empty one would make the history anonymous.
pub(crate) fn check_actor(actor: &str) -> Result<(), CatalogError> {
    if actor.trim().is_empty() {
        return Err(CatalogError::InvalidUser(actor.to_string()));
    }
    Ok(())
}

/// Only active images are relabelled: a removed or quarantined one is not shown for review
/// and its labels are kept as history.
pub(crate) async fn ensure_active(
    conn: &mut AnyConnection,
    image: &str,
) -> Result<(), CatalogError> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM images WHERE id = $1")
        .bind(image)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("looking up an image"))?;
    match status.as_deref().map(status_from_db).transpose()? {
        None => Err(CatalogError::UnknownImage(image.to_string())),
        Some(Status::Active) => Ok(()),
        Some(status) => Err(CatalogError::ImageNotActive {
            image: image.to_string(),
            status,
        }),
    }
}

async fn current(
    conn: &mut AnyConnection,
    image: &str,
    facet: i64,
) -> Result<Current, CatalogError> {
    let context = "reading a label";
    let row =
        sqlx::query("SELECT label_id, version FROM labels WHERE image_id = $1 AND facet_id = $2")
            .bind(image)
            .bind(facet)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db(context))?;
    match row {
        None => Ok(Current {
            label: None,
            version: 0,
        }),
        Some(row) => Ok(Current {
            label: row.try_get("label_id").map_err(db(context))?,
            version: row.try_get("version").map_err(db(context))?,
        }),
    }
}

fn facet_name(vocabulary: &Vocabulary, facet: i64) -> Result<String, CatalogError> {
    vocabulary
        .facet_name(facet)
        .map(str::to_string)
        .ok_or_else(|| CatalogError::Corrupt {
            table: "labels",
            column: "facet_id",
            value: facet.to_string(),
        })
}

fn conflict(
    vocabulary: &Vocabulary,
    image: &str,
    facet: i64,
    expected_version: i64,
    current: Current,
) -> Result<CatalogError, CatalogError> {
    Ok(CatalogError::Conflict {
        image: image.to_string(),
        facet: facet_name(vocabulary, facet)?,
        expected_version,
        current_version: current.version,
        current_label: vocabulary.stored_label_name(facet, current.label, "labels")?,
    })
}

/// Checks the version and writes one change with its event, inside the caller's transaction.
async fn apply(
    conn: &mut AnyConnection,
    vocabulary: &Vocabulary,
    change: &Change<'_>,
    now: i64,
) -> Result<LabelChange, CatalogError> {
    let stored = current(conn, change.image, change.facet).await?;
    if stored.version != change.expected_version {
        return Err(conflict(
            vocabulary,
            change.image,
            change.facet,
            change.expected_version,
            stored,
        )?);
    }
    let facet = facet_name(vocabulary, change.facet)?;
    let old_label = vocabulary.stored_label_name(change.facet, stored.label, "labels")?;
    if stored.label == change.new_label {
        return Ok(LabelChange {
            event_id: None,
            image: change.image.to_string(),
            facet,
            old_label: old_label.clone(),
            new_label: old_label,
            version: stored.version,
        });
    }
    write_label(conn, vocabulary, change, now).await?;
    let event_id = record_event(conn, change, stored.label, now).await?;
    Ok(LabelChange {
        event_id: Some(event_id),
        image: change.image.to_string(),
        facet,
        old_label,
        new_label: vocabulary.stored_label_name(change.facet, change.new_label, "labels")?,
        version: stored.version + 1,
    })
}

/// Writes the change's label if its version is still the expected one, else fails with
/// [`CatalogError::Conflict`]. The read in [`apply`] is only for the messages: the guard is in
/// the write, which another transaction's committed change makes match nothing.
async fn write_label(
    conn: &mut AnyConnection,
    vocabulary: &Vocabulary,
    change: &Change<'_>,
    now: i64,
) -> Result<(), CatalogError> {
    let written = if change.expected_version == 0 {
        sqlx::query(
            "INSERT INTO labels (image_id, facet_id, label_id, source, version, updated_at) \
             VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (image_id, facet_id) DO NOTHING",
        )
        .bind(change.image)
        .bind(change.facet)
        .bind(change.new_label)
        .bind(change.source)
        .bind(now)
        .execute(&mut *conn)
        .await
    } else {
        sqlx::query(
            "UPDATE labels SET label_id = $1, source = $2, version = version + 1, updated_at = $3 \
             WHERE image_id = $4 AND facet_id = $5 AND version = $6",
        )
        .bind(change.new_label)
        .bind(change.source)
        .bind(now)
        .bind(change.image)
        .bind(change.facet)
        .bind(change.expected_version)
        .execute(&mut *conn)
        .await
    }
    .map_err(db("changing a label"))?;
    if written.rows_affected() == 0 {
        let now_stored = current(conn, change.image, change.facet).await?;
        return Err(conflict(
            vocabulary,
            change.image,
            change.facet,
            change.expected_version,
            now_stored,
        )?);
    }
    Ok(())
}

/// Records the change as a label event from `old_label`, and returns the event's id.
async fn record_event(
    conn: &mut AnyConnection,
    change: &Change<'_>,
    old_label: Option<i64>,
    now: i64,
) -> Result<i64, CatalogError> {
    sqlx::query(
        "INSERT INTO label_events (image_id, facet_id, old_label_id, new_label_id, actor, \
         source, reason, run_id, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(change.image)
    .bind(change.facet)
    .bind(old_label)
    .bind(change.new_label)
    .bind(change.actor)
    .bind(change.source)
    .bind(change.reason)
    .bind(change.run_id)
    .bind(now)
    .fetch_one(&mut *conn)
    .await
    .and_then(|row| row.try_get("id"))
    .map_err(db("recording a label event"))
}
