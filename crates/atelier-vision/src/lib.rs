//! atelier-vision owns pixels: tolerant decoding of catalogue photos into upright RGB8 (with a
//! human-readable quarantine reason for every file that cannot be used), and `synth`, the
//! deterministic renderer of synthetic dress photographs with known facets, boxes and designs.
//!
//! It knows nothing of the catalogue database; callers pass paths and bytes.

pub mod battery;
pub mod decode;
pub mod synth;
