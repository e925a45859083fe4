//! Read-side reports (facets, summary, history, single images) and label ordering.

use std::collections::{BTreeSet, HashMap};

use sqlx::AnyPool;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{CatalogError, db};
use crate::model::{
    Backend, BoxRecord, CatalogSummary, FacetSummary, ImageLabel, ImageRecord, LabelEvent,
    LabelSummary, QuarantinedImage, Split, SplitCounts, Status,
};

pub(crate) async fn facets(pool: &AnyPool) -> Result<Vec<FacetSummary>, CatalogError> {
    let context = "listing facets";
    // LEFT JOINs keep facets without labels and labels without active images.
    let rows = sqlx::query(
        "SELECT f.id, f.name, fl.label, \
                COUNT(CASE WHEN i.split = 'train' THEN 1 END), \
                COUNT(CASE WHEN i.split = 'test' THEN 1 END) \
         FROM facets f \
         LEFT JOIN facet_labels fl ON fl.facet_id = f.id \
         LEFT JOIN labels l ON l.label_id = fl.id \
         LEFT JOIN images i ON i.id = l.image_id AND i.status = 'active' \
         GROUP BY f.id, f.name, fl.id, fl.label, fl.position \
         ORDER BY f.id, fl.position, fl.id",
    )
    .fetch_all(pool)
    .await
    .map_err(db(context))?;
    let mut out: Vec<FacetSummary> = Vec::new();
    let mut current: Option<i64> = None;
    for row in rows {
        let facet_id: i64 = row.try_get(0).map_err(db(context))?;
        if current != Some(facet_id) {
            current = Some(facet_id);
            out.push(FacetSummary {
                name: row.try_get(1).map_err(db(context))?,
                labels: Vec::new(),
            });
        }
        let label: Option<String> = row.try_get(2).map_err(db(context))?;
        if let (Some(label), Some(facet)) = (label, out.last_mut()) {
            facet.labels.push(LabelSummary {
                label,
                counts: SplitCounts {
                    train: count(&row, 3, context)?,
                    test: count(&row, 4, context)?,
                },
            });
        }
    }
    Ok(out)
}

fn count(row: &AnyRow, index: usize, context: &'static str) -> Result<u64, CatalogError> {
    let value: i64 = row.try_get(index).map_err(db(context))?;
    Ok(value.max(0) as u64)
}

pub(crate) async fn set_label_order(
    pool: &AnyPool,
    backend: Backend,
    facet: &str,
    labels: &[String],
) -> Result<(), CatalogError> {
    let context = "reordering labels";
    let mut tx = crate::begin_write(pool, backend).await?;
    let facet_id: i64 = match sqlx::query("SELECT id FROM facets WHERE name = $1")
        .bind(facet)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db(context))?
    {
        Some(row) => row.try_get(0).map_err(db(context))?,
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
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db(context))?;

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

