//! Change counters (`change_counters`): every write that changes what similarity searches
//! read bumps one in its own transaction. Whoever keeps a copy of that data (the app's search
//! cache) reads the counter with one primary-key lookup and reloads only when it moved, in
//! this process or in any other sharing the database.

use sqlx::AnyConnection;

use crate::Catalog;
use crate::error::{CatalogError, db};

/// Labels or the status of images changed (import, relabelling, undo, checks).
pub const LABELS_COUNTER: &str = "labels";

/// The counter of one model key's stored vectors.
pub fn embeddings_counter(model: &str) -> String {
    format!("embeddings:{model}")
}

/// Adds one to counter `name` (creating it at 1), inside the caller's transaction.
pub(crate) async fn bump(conn: &mut AnyConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO change_counters (name, value) VALUES ($1, 1) \
         ON CONFLICT (name) DO UPDATE SET value = change_counters.value + 1",
    )
    .bind(name)
    .execute(conn)
    .await?;
    Ok(())
}

impl Catalog {
    /// The value of change counter `name` (0 before its first change).
    pub async fn change_counter(&self, name: &str) -> Result<i64, CatalogError> {
        let value: Option<i64> =
            sqlx::query_scalar("SELECT value FROM change_counters WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(db("reading a change counter"))?;
        Ok(value.unwrap_or(0))
    }
}
