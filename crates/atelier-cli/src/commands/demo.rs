//! `atelier demo`: the whole loop on synthetic data, from nothing to a checked catalogue.
//!
//! Re-running it is cheap and safe: the renderer is deterministic, so the second import finds
//! every image unchanged.

use std::time::Instant;

use atelier_vision::decode::DecodeLimits;
use atelier_vision::synth::{FACETS, SynthOptions};
use serde_json::json;

use crate::args::{DemoArgs, GlobalArgs, ImportArgs};
use crate::commands::{check, import, open_catalog, synth};

use crate::error::CliResult;
use crate::output::print_json;

pub async fn run(args: &DemoArgs, global: &GlobalArgs) -> CliResult {
    let json = global.json;
    let say = |line: String| {
        if !json {
            println!("{line}");
        }
    };
    let started = Instant::now();
    std::fs::create_dir_all(&args.dir)?;
    let db_url = match &global.db {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", args.dir.join("atelier.db").display()),
    };

    let mut step_seconds: Vec<(&str, f64)> = Vec::new();
    let mut step_started = Instant::now();
    let synth_dir = args.dir.join("synth");
    say(format!(
        "1/3 rendering {} synthetic dress photos into {}",
        args.count,
        synth_dir.display()
    ));
    let rendered = synth::render(
        SynthOptions {
            out_dir: synth_dir,
            count: args.count,
            seed: args.seed,
            size: args.size,
            label_noise: 0.0,
        },
        json,
    )
    .await?;
    step_seconds.push(("synth", step_started.elapsed().as_secs_f64()));
    step_started = Instant::now();

    say(format!(
        "2/3 importing {} into {db_url}",
        rendered.manifest.display()
    ));
    let catalog = open_catalog(&db_url).await?;
    let import_args = ImportArgs {
        path: rendered.manifest.clone(),
        test_fraction: 0.1,
        allow_new_labels: false,
    };
    let imported = import::import(&catalog, &import_args, json).await?;
    // Reports read better in the renderer's natural order (mini → maxi) than alphabetically.
    // A small demo may not show every value, and an order must list exactly the stored labels.
    for stored in catalog.facets().await? {
        let Some((_, canonical)) = FACETS.iter().find(|(name, _)| *name == stored.name) else {
            continue;
        };
        let present = stored.label_names();
        let labels: Vec<String> = canonical
            .iter()
            .filter(|label| present.contains(label))
            .map(|label| label.to_string())
            .collect();
        catalog.set_label_order(&stored.name, &labels).await?;
    }
    if !json {
        import::print_report(&imported);
    }
    step_seconds.push(("import", step_started.elapsed().as_secs_f64()));
    step_started = Instant::now();

    say("3/3 decoding every image (quarantining unusable files)".to_string());
    let checked = check::check(&catalog, DecodeLimits::default(), json).await?;
    step_seconds.push(("check", step_started.elapsed().as_secs_f64()));
    let summary = catalog.summary().await?;
    let seconds = started.elapsed().as_secs_f64();
    if json {
        return print_json(&json!({
            "db": db_url,
            "synth": {"images": rendered.images, "designs": rendered.designs, "manifest": rendered.manifest},
            "import": imported,
            "check": checked,
            "summary": summary,
            "seconds": seconds,
            "step_seconds": step_seconds.iter().map(|(s, t)| (s.to_string(), serde_json::Value::from(*t))).collect::<serde_json::Map<String, serde_json::Value>>(),
        }));
    }
    println!(
        "checked {} images: {} usable, {} quarantined",
        checked.checked, checked.ok, checked.quarantined
    );
    println!();
    crate::commands::facets::print_summary(&summary);
    println!();
    let steps: Vec<String> = step_seconds
        .iter()
        .map(|(step, t)| format!("{step} {t:.1} s"))
        .collect();
    println!(
        "done in {seconds:.1} s ({}). Explore with:",
        steps.join(", ")
    );
    // The binary is usually not on PATH after `cargo run`, so name it as it was started.
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "atelier".to_string());
    println!("  {exe} --db {db_url} facets");
    println!("  {exe} --db {db_url} check --json");
    Ok(())
}
