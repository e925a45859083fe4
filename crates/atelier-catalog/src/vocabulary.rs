//! The catalogue's vocabulary: its facets and each facet's labels, with their ids, so that
//! names given by callers become ids to store and stored ids become names again.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use crate::error::{CatalogError, db};

/// The catalogue's facets and labels, read once per operation (both tables are small).
pub(crate) struct Vocabulary {
    /// (id, name) in creation order.
    facets: Vec<(i64, String)>,
    /// Per facet id: labels in their stored order, with their ids.
    labels: HashMap<i64, Vec<(String, i64)>>,
}

impl Vocabulary {
    pub(crate) async fn load(conn: &mut AnyConnection) -> Result<Vocabulary, CatalogError> {
        let context = "loading facets and labels";
        let facets = sqlx::query("SELECT id, name FROM facets ORDER BY id")
            .fetch_all(&mut *conn)
            .await
            .map_err(db(context))?
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(db(context))?;
        let mut labels: HashMap<i64, Vec<(String, i64)>> = HashMap::new();
        let rows = sqlx::query(
            "SELECT facet_id, label, id FROM facet_labels ORDER BY facet_id, position, id",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(db(context))?;
        for row in rows {
            let facet: i64 = row.try_get("facet_id").map_err(db(context))?;
            labels.entry(facet).or_default().push((
                row.try_get("label").map_err(db(context))?,
                row.try_get("id").map_err(db(context))?,
            ));
        }
        Ok(Vocabulary { facets, labels })
    }

    /// The id of the facet named `name`, or [`CatalogError::UnknownFacet`] listing the others.
    /// (id, name) of every facet, in creation order.
    pub(crate) fn facets(&self) -> &[(i64, String)] {
        &self.facets
    }

    pub(crate) fn facet_id(&self, name: &str) -> Result<i64, CatalogError> {
        self.facets
            .iter()
            .find(|(_, n)| n == name)
            .map(|(id, _)| *id)
            .ok_or_else(|| CatalogError::UnknownFacet {
                facet: name.to_string(),
                known: if self.facets.is_empty() {
                    "no facets yet".to_string()
                } else {
                    let names: Vec<&str> = self.facets.iter().map(|(_, n)| n.as_str()).collect();
                    names.join(", ")
                },
            })
    }

    /// The name of the facet with id `id`.
    pub(crate) fn facet_name(&self, id: i64) -> Option<&str> {
        self.facets
            .iter()
            .find(|(facet, _)| *facet == id)
            .map(|(_, name)| name.as_str())
    }

    /// A facet's labels with their ids, in stored order.
    pub(crate) fn labels(&self, facet: i64) -> &[(String, i64)] {
        self.labels.get(&facet).map_or(&[], Vec::as_slice)
    }

    /// Label name → id for one facet, for the many lookups of a results write.
    pub(crate) fn label_ids(&self, facet: i64) -> HashMap<&str, i64> {
        self.labels(facet)
            .iter()
            .map(|(name, id)| (name.as_str(), *id))
            .collect()
    }

    /// Label id → name for one facet, to turn rows read by id back into names.
    pub(crate) fn label_names(&self, facet: i64) -> HashMap<i64, &str> {
        self.labels(facet)
            .iter()
            .map(|(name, id)| (*id, name.as_str()))
            .collect()
    }

    /// The id of label `label` of facet `facet`, or [`CatalogError::UnknownLabel`] at
    /// `location` listing the facet's labels.
    pub(crate) fn label_id(
        &self,
        facet: i64,
        label: &str,
        location: impl FnOnce() -> String,
    ) -> Result<i64, CatalogError> {
        self.labels(facet)
            .iter()
            .find(|(name, _)| name == label)
            .map(|(_, id)| *id)
            .ok_or_else(|| self.unknown_label(facet, location(), label))
    }

    pub(crate) fn unknown_label(&self, facet: i64, location: String, label: &str) -> CatalogError {
        let name = self
            .facets
            .iter()
            .find(|(id, _)| *id == facet)
            .map_or("", |(_, n)| n.as_str());
        let known: Vec<&str> = self.labels(facet).iter().map(|(l, _)| l.as_str()).collect();
        CatalogError::UnknownLabel {
            location,
            facet: name.to_string(),
            label: label.to_string(),
            known: if known.is_empty() {
                "no labels".to_string()
            } else {
                known.join(", ")
            },
        }
    }

    /// The name of stored label `id` of `facet` (read from `table`); an id the catalogue does
    /// not list is corruption.
    pub(crate) fn stored_label_name(
        &self,
        facet: i64,
        id: Option<i64>,
        table: &'static str,
    ) -> Result<Option<String>, CatalogError> {
        let Some(id) = id else {
            return Ok(None);
        };
        self.labels(facet)
            .iter()
            .find(|(_, label)| *label == id)
            .map(|(name, _)| Some(name.clone()))
            .ok_or_else(|| CatalogError::Corrupt {
                table,
                column: "label_id",
                value: id.to_string(),
            })
    }
}
