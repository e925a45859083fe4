//! Import sources in object storage: a manifest CSV or a folder tree of objects under a
//! bucket's prefix. The catalogue knows their URIs only as text (`s3://bucket/key`); reading,
//! listing and hashing the objects is the business of whoever calls
//! [`crate::Catalog::import_remote`], through [`RemoteObjects`].

use std::path::PathBuf;
use std::sync::Arc;

use rayon::prelude::*;

use crate::content::{ContentId, FileContent, hash_file};
use crate::error::CatalogError;

/// How an import reads objects it does not find on this machine. Every method blocks (it is
/// called from the import's reader thread).
pub trait RemoteObjects: Send + Sync {
    /// The URI of a path listed in the manifest at `manifest` (relative to the manifest's
    /// prefix, or a URI of its own), or why the path cannot name an object.
    fn resolve_listed(&self, manifest: &str, listed: &str) -> Result<String, String>;

    /// Those of `uris` that name no object.
    fn missing(&self, uris: &[String]) -> Result<Vec<String>, RemoteFailure>;

    /// Reads and hashes each object of `uris`, in order.
    fn hash(&self, uris: &[String]) -> Result<Vec<RemoteContent>, RemoteFailure>;
}

/// What reading one object gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteContent {
    Hashed {
        /// 64 lowercase hexadecimal digits.
        sha256: String,
        byte_size: u64,
    },
    /// The object cannot be used (missing or empty); `reason` names it. Recorded as a
    /// quarantined placeholder, like a missing file.
    Unreadable { reason: String },
}

/// A failure that stops the whole import (the server is down, the credentials are refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFailure {
    pub message: String,
    /// Whether the user's configuration is at fault, as opposed to the server or the network.
    pub bad_input: bool,
}

/// An import source in object storage.
#[derive(Debug, Clone)]
pub enum RemoteSource {
    /// The manifest at `uri`, read from `local_copy` (a copy of its bytes on this machine).
    Manifest { uri: String, local_copy: PathBuf },
    /// The folder tree `ROOT/<facet>/<label>/<image>` under `root` (a `scheme://bucket/prefix/`
    /// URI): the URIs of every object under it.
    Tree { root: String, objects: Vec<String> },
}

/// Where an import reads its images' bytes from.
#[derive(Clone)]
pub(crate) enum Contents {
    /// Files on this machine.
    Local,
    Remote(Arc<dyn RemoteObjects>),
}

impl Contents {
    /// The content of each of `uris`, in order: files hashed in parallel, objects through the
    /// remote reader.
    pub fn hash_all(&self, uris: &[String]) -> Result<Vec<FileContent>, CatalogError> {
        match self {
            Contents::Local => Ok(uris.par_iter().map(|uri| hash_file(uri)).collect()),
            Contents::Remote(remote) => {
                let hashed = remote.hash(uris).map_err(CatalogError::from)?;
                uris.iter()
                    .zip(hashed)
                    .map(|(uri, content)| remote_content(uri, content))
                    .collect()
            }
        }
    }
}

fn remote_content(uri: &str, content: RemoteContent) -> Result<FileContent, CatalogError> {
    Ok(match content {
        RemoteContent::Hashed { sha256, byte_size } => {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(&sha256, &mut digest).map_err(|_| {
                CatalogError::Interrupted(format!("{uri}: {sha256:?} is not a SHA-256"))
            })?;
            FileContent::Hashed {
                id: ContentId {
                    digest,
                    placeholder: false,
                },
                byte_size,
            }
        }
        RemoteContent::Unreadable { reason } => FileContent::Unreadable {
            id: ContentId::placeholder_for(uri),
            reason,
        },
    })
}

impl From<RemoteFailure> for CatalogError {
    fn from(failure: RemoteFailure) -> Self {
        CatalogError::Remote {
            message: failure.message,
            bad_input: failure.bad_input,
        }
    }
}
