//! The atelier catalogue: which product photos exist, where they lie, how they are labelled
//! per facet (silhouette, neckline, ...), which split they belong to and whether they can be
//! used. It owns the database schema and every write to it.
//!
//! One code path serves SQLite (the default, a single file) and PostgreSQL, through sqlx's
//! `Any` driver; the schema comes from the migrations embedded for each backend.
//!
//! - [`Catalog::import`] synchronises the catalogue with a manifest CSV or a folder tree
//!   (`ROOT/<facet>/<label>/<image file>`), in one transaction.
//! - Image ids are the sha256 of the file bytes, so the same picture is one image wherever
//!   it lies.
//! - Labels are versioned and every change is recorded in `label_events`.
//! - Training runs, their per-facet results and per-image predictions are stored by the
//!   `runs` module ([`Catalog::create_run`], [`Catalog::record_run_results`]).
//!
//! Import rules, per source (the canonical path of the manifest or folder root):
//! - an image the source lists for the first time is added; one whose labels, box, design or
//!   path changed is updated (label version + 1, one event per change); otherwise nothing is
//!   written, not even a timestamp;
//! - an image of the source that it no longer lists is marked `removed`, never deleted; listed
//!   again, it comes back;
//! - a split is taken from the source or the content hash once, and never changes;
//! - a label unknown to an existing facet aborts the import unless new labels are allowed;
//! - a file that is missing or empty is recorded as `quarantined` under a placeholder id
//!   (`missing-` + sha256 of its path).
//!
//! Timestamps are UTC unix milliseconds.

mod checks;
mod content;
mod error;
mod folder;
mod import;
mod manifest;
mod model;
mod queries;
mod runs;
mod source;
mod sql;
mod url;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, Transaction};

pub use content::{PLACEHOLDER_PREFIX, split_for_digest};
pub use error::CatalogError;
pub use model::{
    Backend, BoxRecord, CatalogSummary, CheckOutcome, CheckReport, CheckedImage, FacetSummary,
    ImageLabel, ImageRecord, ImageRef, ImportOptions, ImportProgress, ImportReport, LabelEvent,
    LabelSummary, ProgressFn, QuarantinedImage, Split, SplitCounts, Status,
};
pub use runs::{
    LabelledImage, NewRun, PredictionRecord, PredictionRow, RunFacetResult, RunFinish, RunRecord,
    RunStatus,
};
pub use url::DEFAULT_DATABASE_URL;

use error::db;
use url::DatabaseTarget;

/// How long a SQLite connection waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection pool to one catalogue database.
#[derive(Debug, Clone)]
pub struct Catalog {
    pool: AnyPool,
    backend: Backend,
}

