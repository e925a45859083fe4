//! `atelier images`: one page of the catalogue, filtered.

use atelier_app::browse::{self, BrowseQuery};
use atelier_catalog::{Catalog, ImageFilter, Split, Status};

use crate::args::{ImagesArgs, SplitArg, StatusArg};
use crate::commands::similar::label_conditions;
use crate::error::CliResult;
use crate::output::print_json;

pub async fn run(catalog: &Catalog, args: &ImagesArgs, json: bool) -> CliResult {
    let query = query(args)?;
    let answer = browse::browse(catalog, &query).await?;
    if json {
        return print_json(&answer);
    }
    println!(
        "{} images (page {} of {}, {} per page):",
        answer.total, answer.page, answer.pages, answer.per_page
    );
    for image in &answer.images {
        let labels: Vec<String> = image
            .labels
            .iter()
            .map(|(f, l)| format!("{f}={l}"))
            .collect();
        let mut notes = vec![image.split.to_string(), image.status.to_string()];
        if image.reviewed {
            notes.push("reviewed".into());
        }
        if let Some(reason) = &image.quarantine_reason {
            notes.push(reason.clone());
        }
        println!(
            "{}  {}  [{}]  {}",
            &image.id[..image.id.len().min(12)],
            image.uri,
            notes.join(", "),
            labels.join(" ")
        );
    }
    Ok(())
}

fn query(args: &ImagesArgs) -> CliResult<BrowseQuery> {
    let labels = label_conditions(&args.where_, &args.where_not)?;
    let defaults = BrowseQuery::default();
    Ok(BrowseQuery {
        filter: ImageFilter {
            labels,
            split: args.split.map(|split| match split {
                SplitArg::Train => Split::Train,
                SplitArg::Test => Split::Test,
            }),
            status: args.status.map(|status| match status {
                StatusArg::Active => Status::Active,
                StatusArg::Quarantined => Status::Quarantined,
                StatusArg::Removed => Status::Removed,
            }),
            design: args.design.clone(),
            reviewed: match (args.reviewed, args.not_reviewed) {
                (true, _) => Some(true),
                (false, true) => Some(false),
                (false, false) => None,
            },
        },
        page: args.page.unwrap_or(defaults.page),
        per_page: args.per_page.unwrap_or(defaults.per_page),
    })
}
