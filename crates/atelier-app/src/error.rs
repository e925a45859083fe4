//! The one error type of the application layer.

use std::path::{Path, PathBuf};

use atelier_catalog::CatalogError;
use atelier_store::StoreError;
use atelier_train::TrainError;

/// Everything a use case can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request cannot be carried out as asked (an unknown or completed run, a facet the run
    /// has no results for, ...); the message says what to do instead.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The thread a run trained on stopped without an answer (a panic); the run's checkpoints
    /// are kept, so it can be resumed.
    #[error("the training thread stopped unexpectedly: {0}")]
    Thread(String),
}

impl AppError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        AppError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
