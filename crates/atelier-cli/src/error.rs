//! One error type for the command line: a message a person can act on, and whether the fault
//! is in the input (exit 2) or in atelier or its environment (exit 1).

use std::fmt;

#[derive(Debug)]
pub struct CliError {
    message: String,
    bad_input: bool,
}

impl CliError {
    /// The user's input (arguments, files, manifest) is wrong; the message says how to fix it.
    pub fn bad_input(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            bad_input: true,
        }
    }

    /// Something failed that the user's input did not cause.
    pub fn internal(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            bad_input: false,
        }
    }

    pub fn exit_code(&self) -> u8 {
        if self.bad_input { 2 } else { 1 }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<atelier_catalog::CatalogError> for CliError {
    fn from(error: atelier_catalog::CatalogError) -> Self {
        atelier_app::AppError::from(error).into()
    }
}

impl From<atelier_vision::synth::SynthError> for CliError {
    fn from(e: atelier_vision::synth::SynthError) -> Self {
        use atelier_vision::synth::SynthError as E;
        // An unwritable --out or --preview path is the user's to fix.
        let bad_input = matches!(e, E::InvalidOption { .. } | E::Io { .. });
        CliError {
            message: e.to_string(),
            bad_input,
        }
    }
}

impl From<atelier_store::StoreError> for CliError {
    fn from(error: atelier_store::StoreError) -> Self {
        atelier_app::AppError::from(error).into()
    }
}

impl From<atelier_train::TrainError> for CliError {
    fn from(error: atelier_train::TrainError) -> Self {
        atelier_app::AppError::from(error).into()
    }
}

/// The one place where error kinds become exit codes: everything but an internal failure is
/// the user's input to fix (exit 2).
impl From<atelier_app::AppError> for CliError {
    fn from(error: atelier_app::AppError) -> Self {
        use atelier_train::TrainError;
        let message = match &error {
            // A setting is named by the option that sets it.
            atelier_app::AppError::Train(TrainError::Setting { field, problem }) => {
                format!("{} {problem}", crate::commands::train::flag_for(field))
            }
            _ => error.to_string(),
        };
        CliError {
            message,
            bad_input: error.kind() != atelier_app::ErrorKind::Internal,
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::internal(e.to_string())
    }
}

impl From<tokio::task::JoinError> for CliError {
    fn from(e: tokio::task::JoinError) -> Self {
        CliError::internal(format!("a background task failed: {e}"))
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;
