//! The crate's errors: bad vectors and keys from the caller, index files that are damaged or
//! do not match what the caller expects, HNSW parameters out of range, I/O failures. Every file
//! error names the file and says what to do about it.

use std::path::{Path, PathBuf};

/// What kind of failure an error is, for callers that map errors to exit codes or HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller passed a vector, query or key the index cannot take.
    BadInput,
    /// An index file is damaged: truncated, altered, or not an index file at all.
    Damaged,
    /// An index file is intact but is not what the caller asked for (another dimension, kind,
    /// metric or format version).
    Mismatched,
    /// Reading or writing a file failed.
    Io,
    /// The index broke a promise of its own (a bug).
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{what} has {got} dimensions, but this index holds {expected}-dimensional vectors")]
    WrongDimension {
        what: String,
        expected: usize,
        got: usize,
    },

    #[error("an index needs between 1 and 2^32-1 dimensions, not {dimensions}")]
    BadDimensions { dimensions: usize },

    #[error(
        "a batch of {keys} keys came with {values} values; {dimensions}-dimensional vectors \
         need {dimensions} values per key, row by row"
    )]
    BatchLength {
        keys: usize,
        values: usize,
        dimensions: usize,
    },

    #[error("{what} {reason}; it cannot be normalised for cosine similarity")]
    InvalidVector { what: String, reason: &'static str },

    #[error("key {key} is reserved by the approximate index; map image ids to keys below u64::MAX")]
    ReservedKey { key: u64 },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{}: not an atelier search index ({detail}); point to a file written by `save`, or \
         rebuild the index from the embeddings",
        path.display()
    )]
    NotAnIndex { path: PathBuf, detail: String },

    #[error(
        "{}: damaged index file ({detail}); it was truncated or altered after saving. Rebuild \
         the index from the embeddings (or restore a copy)",
        path.display()
    )]
    Damaged { path: PathBuf, detail: String },

    #[error(
        "{}: written in index format version {found}, but this build reads version \
         {supported}; rebuild the index from the embeddings with this build",
        path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error("{}: {detail}; {fix}", path.display())]
    Mismatch {
        path: PathBuf,
        detail: String,
        fix: String,
    },

    #[error("HNSW parameters: {detail}")]
    BadParameters { detail: String },

    #[error(
        "{count} vectors are more than one HNSW graph holds (4 294 967 294); use the exact \
         index or split the vectors over several indexes"
    )]
    TooMany { count: usize },

    #[error("approximate index: {operation} failed: {detail}")]
    Backend {
        operation: &'static str,
        detail: String,
    },
}

/// Shorthand for results whose error is [`SearchError`].
pub type SearchResult<T> = Result<T, SearchError>;

impl SearchError {
    /// The kind of failure, so callers need not match every variant.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SearchError::WrongDimension { .. }
            | SearchError::InvalidVector { .. }
            | SearchError::BatchLength { .. }
            | SearchError::BadDimensions { .. }
            | SearchError::ReservedKey { .. }
            | SearchError::BadParameters { .. }
            | SearchError::TooMany { .. } => ErrorKind::BadInput,
            SearchError::NotAnIndex { .. } | SearchError::Damaged { .. } => ErrorKind::Damaged,
            SearchError::UnsupportedVersion { .. } | SearchError::Mismatch { .. } => {
                ErrorKind::Mismatched
            }
            SearchError::Io { .. } => ErrorKind::Io,
            SearchError::Backend { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        SearchError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn damaged(path: &Path, detail: impl Into<String>) -> Self {
        SearchError::Damaged {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }

    pub(crate) fn backend(operation: &'static str, source: impl std::fmt::Display) -> Self {
        SearchError::Backend {
            operation,
            detail: source.to_string(),
        }
    }
}
