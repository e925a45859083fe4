//! Per-epoch checkpoints that survive `kill -9`.
//!
//! Layout of a run's checkpoint folder:
//! - `config.json`: the run's [`TrainConfig`]; a resume with another configuration is refused.
//! - `epoch-NNNN/model.bpk` and `optimizer.bpk`: the trainable module and the optimiser state
//!   after epoch NNNN (burnpack files, which keep parameter ids so the optimiser state maps back).
//! - `state.json`: which epoch folder is current, which is the best so far, and the history.
//! - `fold-K/`: the same layout for fold model K of a run with `folds` (see [`crate::folds`]);
//!   pruning touches only `epoch-*` folders, so these survive the main model's saves.
//!
//! An epoch folder is written under a temporary name and renamed into place; `state.json` is
//! replaced (also by rename) only after that, and older folders are deleted last. A crash at
//! any point leaves `state.json` naming a complete folder.

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::{BurnpackStore, ModuleSnapshot};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::progress::EpochRecord;

/// Progress of a run, as of its last complete epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub completed_epochs: usize,
    pub history: Vec<EpochRecord>,
    /// 1-based epoch whose weights are the best so far (by validation score).
    pub best_epoch: usize,
    pub best_score: f64,
    /// Early stopping fired: the run is over even if fewer epochs ran.
    pub stopped_early: bool,
}

pub struct Checkpoints {
    dir: PathBuf,
}

impl Checkpoints {
    /// Opens (creating if needed) a run's checkpoint folder. When it already holds a run, its
    /// configuration must equal `config`.
    pub fn open(dir: &Path, config: &TrainConfig) -> Result<Self, TrainError> {
        fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        let config_path = dir.join("config.json");
        if config_path.exists() {
            let stored: TrainConfig = read_json(&config_path)?;
            if &stored != config {
                return Err(TrainError::Config(format!(
                    "{} was written by a run with another configuration; resume with the same \
                     options or start a new run",
                    config_path.display()
                )));
            }
        } else {
            write_json_atomically(&config_path, config)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state of the last complete epoch, if any epoch completed.
    pub fn state(&self) -> Result<Option<RunState>, TrainError> {
        let path = self.dir.join("state.json");
        if !path.exists() {
            return Ok(None);
        }
        read_json(&path).map(Some)
    }

    fn epoch_dir(&self, epoch: usize) -> PathBuf {
        self.dir.join(format!("epoch-{epoch:04}"))
    }

    /// Saves the module and optimiser after an epoch, then the state naming them.
    pub fn save<M: Module>(
        &self,
        state: &RunState,
        module: &M,
        optimizer: &ModuleOptimizer,
    ) -> Result<(), TrainError> {
        let epoch = state.completed_epochs;
        let final_dir = self.epoch_dir(epoch);
        let temporary = self.dir.join(format!("epoch-{epoch:04}.partial"));
        if temporary.exists() {
            fs::remove_dir_all(&temporary).map_err(|e| TrainError::io(&temporary, e))?;
        }
        fs::create_dir_all(&temporary).map_err(|e| TrainError::io(&temporary, e))?;
        save_module(module, &temporary.join("model.bpk"))?;
        let optimizer_path = temporary.join("optimizer.bpk");
        optimizer
            .save(&optimizer_path)
            .map_err(|e| TrainError::artifact(&optimizer_path, e))?;
        if final_dir.exists() {
            fs::remove_dir_all(&final_dir).map_err(|e| TrainError::io(&final_dir, e))?;
        }
        fs::rename(&temporary, &final_dir).map_err(|e| TrainError::io(&final_dir, e))?;
        write_json_atomically(&self.dir.join("state.json"), state)?;
        // Only the current and the best epochs are ever needed again.
        for entry in fs::read_dir(&self.dir).map_err(|e| TrainError::io(&self.dir, e))? {
            let path = entry.map_err(|e| TrainError::io(&self.dir, e))?.path();
            let keep = path == final_dir || path == self.epoch_dir(state.best_epoch);
            let is_epoch = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("epoch-"));
            if is_epoch && !keep {
                fs::remove_dir_all(&path).map_err(|e| TrainError::io(&path, e))?;
            }
        }
        Ok(())
    }

    /// Loads the module saved after `epoch` into `module` (built with the same configuration).
    pub fn load_module<M: Module>(&self, module: M, epoch: usize) -> Result<M, TrainError> {
        load_module(module, &self.epoch_dir(epoch).join("model.bpk"))
    }

    /// Loads the optimiser state saved after `epoch`.
    pub fn load_optimizer(
        &self,
        optimizer: ModuleOptimizer,
        epoch: usize,
    ) -> Result<ModuleOptimizer, TrainError> {
        let path = self.epoch_dir(epoch).join("optimizer.bpk");
        optimizer
            .load(&path)
            .map_err(|e| TrainError::artifact(&path, e))
    }
}

/// Writes a module's parameters and buffers to a burnpack file.
pub fn save_module<M: Module>(module: &M, path: &Path) -> Result<(), TrainError> {
    let mut store = BurnpackStore::from_file(path)
        .auto_extension(false)
        .overwrite(true);
    module
        .save_into(&mut store)
        .map_err(|e| TrainError::artifact(path, e))
}

/// Reads a burnpack file into a module of the same structure; every tensor must match.
pub fn load_module<M: Module>(mut module: M, path: &Path) -> Result<M, TrainError> {
    if !path.exists() {
        return Err(TrainError::artifact(path, "file not found"));
    }
    let mut store = BurnpackStore::from_file(path).auto_extension(false);
    let result = module
        .load_from(&mut store)
        .map_err(|e| TrainError::artifact(path, e))?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        return Err(TrainError::artifact(
            path,
            format!(
                "does not match the model: missing {:?}, errors {:?}",
                result.missing, result.errors
            ),
        ));
    }
    Ok(module)
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, TrainError> {
    let text = fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::artifact(path, e))
}

/// Writes JSON to a temporary file beside `path` and renames it into place.
pub fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| TrainError::artifact(path, e))?;
    write_atomically(path, text.as_bytes())
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let temporary = path.with_extension("partial");
    fs::write(&temporary, bytes).map_err(|e| TrainError::io(&temporary, e))?;
    fs::rename(&temporary, path).map_err(|e| TrainError::io(path, e))
}
