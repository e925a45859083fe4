//! Values the catalogue keeps for itself (`catalog_settings`): its own id, and secrets the
//! web app needs to share between its restarts and instances. A value is written once, by
//! whichever process needs it first, and never changes after.

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::model::Backend;

/// The key of the catalogue's id.
const CATALOG_ID: &str = "catalog_id";

impl Catalog {
    /// The catalogue's id (16 hex digits, drawn the first time it is asked for): what keeps
    /// the files of two catalogues apart when they share a folder.
    pub async fn catalog_id(&self) -> Result<String, CatalogError> {
        let random = match self.backend {
            Backend::Sqlite => "SELECT lower(hex(randomblob(8)))",
            Backend::Postgres => {
                "SELECT substr(md5(random()::text || clock_timestamp()::text), 1, 16)"
            }
        };
        let candidate: String = sqlx::query_scalar(random)
            .fetch_one(&self.pool)
            .await
            .map_err(db("drawing the catalogue's id"))?;
        self.setting_or_insert(CATALOG_ID, &candidate).await
    }

    /// The setting stored under `key`, storing `candidate` first if there is none (the web
    /// app's secrets). Concurrent callers all get the first value stored: the first insert
    /// wins and all read it back.
    pub async fn setting_or_insert(
        &self,
        key: &str,
        candidate: &str,
    ) -> Result<String, CatalogError> {
        sqlx::query(
            "INSERT INTO catalog_settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(candidate)
        .execute(&self.pool)
        .await
        .map_err(db("storing a catalogue setting"))?;
        sqlx::query_scalar::<_, String>("SELECT value FROM catalog_settings WHERE key = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .map_err(db("reading a catalogue setting"))
    }
}
