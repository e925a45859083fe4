//! Reviewing labels: audited retagging with optimistic versions, undo, and the queries behind
//! the review pages (a run's mistakes for one label, one confusion-matrix cell, one image's
//! predictions, the current labels of a facet).
//!
//! Every `labels` row carries a version that grows by one on each change, and every change
//! writes one `label_events` row. A reviewer's edit names the version it was based on; the
//! write is guarded by that version inside the statement itself (`UPDATE ... WHERE version =
//! expected`, or an insert that does nothing when a row appeared), so that of two reviewers
//! who saw the same version exactly one wins, on SQLite and on PostgreSQL (which runs READ
//! COMMITTED, where a read followed by a write would let both through).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::error::{CatalogError, db};
use crate::model::{Backend, Split, Status};
use crate::runs::{
    PREDICTION_COLUMNS, PredictionRecord, Vocabulary, ensure_run_exists, prediction_record,
};
use crate::sql::{assembled, now_millis};

/// The `source` of labels and events written by reviewers.
pub(crate) const REVIEW_SOURCE: &str = "review";

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

/// Which predictions of a run a review page shows, for one facet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReviewFilter {
    /// Labelled `label` when the run was trained, but predicted as something else.
    FalseNegatives { label: String },
    /// Predicted `label`, but labelled something else when the run was trained (images
    /// without a label are left out).
    FalsePositives { label: String },
    /// One cell of the confusion matrix: labelled `label`, predicted `predicted` (the two may
    /// be equal: the diagonal).
    Cell { label: String, predicted: String },
}

/// A page of a run's predictions for one facet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewQuery {
    pub run: i64,
    pub facet: String,
    pub filter: ReviewFilter,
    /// Only this split; `None`: both.
    pub split: Option<Split>,
    /// Items to skip (of the ordered result).
    pub offset: u64,
    /// Most items to return.
    pub limit: u64,
}

/// One prediction on a review page, with the image's current label to edit against.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewItem {
    pub image_id: String,
    pub split: Split,
    /// The image's label when the run was trained.
    pub label_at_training: Option<String>,
    /// The image's label now (a reviewer may have changed it since the run).
    pub current_label: Option<String>,
    /// The version of the current label, to send back with an edit; 0 when the image never
    /// had a label for the facet.
    pub version: i64,
    pub predicted: String,
    /// Probability of `predicted`.
    pub confidence: f64,
}

/// The items of one page and how many items the whole query has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewPage {
    pub total: u64,
    pub items: Vec<ReviewItem>,
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
}

pub(crate) async fn set_labels(
    pool: &AnyPool,
    backend: Backend,
    edits: &[LabelEdit],
) -> Result<Vec<LabelChange>, CatalogError> {
    let context = "changing labels";
    let mut tx = crate::begin_write(pool, backend).await?;
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
        };
        changes[index] = Some(apply(&mut tx, &vocabulary, &change, now).await?);
    }
    // Any error above drops the transaction, which rolls every edit of the batch back.
    tx.commit().await.map_err(db(context))?;
    Ok(changes.into_iter().flatten().collect())
}

pub(crate) async fn undo_label_event(
    pool: &AnyPool,
    backend: Backend,
    event_id: i64,
    actor: &str,
) -> Result<LabelChange, CatalogError> {
    let context = "undoing a label change";
    check_actor(actor)?;
    let mut tx = crate::begin_write(pool, backend).await?;
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
    let image: String = event.try_get(0).map_err(&get)?;
    let facet: i64 = event.try_get(1).map_err(&get)?;
    let old_label: Option<i64> = event.try_get(2).map_err(&get)?;
    let new_label: Option<i64> = event.try_get(3).map_err(&get)?;
    let run_id: Option<i64> = event.try_get(4).map_err(&get)?;

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
    };
    let undone = apply(&mut tx, &vocabulary, &change, now_millis()).await?;
    tx.commit().await.map_err(db(context))?;
    Ok(undone)
}

/// An actor is recorded with every event; an empty one would make the history anonymous.
fn check_actor(actor: &str) -> Result<(), CatalogError> {
    if actor.trim().is_empty() {
        return Err(CatalogError::InvalidUser(actor.to_string()));
    }
    Ok(())
}

/// Only active images are relabelled: a removed or quarantined one is not shown for review
/// and its labels are kept as history.
async fn ensure_active(conn: &mut AnyConnection, image: &str) -> Result<(), CatalogError> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM images WHERE id = $1")
        .bind(image)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("looking up an image"))?;
    match status.as_deref().map(Status::from_db).transpose()? {
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
            label: row.try_get(0).map_err(db(context))?,
            version: row.try_get(1).map_err(db(context))?,
        }),
    }
}

