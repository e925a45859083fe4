//! Retraining in the background (facet and similarity runs). Jobs run one at a time (training uses every core), in the
//! order they were asked for; their progress is written to the run's record by the runner, so
//! the run page shows it whichever process trains.

use std::collections::BTreeSet;
use std::sync::Mutex;

use atelier_app::any_run;
use atelier_train::progress::Silent;

use crate::app::AppState;

#[derive(Default)]
pub struct Jobs {
    /// Held by the job that is training.
    turn: tokio::sync::Mutex<()>,
    /// Runs waiting for their turn or training.
    pending: Mutex<BTreeSet<i64>>,
    /// The run training now; the runner renews its lease itself.
    training: Mutex<Option<i64>>,
}

impl Jobs {
    /// Trains run `run` (already recorded) in the background.
    pub fn start(&self, state: AppState, run: i64) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run);
        tokio::spawn(async move {
            let jobs = state.jobs.clone();
            let _turn = jobs.turn.lock().await;
            *jobs.training.lock().unwrap_or_else(|p| p.into_inner()) = Some(run);
            let result = any_run::execute(
                &state.catalog,
                run,
                &state.config.run_paths,
                Box::new(Silent),
            )
            .await;
            match result {
                Ok(model_dir) => {
                    tracing::info!("run {run} finished: {}", model_dir.display())
                }
                // The runner has already marked the run failed with this error.
                Err(error) => tracing::error!("run {run} failed: {error}"),
            }
            *jobs.training.lock().unwrap_or_else(|p| p.into_inner()) = None;
            jobs.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&run);
        });
    }

    /// The runs started here that wait for their turn: the app renews their leases (the
    /// one training has its lease renewed by the runner).
    pub fn waiting_runs(&self) -> Vec<i64> {
        let training = *self.training.lock().unwrap_or_else(|p| p.into_inner());
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .filter(|run| Some(*run) != training)
            .collect()
    }

    /// Whether `run` was started here and has not finished yet.
    pub fn is_pending(&self, run: i64) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&run)
    }
}
