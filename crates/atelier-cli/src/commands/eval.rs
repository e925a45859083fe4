//! `atelier eval RUN` prints a run's per-class tables for train and test (from the catalogue),
//! `--predictions` its per-image predictions; `atelier runs` lists the runs.

use atelier_app::RunSummary;
use atelier_app::similarity::{SIMILARITY_RUN, SimilaritySummary};
use atelier_catalog::Catalog;
use atelier_catalog::RunRecord;
use atelier_train::metrics::{SplitMetrics, format_table};
use serde_json::{Map, Value, json};

use crate::args::EvalArgs;
use crate::error::{CliError, CliResult};
use crate::output::print_json;

pub async fn run(catalog: &Catalog, args: &EvalArgs, json: bool) -> CliResult {
    let run = catalog.run(args.run).await?.ok_or_else(|| {
        CliError::bad_input(format!(
            "run {} does not exist (see `atelier runs`)",
            args.run
        ))
    })?;
    if run.kind == SIMILARITY_RUN {
        return similarity(&run, json);
    }
    let facets = catalog.run_facets(args.run).await?;
    if facets.is_empty() {
        return Err(CliError::bad_input(format!(
            "run {} has no results yet (status: {}); resume it with `atelier train facets \
             --resume {}`",
            args.run, run.status, args.run
        )));
    }
    if args.predictions {
        for prediction in catalog.predictions(args.run, None).await? {
            let line = json!({
                "image": prediction.image_id,
                "path": prediction.uri,
                "split": prediction.split.as_str(),
                "facet": prediction.facet,
                "label": prediction.label,
                "predicted": prediction.predicted,
                "confidence": prediction.confidence,
                "scores": prediction.scores,
                "out_of_fold": prediction.out_of_fold,
            });
            if json {
                print_json(&line)?;
            } else {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{:.3}",
                    prediction.uri,
                    prediction.split.as_str(),
                    prediction.facet,
                    prediction.label.as_deref().unwrap_or("-"),
                    prediction.predicted,
                    prediction.confidence
                );
            }
        }
        return Ok(());
    }
    let mut by_facet = Map::new();
    for facet in &facets {
        let table = |metrics: &Option<Value>| -> CliResult<SplitMetrics> {
            serde_json::from_value(metrics.clone().unwrap_or(Value::Null)).map_err(|e| {
                CliError::internal(format!(
                    "run {}: stored metrics of facet {} are unreadable: {e}",
                    args.run, facet.facet
                ))
            })
        };
        let (train, test) = (table(&facet.train_metrics)?, table(&facet.test_metrics)?);
        if json {
            by_facet.insert(
                facet.facet.clone(),
                json!({
                    "labels": facet.labels,
                    "class_weights": facet.class_weights,
                    "train": train,
                    "test": test,
                }),
            );
        } else {
            println!(
                "{}",
                format_table(&format!("{} (train)", facet.facet), &train)
            );
            println!(
                "{}",
                format_table(&format!("{} (test)", facet.facet), &test)
            );
        }
    }
    if json {
        print_json(&json!({"run": args.run, "status": run.status, "facets": by_facet}))?;
    }
    Ok(())
}

pub async fn list(catalog: &Catalog, json: bool) -> CliResult {
    let runs = catalog.runs().await?;
    if json {
        return print_json(&runs);
    }
    if runs.is_empty() {
        println!("no runs yet: train one with `atelier train facets`");
    }
    for run in runs {
        let backbone = run.config["train"]["backbone"].as_str().unwrap_or("?");
        let f1: Vec<String> = RunSummary::of(&run)
            .map(|summary| {
                summary
                    .facets
                    .iter()
                    .map(|(name, scores)| format!("{name} {:.3}", scores.test_macro_f1))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "run {:>4}  {:<10} {:<20} {}",
            run.id,
            run.status,
            backbone,
            if f1.is_empty() {
                String::new()
            } else {
                format!("test macro-F1: {}", f1.join(", "))
            }
        );
    }
    Ok(())
}

/// A similarity run's held-out numbers, off-the-shelf beside trained.
fn similarity(run: &RunRecord, json: bool) -> CliResult {
    let summary: SimilaritySummary = run
        .summary
        .clone()
        .and_then(|summary| serde_json::from_value(summary).ok())
        .ok_or_else(|| {
            CliError::bad_input(format!(
                "run {} has no results yet (status: {})",
                run.id, run.status
            ))
        })?;
    if json {
        return print_json(&json!({"run": run.id, "kind": run.kind, "summary": summary}));
    }
    println!("run {}: similarity, {} photos", run.id, summary.photos);
    print!("{summary}");
    Ok(())
}
