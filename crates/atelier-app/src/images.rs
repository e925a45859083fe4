//! Catalogue images wherever they lie. A URI is a local path or an object in an S3 bucket
//! (`s3://bucket/key`); every use case that reads pixels asks the one [`ImageResolver`] for
//! local files first, a whole pass at a time, so objects are fetched several at a time into
//! the bounded image cache (`atelier-store`'s `images`) and checked against the hash the
//! catalogue recorded, and the decoding that follows reads local files only. Imports from
//! object storage ([`import`]) read and hash the objects through the same reader.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use atelier_catalog::{
    Catalog, ImportOptions, ImportReport, RemoteContent, RemoteFailure, RemoteObjects, RemoteSource,
};
use atelier_store::images::{
    ImageError, ImageReader, ImageRequest, ImageSettings, ObjectUri, is_remote, parse_size,
    resolve_listed,
};
use atelier_train::data::Example;

use crate::error::AppError;

/// The environment variable of the cache's size (`--cache-size` on the command line).
pub const CACHE_SIZE_ENV: &str = "ATELIER_IMAGE_CACHE_SIZE";

static RESOLVER: OnceLock<ImageResolver> = OnceLock::new();

/// Sets the process's image settings (the front end does, once, before any image is read);
/// `false` when images were already read with other settings.
pub fn configure(settings: ImageSettings) -> bool {
    RESOLVER.set(ImageResolver::new(settings)).is_ok()
}

/// The process's resolver: as configured, else the defaults with the cache size of
/// `ATELIER_IMAGE_CACHE_SIZE` when it is set and valid.
pub fn resolver() -> &'static ImageResolver {
    RESOLVER.get_or_init(|| {
        let mut settings = ImageSettings::default();
        if let Ok(text) = std::env::var(CACHE_SIZE_ENV) {
            match parse_size(&text) {
                Ok(size) => settings.cache_size = size,
                Err(e) => tracing::warn!("{CACHE_SIZE_ENV}: {e}; using the default size"),
            }
        }
        ImageResolver::new(settings)
    })
}

/// Makes catalogue images readable as local files.
#[derive(Clone)]
pub struct ImageResolver {
    reader: Arc<ImageReader>,
}

impl ImageResolver {
    pub fn new(settings: ImageSettings) -> ImageResolver {
        ImageResolver {
            reader: Arc::new(ImageReader::new(settings)),
        }
    }

    pub fn reader(&self) -> &ImageReader {
        &self.reader
    }

    /// A local file for each catalogue image `(uri, id)`, in order; the id is the SHA-256 the
    /// image was imported with. Each image fails on its own when it is missing or altered;
    /// the call fails when storage cannot be reached or the images do not fit in the cache.
    pub async fn resolve(
        &self,
        images: &[(&str, &str)],
    ) -> Result<Vec<Result<PathBuf, ImageError>>, AppError> {
        if !images.iter().any(|(uri, _)| is_remote(uri)) {
            return Ok(images
                .iter()
                .map(|(uri, _)| Ok(PathBuf::from(uri)))
                .collect());
        }
        let requests: Vec<ImageRequest> = images
            .iter()
            .map(|(uri, id)| ImageRequest {
                uri,
                sha256: Some(id),
            })
            .collect();
        let mut resolved = self.reader.resolve(&requests).await?;
        let shared = resolved
            .iter()
            .position(|r| r.as_ref().is_err_and(|e| !e.is_about_the_image()));
        if let Some(index) = shared
            && let Err(error) = resolved.swap_remove(index)
        {
            return Err(error.into());
        }
        Ok(resolved)
    }

    /// Points each example of a pass at a local file: objects are fetched into the cache
    /// first. An image that cannot be read fails the pass, naming it.
    pub async fn localise(&self, examples: &mut [Example]) -> Result<(), AppError> {
        let uris: Vec<String> = examples
            .iter()
            .map(|e| e.path.to_string_lossy().into_owned())
            .collect();
        if !uris.iter().any(|uri| is_remote(uri)) {
            return Ok(());
        }
        let images: Vec<(&str, &str)> = uris
            .iter()
            .zip(examples.iter())
            .map(|(uri, e)| (uri.as_str(), e.image_id.as_str()))
            .collect();
        let resolved = self.resolve(&images).await?;
        for (example, path) in examples.iter_mut().zip(resolved) {
            example.path = path?;
        }
        Ok(())
    }

    /// Local files for paths a person named (files, or `s3://` objects that need not be
    /// catalogued: fetched and kept by their content's hash), in order, each with the reason
    /// it cannot be read, if any (the path is then the one given). Storage that cannot be
    /// reached fails the call.
    pub async fn localise_given(
        &self,
        paths: &[PathBuf],
    ) -> Result<Vec<(PathBuf, Option<String>)>, AppError> {
        let texts: Vec<String> = paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if !texts.iter().any(|text| is_remote(text)) {
            return Ok(paths.iter().map(|p| (p.clone(), None)).collect());
        }
        let requests: Vec<ImageRequest> = texts
            .iter()
            .map(|uri| ImageRequest { uri, sha256: None })
            .collect();
        let mut localised = Vec::with_capacity(paths.len());
        for (given, result) in paths.iter().zip(self.reader.resolve(&requests).await?) {
            localised.push(match result {
                Ok(path) => (path, None),
                Err(error) if error.is_about_the_image() => {
                    (given.clone(), Some(error.to_string()))
                }
                Err(error) => return Err(error.into()),
            });
        }
        Ok(localised)
    }
}

