//! Nearest-neighbour search inside PostgreSQL with pgvector.
//!
//! When the server offers the `vector` extension, opening a PostgreSQL catalogue creates it
//! (if allowed) and gives `embeddings` a `vector` column beside the bytes that stay the
//! source of truth; [`Catalog::put_embeddings`] then writes both. [`Catalog::index_vectors`]
//! builds one partial HNSW index (cosine) per model key, whose dimension it fixes with a cast;
//! [`Catalog::nearest`] answers with the current label filters inside the same query, using
//! pgvector's iterative scan so that a filter that keeps few photos still gets `k` of them.
//! Without the extension (SQLite, or a server without pgvector) [`Catalog::searches_vectors`]
//! is false and callers scan the vectors themselves.

use sqlx::Row;

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::sql::{ParamStyle, assembled, insert_values};

/// A condition on an image's current label of one facet: with the label (`keep`) or without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelCondition {
    pub facet: String,
    pub label: String,
    pub keep: bool,
}

/// How many candidates the HNSW walk keeps (pgvector's `hnsw.ef_search`), at least.
const EF_SEARCH: usize = 100;

impl Catalog {
    /// Whether this catalogue searches embeddings in the database (PostgreSQL with pgvector).
    pub fn searches_vectors(&self) -> bool {
        self.vector_search
    }

    /// On PostgreSQL with the `vector` extension available: creates it, adds the `embedding`
    /// column and fills it for vectors stored before. Returns whether vector search is on; a
    /// server that offers the extension but refuses to create it leaves it off, with a
    /// warning.
    pub(crate) async fn enable_vector_search(&self) -> Result<bool, CatalogError> {
        let context = "enabling pgvector";
        let available: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db(context))?;
        if !available {
            return Ok(false);
        }
        let created = async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
                .execute(&mut *tx)
                .await?;
            sqlx::query("ALTER TABLE embeddings ADD COLUMN IF NOT EXISTS embedding vector")
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await;
        if let Err(error) = created {
            // Another process may have won the race; only a missing column means "off".
            if !self.has_embedding_column().await? {
                tracing::warn!(
                    "PostgreSQL offers pgvector but atelier could not enable it ({error}); \
                     similarity searches scan the vectors instead (run `CREATE EXTENSION \
                     vector` as a superuser to enable it)"
                );
                return Ok(false);
            }
        }
        self.fill_vector_column().await?;
        Ok(true)
    }

    async fn has_embedding_column(&self) -> Result<bool, CatalogError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
             WHERE table_name = 'embeddings' AND column_name = 'embedding' \
             AND table_schema = current_schema())",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("enabling pgvector"))
    }

    /// Writes the `embedding` column of rows stored without it (before pgvector was enabled).
    async fn fill_vector_column(&self) -> Result<(), CatalogError> {
        let context = "filling the pgvector column";
        let rows = sqlx::query(
            "SELECT model, image_id, vector FROM embeddings WHERE embedding IS NULL \
             ORDER BY model, image_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db(context))?;
        if rows.is_empty() {
            return Ok(());
        }
        let get = db(context);
        let mut filled = Vec::with_capacity(rows.len());
        for row in rows {
            let bytes: &[u8] = row.try_get("vector").map_err(&get)?;
            filled.push((
                row.try_get::<String, _>("model").map_err(&get)?,
                row.try_get::<String, _>("image_id").map_err(&get)?,
                vector_text(&crate::embeddings::vector_values(bytes)),
            ));
        }
        let mut tx = self.pool.begin().await.map_err(db(context))?;
        write_vector_column(&mut tx, &filled).await?;
        tx.commit().await.map_err(db(context))
    }

    /// Builds (once) the HNSW index over `model`'s vectors, all of `dim` values.
    pub async fn index_vectors(&self, model: &str, dim: usize) -> Result<(), CatalogError> {
        if !self.vector_search {
            return Ok(());
        }
        let sql = format!(
            "CREATE INDEX IF NOT EXISTS {} ON embeddings USING hnsw \
             ((CAST(embedding AS vector({dim}))) vector_cosine_ops) WHERE model = {}",
            index_name(model),
            quoted(model)
        );
        assembled(sql)
            .execute(&self.pool)
            .await
            .map_err(db("building the pgvector index"))?;
        Ok(())
    }

    /// The `k` active images whose `model` vectors are closest (cosine) to `query` among those
    /// whose current labels meet every condition, leaving out `exclude`; most similar first,
    /// with the cosine similarity. Only where [`Catalog::searches_vectors`].
    pub async fn nearest(
        &self,
        model: &str,
        query: &[f32],
        k: usize,
        conditions: &[LabelCondition],
        exclude: Option<&str>,
    ) -> Result<Vec<(String, f32)>, CatalogError> {
        let context = "searching embeddings with pgvector";
        if !self.vector_search {
            return Err(CatalogError::InvalidEmbeddings {
                model: model.to_string(),
                message: "this catalogue cannot search vectors itself (it needs PostgreSQL \
                          with pgvector); scan the vectors instead"
                    .into(),
            });
        }
        let dim = query.len();
        let mut filters = String::new();
        for (n, condition) in conditions.iter().enumerate() {
            let (facet, label) = (4 + 2 * n, 5 + 2 * n);
            filters.push_str(&format!(
                " AND {} (SELECT 1 FROM labels l JOIN facets f ON f.id = l.facet_id \
                 JOIN facet_labels fl ON fl.id = l.label_id WHERE l.image_id = e.image_id \
                 AND f.name = ${facet} AND fl.label = ${label})",
                if condition.keep {
                    "EXISTS"
                } else {
                    "NOT EXISTS"
                }
            ));
        }
        let distance = format!("CAST(e.embedding AS vector({dim})) <=> CAST($1 AS vector({dim}))");
        let sql = format!(
            "SELECT e.image_id, 1 - ({distance}) AS score FROM embeddings e \
             JOIN images i ON i.id = e.image_id \
             WHERE e.model = {} AND i.status = 'active' AND e.image_id <> $2 {filters} \
             ORDER BY {distance} LIMIT $3",
            quoted(model)
        );
        let mut tx = self.pool.begin().await.map_err(db(context))?;
        for setting in [
            "SET LOCAL hnsw.iterative_scan = strict_order".to_string(),
            format!("SET LOCAL hnsw.ef_search = {}", EF_SEARCH.max(k).min(1000)),
        ] {
            assembled(setting)
                .execute(&mut *tx)
                .await
                .map_err(db(context))?;
        }
        let mut statement = assembled(sql)
            .bind(vector_text(query))
            .bind(exclude.unwrap_or("").to_string())
            .bind(k as i64);
        for condition in conditions {
            statement = statement
                .bind(condition.facet.clone())
                .bind(condition.label.clone());
        }
        let rows = statement.fetch_all(&mut *tx).await.map_err(db(context))?;
        tx.commit().await.map_err(db(context))?;
        let get = db(context);
        rows.iter()
            .map(|row| {
                let score: f64 = row.try_get("score").map_err(&get)?;
                Ok((row.try_get("image_id").map_err(&get)?, score as f32))
            })
            .collect()
    }
}