fn quoted(labels: &[&str]) -> String {
    labels
        .iter()
        .map(|l| format!("{l:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) async fn quarantined(pool: &AnyPool) -> Result<Vec<QuarantinedImage>, CatalogError> {
    let context = "listing quarantined images";
    sqlx::query(
        "SELECT id, uri, quarantine_reason FROM images WHERE status = 'quarantined' ORDER BY uri, id",
    )
    .fetch_all(pool)
    .await
    .map_err(db(context))?
    .iter()
    .map(|row| {
        Ok(QuarantinedImage {
            id: row.try_get(0)?,
            uri: row.try_get(1)?,
            reason: row
                .try_get::<Option<String>, _>(2)?
                .unwrap_or_else(|| "no reason recorded".to_string()),
        })
    })
    .collect::<Result<_, sqlx::Error>>()
    .map_err(db(context))
}

pub(crate) async fn summary(
    pool: &AnyPool,
    backend: Backend,
) -> Result<CatalogSummary, CatalogError> {
    let context = "summarising the catalogue";
    let mut summary = CatalogSummary {
        backend,
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
        "SELECT status, split, COUNT(*), COUNT(checked_at) FROM images GROUP BY status, split",
    )
    .fetch_all(pool)
    .await
    .map_err(db(context))?;
    for row in rows {
        let status = Status::from_db(&row.try_get::<String, _>(0).map_err(db(context))?)?;
        let split = Split::from_db(&row.try_get::<String, _>(1).map_err(db(context))?)?;
        let images = count(&row, 2, context)?;
        let checked = count(&row, 3, context)?;
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
            .fetch_one(pool)
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

pub(crate) async fn label_history(
    pool: &AnyPool,
    image: &str,
) -> Result<Vec<LabelEvent>, CatalogError> {
    let context = "reading label history";
    let exists = sqlx::query("SELECT 1 FROM images WHERE id = $1")
        .bind(image)
        .fetch_optional(pool)
        .await
        .map_err(db(context))?;
    if exists.is_none() {
        return Err(CatalogError::UnknownImage(image.to_string()));
    }
    sqlx::query(
        "SELECT e.id, e.image_id, f.name, o.label, n.label, e.actor, e.source, e.reason, e.run_id, e.at \
         FROM label_events e \
         JOIN facets f ON f.id = e.facet_id \
         LEFT JOIN facet_labels o ON o.id = e.old_label_id \
         LEFT JOIN facet_labels n ON n.id = e.new_label_id \
         WHERE e.image_id = $1 ORDER BY e.id",
    )
    .bind(image)
    .fetch_all(pool)
    .await
    .map_err(db(context))?
    .iter()
    .map(|row| {
        Ok(LabelEvent {
            id: row.try_get(0)?,
            image: row.try_get(1)?,
            facet: row.try_get(2)?,
            old_label: row.try_get(3)?,
            new_label: row.try_get(4)?,
            actor: row.try_get(5)?,
            source: row.try_get(6)?,
            reason: row.try_get(7)?,
            run_id: row.try_get(8)?,
            at: row.try_get(9)?,
        })
    })
    .collect::<Result<_, sqlx::Error>>()
    .map_err(db(context))
}

pub(crate) async fn image(pool: &AnyPool, id: &str) -> Result<Option<ImageRecord>, CatalogError> {
    let context = "reading an image";
    let Some(row) = sqlx::query(
        "SELECT id, uri, width, height, byte_size, split, status, quarantine_reason, source, design, \
                created_at, updated_at, checked_at \
         FROM images WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(db(context))?
    else {
        return Ok(None);
    };
    let get = db(context);
    let dimension = |index: usize| -> Result<Option<u32>, CatalogError> {
        let value: Option<i64> = row.try_get(index).map_err(&get)?;
        Ok(value.and_then(|v| u32::try_from(v).ok()))
    };
    let labels = sqlx::query(
        "SELECT f.name, fl.label, l.source, l.version, l.updated_at \
         FROM labels l JOIN facets f ON f.id = l.facet_id \
         LEFT JOIN facet_labels fl ON fl.id = l.label_id \
         WHERE l.image_id = $1 ORDER BY f.id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .map_err(&get)?
    .iter()
    .map(|r| {
        Ok(ImageLabel {
            facet: r.try_get(0)?,
            label: r.try_get(1)?,
            source: r.try_get(2)?,
            version: r.try_get(3)?,
            updated_at: r.try_get(4)?,
        })
    })
    .collect::<Result<_, sqlx::Error>>()
    .map_err(&get)?;
    let boxes = sqlx::query(
        "SELECT x0, y0, x1, y1, kind, source FROM boxes WHERE image_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .map_err(&get)?
    .iter()
    .map(|r| {
        Ok(BoxRecord {
            x0: r.try_get(0)?,
            y0: r.try_get(1)?,
            x1: r.try_get(2)?,
            y1: r.try_get(3)?,
            kind: r.try_get(4)?,
            source: r.try_get(5)?,
        })
    })
    .collect::<Result<_, sqlx::Error>>()
    .map_err(&get)?;
    let split: String = row.try_get(5).map_err(&get)?;
    let status: String = row.try_get(6).map_err(&get)?;
    let byte_size: Option<i64> = row.try_get(4).map_err(&get)?;
    Ok(Some(ImageRecord {
        id: row.try_get(0).map_err(&get)?,
        uri: row.try_get(1).map_err(&get)?,
        width: dimension(2)?,
        height: dimension(3)?,
        byte_size: byte_size.and_then(|b| u64::try_from(b).ok()),
        split: Split::from_db(&split)?,
        status: Status::from_db(&status)?,
        quarantine_reason: row.try_get(7).map_err(&get)?,
        source: row.try_get(8).map_err(&get)?,
        design: row.try_get(9).map_err(&get)?,
        created_at: row.try_get(10).map_err(&get)?,
        updated_at: row.try_get(11).map_err(&get)?,
        checked_at: row.try_get(12).map_err(&get)?,
        labels,
        boxes,
    }))
}
