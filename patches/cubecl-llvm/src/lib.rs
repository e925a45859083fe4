//! Stand-in for `cubecl-llvm` in atelier's CUDA build: the names `cubecl-cuda` refers to, with
//! no LLVM behind them.
//!
//! `cubecl-cuda` 0.11 compiles two kernel compilers and picks one at run time: CUDA C++ through
//! NVRTC (its `cpp` feature makes that the default) or pliron/LLVM. The LLVM crate's build
//! script downloads an LLVM build, which atelier's builds may not do. With `cpp` on, the LLVM
//! path is never taken, so this crate only has to supply its types: the PTX version and the
//! feature narrowing that the runtime reads while opening a device, and a compiler that refuses
//! every kernel with an error naming the fix.

pub mod nvptx;
pub mod shared;

pub use shared::{NvptxModule, PlironArtifact, PlironCompiler, PlironOptions};

/// The targets the LLVM compiler can be built for; only NVPTX is named by `cubecl-cuda`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LlvmTarget {
    #[default]
    Cpu,
    Nvptx,
}
