//! The reads a dress similarity search and its evaluation start from: the designs, with the
//! active images that show each and the design each one varies, and the current labels of
//! every active image, for search filters.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sqlx::Row;

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::model::Backend;
use crate::sql::assembled;
use crate::vocabulary::Vocabulary;

/// A design: one dress, shown by one or more images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesignRecord {
    pub id: String,
    /// The design this one varies (the same dress with one facet changed), if any.
    pub variant_of: Option<String>,
    /// The facet in which it varies `variant_of`.
    pub varied_facet: Option<String>,
    /// Ids of the active images that show the design, in id order (empty when none is active).
    pub images: Vec<String>,
}

impl Catalog {
    /// Every design in id order, with what it varies and its active images.
    pub async fn designs(&self) -> Result<Vec<DesignRecord>, CatalogError> {
        let context = "listing designs";
        let rows = sqlx::query(
            "SELECT d.id, d.variant_of, d.varied_facet, i.id AS image_id FROM designs d \
             LEFT JOIN images i ON i.design = d.id AND i.status = 'active' \
             ORDER BY d.id, i.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db(context))?;
        let get = db(context);
        let mut designs: Vec<DesignRecord> = Vec::new();
        for row in rows {
            let id: String = row.try_get("id").map_err(&get)?;
            if designs.last().is_none_or(|last| last.id != id) {
                designs.push(DesignRecord {
                    id,
                    variant_of: row.try_get("variant_of").map_err(&get)?,
                    varied_facet: row.try_get("varied_facet").map_err(&get)?,
                    images: Vec::new(),
                });
            }
            let image: Option<String> = row.try_get("image_id").map_err(&get)?;
            if let (Some(image), Some(design)) = (image, designs.last_mut()) {
                design.images.push(image);
            }
        }
        Ok(designs)
    }

    /// Image id → {facet: label} of the current labels of every active image (an image without
    /// labels maps to an empty map; cleared labels are left out): what search filters such as
    /// "neckline is v-neck" select from.
    pub async fn active_labels(
        &self,
    ) -> Result<HashMap<String, BTreeMap<String, String>>, CatalogError> {
        let context = "reading active labels";
        let mut conn = self.pool.acquire().await.map_err(db(context))?;
        let vocabulary = Vocabulary::load(&mut conn).await?;
        let active: Vec<String> =
            sqlx::query_scalar("SELECT id FROM images WHERE status = 'active'")
                .fetch_all(&mut *conn)
                .await
                .map_err(db(context))?;
        let mut labels: HashMap<String, BTreeMap<String, String>> =
            active.into_iter().map(|id| (id, BTreeMap::new())).collect();
        // One row per (facet, label) with the ids of its images joined by spaces (ids never
        // contain one), read from labels_facet_label alone: a row per image and facet would
        // cost several times the query in driver overhead.
        let joined = match self.backend {
            Backend::Sqlite => "group_concat(image_id, ' ')",
            Backend::Postgres => "string_agg(image_id, ' ')",
        };
        let groups = assembled(format!(
            "SELECT facet_id, label_id, {joined} AS image_ids FROM labels \
             WHERE label_id IS NOT NULL GROUP BY facet_id, label_id"
        ))
        .fetch_all(&mut *conn)
        .await
        .map_err(db(context))?;
        let get = db(context);
        for group in groups {
            let facet: i64 = group.try_get("facet_id").map_err(&get)?;
            let label: Option<i64> = group.try_get("label_id").map_err(&get)?;
            let images: String = group.try_get("image_ids").map_err(&get)?;
            let (Some(facet_name), Some(label)) = (
                vocabulary.facet_name(facet),
                vocabulary.stored_label_name(facet, label, "labels")?,
            ) else {
                return Err(CatalogError::Corrupt {
                    table: "labels",
                    column: "facet_id",
                    value: facet.to_string(),
                });
            };
            for image in images.split(' ') {
                if let Some(image_labels) = labels.get_mut(image) {
                    image_labels.insert(facet_name.to_string(), label.clone());
                }
            }
        }
        Ok(labels)
    }
}
