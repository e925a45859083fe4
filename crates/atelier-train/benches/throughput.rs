//! Images per second of inference and of one training step for the full-size backbones on the
//! pure-Rust CPU backend, side by side with PyTorch on the same machine and thread count.
//!
//! Each model is the backbone (random weights) plus a 1000-class linear head on the pooled
//! vector, so it matches torchvision's `resnet18`/`resnet50` and `efficientnet_lite_pytorch`'s
//! `efficientnet-lite0` with their classifiers. Inference runs on `Device::flex()`; a training
//! step runs on `Device::flex().autodiff()`: forward, cross-entropy against random targets,
//! backward, AdamW step (the trainer's `FusedAdamW`), as `atelier_train::trainer` takes a step.
//!
//! PyTorch's numbers come from `scripts/bench_pytorch.py`, run as a subprocess right after
//! atelier's runs of each model (never at the same time, but close enough to see about the same
//! load from other work) with the same models, batch, size, iterations and
//! `torch.set_num_threads(rayon threads)`. Without `torch` and `torchvision` the table has
//! atelier's numbers only.
//!
//! Run: `cargo bench -p atelier-train --bench throughput`. Settings (environment):
//! - `ATELIER_BENCH_MODELS`: comma-separated, from `resnet18,resnet50,efficientnet-lite0`
//!   (default: all three; any name `BackboneChoice` knows works on atelier's side);
//! - `ATELIER_BENCH_MODES`: `inference,training` (default both);
//! - `ATELIER_BENCH_ITERS`: timed batches per model and mode (default 5 for inference, 3 for
//!   training); `ATELIER_BENCH_WARMUP`: untimed batches first (default 1);
//! - `ATELIER_BENCH_BATCH` (default 8), `ATELIER_BENCH_SIZE` (default 224);
//! - `ATELIER_BENCH_PYTHON`: the interpreter (default `python3`); `ATELIER_BENCH_PYTORCH=0`
//!   skips PyTorch;
//! - `RAYON_NUM_THREADS`: the thread count for both sides;
//! - `OMP_WAIT_POLICY=passive` (passed on to PyTorch): use it on a machine busy with other work,
//!   where PyTorch's spinning OpenMP threads otherwise lose most of their speed.

use std::collections::HashMap;
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use atelier_models::{AnyBackbone, Backbone};
use atelier_train::BackboneChoice;
use atelier_train::fused_adamw::FusedAdamW;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Distribution;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

const CLASSES: usize = 1000;
const DEFAULT_MODELS: &str = "resnet18,resnet50,efficientnet-lite0";
const PYTORCH_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../scripts/bench_pytorch.py"
);

/// What gets timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    Inference,
    Training,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Inference => "inference",
            Self::Training => "training",
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "inference" => Ok(Self::Inference),
            "training" => Ok(Self::Training),
            other => Err(format!(
                "ATELIER_BENCH_MODES: unknown mode `{other}`; use inference, training or both \
                 (comma-separated)"
            )),
        }
    }
}

struct Settings {
    models: Vec<BackboneChoice>,
    modes: Vec<Mode>,
    /// Timed batches; `None` means the per-mode default.
    iterations: Option<usize>,
    warmup: usize,
    batch: usize,
    size: usize,
    threads: usize,
}

