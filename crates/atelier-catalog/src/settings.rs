//! Values the catalogue keeps for itself (`catalog_settings`): its own id, and secrets the
//! web app needs to share between its restarts and instances. A value is written once, by
//! whichever process needs it first, and never changes after.

use sqlx::AnyPool;

use crate::error::{CatalogError, db};
use crate::model::Backend;

/// The key of the catalogue's id.
const CATALOG_ID: &str = "catalog_id";

/// The value stored under `key`, storing `candidate` first if there is none. Two processes
/// racing get the same answer: the first insert wins and both read it back.
pub(crate) async fn value_or_insert(
    pool: &AnyPool,
    key: &str,
    candidate: &str,
) -> Result<String, CatalogError> {
    sqlx::query(
        "INSERT INTO catalog_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(candidate)
    .execute(pool)
    .await
    .map_err(db("storing a catalogue setting"))?;
    sqlx::query_scalar::<_, String>("SELECT value FROM catalog_settings WHERE key = $1")
        .bind(key)
        .fetch_one(pool)
        .await
        .map_err(db("reading a catalogue setting"))
}

/// The catalogue's id: 16 lowercase hex digits, drawn by the database when first asked for.
pub(crate) async fn catalog_id(pool: &AnyPool, backend: Backend) -> Result<String, CatalogError> {
    let random = match backend {
        Backend::Sqlite => "SELECT lower(hex(randomblob(8)))",
        Backend::Postgres => "SELECT substr(md5(random()::text || clock_timestamp()::text), 1, 16)",
    };
    let candidate: String = sqlx::query_scalar(random)
        .fetch_one(pool)
        .await
        .map_err(db("drawing the catalogue's id"))?;
    value_or_insert(pool, CATALOG_ID, &candidate).await
}
