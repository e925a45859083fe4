//! The model store proper: publishing a folder as `NAME@VERSION`, listing, pulling into the
//! local cache with verification, tags, removal.
//!
//! Layout under the store's root (the same keys on a local folder and in a bucket):
//!
//! ```text
//! NAME/VERSION/claim.json      reserves VERSION (written first, create-if-absent)
//! NAME/VERSION/<part>          the model's files
//! NAME/VERSION/manifest.json   written last, create-if-absent: the version exists once it does
//! NAME/tags/TAG.json           {"version": N}, overwritten by promote
//! _mirrors/KEY/...             folders mirrored as they are (a run's checkpoints: `mirror`)
//! KEY                           files shared through presigned links (`share`, S3 only)
//! ```
//!
//! A publisher takes the version after the highest it sees and claims it with a
//! create-if-absent put; when another publisher got there first it claims the next one, so
//! concurrent publishers never share a version and never overwrite each other's parts. Readers
//! only see versions whose manifest exists, so an interrupted publish leaves nothing visible
//! (its claim stays, and keeps that number from being reused).
//!
//! Module map, each operation module one `impl ModelStore` block: `format` (keys, the
//! manifest and its checks, digests and stamps; depends on no other module here) and `handle`
//! (the `ModelStore` type, opening, scanning a name's keys, reading a manifest, error
//! reporting) are what the operations share; `tags` lists, reads and promotes tags; `read`
//! lists names and versions and resolves references (using `tags`); `publish` claims,
//! uploads and writes the manifest; `pull` downloads into the cache and reads parts, verified
//! (using `read`); `remove` deletes a version (using `tags`); `mirror` keeps copies of
//! folders that are not models (a run's checkpoints).

mod format;
mod handle;
mod mirror;
mod publish;
mod pull;
mod read;
mod remove;
mod share;
mod tags;

pub use format::{MANIFEST_FILE, Manifest, Part};
pub(crate) use handle::cache_folder;
pub use handle::{ModelStore, StoreOptions, default_cache_dir};
pub use mirror::FolderMirror;
pub use publish::PublishStep;
pub use pull::Pulled;
pub use read::{ModelInfo, VersionInfo};
