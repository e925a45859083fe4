//! Change counters (`change_counters`): every write that changes what similarity searches
//! read bumps one in its own transaction. Whoever keeps a copy of that data (the app's search
//! cache) reads the counter with one primary-key lookup and reloads only when it moved, in
//! this process or in any other sharing the database.

use sqlx::{AnyConnection, Row};

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::sql::{ParamStyle, assembled, placeholders};

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
    /// The values of counters `names`, in the same order (0 before a counter's first change),
    /// read in one statement.
    pub async fn change_counters<const N: usize>(
        &self,
        names: [&str; N],
    ) -> Result<[i64; N], CatalogError> {
        let context = "reading change counters";
        let mut values = [0; N];
        if N == 0 {
            return Ok(values);
        }
        let style = ParamStyle::for_backend(self.backend);
        let sql = format!(
            "SELECT name, value FROM change_counters WHERE name IN ({})",
            placeholders(style, 1, N)
        );
        let mut query = assembled(sql);
        for name in names {
            query = query.bind(name);
        }
        for row in query.fetch_all(&self.pool).await.map_err(db(context))? {
            let name: String = row.try_get("name").map_err(db(context))?;
            let value: i64 = row.try_get("value").map_err(db(context))?;
            for (slot, _) in values.iter_mut().zip(names).filter(|(_, n)| **n == name) {
                *slot = value;
            }
        }
        Ok(values)
    }
}