/// Synchronises the catalogue with `source`: a local manifest or folder tree as
/// [`Catalog::import`] reads it, or an `s3://bucket/key` manifest or `s3://bucket/prefix/`
/// folder tree read through `resolver` (the objects it hashes land in the image cache).
pub async fn import(
    catalog: &Catalog,
    source: &str,
    opts: &ImportOptions,
    resolver: &ImageResolver,
) -> Result<ImportReport, AppError> {
    if !is_remote(source) {
        return Ok(catalog.import(Path::new(source), opts).await?);
    }
    let uri = ObjectUri::parse(source)?;
    let copy = tempfile::tempdir().map_err(|e| AppError::io(&std::env::temp_dir(), e))?;
    let remote_source = remote_source(&uri, resolver, copy.path()).await?;
    let remote = Arc::new(S3Objects {
        reader: resolver.reader.clone(),
        runtime: tokio::runtime::Handle::current(),
    });
    Ok(catalog.import_remote(remote_source, remote, opts).await?)
}

/// A manifest when `uri` names an object, else the folder tree under it as a prefix.
async fn remote_source(
    uri: &ObjectUri,
    resolver: &ImageResolver,
    copy_dir: &Path,
) -> Result<RemoteSource, AppError> {
    if !uri.key.is_empty() && !uri.key.ends_with('/') {
        match resolver.reader.fetch(&uri.to_uri()).await {
            Ok(bytes) => {
                let local_copy = copy_dir.join("manifest.csv");
                std::fs::write(&local_copy, bytes).map_err(|e| AppError::io(&local_copy, e))?;
                return Ok(RemoteSource::Manifest {
                    uri: uri.to_uri(),
                    local_copy,
                });
            }
            Err(ImageError::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let root = ObjectUri {
        bucket: uri.bucket.clone(),
        key: match uri.key.trim_end_matches('/') {
            "" => String::new(),
            key => format!("{key}/"),
        },
    };
    let objects: Vec<String> = resolver
        .reader
        .list(&root)
        .await?
        .into_iter()
        .map(|(uri, _)| uri)
        .collect();
    if objects.is_empty() {
        return Err(AppError::Invalid(format!(
            "{}: no such object, and no objects under {}; check the bucket and the key",
            uri.to_uri(),
            root.to_uri()
        )));
    }
    Ok(RemoteSource::Tree {
        root: root.to_uri(),
        objects,
    })
}

/// The catalogue's view of S3 during an import: blocking calls into the async reader.
struct S3Objects {
    reader: Arc<ImageReader>,
    runtime: tokio::runtime::Handle,
}

impl RemoteObjects for S3Objects {
    fn resolve_listed(&self, manifest: &str, listed: &str) -> Result<String, String> {
        let manifest = ObjectUri::parse(manifest).map_err(|e| e.to_string())?;
        let base = ObjectUri {
            key: manifest.parent_prefix(),
            bucket: manifest.bucket,
        };
        resolve_listed(&base, listed)
    }

    fn missing(&self, uris: &[String]) -> Result<Vec<String>, RemoteFailure> {
        let mut present = std::collections::HashSet::new();
        for prefix in common_prefixes(uris) {
            let listed = self
                .runtime
                .block_on(self.reader.list(&prefix))
                .map_err(failure)?;
            present.extend(listed.into_iter().map(|(uri, _)| uri));
        }
        Ok(uris
            .iter()
            .filter(|uri| !present.contains(*uri))
            .cloned()
            .collect())
    }

    fn hash(&self, uris: &[String]) -> Result<Vec<RemoteContent>, RemoteFailure> {
        let fetched = self
            .runtime
            .block_on(self.reader.fetch_hashed_many(uris))
            .map_err(failure)?;
        uris.iter()
            .zip(fetched)
            .map(|(uri, result)| match result {
                Ok(object) if object.byte_size == 0 => Ok(RemoteContent::Unreadable {
                    reason: format!("object is empty (0 bytes): {uri}"),
                }),
                Ok(object) => Ok(RemoteContent::Hashed {
                    sha256: object.sha256,
                    byte_size: object.byte_size,
                }),
                Err(ImageError::NotFound { .. }) => Ok(RemoteContent::Unreadable {
                    reason: format!("object not found: {uri}"),
                }),
                Err(error) => Err(failure(error)),
            })
            .collect()
    }
}

fn failure(error: ImageError) -> RemoteFailure {
    RemoteFailure {
        bad_input: error.is_bad_input(),
        message: error.to_string(),
    }
}

/// One prefix per bucket that holds every key of `uris` there: the longest common run of
/// whole folder names.
fn common_prefixes(uris: &[String]) -> Vec<ObjectUri> {
    let mut prefixes: Vec<ObjectUri> = Vec::new();
    for uri in uris.iter().filter_map(|u| ObjectUri::parse(u).ok()) {
        let folder = uri.parent_prefix();
        match prefixes.iter_mut().find(|p| p.bucket == uri.bucket) {
            Some(prefix) => {
                while !folder.starts_with(&prefix.key) {
                    let shorter = prefix.key.trim_end_matches('/');
                    prefix.key = match shorter.rfind('/') {
                        Some(end) => shorter[..=end].to_string(),
                        None => String::new(),
                    };
                }
            }
            None => prefixes.push(ObjectUri {
                bucket: uri.bucket,
                key: folder,
            }),
        }
    }
    prefixes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefixes_keep_whole_folder_names() {
        let uris: Vec<String> = [
            "s3://a/shop/2024/img/1.jpg",
            "s3://a/shop/2024/img2/2.jpg",
            "s3://b/x.jpg",
            "s3://a/shop/2024/img/sub/3.jpg",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let prefixes = common_prefixes(&uris);
        assert_eq!(
            prefixes,
            vec![
                ObjectUri {
                    bucket: "a".into(),
                    key: "shop/2024/".into()
                },
                ObjectUri {
                    bucket: "b".into(),
                    key: String::new()
                },
            ]
        );
    }
}
