//! The command-line surface. Scripts depend on these names: change them only with care.

use std::path::PathBuf;

use atelier_train::config::{HeadKind, Recipe};
use atelier_train::loss::ClassWeighting;
use atelier_train::metric::Mining;
use atelier_train::schedule::{OptimizerChoice, Schedule};
use atelier_train::{BackboneChoice, DeviceChoice};
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
        default_value = GlobalArgs::DEFAULT_STORE
    )]
    pub store: String,
    /// Print machine-readable JSON on stdout instead of text (and no progress bars).
    #[arg(long, global = true)]
    pub json: bool,
    /// Most bytes the local cache of catalogue images read from S3 keeps (500MB, 2GiB, ...);
    /// the least recently used are evicted beyond it.
    #[arg(
        long,
        env = "ATELIER_IMAGE_CACHE_SIZE",
        global = true,
        default_value = "2GiB",
        value_parser = parse_cache_size
    )]
    pub cache_size: u64,
    /// Folder of the image cache (default: ~/.cache/atelier/images).
    #[arg(long, env = "ATELIER_IMAGE_CACHE", global = true)]
    pub image_cache: Option<PathBuf>,
}

fn parse_cache_size(text: &str) -> Result<u64, String> {
    atelier_store::images::parse_size(text)
}

impl GlobalArgs {
    pub const DEFAULT_DB: &'static str = "sqlite://atelier.db";
    pub const DEFAULT_STORE: &'static str = "file://./models";

