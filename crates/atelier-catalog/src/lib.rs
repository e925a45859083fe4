//! The atelier catalogue: which product photos exist, where they lie, how they are labelled
//! per facet (silhouette, neckline, ...), which split they belong to and whether they can be
//! used. It owns the database schema and every write to it.
//!
//! One code path serves SQLite (the default, a single file) and PostgreSQL, through sqlx's
//! `Any` driver; the schema comes from the migrations embedded for each backend.
//!
//! - [`Catalog::import`] synchronises the catalogue with a manifest CSV or a folder tree
//!   (`ROOT/<facet>/<label>/<image file>`), in one transaction; [`Catalog::import_remote`]
//!   does the same for a source in object storage, whose objects its caller reads
//!   ([`RemoteObjects`]), and records their `s3://bucket/key` URIs.
//! - Image ids are the sha256 of the file bytes, so the same picture is one image wherever
//!   it lies.
//! - Labels are versioned and every change is recorded in `label_events`.
//! - Training runs ([`Catalog::create_run`]), their per-facet results and per-image
//!   predictions ([`Catalog::record_run_results`]) are stored here too, along with the reads a
//!   trainer starts from ([`Catalog::training_images`]).
//! - The review web app's storage: users and sessions ([`Catalog::add_user`],
//!   [`Catalog::session`]), audited relabelling guarded by label versions
//!   ([`Catalog::set_labels`], [`Catalog::undo_label_event`]), the review pages' queries
//!   ([`Catalog::review_page`]) and the clean labels of synthetic catalogues
//!   ([`Catalog::import_truth`]).
//! - Browsing: the images that pass label, split, status, design and review filters, a page at
//!   a time ([`Catalog::browse`]).
//! - Dress similarity search: the designs with their images and the design each varies
//!   ([`Catalog::designs`]), every active image's labels for search filters
//!   ([`Catalog::active_labels`]), the similarity triplets a search is measured against
//!   ([`Catalog::import_triplets`], [`Catalog::add_triplet`]) and image embeddings per model
//!   ([`Catalog::put_embeddings`], [`Catalog::embeddings`]).
//!
//! Import rules, per source (the canonical path of the manifest or folder root, or its URI):
//! - an image the source lists for the first time is added; one whose labels, box, design or
//!   path changed is updated (label version + 1, one event per change); otherwise nothing is
//!   written, not even a timestamp;
//! - an image of the source that it no longer lists is marked `removed`, never deleted; listed
//!   again, it comes back;
//! - a split is taken from the source or the content hash once, and never changes;
//! - a label unknown to an existing facet aborts the import unless new labels are allowed;
//! - a label a reviewer set (source `review`) is kept when the source says otherwise:
//!   reviewers fix the source's mistakes (counted in [`ImportReport::kept_reviewed_labels`]);
//! - a file that is missing or empty is recorded as `quarantined` under a placeholder id
//!   (`missing-` + sha256 of its path);
//! - a manifest with the columns `variant_of` and `varied_facet` sets what each listed design
//!   varies (empty cells: nothing); every row of a design must agree, and the design varied
//!   must be listed too or be in the catalogue already.
//!
//! Timestamps are UTC unix milliseconds.

mod box_edits;
mod browse;
mod checks;
mod content;
mod counters;
mod crowd;
mod duplicates;
mod embeddings;
mod error;
mod folder;
mod import;
mod jobs;
mod leases;
mod login_failures;
mod manifest;
mod model;
mod open_check;
mod queries;
mod relabel;
mod remote;
mod results;
mod review;
mod runs;
mod settings;
mod similarity;
mod source;
mod source_reader;
mod sql;
mod training_data;
mod triplets;
mod truth;
mod url;
mod users;
mod vector_search;
mod vocabulary;

use std::str::FromStr;

use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, Transaction};

