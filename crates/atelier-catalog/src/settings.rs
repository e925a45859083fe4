//! Values the catalogue keeps for itself (`catalog_settings`): its own id, and secrets the
//! web app needs to share between its restarts and instances. A value is written once, by
//! whichever process needs it first, and never changes after.

use sqlx::AnyPool;

use crate::error::{CatalogError, db};

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

/// The catalogue's id: 16 lowercase hex digits, drawn when first asked for.
pub(crate) async fn catalog_id(pool: &AnyPool) -> Result<String, CatalogError> {
    value_or_insert(pool, CATALOG_ID, &fresh_id()).await
}

/// 16 hex digits that differ between processes, calls and catalogues: the SHA-256 of the
/// process id, the time in nanoseconds and a counter.
fn fresh_id() -> String {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    hex::encode(&Sha256::digest(seed.as_bytes())[..8])
}
