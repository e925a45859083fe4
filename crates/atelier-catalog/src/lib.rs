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
//! - The review web app's storage: users and sessions ([`Catalog::add_user`],
//!   [`Catalog::session`]), audited relabelling guarded by label versions
//!   ([`Catalog::set_labels`], [`Catalog::undo_label_event`]), the review pages' queries
//!   ([`Catalog::review_page`]) and the clean labels of synthetic catalogues
//!   ([`Catalog::import_truth`]).
//!
//! Import rules, per source (the canonical path of the manifest or folder root):
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
//!   (`missing-` + sha256 of its path).
//!
//! Timestamps are UTC unix milliseconds.

mod checks;
mod content;
mod error;
mod folder;
mod import;
mod leases;
mod manifest;
mod model;
mod open_check;
mod queries;
mod review;
mod runs;
mod settings;
mod source;
mod sql;
mod truth;
mod url;
mod users;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, Transaction};

pub use content::{PLACEHOLDER_PREFIX, split_for_digest};
pub use error::CatalogError;
pub use leases::RunLease;
pub use model::{
    Backend, BoxRecord, CatalogSummary, CheckOutcome, CheckReport, CheckedImage, FacetSummary,
    ImageLabel, ImageRecord, ImageRef, ImportOptions, ImportProgress, ImportReport, LabelEvent,
    LabelSummary, ProgressFn, QuarantinedImage, Split, SplitCounts, Status,
};
pub use review::{LabelChange, LabelEdit, ReviewFilter, ReviewItem, ReviewPage, ReviewQuery};
pub use runs::{
    LabelledImage, NewRun, PredictionRecord, PredictionRow, RunFacetResult, RunFinish, RunRecord,
    RunStatus,
};
pub use sql::{now_millis, utc_minutes};
pub use truth::TruthReport;
pub use url::DEFAULT_DATABASE_URL;
pub use users::{Role, SessionRecord, UserRecord};