    pub fn db_url(&self) -> &str {
        self.db.as_deref().unwrap_or(Self::DEFAULT_DB)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render synthetic dress photographs with known facets, boxes and designs.
    Synth(SynthArgs),
    /// Import (synchronise) a manifest CSV or a ROOT/<facet>/<label>/<image> folder tree (a
    /// path, or s3://BUCKET/KEY).
    Import(ImportArgs),
    /// Decode every catalogued image, record its size, and quarantine unusable files.
    Check(CheckArgs),
    /// List facets with their ordered labels and counts per split, or set a label order.
    Facets(FacetsArgs),
    /// Show the catalogue's counts by status, split and facet.
    Summary,
    /// Run the whole loop on synthetic data: synth, import, check, train, tag, serve.
    Demo(DemoArgs),
    /// Obtain pretrained weights (through pip's own client) into a local cache.
    Weights(WeightsArgs),
    /// Backbone diagnostics.
    Backbone(BackboneArgs),
    /// The devices this build can run networks on (cpu, cuda, vulkan) and whether this
    /// machine has them.
    Devices,
    /// Train a model (`atelier train facets ...`, `atelier train similarity ...`).
    Train(TrainArgs),
    /// Dresses most similar to a photo, with facet filters, or the same dress with another
    /// facet (`--swap`).
    Similar(SimilarArgs),
    /// List catalogue images a page at a time, filtered by current labels, split, status,
    /// design and review.
    Images(ImagesArgs),
    /// Dress boxes: show an image's, set one as a reviewer, or list those the locator was
    /// least sure of.
    Boxes(BoxesArgs),
    /// Near-duplicate photos (trained embeddings above a threshold), grouped, and reviewers'
    /// verdicts on them.
    Duplicates(DuplicatesArgs),
    /// Bring a similarity run's embeddings in step with the catalogue (new, removed,
    /// quarantined photos).
    Index(IndexArgs),
    /// Train a new run with a run's stored options on the catalogue's current labels.
    Retrain(RetrainArgs),
    /// A run's likely mistagged images (confident learning on out-of-sample predictions),
    /// largest margin first.
    Mistags(MistagsArgs),
    /// List training runs, newest first.
    Runs,
    /// Print a run's per-class precision, recall and F1 tables (or its predictions).
    Eval(EvalArgs),
    /// Tag image files with a trained model.
    Tag(TagArgs),
    /// Locate the dress in photo files with a similarity run's model, and cut it out.
    Crop(CropArgs),
    /// Published models in the store (--store): list, show, push, pull, promote, rm.
    Models(ModelsArgs),
    /// The review web app: runs, F1 views, false negatives/positives, mistags, retagging.
    Serve(ServeArgs),
    /// Who may log in to the web app: add, list, role, password, remove.
    Users(UsersArgs),
    /// Take queued jobs (training, indexing, checks) from the catalogue and do them, one at a
    /// time, until stopped: run one per machine, as many machines as you like.
    Worker(WorkerArgs),
    /// The catalogue's job queue: list, show, cancel, retry.
    Jobs(JobsArgs),
    /// Crowd retagging: export labelling tasks in Mechanical Turk's format, import the
    /// answers, list batches.
    Crowd(CrowdArgs),
}

#[derive(Debug, Args)]
pub struct CrowdArgs {
    #[command(subcommand)]
    pub action: CrowdAction,
}

#[derive(Debug, Subcommand)]
pub enum CrowdAction {
    /// Choose tasks from a run's predictions, record the batch, and write `tasks.csv` (Mechanical
    /// Turk's bulk upload) and `question.html` (the question template) into --out.
    Export(CrowdExportArgs),
    /// Read Mechanical Turk's batch-results CSV into votes (bad rows are named by line and
    /// skipped; reading a file twice adds nothing).
    Import { file: PathBuf },
    /// The batches, newest first, with their tasks and votes.
    Batches,
    /// Write a results file as Mechanical Turk would return it, answered by a simulated crowd
    /// (30 workers with known confusion, two spammers and an adversary) from the clean labels
    /// that `atelier import --truth` stored: the crowd loop without Mechanical Turk.
    Simulate {
        batch: i64,
        /// Workers a task.
        #[arg(long, default_value_t = 3)]
        votes: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// The results file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// A batch's votes aggregated per facet: Dawid–Skene's label and posterior per task (with
    /// majority vote's), and per worker the estimated accuracy, gold accuracy and agreement.
    Aggregate { batch: i64 },
    /// Change the labels where the aggregated label differs from the current one with at least
    /// this posterior (a `crowd` label event each, never over a label changed since the
    /// export); lists the disputed tasks below it.
    Apply {
        batch: i64,
        #[arg(long, default_value_t = 0.9)]
        min_posterior: f64,
        /// Who applies it (recorded with each label event).
        #[arg(long = "as", value_name = "USER", default_value = "crowd")]
        actor: String,
    },
}

/// `atelier crowd export`: which tasks, how many votes and gold questions, how workers see
/// the photos, and where the files go.
#[derive(Debug, Args)]
pub struct CrowdExportArgs {
    #[arg(long)]
    pub run: i64,
    /// Only this facet (default: every facet of the run).
    #[arg(long)]
    pub facet: Option<String>,
    /// Where the tasks come from.
    #[arg(long, value_enum, default_value = "mistags")]
    pub from: TaskSourceArg,
    /// With false-negatives / false-positives: only this label.
    #[arg(long)]
    pub label: Option<String>,
    /// Most tasks besides the gold questions.
    #[arg(long, default_value_t = 500)]
    pub limit: usize,
    /// Workers asked per task.
    #[arg(long, default_value_t = 3)]
    pub votes: i64,
    /// Share of the batch that is gold questions (labels reviewers set).
    #[arg(long, default_value_t = 0.1)]
    pub gold: f64,
    /// The address workers reach `atelier serve` at; image URLs are signed links below it.
    #[arg(
        long,
        required_unless_present = "publish_images",
        conflicts_with = "publish_images"
    )]
    pub base_url: Option<String>,
    /// Instead: copy the photos to this S3 store (`s3://bucket/prefix`) and link them with
    /// presigned URLs (the app need not be reachable by workers).
    #[arg(long, value_name = "S3_URL")]
    pub publish_images: Option<String>,
    /// Days the image URLs stay valid.
    #[arg(long, default_value_t = 14)]
    pub expires_days: u64,
    /// The folder to write the two files into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

/// Where exported tasks come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskSourceArg {
    Mistags,
    FalseNegatives,
    FalsePositives,
    All,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The kinds of job to take (default: every kind).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub kinds: Vec<JobKindArg>,
    /// This machine's folder for the checkpoints of the runs it trains (they are kept in the
    /// store too, so that any worker can resume them).
    #[arg(long, default_value = "checkpoints")]
    pub checkpoint_dir: PathBuf,
    /// Exit once no job is left instead of waiting for more.
    #[arg(long)]
    pub until_idle: bool,
    /// The device this worker trains on: it takes the runs recorded for it (`--device` of
    /// `train`) and every job that needs no device.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Seconds an idle worker waits before it looks again (PostgreSQL also wakes it at once
    /// when a job is queued).
    #[arg(long, default_value_t = 2.0)]
    pub poll: f64,
    #[command(flatten)]
    pub ann: AnnArgs,
}

