//! `atelier check`: decode every catalogued image in parallel and quarantine unusable files.

use std::sync::Arc;

use atelier_app::check::{CheckSummary, check_catalog};
use atelier_catalog::Catalog;
use atelier_vision::decode::DecodeLimits;

use crate::args::CheckArgs;
use crate::error::CliResult;
use crate::output::print_json;
use crate::progress;

pub async fn run(catalog: &Catalog, args: &CheckArgs, json: bool) -> CliResult {
    let limits = DecodeLimits {
        max_side: args.max_side,
        max_pixels: args.max_pixels,
        min_side: args.min_side,
        ..DecodeLimits::default()
    };
    if args.queue {
        let job = atelier_app::jobs::queue_check(catalog, &limits, "cli").await?;
        return crate::commands::jobs::print_queued(job, None, json);
    }
    let summary = check(catalog, limits, json).await?;
    if json {
        return print_json(&summary);
    }
    println!(
        "checked {} images: {} usable, {} quarantined",
        summary.checked, summary.ok, summary.quarantined
    );
    for line in &summary.quarantined_images {
        println!("  quarantined {}  {}", line.uri, line.reason);
    }
    Ok(())
}

/// Checks the catalogue with a progress bar (none with `--json`).
pub async fn check(catalog: &Catalog, limits: DecodeLimits, json: bool) -> CliResult<CheckSummary> {
    let bar = progress::bar(0, "checking", json);
    let (for_total, for_workers) = (bar.clone(), bar.clone());
    let summary = check_catalog(
        catalog,
        limits,
        move |total| for_total.set_length(total),
        Arc::new(move || for_workers.inc(1)),
    )
    .await;
    bar.finish_and_clear();
    Ok(summary?)
}
