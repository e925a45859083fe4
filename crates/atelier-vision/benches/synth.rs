//! Throughput of `atelier synth`: renders 400 pictures at 256 px (the default size) into a
//! temporary directory and reports pictures per second. Run with
//! `cargo bench -p atelier-vision --bench synth`.

use atelier_vision::synth::{SynthOptions, synthesize};
use std::time::Instant;

fn main() {
    let count: usize = std::env::var("SYNTH_BENCH_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let size: u32 = std::env::var("SYNTH_BENCH_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let dir = tempfile::tempdir().expect("temporary directory");
    let opts = SynthOptions {
        out_dir: dir.path().to_path_buf(),
        count,
        seed: 7,
        size,
        label_noise: 0.0,
    };
    // Warm-up: thread pool start, page cache, lazy statics.
    synthesize(
        &SynthOptions {
            count: 16,
            ..opts.clone()
        },
        &|_| {},
    )
    .expect("warm-up run");
    let start = Instant::now();
    let summary = synthesize(&opts, &|_| {}).expect("benchmark run");
    let secs = start.elapsed().as_secs_f64();
    let bytes: u64 = std::fs::read_dir(dir.path().join("images"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    println!(
        "synth: {} images at {size} px on {} threads in {secs:.2} s: {:.0} images/s, {:.2} ms/image, {:.1} KiB/image",
        summary.images,
        rayon::current_num_threads(),
        summary.images as f64 / secs,
        secs * 1000.0 / summary.images as f64,
        bytes as f64 / 1024.0 / summary.images as f64,
    );
}