/// A kind of job, as `--kinds` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JobKindArg {
    Train,
    Index,
    Check,
    Import,
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub action: JobsAction,
}

#[derive(Debug, Subcommand)]
pub enum JobsAction {
    /// Jobs, newest first.
    List {
        /// Only jobs in this status.
        #[arg(long, value_enum)]
        status: Option<JobStatusArg>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One job: its parameters, worker, attempts, progress, result or error.
    Show { job: i64 },
    /// Cancel a queued job, or ask a running one to stop (its worker stops at its next
    /// heart-beat; a training run keeps its checkpoints and is marked failed).
    Cancel {
        job: i64,
        /// Who cancels it (a user name, recorded with the job).
        #[arg(long = "as", value_name = "USER", default_value = "cli")]
        actor: String,
    },
    /// Queue a failed or cancelled job again (a training job resumes from its checkpoints).
    Retry { job: i64 },
}

/// A job status, as `--status` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JobStatusArg {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// HOST:PORT to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Where the app's own worker keeps the checkpoints of the runs it trains (they are kept
    /// in the store too).
    #[arg(long, default_value = "checkpoints")]
    pub checkpoint_dir: PathBuf,
    /// Where thumbnails are kept (default: ~/.cache/atelier/thumbnails).
    #[arg(long)]
    pub thumbnail_cache: Option<PathBuf>,
    /// Mark cookies `Secure` (browsers then send them over HTTPS only): for an app reached
    /// over HTTPS.
    #[arg(long)]
    pub secure_cookies: bool,
    /// The app runs behind a reverse proxy it trusts: take the client address from the last
    /// entry of X-Forwarded-For, and mark cookies Secure when X-Forwarded-Proto is https. Only
    /// with an --addr that the proxy alone can reach.
    #[arg(long)]
    pub behind_proxy: bool,
    /// Leave the job queue to separate workers (`atelier worker`) instead of working it in
    /// this process: for several app instances, or training on other machines.
    #[arg(long)]
    pub no_worker: bool,
    #[command(flatten)]
    pub ann: AnnArgs,
}

#[derive(Debug, Args)]
pub struct BoxesArgs {
    #[command(subcommand)]
    pub action: BoxesAction,
}

#[derive(Debug, Subcommand)]
pub enum BoxesAction {
    /// An image's current dress box, where the newest similarity model located the dress, and
    /// the box's changes.
    Show { image: String },
    /// Set an image's dress box (pixels); the next similarity run's locator learns from it.
    Set {
        image: String,
        x0: f64,
        y0: f64,
        x1: f64,
        y1: f64,
        /// The box version you saw (`boxes show`; 0 while the box is the imported one).
        #[arg(long)]
        version: i64,
        /// Who makes the change (a user name).
        #[arg(long = "as", value_name = "USER")]
        actor: String,
    },
    /// The boxes a similarity run's locator was least sure of, least sure first (boxes a
    /// reviewer has set are left out).
    Unsure {
        /// The similarity run (default: the newest completed one).
        #[arg(long)]
        run: Option<i64>,
        /// Page to show, from 1.
        #[arg(long, default_value_t = 1)]
        page: usize,
        /// Boxes per page.
        #[arg(long, default_value_t = 20)]
        per_page: usize,
    },
}

#[derive(Debug, Args)]
pub struct DuplicatesArgs {
    #[command(subcommand)]
    pub action: DuplicatesAction,
}

