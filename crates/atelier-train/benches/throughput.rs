//! Images per second of inference and of one training step for the full-size backbones on the
//! pure-Rust CPU backend (or a GPU), side by side with PyTorch on the same machine, device and
//! thread count.
//!
//! Each model is the backbone (random weights) plus a 1000-class linear head on the pooled
//! vector, so it matches torchvision's `resnet18`/`resnet50` and `efficientnet_lite_pytorch`'s
//! `efficientnet-lite0` with their classifiers. Inference runs on the device (`Device::flex()`
//! by default); a training step runs on its autodiff twin: forward, cross-entropy against
//! random targets, backward, AdamW step (the trainer's `FusedAdamW`), as
//! `atelier_train::trainer` takes a step.
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
//! - `ATELIER_BENCH_DEVICE`: `cpu` (default), `cuda` or `vulkan` (a build with that feature);
//!   PyTorch runs on the same device (`vulkan`: PyTorch's CUDA);
//! - `ATELIER_BENCH_PRECISIONS`: PyTorch's precisions, `fp32` (default) and, on CUDA, `bf16`
//!   (autocast to bfloat16 with channels-last tensors); atelier runs in fp32;
//! - `ATELIER_BENCH_LOSS_CHECK=N`: before timing, train each model N steps (SGD) on the CPU and
//!   on the device from the same weights and batch, print both losses and exit with 1 if they
//!   differ by more than `ATELIER_BENCH_LOSS_TOLERANCE` (relative, default 0.02);
//! - `ATELIER_BENCH_PYTORCH_SCRIPT`: `scripts/bench_pytorch.py` elsewhere than in this
//!   checkout (a prepared binary run on another machine);
//! - `RAYON_NUM_THREADS`: the thread count for both sides;
//! - `OMP_WAIT_POLICY=passive` (passed on to PyTorch): use it on a machine busy with other work,
//!   where PyTorch's spinning OpenMP threads otherwise lose most of their speed.

