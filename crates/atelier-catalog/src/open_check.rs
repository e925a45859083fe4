//! Opening a SQLite catalogue safely: the per-connection settings, and a check made once with a
//! single connection before the pool is built, so that a damaged or foreign file fails at once
//! with one line that names it (a pool would retry the broken connection for its whole
//! acquire timeout, logging every attempt).

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions};

use crate::error::{CatalogError, damage};

/// How long a SQLite connection waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The 16 bytes every SQLite database file starts with.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The settings every connection gets: WAL lets readers work while an import writes; NORMAL
/// sync is durable across application crashes and much faster than FULL; a 64 MiB page cache
/// (the default is 2 MiB) keeps the index pages a large import touches in memory instead of
/// spilling them to the WAL mid-transaction and reading them back.
pub(crate) async fn prepare_sqlite(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    let busy = format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis());
    sqlx::raw_sql(sqlx::AssertSqlSafe(busy))
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql("PRAGMA journal_mode = WAL")
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536",
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Refuses a file that exists but cannot be an atelier catalogue: empty, not SQLite, damaged
/// where opening reads, or another program's database. A missing file is fine (it is created).
pub(crate) async fn check_sqlite_file(
    file: &Path,
    options: &AnyConnectOptions,
) -> Result<(), CatalogError> {
    let refuse = |reason: String| CatalogError::NotACatalogue {
        path: file.to_path_buf(),
        reason,
    };
    let metadata = match std::fs::metadata(file) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CatalogError::Io {
                path: file.to_path_buf(),
                source,
            });
        }
    };
    if !metadata.is_file() {
        return Err(refuse("it is not a regular file".into()));
    }
    if metadata.len() == 0 {
        return Err(refuse(
            "the file is empty (0 bytes), so it holds no catalogue".into(),
        ));
    }
    let mut header = [0u8; 16];
    let read = std::fs::File::open(file).and_then(|mut f| f.read_exact(&mut header));
    if read.is_err() || &header != SQLITE_HEADER {
        return Err(refuse(
            "it is not a SQLite database (it does not start with SQLite's header)".into(),
        ));
    }
    probe(options)
        .await
        .map_err(|e| match damage(&e) {
            Some(reason) => refuse(reason),
            None => CatalogError::Connect {
                url: file.display().to_string(),
                source: e,
            },
        })?
        .map_err(refuse)
}

/// Opens one connection, applies the settings and reads the schema. `Ok(Err(reason))` for a
/// sound SQLite file that belongs to another program.
async fn probe(options: &AnyConnectOptions) -> Result<Result<(), String>, sqlx::Error> {
    let mut conn = options.connect().await?;
    prepare_sqlite(&mut conn).await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await?;
    let verdict = if tables.is_empty() {
        Ok(())
    } else if tables.iter().any(|t| t == "_sqlx_migrations") {
        // Touch the schema's bookkeeping, which the migrations read next.
        sqlx::query("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(&mut conn)
            .await?;
        Ok(())
    } else {
        let shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
        Err(format!(
            "it is a SQLite database of another program (tables {}), not a catalogue",
            shown.join(", ")
        ))
    };
    let _ = sqlx::Connection::close(conn).await;
    Ok(verdict)
}
