//! NVPTX-specific names.

pub mod ptx_version;
