//! The compiler, its options and its output, as `cubecl-cuda` names them.

pub mod lowered_features;

use cubecl_core::ir::nvidia::SmArch;
use cubecl_core::prelude::KernelDefinition;
use cubecl_environment::backtrace::BackTrace;
use cubecl_server::compiler::CompilationError;
use cubecl_server::kernel::BufferIOAttr;

use crate::LlvmTarget;
use crate::nvptx::ptx_version::PtxVersion;

/// The LLVM kernel compiler's place in `cubecl-cuda`'s compiler enum. Never chosen in a build
/// with `cubecl-cuda/cpp`; if it is, every kernel fails with [`PlironCompiler::compile`]'s error.
#[derive(Clone, Debug, Default)]
pub struct PlironCompiler {
    pub target: LlvmTarget,
}

/// The options `cubecl-cuda` fills in for the LLVM compiler.
#[derive(Clone, Debug, Default)]
pub struct PlironOptions {
    /// AMD architecture; unused for NVPTX.
    pub arch: Option<()>,
    pub sm_arch: Option<SmArch>,
    pub ptx_version: Option<PtxVersion>,
    pub grid_constants: bool,
}

/// A compiled PTX module (never produced here).
#[derive(Clone, Debug)]
pub struct NvptxModule {
    pub ptx: Vec<core::ffi::c_char>,
    pub entrypoint: String,
    pub ir: String,
    pub shared_memory_size: usize,
    pub io: Vec<BufferIOAttr>,
}

/// What the LLVM compiler returns.
#[derive(Clone, Debug)]
pub enum PlironArtifact {
    NvptxCode(NvptxModule),
    /// CPU code, which `cubecl-cuda` never asks for.
    Unsupported,
}

impl PlironCompiler {
    /// Always an error: this build has no LLVM. The C++ compiler (NVRTC) is the one to use.
    pub fn compile(
        &mut self,
        _kernel: KernelDefinition,
        _options: &PlironOptions,
    ) -> Result<PlironArtifact, CompilationError> {
        Err(CompilationError::Generic {
            reason: "this build of atelier compiles CUDA kernels with NVRTC and has no LLVM \
                     compiler; build with the `cuda` feature, which enables cubecl-cuda's `cpp`"
                .into(),
            backtrace: BackTrace::capture(),
        })
    }

    /// The tag cache entries are stored under.
    pub fn lang_tag(&self) -> &'static str {
        "llvm"
    }
}