pub use box_edits::{BoxEdit, BoxEvent, DressBox, LocatedBox, UnsureBox};
pub use browse::{BrowsedImage, BrowsedPage, ImageFilter};
pub use content::{PLACEHOLDER_PREFIX, split_for_digest};
pub use counters::{LABELS_COUNTER, embeddings_counter};
pub use crowd::{
    CrowdBatch, CrowdTask, CrowdVote, NewCrowdBatch, NewCrowdTask, NewCrowdVote, VotesStored,
};
pub use duplicates::{DuplicateDecision, DuplicateVerdict};
pub use error::CatalogError;
pub use jobs::{JOBS_CHANNEL, JobBeat, JobRecord, JobStatus, JobWaiter, NewJob};
pub use login_failures::LoginTally;
pub use model::{
    Backend, BoxRecord, CatalogSummary, CheckOutcome, CheckReport, CheckedImage, FacetSummary,
    ImageLabel, ImageRecord, ImageRef, ImportOptions, ImportProgress, ImportReport, LabelEvent,
    LabelSummary, ProgressFn, QuarantinedImage, Split, SplitCounts, Status,
};
pub use relabel::{LabelChange, LabelEdit};
pub use remote::{RemoteContent, RemoteFailure, RemoteObjects, RemoteSource};
pub use results::{PredictionRecord, PredictionRow, RunFacetResult};
pub use review::{ReviewFilter, ReviewItem, ReviewPage, ReviewQuery};
pub use runs::{NewRun, RunFinish, RunLease, RunRecord, RunStatus};
pub use similarity::DesignRecord;
pub use source::BoxCoords;
pub use sql::{now_millis, utc_minutes};
pub use training_data::LabelledImage;
pub use triplets::{TripletImportReport, TripletRecord, TripletSource};
pub use truth::TruthReport;
pub use url::DEFAULT_DATABASE_URL;
pub use users::{Role, SessionRecord, UserRecord};
pub use vector_search::LabelCondition;

use error::{damage, db};
use url::DatabaseTarget;

/// A connection pool to one catalogue database. Its methods are defined next to the storage
/// they serve: imports, checks, reports, runs and their results, training reads, users,
/// relabelling, review pages, truth labels, similarity reads, triplets and embeddings each have
/// their own module.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// PostgreSQL with pgvector: embeddings are searched in the database.
    pub(crate) vector_search: bool,
    /// The PostgreSQL server's URL, for connections of their own (a job waiter's `LISTEN`).
    pub(crate) listen_url: Option<std::sync::Arc<str>>,
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
                if let Some(file) = &target.sqlite_file {
                    open_check::check_sqlite_file(file, &options).await?;
                }
                AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _meta| Box::pin(open_check::prepare_sqlite(conn)))
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
        migrated.map_err(|source| {
            let damage = match (&source, &target.sqlite_file) {
                (
                    sqlx::migrate::MigrateError::Execute(e)
                    | sqlx::migrate::MigrateError::ExecuteMigration(e, _),
                    Some(file),
                ) => damage(e).map(|reason| (file, reason)),
                _ => None,
            };
            match damage {
                Some((file, reason)) => CatalogError::NotACatalogue {
                    path: file.clone(),
                    reason,
                },
                None => CatalogError::Migrate {
                    url: url.to_string(),
                    source,
                },
            }
        })?;
        let mut catalog = Catalog {
            pool,
            backend: target.backend,
            vector_search: false,
            listen_url: (target.backend == Backend::Postgres)
                .then(|| std::sync::Arc::from(target.connect_url.as_str())),
        };
        if target.backend == Backend::Postgres {
            catalog.vector_search = catalog.enable_vector_search().await?;
        }
        Ok(catalog)
    }

    /// Like [`Catalog::open`], but `None` instead of creating a SQLite file that does not
    /// exist (or for an in-memory one): for commands that only read a catalogue if there is
    /// one.
    pub async fn open_existing(url: &str) -> Result<Option<Catalog>, CatalogError> {
        let target = DatabaseTarget::parse(url)?;
        let exists = match (target.backend, &target.sqlite_file) {
            (Backend::Sqlite, Some(file)) => file.exists(),
            (Backend::Sqlite, None) => false,
            (Backend::Postgres, _) => true,
        };
        if !exists {
            return Ok(None);
        }
        Catalog::open(url).await.map(Some)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection; pending work finishes first.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write transaction. SQLite takes the write lock up front (`BEGIN IMMEDIATE`) so
    /// that a transaction which reads before it writes cannot fail halfway on a lock upgrade.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, CatalogError> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .map_err(db("starting a transaction"))
    }
}