#[derive(Debug, Subcommand)]
pub enum DuplicatesAction {
    /// Groups of photos joined by pairs that score at least the threshold, closest first.
    List {
        /// The similarity run (default: the newest completed one).
        #[arg(long)]
        run: Option<i64>,
        /// Lowest cosine similarity of a pair (default 0.95).
        #[arg(long)]
        threshold: Option<f32>,
        /// Only pairs no reviewer has decided.
        #[arg(long)]
        undecided: bool,
        /// Page to show, from 1.
        #[arg(long)]
        page: Option<usize>,
        /// Groups per page.
        #[arg(long)]
        per_page: Option<usize>,
        #[command(flatten)]
        ann: AnnArgs,
    },
    /// Store a verdict on two photos: `same` (one product: the next similarity run learns them
    /// as one design) or `different`.
    Mark {
        a: String,
        b: String,
        #[arg(value_enum)]
        verdict: VerdictArg,
        /// Who decides (a user name).
        #[arg(long = "as", value_name = "USER")]
        actor: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum VerdictArg {
    Same,
    Different,
}

#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    pub action: UsersAction,
}

#[derive(Debug, Subcommand)]
pub enum UsersAction {
    /// Add a user; the password is asked for (or read from standard input's first line).
    Add {
        name: String,
        /// viewer (reads), reviewer (also retags and retrains) or admin (also manages users).
        #[arg(long, default_value = "reviewer")]
        role: String,
    },
    /// List users with their roles.
    List,
    /// Change a user's role.
    Role { name: String, role: String },
    /// Set a new password (asked for, or read from standard input); closes their sessions.
    Password { name: String },
    /// Remove a user and close their sessions.
    Remove { name: String },
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(subcommand)]
    pub what: TrainWhat,
}

#[derive(Debug, Subcommand)]
pub enum TrainWhat {
    /// One shared backbone, one classification head per facet.
    Facets(Box<TrainFacetsArgs>),
    /// A dress-similarity embedding: locate and crop each dress, embed the crop, learn from
    /// designs (photos of one design are similar) with a triplet loss.
    Similarity(Box<TrainSimilarityArgs>),
}

