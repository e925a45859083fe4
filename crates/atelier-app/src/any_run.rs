//! Runs whatever their kind: retraining a run with its stored options and training a recorded
//! run, for callers (the web app's background jobs) that hold a run id and not its kind.

use std::path::PathBuf;

use atelier_train::progress::Observer;

use crate::error::AppError;
use crate::runner::{self, FACETS_RUN, RunPaths, find_run};
use crate::similarity::{self, SIMILARITY_RUN};

/// Records a retrain of `parent`: a facet run or a similarity run with its stored options, on
/// the catalogue as it is now. Returns the new run's id.
pub async fn create_retrain(
    catalog: &atelier_catalog::Catalog,
    parent: i64,
    paths: &RunPaths,
) -> Result<i64, AppError> {
    let record = find_run(catalog, parent).await?;
    match record.kind.as_str() {
        FACETS_RUN => runner::create_retrain(catalog, parent, paths).await,
        SIMILARITY_RUN => similarity::create_similarity_retrain(catalog, parent, paths).await,
        other => Err(unknown_kind(parent, other)),
    }
}

/// Trains recorded run `run` to the end (see [`runner::execute_run`] and
/// [`similarity::execute_similarity_run`]); returns the folder of its model.
pub async fn execute(
    catalog: &atelier_catalog::Catalog,
    run: i64,
    paths: &RunPaths,
    observer: Box<dyn Observer + Send>,
) -> Result<PathBuf, AppError> {
    let record = find_run(catalog, run).await?;
    match record.kind.as_str() {
        FACETS_RUN => Ok(runner::execute_run(catalog, run, paths, observer)
            .await?
            .model_dir),
        SIMILARITY_RUN => Ok(
            similarity::execute_similarity_run(catalog, run, paths, observer)
                .await?
                .model_dir,
        ),
        other => Err(unknown_kind(run, other)),
    }
}

fn unknown_kind(run: i64, kind: &str) -> AppError {
    AppError::Invalid(format!(
        "run {run} is a `{kind}` run; only `{FACETS_RUN}` and `{SIMILARITY_RUN}` runs can be \
         trained here"
    ))
}
