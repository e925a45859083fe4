//! Read-side reports (facets, summary, history, single images) and label ordering.

use std::collections::{BTreeSet, HashMap};

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::model::{
    BoxRecord, CatalogSummary, FacetSummary, ImageLabel, ImageRecord, LabelEvent, LabelSummary,
    QuarantinedImage, Split, SplitCounts, Status,
};
use crate::runs::ensure_image_exists;
use crate::sql::split_from_db;
use crate::sql::status_from_db;

impl Catalog {
    /// The facets' names in creation order (without [`Catalog::facets`]' counts, which read
    /// every label).
    pub async fn facet_names(&self) -> Result<Vec<String>, CatalogError> {
        sqlx::query_scalar("SELECT name FROM facets ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing facet names"))
    }

    /// Facets in creation order, each with its labels in stored order and, per label, the
    /// number of active images per split carrying it.
    pub async fn facets(&self) -> Result<Vec<FacetSummary>, CatalogError> {
        let context = "listing facets";
        // LEFT JOINs keep facets without labels and labels without active images.
        let rows = sqlx::query(
            "SELECT f.id, f.name, fl.label, \
                    COUNT(CASE WHEN i.split = 'train' THEN 1 END) AS train, \
                    COUNT(CASE WHEN i.split = 'test' THEN 1 END) AS test \
             FROM facets f \
             LEFT JOIN facet_labels fl ON fl.facet_id = f.id \
             LEFT JOIN labels l ON l.label_id = fl.id \
             LEFT JOIN images i ON i.id = l.image_id AND i.status = 'active' \
             GROUP BY f.id, f.name, fl.id, fl.label, fl.position \
             ORDER BY f.id, fl.position, fl.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db(context))?;
        let mut out: Vec<FacetSummary> = Vec::new();
        let mut current: Option<i64> = None;
        for row in rows {
            let facet_id: i64 = row.try_get("id").map_err(db(context))?;
            if current != Some(facet_id) {
                current = Some(facet_id);
                out.push(FacetSummary {
                    name: row.try_get("name").map_err(db(context))?,
                    labels: Vec::new(),
                });
            }
            let label: Option<String> = row.try_get("label").map_err(db(context))?;
            if let (Some(label), Some(facet)) = (label, out.last_mut()) {
                facet.labels.push(LabelSummary {
                    label,
                    counts: SplitCounts {
                        train: count(&row, "train", context)?,
                        test: count(&row, "test", context)?,
                    },
                });
            }
        }
        Ok(out)
    }

    /// Reorders a facet's labels; `labels` must list each of its labels exactly once.
    pub async fn set_label_order(
        &self,
        facet: &str,
        labels: &[String],
    ) -> Result<(), CatalogError> {
        let context = "reordering labels";
        let mut tx = self.begin_write().await?;
        let facet_id: i64 = match sqlx::query("SELECT id FROM facets WHERE name = $1")
            .bind(facet)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(context))?
        {
            Some(row) => row.try_get("id").map_err(db(context))?,
            None => {
                let names: Vec<String> = sqlx::query_scalar("SELECT name FROM facets ORDER BY id")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db(context))?;
                return Err(CatalogError::UnknownFacet {
                    facet: facet.to_string(),
                    known: if names.is_empty() {
                        "no facets yet".to_string()
                    } else {
                        names.join(", ")
                    },
                });
            }
        };
        let stored: HashMap<String, i64> =
            sqlx::query("SELECT label, id FROM facet_labels WHERE facet_id = $1")
                .bind(facet_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db(context))?
                .iter()
                .map(|r| Ok((r.try_get("label")?, r.try_get("id")?)))
                .collect::<Result<_, sqlx::Error>>()
                .map_err(db(context))?;

        check_label_order(facet, &stored, labels)?;
        for (position, label) in labels.iter().enumerate() {
            sqlx::query("UPDATE facet_labels SET position = $1 WHERE id = $2")
                .bind(position as i64)
                .bind(stored[label])
                .execute(&mut *tx)
                .await
                .map_err(db(context))?;
        }
        tx.commit().await.map_err(db(context))?;
        Ok(())
    }

    /// Quarantined images with their reasons, ordered by uri.
    pub async fn quarantined(&self) -> Result<Vec<QuarantinedImage>, CatalogError> {
        let context = "listing quarantined images";
        sqlx::query(
            "SELECT id, uri, quarantine_reason FROM images WHERE status = 'quarantined' \
             ORDER BY uri, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db(context))?
        .iter()
        .map(|row| {
            Ok(QuarantinedImage {
                id: row.try_get("id")?,
                uri: row.try_get("uri")?,
                reason: row
                    .try_get::<Option<String>, _>("quarantine_reason")?
                    .unwrap_or_else(|| "no reason recorded".to_string()),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db(context))
    }

    pub async fn summary(&self) -> Result<CatalogSummary, CatalogError> {
        let context = "summarising the catalogue";
        let mut summary = CatalogSummary {
            backend: self.backend,
            images: 0,
            active: SplitCounts::default(),
            unchecked: 0,
            quarantined: SplitCounts::default(),
            removed: SplitCounts::default(),
            facets: 0,
            labels: 0,
            assignments: 0,
            designs: 0,
            boxes: 0,
            label_events: 0,
        };
        let rows = sqlx::query(
            "SELECT status, split, COUNT(*) AS images, COUNT(checked_at) AS checked FROM images \
             GROUP BY status, split",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db(context))?;
        for row in rows {
            let status = status_from_db(&row.try_get::<String, _>("status").map_err(db(context))?)?;
            let split = split_from_db(&row.try_get::<String, _>("split").map_err(db(context))?)?;
            let images = count(&row, "images", context)?;
            let checked = count(&row, "checked", context)?;
            summary.images += images;
            let counts = match status {
                Status::Active => {
                    summary.unchecked += images - checked;
                    &mut summary.active
                }
                Status::Quarantined => &mut summary.quarantined,
                Status::Removed => &mut summary.removed,
            };
            match split {
                Split::Train => counts.train += images,
                Split::Test => counts.test += images,
            }
        }
        let scalar = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&self.pool)
                .await
                .map(|n| n.max(0) as u64)
                .map_err(db(context))
        };
        summary.facets = scalar("SELECT COUNT(*) FROM facets").await?;
        summary.labels = scalar("SELECT COUNT(*) FROM facet_labels").await?;
        summary.assignments = scalar(
            "SELECT COUNT(*) FROM labels l JOIN images i ON i.id = l.image_id \
             WHERE l.label_id IS NOT NULL AND i.status = 'active'",
        )
        .await?;
        summary.designs = scalar("SELECT COUNT(*) FROM designs").await?;
        summary.boxes = scalar("SELECT COUNT(*) FROM boxes").await?;
        summary.label_events = scalar("SELECT COUNT(*) FROM label_events").await?;
        Ok(summary)
    }

    /// Every label change of an image, oldest first.
    pub async fn label_history(&self, image: &str) -> Result<Vec<LabelEvent>, CatalogError> {
        let context = "reading label history";
        let mut conn = self.pool.acquire().await.map_err(db(context))?;
        let rows = sqlx::query(
            "SELECT e.id, e.image_id, f.name AS facet, o.label AS old_label, n.label AS new_label, \
                    e.actor, e.source, e.reason, e.run_id, e.at \
             FROM label_events e \
             JOIN facets f ON f.id = e.facet_id \
             LEFT JOIN facet_labels o ON o.id = e.old_label_id \
             LEFT JOIN facet_labels n ON n.id = e.new_label_id \
             WHERE e.image_id = $1 ORDER BY e.id",
        )
        .bind(image)
        .fetch_all(&mut *conn)
        .await
        .map_err(db(context))?;
        // An event names its image; only an empty history needs the image looked up.
        if rows.is_empty() {
            ensure_image_exists(&mut conn, image, context).await?;
        }
        rows.iter()
            .map(|row| {
                Ok(LabelEvent {
                    id: row.try_get("id")?,
                    image: row.try_get("image_id")?,
                    facet: row.try_get("facet")?,
                    old_label: row.try_get("old_label")?,
                    new_label: row.try_get("new_label")?,
                    actor: row.try_get("actor")?,
                    source: row.try_get("source")?,
                    reason: row.try_get("reason")?,
                    run_id: row.try_get("run_id")?,
                    at: row.try_get("at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db(context))
    }

    /// The file path of each of `ids` the catalogue knows, by id.
    pub async fn image_uris(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, String>, CatalogError> {
        if ids.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        let mut conn = self.pool.acquire().await.map_err(db(IMAGE_CONTEXT))?;
        let rows = crate::sql::select_where_in(
            &mut conn,
            crate::sql::ParamStyle::for_backend(self.backend),
            "SELECT id, uri FROM images WHERE id IN (",
            "",
            ids,
        )
        .await
        .map_err(db(IMAGE_CONTEXT))?;
        rows.iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("uri")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db(IMAGE_CONTEXT))
    }

    /// One image with its labels and boxes, or `None` if the id is unknown.
    pub async fn image(&self, id: &str) -> Result<Option<ImageRecord>, CatalogError> {
        let Some(row) = sqlx::query(
            "SELECT id, uri, width, height, byte_size, split, status, quarantine_reason, source, \
                    design, created_at, updated_at, checked_at \
             FROM images WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db(IMAGE_CONTEXT))?
        else {
            return Ok(None);
        };
        let labels = self.image_labels(id).await?;
        let boxes = self.image_boxes(id).await?;
        image_record(&row, labels, boxes).map(Some)
    }

    /// An image's labels, in facet order.
    async fn image_labels(&self, id: &str) -> Result<Vec<ImageLabel>, CatalogError> {
        sqlx::query(
            "SELECT f.name AS facet, fl.label, l.source, l.version, l.updated_at \
             FROM labels l JOIN facets f ON f.id = l.facet_id \
             LEFT JOIN facet_labels fl ON fl.id = l.label_id \
             WHERE l.image_id = $1 ORDER BY f.id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db(IMAGE_CONTEXT))?
        .iter()
        .map(|r| {
            Ok(ImageLabel {
                facet: r.try_get("facet")?,
                label: r.try_get("label")?,
                source: r.try_get("source")?,
                version: r.try_get("version")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db(IMAGE_CONTEXT))
    }

    /// An image's boxes, in the order they were stored.
    async fn image_boxes(&self, id: &str) -> Result<Vec<BoxRecord>, CatalogError> {
        let mut conn = self.pool.acquire().await.map_err(db(IMAGE_CONTEXT))?;
        boxes_of(&mut conn, id, IMAGE_CONTEXT).await
    }
}

/// An image's boxes on `conn`, in the order they were stored.
pub(crate) async fn boxes_of(
    conn: &mut AnyConnection,
    image: &str,
    context: &'static str,
) -> Result<Vec<BoxRecord>, CatalogError> {
    sqlx::query(
        "SELECT x0, y0, x1, y1, kind, source, version, actor, updated_at FROM boxes \
         WHERE image_id = $1 ORDER BY id",
    )
    .bind(image)
    .fetch_all(&mut *conn)
    .await
    .map_err(db(context))?
    .iter()
    .map(|r| {
        Ok(BoxRecord {
            x0: r.try_get("x0")?,
            y0: r.try_get("y0")?,
            x1: r.try_get("x1")?,
            y1: r.try_get("y1")?,
            kind: r.try_get("kind")?,
            source: r.try_get("source")?,
            version: r.try_get("version")?,
            actor: r.try_get("actor")?,
            updated_at: r.try_get("updated_at")?,
        })
    })
    .collect::<Result<_, sqlx::Error>>()
    .map_err(db(context))
}

const IMAGE_CONTEXT: &str = "reading an image";

/// One `images` row with the image's labels and boxes.
fn image_record(
    row: &AnyRow,
    labels: Vec<ImageLabel>,
    boxes: Vec<BoxRecord>,
) -> Result<ImageRecord, CatalogError> {
    let get = db(IMAGE_CONTEXT);
    let dimension = |column: &str| -> Result<Option<u32>, CatalogError> {
        let value: Option<i64> = row.try_get(column).map_err(&get)?;
        Ok(value.and_then(|v| u32::try_from(v).ok()))
    };
    let split: String = row.try_get("split").map_err(&get)?;
    let status: String = row.try_get("status").map_err(&get)?;
    let byte_size: Option<i64> = row.try_get("byte_size").map_err(&get)?;
    Ok(ImageRecord {
        id: row.try_get("id").map_err(&get)?,
        uri: row.try_get("uri").map_err(&get)?,
        width: dimension("width")?,
        height: dimension("height")?,
        byte_size: byte_size.and_then(|b| u64::try_from(b).ok()),
        split: split_from_db(&split)?,
        status: status_from_db(&status)?,
        quarantine_reason: row.try_get("quarantine_reason").map_err(&get)?,
        source: row.try_get("source").map_err(&get)?,
        design: row.try_get("design").map_err(&get)?,
        created_at: row.try_get("created_at").map_err(&get)?,
        updated_at: row.try_get("updated_at").map_err(&get)?,
        checked_at: row.try_get("checked_at").map_err(&get)?,
        labels,
        boxes,
    })
}

fn count(row: &AnyRow, column: &str, context: &'static str) -> Result<u64, CatalogError> {
    let value: i64 = row.try_get(column).map_err(db(context))?;
    Ok(value.max(0) as u64)
}

/// Refuses a new label order that is not a permutation of the facet's `stored` labels, naming
/// the labels missing, unknown or repeated.
fn check_label_order(
    facet: &str,
    stored: &HashMap<String, i64>,
    labels: &[String],
) -> Result<(), CatalogError> {
    let mut problems = Vec::new();
    let mut given = BTreeSet::new();
    let mut repeated = BTreeSet::new();
    for label in labels {
        if !given.insert(label.as_str()) {
            repeated.insert(label.as_str());
        }
    }
    let mut missing: Vec<&str> = stored
        .keys()
        .map(String::as_str)
        .filter(|l| !given.contains(l))
        .collect();
    missing.sort_by(|a, b| crate::import::alphabetical(a, b));
    let unknown: Vec<&str> = given
        .iter()
        .copied()
        .filter(|l| !stored.contains_key(*l))
        .collect();
    if !missing.is_empty() {
        problems.push(format!("missing {}", quoted(&missing)));
    }
    if !unknown.is_empty() {
        problems.push(format!("unknown {}", quoted(&unknown)));
    }
    if !repeated.is_empty() {
        problems.push(format!(
            "repeated {}",
            quoted(&repeated.into_iter().collect::<Vec<_>>())
        ));
    }
    if !problems.is_empty() {
        return Err(CatalogError::LabelOrder {
            facet: facet.to_string(),
            problems: problems.join("; "),
        });
    }
    Ok(())
}

fn quoted(labels: &[&str]) -> String {
    labels
        .iter()
        .map(|l| format!("{l:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