/// `atelier train similarity`: the defaults (or a stored configuration) with the options
/// given here on top.
#[derive(Debug, Clone, Args)]
pub struct TrainSimilarityArgs {
    /// Start from a stored configuration (JSON; fields left out take the defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the resulting configuration as JSON and stop.
    #[arg(long)]
    pub print_config: bool,
    /// Record the run and queue it for a worker (`atelier worker`) instead of training here;
    /// prints the job id.
    #[arg(long)]
    pub queue: bool,
    #[arg(long, value_enum)]
    pub backbone: Option<BackboneChoice>,
    /// Pretrained backbone weights (efficientnet-lite0 defaults to its ImageNet weights).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    #[arg(long)]
    pub image_size: Option<u32>,
    /// The backbone stage whose map is pooled (6 for EfficientNet-Lite0 by default).
    #[arg(long)]
    pub feature_stage: Option<usize>,
    #[arg(long)]
    pub epochs: Option<usize>,
    /// The triplet hinge's margin in squared distance between unit vectors.
    #[arg(long)]
    pub margin: Option<f32>,
    #[arg(long)]
    pub embedding_dim: Option<usize>,
    /// Read the crop's map averaged over an N x N grid instead of one pooled vector (0).
    #[arg(long, value_name = "N")]
    pub grid: Option<usize>,
    /// Share of the designs held out of training; every retrieval number is theirs.
    #[arg(long)]
    pub eval_fraction: Option<f64>,
    #[arg(long, value_enum)]
    pub mining: Option<Mining>,
    /// From the second epoch on, batch each design with the designs its current embedding
    /// confuses it with (hard negatives from the whole training set).
    #[arg(long)]
    pub neighbour_batches: bool,
    /// Weight of the facet probes' descriptor in the embedding (0: left out).
    #[arg(long, value_name = "W")]
    pub facet_weight: Option<f32>,
    /// Weight of the dress's colour histogram as a part of the embedding (0: left out).
    #[arg(long, value_name = "W")]
    pub colour_weight: Option<f32>,
    /// Whether the embedding network reads the colour histogram beside the pooled map
    /// (`=false` for the map alone).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub colour: Option<bool>,
    /// Nearest catalogue photos whose mean similarity measures how crowded a photo's
    /// neighbourhood is; searches rank such photos lower by half the excess (hubness
    /// correction). 0: rank by plain cosine.
    #[arg(long, value_name = "K")]
    pub hub_neighbours: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where the backbone's features and the embedding network are computed (cuda and vulkan
    /// need a build with that feature).
    #[arg(long, value_enum)]
    pub device: Option<DeviceChoice>,
    /// Where runs keep their checkpoints.
    #[arg(long, default_value = "checkpoints")]
    pub checkpoint_dir: PathBuf,
    /// After training, publish the model to the store (--store) as the next version of NAME.
    #[arg(long, value_name = "NAME")]
    pub publish: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only images whose current label of FACET is LABEL (repeatable).
    #[arg(long = "where", value_name = "FACET=LABEL")]
    pub where_: Vec<String>,
    /// Only images whose current label of FACET is not LABEL (repeatable).
    #[arg(long, value_name = "FACET=LABEL")]
    pub where_not: Vec<String>,
    #[arg(long, value_enum)]
    pub split: Option<SplitArg>,
    /// Default: active and quarantined images.
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// Only the images of this design.
    #[arg(long)]
    pub design: Option<String>,
    /// Only images with a label a reviewer set.
    #[arg(long, conflicts_with = "not_reviewed")]
    pub reviewed: bool,
    /// Only images without a label a reviewer set.
    #[arg(long)]
    pub not_reviewed: bool,
    /// Page to show, from 1.
    #[arg(long)]
    pub page: Option<u64>,
    /// Images per page.
    #[arg(long)]
    pub per_page: Option<u64>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SplitArg {
    Train,
    Test,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StatusArg {
    Active,
    Quarantined,
    Removed,
}

#[derive(Debug, Args)]
pub struct SimilarArgs {
    /// A photo file to find similar dresses to (or --id for a catalogue photo).
    #[arg(required_unless_present = "id", conflicts_with = "id")]
    pub image: Option<PathBuf>,
    /// A catalogue photo's image id.
    #[arg(long)]
    pub id: Option<String>,
    /// The similarity run to search with (default: the newest completed one).
    #[arg(long)]
    pub run: Option<i64>,
    /// How many photos to return.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Only photos whose current label of FACET is LABEL (repeatable).
    #[arg(long = "where", value_name = "FACET=LABEL")]
    pub where_: Vec<String>,
    /// Only photos whose current label of FACET is not LABEL (repeatable).
    #[arg(long, value_name = "FACET=LABEL")]
    pub where_not: Vec<String>,
    /// The same dress with another facet: only photos labelled LABEL for FACET.
    #[arg(long, value_name = "FACET=LABEL")]
    pub swap: Option<String>,
    /// Search with the off-the-shelf embedding instead of the trained one.
    #[arg(long)]
    pub off_the_shelf: bool,
    /// Show where each result agrees with the query: the cosine of each cell of a 3x3 grid
    /// over the two dress crops (each result also compared mirrored).
    #[arg(long)]
    pub explain: bool,
    #[command(flatten)]
    pub ann: AnnArgs,
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    /// The similarity run (default: the newest completed one).
    #[arg(long)]
    pub run: Option<i64>,
    /// Queue it for a worker instead of doing it here; prints the job id.
    #[arg(long)]
    pub queue: bool,
    /// Where the photos are embedded (cuda and vulkan need a build with that feature).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
    #[command(flatten)]
    pub ann: AnnArgs,
}

/// When a catalogue searched in this process (SQLite, or PostgreSQL without pgvector) uses
/// the approximate index instead of an exact scan.
#[derive(Debug, Clone, Args)]
pub struct AnnArgs {
    /// Runs with at least this many vectors are searched through an HNSW index kept in
    /// $ATELIER_INDEX_DIR (default ~/.cache/atelier/indexes), smaller ones by an exact scan.
    #[arg(long, default_value_t = atelier_search::SearchConfig::default().ann_threshold)]
    pub ann_threshold: usize,
    /// Through the HNSW index, a filter that leaves at most this many photos has them scored
    /// exactly instead of walking the graph.
    #[arg(long, default_value_t = atelier_search::SearchConfig::default().exact_below)]
    pub exact_below: usize,
}

/// `atelier train facets`: a recipe (or a stored configuration) with the options given here
/// on top. Every option left out keeps the recipe's value; `--print-config` shows the result.
#[derive(Debug, Clone, Default, Args)]
pub struct TrainFacetsArgs {
    /// Where to start: finetune (the whole backbone, augmented photos) or demo (alias
    /// frozen-lite0-views: frozen stage-6 features of the photo and two upper-body views, grid
    /// heads, generalised cross-entropy, out-of-fold models that drop disputed labels).
    #[arg(long, value_enum, conflicts_with = "config")]
    pub recipe: Option<Recipe>,
    /// Start from a stored configuration instead (JSON of a run's `config`; fields left out
    /// take the defaults): the way to set the rarely used knobs (momentum, weight decay,
    /// schedule parameters, feature stride, augmentation strength, ...).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the resulting configuration as JSON (a file for --config) and stop.
    #[arg(long)]
    pub print_config: bool,
    /// Record the run and queue it for a worker (`atelier worker`) instead of training here;
    /// prints the job id.
    #[arg(long)]
    pub queue: bool,
    #[arg(long, value_enum)]
    pub backbone: Option<BackboneChoice>,
    /// Pretrained backbone weights (.pth or .safetensors). efficientnet-lite0 defaults to the
    /// ImageNet weights from `atelier weights fetch efficientnet-lite0`; the others start from
    /// random weights without this.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub image_size: Option<u32>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Comma-separated facet names (default: every facet in the catalogue).
    #[arg(long, value_delimiter = ',')]
    pub facets: Vec<String>,
    #[arg(long, value_enum)]
    pub class_weights: Option<ClassWeighting>,
    /// Focal-loss exponent (0: plain cross-entropy).
    #[arg(long)]
    pub focal_gamma: Option<f64>,
    /// Train the heads with generalised cross-entropy of exponent Q in (0, 1] (0.7 is usual):
    /// a bounded loss, so mistagged training labels pull far less than under cross-entropy.
    #[arg(long, value_name = "Q")]
    pub gce_q: Option<f64>,
    /// Put a spatial transformer (initialised to the identity) in front of the backbone
    /// (`=false` to turn a recipe's off).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub spatial_transformer: Option<bool>,
    /// Keep the backbone fixed; without a spatial transformer its features are computed once
    /// (`=false` to fine-tune a recipe's frozen backbone).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub freeze_backbone: Option<bool>,
    /// Also look at zoomed squares over the upper body (neckline, shoulders, arms), one per
    /// side in dress-box heights (e.g. 0.72,0.9), placed by a dress locator trained on the
    /// catalogue's dress boxes; needs a frozen backbone. `none` for no detail view.
    #[arg(long, value_delimiter = ',', value_name = "SIDES")]
    pub detail_views: Option<Vec<DetailSide>>,
    /// How the heads read the feature map.
    #[arg(long, value_enum)]
    pub head: Option<HeadKind>,
    /// Read the output of this backbone stage (counted from 1) instead of the final map: e.g. 6
    /// for EfficientNet-Lite0's 192-channel map before its last block and ImageNet head,
    /// which keeps more of a garment's geometry.
    #[arg(long)]
    pub feature_stage: Option<usize>,
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerChoice>,
    /// Base learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long, value_enum)]
    pub schedule: Option<Schedule>,
    /// Turn off the training augmentation (random resized crop, flip, colour jitter).
    #[arg(long)]
    pub no_augment: bool,
    /// Part of the train split held out for model selection and early stopping.
    #[arg(long)]
    pub validation_fraction: Option<f64>,
    /// Stop after this many epochs without a better validation macro-F1.
    #[arg(long)]
    pub patience: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, value_enum)]
    pub device: Option<DeviceChoice>,
    /// Also train K models on K folds of the train split (0: off, or at least 2), each without
    /// its fold, so that every train image gets a prediction from a model that never saw it
    /// (for `atelier mistags`; train tables then come from these). Cheap with a frozen
    /// backbone (shared feature cache); K more full trainings otherwise. 0 also turns off
    /// --drop-suspects.
    #[arg(long)]
    pub folds: Option<usize>,
    /// With --folds: run the fold models first, then train the main model without the train
    /// labels the mistag queue's rule suspects with at least this margin (bare flag: 0.5). The
    /// catalogue keeps the labels; reviewers still see them in `atelier mistags`.
    #[arg(long, num_args = 0..=1, default_missing_value = "0.5", value_name = "MARGIN")]
    pub drop_suspects: Option<f32>,
    /// Continue run RUN from its last checkpoint (its stored options are used).
    #[arg(long)]
    pub resume: Option<i64>,
    /// Where runs keep their per-epoch checkpoints.
    #[arg(long, default_value = "checkpoints")]
    pub checkpoint_dir: PathBuf,
    /// After training, publish the model to the store (--store) as the next version of NAME.
    #[arg(long, value_name = "NAME")]
    pub publish: Option<String>,
    #[command(flatten)]
    pub dropped: DroppedTrainFlags,
}

