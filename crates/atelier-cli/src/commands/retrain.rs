//! `atelier retrain RUN`: a new run with RUN's stored options (facets, backbone, folds,
//! everything) on the catalogue's current labels, e.g. after reviewers fixed tags. The new run
//! records RUN as its parent; its tables print like `atelier train facets`.

use std::path::PathBuf;

use atelier_app::runner;
use atelier_catalog::Catalog;
use serde_json::json;

use crate::args::{GlobalArgs, RetrainArgs};
use crate::commands::train;
use crate::error::{CliError, CliResult};
use crate::output::print_json;

pub async fn run(catalog: &Catalog, args: &RetrainArgs, global: &GlobalArgs) -> CliResult {
    let parent = catalog.run(args.run).await?.ok_or_else(|| {
        CliError::bad_input(format!(
            "run {} does not exist (see `atelier runs`)",
            args.run
        ))
    })?;
    // Checkpoints go beside the parent's unless told otherwise.
    let checkpoint_base = args
        .checkpoint_dir
        .clone()
        .or_else(|| runner::stored_checkpoint_base(&parent))
        .unwrap_or_else(|| PathBuf::from("checkpoints"));
    let paths = train::run_paths(&checkpoint_base, &global.store)?;
    if args.queue {
        let run = atelier_app::any_run::create_retrain(catalog, args.run, &paths).await?;
        let job = atelier_app::jobs::queue_run(catalog, run, "cli").await?;
        return crate::commands::jobs::print_queued(job, Some(run), global.json);
    }
    let run = runner::create_retrain(catalog, args.run, &paths).await?;
    if !global.json {
        println!(
            "run {run}: retraining run {} on the current labels",
            args.run
        );
    }
    let trained = train::execute(catalog, run, &paths, global).await?;
    if global.json {
        print_json(&json!({
            "run": trained.run,
            "parent_run": args.run,
            "model": trained.model_dir,
            "facets": trained.summary.facets,
            "seconds": trained.summary.seconds,
        }))?;
    }
    Ok(())
}
