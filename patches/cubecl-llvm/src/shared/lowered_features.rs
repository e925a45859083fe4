//! Narrowing a device's advertised features to what the LLVM compiler lowers.

use cubecl_core::ir::DeviceProperties;

/// The GPU target the features are narrowed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuTarget {
    Nvptx,
}

/// Leaves `props` as they are: `cubecl-cuda` calls this only when the LLVM compiler is the one
/// selected, and in this build that compiler refuses every kernel anyway.
pub fn restrict_features(_props: &mut DeviceProperties, _target: GpuTarget) {}
