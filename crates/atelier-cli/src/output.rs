//! Printing results: one JSON document on stdout with `--json`, human text otherwise.

use serde::Serialize;

use crate::error::{CliError, CliResult};

/// Prints `value` as one line of JSON.
pub fn print_json<T: Serialize>(value: &T) -> CliResult {
    let text = serde_json::to_string(value)
        .map_err(|e| CliError::internal(format!("cannot encode the result as JSON: {e}")))?;
    println!("{text}");
    Ok(())
}
