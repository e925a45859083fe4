//! `atelier boxes`: an image's dress box, a reviewer's edit, and the least sure boxes.

use atelier_app::boxes;
use atelier_catalog::{BoxCoords, BoxEdit, Catalog, DressBox};

use crate::args::{BoxesAction, BoxesArgs};
use crate::error::CliResult;
use crate::output::print_json;

pub async fn run(catalog: &Catalog, args: &BoxesArgs, json: bool) -> CliResult {
    match &args.action {
        BoxesAction::Show { image } => show(catalog, image, json).await,
        BoxesAction::Set {
            image,
            x0,
            y0,
            x1,
            y1,
            version,
            actor,
        } => {
            let edit = BoxEdit {
                image: image.clone(),
                coords: [*x0, *y0, *x1, *y1],
                expected_version: *version,
                actor: actor.clone(),
            };
            let (event, now) = boxes::set_box(catalog, &edit).await?;
            if json {
                return print_json(&serde_json::json!({ "event": event, "box": now }));
            }
            println!(
                "image {image}: dress box {} (version {}, event {})",
                coords(&now.coords),
                now.version,
                event.id
            );
            Ok(())
        }
        BoxesAction::Unsure {
            run,
            page,
            per_page,
        } => unsure(catalog, *run, *page, *per_page, json).await,
    }
}

async fn show(catalog: &Catalog, image: &str, json: bool) -> CliResult {
    let Some(record) = catalog.image(image).await? else {
        return Err(atelier_catalog::CatalogError::UnknownImage(image.to_string()).into());
    };
    let run = boxes::newest_similarity_run(catalog).await?;
    let view = boxes::image_boxes(catalog, &record, run).await?;
    if json {
        return print_json(&view);
    }
    println!("image {image}");
    println!("  dress box: {}", describe(view.current.as_ref()));
    if let (Some(run), Some(located)) = (view.run, &view.located) {
        println!(
            "  located by run {run}: {}{}",
            coords(&located.coords),
            sureness(located.foreground, located.agreement)
        );
    }
    for event in &view.events {
        let old = event.old.as_ref().map_or("none".to_string(), coords);
        println!(
            "  event {}: {} -> {} by {}",
            event.id,
            old,
            coords(&event.new),
            event.actor
        );
    }
    Ok(())
}

async fn unsure(
    catalog: &Catalog,
    run: Option<i64>,
    page: usize,
    per_page: usize,
    json: bool,
) -> CliResult {
    let queue = boxes::least_sure(catalog, run, page, per_page).await?;
    if json {
        return print_json(&queue);
    }
    println!(
        "boxes run {}'s locator was least sure of (page {}):",
        queue.run, queue.page
    );
    for entry in &queue.entries {
        let located = &entry.located;
        println!(
            "{}  {}  located {}{}  stored {}",
            &located.image[..located.image.len().min(12)],
            entry.uri,
            coords(&located.coords),
            sureness(located.foreground, located.agreement),
            describe(entry.current.as_ref())
        );
    }
    if queue.more {
        println!("more on page {}", queue.page + 1);
    }
    Ok(())
}

fn coords(b: &BoxCoords) -> String {
    format!("({:.0}, {:.0}, {:.0}, {:.0})", b[0], b[1], b[2], b[3])
}

fn describe(current: Option<&DressBox>) -> String {
    match current {
        None => "none".to_string(),
        Some(b) => format!(
            "{} ({}, version {})",
            coords(&b.coords),
            b.source,
            b.version
        ),
    }
}

fn sureness(foreground: Option<f64>, agreement: Option<f64>) -> String {
    match (foreground, agreement) {
        (Some(f), Some(a)) => format!(" [foreground {f:.2}, regressor IoU {a:.2}]"),
        _ => String::new(),
    }
}
