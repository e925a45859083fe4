//! Files shared with people outside atelier (crowd workers): put under a key below an S3
//! store's root, and handed out as a presigned GET link that expires. A local folder cannot
//! share, and says so.

use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::signer::{Method, Signer};
use object_store::{ObjectStoreExt, PutPayload};

use super::handle::ModelStore;
use crate::error::{StoreError, StoreResult};

impl ModelStore {
    /// Puts `bytes` at `key` (slash-separated, below the store's root) and returns a presigned
    /// link that reads it for `expires_in`.
    pub async fn share(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expires_in: Duration,
    ) -> StoreResult<String> {
        let Some(s3) = &self.backend.s3 else {
            return Err(StoreError::BadUrl {
                url: self.backend.url.clone(),
                reason: "only an S3 store can share files through presigned links; name an \
                         s3://bucket/prefix"
                    .into(),
            });
        };
        let location = key
            .split('/')
            .filter(|p| !p.is_empty())
            .fold(self.backend.root.clone(), |path: ObjectPath, part| {
                path.join(part)
            });
        self.backend
            .store
            .put(&location, PutPayload::from(bytes))
            .await
            .map_err(|e| self.error("sharing a file", e))?;
        let url = s3
            .signed_url(Method::GET, &location, expires_in)
            .await
            .map_err(|e| self.error("signing a link", e))?;
        Ok(url.to_string())
    }
}