/// One side of a detail view in dress-box heights, or `none`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetailSide(pub Option<f32>);

impl std::str::FromStr for DetailSide {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "none" {
            return Ok(DetailSide(None));
        }
        text.parse::<f32>()
            .map(|side| DetailSide(Some(side)))
            .map_err(|_| format!("{text}: a side in dress-box heights (e.g. 0.72) or none"))
    }
}

/// Options that a recipe or a configuration file now covers; given, they fail with the
/// replacement (see `commands::train::refuse_dropped`).
#[derive(Debug, Clone, Default, Args)]
pub struct DroppedTrainFlags {
    #[arg(long, hide = true)]
    pub detail_crop: bool,
    #[arg(long, hide = true, value_delimiter = ',')]
    pub detail_side: Vec<f32>,
    #[arg(long, hide = true)]
    pub feature_stride: Option<String>,
    #[arg(long, hide = true)]
    pub beta: Option<String>,
    #[arg(long, hide = true)]
    pub grid_cells: Option<String>,
    #[arg(long, hide = true)]
    pub head_channels: Option<String>,
    #[arg(long, hide = true)]
    pub momentum: Option<String>,
    #[arg(long, hide = true)]
    pub weight_decay: Option<String>,
    #[arg(long, hide = true)]
    pub warmup_epochs: Option<String>,
    #[arg(long, hide = true)]
    pub step_epochs: Option<String>,
    #[arg(long, hide = true)]
    pub step_gamma: Option<String>,
}

