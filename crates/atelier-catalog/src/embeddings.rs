//! Image embeddings: one vector per (model, image), what a similarity search compares. `model`
//! is an opaque key its writer chooses (a model reference and a content hash, say), so that the
//! vectors of different models never mix; all vectors of one model have one length. A vector is
//! stored as its values' little-endian f32 bytes.

use std::collections::HashSet;

use sqlx::Row;

use crate::Catalog;
use crate::counters::{self, embeddings_counter};
use crate::error::{CatalogError, db};
use crate::sql::{
    MAX_PARAMS, ParamStyle, assembled, insert_values, now_millis, placeholders, select_where_in,
};
use crate::vector_search::{quoted, vector_text, write_vector_column};

impl Catalog {
    /// Stores `model`'s vectors of the given images, replacing those stored for them, in one
    /// transaction. All or nothing: every vector must hold finite values and have the length
    /// of the others (and of the model's vectors already stored), each image must be listed
    /// once and be in the catalogue ([`CatalogError::UnknownImage`] names the first that is
    /// not).
    pub async fn put_embeddings(
        &self,
        model: &str,
        vectors: &[(String, Vec<f32>)],
    ) -> Result<(), CatalogError> {
        let Some(dim) = check_vectors(model, vectors)? else {
            return Ok(());
        };
        let context = "storing embeddings";
        let style = ParamStyle::for_backend(self.backend);
        let mut tx = self.begin_write().await?;
        let stored_dim: Option<i64> =
            sqlx::query_scalar("SELECT dim FROM embeddings WHERE model = $1 LIMIT 1")
                .bind(model)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db(context))?;
        if let Some(stored) = stored_dim.filter(|d| *d != dim as i64) {
            return Err(invalid(
                model,
                format!(
                    "the vectors have {dim} values, but the model's stored vectors have \
                     {stored}; delete the model's stored embeddings first, or store these under \
                     another model key"
                ),
            ));
        }
        let ids: Vec<&str> = vectors.iter().map(|(id, _)| id.as_str()).collect();
        let known: HashSet<String> = select_where_in(
            &mut tx,
            style,
            "SELECT id FROM images WHERE id IN (",
            "",
            &ids,
        )
        .await
        .and_then(|rows| rows.iter().map(|r| r.try_get("id")).collect())
        .map_err(db(context))?;
        if let Some(unknown) = ids.iter().find(|id| !known.contains(**id)) {
            return Err(CatalogError::UnknownImage(unknown.to_string()));
        }
        // In primary-key order, every new row appends to the end of the table's B-tree.
        let mut rows: Vec<&(String, Vec<f32>)> = vectors.iter().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let now = now_millis();
        insert_values(
            &mut tx,
            style,
            "INSERT INTO embeddings (model, image_id, dim, vector, created_at)",
            5,
            "ON CONFLICT (model, image_id) DO UPDATE SET dim = excluded.dim, \
             vector = excluded.vector, created_at = excluded.created_at",
            &rows,
            |q, (image, vector)| {
                q.bind(model)
                    .bind(image.as_str())
                    .bind(dim as i64)
                    .bind(vector_bytes(vector))
                    .bind(now)
            },
        )
        .await
        .map_err(db("writing embeddings"))?;
        if self.vector_search {
            let texts: Vec<(String, String, String)> = rows
                .iter()
                .map(|(image, vector)| (model.to_string(), image.clone(), vector_text(vector)))
                .collect();
            write_vector_column(&mut tx, &texts).await?;
        }
        counters::bump(&mut tx, &embeddings_counter(model))
            .await
            .map_err(db(context))?;
        tx.commit().await.map_err(db(context))?;
        Ok(())
    }

    /// `model`'s vectors of active images (never of quarantined or removed ones), by image id.
    pub async fn embeddings(&self, model: &str) -> Result<Vec<(String, Vec<f32>)>, CatalogError> {
        let context = "reading embeddings";
        let rows = sqlx::query(
            "SELECT e.image_id, e.dim, e.vector FROM embeddings e \
             JOIN images i ON i.id = e.image_id \
             WHERE e.model = $1 AND i.status = 'active' ORDER BY e.image_id",
        )
        .bind(model)
        .fetch_all(&self.pool)
        .await
        .map_err(db(context))?;
        id_vectors(&rows, context)
    }

    /// `model`'s vectors of the given images (those it has one for), by image id; whatever
    /// the images' status.
    pub async fn embeddings_of(
        &self,
        model: &str,
        image_ids: &[String],
    ) -> Result<Vec<(String, Vec<f32>)>, CatalogError> {
        let context = "reading embeddings";
        let mut conn = self.pool.acquire().await.map_err(db(context))?;
        let select = format!(
            "SELECT image_id, dim, vector FROM embeddings WHERE model = {} AND image_id IN (",
            quoted(model)
        );
        let rows = select_where_in(
            &mut conn,
            ParamStyle::for_backend(self.backend),
            &select,
            " ORDER BY image_id",
            image_ids,
        )
        .await
        .map_err(db(context))?;
        id_vectors(&rows, context)
    }

    /// `model`'s vector of one active image, if it has one.
    pub async fn embedding(
        &self,
        model: &str,
        image_id: &str,
    ) -> Result<Option<Vec<f32>>, CatalogError> {
        let context = "reading an embedding";
        let bytes: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT e.vector FROM embeddings e JOIN images i ON i.id = e.image_id \
             WHERE e.model = $1 AND e.image_id = $2 AND i.status = 'active'",
        )
        .bind(model)
        .bind(image_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db(context))?;
        match bytes {
            Some(bytes) if bytes.is_empty() || bytes.len() % 4 != 0 => Err(CatalogError::Corrupt {
                table: "embeddings",
                column: "vector",
                value: format!("{} bytes", bytes.len()),
            }),
            Some(bytes) => Ok(Some(vector_values(&bytes))),
            None => Ok(None),
        }
    }

    /// How many numbers `model`'s stored vectors have, or `None` when it has none.
    pub async fn embedding_dim(&self, model: &str) -> Result<Option<usize>, CatalogError> {
        let dim: Option<i64> =
            sqlx::query_scalar("SELECT dim FROM embeddings WHERE model = $1 LIMIT 1")
                .bind(model)
                .fetch_optional(&self.pool)
                .await
                .map_err(db("reading an embedding's length"))?;
        Ok(dim.map(|d| d.max(0) as usize))
    }

    /// The ids of every image `model` has a vector for, whatever the image's status, in id
    /// order: what an embedding pass can skip.
    pub async fn embedded_image_ids(&self, model: &str) -> Result<Vec<String>, CatalogError> {
        sqlx::query_scalar("SELECT image_id FROM embeddings WHERE model = $1 ORDER BY image_id")
            .bind(model)
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing embedded images"))
    }

    /// Deletes `model`'s vectors of the given images (ids without one are passed over), in one
    /// transaction; returns how many were deleted.
    pub async fn delete_embeddings(
        &self,
        model: &str,
        image_ids: &[String],
    ) -> Result<u64, CatalogError> {
        let context = "deleting embeddings";
        let style = ParamStyle::for_backend(self.backend);
        let mut tx = self.begin_write().await?;
        let mut deleted = 0;
        for ids in image_ids.chunks(MAX_PARAMS - 1) {
            let sql = format!(
                "DELETE FROM embeddings WHERE model = {} AND image_id IN ({})",
                placeholders(style, 1, 1),
                placeholders(style, 2, ids.len())
            );
            let mut query = assembled(sql).bind(model);
            for id in ids {
                query = query.bind(id.as_str());
            }
            deleted += query
                .execute(&mut *tx)
                .await
                .map_err(db(context))?
                .rows_affected();
        }
        counters::bump(&mut tx, &embeddings_counter(model))
            .await
            .map_err(db(context))?;
        tx.commit().await.map_err(db(context))?;
        Ok(deleted)
    }

    /// Deletes every vector of `model`; returns how many were deleted.
    pub async fn delete_model_embeddings(&self, model: &str) -> Result<u64, CatalogError> {
        let context = "deleting a model's embeddings";
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM embeddings WHERE model = $1")
            .bind(model)
            .execute(&mut *tx)
            .await
            .map_err(db(context))?
            .rows_affected();
        counters::bump(&mut tx, &embeddings_counter(model))
            .await
            .map_err(db(context))?;
        tx.commit().await.map_err(db(context))?;
        Ok(deleted)
    }
}

