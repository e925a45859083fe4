//! What reading an image through object storage and the local cache can fail with. Transport
//! failures are sorted with the store's own classification, so an image that cannot be read
//! says whether the server is down, refuses the credentials, or lacks the object.

use std::path::PathBuf;

use crate::error::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{uri}: {reason}")]
    BadUri { uri: String, reason: String },

    /// S3 cannot be configured (the reason names the setting and the fix).
    #[error("{uri}: {reason}")]
    Config { uri: String, reason: String },

    #[error("{uri} does not exist: upload it there, or import a manifest that does not list it")]
    NotFound { uri: String },

    #[error(
        "{uri} changed since import (its SHA-256 is {actual}, the catalogue recorded \
         {expected}); run `atelier import` again"
    )]
    Changed {
        uri: String,
        expected: String,
        actual: String,
    },

    #[error(
        "cannot read {uri}: S3 is unreachable ({detail}); gave up after retrying. Is the \
         server running, and is AWS_ENDPOINT_URL right?"
    )]
    Unavailable { uri: String, detail: String },

    #[error(
        "S3 refused to read {uri} ({detail}): check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY \
         and AWS_REGION, and that they may read the bucket"
    )]
    Denied { uri: String, detail: String },

    #[error("{uri}: {operation} failed: {detail}")]
    Backend {
        uri: String,
        operation: String,
        detail: String,
    },

    #[error("image cache {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// One pass needs more photos at once than the cache may hold.
    #[error(
        "this pass reads {needed} bytes of photos from object storage, more than the image \
         cache may hold ({limit} bytes); raise --cache-size (ATELIER_IMAGE_CACHE_SIZE) to at \
         least {needed}"
    )]
    CacheTooSmall { needed: u64, limit: u64 },
}

impl ImageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ImageError::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether the user's input or configuration is at fault (the fix is theirs), as opposed
    /// to the server, the network or this machine.
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            ImageError::Unavailable { .. } | ImageError::Backend { .. } | ImageError::Io { .. }
        )
    }

    /// Whether this one image cannot be used (missing or altered), as opposed to a failure
    /// that would hit every image alike.
    pub fn is_about_the_image(&self) -> bool {
        matches!(
            self,
            ImageError::NotFound { .. } | ImageError::Changed { .. } | ImageError::BadUri { .. }
        )
    }

    /// Classifies an object-store failure on `uri` with the store's rules.
    pub(crate) fn backend(uri: &str, operation: &str, source: object_store::Error) -> Self {
        if let object_store::Error::NotFound { .. } = source {
            return ImageError::NotFound {
                uri: uri.to_string(),
            };
        }
        let uri = uri.to_string();
        match StoreError::backend(&uri, operation, source) {
            StoreError::Denied { detail, .. } => ImageError::Denied { uri, detail },
            StoreError::Unavailable { detail, .. } => ImageError::Unavailable { uri, detail },
            StoreError::Backend { detail, .. } => ImageError::Backend {
                uri,
                operation: operation.to_string(),
                detail,
            },
            other => ImageError::Backend {
                uri,
                operation: operation.to_string(),
                detail: other.to_string(),
            },
        }
    }
}