/// Writes `(model, image, vector text)` rows into the `embedding` column.
pub(crate) async fn write_vector_column(
    conn: &mut sqlx::AnyConnection,
    rows: &[(String, String, String)],
) -> Result<(), CatalogError> {
    insert_values(
        conn,
        ParamStyle::Numbered,
        "UPDATE embeddings e SET embedding = CAST(v.t AS vector) FROM (",
        3,
        ") AS v (model, image_id, t) WHERE e.model = v.model AND e.image_id = v.image_id",
        rows,
        |q, (model, image, text)| {
            q.bind(model.as_str())
                .bind(image.as_str())
                .bind(text.as_str())
        },
    )
    .await
    .map_err(db("writing pgvector values"))?;
    Ok(())
}

/// pgvector's text form of a vector, `[v1,v2,...]` (each value exactly, as Rust prints it).
pub(crate) fn vector_text(values: &[f32]) -> String {
    let items: Vec<String> = values.iter().map(f32::to_string).collect();
    format!("[{}]", items.join(","))
}

/// `model` as an SQL string literal (quotes doubled).
pub(crate) fn quoted(model: &str) -> String {
    format!("'{}'", model.replace('\'', "''"))
}

/// An index name for `model`'s partial index: readable, and unique through a hash.
fn index_name(model: &str) -> String {
    let readable: String = model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    let hash = atelier_core::stable_hash(model);
    format!("embeddings_hnsw_{readable}_{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_written_exactly_and_names_are_safe() {
        assert_eq!(vector_text(&[1.0, -0.5, 0.1]), "[1,-0.5,0.1]");
        assert_eq!(quoted("run-3'; DROP"), "'run-3''; DROP'");
        let name = index_name("run-3/off-the-shelf");
        assert!(
            name.starts_with("embeddings_hnsw_run_3_off_the_shelf_"),
            "{name}"
        );
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        assert_ne!(index_name("run-3"), index_name("run_3"));
    }
}
