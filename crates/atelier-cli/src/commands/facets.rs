//! `atelier facets` and `atelier summary`: what the catalogue holds.

use atelier_catalog::Catalog;

use crate::args::{FacetsAction, FacetsArgs};
use crate::error::{CliError, CliResult};
use crate::output::print_json;

pub async fn run(catalog: &Catalog, args: &FacetsArgs, json: bool) -> CliResult {
    if let Some(FacetsAction::Order { facet, labels }) = &args.action {
        let labels: Vec<String> = labels
            .split(',')
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        if labels.is_empty() {
            return Err(CliError::bad_input(
                "no labels given: pass the facet's labels comma-separated, e.g. `atelier facets order length mini,knee,midi,maxi`",
            ));
        }
        catalog.set_label_order(facet, &labels).await?;
        if !json {
            println!("{facet}: {}", labels.join(", "));
            return Ok(());
        }
    }
    let facets = catalog.facets().await?;
    if json {
        return print_json(&facets);
    }
    if facets.is_empty() {
        println!("no facets yet: import a manifest first (`atelier import manifest.csv`)");
    }
    for facet in &facets {
        println!("{}", facet.name);
        for label in &facet.labels {
            println!(
                "  {:<16} train {:>6}  test {:>6}",
                label.label, label.counts.train, label.counts.test
            );
        }
    }
    Ok(())
}

pub async fn summary(catalog: &Catalog, json: bool) -> CliResult {
    let summary = catalog.summary().await?;
    if json {
        return print_json(&summary);
    }
    print_summary(&summary);
    Ok(())
}

pub fn print_summary(s: &atelier_catalog::CatalogSummary) {
    let backend = match s.backend {
        atelier_catalog::Backend::Sqlite => "SQLite",
        atelier_catalog::Backend::Postgres => "PostgreSQL",
    };
    println!("catalogue ({backend}): {} images", s.images);
    println!(
        "  active       train {:>7}  test {:>7}  ({} not yet checked)",
        s.active.train, s.active.test, s.unchecked
    );
    println!(
        "  quarantined  train {:>7}  test {:>7}",
        s.quarantined.train, s.quarantined.test
    );
    println!(
        "  removed      train {:>7}  test {:>7}",
        s.removed.train, s.removed.test
    );
    println!(
        "  {} facets, {} labels, {} label assignments, {} designs, {} boxes, {} label events",
        s.facets, s.labels, s.assignments, s.designs, s.boxes, s.label_events
    );
}