#[derive(Debug, Args)]
pub struct RetrainArgs {
    /// The run whose options (facets, backbone, folds, everything) the new run repeats.
    pub run: i64,
    /// Record the run and queue it for a worker (`atelier worker`) instead of training here;
    /// prints the job id.
    #[arg(long)]
    pub queue: bool,
    /// Where the new run keeps its checkpoints. Default: where RUN kept its own.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MistagsArgs {
    pub run: i64,
    /// Only this facet (default: every facet of the run).
    #[arg(long)]
    pub facet: Option<String>,
    /// Show at most this many images (precision@k is computed on the whole queue).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    pub run: i64,
    /// One JSON line per image and facet instead of the tables.
    #[arg(long)]
    pub predictions: bool,
}

#[derive(Debug, Args)]
pub struct CropArgs {
    /// Photo files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The similarity run whose locator is used (default: the newest completed one).
    #[arg(long)]
    pub run: Option<i64>,
    /// Write each crop to DIR as `<file stem>.png`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Files, folders (searched recursively for images) or `-` (paths on stdin, one per line).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// A model folder, `run-N` or `N` in a local store, or a published NAME, NAME@VERSION or
    /// NAME:TAG (pulled from the store into the cache). Default: the newest local run.
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Where the network runs (cuda and vulkan need a build with that feature).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
}

