//! Simulates a crowd's votes on one facet ([`atelier_train::crowd::simulation`]), writes them
//! as CSV and prints how majority vote and Dawid–Skene do against the truth.
//!
//! ```sh
//! cargo run -p atelier-train --release --example crowd_simulation -- --votes 3 --out DIR
//! ```
//!
//! Options: `--votes N` (votes per task, default 3), `--tasks N` (default 2000), `--labels K`
//! (default 6), `--seed S` (default 7), `--threshold P` (the posterior a change needs to be
//! applied, default 0.9), `--laplace A` (add A to Dawid–Skene's counts instead of crowd-kit's floor of 1e-10), `--out DIR` (where `votes.csv` and `truth.csv` go; none written
//! without it). `scripts/bench_crowdkit.py DIR` runs crowd-kit on the same files.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use atelier_train::crowd::simulation::{SimulationConfig, score, simulate, write_csv};
use atelier_train::crowd::{DawidSkeneConfig, Smoothing, dawid_skene, majority_vote};

struct Options {
    simulation: SimulationConfig,
    threshold: f64,
    out: Option<PathBuf>,
    dawid_skene: DawidSkeneConfig,
}

fn parse() -> Result<Options, String> {
    let mut options = Options {
        simulation: SimulationConfig::default(),
        threshold: 0.9,
        out: None,
        dawid_skene: DawidSkeneConfig::default(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--votes" => options.simulation.votes_per_task = value.parse().map_err(|e| bad(&e))?,
            "--tasks" => options.simulation.tasks = value.parse().map_err(|e| bad(&e))?,
            "--labels" => options.simulation.labels = value.parse().map_err(|e| bad(&e))?,
            "--seed" => options.simulation.seed = value.parse().map_err(|e| bad(&e))?,
            "--threshold" => options.threshold = value.parse().map_err(|e| bad(&e))?,
            "--laplace" => {
                let alpha = value.parse().map_err(|e| bad(&e))?;
                options.dawid_skene.smoothing = Smoothing::Add(alpha);
            }
            "--out" => options.out = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(options)
}

fn run() -> Result<(), String> {
    let options = parse()?;
    let simulation = simulate(&options.simulation).map_err(|e| e.to_string())?;
    if let Some(out) = &options.out {
        write_csv(&simulation, out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    let majority = majority_vote(&simulation.votes);
    let started = Instant::now();
    let ds = dawid_skene(&simulation.votes, &options.dawid_skene).map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    let scores = score(&simulation.truth, &majority, &ds, options.threshold);
    let config = &options.simulation;
    println!(
        "{} tasks, {} labels, {} votes per task, seed {}",
        config.tasks, config.labels, config.votes_per_task, config.seed
    );
    println!("majority vote accuracy   {:.4}", scores.majority_accuracy);
    println!(
        "Dawid-Skene accuracy     {:.4}  ({} iterations, converged: {}, {:.1} ms)",
        scores.dawid_skene_accuracy,
        ds.iterations,
        ds.converged,
        elapsed.as_secs_f64() * 1000.0
    );
    println!(
        "posterior >= {}: {} tasks, precision {:.4}",
        options.threshold, scores.applied, scores.applied_precision
    );
    let spammers: Vec<String> = ds.workers[27..]
        .iter()
        .map(|w| format!("{:.3}", w.accuracy))
        .collect();
    println!(
        "estimated accuracy of the spammers and the adversary: {}",
        spammers.join(", ")
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("crowd_simulation: {message}");
            ExitCode::from(2)
        }
    }
}
