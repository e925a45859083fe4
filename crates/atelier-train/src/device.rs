//! The burn device a configuration's tensors live on, and whether this build and this machine
//! have it.
//!
//! A GPU backend that cannot start (no driver, no card, no NVRTC) panics inside burn on its
//! first operation. [`device_for`] runs one small operation on a GPU device before handing it
//! out, turns such a panic into a [`TrainError::Device`] that says what is missing, and
//! remembers the answer for the rest of the process.

use std::sync::{Arc, Mutex, OnceLock};

use burn::prelude::*;

use crate::config::DeviceChoice;
use crate::error::TrainError;

/// The device for a configuration's tensors (without autodiff), checked to work.
pub fn device_for(choice: DeviceChoice) -> Result<Device, TrainError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::flex()),
        DeviceChoice::Cuda => {
            static CUDA: OnceLock<Result<Device, String>> = OnceLock::new();
            checked(choice, &CUDA)
        }
        DeviceChoice::Vulkan => {
            static VULKAN: OnceLock<Result<Device, String>> = OnceLock::new();
            checked(choice, &VULKAN)
        }
    }
}

/// What a GPU device is, as far as this process can tell: its name (`None` for the CPU
/// backend, which reports none), or why it cannot be used.
pub fn describe(choice: DeviceChoice) -> Result<Option<String>, TrainError> {
    let device = device_for(choice)?;
    if choice == DeviceChoice::Cpu {
        return Ok(None);
    }
    Ok(gpu_identity(&device))
}

#[cfg(any(feature = "cuda", feature = "vulkan"))]
fn gpu_identity(device: &Device) -> Option<String> {
    device.identity().map(|identity| identity.name)
}

#[cfg(not(any(feature = "cuda", feature = "vulkan")))]
fn gpu_identity(_device: &Device) -> Option<String> {
    None
}

/// Why `choice` is not in this build, and the command that builds it in.
pub(crate) fn not_built(choice: DeviceChoice) -> String {
    format!(
        "{name} is not in this build of atelier; build it with `cargo build --release -p \
         atelier-cli --features {name}`",
        name = choice.name()
    )
}

fn checked(
    choice: DeviceChoice,
    cell: &OnceLock<Result<Device, String>>,
) -> Result<Device, TrainError> {
    cell.get_or_init(|| open(choice))
        .clone()
        .map_err(|problem| TrainError::Device {
            device: choice.name(),
            problem,
        })
}

/// Opens the first device of `choice`'s backend and checks that it computes.
fn open(choice: DeviceChoice) -> Result<Device, String> {
    let Some(device) = unchecked(choice) else {
        return Err(not_built(choice));
    };
    let hint = missing_hint(choice);
    let probe = device.clone();
    match quietly(move || {
        let values = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &probe);
        (values * 2.0).sum().into_scalar::<f32>()
    }) {
        Ok(12.0) => Ok(device),
        Ok(sum) => Err(format!(
            "a test sum came back as {sum} instead of 12; the driver or the card is not \
             working. {hint}"
        )),
        Err(reason) => Err(format!("could not start: {reason}. {hint}")),
    }
}

