//! `atelier synth`: render a synthetic catalogue with ground truth.

use atelier_vision::synth::{self, SynthOptions, SynthSummary};

use crate::args::SynthArgs;
use crate::error::CliResult;
use crate::output::print_json;
use crate::progress;

pub async fn run(args: &SynthArgs, json: bool) -> CliResult {
    let options = SynthOptions {
        out_dir: args.out.clone(),
        count: args.count,
        seed: args.seed,
        size: args.size,
        label_noise: args.label_noise,
    };
    let summary = render(options, json).await?;
    if let Some(preview) = &args.preview {
        let (path, seed, size) = (preview.clone(), args.seed, args.size);
        tokio::task::spawn_blocking(move || synth::write_preview_sheet(&path, seed, size))
            .await??;
    }
    if json {
        print_json(&serde_json::json!({
            "images": summary.images,
            "designs": summary.designs,
            "flipped_labels": summary.flipped_labels,
            "manifest": summary.manifest,
            "truth": summary.truth,
            "preview": args.preview,
        }))
    } else {
        println!(
            "rendered {} images of {} designs into {} ({} labels flipped)",
            summary.images,
            summary.designs,
            args.out.display(),
            summary.flipped_labels
        );
        println!("manifest: {}", summary.manifest.display());
        if let Some(preview) = &args.preview {
            println!("preview sheet: {}", preview.display());
        }
        Ok(())
    }
}

/// Renders on the blocking pool (rayon inside) with a progress bar.
pub async fn render(options: SynthOptions, json: bool) -> CliResult<SynthSummary> {
    let bar = progress::bar(options.count as u64, "rendering", json);
    let bar_for_workers = bar.clone();
    let summary = tokio::task::spawn_blocking(move || {
        synth::synthesize(&options, &|done| bar_for_workers.set_position(done as u64))
    })
    .await??;
    bar.finish_and_clear();
    Ok(summary)
}
