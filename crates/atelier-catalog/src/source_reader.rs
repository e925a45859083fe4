//! Opening an import's source, a manifest CSV or a folder tree, and reading it in batches.

use std::path::Path;
use std::sync::Arc;

use crate::error::CatalogError;
use crate::folder::FolderTree;
use crate::manifest::ManifestReader;
use crate::remote::{Contents, RemoteObjects, RemoteSource};
use crate::source::{BatchSender, SourcePlan, Stop};

/// The reader of one source: a manifest CSV or a folder tree.
pub(crate) enum SourceReader {
    Manifest(ManifestReader),
    Folder(FolderTree),
}

impl SourceReader {
    /// Opens `path` (blocking): a folder is read as a tree `ROOT/<facet>/<label>/<file>`,
    /// anything else as a manifest CSV.
    pub fn open(path: &Path) -> Result<(SourcePlan, SourceReader), CatalogError> {
        let canonical = std::fs::canonicalize(path).map_err(|source| CatalogError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let source = canonical
            .to_str()
            .ok_or_else(|| CatalogError::Source {
                location: path.display().to_string(),
                message: "the path is not valid UTF-8; rename it".to_string(),
            })?
            .to_string();
        let display = path.display().to_string();
        if canonical.is_dir() {
            let (plan, tree) = FolderTree::open(&canonical, display, source)?;
            Ok((plan, SourceReader::Folder(tree)))
        } else {
            let (plan, reader) =
                ManifestReader::open(&canonical, display, source, Contents::Local)?;
            Ok((plan, SourceReader::Manifest(reader)))
        }
    }

    /// Opens a source in object storage (blocking), read through `remote`.
    pub fn open_remote(
        source: &RemoteSource,
        remote: Arc<dyn RemoteObjects>,
    ) -> Result<(SourcePlan, SourceReader), CatalogError> {
        let contents = Contents::Remote(remote);
        match source {
            RemoteSource::Manifest { uri, local_copy } => {
                let (plan, reader) =
                    ManifestReader::open(local_copy, uri.clone(), uri.clone(), contents)?;
                Ok((plan, SourceReader::Manifest(reader)))
            }
            RemoteSource::Tree { root, objects } => {
                let (plan, tree) = FolderTree::from_listing(root, objects, contents);
                if tree.is_empty() {
                    return Err(CatalogError::Source {
                        location: root.clone(),
                        message: "no image objects at ROOT/<facet>/<label>/<image> under this \
                                  prefix; check the bucket and prefix"
                            .to_string(),
                    });
                }
                Ok((plan, SourceReader::Folder(tree)))
            }
        }
    }

    /// The rows' URIs of a manifest (blocking); a folder tree's come from its listing and are
    /// all present, so it gives none.
    pub fn listed_uris(&self, plan: &SourcePlan) -> Result<Vec<String>, CatalogError> {
        match self {
            SourceReader::Manifest(reader) => reader.listed_uris(plan),
            SourceReader::Folder(_) => Ok(Vec::new()),
        }
    }

    /// Reads, hashes and sends every row (blocking). Stops early when the receiver is gone.
    pub fn produce(self, plan: &SourcePlan, sender: &BatchSender) {
        let outcome = match self {
            SourceReader::Manifest(reader) => reader.produce(plan, sender),
            SourceReader::Folder(tree) => tree.produce(sender),
        };
        if let Err(Stop::Failed(error)) = outcome {
            // The receiver may already be gone; then nobody needs the error.
            let _ = sender.blocking_send(Err(error));
        }
    }
}