/// The name of label `id` of `facet`; an id the catalogue does not list is corruption.
fn label_name(
    vocabulary: &Vocabulary,
    facet: i64,
    id: Option<i64>,
    table: &'static str,
) -> Result<Option<String>, CatalogError> {
    let Some(id) = id else {
        return Ok(None);
    };
    vocabulary
        .labels(facet)
        .iter()
        .find(|(_, label)| *label == id)
        .map(|(name, _)| Some(name.clone()))
        .ok_or_else(|| CatalogError::Corrupt {
            table,
            column: "label_id",
            value: id.to_string(),
        })
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
        current_label: label_name(vocabulary, facet, current.label, "labels")?,
    })
}

/// Checks the version and writes one change with its event, inside the caller's transaction.
async fn apply(
    conn: &mut AnyConnection,
    vocabulary: &Vocabulary,
    change: &Change<'_>,
    now: i64,
) -> Result<LabelChange, CatalogError> {
    let context = "changing a label";
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
    let old_label = label_name(vocabulary, change.facet, stored.label, "labels")?;
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

    // The read above is only for the messages: the guard is in the write, which another
    // transaction's committed change makes match nothing.
    let written = if change.expected_version == 0 {
        sqlx::query(
            "INSERT INTO labels (image_id, facet_id, label_id, source, version, updated_at) \
             VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (image_id, facet_id) DO NOTHING",
        )
        .bind(change.image)
        .bind(change.facet)
        .bind(change.new_label)
        .bind(REVIEW_SOURCE)
        .bind(now)
        .execute(&mut *conn)
        .await
    } else {
        sqlx::query(
            "UPDATE labels SET label_id = $1, source = $2, version = version + 1, updated_at = $3 \
             WHERE image_id = $4 AND facet_id = $5 AND version = $6",
        )
        .bind(change.new_label)
        .bind(REVIEW_SOURCE)
        .bind(now)
        .bind(change.image)
        .bind(change.facet)
        .bind(change.expected_version)
        .execute(&mut *conn)
        .await
    }
    .map_err(db(context))?;
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

    let event_id: i64 = sqlx::query(
        "INSERT INTO label_events (image_id, facet_id, old_label_id, new_label_id, actor, \
         source, reason, run_id, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(change.image)
    .bind(change.facet)
    .bind(stored.label)
    .bind(change.new_label)
    .bind(change.actor)
    .bind(REVIEW_SOURCE)
    .bind(change.reason)
    .bind(change.run_id)
    .bind(now)
    .fetch_one(&mut *conn)
    .await
    .and_then(|row| row.try_get(0))
    .map_err(db("recording a label event"))?;
    Ok(LabelChange {
        event_id: Some(event_id),
        image: change.image.to_string(),
        facet,
        old_label,
        new_label: label_name(vocabulary, change.facet, change.new_label, "labels")?,
        version: stored.version + 1,
    })
}

/// Fails with [`CatalogError::FacetNotInRun`] unless `run` stored results for `facet`.
async fn ensure_run_has_facet(
    conn: &mut AnyConnection,
    run: i64,
    facet: i64,
    name: &str,
) -> Result<(), CatalogError> {
    let context = "reading a run's facets";
    let facets: Vec<(i64, String)> = sqlx::query(
        "SELECT rf.facet_id, f.name FROM run_facets rf JOIN facets f ON f.id = rf.facet_id \
         WHERE rf.run_id = $1 ORDER BY rf.position",
    )
    .bind(run)
    .fetch_all(&mut *conn)
    .await
    .map_err(db(context))?
    .iter()
    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
    .collect::<Result<_, sqlx::Error>>()
    .map_err(db(context))?;
    if facets.iter().any(|(id, _)| *id == facet) {
        return Ok(());
    }
    Err(CatalogError::FacetNotInRun {
        run,
        facet: name.to_string(),
        trained: if facets.is_empty() {
            "no facet (it has no results yet)".to_string()
        } else {
            facets
                .iter()
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
    })
}

/// How a statement over `predictions p` keeps the predictions of active images only, without
/// a look-up per prediction: a `WITH` clause to put before the statement, and a condition for
/// its `WHERE`. Both exclude the (usually few) images that are not active, found through the
/// `images (status, split)` index. Each engine needs its own spelling to do that well:
/// SQLite evaluates `NOT IN (subquery)` once into a temporary index, where a `NOT EXISTS`
/// would run per row. PostgreSQL, under a LIMIT, plans `NOT EXISTS` on `images` as a
/// primary-key look-up per row, and stops hashing a `NOT IN` list once it outgrows
/// `work_mem`; a materialised list has no index to look up, so it is hashed (and a hash join
/// spills to disk gracefully).
fn active_images_only(backend: Backend) -> (&'static str, &'static str) {
    match backend {
        Backend::Sqlite => (
            "",
            "p.image_id NOT IN (SELECT id FROM images WHERE status IN ('quarantined', 'removed'))",
        ),
        Backend::Postgres => (
            "WITH inactive AS MATERIALIZED \
             (SELECT id FROM images WHERE status IN ('quarantined', 'removed')) ",
            "NOT EXISTS (SELECT 1 FROM inactive WHERE inactive.id = p.image_id)",
        ),
    }
}

pub(crate) async fn review_page(
    pool: &AnyPool,
    backend: Backend,
    query: &ReviewQuery,
) -> Result<ReviewPage, CatalogError> {
    let context = "reading a review page";
    let mut conn = pool.acquire().await.map_err(db(context))?;
    ensure_run_exists(&mut conn, query.run).await?;
    let vocabulary = Vocabulary::load(&mut conn).await?;
    let facet = vocabulary.facet_id(&query.facet)?;
    ensure_run_has_facet(&mut conn, query.run, facet, &query.facet).await?;
    let label_id = |label: &str| {
        vocabulary.label_id(facet, label, || {
            format!("review of run {}, facet {:?}", query.run, query.facet)
        })
    };

    // Parameters: $1 run, $2 facet, $3 and $4 the filter's labels, then the split, if any.
    // Each filter is a range of one of the two covering indexes of migration 0004:
    // predictions_by_label (run, facet, label, predicted, confidence DESC, image, split) or
    // predictions_by_prediction (run, facet, predicted, confidence DESC, image, label, split).
    // "Anything but L" is written as the list of the facet's other labels: `<> L` is no index
    // range, so the database would walk every row of L and sort the survivors, while `IN
    // (others)` is one short range per other label (100 000 images: 4.5 ms -> 1 ms a count).
    // The ids come from the catalogue itself, so inlining them is safe; `<> $4` stays so that
    // every statement binds the same parameters.
    let others = |id: i64| {
        let ids: Vec<String> = vocabulary
            .labels(facet)
            .iter()
            .map(|(_, other)| *other)
            .filter(|other| *other != id)
            .map(|other| other.to_string())
            .collect();
        if ids.is_empty() {
            "(NULL)".to_string()
        } else {
            format!("({})", ids.join(", "))
        }
    };
    let (filter, first, second) = match &query.filter {
        ReviewFilter::FalseNegatives { label } => {
            let id = label_id(label)?;
            (
                format!(
                    "p.label_id = $3 AND p.predicted_label_id <> $4 AND p.predicted_label_id IN {}",
                    others(id)
                ),
                id,
                id,
            )
        }
        ReviewFilter::FalsePositives { label } => {
            let id = label_id(label)?;
            (
                format!(
                    "p.predicted_label_id = $3 AND p.label_id <> $4 AND p.label_id IN {}",
                    others(id)
                ),
                id,
                id,
            )
        }
        ReviewFilter::Cell { label, predicted } => (
            "p.label_id = $3 AND p.predicted_label_id = $4".to_string(),
            label_id(label)?,
            label_id(predicted)?,
        ),
    };
    let split = if query.split.is_some() {
        " AND p.split = $5"
    } else {
        ""
    };
    let (limit, offset) = if query.split.is_some() {
        ("$6", "$7")
    } else {
        ("$5", "$6")
    };
    let (with, active) = active_images_only(backend);
    let conditions = format!("p.run_id = $1 AND p.facet_id = $2 AND {filter}{split} AND {active}");

    let mut count = assembled(format!(
        "{with}SELECT COUNT(*) FROM predictions p WHERE {conditions}"
    ))
    .bind(query.run)
    .bind(facet)
    .bind(first)
    .bind(second);
    if let Some(split) = query.split {
        count = count.bind(split.as_str());
    }
    let total: i64 = count
        .fetch_one(&mut *conn)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(db(context))?;

    // The page is cut from the index first; only its rows then look up their current label.
    let mut page = assembled(format!(
        "{with}SELECT page.image_id, page.split, page.label_id, l.label_id, l.version, \
                page.predicted_label_id, page.confidence \
         FROM (SELECT p.image_id, p.facet_id, p.split, p.label_id, p.predicted_label_id, \
                      p.confidence \
               FROM predictions p WHERE {conditions} \
               ORDER BY p.confidence DESC, p.image_id LIMIT {limit} OFFSET {offset}) page \
         LEFT JOIN labels l ON l.image_id = page.image_id AND l.facet_id = page.facet_id \
         ORDER BY page.confidence DESC, page.image_id"
    ))
    .bind(query.run)
    .bind(facet)
    .bind(first)
    .bind(second);
    if let Some(split) = query.split {
        page = page.bind(split.as_str());
    }
    let rows = page
        .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
        .bind(i64::try_from(query.offset).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await
        .map_err(db(context))?;

    let get = db(context);
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let split: String = row.try_get(1).map_err(&get)?;
        let version: Option<i64> = row.try_get(4).map_err(&get)?;
        let predicted: i64 = row.try_get(5).map_err(&get)?;
        items.push(ReviewItem {
            image_id: row.try_get(0).map_err(&get)?,
            split: Split::from_db(&split)?,
            label_at_training: label_name(
                &vocabulary,
                facet,
                row.try_get(2).map_err(&get)?,
                "predictions",
            )?,
            current_label: label_name(&vocabulary, facet, row.try_get(3).map_err(&get)?, "labels")?,
            version: version.unwrap_or(0),
            predicted: label_name(&vocabulary, facet, Some(predicted), "predictions")?
                .unwrap_or_default(),
            confidence: row.try_get(6).map_err(&get)?,
        });
    }
    Ok(ReviewPage {
        total: total.max(0) as u64,
        items,
    })
}

pub(crate) async fn image_predictions(
    pool: &AnyPool,
    image: &str,
    run: i64,
) -> Result<Vec<PredictionRecord>, CatalogError> {
    let context = "reading an image's predictions";
    let mut conn = pool.acquire().await.map_err(db(context))?;
    ensure_run_exists(&mut conn, run).await?;
    let exists = sqlx::query("SELECT 1 FROM images WHERE id = $1")
        .bind(image)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db(context))?;
    if exists.is_none() {
        return Err(CatalogError::UnknownImage(image.to_string()));
    }
    // From the run's few facets to one primary-key look-up of a prediction each. SQLite
    // takes CROSS JOIN as "in this order" (left to right); without it, it may start from the
    // image and scan every prediction of the run. PostgreSQL plans it as an inner join.
    let sql = format!(
        "SELECT {PREDICTION_COLUMNS} \
         FROM run_facets rf CROSS JOIN predictions p \
         JOIN images i ON i.id = p.image_id \
         JOIN facets f ON f.id = p.facet_id \
         JOIN facet_labels pl ON pl.id = p.predicted_label_id \
         LEFT JOIN facet_labels l ON l.id = p.label_id \
         WHERE rf.run_id = $1 AND p.run_id = rf.run_id AND p.facet_id = rf.facet_id \
           AND p.image_id = $2 \
         ORDER BY rf.position"
    );
    assembled(sql)
        .bind(run)
        .bind(image)
        .fetch_all(&mut *conn)
        .await
        .map_err(db(context))?
        .iter()
        .map(prediction_record)
        .collect()
}

pub(crate) async fn current_labels(
    pool: &AnyPool,
    backend: Backend,
    facet: &str,
) -> Result<HashMap<String, (Option<String>, i64)>, CatalogError> {
    let context = "reading current labels";
    let mut conn = pool.acquire().await.map_err(db(context))?;
    let vocabulary = Vocabulary::load(&mut conn).await?;
    let facet_id = vocabulary.facet_id(facet)?;
    let names = vocabulary.label_names(facet_id);
    // Two index scans instead of a join that would look up every label's image: the images
    // that are not active (few), left out below, and the facet's labels, which
    // labels_facet_label (facet, label, version, image) holds in full. The labels come as one
    // row per (label, version) with the image ids joined by spaces (ids never contain one):
    // for 100 000 images, a row per image costs several times the query in driver overhead.
    let inactive: HashSet<String> =
        sqlx::query_scalar("SELECT id FROM images WHERE status IN ('quarantined', 'removed')")
            .fetch_all(&mut *conn)
            .await
            .map_err(db(context))?
            .into_iter()
            .collect();
    let joined = match backend {
        Backend::Sqlite => "group_concat(image_id, ' ')",
        Backend::Postgres => "string_agg(image_id, ' ')",
    };
    let groups = assembled(format!(
        "SELECT label_id, version, {joined} FROM labels WHERE facet_id = $1 \
         GROUP BY label_id, version"
    ))
    .bind(facet_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db(context))?;
    let get = db(context);
    let groups = groups
        .iter()
        .map(|group| {
            Ok((
                group.try_get::<Option<i64>, _>(0)?,
                group.try_get::<i64, _>(1)?,
                group.try_get::<String, _>(2)?,
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(&get)?;
    // Sized up front: growing a map of 100 000 entries step by step rehashes it many times.
    let count: usize = groups
        .iter()
        .map(|(_, _, images)| images.split(' ').count())
        .sum();
    let mut labels = HashMap::with_capacity(count);
    for (label, version, images) in groups {
        let name = match label {
            None => None,
            Some(id) => Some(*names.get(&id).ok_or_else(|| CatalogError::Corrupt {
                table: "labels",
                column: "label_id",
                value: id.to_string(),
            })?),
        };
        for image in images.split(' ') {
            if inactive.is_empty() || !inactive.contains(image) {
                labels.insert(image.to_string(), (name.map(str::to_string), version));
            }
        }
    }
    Ok(labels)
}
