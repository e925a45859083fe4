//! Errors of training, evaluation and tagging.

use std::path::PathBuf;

/// Why a run, an evaluation or a tagging job could not go on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// An option or a combination of options that cannot work; the message says the fix.
    #[error("{0}")]
    Config(String),
    /// A setting of a [`crate::TrainConfig`] that cannot work (alone or with another): `field`
    /// is the configuration's field, `problem` what is wrong and the fix, worded to follow the
    /// field's name (or a front end's name for it) and to assume no front end.
    #[error("{field} {problem}")]
    Setting {
        field: &'static str,
        problem: String,
    },
    /// A training image could not be decoded (run `atelier check` to quarantine it).
    #[error(
        "{}: {reason}; run `atelier check` to quarantine unreadable images before training",
        .path.display()
    )]
    Image { path: PathBuf, reason: String },
    /// The device asked for is not in this build or not on this machine; `problem` says why
    /// and what to do.
    #[error("device {device}: {problem}")]
    Device {
        device: &'static str,
        problem: String,
    },
    #[error("the dataset has no {what}: {fix}")]
    EmptyDataset { what: String, fix: String },
    #[error(transparent)]
    Weights(#[from] atelier_models::WeightsError),
    #[error("invalid model configuration: {0}")]
    Model(#[from] atelier_models::ConfigError),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Training stopped because its observer asked it to (see
    /// [`crate::progress::Observer::stop_requested`]); the last checkpoint is kept.
    #[error("training stopped on request after {completed_epochs} complete epochs")]
    Stopped { completed_epochs: usize },
    /// A checkpoint or model artifact that cannot be read back.
    #[error("{}: {problem}", .path.display())]
    Artifact { path: PathBuf, problem: String },
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn artifact(path: impl Into<PathBuf>, problem: impl ToString) -> Self {
        TrainError::Artifact {
            path: path.into(),
            problem: problem.to_string(),
        }
    }
}
