//! Seeds a catalogue for the web app's load benchmark (`scripts/bench-web.sh`): N tiny image
//! files (default 100 000) with the synthetic catalogue's five facets, one completed run whose
//! predictions cover every image and facet (5 N rows, about a fifth of them wrong), per-class
//! metrics computed from those predictions, one completed similarity run with a 372-number
//! vector per image (clustered), and a viewer `bench` / `bench-password`.
//!
//! ```sh
//! cargo run --release -p atelier-web --example seed_bench -- --dir DIR [--images 100000] [--seed 7]
//! ```
//!
//! Writes `DIR/images/NNN/I.jpg`, `DIR/manifest.csv` and the SQLite catalogue `DIR/bench.db`
//! (or, with `--db`, an empty PostgreSQL database),
//! then prints one JSON document (also saved as `DIR/seed.json`): the database URL, the run id,
//! the facet and label with the most false negatives (for the review page), and the seconds
//! each step took. The image files are a few distinct bytes each, not pictures: import only
//! hashes them, and `atelier check` (which would quarantine them) is not run.

use std::collections::HashMap;
use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use atelier_catalog::{
    Catalog, ImportOptions, NewRun, PredictionRow, Role, RunFacetResult, RunFinish, RunStatus,
    Split,
};
use atelier_train::metrics::{SplitMetrics, classification_report};
use atelier_train::{BackboneChoice, TrainConfig};
use atelier_vision::synth::FACETS;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The viewer the benchmark logs in as.
const USER: &str = "bench";
const PASSWORD: &str = "bench-password";
/// Share of images in the test split.
const TEST_FRACTION: f64 = 0.1;
/// Share of (image, facet) predictions that are wrong.
const ERROR_RATE: f64 = 0.2;
/// Image files per sub-folder, so that no folder holds 100 000 entries.
const PER_FOLDER: usize = 1000;
/// Length of the seeded similarity vectors: the demo's trained embedding (128 learned, 28 facet
/// probabilities, 216 colour cells).
const SIMILARITY_DIM: usize = 372;
/// Clusters of the seeded vectors, and how far a vector lies from its centre (per value, in
/// units of the centre's spread).
const CLUSTERS: usize = 1000;
const CLUSTER_SPREAD: f32 = 0.5;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Command-line options.
struct Options {
    dir: PathBuf,
    /// A PostgreSQL database to seed instead of `DIR/bench.db` (it must be empty).
    db: Option<String>,
    images: usize,
    seed: u64,
}

fn usage() -> String {
    "usage: seed_bench --dir DIR [--db postgres://...] [--images 100000] [--seed 7]".to_string()
}

fn parse_args() -> Result<Options> {
    let mut dir = None;
    let mut db = None;
    let mut images = 100_000;
    let mut seed = 7;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value; {}", usage()))
        };
        match arg.as_str() {
            "--dir" => dir = Some(PathBuf::from(value("--dir")?)),
            "--db" => db = Some(value("--db")?),
            "--images" => {
                images = value("--images")?
                    .parse()
                    .map_err(|e| format!("--images: {e}; give a whole number such as 100000"))?;
            }
            "--seed" => {
                seed = value("--seed")?
                    .parse()
                    .map_err(|e| format!("--seed: {e}; give a whole number such as 7"))?;
            }
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}; {}", usage()).into()),
        }
    }
    let dir = dir.ok_or_else(|| format!("--dir is required; {}", usage()))?;
    if images == 0 {
        return Err("--images must be at least 1".into());
    }
    Ok(Options {
        dir,
        db,
        images,
        seed,
    })
}

/// One row of the manifest: the image's split and its label index per facet (in [`FACETS`]
/// order), drawn from the seed.
struct Planned {
    id: String,
    test: bool,
    labels: Vec<usize>,
}

