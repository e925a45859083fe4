//! `atelier import`: synchronise the catalogue with a manifest or folder tree.

use std::sync::Arc;

use atelier_app::{AppError, images};
use atelier_catalog::{Catalog, ImportOptions, ImportReport, ProgressFn, TruthReport};

use crate::args::ImportArgs;
use crate::error::{CliError, CliResult};
use crate::output::print_json;
use crate::progress;

pub async fn run(catalog: &Catalog, args: &ImportArgs, json: bool) -> CliResult {
    if args.truth {
        let report = catalog.import_truth(&args.path).await?;
        if json {
            return print_json(&report);
        }
        print_truth_report(&report);
        return Ok(());
    }
    if args.triplets {
        let report = catalog.import_triplets(&args.path, "import").await?;
        if json {
            return print_json(&report);
        }
        println!(
            "{} triplet rows: {} stored, {} were stored already",
            report.rows, report.added, report.already_stored
        );
        return Ok(());
    }
    if args.queue {
        let options = options(args, None)?;
        let source = args.path.to_string_lossy();
        let job = atelier_app::jobs::queue_import(catalog, &source, &options, "cli").await?;
        return crate::commands::jobs::print_queued(job, None, json);
    }
    let report = import(catalog, args, json).await?;
    if json {
        return print_json(&report);
    }
    print_report(&report);
    Ok(())
}

/// The import's options from the command line, with `on_progress`.
fn options(args: &ImportArgs, on_progress: Option<ProgressFn>) -> CliResult<ImportOptions> {
    if !(0.0..=1.0).contains(&args.test_fraction) {
        return Err(CliError::bad_input(format!(
            "--test-fraction {} is outside 0..1 (e.g. 0.1 puts a tenth of new images in test)",
            args.test_fraction
        )));
    }
    Ok(ImportOptions {
        test_fraction: args.test_fraction,
        allow_new_labels: args.allow_new_labels,
        allow_missing: args.allow_missing,
        allow_removals: args.allow_removals,
        on_progress,
        ..ImportOptions::default()
    })
}

pub async fn import(catalog: &Catalog, args: &ImportArgs, json: bool) -> CliResult<ImportReport> {
    let bar = progress::bar(0, "importing", json);
    let bar_for_import = bar.clone();
    let options = options(
        args,
        Some(Arc::new(move |p: atelier_catalog::ImportProgress| {
            bar_for_import.set_length(p.rows_total);
            bar_for_import.set_position(p.rows_done);
        })),
    )?;
    let report = match args.path.to_str() {
        Some(source) => images::import(catalog, source, &options, images::resolver()).await,
        None => catalog
            .import(&args.path, &options)
            .await
            .map_err(AppError::from),
    };
    bar.finish_and_clear();
    let report = report?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(report)
}

pub fn print_truth_report(report: &TruthReport) {
    println!(
        "{} truth rows: {} matched catalogue images, {} clean labels stored",
        report.rows, report.matched_images, report.labels
    );
    if !report.unmatched_paths.is_empty() {
        println!(
            "not in the catalogue (import the manifest first): {}",
            report.unmatched_paths.join(", ")
        );
    }
}

pub fn print_report(report: &ImportReport) {
    let changed = report.added + report.updated + report.removed + report.quarantined;
    println!(
        "{} rows from {}: added {}, updated {}, unchanged {}, removed {}, quarantined {}, duplicates {}",
        report.rows,
        report.source,
        report.added,
        report.updated,
        report.unchanged,
        report.removed,
        report.quarantined,
        report.duplicates
    );
    if report.kept_reviewed_labels > 0 {
        println!(
            "kept {} labels that reviewers changed (the source still has the old ones)",
            report.kept_reviewed_labels
        );
    }
    if changed == 0 {
        println!("nothing changed: the catalogue already matches this import");
    }
}
