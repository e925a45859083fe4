//! `atelier duplicates`: near-duplicate groups, and reviewers' verdicts on pairs.

use atelier_app::duplicates::{self, DuplicateQuery};
use atelier_app::similar::Searcher;
use atelier_catalog::{Catalog, DuplicateVerdict};

use crate::args::{DuplicatesAction, DuplicatesArgs, VerdictArg};
use crate::commands::similar::index_files;
use crate::error::CliResult;
use crate::output::print_json;

pub async fn run(catalog: &Catalog, db_url: &str, args: &DuplicatesArgs, json: bool) -> CliResult {
    match &args.action {
        DuplicatesAction::List {
            run,
            threshold,
            undecided,
            page,
            per_page,
            ann,
        } => {
            let defaults = DuplicateQuery::default();
            let query = DuplicateQuery {
                run: *run,
                threshold: threshold.unwrap_or(defaults.threshold),
                undecided_only: *undecided,
                page: page.unwrap_or(defaults.page),
                per_page: per_page.unwrap_or(defaults.per_page),
            };
            let searcher = Searcher::new(Some(index_files(db_url, ann)));
            let report = duplicates::near_duplicates(catalog, &searcher, &query).await?;
            if json {
                return print_json(&report);
            }
            println!(
                "similarity run {}: {} pairs at {} or more in {} groups ({} undecided); page {}",
                report.run,
                report.pairs,
                report.threshold,
                report.groups,
                report.undecided,
                report.page
            );
            for group in &report.shown {
                println!("group of {} (best {:.3}):", group.images.len(), group.best);
                for pair in &group.pairs {
                    let verdict = match pair.verdict {
                        Some(v) => format!(
                            "{} ({})",
                            v.as_str(),
                            pair.decided_by.as_deref().unwrap_or("?")
                        ),
                        None => "undecided".to_string(),
                    };
                    println!("  {:.3}  {}  {}  {verdict}", pair.score, pair.a, pair.b);
                }
            }
            if report.more {
                println!("more on page {}", report.page + 1);
            }
            Ok(())
        }
        DuplicatesAction::Mark {
            a,
            b,
            verdict,
            actor,
        } => {
            let verdict = match verdict {
                VerdictArg::Same => DuplicateVerdict::Same,
                VerdictArg::Different => DuplicateVerdict::Different,
            };
            let decision = duplicates::decide(catalog, a, b, verdict, actor).await?;
            if json {
                return print_json(&decision);
            }
            println!(
                "{} and {}: {}",
                decision.image_a,
                decision.image_b,
                decision.verdict.as_str()
            );
            Ok(())
        }
    }
}