use error::db;
use url::DatabaseTarget;

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
                ) => open_check::damage(e).map(|reason| (file, reason)),
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
        Ok(Catalog {
            pool,
            backend: target.backend,
        })
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

    /// Ends a running or interrupted run as completed or failed.
    pub async fn finish_run(&self, run: i64, finish: &RunFinish) -> Result<(), CatalogError> {
        runs::finish_run(&self.pool, run, finish, runs::FinishGuard::Any).await
    }

    /// Ends an interrupted run as failed with `error` (a reviewer gives up on resuming it);
    /// any other state is refused.
    pub async fn fail_interrupted_run(&self, run: i64, error: &str) -> Result<(), CatalogError> {
        let finish = RunFinish {
            status: RunStatus::Failed,
            summary: None,
            model_ref: None,
            error: Some(error.to_string()),
        };
        runs::finish_run(&self.pool, run, &finish, runs::FinishGuard::Interrupted).await
    }

    /// Like [`Catalog::finish_run`], but only while `owner` still holds the run's lease: a
    /// process whose lease expired and was taken over must not record its results.
    pub async fn finish_held_run(
        &self,
        run: i64,
        owner: &str,
        finish: &RunFinish,
    ) -> Result<(), CatalogError> {
        runs::finish_run(&self.pool, run, finish, runs::FinishGuard::HeldBy(owner)).await
    }

    /// Takes run `run` for `owner` until `expires_at` (UTC unix ms) and makes it `running` again
    /// if it had failed or was interrupted. [`CatalogError::RunHeld`] while another owner's
    /// lease is alive, unless that owner is `gone_owner` (a holder the caller knows is dead);
    /// [`CatalogError::RunState`] for a completed run.
    pub async fn take_run(
        &self,
        run: i64,
        owner: &str,
        expires_at: i64,
        gone_owner: Option<&str>,
    ) -> Result<(), CatalogError> {
        leases::take_run(&self.pool, run, owner, expires_at, gone_owner).await
    }

    /// Extends `owner`'s leases on `runs` to `expires_at`; returns the runs it no longer holds.
    pub async fn renew_run_leases(
        &self,
        owner: &str,
        runs: &[i64],
        expires_at: i64,
    ) -> Result<Vec<i64>, CatalogError> {
        leases::renew(&self.pool, owner, runs, expires_at).await
    }

    /// Marks `interrupted` every running run whose holder is gone (no lease, an expired one,
    /// or an owner `gone` reports dead) and returns them.
    pub async fn interrupt_orphaned_runs(
        &self,
        gone: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Vec<i64>, CatalogError> {
        leases::interrupt_orphans(&self.pool, gone).await
    }

    /// The catalogue's id (16 hex digits, drawn the first time it is asked for): what keeps
    /// the files of two catalogues apart when they share a folder.
    pub async fn catalog_id(&self) -> Result<String, CatalogError> {
        settings::catalog_id(&self.pool, self.backend).await
    }

    /// The setting stored under `key`, storing `candidate` first if there is none (the web
    /// app's secrets). Concurrent callers all get the first value stored.
    pub async fn setting_or_insert(
        &self,
        key: &str,
        candidate: &str,
    ) -> Result<String, CatalogError> {
        settings::value_or_insert(&self.pool, key, candidate).await
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
        runs::predictions(&self.pool, run, facet, false).await
    }

    /// Like [`Catalog::predictions`], but only the predictions made by a model that never saw
    /// the image: test images, and train images predicted out of fold (by a cross-fitted
    /// model).
    pub async fn out_of_sample_predictions(
        &self,
        run: i64,
        facet: Option<&str>,
    ) -> Result<Vec<PredictionRecord>, CatalogError> {
        runs::predictions(&self.pool, run, facet, true).await
    }

    /// Every active image (never quarantined or removed ones) with its label for each of
    /// `facets`, ordered by id.
    pub async fn training_images(
        &self,
        facets: &[String],
    ) -> Result<Vec<LabelledImage>, CatalogError> {
        runs::training_images(&self.pool, self.backend, facets).await
    }

    /// The dress box `[x0, y0, x1, y1]` in pixels of every active image that has one, by image
    /// id (what the dress locator of a detail-view model learns from).
    pub async fn dress_boxes(
        &self,
    ) -> Result<std::collections::HashMap<String, [f64; 4]>, CatalogError> {
        runs::dress_boxes(&self.pool).await
    }

    /// The current label order of each of `facets`, in the order given.
    pub async fn facet_label_orders(
        &self,
        facets: &[String],
    ) -> Result<Vec<(String, Vec<String>)>, CatalogError> {
        runs::facet_label_orders(&self.pool, facets).await
    }

    /// Adds a user. `name` is 1 to 64 characters of `[A-Za-z0-9._@-]`
    /// ([`CatalogError::InvalidUser`] otherwise); a taken name is
    /// [`CatalogError::UserExists`]. `password_hash` is stored as given (a PHC string).
    pub async fn add_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
    ) -> Result<(), CatalogError> {
        users::add_user(&self.pool, name, role, password_hash).await
    }

    /// One user, or `None` if the name is unknown.
    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>, CatalogError> {
        users::user(&self.pool, name).await
    }

    /// Every user, ordered by name.
    pub async fn users(&self) -> Result<Vec<UserRecord>, CatalogError> {
        users::users(&self.pool).await
    }

    /// Changes a user's role; open sessions get the new role at their next look-up. An
    /// unknown name is [`CatalogError::UnknownUser`].
    pub async fn set_user_role(&self, name: &str, role: Role) -> Result<(), CatalogError> {
        users::set_user_role(&self.pool, name, role).await
    }

    /// Replaces a user's password hash and ends all of the user's sessions. An unknown name is
    /// [`CatalogError::UnknownUser`].
    pub async fn set_user_password(
        &self,
        name: &str,
        password_hash: &str,
    ) -> Result<(), CatalogError> {
        users::set_user_password(&self.pool, self.backend, name, password_hash).await
    }

    /// Removes a user with all of the user's sessions (label events keep the name as their
    /// actor). An unknown name is [`CatalogError::UnknownUser`].
    pub async fn remove_user(&self, name: &str) -> Result<(), CatalogError> {
        users::remove_user(&self.pool, self.backend, name).await
    }

    /// Stores a session of `user` under the hash of its token, valid until `expires_at` (UTC
    /// unix milliseconds, like `now` of [`Catalog::session`]). An unknown user is
    /// [`CatalogError::UnknownUser`].
    pub async fn create_session(
        &self,
        token_hash: &str,
        user: &str,
        csrf_token: &str,
        expires_at: i64,
    ) -> Result<(), CatalogError> {
        users::create_session(&self.pool, token_hash, user, csrf_token, expires_at).await
    }

    /// The session stored under `token_hash` with its user's current role, or `None` when the
    /// hash is unknown or the session expired (`expires_at <= now`).
    pub async fn session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<SessionRecord>, CatalogError> {
        users::session(&self.pool, token_hash, now).await
    }

    /// Ends a session (logout); an unknown hash is not an error.
    pub async fn delete_session(&self, token_hash: &str) -> Result<(), CatalogError> {
        users::delete_session(&self.pool, token_hash).await
    }

    /// Deletes every session that expired by `now` and returns how many there were. Expired
    /// sessions are already refused by [`Catalog::session`]; this only reclaims their rows.
    pub async fn delete_expired_sessions(&self, now: i64) -> Result<u64, CatalogError> {
        users::delete_expired_sessions(&self.pool, now).await
    }

    /// Applies label edits as a reviewer, all or nothing, in one transaction, and returns what
    /// each did, in order. Each edit must name the label version it was based on
    /// ([`LabelEdit::expected_version`]); if the label moved on since, the whole batch fails
    /// with [`CatalogError::Conflict`] and nothing is written. An edit that asks for the label
    /// the image already has writes nothing (`event_id: None`); any other writes the label
    /// (source `review`, version + 1) and a label event with the actor, reason and run.
    /// Unknown images, facets, labels or runs, and images that are not active, fail the batch
    /// too.
    pub async fn set_labels(&self, edits: &[LabelEdit]) -> Result<Vec<LabelChange>, CatalogError> {
        review::set_labels(&self.pool, self.backend, edits).await
    }

    /// Reverts one label event: sets the event's image and facet back to the event's old label,
    /// recorded as a new event by `actor` with the reason `undo of event {id}` and the event's
    /// run. The label must still be the one the event set, else [`CatalogError::Conflict`]
    /// describes what it is now; an unknown id is [`CatalogError::UnknownEvent`].
    pub async fn undo_label_event(
        &self,
        event_id: i64,
        actor: &str,
    ) -> Result<LabelChange, CatalogError> {
        review::undo_label_event(&self.pool, self.backend, event_id, actor).await
    }

    /// One page of a run's predictions for a facet, picked by [`ReviewFilter`], of active
    /// images only, most confident first (ties by image id), with each image's current label
    /// and version. `total` counts every matching item, not only the page's. An unknown run,
    /// facet or label is an error, and so is a facet the run has no results for
    /// ([`CatalogError::FacetNotInRun`]).
    pub async fn review_page(&self, query: &ReviewQuery) -> Result<ReviewPage, CatalogError> {
        review::review_page(&self.pool, self.backend, query).await
    }

    /// A run's predictions of one image, in the run's facet order (empty if the run did not
    /// predict the image). Unknown runs and images are errors.
    pub async fn image_predictions(
        &self,
        image: &str,
        run: i64,
    ) -> Result<Vec<PredictionRecord>, CatalogError> {
        review::image_predictions(&self.pool, image, run).await
    }

    /// Image id → (current label, version) for every active image with a label row for
    /// `facet` (a cleared label is `None` with its version).
    pub async fn current_labels(
        &self,
        facet: &str,
    ) -> Result<HashMap<String, (Option<String>, i64)>, CatalogError> {
        review::current_labels(&self.pool, self.backend, facet).await
    }

    /// Stores the clean labels of a synthetic catalogue from the `truth.csv` that
    /// `atelier synth` writes (`path,<facets...>,flipped`), replacing any stored before, in
    /// one transaction. Rows are matched to images by path, resolved as an import resolves a
    /// manifest's paths; rows that match no image are reported, not stored. A column that is
    /// not a facet of the catalogue, or a label a facet does not know, fails the import.
    pub async fn import_truth(&self, csv: &Path) -> Result<TruthReport, CatalogError> {
        truth::import_truth(&self.pool, self.backend, csv).await
    }

    /// Image id → clean label of `facet`, for every image that has one stored.
    pub async fn truth_labels(&self, facet: &str) -> Result<HashMap<String, String>, CatalogError> {
        truth::truth_labels(&self.pool, facet).await
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
