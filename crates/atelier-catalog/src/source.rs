//! Import sources: a manifest CSV or a folder tree, read on a blocking thread and handed to the
//! database writer as chunks of hashed rows, so memory stays bounded by the chunk size.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use crate::content::FileContent;
use crate::error::CatalogError;
use crate::model::Split;

/// Rows per chunk: hashed in parallel, then written with a few multi-row statements.
pub(crate) const CHUNK_ROWS: usize = 2_000;

/// Where a row came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    Line(u64),
    File(String),
}

/// A box in manifest coordinates: x0, y0, x1, y1.
pub type BoxCoords = [f64; 4];

/// One image as the source describes it.
#[derive(Debug, Clone)]
pub(crate) struct SourceRow {
    pub origin: Origin,
    /// Absolute path of the file.
    pub uri: String,
    pub content: FileContent,
    /// The split the source asks for, if any.
    pub split: Option<Split>,
    /// One entry per facet of [`SourcePlan::facets`]; `None` means "no label".
    pub labels: Vec<Option<String>>,
    /// Only meaningful when [`SourcePlan::has_boxes`].
    pub bbox: Option<BoxCoords>,
    /// Only meaningful when [`SourcePlan::has_design`].
    pub design: Option<String>,
    /// Only meaningful when [`SourcePlan::has_variants`]; then `None` means "varies no design".
    pub variant: Option<Variant>,
}

/// What a row says its design varies: another design, in one facet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Variant {
    /// The design varied.
    pub of: String,
    /// The facet the variant changes.
    pub facet: String,
}

/// What a source covers, known before its rows are read.
#[derive(Debug, Clone)]
pub(crate) struct SourcePlan {
    /// The path as the caller gave it, for messages.
    pub display: String,
    /// Canonical absolute path: the `source` of every image it lists.
    pub source: String,
    pub is_manifest: bool,
    /// Facets this source sets; for these, a missing label clears the stored one.
    pub facets: Vec<String>,
    pub has_boxes: bool,
    pub has_design: bool,
    /// The source says which design each listed design varies (`variant_of`, `varied_facet`).
    pub has_variants: bool,
    pub rows_total: u64,
}

impl SourcePlan {
    /// `manifest.csv line 17, column split`, or the file path for folder trees.
    pub fn location(&self, origin: &Origin, column: Option<&str>) -> String {
        match (origin, column) {
            (Origin::Line(line), Some(column)) => {
                format!("{} line {line}, column {column}", self.display)
            }
            (Origin::Line(line), None) => format!("{} line {line}", self.display),
            (Origin::File(path), _) => path.clone(),
        }
    }
}

/// A chunk of rows plus anything the reader wants to tell the user.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub rows: Vec<SourceRow>,
    pub warnings: Vec<String>,
    /// Files skipped because an earlier one has the same content.
    pub duplicates: u64,
}

pub(crate) type BatchSender = mpsc::Sender<Result<Batch, CatalogError>>;

/// Joins a listed path onto the folder of its manifest and normalises it lexically.
pub(crate) fn resolve_listed_path(base: &Path, listed: &str) -> PathBuf {
    let listed = Path::new(listed);
    let joined = if listed.is_absolute() {
        listed.to_path_buf()
    } else {
        base.join(listed)
    };
    crate::url::normalize(&joined)
}

/// Why a reader stopped before the end.
pub(crate) enum Stop {
    /// The writer hung up (it failed, or the import was dropped): stop quietly.
    ReceiverGone,
    Failed(CatalogError),
}

impl From<CatalogError> for Stop {
    fn from(error: CatalogError) -> Stop {
        Stop::Failed(error)
    }
}

pub(crate) fn send(sender: &BatchSender, batch: Batch) -> Result<(), Stop> {
    sender
        .blocking_send(Ok(batch))
        .map_err(|_| Stop::ReceiverGone)
}
