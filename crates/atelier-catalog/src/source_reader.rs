//! Opening an import's source, a manifest CSV or a folder tree, and reading it in batches.

use std::path::Path;

use crate::error::CatalogError;
use crate::folder::FolderTree;
use crate::manifest::ManifestReader;
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
            let (plan, reader) = ManifestReader::open(&canonical, display, source)?;
            Ok((plan, SourceReader::Manifest(reader)))
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
