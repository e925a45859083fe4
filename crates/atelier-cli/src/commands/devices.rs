//! `atelier devices`: the devices this build can run networks on, and whether this machine
//! has them (each GPU backend is started once to find out).

use atelier_train::DeviceChoice;
use atelier_train::device::describe;
use serde::Serialize;

use crate::error::CliResult;
use crate::output::print_json;

/// One device's line.
#[derive(Debug, Serialize)]
struct DeviceLine {
    device: &'static str,
    /// Whether this build has the backend (`--features cuda`/`vulkan`).
    built: bool,
    /// Whether it started and computed a test sum correctly.
    available: bool,
    /// The GPU's name, as its driver reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// Why it cannot be used, and the fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

pub fn run(json: bool) -> CliResult {
    for choice in [DeviceChoice::Cpu, DeviceChoice::Cuda, DeviceChoice::Vulkan] {
        let line = match describe(choice) {
            Ok(name) => DeviceLine {
                device: choice.name(),
                built: true,
                available: true,
                name,
                problem: None,
            },
            Err(error) => DeviceLine {
                device: choice.name(),
                built: choice.is_built(),
                available: false,
                name: None,
                problem: Some(error.to_string()),
            },
        };
        if json {
            print_json(&line)?;
        } else {
            print_line(choice, &line);
        }
    }
    Ok(())
}

fn print_line(choice: DeviceChoice, line: &DeviceLine) {
    let state = match (&line.name, &line.problem) {
        (_, Some(problem)) => problem.clone(),
        (Some(name), None) => format!("available: {name}"),
        (None, None) if choice == DeviceChoice::Cpu => format!(
            "available: burn's flex backend on {} threads",
            rayon::current_num_threads()
        ),
        (None, None) => "available".into(),
    };
    println!("{:<7} {state}", line.device);
}
