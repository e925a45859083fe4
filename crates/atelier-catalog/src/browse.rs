//! Browsing the catalogue: the images whose current labels, split, status, design and review
//! state pass a filter, a page at a time in path order, with their labels.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::model::{Split, Status};
use crate::relabel::REVIEW_SOURCE;
use crate::sql::{ParamStyle, assembled, select_where_in, split_from_db, status_from_db};
use crate::vector_search::LabelCondition;

/// Which images to list. Every part that is set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFilter {
    /// Conditions on the current labels (with or without a label of a facet).
    pub labels: Vec<LabelCondition>,
    pub split: Option<Split>,
    /// `None`: active and quarantined images (removed ones only when asked for).
    pub status: Option<Status>,
    pub design: Option<String>,
    /// `Some(true)`: only images with a label a reviewer set; `Some(false)`: only images
    /// without one.
    pub reviewed: Option<bool>,
}

/// One listed image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrowsedImage {
    pub id: String,
    pub uri: String,
    pub split: Split,
    pub status: Status,
    pub quarantine_reason: Option<String>,
    pub design: Option<String>,
    /// A reviewer set at least one of its current labels.
    pub reviewed: bool,
    /// Current label per facet (facets without a label are absent).
    pub labels: BTreeMap<String, String>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrowsedPage {
    /// Images that pass the filter, on every page.
    pub total: u64,
    pub images: Vec<BrowsedImage>,
}

const CONTEXT: &str = "browsing images";

impl Catalog {
    /// The images that pass `filter`, ordered by path then id, `limit` of them from `offset`.
    pub async fn browse(
        &self,
        filter: &ImageFilter,
        offset: u64,
        limit: u64,
    ) -> Result<BrowsedPage, CatalogError> {
        let mut conn = self.pool.acquire().await.map_err(db(CONTEXT))?;
        let (conditions, binds) = where_clause(filter);
        let count_sql = format!("SELECT count(*) FROM images i WHERE {conditions}");
        let mut count = assembled(count_sql);
        for value in &binds {
            count = count.bind(value.clone());
        }
        let total: i64 = count
            .fetch_one(&mut *conn)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db(CONTEXT))?;
        let n = binds.len();
        let page_sql = format!(
            "SELECT i.id, i.uri, i.split, i.status, i.quarantine_reason, i.design, \
             CAST(CASE WHEN EXISTS (SELECT 1 FROM labels r WHERE r.image_id = i.id \
             AND r.source = '{REVIEW_SOURCE}') THEN 1 ELSE 0 END AS BIGINT) AS reviewed \
             FROM images i WHERE {conditions} ORDER BY i.uri, i.id LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let mut page = assembled(page_sql);
        for value in &binds {
            page = page.bind(value.clone());
        }
        let rows = page
            .bind(limit.min(i64::MAX as u64) as i64)
            .bind(offset.min(i64::MAX as u64) as i64)
            .fetch_all(&mut *conn)
            .await
            .map_err(db(CONTEXT))?;
        let mut images = rows
            .iter()
            .map(browsed_image)
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<&str> = images.iter().map(|i| i.id.as_str()).collect();
        let mut labels =
            page_labels(&mut conn, ParamStyle::for_backend(self.backend), &ids).await?;
        for image in &mut images {
            image.labels = labels.remove(&image.id).unwrap_or_default();
        }
        Ok(BrowsedPage {
            total: total.max(0) as u64,
            images,
        })
    }
}

/// The `WHERE` condition of `filter` over `images i`, with the values it binds as `$1...`.
fn where_clause(filter: &ImageFilter) -> (String, Vec<String>) {
    let mut binds: Vec<String> = Vec::new();
    let mut bind = |value: &str| {
        binds.push(value.to_string());
        format!("${}", binds.len())
    };
    let mut parts = vec![match filter.status {
        Some(status) => format!("i.status = {}", bind(status.as_str())),
        None => format!("i.status <> '{}'", Status::Removed.as_str()),
    }];
    if let Some(split) = filter.split {
        parts.push(format!("i.split = {}", bind(split.as_str())));
    }
    if let Some(design) = &filter.design {
        parts.push(format!("i.design = {}", bind(design)));
    }
    if let Some(reviewed) = filter.reviewed {
        parts.push(format!(
            "{} (SELECT 1 FROM labels r WHERE r.image_id = i.id AND r.source = {})",
            if reviewed { "EXISTS" } else { "NOT EXISTS" },
            bind(REVIEW_SOURCE)
        ));
    }
    for condition in &filter.labels {
        let (facet, label) = (bind(&condition.facet), bind(&condition.label));
        parts.push(format!(
            "{} (SELECT 1 FROM labels l JOIN facets f ON f.id = l.facet_id \
             JOIN facet_labels fl ON fl.id = l.label_id WHERE l.image_id = i.id \
             AND f.name = {facet} AND fl.label = {label})",
            if condition.keep {
                "EXISTS"
            } else {
                "NOT EXISTS"
            }
        ));
    }
    (parts.join(" AND "), binds)
}

fn browsed_image(row: &sqlx::any::AnyRow) -> Result<BrowsedImage, CatalogError> {
    let get = db(CONTEXT);
    let split: String = row.try_get("split").map_err(&get)?;
    let status: String = row.try_get("status").map_err(&get)?;
    Ok(BrowsedImage {
        id: row.try_get("id").map_err(&get)?,
        uri: row.try_get("uri").map_err(&get)?,
        split: split_from_db(&split)?,
        status: status_from_db(&status)?,
        quarantine_reason: row.try_get("quarantine_reason").map_err(&get)?,
        design: row.try_get("design").map_err(&get)?,
        reviewed: row.try_get::<i64, _>("reviewed").map_err(&get)? != 0,
        labels: BTreeMap::new(),
    })
}

/// The current labels of `ids`, per image and facet.
async fn page_labels(
    conn: &mut sqlx::AnyConnection,
    style: ParamStyle,
    ids: &[&str],
) -> Result<BTreeMap<String, BTreeMap<String, String>>, CatalogError> {
    let rows = select_where_in(
        conn,
        style,
        "SELECT l.image_id, f.name AS facet, fl.label FROM labels l \
         JOIN facets f ON f.id = l.facet_id JOIN facet_labels fl ON fl.id = l.label_id \
         WHERE l.image_id IN (",
        "",
        ids,
    )
    .await
    .map_err(db(CONTEXT))?;
    let get = db(CONTEXT);
    let mut labels: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for row in rows {
        let image: String = row.try_get("image_id").map_err(&get)?;
        let facet: String = row.try_get("facet").map_err(&get)?;
        let label: String = row.try_get("label").map_err(&get)?;
        labels.entry(image).or_default().insert(facet, label);
    }
    Ok(labels)
}
