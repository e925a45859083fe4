//! The reads a trainer starts from: the usable images with their labels, each facet's label
//! order, and the dress boxes a detail-view model's locator learns from.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::model::Split;
use crate::sql::split_from_db;
use crate::sql::{ParamStyle, assembled, placeholders};
use crate::vocabulary::Vocabulary;

/// An active image with its labels for the facets asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelledImage {
    pub id: String,
    pub uri: String,
    pub split: Split,
    /// One entry per requested facet, in the order requested; `None` where the image has no
    /// label for that facet.
    pub labels: Vec<Option<String>>,
}

impl Catalog {
    /// Every active image (never quarantined or removed ones) with its label for each of
    /// `facets`, ordered by id.
    pub async fn training_images(
        &self,
        facets: &[String],
    ) -> Result<Vec<LabelledImage>, CatalogError> {
        let context = "listing training images";
        let mut conn = self.pool.acquire().await.map_err(db(context))?;
        let vocabulary = Vocabulary::load(&mut conn).await?;
        let facet_ids = facets
            .iter()
            .map(|name| vocabulary.facet_id(name))
            .collect::<Result<Vec<i64>, _>>()?;
        let mut distinct = facet_ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        // One statement, so that images and labels come from one snapshot; an image has one row
        // per requested facet it carries a label for (or one row without a label). A join per
        // facet instead would hit SQLite's 64-table limit with many facets.
        let sql = if distinct.is_empty() {
            // No labels to read. (A join `ON 1 = 0` instead would make SQLite scan every label
            // once per image.)
            "SELECT i.id, i.uri, i.split, NULL AS facet_id, NULL AS label FROM images i \
             WHERE i.status = 'active' ORDER BY i.id"
                .to_string()
        } else {
            format!(
                "SELECT i.id, i.uri, i.split, l.facet_id, fl.label FROM images i \
                 LEFT JOIN labels l ON l.image_id = i.id AND l.facet_id IN ({}) \
                 LEFT JOIN facet_labels fl ON fl.id = l.label_id \
                 WHERE i.status = 'active' ORDER BY i.id",
                placeholders(ParamStyle::for_backend(self.backend), 1, distinct.len())
            )
        };
        let mut query = assembled(sql);
        for id in &distinct {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&mut *conn).await.map_err(db(context))?;
        let mut images: Vec<LabelledImage> = Vec::new();
        for row in rows {
            add_labelled_row(&mut images, &row, &facet_ids)?;
        }
        Ok(images)
    }

    /// The dress box `[x0, y0, x1, y1]` in pixels of every active image that has one, by image
    /// id (what the dress locator of a detail-view model learns from): its reviewer's box when
    /// it has one, else its first imported one.
    pub async fn dress_boxes(&self) -> Result<HashMap<String, [f64; 4]>, CatalogError> {
        let rows = sqlx::query(
            "SELECT b.image_id, b.x0, b.y0, b.x1, b.y1 FROM boxes b \
             JOIN images i ON i.id = b.image_id \
             WHERE b.kind = 'dress' AND i.status = 'active' \
             ORDER BY b.image_id, CASE WHEN b.source = 'review' THEN 0 ELSE 1 END, b.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading dress boxes"))?;
        let mut boxes = HashMap::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("image_id").map_err(db("reading dress boxes"))?;
            let coords = ["x0", "y0", "x1", "y1"]
                .map(|column| row.try_get::<f64, _>(column).unwrap_or(f64::NAN));
            if coords.iter().all(|c| c.is_finite()) {
                boxes.entry(id).or_insert(coords);
            }
        }
        Ok(boxes)
    }

    /// Every facet in creation order with its labels in their current order.
    pub async fn label_orders(&self) -> Result<Vec<(String, Vec<String>)>, CatalogError> {
        let vocabulary = self.vocabulary().await?;
        let names: Vec<String> = vocabulary.facets().iter().map(|(_, n)| n.clone()).collect();
        orders_of(&vocabulary, &names)
    }

    /// The current label order of each of `facets`, in the order given.
    pub async fn facet_label_orders(
        &self,
        facets: &[String],
    ) -> Result<Vec<(String, Vec<String>)>, CatalogError> {
        orders_of(&self.vocabulary().await?, facets)
    }

    async fn vocabulary(&self) -> Result<Vocabulary, CatalogError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db("reading label orders"))?;
        Vocabulary::load(&mut conn).await
    }
}

/// The labels of each of `facets` in their stored order.
fn orders_of(
    vocabulary: &Vocabulary,
    facets: &[String],
) -> Result<Vec<(String, Vec<String>)>, CatalogError> {
    facets
        .iter()
        .map(|name| {
            let id = vocabulary.facet_id(name)?;
            let labels = vocabulary.labels(id).iter().map(|(l, _)| l.clone());
            Ok((name.clone(), labels.collect()))
        })
        .collect()
}

/// Adds one row of the training images' statement: a new image when its id differs from the
/// last one's, and its label in every slot of its facet (a facet may be requested twice).
fn add_labelled_row(
    images: &mut Vec<LabelledImage>,
    row: &AnyRow,
    facet_ids: &[i64],
) -> Result<(), CatalogError> {
    let get = db("listing training images");
    let id: String = row.try_get("id").map_err(&get)?;
    if images.last().is_none_or(|last| last.id != id) {
        let split: String = row.try_get("split").map_err(&get)?;
        images.push(LabelledImage {
            id,
            uri: row.try_get("uri").map_err(&get)?,
            split: split_from_db(&split)?,
            labels: vec![None; facet_ids.len()],
        });
    }
    let facet: Option<i64> = row.try_get("facet_id").map_err(&get)?;
    let label: Option<String> = row.try_get("label").map_err(&get)?;
    let (Some(facet), Some(label), Some(image)) = (facet, label, images.last_mut()) else {
        return Ok(());
    };
    for (slot, id) in facet_ids.iter().enumerate() {
        if *id == facet {
            image.labels[slot] = Some(label.clone());
        }
    }
    Ok(())
}
