//! Dress boxes as reviewers edit them: each image's current dress box, edits guarded by an
//! optimistic version and recorded as box events, and where similarity models located each
//! dress (with how sure they were), which orders the queue of boxes worth checking.
//!
//! An image's current dress box is its reviewer's box (`boxes.source = 'review'`, at most one
//! per image) when it has one, else its first imported one. Its version is the reviewer box's
//! (1 on the first edit, one more on each later one) and 0 while the box is the imported one
//! or there is none, so an editor that saw version 0 creates the reviewer box and one that saw
//! version n updates it; the check is inside the write statement, so of two editors who saw
//! the same version exactly one wins. Re-importing a manifest replaces imported boxes only.

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::model::BoxRecord;
use crate::queries::boxes_of;
use crate::relabel::{REVIEW_SOURCE, check_actor, ensure_active};
use crate::source::BoxCoords;
use crate::sql::now_millis;

/// What a missing float is bound as, and turned back into NULL by `NULLIF(.., -1.0)`: sqlx
/// 0.9's `Any` driver binds a NULL f64 as a PostgreSQL `real` (4 bytes), and a statement first
/// prepared with it then refuses 8-byte values. Every stored value here is 0 or more.
const NO_VALUE: f64 = -1.0;

/// An image's current dress box.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DressBox {
    pub coords: BoxCoords,
    /// 'review' for a reviewer's box, else where it came from ('import').
    pub source: String,
    /// 0 for an imported box; the reviewer box's version otherwise.
    pub version: i64,
    /// Who changed it last (reviewer boxes only).
    pub actor: Option<String>,
    pub updated_at: Option<i64>,
}

/// A reviewer's new dress box for an image.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxEdit {
    pub image: String,
    pub coords: BoxCoords,
    /// The version the editor saw ([`DressBox::version`], 0 when there was no reviewer box).
    pub expected_version: i64,
    pub actor: String,
}

/// One recorded box change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoxEvent {
    pub id: i64,
    pub image: String,
    /// The box before the change (`None`: the image had none).
    pub old: Option<BoxCoords>,
    pub new: BoxCoords,
    pub actor: String,
    pub at: i64,
}

/// Where a similarity run's model located one image's dress, and how sure it was.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocatedBox {
    pub image: String,
    pub coords: BoxCoords,
    /// The foreground classifier's mean probability inside the box.
    pub foreground: Option<f64>,
    /// The IoU of the regressor's box with the final one.
    pub agreement: Option<f64>,
}

/// One entry of the queue of boxes worth checking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnsureBox {
    pub located: LocatedBox,
    pub uri: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The image's current dress box (imported; images with a reviewer's box are left out).
    pub current: Option<DressBox>,
}

impl DressBox {
    /// The current dress box among an image's boxes ([`crate::ImageRecord::boxes`]): the
    /// reviewer's, else the first imported one.
    pub fn current_of(boxes: &[BoxRecord]) -> Option<DressBox> {
        let dress = |source: bool| {
            boxes
                .iter()
                .find(|b| b.kind == "dress" && (b.source == REVIEW_SOURCE) == source)
        };
        let found = dress(true).or_else(|| dress(false))?;
        Some(DressBox {
            coords: [found.x0, found.y0, found.x1, found.y1],
            version: if found.source == REVIEW_SOURCE {
                found.version
            } else {
                0
            },
            source: found.source.clone(),
            actor: found.actor.clone(),
            updated_at: found.updated_at,
        })
    }
}

impl Catalog {
    /// An image's current dress box (see the module docs), or `None` when it has none.
    pub async fn dress_box(&self, image: &str) -> Result<Option<DressBox>, CatalogError> {
        let mut conn = self.pool.acquire().await.map_err(db("reading a box"))?;
        current_box(&mut conn, image).await
    }