/// `choice`'s first device, without a check; `None` when the backend is not in this build.
fn unchecked(choice: DeviceChoice) -> Option<Device> {
    match choice {
        DeviceChoice::Cpu => Some(Device::flex()),
        #[cfg(feature = "cuda")]
        DeviceChoice::Cuda => Some(Device::cuda(0)),
        #[cfg(feature = "vulkan")]
        DeviceChoice::Vulkan => Some(Device::vulkan(burn::tensor::DeviceKind::DefaultDevice)),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

fn missing_hint(choice: DeviceChoice) -> &'static str {
    match choice {
        DeviceChoice::Cuda => {
            "It needs an NVIDIA GPU with its driver (libcuda), NVRTC (libnvrtc, e.g. from \
             PyTorch's nvidia-cuda-nvrtc wheel, on LD_LIBRARY_PATH) and CUDA's headers \
             (CUDA_PATH=<dir with include/>); use --device cpu otherwise"
        }
        DeviceChoice::Vulkan => {
            "It needs a GPU with a Vulkan driver (libvulkan and the vendor's ICD); use \
             --device cpu otherwise"
        }
        DeviceChoice::Cpu => "",
    }
}

/// Runs `work`, turning a panic into a message without printing it. A GPU backend panics
/// first on its own runner thread (the cause) and then in the caller (a closed channel), so
/// the message is the first panic of any thread while `work` runs.
fn quietly<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _only_one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let first: Arc<Mutex<Option<String>>> = Arc::default();
    let previous = std::panic::take_hook();
    let seen = Arc::clone(&first);
    std::panic::set_hook(Box::new(move |info| {
        let mut seen = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.get_or_insert_with(|| payload_text(info.payload()));
    }));
    // A device whose probe panicked is dropped, never used again.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    let _ = std::panic::take_hook();
    std::panic::set_hook(previous);
    result.map_err(|payload| {
        let first = first
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let message = first.clone().unwrap_or_else(|| payload_text(&*payload));
        short_reason(&message)
    })
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the backend panicked".into())
}

/// A panic message cut to its reason: the first paragraph's lines joined, without the list of
/// library file names a failed dynamic load appends.
fn short_reason(message: &str) -> String {
    let reason = message
        .trim()
        .split("\n\n")
        .next()
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .take(4)
        .collect::<Vec<_>>()
        .join(" ");
    match reason.find(" - searched for library names") {
        Some(end) => reason[..end].to_string(),
        None => reason,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Held by this crate's tests that panic on purpose and by the tests of [`quietly`], whose
    /// hook would otherwise take another test's panic for the one it waits for.
    pub(crate) static PANICKING: Mutex<()> = Mutex::new(());

    fn no_other_panics() -> std::sync::MutexGuard<'static, ()> {
        PANICKING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[test]
    fn the_cpu_is_always_there() {
        let device = device_for(DeviceChoice::Cpu).unwrap();
        assert_eq!(device, Device::flex());
        assert_eq!(describe(DeviceChoice::Cpu).unwrap(), None);
    }

    #[test]
    fn a_backend_left_out_of_the_build_says_which_feature_adds_it() {
        for choice in [DeviceChoice::Cuda, DeviceChoice::Vulkan] {
            if choice.is_built() {
                continue;
            }
            let error = device_for(choice).unwrap_err().to_string();
            assert!(
                error.contains(&format!("--features {}", choice.name())),
                "{error}"
            );
            assert!(error.starts_with(&format!("device {}", choice.name())));
        }
    }

    #[test]
    fn a_panic_becomes_its_message() {
        let _alone = no_other_panics();
        let outcome: Result<(), String> =
            quietly(|| panic!("CUDA driver not found\n\nbacktrace:\n  0: ..."));
        assert_eq!(outcome.unwrap_err(), "CUDA driver not found");
        assert_eq!(quietly(|| 5).unwrap(), 5);
        assert_eq!(short_reason("  a\n  b \n\nc"), "a b");
        assert_eq!(
            short_reason(r#"Unable to load "cuda" - searched for library names: ["libcuda.so"]"#),
            r#"Unable to load "cuda""#
        );
    }

    #[test]
    fn the_cause_is_the_first_panic_of_any_thread() {
        let _alone = no_other_panics();
        // As a GPU runtime fails: its thread panics, then the caller finds the channel closed.
        let outcome: Result<(), String> = quietly(|| {
            let (sender, receiver) = std::sync::mpsc::channel::<()>();
            let runner = std::thread::spawn(move || {
                let _sender = sender;
                panic!("Unable to dynamically load the driver");
            });
            let _ = runner.join();
            receiver.recv().unwrap();
        });
        assert_eq!(
            outcome.unwrap_err(),
            "Unable to dynamically load the driver"
        );
    }
}
