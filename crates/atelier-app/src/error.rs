//! The one error type of the application layer, and the one place where errors are sorted into
//! kinds: what the front ends turn into exit codes and HTTP statuses.

use std::path::{Path, PathBuf};

use atelier_catalog::CatalogError;
use atelier_search::SearchError;
use atelier_store::StoreError;
use atelier_store::images::ImageError;
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
    #[error(transparent)]
    Search(#[from] SearchError),
    /// A catalogue image in object storage could not be read (or cached).
    #[error(transparent)]
    Image(#[from] ImageError),
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

/// What kind of failure an error is, for the front ends: the command line exits 2 for the
/// first three and 1 for the last; the web app answers 400, 404, 409 and 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is wrong (a file, an option, a field); the message says how to fix it.
    Invalid,
    /// Something named does not exist.
    NotFound,
    /// The request clashes with the current state (someone else changed it, it is held or
    /// finished); the message says what it is now.
    Conflict,
    /// atelier or its environment failed; the input was fine.
    Internal,
}

impl AppError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            AppError::Invalid(_) => ErrorKind::Invalid,
            AppError::Catalog(error) => catalog_kind(error),
            AppError::Train(error) => train_kind(error),
            AppError::Store(error) => store_kind(error),
            AppError::Search(error) => search_kind(error),
            AppError::Image(error) => image_kind(error),
            AppError::Io { .. } | AppError::Thread(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        AppError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn catalog_kind(error: &CatalogError) -> ErrorKind {
    use CatalogError as E;
    match error {
        E::BadUrl { .. }
        | E::Io { .. }
        | E::Source { .. }
        | E::UnknownLabel { .. }
        | E::LabelOrder { .. }
        | E::InvalidOptions(_)
        | E::InvalidRunData { .. }
        | E::InvalidUser(_)
        | E::ImageNotActive { .. }
        | E::NotACatalogue { .. }
        | E::InvalidTriplet(_)
        | E::InvalidBox { .. }
        | E::InvalidDuplicate(_)
        | E::InvalidEmbeddings { .. }
        | E::InvalidCrowdVote { .. } => ErrorKind::Invalid,
        E::UnknownFacet { .. }
        | E::UnknownImage(_)
        | E::UnknownRun(_)
        | E::UnknownUser(_)
        | E::UnknownEvent(_)
        | E::FacetNotInRun { .. }
        | E::UnknownTriplet(_)
        | E::UnknownJob(_)
        | E::UnknownCrowdBatch(_) => ErrorKind::NotFound,
        E::Conflict { .. }
        | E::UserExists(_)
        | E::RunState { .. }
        | E::RunHeld { .. }
        | E::JobState { .. }
        | E::RunQueued { .. }
        | E::JobLost { .. }
        | E::TripletExists { .. }
        | E::BoxConflict { .. } => ErrorKind::Conflict,
        E::Connect { .. }
        | E::Migrate { .. }
        | E::Database { .. }
        | E::Corrupt { .. }
        | E::Damaged { .. }
        | E::Interrupted(_) => ErrorKind::Internal,
        E::Remote { bad_input, .. } => {
            if *bad_input {
                ErrorKind::Invalid
            } else {
                ErrorKind::Internal
            }
        }
    }
}

fn image_kind(error: &ImageError) -> ErrorKind {
    match error {
        ImageError::NotFound { .. } => ErrorKind::NotFound,
        error if error.is_bad_input() => ErrorKind::Invalid,
        _ => ErrorKind::Internal,
    }
}

fn search_kind(error: &SearchError) -> ErrorKind {
    use atelier_search::ErrorKind as K;
    match error.kind() {
        K::BadInput | K::Damaged | K::Mismatched => ErrorKind::Invalid,
        K::Io | K::Internal => ErrorKind::Internal,
    }
}

fn train_kind(error: &TrainError) -> ErrorKind {
    use TrainError as E;
    match error {
        E::Config(_)
        | E::Setting { .. }
        | E::Image { .. }
        | E::EmptyDataset { .. }
        | E::Device { .. }
        | E::Weights(_)
        | E::Artifact { .. } => ErrorKind::Invalid,
        E::Stopped { .. } => ErrorKind::Conflict,
        _ => ErrorKind::Internal,
    }
}

fn store_kind(error: &StoreError) -> ErrorKind {
    match error {
        StoreError::NotFound { .. } => ErrorKind::NotFound,
        error if error.is_bad_input() => ErrorKind::Invalid,
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_things_are_not_found_and_clashes_are_conflicts() {
        let kind = |e: CatalogError| AppError::from(e).kind();
        assert_eq!(kind(CatalogError::UnknownRun(3)), ErrorKind::NotFound);
        assert_eq!(
            kind(CatalogError::UnknownUser("x".into())),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(CatalogError::UserExists("x".into())),
            ErrorKind::Conflict
        );
        assert_eq!(
            kind(CatalogError::InvalidUser("x y".into())),
            ErrorKind::Invalid
        );
        assert_eq!(
            AppError::from(TrainError::Config("no".into())).kind(),
            ErrorKind::Invalid
        );
        assert_eq!(AppError::Thread("x".into()).kind(), ErrorKind::Internal);
    }
}
