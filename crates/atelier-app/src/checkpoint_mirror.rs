//! What workers keep in the model store besides published models, so that any machine can go
//! on from it: a run's checkpoints, so that a worker on any machine resumes a run where a dead
//! worker left it, and a finished run's model folder, so that an app or a command on another
//! machine can load it.
//!
//! Before training, the local checkpoint folder is rebuilt from the store's copy
//! ([`Mirrored::restore`]); after every saved epoch the observer returned by
//! [`Mirrored::observer`] sends the new files (the epoch folder first, `state.json` last, so
//! the store's copy always names complete folders). A worker sends the model folder before it
//! marks the run completed ([`send_model`]); [`local_model`] finds a run's model folder, and
//! fetches it from the store named by [`configure`] when this machine does not have it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use atelier_store::FolderMirror;
use atelier_train::artifact::MODEL_FILE;
use atelier_train::progress::{EpochRecord, Observer, RunStart};

use crate::error::AppError;
use crate::models::open_store;

/// The checkpoint file that names the epoch folders a checkpoint folder needs.
const STATE_FILE: &str = "state.json";

/// The store key of a run's mirrored checkpoints.
pub fn key(catalog_id: &str, run: i64) -> String {
    format!("checkpoints/{catalog_id}/run-{run}")
}

/// The store key of a run's mirrored model folder.
fn model_key(catalog_id: &str, run: i64) -> String {
    format!("models/{catalog_id}/run-{run}")
}

/// The store that [`local_model`] fetches model folders from (the `--store` of this process).
static STORE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names the store to fetch missing model folders from; the first call counts.
pub fn configure(store_url: &str) {
    let _ = STORE.set(store_url.to_string());
}

/// Sends the model folder `dir` of run `run` to the store at `store_url`.
pub async fn send_model(
    store_url: &str,
    catalog_id: &str,
    run: i64,
    dir: &Path,
) -> Result<(), AppError> {
    let store = Arc::new(open_store(store_url)?);
    let mirror = FolderMirror::new(store, &model_key(catalog_id, run));
    mirror.upload(dir, dir, &[], &|_| false).await?;
    Ok(())
}

/// The model folder `model_ref` names (a run's `run-N` folder below its catalogue's id): as it
/// is when this machine has it, else fetched from the configured store's copy into this
/// machine's model cache (once). Errors name the folder when neither has it.
pub async fn local_model(model_ref: &Path) -> Result<PathBuf, AppError> {
    if model_ref.join(MODEL_FILE).exists() {
        return Ok(model_ref.to_path_buf());
    }
    let missing = || {
        AppError::Invalid(format!(
            "the model folder {} is not on this machine and the store has no copy of it; run \
             this where the run was trained, or retrain it",
            model_ref.display()
        ))
    };
    let (Some(store_url), Some((catalog_id, run))) = (STORE.get(), run_of(model_ref)) else {
        return Err(missing());
    };
    let target = atelier_store::default_cache_dir()
        .join("runs")
        .join(&catalog_id)
        .join(format!("run-{run}"));
    if target.join(MODEL_FILE).exists() {
        return Ok(target);
    }
    let store = Arc::new(open_store(store_url)?);
    let mirror = FolderMirror::new(store, &model_key(&catalog_id, run));
    let partial = target.with_extension("partial");
    if mirror.download(&partial, &[MODEL_FILE]).await? == 0 {
        return Err(missing());
    }
    if let Err(error) = tokio::fs::rename(&partial, &target).await
        && !target.join(MODEL_FILE).exists()
    {
        return Err(AppError::io(&target, error));
    }
    Ok(target)
}

/// (catalogue id, run) of a `.../CATALOG-ID/run-N` model folder.
fn run_of(model_ref: &Path) -> Option<(String, i64)> {
    let run = model_ref
        .file_name()?
        .to_str()?
        .strip_prefix("run-")?
        .parse()
        .ok()?;
    let catalog_id = model_ref.parent()?.file_name()?.to_str()?.to_string();
    Some((catalog_id, run))
}

/// The mirror of one run's checkpoint folder.
pub struct Mirrored {
    mirror: Arc<FolderMirror>,
    root: PathBuf,
}

impl Mirrored {
    /// The mirror of `root` (the run's local checkpoint folder) in the store at `store_url`.
    pub fn open(
        store_url: &str,
        catalog_id: &str,
        run: i64,
        root: &Path,
    ) -> Result<Self, AppError> {
        let store = Arc::new(open_store(store_url)?);
        Ok(Mirrored {
            mirror: Arc::new(FolderMirror::new(store, &key(catalog_id, run))),
            root: root.to_path_buf(),
        })
    }

    /// Replaces the local folder with the store's copy when the store has one (a run that
    /// another worker started); keeps the local folder when the store has none. Returns how
    /// many files came from the store.
    pub async fn restore(&self) -> Result<usize, AppError> {
        if self.mirror.keys().await?.is_empty() {
            return Ok(0);
        }
        if self.root.exists() {
            tokio::fs::remove_dir_all(&self.root)
                .await
                .map_err(|e| AppError::io(&self.root, e))?;
        }
        Ok(self.mirror.download(&self.root, &[STATE_FILE]).await?)
    }

    /// `inner`, plus: every saved checkpoint folder is sent to the store before training goes
    /// on (from the training thread, which must not be a runtime thread). A failed upload is
    /// logged; the store's copy then lags until the next epoch.
    pub fn observer(&self, inner: Box<dyn Observer + Send>) -> Box<dyn Observer + Send> {
        Box::new(Uploading {
            inner,
            mirror: self.mirror.clone(),
            root: self.root.clone(),
            runtime: tokio::runtime::Handle::current(),
        })
    }
}

struct Uploading {
    inner: Box<dyn Observer + Send>,
    mirror: Arc<FolderMirror>,
    root: PathBuf,
    runtime: tokio::runtime::Handle,
}

/// Fold models' checkpoint folders sit below the run's and are sent on their own.
fn is_fold_folder(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("fold-"))
}

impl Observer for Uploading {
    fn run_start(&mut self, start: &RunStart) {
        self.inner.run_start(start);
    }
    fn fold_start(&mut self, fold: usize, folds: usize, held_out: usize) {
        self.inner.fold_start(fold, folds, held_out);
    }
    fn phase(&mut self, name: &str, total: u64) {
        self.inner.phase(name, total);
    }
    fn advance(&mut self, done: u64, loss: Option<f64>) {
        self.inner.advance(done, loss);
    }
    fn epoch_end(&mut self, record: &EpochRecord) {
        self.inner.epoch_end(record);
    }
    fn phase_end(&mut self) {
        self.inner.phase_end();
    }
    fn checkpoint_saved(&mut self, folder: &Path) {
        let sent = self.runtime.block_on(self.mirror.upload(
            &self.root,
            folder,
            &[STATE_FILE],
            &is_fold_folder,
        ));
        if let Err(error) = sent {
            tracing::warn!(
                "could not copy the checkpoint {} to the store: {error}",
                folder.display()
            );
        }
        self.inner.checkpoint_saved(folder);
    }
    fn stop_requested(&self) -> bool {
        self.inner.stop_requested()
    }
}