/// `(image_id, vector)` of rows with `image_id`, `dim` and `vector` columns.
fn id_vectors(
    rows: &[sqlx::any::AnyRow],
    context: &'static str,
) -> Result<Vec<(String, Vec<f32>)>, CatalogError> {
    let get = db(context);
    let mut vectors = Vec::with_capacity(rows.len());
    for row in rows {
        let dim: i64 = row.try_get("dim").map_err(&get)?;
        let bytes: &[u8] = row.try_get("vector").map_err(&get)?;
        if dim <= 0 || bytes.len() as i64 != 4 * dim {
            return Err(CatalogError::Corrupt {
                table: "embeddings",
                column: "vector",
                value: format!("{} bytes for {dim} values", bytes.len()),
            });
        }
        vectors.push((row.try_get("image_id").map_err(&get)?, vector_values(bytes)));
    }
    Ok(vectors)
}

fn invalid(model: &str, message: String) -> CatalogError {
    CatalogError::InvalidEmbeddings {
        model: model.to_string(),
        message,
    }
}

/// The vectors' common length, or `None` when there are none; a blank model key, vectors of
/// different or zero length, a value that is not finite or an image listed twice fail.
fn check_vectors(
    model: &str,
    vectors: &[(String, Vec<f32>)],
) -> Result<Option<usize>, CatalogError> {
    if model.trim().is_empty() {
        return Err(invalid(
            model,
            "the model key is empty; name the model the vectors come from".to_string(),
        ));
    }
    let Some((first_image, first)) = vectors.first() else {
        return Ok(None);
    };
    let dim = first.len();
    if dim == 0 {
        return Err(invalid(
            model,
            format!("the vector of image {first_image} is empty"),
        ));
    }
    let mut seen = HashSet::with_capacity(vectors.len());
    for (image, vector) in vectors {
        if vector.len() != dim {
            return Err(invalid(
                model,
                format!(
                    "the vector of image {image} has {} values, but that of image {first_image} \
                     has {dim}; all vectors of a model have one length",
                    vector.len()
                ),
            ));
        }
        if let Some(position) = vector.iter().position(|v| !v.is_finite()) {
            return Err(invalid(
                model,
                format!(
                    "value {position} of the vector of image {image} is {}; vectors hold finite \
                     values only",
                    vector[position]
                ),
            ));
        }
        if !seen.insert(image.as_str()) {
            return Err(invalid(
                model,
                format!("image {image} is listed twice; give one vector per image"),
            ));
        }
    }
    Ok(Some(dim))
}

