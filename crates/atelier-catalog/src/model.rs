//! Public value types: what the catalogue takes in and hands out. All of them serialise with
//! serde so that the CLI can print them as JSON.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// Which database engine a [`crate::Catalog`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub use atelier_core::Split;

/// Lifecycle of an image. Only `Active` images are used for training and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    /// Cannot be used: the file is missing, empty or does not decode (see the reason).
    Quarantined,
    /// No longer listed by its import source; kept with its labels for history.
    Removed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Quarantined => "quarantined",
            Status::Removed => "removed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Progress of an import, reported after each chunk of rows is written.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ImportProgress {
    pub rows_done: u64,
    pub rows_total: u64,
}

/// Callback type for [`ImportOptions::on_progress`].
pub type ProgressFn = Arc<dyn Fn(ImportProgress) + Send + Sync>;

/// How [`crate::Catalog::import`] treats a source.
#[derive(Clone)]
pub struct ImportOptions {
    /// Share of images sent to the test split when the manifest does not say (0.0 to 1.0).
    pub test_fraction: f64,
    /// Accept labels an existing facet does not know yet, appending them to its label order.
    pub allow_new_labels: bool,
    /// Import even when more than [`ImportOptions::max_missing_share`] of the rows name
    /// missing, unreadable or empty files (they become quarantined placeholders).
    pub allow_missing: bool,
    /// Share of rows that may name missing files before the import is refused (0.0 to 1.0).
    pub max_missing_share: f64,
    /// Import even when it marks more than [`ImportOptions::max_removed_share`] of the source's
    /// images removed (the source no longer lists them).
    pub allow_removals: bool,
    /// Share of the source's images an import may mark removed before it is refused.
    pub max_removed_share: f64,
    /// Recorded as the actor of every label event the import writes.
    pub actor: String,
    pub on_progress: Option<ProgressFn>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            test_fraction: 0.1,
            allow_new_labels: false,
            allow_missing: false,
            max_missing_share: 0.1,
            allow_removals: false,
            max_removed_share: 0.2,
            actor: "import".to_string(),
            on_progress: None,
        }
    }
}

impl fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportOptions")
            .field("test_fraction", &self.test_fraction)
            .field("allow_new_labels", &self.allow_new_labels)
            .field("allow_missing", &self.allow_missing)
            .field("max_missing_share", &self.max_missing_share)
            .field("allow_removals", &self.allow_removals)
            .field("max_removed_share", &self.max_removed_share)
            .field("actor", &self.actor)
            .field("on_progress", &self.on_progress.as_ref().map(|_| "Fn"))
            .finish()
    }
}

/// What an import did. Every distinct image of the source lands in exactly one of
/// `added`, `updated`, `unchanged` or `quarantined`; `removed` counts images of the source
/// that the source no longer lists.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ImportReport {
    /// Canonical path of the manifest file or folder root (the images' `source`).
    pub source: String,
    /// Rows read (manifest rows, or image files in a folder tree).
    pub rows: u64,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub removed: u64,
    /// Rows whose file is missing, empty or unreadable (recorded under a placeholder id).
    pub quarantined: u64,
    /// Rows skipped because an earlier row has the same content.
    pub duplicates: u64,
    /// Labels the source would have changed but that a reviewer had set (source `review`):
    /// the reviewer's label is kept.
    pub kept_reviewed_labels: u64,
    /// Designs whose `variant_of` and `varied_facet` this import set, changed or cleared
    /// (sources with variant columns only).
    pub variants_updated: u64,
    pub warnings: Vec<String>,
}

/// Image counts per split.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct SplitCounts {
    pub train: u64,
    pub test: u64,
}

impl SplitCounts {
    pub fn total(&self) -> u64 {
        self.train + self.test
    }
}

/// One label of a facet with the number of active images carrying it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LabelSummary {
    pub label: String,
    pub counts: SplitCounts,
}

/// A facet with its labels in their stored order.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FacetSummary {
    pub name: String,
    pub labels: Vec<LabelSummary>,
}

impl FacetSummary {
    pub fn label_names(&self) -> Vec<&str> {
        self.labels.iter().map(|l| l.label.as_str()).collect()
    }
}

/// An image to be decoded by [`crate::Catalog::record_checks`]'s caller.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImageRef {
    pub id: String,
    pub uri: String,
    pub status: Status,
}

/// Size of an image that decoded.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct CheckedImage {
    pub width: u32,
    pub height: u32,
}

/// Result of decoding one image: its size, or why it cannot be used.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CheckOutcome {
    pub id: String,
    pub result: Result<CheckedImage, String>,
}

/// What [`crate::Catalog::record_checks`] changed.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CheckReport {
    /// Outcomes that were good (the image is active now, unless removed).
    pub ok: u64,
    /// Outcomes that were bad (the image is quarantined now, unless removed).
    pub bad: u64,
    /// Quarantined images that decode now and became active.
    pub reactivated: u64,
    /// Active images that failed and became quarantined.
    pub newly_quarantined: u64,
    /// Outcome ids that are not in the catalogue (nothing was recorded for them).
    pub unknown_ids: Vec<String>,
}

/// A quarantined image and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QuarantinedImage {
    pub id: String,
    pub uri: String,
    pub reason: String,
}

/// Catalogue-wide counts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CatalogSummary {
    pub backend: Backend,
    /// All images, whatever their status.
    pub images: u64,
    /// Active images per split.
    pub active: SplitCounts,
    /// Active images not yet decoded by a check.
    pub unchecked: u64,
    pub quarantined: SplitCounts,
    pub removed: SplitCounts,
    pub facets: u64,
    /// Distinct labels over all facets.
    pub labels: u64,
    /// (image, facet) label assignments on active images.
    pub assignments: u64,
    pub designs: u64,
    pub boxes: u64,
    pub label_events: u64,
}

/// One change of one label of one image.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LabelEvent {
    pub id: i64,
    pub image: String,
    pub facet: String,
    pub old_label: Option<String>,
    pub new_label: Option<String>,
    pub actor: String,
    pub source: String,
    pub reason: Option<String>,
    pub run_id: Option<i64>,
    /// UTC unix milliseconds.
    pub at: i64,
}

/// The current label of an image for one facet (`label` is `None` once cleared).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImageLabel {
    pub facet: String,
    pub label: Option<String>,
    pub source: String,
    /// Starts at 1 and grows by one on every change.
    pub version: i64,
    pub updated_at: i64,
}

/// A bounding box on an image, in the manifest's coordinates.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BoxRecord {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
    pub kind: String,
    pub source: String,
    /// Grows by one on each reviewer's change (imported boxes keep 1).
    pub version: i64,
    /// Who changed it last (reviewers' boxes only), and when.
    pub actor: Option<String>,
    pub updated_at: Option<i64>,
}

/// Everything the catalogue knows about one image. Timestamps are UTC unix milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ImageRecord {
    pub id: String,
    pub uri: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub byte_size: Option<u64>,
    pub split: Split,
    pub status: Status,
    pub quarantine_reason: Option<String>,
    pub source: String,
    pub design: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub checked_at: Option<i64>,
    /// Ordered by facet id (creation order).
    pub labels: Vec<ImageLabel>,
    pub boxes: Vec<BoxRecord>,
}