impl Catalog {
    /// Connects to `url` (see [`DEFAULT_DATABASE_URL`]; `sqlite://PATH`, `sqlite:PATH`,
    /// `postgres://...` or `postgresql://...`) and brings its schema up to date. A SQLite file
    /// is created if missing and used in WAL mode.
    pub async fn open(url: &str) -> Result<Catalog, CatalogError> {
        sqlx::any::install_default_drivers();
        let target = DatabaseTarget::parse(url)?;
        if let Some(file) = &target.sqlite_file
            && let Some(folder) = file.parent()
            && !folder.is_dir()
        {
            return Err(CatalogError::BadUrl {
                url: url.to_string(),
                reason: format!(
                    "folder {} does not exist; create it first",
                    folder.display()
                ),
            });
        }
        let options =
            AnyConnectOptions::from_str(&target.connect_url).map_err(|e| CatalogError::BadUrl {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        let connect_error = |source| CatalogError::Connect {
            url: url.to_string(),
            source,
        };
        let pool = match target.backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // WAL lets readers work while an import writes; NORMAL sync is
                            // durable across application crashes and much faster than FULL.
                            let busy = format!(
                                "PRAGMA busy_timeout = {}",
                                SQLITE_BUSY_TIMEOUT.as_millis()
                            );
                            sqlx::raw_sql(sqlx::AssertSqlSafe(busy))
                                .execute(&mut *conn)
                                .await?;
                            sqlx::raw_sql("PRAGMA journal_mode = WAL")
                                .execute(&mut *conn)
                                .await?;
                            // A 64 MiB page cache (the default is 2 MiB) keeps the index pages a
                            // large import touches in memory instead of spilling them to the WAL
                            // mid-transaction and reading them back.
                            sqlx::raw_sql(
                                "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                                 PRAGMA cache_size = -65536",
                            )
                            .execute(&mut *conn)
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(8)
                    .connect_with(options)
                    .await
            }
        }
        .map_err(connect_error)?;
        let migrated = match target.backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await,
        };
        migrated.map_err(|source| CatalogError::Migrate {
            url: url.to_string(),
            source,
        })?;
        Ok(Catalog {
            pool,
            backend: target.backend,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection; pending work finishes first.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Synchronises the catalogue with a manifest CSV or a folder tree. All or nothing: on any
    /// error the database is left as it was.
    pub async fn import(
        &self,
        path: &Path,
        opts: &ImportOptions,
    ) -> Result<ImportReport, CatalogError> {
        import::import(&self.pool, self.backend, path, opts).await
    }

    /// Facets in creation order, each with its labels in stored order and, per label, the
    /// number of active images per split carrying it.
    pub async fn facets(&self) -> Result<Vec<FacetSummary>, CatalogError> {
        queries::facets(&self.pool).await
    }

    /// Reorders a facet's labels; `labels` must list each of its labels exactly once.
    pub async fn set_label_order(
        &self,
        facet: &str,
        labels: &[String],
    ) -> Result<(), CatalogError> {
        queries::set_label_order(&self.pool, self.backend, facet, labels).await
    }

    /// Every image that is not removed and has content (placeholders of unreadable files are
    /// left out: they need a re-import, not a decode), ordered by id.
    pub async fn images_for_check(&self) -> Result<Vec<ImageRef>, CatalogError> {
        checks::images_for_check(&self.pool).await
    }

    /// Stores decode results: good images become active with their size, bad ones quarantined
    /// with the reason. Removed images keep their status. One transaction.
    pub async fn record_checks(
        &self,
        outcomes: &[CheckOutcome],
    ) -> Result<CheckReport, CatalogError> {
        checks::record_checks(&self.pool, self.backend, outcomes).await
    }

    /// Quarantined images with their reasons, ordered by uri.
    pub async fn quarantined(&self) -> Result<Vec<QuarantinedImage>, CatalogError> {
        queries::quarantined(&self.pool).await
    }

    pub async fn summary(&self) -> Result<CatalogSummary, CatalogError> {
        queries::summary(&self.pool, self.backend).await
    }

    /// Every label change of an image, oldest first.
    pub async fn label_history(&self, image: &str) -> Result<Vec<LabelEvent>, CatalogError> {
        queries::label_history(&self.pool, image).await
    }

    /// One image with its labels and boxes, or `None` if the id is unknown.
    pub async fn image(&self, id: &str) -> Result<Option<ImageRecord>, CatalogError> {
        queries::image(&self.pool, id).await
    }

    /// Starts a training run (status running) and returns its id, which is never reused.
    pub async fn create_run(&self, new: &NewRun) -> Result<i64, CatalogError> {
        runs::create_run(&self.pool, self.backend, new).await
    }

    /// Replaces the progress JSON of a running run.
    pub async fn set_run_progress(
        &self,
        run: i64,
        progress: &serde_json::Value,
    ) -> Result<(), CatalogError> {
        runs::set_run_progress(&self.pool, run, progress).await
    }

    /// Ends a running run as completed or failed.
    pub async fn finish_run(&self, run: i64, finish: &RunFinish) -> Result<(), CatalogError> {
        runs::finish_run(&self.pool, run, finish).await
    }

    /// Takes a failed run (or one left running by a process that died) back to running,
    /// clearing its error and finish time, so that it can be resumed.
    pub async fn reopen_run(&self, run: i64) -> Result<(), CatalogError> {
        runs::reopen_run(&self.pool, run).await
    }

    /// One run, or `None` if the id is unknown.
    pub async fn run(&self, id: i64) -> Result<Option<RunRecord>, CatalogError> {
        runs::run(&self.pool, id).await
    }

    /// Every run, newest first.
    pub async fn runs(&self) -> Result<Vec<RunRecord>, CatalogError> {
        runs::runs(&self.pool).await
    }

    /// Stores what a run learnt per facet and its predictions, replacing any earlier results
    /// of the run. All or nothing: an unknown facet, label or image, or a prediction that does
    /// not fit its facet's results, writes nothing.
    pub async fn record_run_results(
        &self,
        run: i64,
        facets: &[RunFacetResult],
        predictions: &[PredictionRow],
    ) -> Result<(), CatalogError> {
        runs::record_run_results(&self.pool, self.backend, run, facets, predictions).await
    }

    /// A run's per-facet results in the run's facet order (the order they were recorded in).
    pub async fn run_facets(&self, run: i64) -> Result<Vec<RunFacetResult>, CatalogError> {
        runs::run_facets(&self.pool, run).await
    }

    /// A run's predictions, for one facet or all, ordered by image id and then by the run's
    /// facet order.
    pub async fn predictions(
        &self,
        run: i64,
        facet: Option<&str>,
    ) -> Result<Vec<PredictionRecord>, CatalogError> {
        runs::predictions(&self.pool, run, facet).await
    }

    /// Every active image (never quarantined or removed ones) with its label for each of
    /// `facets`, ordered by id.
    pub async fn training_images(
        &self,
        facets: &[String],
    ) -> Result<Vec<LabelledImage>, CatalogError> {
        runs::training_images(&self.pool, self.backend, facets).await
    }

    /// The current label order of each of `facets`, in the order given.
    pub async fn facet_label_orders(
        &self,
        facets: &[String],
    ) -> Result<Vec<(String, Vec<String>)>, CatalogError> {
        runs::facet_label_orders(&self.pool, facets).await
    }
}

/// Starts a write transaction. SQLite takes the write lock up front (`BEGIN IMMEDIATE`) so
/// that a transaction which reads before it writes cannot fail halfway on a lock upgrade.
pub(crate) async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
) -> Result<Transaction<'static, Any>, CatalogError> {
    match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    }
    .map_err(db("starting a transaction"))
}
