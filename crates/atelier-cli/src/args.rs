//! The command-line surface. Scripts depend on these names: change them only with care.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "atelier",
    version,
    about = "Tag dress photos by facet, review the tags, find similar dresses."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Catalogue database: sqlite://FILE (created if missing) or postgres://USER@HOST/DB.
    /// Default: sqlite://atelier.db in the current folder.
    #[arg(long, env = "ATELIER_DB", global = true)]
    pub db: Option<String>,
    /// Model store: a folder, file:///abs/path or s3://bucket/prefix.
    #[arg(
        long,
        env = "ATELIER_STORE",
        global = true,
        default_value = "file://./models"
    )]
    pub store: String,
    /// Print machine-readable JSON on stdout instead of text (and no progress bars).
    #[arg(long, global = true)]
    pub json: bool,
}

impl GlobalArgs {
    pub const DEFAULT_DB: &'static str = "sqlite://atelier.db";

    pub fn db_url(&self) -> &str {
        self.db.as_deref().unwrap_or(Self::DEFAULT_DB)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render synthetic dress photographs with known facets, boxes and designs.
    Synth(SynthArgs),
    /// Import (synchronise) a manifest CSV or a ROOT/<facet>/<label>/<image> folder tree.
    Import(ImportArgs),
    /// Decode every catalogued image, record its size, and quarantine unusable files.
    Check(CheckArgs),
    /// List facets with their ordered labels and counts per split, or set a label order.
    Facets(FacetsArgs),
    /// Show the catalogue's counts by status, split and facet.
    Summary,
    /// Run the whole loop on synthetic data: synth → import → check → summary.
    Demo(DemoArgs),
    /// Obtain pretrained weights (through pip's own client) into a local cache.
    Weights(WeightsArgs),
    /// Backbone diagnostics.
    Backbone(BackboneArgs),
}

#[derive(Debug, Args)]
pub struct WeightsArgs {
    #[command(subcommand)]
    pub action: WeightsAction,
}

#[derive(Debug, Subcommand)]
pub enum WeightsAction {
    /// Download, verify (pinned SHA-256) and cache a weights file; prints where it is.
    Fetch {
        /// Which weights: efficientnet-lite0.
        name: String,
        /// Cache folder (default: $ATELIER_WEIGHTS_DIR, else ~/.cache/atelier/weights).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct BackboneArgs {
    #[command(subcommand)]
    pub action: BackboneAction,
}

#[derive(Debug, Subcommand)]
pub enum BackboneAction {
    /// Print the ImageNet top-5 of each image: proves pretrained weights were imported right.
    Predict {
        /// Backbone architecture: efficientnet-lite0.
        #[arg(long, default_value = "efficientnet-lite0")]
        backbone: String,
        /// Weights file (.pth or .safetensors); default: the cached `atelier weights fetch` file.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Image files.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output folder (images/, manifest.csv, truth.csv).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 2000)]
    pub count: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Image side in pixels.
    #[arg(long, default_value_t = 256)]
    pub size: u32,
    /// Fraction of facet labels to replace by another value in manifest.csv (truth.csv keeps
    /// the clean ones).
    #[arg(long, default_value_t = 0.0)]
    pub label_noise: f64,
    /// Also write a captioned grid, one row per facet value, to this PNG.
    #[arg(long)]
    pub preview: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A manifest CSV (path,split,<facet>...,x0,y0,x1,y1,design) or a folder tree.
    pub path: PathBuf,
    /// Fraction of new images assigned to the test split when the manifest gives none.
    #[arg(long, default_value_t = 0.1)]
    pub test_fraction: f64,
    /// Accept labels unknown to an existing facet (appended to the end of its order).
    #[arg(long)]
    pub allow_new_labels: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Largest accepted width or height in pixels (guards against decompression bombs).
    #[arg(long, default_value_t = 16_384)]
    pub max_side: u32,
    /// Largest accepted width × height in pixels.
    #[arg(long, default_value_t = 100_000_000)]
    pub max_pixels: u64,
    /// Smallest accepted width or height in pixels.
    #[arg(long, default_value_t = 8)]
    pub min_side: u32,
}

#[derive(Debug, Args)]
pub struct FacetsArgs {
    #[command(subcommand)]
    pub action: Option<FacetsAction>,
}

#[derive(Debug, Subcommand)]
pub enum FacetsAction {
    /// Store the label order that every report, model head and output uses.
    Order {
        facet: String,
        /// All of the facet's labels, comma-separated, in the new order.
        labels: String,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Working folder for the synthetic photos and (unless --db is given) the catalogue.
    #[arg(long, default_value = "atelier-demo")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 3000)]
    pub count: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[arg(long, default_value_t = 256)]
    pub size: u32,
}