#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub action: ModelsAction,
}

#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// Models with their versions and tags (all, or one NAME's).
    List { name: Option<String> },
    /// A version's files (size, SHA-256), metadata, tags and lineage.
    Show {
        /// NAME, NAME@VERSION or NAME:TAG.
        reference: String,
    },
    /// Publish a model folder as the next version of NAME.
    Push {
        /// The model folder (e.g. models/run-3).
        dir: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Download a model into the cache (verified; nothing is downloaded when already cached)
    /// and print its folder.
    Pull {
        /// NAME, NAME@VERSION or NAME:TAG.
        reference: String,
        /// Also copy the files into this folder.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Point TAG (e.g. production) at a version.
    Promote {
        /// NAME@VERSION (or NAME / NAME:OTHER-TAG for the version they denote).
        reference: String,
        tag: String,
    },
    /// Remove NAME@VERSION (refused while a tag points at it; its number is never reused).
    Rm { reference: String },
    /// Record the size and SHA-256 of every file of a model folder saved before models carried
    /// checksums (`checksums.json`), so that it can be used again: only for files you trust.
    Seal {
        /// The model folder.
        dir: PathBuf,
    },
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
    /// A manifest CSV (path,split,<facet>...,x0,y0,x1,y1,design) or a folder tree, on this
    /// machine or in S3: s3://BUCKET/KEY.csv (paths relative to its prefix) or
    /// s3://BUCKET/PREFIX/ (a folder tree of objects).
    pub path: PathBuf,
    /// Fraction of new images assigned to the test split when the manifest gives none.
    #[arg(long, default_value_t = 0.1)]
    pub test_fraction: f64,
    /// Accept labels unknown to an existing facet (appended to the end of its order).
    #[arg(long)]
    pub allow_new_labels: bool,
    /// Import even when more than a tenth of the rows name missing, unreadable or empty files
    /// (they become quarantined placeholders); without it such an import is refused.
    #[arg(long)]
    pub allow_missing: bool,
    /// Import even when it marks more than a fifth of the source's images removed (the source
    /// no longer lists them); without it such an import is refused.
    #[arg(long)]
    pub allow_removals: bool,
    /// PATH is a truth.csv from `atelier synth --label-noise`: store its clean labels for
    /// already imported images (the mistag queue then reports precision@k against them).
    #[arg(long, conflicts_with = "triplets")]
    pub truth: bool,
    /// PATH is a CSV of similarity triplets `reference,similar,dissimilar` (image ids, or paths
    /// as in a manifest): store them for training and scoring similarity.
    #[arg(long)]
    pub triplets: bool,
    /// Queue the import for a worker instead of doing it here (the worker must be able to read
    /// PATH: an `s3://` source, or a folder every worker shares); prints the job id.
    #[arg(long, conflicts_with_all = ["truth", "triplets"])]
    pub queue: bool,
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
    /// Queue the check for a worker instead of doing it here; prints the job id.
    #[arg(long)]
    pub queue: bool,
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
    /// Training epochs over the cached backbone features.
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Share of (image, facet) labels the renderer flips on purpose, for the mistag queue to
    /// find (its known flips are imported as truth, so the app reports precision@k).
    #[arg(long, default_value_t = 0.05)]
    pub label_noise: f64,
    /// Cross-fitting folds for out-of-fold train scores (0 turns them off).
    #[arg(long, default_value_t = 3)]
    pub folds: usize,
    /// Where the web app listens at the end (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Stop after tagging instead of starting the web app.
    #[arg(long)]
    pub no_serve: bool,
    /// Network input size in pixels.
    #[arg(long, default_value_t = 224)]
    pub image_size: u32,
    /// Where the networks run: feature passes, training and tagging (cuda and vulkan need a
    /// build with that feature).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
}
