//! The burn device a configuration's tensors live on.

use burn::prelude::*;

use crate::config::DeviceChoice;
use crate::error::TrainError;

/// The device for a configuration's tensors (without autodiff).
pub fn device_for(choice: DeviceChoice) -> Result<Device, TrainError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::flex()),
        #[cfg(feature = "vulkan")]
        DeviceChoice::Vulkan => Ok(Device::vulkan(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(not(feature = "vulkan"))]
        DeviceChoice::Vulkan => Err(TrainError::Config(
            "the vulkan device needs a build with the `vulkan` feature: cargo build \
             --release -p atelier-cli --features vulkan"
                .into(),
        )),
    }
}
