//! `atelier crowd`: parsing the options, writing the export's files, printing reports; the
//! work is `atelier_app::crowd`.

use std::time::Duration;

use atelier_app::crowd::{self, ExportRequest, TaskSource};
use atelier_catalog::Catalog;
use serde_json::json;

use crate::args::{CrowdAction, CrowdArgs, CrowdExportArgs, TaskSourceArg};
use crate::error::{CliError, CliResult};
use crate::output::print_json;

pub async fn run(catalog: &Catalog, args: &CrowdArgs, json: bool) -> CliResult {
    match &args.action {
        CrowdAction::Export(export_args) => export(catalog, export_args, json).await,
        CrowdAction::Import { file } => import(catalog, file, json).await,
        CrowdAction::Aggregate { batch } => {
            let aggregation = crowd::aggregate(catalog, *batch).await?;
            if json {
                return print_json(&aggregation);
            }
            print_aggregation(&aggregation);
            Ok(())
        }
        CrowdAction::Apply {
            batch,
            min_posterior,
            actor,
        } => apply(catalog, *batch, *min_posterior, actor, json).await,
        CrowdAction::Simulate {
            batch,
            votes,
            seed,
            out,
        } => {
            let text = crowd::simulated_results(catalog, *batch, *votes, *seed).await?;
            std::fs::write(out, &text)
                .map_err(|e| CliError::bad_input(format!("--out {}: {e}", out.display())))?;
            let rows = text.lines().count().saturating_sub(1);
            if json {
                return print_json(&json!({ "batch": batch, "rows": rows, "out": out }));
            }
            println!("{rows} simulated answers in {}", out.display());
            Ok(())
        }
        CrowdAction::Batches => batches(catalog, json).await,
    }
}

/// Records a batch and writes its two files into `--out`.
async fn export(catalog: &Catalog, args: &CrowdExportArgs, json: bool) -> CliResult {
    let label = args.label.clone();
    let from = match args.from {
        TaskSourceArg::Mistags => TaskSource::Mistags,
        TaskSourceArg::FalseNegatives => TaskSource::FalseNegatives(label),
        TaskSourceArg::FalsePositives => TaskSource::FalsePositives(label),
        TaskSourceArg::All => TaskSource::All,
    };
    let request = ExportRequest {
        run: args.run,
        facet: args.facet.clone(),
        from,
        limit: args.limit,
        votes: args.votes,
        gold: args.gold,
        base_url: args.base_url.clone(),
        publish_images: args.publish_images.clone(),
        expires_in: Duration::from_secs(args.expires_days * 24 * 3600),
        created_by: "cli".into(),
    };
    let out = &args.out;
    std::fs::create_dir_all(out)
        .map_err(|e| CliError::bad_input(format!("--out {}: {e}", out.display())))?;
    let export = crowd::export(catalog, &request).await?;
    for (name, text) in [
        ("tasks.csv", &export.csv),
        ("question.html", &export.template),
    ] {
        let path = out.join(name);
        std::fs::write(&path, text)
            .map_err(|e| CliError::internal(format!("{}: {e}", path.display())))?;
    }
    if json {
        return print_json(&json!({ "export": export, "out": out }));
    }
    println!(
        "batch {}: {} tasks ({} gold) in {}; image links valid {} days",
        export.batch,
        export.tasks,
        export.gold,
        out.join("tasks.csv").display(),
        args.expires_days
    );
    Ok(())
}

/// Reads a batch-results file into votes and reports its bad rows.
async fn import(catalog: &Catalog, file: &std::path::Path, json: bool) -> CliResult {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", file.display())))?;
    let report = crowd::import_results(catalog, &text).await?;
    if json {
        return print_json(&report);
    }
    println!(
        "{} rows: {} votes stored, {} stored before, {} rejected assignments, {} bad rows",
        report.rows,
        report.added,
        report.already_stored,
        report.rejected,
        report.problems.len()
    );
    for problem in &report.problems {
        println!("  line {}: {}", problem.line, problem.reason);
    }
    Ok(())
}

async fn apply(
    catalog: &Catalog,
    batch: i64,
    min_posterior: f64,
    actor: &str,
    json: bool,
) -> CliResult {
    let report = crowd::apply(catalog, batch, min_posterior, actor).await?;
    if json {
        return print_json(&report);
    }
    println!(
        "batch {batch}: {} labels changed, {} confirmed, {} disputed, {} left alone \
         (changed since the export), {} gold, {} unanswered",
        report.changed,
        report.confirmed,
        report.disputed.len(),
        report.changed_since_export,
        report.gold,
        report.unanswered
    );
    for task in &report.disputed {
        println!(
            "  disputed {} ({} votes)",
            task_line(task),
            task.votes.len()
        );
    }
    Ok(())
}

async fn batches(catalog: &Catalog, json: bool) -> CliResult {
    let batches = catalog.crowd_batches().await?;
    if json {
        return print_json(&json!({ "batches": batches }));
    }
    for batch in &batches {
        println!(
            "batch {} ({} of run {}): {} tasks, {} votes of {} asked",
            batch.id,
            batch.source,
            batch.run_id.map_or("-".into(), |r| r.to_string()),
            batch.tasks,
            batch.votes,
            batch.tasks * batch.votes_per_task
        );
    }
    Ok(())
}

fn print_aggregation(aggregation: &crowd::Aggregation) {
    println!(
        "batch {}: {} answered tasks, {} unanswered",
        aggregation.batch,
        aggregation.tasks.len(),
        aggregation.unanswered
    );
    for task in &aggregation.tasks {
        println!(
            "  {} (majority {}, {:.0}% agree; now {})",
            task_line(task),
            task.majority,
            task.agreement * 100.0,
            task.current_label.as_deref().unwrap_or("-")
        );
    }
    println!("workers:");
    for worker in &aggregation.workers {
        let gold = worker
            .gold_accuracy
            .map_or("-".to_string(), |g| format!("{g:.2}"));
        println!(
            "  {} ({}): {} votes, accuracy {:.2}, gold {gold}, agreement {:.2}",
            worker.worker, worker.facet, worker.votes, worker.accuracy, worker.agreement
        );
    }
}

/// `IMAGE-ID-PREFIX FACET: LABEL at POSTERIOR`.
fn task_line(task: &crowd::TaskAggregate) -> String {
    format!(
        "{} {}: {} at {:.2}",
        &task.image_id[..12.min(task.image_id.len())],
        task.facet,
        task.label,
        task.posterior
    )
}