/// The little-endian bytes of `values`.
fn vector_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The values of little-endian f32 `bytes` (whose length is a multiple of 4).
pub(crate) fn vector_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_through_little_endian_bytes() {
        let values = [0.0, -1.5, f32::MIN_POSITIVE, 3.25e7];
        let bytes = vector_bytes(&values);
        assert_eq!(bytes.len(), 16);
        assert_eq!(&bytes[4..8], &(-1.5f32).to_le_bytes());
        assert_eq!(vector_values(&bytes), values);
    }

    #[test]
    fn vectors_are_checked_before_anything_is_read() {
        let v = |id: &str, values: &[f32]| (id.to_string(), values.to_vec());
        assert_eq!(check_vectors("m", &[]).unwrap(), None);
        assert_eq!(
            check_vectors("m", &[v("a", &[1.0, 2.0]), v("b", &[3.0, 4.0])]).unwrap(),
            Some(2)
        );
        let message = |model: &str, vectors: &[(String, Vec<f32>)]| {
            check_vectors(model, vectors).unwrap_err().to_string()
        };
        assert!(message(" ", &[]).contains("model key is empty"));
        assert!(message("m", &[v("a", &[])]).contains("image a is empty"));
        assert!(message("m", &[v("a", &[1.0]), v("b", &[1.0, 2.0])]).contains("has 2 values"));
        assert!(message("m", &[v("a", &[1.0, f32::NAN])]).contains("value 1 of"));
        assert!(message("m", &[v("a", &[f32::INFINITY])]).contains("is inf"));
        assert!(message("m", &[v("a", &[1.0]), v("a", &[2.0])]).contains("listed twice"));
    }
}