impl Settings {
    fn from_env() -> Result<Self, String> {
        let list = |key: &str, default: &str| -> Vec<String> {
            std::env::var(key)
                .unwrap_or_else(|_| default.to_string())
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let models = list("ATELIER_BENCH_MODELS", DEFAULT_MODELS)
            .iter()
            .map(|name| {
                BackboneChoice::from_str(name).map_err(|e| format!("ATELIER_BENCH_MODELS: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let modes = list("ATELIER_BENCH_MODES", "inference,training")
            .iter()
            .map(|name| Mode::from_str(name))
            .collect::<Result<Vec<_>, _>>()?;
        if models.is_empty() || modes.is_empty() {
            return Err(
                "ATELIER_BENCH_MODELS and ATELIER_BENCH_MODES must name at least one \
                        model and one mode"
                    .into(),
            );
        }
        Ok(Self {
            models,
            modes,
            iterations: number("ATELIER_BENCH_ITERS", 1)?,
            warmup: number("ATELIER_BENCH_WARMUP", 0)?.unwrap_or(1),
            batch: number("ATELIER_BENCH_BATCH", 1)?.unwrap_or(8),
            size: number("ATELIER_BENCH_SIZE", 32)?.unwrap_or(224),
            // burn's CPU kernels split their work over rayon's global pool.
            threads: rayon::current_num_threads(),
        })
    }

    fn iterations(&self, mode: Mode) -> usize {
        // A training step costs about three forward passes, so fewer of them keep the whole
        // run to a few minutes on two cores.
        self.iterations.unwrap_or(match mode {
            Mode::Inference => 5,
            Mode::Training => 3,
        })
    }
}

/// An unsigned environment setting of at least `min`, or `None` when unset.
fn number(key: &str, min: usize) -> Result<Option<usize>, String> {
    match std::env::var(key) {
        Err(_) => Ok(None),
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n >= min => Ok(Some(n)),
            _ => Err(format!("{key}={text:?}: expected a whole number >= {min}")),
        },
    }
}

/// The benchmarked network: backbone, global average pool, linear classifier.
#[derive(Module, Debug)]
struct Classifier {
    backbone: AnyBackbone,
    head: Linear,
}

impl Classifier {
    fn new(choice: BackboneChoice, device: &Device) -> Self {
        let backbone = choice
            .build(None, device)
            .unwrap_or_else(|e| panic!("building {choice}: {e}"));
        let head = LinearConfig::new(backbone.feature_dim(), CLASSES).init(device);
        Self { backbone, head }
    }

    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head
            .forward(self.backbone.forward_features(images).pooled)
    }
}

/// Images per second over `iterations` timed calls of `step` after `warmup` untimed ones; each
/// call handles one batch, must wait for its result, and is told whether it is timed.
fn images_per_second(
    warmup: usize,
    iterations: usize,
    batch: usize,
    mut step: impl FnMut(bool),
) -> f64 {
    for _ in 0..warmup {
        step(false);
    }
    let start = Instant::now();
    for _ in 0..iterations {
        step(true);
    }
    let elapsed: Duration = start.elapsed();
    (iterations * batch) as f64 / elapsed.as_secs_f64()
}

fn bench_inference(choice: BackboneChoice, settings: &Settings) -> f64 {
    let device = Device::flex();
    device.seed(7);
    let model = Classifier::new(choice, &device);
    let images = random_images(settings, &device);
    images_per_second(
        settings.warmup,
        settings.iterations(Mode::Inference),
        settings.batch,
        |_| {
            // Reading the logits back waits for all queued work.
            let _ = model.forward(images.clone()).into_data();
        },
    )
}

/// Mean milliseconds per timed training step spent in each phase, to show where a gap lies.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct Phases {
    /// Forward pass and loss, including reading the loss.
    forward: f64,
    backward: f64,
    /// Collecting the gradients and the AdamW update.
    optimizer: f64,
}

fn bench_training(choice: BackboneChoice, settings: &Settings) -> (f64, Phases) {
    let device = Device::flex().autodiff();
    device.seed(7);
    let mut model = Some(Classifier::new(choice, &device));
    let images = random_images(settings, &device);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let targets: Vec<i64> = (0..settings.batch)
        .map(|_| rng.random_range(0..CLASSES as i64))
        .collect();
    let targets = Tensor::<1, Int>::from_ints(targets.as_slice(), &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut optim = FusedAdamW::default().init();
    let mut total = Phases::default();
    let iterations = settings.iterations(Mode::Training);
    let rate = images_per_second(settings.warmup, iterations, settings.batch, |timed| {
        let current = model
            .take()
            .expect("the model is put back after every step");
        let start = Instant::now();
        let loss = loss_fn.forward(current.forward(images.clone()), targets.clone());
        // The trainer reads every step's loss for its progress line; PyTorch's side does the
        // same with `loss.item()`.
        let value: f32 = loss.clone().into_scalar();
        assert!(value.is_finite(), "{choice}: training loss is {value}");
        let forward = start.elapsed();
        let grads = loss.backward();
        let backward = start.elapsed();
        let gradients = GradientsParams::from_grads(grads, &current);
        model = Some(optim.step(1e-3, current, gradients));
        let end = start.elapsed();
        if timed {
            total.forward += forward.as_secs_f64();
            total.backward += (backward - forward).as_secs_f64();
            total.optimizer += (end - backward).as_secs_f64();
        }
    });
    let per_step = 1e3 / iterations as f64;
    let phases = Phases {
        forward: total.forward * per_step,
        backward: total.backward * per_step,
        optimizer: total.optimizer * per_step,
    };
    (rate, phases)
}

fn random_images(settings: &Settings, device: &Device) -> Tensor<4> {
    Tensor::<4>::random(
        [settings.batch, 3, settings.size, settings.size],
        Distribution::Normal(0.0, 1.0),
        device,
    )
}

/// What `scripts/bench_pytorch.py` prints.
#[derive(Debug, Deserialize)]
struct PytorchReport {
    torch: String,
    threads: usize,
    results: Vec<PytorchResult>,
}

#[derive(Debug, Deserialize)]
struct PytorchResult {
    model: String,
    mode: String,
    images_per_second: Option<f64>,
    #[serde(default)]
    error: Option<String>,
    /// Training only.
    #[serde(default)]
    phases: Option<Phases>,
}

/// The interpreter to run `scripts/bench_pytorch.py` with, or why PyTorch is left out.
fn pytorch_python() -> Result<String, String> {
    if std::env::var("ATELIER_BENCH_PYTORCH").is_ok_and(|v| v == "0") {
        return Err("skipped (ATELIER_BENCH_PYTORCH=0)".into());
    }
    let python = std::env::var("ATELIER_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import torch, torchvision"])
        .output()
        .map_err(|e| format!("`{python}` could not be started ({e}); set ATELIER_BENCH_PYTHON"))?;
    if !probe.status.success() {
        return Err(format!(
            "not installed (`{python} -c \"import torch, torchvision\"` failed); \
             `pip install torch torchvision efficientnet_lite_pytorch` to compare"
        ));
    }
    Ok(python)
}

/// PyTorch's numbers for one model, or why there are none.
fn run_pytorch(
    python: &str,
    choice: BackboneChoice,
    settings: &Settings,
) -> Result<PytorchReport, String> {
    let modes: Vec<&str> = settings.modes.iter().map(|m| m.name()).collect();
    let mut command = Command::new(python);
    command
        .arg(PYTORCH_SCRIPT)
        .args(["--models", choice.name()])
        .args(["--modes", &modes.join(",")])
        .args(["--threads", &settings.threads.to_string()])
        .args(["--batch", &settings.batch.to_string()])
        .args(["--size", &settings.size.to_string()])
        .args(["--warmup", &settings.warmup.to_string()]);
    for mode in &settings.modes {
        command.arg(format!("--{}-iters", mode.name()));
        command.arg(settings.iterations(*mode).to_string());
    }
    let output = command
        .output()
        .map_err(|e| format!("running {PYTORCH_SCRIPT}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{PYTORCH_SCRIPT} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "{PYTORCH_SCRIPT} printed something other than its JSON report ({e}): {}",
            String::from_utf8_lossy(&output.stdout).trim()
        )
    })
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and then one quick step
    // of the small test network shows the bench still runs without taking minutes.
    if !std::env::args().any(|arg| arg == "--bench") {
        smoke_test();
        return;
    }
    let settings = Settings::from_env().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {} ({cores} cores available)", cpu_model());
    println!(
        "threads {}, batch {}, {}x{} px, warm-up {}, load average at start {}",
        settings.threads,
        settings.batch,
        settings.size,
        settings.size,
        settings.warmup,
        load_average()
    );

    let python = pytorch_python();
    match &python {
        Err(why) => println!("PyTorch: {why}; atelier's numbers only"),
        // PyTorch's OpenMP threads spin while they wait; on a machine busy with other work that
        // can cost it several times its speed, which OMP_WAIT_POLICY=passive avoids.
        Ok(_) => println!(
            "OMP_WAIT_POLICY={}",
            std::env::var("OMP_WAIT_POLICY")
                .unwrap_or_else(|_| "(unset: PyTorch's default)".into())
        ),
    }
    // PyTorch measures each model right after atelier does, so both see about the same load
    // from whatever else the machine is running.
    let mut ours: Vec<Measured> = Vec::new();
    let mut theirs: HashMap<(String, String), Result<Measured, String>> = HashMap::new();
    let mut torch_version = None;
    for &choice in &settings.models {
        for &mode in &settings.modes {
            let (rate, phases) = match mode {
                Mode::Inference => (bench_inference(choice, &settings), None),
                Mode::Training => {
                    let (rate, phases) = bench_training(choice, &settings);
                    (rate, Some(phases))
                }
            };
            eprintln!("atelier {choice} {}: {rate:.2} img/s", mode.name());
            ours.push(Measured {
                model: choice.name().to_string(),
                mode: mode.name().to_string(),
                rate,
                phases,
            });
        }
        let Ok(python) = &python else { continue };
        match run_pytorch(python, choice, &settings) {
            Ok(report) => {
                torch_version = Some(format!(
                    "PyTorch {} with {} threads",
                    report.torch, report.threads
                ));
                for result in report.results {
                    let key = (result.model.clone(), result.mode.clone());
                    let value = match result.images_per_second {
                        Some(rate) => {
                            eprintln!("PyTorch {} {}: {rate:.2} img/s", key.0, key.1);
                            Ok(Measured {
                                model: result.model,
                                mode: result.mode,
                                rate,
                                phases: result.phases,
                            })
                        }
                        None => {
                            let why = result.error.unwrap_or_else(|| "gave no number".into());
                            eprintln!("PyTorch {} {}: {why}", key.0, key.1);
                            Err(why)
                        }
                    };
                    theirs.insert(key, value);
                }
            }
            Err(why) => {
                for mode in &settings.modes {
                    theirs.insert(
                        (choice.name().to_string(), mode.name().to_string()),
                        Err(why.clone()),
                    );
                }
            }
        }
    }
    println!("load average at the end {}", load_average());
    if let Some(version) = torch_version {
        println!("{version}");
    }
    print_tables(&ours, &theirs);
}

fn smoke_test() {
    let settings = Settings {
        models: vec![BackboneChoice::Tiny],
        modes: vec![Mode::Inference, Mode::Training],
        iterations: Some(1),
        warmup: 1,
        batch: 2,
        size: 32,
        threads: rayon::current_num_threads(),
    };
    let inference = bench_inference(BackboneChoice::Tiny, &settings);
    let (training, phases) = bench_training(BackboneChoice::Tiny, &settings);
    assert!(
        inference.is_finite() && inference > 0.0,
        "inference rate {inference}"
    );
    assert!(
        training.is_finite() && training > 0.0,
        "training rate {training}"
    );
    assert!(phases.forward > 0.0 && phases.backward > 0.0, "{phases:?}");
    println!(
        "throughput smoke test passed; `cargo bench -p atelier-train --bench throughput` measures"
    );
}

/// One model and mode's result on one side.
struct Measured {
    model: String,
    mode: String,
    rate: f64,
    phases: Option<Phases>,
}

fn print_tables(ours: &[Measured], theirs: &HashMap<(String, String), Result<Measured, String>>) {
    let find = |row: &Measured| theirs.get(&(row.model.clone(), row.mode.clone()));
    println!();
    println!(
        "{:<20} {:<10} {:>14} {:>14} {:>8}",
        "model", "mode", "atelier img/s", "PyTorch img/s", "ratio"
    );
    let mut notes = Vec::new();
    for row in ours {
        let (other, ratio) = match find(row) {
            Some(Ok(other)) => (
                format!("{:.2}", other.rate),
                format!("{:.2}", row.rate / other.rate),
            ),
            Some(Err(why)) => {
                let note = format!("{}: PyTorch {why}", row.model);
                if !notes.contains(&note) {
                    notes.push(note);
                }
                ("-".into(), "-".into())
            }
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<20} {:<10} {:>14.2} {:>14} {:>8}",
            row.model, row.mode, row.rate, other, ratio
        );
    }
    for note in notes {
        println!("note: {note}");
    }
    println!("ratio = atelier / PyTorch speed (above 1 atelier is faster; 1.00 is parity)");

    // Where a training step's time goes, to point at the phase with the largest gap.
    let split: Vec<(&Measured, Phases)> = ours
        .iter()
        .filter_map(|row| row.phases.map(|phases| (row, phases)))
        .collect();
    if split.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<20} {:<10} {:>14} {:>14} {:>8}",
        "training step", "phase", "atelier ms", "PyTorch ms", "ratio"
    );
    for (row, phases) in split {
        let other = match find(row) {
            Some(Ok(other)) => other.phases,
            _ => None,
        };
        let parts = |p: &Phases| [p.forward, p.backward, p.optimizer];
        let names = ["forward", "backward", "optimizer"];
        for (i, ms) in parts(&phases).into_iter().enumerate() {
            let (other_ms, ratio) = match other.as_ref().map(|p| parts(p)[i]) {
                Some(other_ms) => (format!("{other_ms:.0}"), format!("{:.2}", other_ms / ms)),
                None => ("-".into(), "-".into()),
            };
            println!(
                "{:<20} {:<10} {:>14.0} {:>14} {:>8}",
                row.model, names[i], ms, other_ms, ratio
            );
        }
    }
    println!("ms per batch; ratio = PyTorch ms / atelier ms (the same sense as above)");
}