fn main() -> Result<()> {
    let options = parse_args()?;
    std::fs::create_dir_all(&options.dir)
        .map_err(|e| format!("cannot create --dir {}: {e}", options.dir.display()))?;
    let db = options.dir.join("bench.db");
    if options.db.is_none() && db.exists() {
        return Err(format!(
            "{} already exists; delete {} (or pick another --dir) to seed again",
            db.display(),
            options.dir.display()
        )
        .into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(seed(&options, &db))?;
    let text = serde_json::to_string_pretty(&report)?;
    std::fs::write(options.dir.join("seed.json"), format!("{text}\n"))?;
    println!("{text}");
    Ok(())
}

/// Seconds since `started`, rounded to milliseconds for the report.
fn seconds(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

async fn seed(options: &Options, db: &Path) -> Result<Value> {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut steps = serde_json::Map::new();

    let started = Instant::now();
    let (manifest, planned) = write_dataset(&options.dir, options.images, &mut rng)?;
    steps.insert("write_files_and_manifest".into(), json!(seconds(started)));
    eprintln!(
        "wrote {} files and {} in {:.1} s",
        planned.len(),
        manifest.display(),
        started.elapsed().as_secs_f64()
    );

    let url = options
        .db
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", db.display()));
    let catalog = Catalog::open(&url).await?;
    if catalog.summary().await?.images > 0 {
        return Err(format!("{url} already holds images; seed an empty database").into());
    }
    let started = Instant::now();
    import_planned(&catalog, &manifest, &planned).await?;
    steps.insert("import".into(), json!(seconds(started)));

    let started = Instant::now();
    let predicted = predict_run(&catalog, &planned, &mut rng).await?;
    steps.insert(
        "predictions_and_metrics_in_memory".into(),
        json!(seconds(started)),
    );
    record_run(&catalog, &predicted, &mut steps).await?;

    let started = Instant::now();
    let similarity = seed_similarity(&catalog, &planned, &mut rng).await?;
    steps.insert("similarity_run_vectors".into(), json!(seconds(started)));

    let started = Instant::now();
    catalog
        .add_user(USER, Role::Viewer, &atelier_web::hash_password(PASSWORD)?)
        .await?;
    steps.insert("add_user".into(), json!(seconds(started)));
    catalog.close().await;

    let predictions = &predicted.predictions;
    let (count, facet, label) = &predicted.most_false_negatives;
    Ok(json!({
        "db": url,
        "run": predicted.run,
        "images": planned.len(),
        "predictions": predictions.len(),
        "wrong_predictions": predictions.iter().filter(|p| p.label.as_deref() != Some(p.predicted.as_str())).count(),
        "user": USER,
        "password": PASSWORD,
        "facet": facet,
        "label": label,
        "false_negatives": count,
        "similarity_run": similarity["run"],
        "query_image": similarity["query_image"],
        "swap_facet": similarity["swap_facet"],
        "swap_label": similarity["swap_label"],
        "seconds": steps,
    }))
}

/// Imports the manifest; every planned file must come in as a new image.
async fn import_planned(catalog: &Catalog, manifest: &Path, planned: &[Planned]) -> Result<()> {
    let started = Instant::now();
    let imported = catalog.import(manifest, &ImportOptions::default()).await?;
    eprintln!(
        "imported {} rows ({} added) in {:.1} s",
        imported.rows,
        imported.added,
        started.elapsed().as_secs_f64()
    );
    if imported.added != planned.len() as u64 {
        return Err(format!(
            "import added {} of {} images (quarantined {}, duplicates {}); every file should be \
             new and distinct",
            imported.added,
            planned.len(),
            imported.quarantined,
            imported.duplicates
        )
        .into());
    }
    Ok(())
}

/// A facet run recorded in the catalogue, with its made-up results not yet stored.
struct PredictedRun {
    run: i64,
    results: Vec<RunFacetResult>,
    predictions: Vec<PredictionRow>,
    /// Per facet, its train and test macro-F1.
    summary: serde_json::Map<String, Value>,
    /// (count, facet, label) of the label with the most false negatives.
    most_false_negatives: (u64, String, String),
}

/// One facet as the manifest and the run see it.
struct FacetPlan<'a> {
    /// Its index in [`FACETS`] (and in each planned image's labels).
    index: usize,
    name: &'a str,
    /// The manifest's labels, in [`FACETS`] order.
    canonical: &'a [&'a str],
    /// The run's labels, in the catalogue's order.
    run_labels: &'a [String],
}

/// Records a facet run and makes up its predictions for every planned image and facet, checking
/// the catalogue against the plan on the way.
async fn predict_run(
    catalog: &Catalog,
    planned: &[Planned],
    rng: &mut ChaCha8Rng,
) -> Result<PredictedRun> {
    // Like a training run, the run's label order per facet is the catalogue's.
    let facet_names: Vec<String> = FACETS.iter().map(|(name, _)| name.to_string()).collect();
    let orders = catalog.facet_label_orders(&facet_names).await?;
    // The catalogue's split and labels of each image, to check the import against the plan.
    // Asked with every facet: `training_images(&[])` joins each image to every label row on
    // SQLite (LEFT JOIN labels ON 1 = 0 is a full scan per image), minutes at this size.
    let stored: HashMap<String, (Split, Vec<Option<String>>)> = catalog
        .training_images(&facet_names)
        .await?
        .into_iter()
        .map(|image| (image.id, (image.split, image.labels)))
        .collect();
    let run = catalog
        .create_run(&NewRun {
            kind: "facets".into(),
            config: json!({
                "train": TrainConfig::new(BackboneChoice::EfficientnetLite0, facet_names.clone()),
                "seeded_by": "atelier-web example seed_bench",
            }),
            parent_run: None,
            lease: None,
        })
        .await?;
    let mut predicted = PredictedRun {
        run,
        results: Vec::with_capacity(FACETS.len()),
        predictions: Vec::with_capacity(planned.len() * FACETS.len()),
        summary: serde_json::Map::new(),
        most_false_negatives: (0, String::new(), String::new()),
    };
    for (index, (name, canonical)) in FACETS.iter().enumerate() {
        let run_labels = &orders
            .iter()
            .find(|(facet, _)| facet == name)
            .ok_or_else(|| format!("the catalogue has no facet {name:?} after the import"))?
            .1;
        let facet = FacetPlan {
            index,
            name,
            canonical,
            run_labels,
        };
        predict_facet(&facet, planned, &stored, rng, &mut predicted)?;
    }
    Ok(predicted)
}

/// Makes up `facet`'s prediction of every planned image and adds them, its per-class tables
/// and its summary to `predicted`.
fn predict_facet(
    facet: &FacetPlan<'_>,
    planned: &[Planned],
    stored: &HashMap<String, (Split, Vec<Option<String>>)>,
    rng: &mut ChaCha8Rng,
    predicted: &mut PredictedRun,
) -> Result<()> {
    let (f, name, run_labels) = (facet.index, facet.name, facet.run_labels);
    // Manifest label index (FACETS order) to run label index (catalogue order).
    let to_run: Vec<usize> = facet
        .canonical
        .iter()
        .map(|label| {
            run_labels
                .iter()
                .position(|l| l == label)
                .ok_or_else(|| format!("facet {name:?} lacks label {label:?} in the catalogue"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let k = run_labels.len();
    // (truth, predicted) label indices per split, for the metrics.
    let mut pairs: [(Vec<usize>, Vec<usize>); 2] = Default::default();
    for image in planned {
        let (split, labels) = stored
            .get(&image.id)
            .ok_or_else(|| format!("image {} is not in the catalogue", image.id))?;
        let split = *split;
        if (split == Split::Test) != image.test
            || labels[f].as_deref() != Some(facet.canonical[image.labels[f]])
        {
            return Err(format!(
                "image {} is in the catalogue as {} / {name} {:?}, not as the manifest says",
                image.id,
                split.as_str(),
                labels[f]
            )
            .into());
        }
        let truth = to_run[image.labels[f]];
        let (guess, scores) = predict(truth, k, rng);
        let part = &mut pairs[usize::from(split == Split::Test)];
        part.0.push(truth);
        part.1.push(guess);
        predicted.predictions.push(PredictionRow {
            image_id: image.id.clone(),
            facet: name.to_string(),
            split,
            label: Some(run_labels[truth].clone()),
            predicted: run_labels[guess].clone(),
            confidence: f64::from(scores[guess]),
            scores,
            out_of_fold: false,
        });
    }
    let report = |(truth, guesses): &(Vec<usize>, Vec<usize>)| {
        classification_report(run_labels, truth, guesses)
    };
    let (train, test) = (report(&pairs[0]), report(&pairs[1]));
    for (label_index, label) in run_labels.iter().enumerate() {
        let negatives = false_negatives(&train, label_index) + false_negatives(&test, label_index);
        if negatives > predicted.most_false_negatives.0 {
            predicted.most_false_negatives = (negatives, name.to_string(), label.clone());
        }
    }
    predicted.summary.insert(
        name.to_string(),
        json!({"train_macro_f1": train.macro_f1, "test_macro_f1": test.macro_f1}),
    );
    predicted.results.push(RunFacetResult {
        facet: name.to_string(),
        labels: run_labels.to_vec(),
        class_weights: vec![1.0; k],
        train_metrics: Some(serde_json::to_value(&train)?),
        test_metrics: Some(serde_json::to_value(&test)?),
    });
    Ok(())
}

/// Stores the run's results (one bulk insert) and marks it completed, timing both in `steps`.
async fn record_run(
    catalog: &Catalog,
    predicted: &PredictedRun,
    steps: &mut serde_json::Map<String, Value>,
) -> Result<()> {
    let started = Instant::now();
    catalog
        .record_run_results(predicted.run, &predicted.results, &predicted.predictions)
        .await?;
    let insert_seconds = seconds(started);
    steps.insert(
        "record_run_results_bulk_insert".into(),
        json!(insert_seconds),
    );
    eprintln!(
        "inserted {} predictions in {insert_seconds:.1} s ({:.0} rows/s)",
        predicted.predictions.len(),
        predicted.predictions.len() as f64 / insert_seconds.max(1e-9)
    );
    let started = Instant::now();
    catalog
        .finish_run(
            predicted.run,
            &RunFinish {
                status: RunStatus::Completed,
                summary: Some(json!({ "facets": predicted.summary })),
                model_ref: None,
                error: None,
            },
        )
        .await?;
    steps.insert("finish_run".into(), json!(seconds(started)));
    Ok(())
}

/// A completed similarity run with one vector per image, of the demo's trained embedding
/// length: unit vectors scattered around [`CLUSTERS`] random centres (dresses come in
/// families), stored under the run's trained-embedding key. Returns the run, an image to query
/// and a swap ("the same dress, another neckline") to ask for.
async fn seed_similarity(
    catalog: &Catalog,
    planned: &[Planned],
    rng: &mut ChaCha8Rng,
) -> Result<Value> {
    let run = catalog
        .create_run(&NewRun {
            kind: atelier_app::similarity::SIMILARITY_RUN.into(),
            config: json!({"seeded_by": "atelier-web example seed_bench"}),
            parent_run: None,
            lease: None,
        })
        .await?;
    let gaussian = |rng: &mut ChaCha8Rng| -> f32 {
        // Box-Muller: one standard normal draw.
        let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    };
    let centres: Vec<Vec<f32>> = (0..CLUSTERS)
        .map(|_| (0..SIMILARITY_DIM).map(|_| gaussian(rng)).collect())
        .collect();
    let key = atelier_app::similarity::embedding_key(run);
    for chunk in planned.chunks(10_000) {
        let vectors: Vec<(String, Vec<f32>)> = chunk
            .iter()
            .map(|image| {
                let centre = &centres[rng.random_range(0..CLUSTERS)];
                let mut v: Vec<f32> = centre
                    .iter()
                    .map(|c| c + CLUSTER_SPREAD * gaussian(rng))
                    .collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
                (image.id.clone(), v)
            })
            .collect();
        catalog.put_embeddings(&key, &vectors).await?;
    }
    // On PostgreSQL with pgvector, the run's HNSW index (as a similarity run builds it).
    catalog.index_vectors(&key, SIMILARITY_DIM).await?;
    catalog
        .finish_run(
            run,
            &RunFinish {
                status: RunStatus::Completed,
                summary: None,
                model_ref: None,
                error: None,
            },
        )
        .await?;
    // The swap asks for another neckline than the query's.
    let (facet_index, (facet, labels)) = FACETS
        .iter()
        .enumerate()
        .find(|(_, (name, _))| *name == "neckline")
        .ok_or("the synthetic facets have no neckline")?;
    let query = &planned[0];
    let other = labels[(query.labels[facet_index] + 1) % labels.len()];
    Ok(json!({
        "run": run,
        "query_image": query.id,
        "swap_facet": facet,
        "swap_label": other,
    }))
}

/// Images labelled class `i` that were predicted as another class: row `i` of the confusion
/// matrix without its diagonal.
fn false_negatives(metrics: &SplitMetrics, i: usize) -> u64 {
    let row = &metrics.confusion[i];
    row.iter().sum::<u64>() - row[i]
}

/// A made-up prediction for an image of class `truth` among `k` classes: wrong with
/// probability [`ERROR_RATE`], then the class and its scores (summing to 1, the predicted class
/// the largest). Scores are a softmax of random logits: a correct prediction leads by a wide
/// margin (confidence about 0.35 to 0.99, mean 0.83), a wrong one by a narrow margin over the
/// true class, which comes second (about 0.2 to 0.7, mean 0.45), as a trained tagger's would.
fn predict(truth: usize, k: usize, rng: &mut ChaCha8Rng) -> (usize, Vec<f32>) {
    let wrong = rng.random::<f64>() < ERROR_RATE;
    let predicted = if wrong {
        (truth + rng.random_range(1..k)) % k
    } else {
        truth
    };
    let mut logits: Vec<f64> = (0..k).map(|_| rng.random_range(-1.0..1.0)).collect();
    let others_max = logits
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != predicted)
        .map(|(_, z)| *z)
        .fold(f64::NEG_INFINITY, f64::max);
    if wrong {
        logits[truth] = others_max + rng.random_range(0.0..0.5);
        logits[predicted] = logits[truth] + rng.random_range(0.05..1.5);
    } else {
        logits[predicted] = others_max + rng.random_range(1.0..5.0);
    }
    let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits.iter().map(|z| (z - top).exp()).collect();
    let total: f64 = exp.iter().sum();
    (predicted, exp.iter().map(|e| (e / total) as f32).collect())
}

/// Writes `count` distinct small files and a manifest (`path,split,<facets>`) with random
/// labels and a [`TEST_FRACTION`] test split; returns the manifest's path and each image's id
/// (the sha256 of its bytes, as the catalogue computes it), split and labels.
fn write_dataset(
    dir: &Path,
    count: usize,
    rng: &mut ChaCha8Rng,
) -> Result<(PathBuf, Vec<Planned>)> {
    let images = dir.join("images");
    let manifest_path = dir.join("manifest.csv");
    let mut manifest = std::io::BufWriter::new(std::fs::File::create(&manifest_path)?);
    let names: Vec<&str> = FACETS.iter().map(|(name, _)| *name).collect();
    writeln!(manifest, "path,split,{}", names.join(","))?;
    let mut planned = Vec::with_capacity(count);
    for i in 0..count {
        let folder = format!("{:03}", i / PER_FOLDER);
        if i % PER_FOLDER == 0 {
            std::fs::create_dir_all(images.join(&folder))?;
        }
        let bytes = format!("atelier web bench image {i}\n").into_bytes();
        let file = images.join(&folder).join(format!("{i}.jpg"));
        std::fs::write(&file, &bytes).map_err(|e| format!("writing {}: {e}", file.display()))?;
        let test = rng.random::<f64>() < TEST_FRACTION;
        let labels: Vec<usize> = FACETS
            .iter()
            .map(|(_, labels)| rng.random_range(0..labels.len()))
            .collect();
        let names: Vec<&str> = labels
            .iter()
            .zip(FACETS)
            .map(|(&l, (_, labels))| labels[l])
            .collect();
        writeln!(
            manifest,
            "images/{folder}/{i}.jpg,{},{}",
            if test { "test" } else { "train" },
            names.join(",")
        )?;
        planned.push(Planned {
            id: hex::encode(Sha256::digest(&bytes)),
            test,
            labels,
        });
    }
    manifest.flush()?;
    Ok((manifest_path, planned))
}
