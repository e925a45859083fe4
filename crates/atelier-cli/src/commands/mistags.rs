//! `atelier mistags RUN`: the run's likely mistagged images, likeliest first (confident
//! learning on out-of-sample predictions, see `atelier_train::mistags`), with the number of
//! wrong labels estimated per facet. Test images always take part; train images only when the
//! run was trained with `--folds`.

use atelier_app::mistags::{MistagQueue, mistag_queue};
use atelier_catalog::Catalog;

use crate::args::MistagsArgs;
use crate::error::{CliError, CliResult};
use crate::output::print_json;

/// Characters of an image id shown in the table (enough to be unique in practice).
const ID_PREFIX: usize = 12;

pub async fn run(catalog: &Catalog, args: &MistagsArgs, json: bool) -> CliResult {
    let record = catalog.run(args.run).await?.ok_or_else(|| {
        CliError::bad_input(format!(
            "run {} does not exist (see `atelier runs`)",
            args.run
        ))
    })?;
    if catalog.run_facets(args.run).await?.is_empty() {
        return Err(CliError::bad_input(format!(
            "run {} has no predictions yet (status: {}); finish it with `atelier train facets \
             --resume {}`",
            args.run, record.status, args.run
        )));
    }
    let mut queue = mistag_queue(catalog, args.run, args.facet.as_deref()).await?;
    let total = queue.items.len();
    // precision@k was computed on the whole queue; only the listing is cut.
    queue.items.truncate(args.limit);
    if json {
        return print_json(&queue);
    }
    print_table(&queue, total);
    Ok(())
}

fn print_table(queue: &MistagQueue, total: usize) {
    println!(
        "run {}: {total} suspected mistags{}, likeliest first (lowest calibrated probability of \
         the given label){}",
        queue.run,
        if queue.train_images_included {
            " (test images and out-of-fold train images)"
        } else {
            " (test images only: train with --folds K to include train images)"
        },
        if queue.items.len() < total {
            format!("; showing {}", queue.items.len())
        } else {
            String::new()
        }
    );
    if queue.items.is_empty() {
        return;
    }
    for estimate in &queue.estimates {
        println!(
            "{}: about {} wrong labels among {} scored images, {} in the queue",
            estimate.facet, estimate.estimated_wrong, estimate.rows, estimate.suspects
        );
    }
    println!(
        "{:<ID_PREFIX$}  {:<12} {:<5}  {:<32} {:>7} {:>7}",
        "image", "facet", "split", "given -> suggested", "p(given)", "margin"
    );
    for item in &queue.items {
        let id: String = item.image_id.chars().take(ID_PREFIX).collect();
        let change = format!("{} -> {}", item.given, item.suggested);
        println!(
            "{id:<ID_PREFIX$}  {:<12} {:<5}  {change:<32} {:>7.3} {:>7.3}",
            item.facet,
            item.split.as_str(),
            item.given_probability,
            item.margin
        );
    }
    for (k, precision) in &queue.precision_at {
        println!("precision@{k}: {precision:.3} (share of the first {k} whose true label differs)");
    }
    if let Some(flips) = queue.known_flips {
        println!("known wrong labels among the out-of-sample images: {flips}");
    }
    if let Some(recall) = queue.recall {
        println!("recall: {recall:.3} (share of the known wrong labels in the queue)");
    }
}
