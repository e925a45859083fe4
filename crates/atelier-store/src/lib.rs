//! Owns atelier's object storage: the model store (versioned, checksummed models in a local
//! folder or an S3 bucket) and the catalogue's images in S3 buckets, read through a bounded,
//! content-addressed local cache ([`images`]).
//!
//! Both kinds of store go through one code path (the `object_store` crate). This crate owns the
//! store's layout, publishing (atomic: parts first, the manifest with every part's size and
//! SHA-256 last, versions reserved with create-if-absent puts so that concurrent publishers
//! never collide), tags, removal, verified downloads and the local cache of pulled models (one
//! folder per manifest hash). It is format-agnostic: a model is a flat folder of named files
//! plus free JSON metadata; what the files mean is `atelier-train`'s business, and which store
//! to use is the command line's.
//!
//! Modules: `location` parses `--store` and opens the backend, `reference` parses model
//! references (`NAME`, `NAME@VERSION`, `NAME:TAG`), `error` classifies failures, and `store`
//! holds the operations (its own docs give the layout and its module map). `images` reads
//! `s3://bucket/key` images with the same S3 configuration and keeps their copies.

mod error;
pub mod images;
mod location;
mod reference;
mod store;

pub use error::{StoreError, StoreResult};
pub use location::{RetryPolicy, StoreLocation};
pub use reference::{ModelRef, Selector, check_name, check_tag};
pub use store::{
    FolderMirror, MANIFEST_FILE, Manifest, ModelInfo, ModelStore, Part, PublishStep, Pulled,
    StoreOptions, VersionInfo, default_cache_dir,
};

/// The object-store crate this store is built on, for tests and tools that look under the hood.
pub use object_store;