use std::collections::HashMap;
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use atelier_models::{AnyBackbone, Backbone};
use atelier_train::fused_adamw::FusedAdamW;
use atelier_train::{BackboneChoice, DeviceChoice};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, SgdConfig};
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
    /// Where atelier's side runs (PyTorch's runs on the matching device).
    device_choice: DeviceChoice,
    device: Device,
    /// PyTorch's precisions (`fp32`, `bf16`).
    precisions: Vec<String>,
    /// Training steps of the CPU-vs-device loss check (0: none) and its relative tolerance.
    loss_check: usize,
    loss_tolerance: f64,
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
        let device_choice = device_choice()?;
        let device = atelier_train::device::device_for(device_choice)
            .map_err(|e| format!("ATELIER_BENCH_DEVICE: {e}"))?;
        let precisions = list("ATELIER_BENCH_PRECISIONS", "fp32");
        if let Some(bad) = precisions
            .iter()
            .find(|p| !["fp32", "bf16"].contains(&p.as_str()))
        {
            return Err(format!(
                "ATELIER_BENCH_PRECISIONS: unknown precision `{bad}`; use fp32, bf16 or both"
            ));
        }
        let loss_tolerance = match std::env::var("ATELIER_BENCH_LOSS_TOLERANCE") {
            Err(_) => 0.02,
            Ok(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|t| *t > 0.0)
                .ok_or_else(|| {
                    format!("ATELIER_BENCH_LOSS_TOLERANCE={text:?}: expected a positive number")
                })?,
        };
        Ok(Self {
            device_choice,
            device,
            precisions,
            loss_check: number("ATELIER_BENCH_LOSS_CHECK", 1)?.unwrap_or(0),
            loss_tolerance,
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

/// `ATELIER_BENCH_DEVICE`, CPU when unset.
fn device_choice() -> Result<DeviceChoice, String> {
    let name = std::env::var("ATELIER_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    [DeviceChoice::Cpu, DeviceChoice::Cuda, DeviceChoice::Vulkan]
        .into_iter()
        .find(|choice| choice.name() == name.trim())
        .ok_or_else(|| format!("ATELIER_BENCH_DEVICE={name:?}: use cpu, cuda or vulkan"))
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
    let device = settings.device.clone();
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
    let device = settings.device.clone().autodiff();
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
    random_batch(settings.batch, settings.size, device)
}

fn random_batch(batch: usize, size: usize, device: &Device) -> Tensor<4> {
    Tensor::<4>::random(
        [batch, 3, size, size],
        Distribution::Normal(0.0, 1.0),
        device,
    )
}

/// The loss check's batch: small enough for the CPU side to take a few seconds a step.
const LOSS_CHECK_BATCH: usize = 16;

/// The losses of `steps` SGD steps of one model on the CPU and on the benchmark's device, from
/// the same initial weights, images and targets.
fn loss_curves(choice: BackboneChoice, settings: &Settings, steps: usize) -> [Vec<f32>; 2] {
    let cpu = Device::flex().autodiff();
    cpu.seed(5);
    let model = Classifier::new(choice, &cpu);
    let batch = settings.batch.min(LOSS_CHECK_BATCH);
    let images = random_batch(batch, settings.size, &cpu);
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let targets: Vec<i64> = (0..batch)
        .map(|_| rng.random_range(0..CLASSES as i64))
        .collect();
    let targets = Tensor::<1, Int>::from_ints(targets.as_slice(), &cpu);
    let device = settings.device.clone().autodiff();
    // `fork` gives each copy its own autodiff graph (even on the same device), so the two
    // trainings share nothing but the starting values.
    let on_device = sgd_losses(
        model.clone().fork(&device),
        images.clone().to_device(&device),
        targets.clone().to_device(&device),
        steps,
    );
    [
        sgd_losses(model.fork(&cpu), images, targets, steps),
        on_device,
    ]
}

/// Each step's loss (read before the step) over `steps` plain SGD steps on one batch.
fn sgd_losses(
    mut model: Classifier,
    images: Tensor<4>,
    targets: Tensor<1, Int>,
    steps: usize,
) -> Vec<f32> {
    let loss_fn = CrossEntropyLossConfig::new().init(&images.device());
    let mut optim = SgdConfig::new().init();
    let mut losses = Vec::with_capacity(steps);
    for _ in 0..steps {
        let loss = loss_fn.forward(model.forward(images.clone()), targets.clone());
        losses.push(loss.clone().into_scalar::<f32>());
        let gradients = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.01, model, gradients);
    }
    losses
}

/// Runs the loss check for every model; `false` when a model's losses part by more than the
/// tolerance.
fn check_losses(settings: &Settings) -> bool {
    let steps = settings.loss_check;
    println!(
        "loss check: {steps} SGD steps, batch {}, CPU vs {}, relative tolerance {}",
        settings.batch.min(LOSS_CHECK_BATCH),
        settings.device_choice.name(),
        settings.loss_tolerance
    );
    let mut all_agree = true;
    for &choice in &settings.models {
        let [cpu, device] = loss_curves(choice, settings, steps);
        let worst = cpu
            .iter()
            .zip(&device)
            .map(|(a, b)| ((a - b).abs() / a.abs().max(1e-6)) as f64)
            .fold(0.0, f64::max);
        let agree = worst <= settings.loss_tolerance && device.iter().all(|l| l.is_finite());
        all_agree &= agree;
        println!(
            "loss check {:<20} cpu {:?} {} {:?} worst relative difference {worst:.2e}: {}",
            choice.name(),
            cpu,
            settings.device_choice.name(),
            device,
            if agree { "ok" } else { "FAILED" }
        );
    }
    all_agree
}

/// What `scripts/bench_pytorch.py` prints.
#[derive(Debug, Deserialize)]
struct PytorchReport {
    torch: String,
    /// `cpu`, or the GPU's name.
    #[serde(default)]
    device: String,
    threads: usize,
    results: Vec<PytorchResult>,
}

#[derive(Debug, Deserialize)]
struct PytorchResult {
    model: String,
    mode: String,
    #[serde(default = "fp32")]
    precision: String,
    images_per_second: Option<f64>,
    #[serde(default)]
    error: Option<String>,
    /// Training only.
    #[serde(default)]
    phases: Option<Phases>,
}

fn fp32() -> String {
    "fp32".into()
}

/// PyTorch's side of the benchmark: `ATELIER_BENCH_PYTORCH_SCRIPT` or this checkout's.
fn pytorch_script() -> String {
    std::env::var("ATELIER_BENCH_PYTORCH_SCRIPT").unwrap_or_else(|_| PYTORCH_SCRIPT.into())
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
    let script = pytorch_script();
    let torch_device = match settings.device_choice {
        DeviceChoice::Cpu => "cpu",
        DeviceChoice::Cuda | DeviceChoice::Vulkan => "cuda",
    };
    let mut command = Command::new(python);
    command
        .arg(&script)
        .args(["--device", torch_device])
        .args(["--precisions", &settings.precisions.join(",")])
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
        .map_err(|e| format!("running {script}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{script} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "{script} printed something other than its JSON report ({e}): {}",
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
    // As the `atelier` binary does.
    atelier_models::keep_freed_memory();
    if !std::env::args().any(|arg| arg == "--bench") {
        smoke_test();
        return;
    }
    let settings = Settings::from_env().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    print_header(&settings);
    if settings.loss_check > 0 && !check_losses(&settings) {
        eprintln!("the loss check failed: the device's training steps disagree with the CPU's");
        std::process::exit(1);
    }
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
    let mut ours: Vec<Measured> = Vec::new();
    let mut theirs = Theirs::new();
    let mut torch_version = None;
    for &choice in &settings.models {
        ours.extend(measure_atelier(choice, &settings));
        // PyTorch measures each model right after atelier does, so both see about the same
        // load from whatever else the machine is running.
        let Ok(python) = &python else { continue };
        if let Some(version) = measure_pytorch(python, choice, &settings, &mut theirs) {
            torch_version = Some(version);
        }
    }
    println!("load average at the end {}", load_average());
    if let Some(version) = torch_version {
        println!("{version}");
    }
    print_tables(&ours, &theirs, &settings.precisions);
}

fn print_header(settings: &Settings) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {} ({cores} cores available)", cpu_model());
    let device = match atelier_train::device::describe(settings.device_choice) {
        Ok(Some(name)) => format!("{} ({name})", settings.device_choice.name()),
        _ => settings.device_choice.name().to_string(),
    };
    println!(
        "device {device}, threads {}, batch {}, {}x{} px, warm-up {}, load average at start {}",
        settings.threads,
        settings.batch,
        settings.size,
        settings.size,
        settings.warmup,
        load_average()
    );
}

/// atelier's rate (and training phases) for each mode of one model.
fn measure_atelier(choice: BackboneChoice, settings: &Settings) -> Vec<Measured> {
    settings
        .modes
        .iter()
        .map(|&mode| {
            let (rate, phases) = match mode {
                Mode::Inference => (bench_inference(choice, settings), None),
                Mode::Training => {
                    let (rate, phases) = bench_training(choice, settings);
                    (rate, Some(phases))
                }
            };
            eprintln!("atelier {choice} {}: {rate:.2} img/s", mode.name());
            Measured {
                model: choice.name().to_string(),
                mode: mode.name().to_string(),
                rate,
                phases,
            }
        })
        .collect()
}

/// PyTorch's results by (model, mode, precision), or why there are none.
type Theirs = HashMap<(String, String, String), Result<Measured, String>>;

/// Runs PyTorch's side for one model into `theirs`; returns its version line.
fn measure_pytorch(
    python: &str,
    choice: BackboneChoice,
    settings: &Settings,
    theirs: &mut Theirs,
) -> Option<String> {
    let report = match run_pytorch(python, choice, settings) {
        Ok(report) => report,
        Err(why) => {
            for mode in &settings.modes {
                for precision in &settings.precisions {
                    let key = (choice.name().into(), mode.name().into(), precision.clone());
                    theirs.insert(key, Err(why.clone()));
                }
            }
            return None;
        }
    };
    for result in report.results {
        let key = (
            result.model.clone(),
            result.mode.clone(),
            result.precision.clone(),
        );
        let value = match result.images_per_second {
            Some(rate) => {
                eprintln!("PyTorch {} {} {}: {rate:.2} img/s", key.0, key.1, key.2);
                Ok(Measured {
                    model: result.model,
                    mode: result.mode,
                    rate,
                    phases: result.phases,
                })
            }
            None => {
                let why = result.error.unwrap_or_else(|| "gave no number".into());
                eprintln!("PyTorch {} {} {}: {why}", key.0, key.1, key.2);
                Err(why)
            }
        };
        theirs.insert(key, value);
    }
    Some(format!(
        "PyTorch {} on {} with {} threads",
        report.torch, report.device, report.threads
    ))
}

fn smoke_test() {
    let settings = Settings {
        device_choice: DeviceChoice::Cpu,
        device: Device::flex(),
        precisions: vec![fp32()],
        loss_check: 2,
        loss_tolerance: 0.02,
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
    // The CPU against itself: the same weights, batch and steps give the same losses.
    let [first, second] = loss_curves(BackboneChoice::Tiny, &settings, 2);
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|l| l.is_finite()), "{first:?}");
    assert_eq!(first, second);
    assert!(check_losses(&settings));
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

fn print_tables(ours: &[Measured], theirs: &Theirs, precisions: &[String]) {
    println!();
    let mut header = format!("{:<20} {:<10} {:>14}", "model", "mode", "atelier img/s");
    for precision in precisions {
        header += &format!(" {:>14} {:>8}", format!("PyTorch {precision}"), "ratio");
    }
    println!("{header}");
    let mut notes = Vec::new();
    for row in ours {
        let mut line = format!("{:<20} {:<10} {:>14.2}", row.model, row.mode, row.rate);
        for precision in precisions {
            let key = (row.model.clone(), row.mode.clone(), precision.clone());
            let (other, ratio) = match theirs.get(&key) {
                Some(Ok(other)) => (
                    format!("{:.2}", other.rate),
                    format!("{:.2}", row.rate / other.rate),
                ),
                Some(Err(why)) => {
                    let note = format!("{} {precision}: PyTorch {why}", row.model);
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                    ("-".into(), "-".into())
                }
                None => ("-".into(), "-".into()),
            };
            line += &format!(" {other:>14} {ratio:>8}");
        }
        println!("{line}");
    }
    for note in notes {
        println!("note: {note}");
    }
    println!(
        "ratio = atelier / PyTorch speed (above 1 atelier is faster; 1.00 is parity); PyTorch \
         img/s in images per second"
    );
    print_phases(ours, theirs);
}

/// Where a training step's time goes (against PyTorch in fp32), to point at the phase with the
/// largest gap.
fn print_phases(ours: &[Measured], theirs: &Theirs) {
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
        let key = (row.model.clone(), row.mode.clone(), fp32());
        let other = match theirs.get(&key) {
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
    println!("ms per batch; ratio = PyTorch fp32 ms / atelier ms (the same sense as above)");
}
