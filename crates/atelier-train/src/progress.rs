//! How a long job reports what it is doing, so that the command line can draw progress bars and
//! the web app can show a job's state, without this crate knowing about either.

use crate::config::TrainConfig;

/// Receives progress events. Every method has an empty default.
pub trait Observer: Send {
    /// A catalogue run is about to train (sent once, before any phase).
    fn run_start(&mut self, _start: &RunStart) {}
    /// Cross-fitting: fold model `fold` (1-based) of `folds` starts; its phases follow, and
    /// it will predict `held_out` train images it never sees.
    fn fold_start(&mut self, _fold: usize, _folds: usize, _held_out: usize) {}
    /// A phase starts (`"features"`, `"epoch 3/10"`, `"evaluate"`), with `total` units of work.
    fn phase(&mut self, _name: &str, _total: u64) {}
    /// `done` units of the current phase are finished; `loss` is the running mean loss when
    /// training.
    fn advance(&mut self, _done: u64, _loss: Option<f64>) {}
    /// An epoch ended.
    fn epoch_end(&mut self, _record: &EpochRecord) {}
    /// The current phase ended.
    fn phase_end(&mut self) {}
    /// A checkpoint folder (a run's, or a fold model's below it) was saved complete: its
    /// `state.json` names what it needs. Whoever keeps copies elsewhere may send it now.
    fn checkpoint_saved(&mut self, _folder: &std::path::Path) {}
    /// Whether training should stop now (a cancelled job). Asked between batches; training
    /// then ends with [`crate::TrainError::Stopped`], its last checkpoint kept.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// What a catalogue run trains on, as it starts.
#[derive(Debug, Clone, Copy)]
pub struct RunStart<'a> {
    pub run: i64,
    pub config: &'a TrainConfig,
    /// Images of the catalogue's train split in the dataset.
    pub train_images: usize,
    pub test_images: usize,
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {}

/// What one epoch achieved; kept in the run's history and checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    pub learning_rate: f64,
    pub train_loss: f64,
    /// Mean over facets of the validation macro-F1 (`None` without a validation part).
    pub validation_macro_f1: Option<f64>,
    pub seconds: f64,
}
