//! A run's checkpoints kept in the model store as well as on the training machine's disk, so
//! that a worker on any machine resumes a run where a dead worker left it. Before training,
//! the local folder is rebuilt from the store's copy ([`restore`]); after every saved epoch
//! the observer returned by [`Mirrored::observer`] sends the new files (the epoch folder
//! first, `state.json` last, so the store's copy always names complete folders).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use atelier_store::FolderMirror;
use atelier_train::progress::{EpochRecord, Observer, RunStart};

use crate::error::AppError;
use crate::models::open_store;

/// The checkpoint file that names the epoch folders a checkpoint folder needs.
const STATE_FILE: &str = "state.json";

/// The store key of a run's mirrored checkpoints.
pub fn key(catalog_id: &str, run: i64) -> String {
    format!("checkpoints/{catalog_id}/run-{run}")
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
