//! The one error type of the crate. Every message is a single line that names the thing at
//! fault (URL, file, line, column, facet, label) and, where there is one, the fix.

use std::path::PathBuf;

use crate::model::Status;

/// Everything that can go wrong in the catalogue.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "bad database URL {url:?}: {reason}; accepted forms: sqlite://PATH, sqlite:PATH, \
         postgres://USER@HOST:PORT/DATABASE, postgresql://USER@HOST:PORT/DATABASE"
    )]
    BadUrl { url: String, reason: String },

    #[error("cannot open database {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot bring the schema of database {url} up to date: {source}")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    #[error("database error while {context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },

    #[error(
        "the catalogue holds an unexpected value {value:?} in {table}.{column}; was the database written by another program?"
    )]
    Corrupt {
        table: &'static str,
        column: &'static str,
        value: String,
    },

    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Object storage failed during an import (the server, the network or the credentials).
    #[error("{message}")]
    Remote { message: String, bad_input: bool },

    /// A manifest or folder-tree problem; `location` reads like `manifest.csv line 17, column split`.
    #[error("{location}: {message}")]
    Source { location: String, message: String },

    #[error(
        "{location}: label {label:?} is not a label of facet {facet:?} (known: {known}); use one \
         of the known labels, or let the import add new ones at the end of the facet's label \
         order by allowing new labels (import option allow_new_labels)"
    )]
    UnknownLabel {
        location: String,
        facet: String,
        label: String,
        known: String,
    },

    #[error("unknown facet {facet:?}; the catalogue has: {known}")]
    UnknownFacet { facet: String, known: String },

    #[error("new label order for facet {facet:?} is not a permutation of its labels: {problems}")]
    LabelOrder { facet: String, problems: String },

    #[error("no image with id {0:?} in the catalogue")]
    UnknownImage(String),

    #[error("no training run with id {0} in the catalogue")]
    UnknownRun(i64),

    #[error("training run {run} is {status}: cannot {action}; only {allowed} run can")]
    RunState {
        run: i64,
        status: String,
        action: &'static str,
        allowed: &'static str,
    },

    #[error(
        "training run {run} is held by {owner}, which is training it or has queued it (its lease \
         runs {seconds_left} more seconds unless renewed); wait for it to finish, or if that \
         process is gone, try again once the lease has run out"
    )]
    RunHeld {
        run: i64,
        owner: String,
        seconds_left: i64,
    },

    #[error("no job with id {0} in the catalogue (see `atelier jobs list`)")]
    UnknownJob(i64),

    #[error(
        "training run {run} is already queued or training as job {job}; follow it on the jobs \
         page (`atelier jobs show {job}`), or cancel it first"
    )]
    RunQueued { run: i64, job: i64 },

    #[error("no crowd batch with id {0} in the catalogue (see `atelier crowd batches`)")]
    UnknownCrowdBatch(i64),

    #[error("vote {} is not valid: {reason}; nothing was stored", .index + 1)]
    InvalidCrowdVote { index: usize, reason: String },

    #[error("job {job} is {status}: cannot {action}; only {allowed} job can")]
    JobState {
        job: i64,
        status: String,
        action: &'static str,
        allowed: &'static str,
    },

    #[error(
        "job {job} is no longer held by worker {worker}: its lease ran out and another worker \
         took it over, or it was ended; this worker's work on it is not recorded"
    )]
    JobLost { job: i64, worker: String },

    #[error(
        "{path} is not a valid atelier catalogue: {reason}; restore it from a backup, or open \
         another database file (a new file is created where none exists)"
    )]
    NotACatalogue { path: PathBuf, reason: String },

    #[error(
        "the catalogue database is damaged ({reason}), found while {context}; restore it from a \
         backup"
    )]
    Damaged {
        context: &'static str,
        reason: String,
    },

    #[error("invalid data for training run {run}: {message}; nothing was written")]
    InvalidRunData { run: i64, message: String },

    #[error("invalid import options: {0}")]
    InvalidOptions(String),

    #[error("the import stopped unexpectedly: {0}")]
    Interrupted(String),

    #[error(
        "invalid user name {0:?}: use 1 to 64 characters among letters A-Z a-z, digits 0-9 and \
         . _ @ -"
    )]
    InvalidUser(String),

    #[error("user {0:?} already exists; pick another name, or change that user's role or password")]
    UserExists(String),

    #[error("no user named {0:?}; list the users to see who exists, or add this one first")]
    UnknownUser(String),

    #[error("no label event with id {0}; take the id from the image's label history")]
    UnknownEvent(i64),

    /// An optimistic version check failed: someone else changed the label since it was read.
    #[error(
        "the {facet} label of image {image} was changed by someone else: you saw version \
         {expected_version}, it is now version {current_version} with label {}; reload the image \
         and apply your change again",
        current_label.as_deref().map_or_else(|| "(none)".to_string(), |l| format!("{l:?}"))
    )]
    Conflict {
        image: String,
        facet: String,
        expected_version: i64,
        current_version: i64,
        current_label: Option<String>,
    },

    #[error(
        "image {image} is {status}: only active images can be relabelled; import it again (or \
         fix the file and run a check) to make it active first"
    )]
    ImageNotActive { image: String, status: Status },

    #[error(
        "training run {run} has no predictions for facet {facet:?}; it trained: {trained}; pick \
         one of those facets or another run"
    )]
    FacetNotInRun {
        run: i64,
        facet: String,
        trained: String,
    },

    /// A similarity triplet that cannot be stored: `message` says why and how to fix it.
    #[error("invalid triplet: {0}")]
    InvalidTriplet(String),

    #[error(
        "this triplet (reference {reference}, similar {similar}, dissimilar {dissimilar}) is \
         already stored as triplet {id}"
    )]
    TripletExists {
        id: i64,
        reference: String,
        similar: String,
        dissimilar: String,
    },

    #[error("no triplet with id {0}; take the id from the list of triplets")]
    UnknownTriplet(i64),

    #[error("invalid duplicate verdict: {0}")]
    InvalidDuplicate(String),

    #[error("invalid box for image {image}: {message}; nothing was written")]
    InvalidBox { image: String, message: String },

    /// An optimistic version check on a dress box failed; `current` is the box now.
    #[error(
        "the dress box of image {image} was changed by someone else: you saw version \
         {expected_version}, it is now {}; reload the image and apply your change again",
        current.as_deref().map_or_else(|| "gone".to_string(), |b| format!(
            "version {} ({:.0}, {:.0}, {:.0}, {:.0})",
            b.version, b.coords[0], b.coords[1], b.coords[2], b.coords[3]
        ))
    )]
    BoxConflict {
        image: String,
        expected_version: i64,
        current: Option<Box<crate::box_edits::DressBox>>,
    },

    #[error("invalid embeddings for model {model:?}: {message}; nothing was written")]
    InvalidEmbeddings { model: String, message: String },
}

/// Maps a sqlx error to [`CatalogError::Database`] with what the catalogue was doing, or to
/// [`CatalogError::Damaged`] when SQLite reports a damaged file.
pub(crate) fn db(context: &'static str) -> impl Fn(sqlx::Error) -> CatalogError {
    move |source| match damage(&source) {
        Some(reason) => CatalogError::Damaged { context, reason },
        None => CatalogError::Database { context, source },
    }
}

/// SQLite's primary result codes for a damaged file and for a file that is no database.
const SQLITE_CORRUPT: i32 = 11;
const SQLITE_NOTADB: i32 = 26;

/// The reason to show when `error` says the file is damaged or no database.
pub(crate) fn damage(error: &sqlx::Error) -> Option<String> {
    let sqlx::Error::Database(database) = error else {
        return None;
    };
    let code: i32 = database.code()?.parse().ok()?;
    matches!(code & 0xff, SQLITE_CORRUPT | SQLITE_NOTADB).then(|| database.message().to_string())
}