    /// Sets an image's dress box as a reviewer and records the change, in one transaction.
    /// The box must lie inside the image with positive width and height
    /// ([`CatalogError::InvalidBox`]); the image must be active; if the box moved on since
    /// `expected_version`, [`CatalogError::BoxConflict`] carries the current one and nothing
    /// is written. Returns the recorded event and the new box.
    pub async fn set_dress_box(
        &self,
        edit: &BoxEdit,
    ) -> Result<(BoxEvent, DressBox), CatalogError> {
        let context = "changing a box";
        check_actor(&edit.actor)?;
        let mut tx = self.begin_write().await?;
        ensure_active(&mut tx, &edit.image).await?;
        check_inside(&mut tx, edit).await?;
        let before = current_box(&mut tx, &edit.image).await?;
        let now = now_millis();
        let written = match edit.expected_version {
            0 => insert_review_box(&mut tx, edit, now).await?,
            _ => update_review_box(&mut tx, edit, now).await?,
        };
        if !written {
            // Read again: on PostgreSQL the box that won may have been written after `before`.
            let current = current_box(&mut tx, &edit.image).await?;
            return Err(CatalogError::BoxConflict {
                image: edit.image.clone(),
                expected_version: edit.expected_version,
                current: current.map(Box::new),
            });
        }
        let [x0, y0, x1, y1] = edit.coords;
        let old = before.as_ref().map(|b| b.coords);
        // No old box is bound as coordinates of -1 (see NO_VALUE).
        let old_at = |i: usize| old.map_or(NO_VALUE, |o| o[i]);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO box_events (image_id, old_x0, old_y0, old_x1, old_y1, \
             new_x0, new_y0, new_x1, new_y1, actor, at) \
             VALUES ($1, NULLIF($2, -1.0), NULLIF($3, -1.0), NULLIF($4, -1.0), \
             NULLIF($5, -1.0), $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(edit.image.as_str())
        .bind(old_at(0))
        .bind(old_at(1))
        .bind(old_at(2))
        .bind(old_at(3))
        .bind(x0)
        .bind(y0)
        .bind(x1)
        .bind(y1)
        .bind(edit.actor.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db(context))?;
        let after =
            current_box(&mut tx, &edit.image)
                .await?
                .ok_or_else(|| CatalogError::Damaged {
                    context,
                    reason: "the box just written is missing".to_string(),
                })?;
        tx.commit().await.map_err(db(context))?;
        let event = BoxEvent {
            id,
            image: edit.image.clone(),
            old,
            new: edit.coords,
            actor: edit.actor.clone(),
            at: now,
        };
        Ok((event, after))
    }

    /// An image's box changes, oldest first.
    pub async fn box_events(&self, image: &str) -> Result<Vec<BoxEvent>, CatalogError> {
        let context = "reading box changes";
        let rows = sqlx::query(
            "SELECT id, old_x0, old_y0, old_x1, old_y1, new_x0, new_y0, new_x1, new_y1, actor, at \
             FROM box_events WHERE image_id = $1 ORDER BY id",
        )
        .bind(image)
        .fetch_all(&self.pool)
        .await
        .map_err(db(context))?;
        rows.iter()
            .map(|row| {
                let get = db(context);
                let old: [Option<f64>; 4] = [
                    row.try_get("old_x0").map_err(&get)?,
                    row.try_get("old_y0").map_err(&get)?,
                    row.try_get("old_x1").map_err(&get)?,
                    row.try_get("old_y1").map_err(&get)?,
                ];
                Ok(BoxEvent {
                    id: row.try_get("id").map_err(&get)?,
                    image: image.to_string(),
                    old: match old {
                        [Some(a), Some(b), Some(c), Some(d)] => Some([a, b, c, d]),
                        _ => None,
                    },
                    new: coords(row, "new_", context)?,
                    actor: row.try_get("actor").map_err(&get)?,
                    at: row.try_get("at").map_err(&get)?,
                })
            })
            .collect()
    }

    /// Stores (or replaces) where `run`'s model located the dress in each image, in one
    /// transaction.
    pub async fn store_located_boxes(
        &self,
        run: i64,
        boxes: &[LocatedBox],
    ) -> Result<(), CatalogError> {
        let context = "storing located boxes";
        let mut tx = self.begin_write().await?;
        crate::runs::ensure_run_exists(&mut tx, run).await?;
        for located in boxes {
            let [x0, y0, x1, y1] = located.coords;
            sqlx::query(
                "INSERT INTO located_boxes (run_id, image_id, x0, y0, x1, y1, foreground, \
                 agreement) VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7, -1.0), NULLIF($8, -1.0)) \
                 ON CONFLICT (run_id, image_id) DO UPDATE SET x0 = excluded.x0, \
                 y0 = excluded.y0, x1 = excluded.x1, y1 = excluded.y1, \
                 foreground = excluded.foreground, agreement = excluded.agreement",
            )
            .bind(run)
            .bind(located.image.as_str())
            .bind(x0)
            .bind(y0)
            .bind(x1)
            .bind(y1)
            .bind(located.foreground.unwrap_or(NO_VALUE))
            .bind(located.agreement.unwrap_or(NO_VALUE))
            .execute(&mut *tx)
            .await
            .map_err(db(context))?;
        }
        tx.commit().await.map_err(db(context))
    }

    /// Where `run`'s model located the dress of `image`, if it did.
    pub async fn located_box(
        &self,
        run: i64,
        image: &str,
    ) -> Result<Option<LocatedBox>, CatalogError> {
        let context = "reading a located box";
        let row = sqlx::query(
            "SELECT x0, y0, x1, y1, foreground, agreement FROM located_boxes \
             WHERE run_id = $1 AND image_id = $2",
        )
        .bind(run)
        .bind(image)
        .fetch_optional(&self.pool)
        .await
        .map_err(db(context))?;
        row.map(|row| located(&row, image.to_string(), context))
            .transpose()
    }

    /// The boxes `run`'s model was least sure of, least sure first: by the lower of its
    /// foreground confidence and its regressor's agreement with the final box. Only active
    /// images without a reviewer's box (a checked box leaves the queue); `limit` of them from
    /// `offset` on.
    pub async fn least_sure_boxes(
        &self,
        run: i64,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<UnsureBox>, CatalogError> {
        let context = "reading the least sure boxes";
        let rows = sqlx::query(
            "SELECT l.image_id, l.x0, l.y0, l.x1, l.y1, l.foreground, l.agreement, i.uri, \
             i.width, i.height FROM located_boxes l JOIN images i ON i.id = l.image_id \
             WHERE l.run_id = $1 AND i.status = 'active' AND NOT EXISTS (\
               SELECT 1 FROM boxes b WHERE b.image_id = l.image_id \
               AND b.kind = 'dress' AND b.source = 'review') \
             ORDER BY CASE WHEN COALESCE(l.foreground, 1.0) < COALESCE(l.agreement, 1.0) \
               THEN COALESCE(l.foreground, 1.0) ELSE COALESCE(l.agreement, 1.0) END, \
               l.image_id LIMIT $2 OFFSET $3",
        )
        .bind(run)
        .bind(limit as i64)
        .bind(offset as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db(context))?;
        let mut queue = Vec::with_capacity(rows.len());
        let mut conn = self.pool.acquire().await.map_err(db(context))?;
        for row in &rows {
            let get = db(context);
            let image: String = row.try_get("image_id").map_err(&get)?;
            queue.push(UnsureBox {
                current: current_box(&mut conn, &image).await?,
                uri: row.try_get("uri").map_err(&get)?,
                width: row
                    .try_get::<Option<i64>, _>("width")
                    .map_err(&get)?
                    .map(|w| w as u32),
                height: row
                    .try_get::<Option<i64>, _>("height")
                    .map_err(&get)?
                    .map(|h| h as u32),
                located: located(row, image, context)?,
            });
        }
        Ok(queue)
    }
}

/// The four coordinates of a row whose columns are `prefix` + x0, y0, x1, y1.
fn coords(
    row: &sqlx::any::AnyRow,
    prefix: &str,
    context: &'static str,
) -> Result<BoxCoords, CatalogError> {
    let mut out = [0.0; 4];
    for (value, name) in out.iter_mut().zip(["x0", "y0", "x1", "y1"]) {
        *value = row
            .try_get(format!("{prefix}{name}").as_str())
            .map_err(db(context))?;
    }
    Ok(out)
}

/// A `located_boxes` row (its coordinates, foreground and agreement) of `image`.
fn located(
    row: &sqlx::any::AnyRow,
    image: String,
    context: &'static str,
) -> Result<LocatedBox, CatalogError> {
    let get = db(context);
    Ok(LocatedBox {
        coords: coords(row, "", context)?,
        foreground: row.try_get("foreground").map_err(&get)?,
        agreement: row.try_get("agreement").map_err(&get)?,
        image,
    })
}

/// The current dress box of `image` on `conn`.
async fn current_box(
    conn: &mut AnyConnection,
    image: &str,
) -> Result<Option<DressBox>, CatalogError> {
    let boxes = boxes_of(conn, image, "reading a box").await?;
    Ok(DressBox::current_of(&boxes))
}

/// Refuses a box that is not a finite, non-empty rectangle inside the image.
async fn check_inside(conn: &mut AnyConnection, edit: &BoxEdit) -> Result<(), CatalogError> {
    let size: Option<(Option<i64>, Option<i64>)> =
        sqlx::query_as("SELECT width, height FROM images WHERE id = $1")
            .bind(edit.image.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db("reading an image's size"))?;
    let (width, height) = size.unwrap_or((None, None));
    let [x0, y0, x1, y1] = edit.coords;
    let invalid = |message: String| CatalogError::InvalidBox {
        image: edit.image.clone(),
        message,
    };
    if !edit.coords.iter().all(|c| c.is_finite()) {
        return Err(invalid("a coordinate is not a number".to_string()));
    }
    if x0 < 0.0 || y0 < 0.0 {
        return Err(invalid(format!(
            "the top-left corner ({x0}, {y0}) lies outside the image; use 0 or more"
        )));
    }
    if x1 <= x0 || y1 <= y0 {
        return Err(invalid(format!(
            "x1 must be greater than x0 and y1 than y0 (got {x0}, {y0}, {x1}, {y1})"
        )));
    }
    if let (Some(w), Some(h)) = (width, height)
        && (x1 > w as f64 || y1 > h as f64)
    {
        return Err(invalid(format!(
            "the bottom-right corner ({x1}, {y1}) lies outside the {w}x{h} image"
        )));
    }
    Ok(())
}

/// Creates the image's reviewer box at version 1; false when one exists already.
async fn insert_review_box(
    conn: &mut AnyConnection,
    edit: &BoxEdit,
    now: i64,
) -> Result<bool, CatalogError> {
    let [x0, y0, x1, y1] = edit.coords;
    let done = sqlx::query(
        "INSERT INTO boxes (image_id, x0, y0, x1, y1, kind, source, version, actor, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'dress', $6, 1, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(edit.image.as_str())
    .bind(x0)
    .bind(y0)
    .bind(x1)
    .bind(y1)
    .bind(REVIEW_SOURCE)
    .bind(edit.actor.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(db("changing a box"))?;
    Ok(done.rows_affected() == 1)
}

/// Moves the image's reviewer box on from `expected_version`; false when it is not there.
async fn update_review_box(
    conn: &mut AnyConnection,
    edit: &BoxEdit,
    now: i64,
) -> Result<bool, CatalogError> {
    let [x0, y0, x1, y1] = edit.coords;
    let done = sqlx::query(
        "UPDATE boxes SET x0 = $1, y0 = $2, x1 = $3, y1 = $4, version = version + 1, \
         actor = $5, updated_at = $6 \
         WHERE image_id = $7 AND kind = 'dress' AND source = $8 AND version = $9",
    )
    .bind(x0)
    .bind(y0)
    .bind(x1)
    .bind(y1)
    .bind(edit.actor.as_str())
    .bind(now)
    .bind(edit.image.as_str())
    .bind(REVIEW_SOURCE)
    .bind(edit.expected_version)
    .execute(&mut *conn)
    .await
    .map_err(db("changing a box"))?;
    Ok(done.rows_affected() == 1)
}
