//! Catalogue runs end to end on a few synthetic photos with the small CNN and a frozen, cached
//! backbone: `--folds` gives every train image an out-of-fold prediction without changing the
//! main model's test predictions, the confident-learning queue only holds out-of-sample
//! images and drops relabelled ones, a retrain repeats its parent's configuration, and a run
//! that cannot train is marked failed.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use atelier_app::mistags::mistag_queue;
use atelier_app::summary::TrainMetrics;
use atelier_app::{create_retrain, create_run, execute_run};
use atelier_catalog::{ImportOptions, PredictionRecord, RunStatus, Split};
use atelier_train::config::HeadKind;
use atelier_train::config::TrainConfig;
use atelier_train::mistags;
use atelier_train::progress::{EpochRecord, Observer, Silent};
use atelier_vision::synth::SynthOptions;
use common::Setup;

/// `count` 64-pixel photos with 20% label noise, imported (30% test), with their truth when
/// `truth`.
async fn setup(count: usize, truth: bool) -> Setup {
    common::setup(
        SynthOptions {
            out_dir: PathBuf::new(),
            count,
            seed: 21,
            size: 64,
            label_noise: 0.2,
        },
        truth,
    )
    .await
}

fn config(folds: usize) -> TrainConfig {
    let mut config = common::frozen_tiny(&["silhouette", "length"]);
    config.epochs = 3;
    config.learning_rate = 0.01;
    config.head = HeadKind::Pooled;
    config.seed = 4;
    config.folds = folds;
    config
}

/// What a [`Counter`] saw: `(fold, folds, held_out)` per fold start, and finished epochs.
#[derive(Debug, Clone, Default)]
struct Seen {
    fold_starts: Vec<(usize, usize, usize)>,
    epochs: usize,
}

/// Counts fold starts and finished epochs.
#[derive(Default)]
struct Counter {
    seen: Arc<Mutex<Seen>>,
}

impl Observer for Counter {
    fn fold_start(&mut self, fold: usize, folds: usize, held_out: usize) {
        self.seen
            .lock()
            .unwrap()
            .fold_starts
            .push((fold, folds, held_out));
    }

    fn epoch_end(&mut self, _record: &EpochRecord) {
        self.seen.lock().unwrap().epochs += 1;
    }
}

fn by_key(rows: &[PredictionRecord]) -> HashMap<(String, String), &PredictionRecord> {
    rows.iter()
        .map(|row| ((row.image_id.clone(), row.facet.clone()), row))
        .collect()
}

/// File name → column value, read straight from a CSV that `synth` wrote.
fn csv_column(path: &Path, column: &str) -> HashMap<String, String> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let at = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (path_at, value_at) = (at("path"), at(column));
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            let name = Path::new(&record[path_at]).file_name().unwrap();
            (
                name.to_string_lossy().into_owned(),
                record[value_at].to_string(),
            )
        })
        .collect()
}

fn file_name(uri: &str) -> String {
    Path::new(uri)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folds_give_out_of_fold_train_predictions_and_a_review_queue() {
    let setup = setup(48, true).await;
    let catalog = &setup.catalog;

    let (plain, plain_run) = setup.train(&config(0)).await;
    assert_eq!(plain_run.summary.train_metrics, TrainMetrics::InSample);

    let counter = Counter::default();
    let seen = counter.seen.clone();
    let folded = create_run(catalog, &config(2), &setup.paths, None)
        .await
        .unwrap();
    let finished = execute_run(catalog, folded, &setup.paths, Box::new(counter))
        .await
        .unwrap();
    assert_eq!(finished.summary.train_metrics, TrainMetrics::OutOfFold);
    assert!(finished.model_dir.join("lineage.json").exists());

    // Two fold models trained after the main one, each for every epoch, holding out together
    // every train image once.
    let plain_rows = catalog.predictions(plain, None).await.unwrap();
    let folded_rows = catalog.predictions(folded, None).await.unwrap();
    let train_rows = folded_rows
        .iter()
        .filter(|r| r.split == Split::Train && r.facet == "length")
        .count();
    let Seen {
        fold_starts,
        epochs,
    } = seen.lock().unwrap().clone();
    assert_eq!(
        fold_starts.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>(),
        [(1, 2), (2, 2)]
    );
    assert_eq!(fold_starts.iter().map(|f| f.2).sum::<usize>(), train_rows);
    assert_eq!(epochs, 3 * 3);
    let catalog_id = setup.catalog.catalog_id().await.unwrap();
    for fold in ["fold-1", "fold-2"] {
        let state = setup
            .paths
            .checkpoint_base
            .join(format!("{catalog_id}/run-{folded}/{fold}/state.json"));
        assert!(state.exists(), "{}", state.display());
    }

    // Every train prediction is out of fold, every test prediction is the main model's and
    // the same as without --folds.
    assert_eq!(plain_rows.len(), folded_rows.len());
    assert!(plain_rows.iter().all(|r| !r.out_of_fold));
    let plain_by_key = by_key(&plain_rows);
    let mut differs = 0;
    for row in &folded_rows {
        assert_eq!(row.out_of_fold, row.split == Split::Train, "{row:?}");
        let other = plain_by_key[&(row.image_id.clone(), row.facet.clone())];
        match row.split {
            Split::Test => assert_eq!(row.scores, other.scores, "{row:?}"),
            Split::Train => differs += usize::from(row.scores != other.scores),
        }
    }
    assert!(differs > 0, "train scores come from other models");

    // The train tables are those of the out-of-fold predictions.
    for facet in catalog.run_facets(folded).await.unwrap() {
        let rows: Vec<&PredictionRecord> = folded_rows
            .iter()
            .filter(|r| r.facet == facet.facet && r.split == Split::Train && r.label.is_some())
            .collect();
        let correct = rows
            .iter()
            .filter(|r| r.label.as_deref() == Some(r.predicted.as_str()))
            .count();
        let accuracy = facet.train_metrics.as_ref().unwrap()["accuracy"]
            .as_f64()
            .unwrap();
        assert!(
            (accuracy - correct as f64 / rows.len() as f64).abs() < 1e-12,
            "{}",
            facet.facet
        );
    }

    // The last progress written names the run's folds.
    let record = catalog.run(folded).await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    let progress = record.progress.expect("progress was recorded");
    assert_eq!(progress["folds"], 2, "{progress}");
    assert!(progress["updated_at"].as_i64().unwrap() > 0);

    // The review queue: out-of-sample images only, the lowest calibrated probability of the
    // given label first, the given label the one at training, the truth the one synth wrote,
    // and per facet the estimate of wrong labels.
    let queue = mistag_queue(catalog, folded, None).await.unwrap();
    assert!(queue.train_images_included);
    assert!(!queue.items.is_empty(), "20% label noise leaves suspects");
    let folded_by_key = by_key(&folded_rows);
    let truth_of = |facet: &str| csv_column(&setup.truth, facet);
    let (truth_length, truth_silhouette) = (truth_of("length"), truth_of("silhouette"));
    for pair in queue.items.windows(2) {
        assert!(pair[0].given_probability <= pair[1].given_probability);
    }
    let facets: Vec<&str> = queue.estimates.iter().map(|e| e.facet.as_str()).collect();
    assert_eq!(facets, ["silhouette", "length"], "the run's facet order");
    for estimate in &queue.estimates {
        let listed = queue
            .items
            .iter()
            .filter(|i| i.facet == estimate.facet)
            .count();
        assert_eq!(estimate.suspects, listed);
        assert!(estimate.estimated_wrong > 0, "{estimate:?}");
    }
    if let (Some(flips), Some(recall)) = (queue.known_flips, queue.recall) {
        let found = queue
            .items
            .iter()
            .filter(|i| i.true_label.as_ref().is_some_and(|t| *t != i.given))
            .count();
        assert!((recall - found as f64 / flips as f64).abs() < 1e-12);
    }
    let mut current = HashMap::new();
    for facet in ["length", "silhouette"] {
        current.insert(facet, catalog.current_labels(facet).await.unwrap());
    }
    for item in &queue.items {
        let row = folded_by_key[&(item.image_id.clone(), item.facet.clone())];
        // The label row as it stands, with the version a correction would state.
        assert_eq!(
            current[item.facet.as_str()].get(&item.image_id),
            Some(&(Some(item.given.clone()), item.version))
        );
        assert!(row.split == Split::Test || row.out_of_fold);
        assert_eq!(row.label.as_deref(), Some(item.given.as_str()));
        assert_ne!(item.given, item.suggested);
        assert_eq!(
            item.margin,
            item.suggested_probability - item.given_probability
        );
        let truth = match item.facet.as_str() {
            "length" => &truth_length,
            _ => &truth_silhouette,
        };
        assert_eq!(item.true_label.as_ref(), truth.get(&file_name(&row.uri)));
    }
    // Known flips, counted from synth's own files.
    let flips = ["length", "silhouette"]
        .iter()
        .map(|facet| {
            let given = csv_column(&setup.manifest, facet);
            let truth = truth_of(facet);
            given.iter().filter(|(name, g)| truth[*name] != **g).count() as u64
        })
        .sum::<u64>();
    assert_eq!(queue.known_flips, Some(flips));
    if queue.items.len() >= 10 {
        let first = &queue.precision_at[0];
        assert_eq!(first.0, 10);
        let hits = queue.items[..10]
            .iter()
            .filter(|i| i.true_label.as_deref() != Some(i.given.as_str()))
            .count();
        assert_eq!(first.1, hits as f64 / 10.0);
    }

    // Without folds, only test images can be suspected.
    let test_only = mistag_queue(catalog, plain, Some("length")).await.unwrap();
    assert!(!test_only.train_images_included);
    assert!(
        test_only
            .items
            .iter()
            .all(|i| i.split == Split::Test && i.facet == "length")
    );

    // Relabelling the first suspect (as a reviewer would) takes it out of the queue.
    let top = &queue.items[0];
    let name = file_name(&folded_by_key[&(top.image_id.clone(), top.facet.clone())].uri);
    let text = std::fs::read_to_string(&setup.manifest).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let column = header.iter().position(|h| *h == top.facet).unwrap();
    let relabelled: Vec<String> = text
        .lines()
        .map(|line| {
            let mut cells: Vec<String> = line.split(',').map(String::from).collect();
            if Path::new(&cells[0]).file_name().unwrap().to_string_lossy() == name {
                cells[column] = top.suggested.clone();
            }
            cells.join(",")
        })
        .collect();
    std::fs::write(&setup.manifest, relabelled.join("\n") + "\n").unwrap();
    let options = ImportOptions {
        test_fraction: 0.3,
        ..ImportOptions::default()
    };
    catalog.import(&setup.manifest, &options).await.unwrap();
    let after = mistag_queue(catalog, folded, None).await.unwrap();
    assert!(
        !after
            .items
            .iter()
            .any(|i| i.image_id == top.image_id && i.facet == top.facet)
    );
    assert_eq!(after.items.len(), queue.items.len() - 1);

    // A retrain repeats the configuration, folds included, as a child run; a completed run is
    // not trained again.
    let child = create_retrain(catalog, folded, &setup.paths).await.unwrap();
    let child_record = catalog.run(child).await.unwrap().unwrap();
    assert_eq!(child_record.parent_run, Some(folded));
    assert_eq!(child_record.status, RunStatus::Running);
    let parent_record = catalog.run(folded).await.unwrap().unwrap();
    assert_eq!(child_record.config["train"], parent_record.config["train"]);
    assert_eq!(child_record.config["train"]["folds"], 2);
    let again = execute_run(catalog, folded, &setup.paths, Box::new(Silent)).await;
    assert!(again.unwrap_err().to_string().contains("already completed"));
}

/// `drop_suspects`: the fold models score the train split first, the main model then trains
/// without the labels they suspect, and the catalogue, the stored predictions and the review
/// queue keep every label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_suspects_leave_the_main_model_but_not_the_catalogue() {
    let setup = setup(48, true).await;
    let catalog = &setup.catalog;
    let mut refused = config(0);
    refused.drop_suspects = Some(0.5);
    let error = create_run(catalog, &refused, &setup.paths, None)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("drop_suspects needs out-of-fold"),
        "{error}"
    );

    let mut config = config(2);
    config.drop_suspects = Some(0.0);
    let (run, finished) = setup.train(&config).await;
    let dropped = finished.summary.dropped_suspects.clone().unwrap();
    let facets: Vec<&str> = dropped.keys().map(String::as_str).collect();
    assert_eq!(facets, ["length", "silhouette"]);
    let total: u64 = dropped.values().map(|&v| v as u64).sum();

    // Every train label is still stored with the run's predictions, for the review queue.
    let rows = catalog.predictions(run, None).await.unwrap();
    let train_labelled = rows
        .iter()
        .filter(|r| r.split == Split::Train && r.label.is_some())
        .count();
    // The model's lineage is the catalogue's labels, dropped ones included.
    let lineage: serde_json::Value =
        serde_json::from_slice(&std::fs::read(finished.model_dir.join("lineage.json")).unwrap())
            .unwrap();
    let lineage_train: u64 = lineage["labels"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|labels| labels.as_object().unwrap().values())
        .filter_map(|splits| splits["train"].as_u64())
        .sum();
    assert_eq!(train_labelled as u64, lineage_train);
    assert!(
        total > 0,
        "20 % flipped labels, yet nothing suspected: {dropped:?}"
    );

    // The counts are the suspects of the stored out-of-fold scores of the train split,
    // found by confident learning on those rows alone (margin >= 0).
    for facet in catalog.run_facets(run).await.unwrap() {
        let train: Vec<&PredictionRecord> = rows
            .iter()
            .filter(|r| r.facet == facet.facet && r.split == Split::Train)
            .collect();
        let labels: Vec<Option<usize>> = train
            .iter()
            .map(|r| {
                r.label
                    .as_ref()
                    .and_then(|l| facet.labels.iter().position(|x| x == l))
            })
            .collect();
        let raw: Vec<Vec<f32>> = train.iter().map(|r| r.scores.clone()).collect();
        let expected = mistags::calibrated_suspects(&labels, &raw, facet.labels.len())
            .items
            .len();
        // The tiny model's scores sit close to the class thresholds, and the catalogue's
        // copies may round differently from the in-memory ones: allow one image either way.
        let counted = dropped[&facet.facet] as i64;
        assert!(
            (counted - expected as i64).abs() <= 1,
            "{}: dropped {counted}, the stored scores suspect {expected}",
            facet.facet
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_cannot_train_is_marked_failed_and_bad_options_record_nothing() {
    let setup = setup(8, false).await;
    let catalog = &setup.catalog;

    let mut unknown = config(0);
    unknown.facets = vec!["colour".into()];
    assert!(
        create_run(catalog, &unknown, &setup.paths, None)
            .await
            .is_err()
    );
    let one_fold = config(1);
    let refused = create_run(catalog, &one_fold, &setup.paths, None).await;
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("folds 1 would train")
    );
    assert!(catalog.runs().await.unwrap().is_empty(), "nothing recorded");

    // Settings are checked before anything is recorded.
    let mut tiny_images = config(0);
    tiny_images.image_size = 8;
    let refused = create_run(catalog, &tiny_images, &setup.paths, None).await;
    assert!(refused.unwrap_err().to_string().contains("image_size 8"));
    assert!(catalog.runs().await.unwrap().is_empty(), "nothing recorded");

    // Photos that vanish after the run was recorded fail it, with the reason.
    let run = create_run(catalog, &config(0), &setup.paths, None)
        .await
        .unwrap();
    std::fs::remove_dir_all(setup.manifest.with_file_name("images")).unwrap();
    let error = execute_run(catalog, run, &setup.paths, Box::new(Silent))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("atelier check"), "{error}");
    let record = catalog.run(run).await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.error.as_deref(), Some(error.to_string().as_str()));
    assert!(create_retrain(catalog, 99, &setup.paths).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_scores_against_the_truth_count_agreement_with_the_truth_file() {
    let setup = setup(40, true).await;
    let catalog = &setup.catalog;
    let (run, _) = setup.train(&config(0)).await;
    let scored = atelier_app::dataset::test_metrics_against_truth(catalog, run)
        .await
        .unwrap();
    assert_eq!(
        scored.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
        ["silhouette", "length"]
    );
    let rows = catalog.predictions(run, None).await.unwrap();
    let mut differs_from_labels = false;
    for (facet, metrics) in &scored {
        // Recounted from the truth CSV that synth wrote, not from the catalogue.
        let truth = csv_column(&setup.truth, facet);
        let test: Vec<&PredictionRecord> = rows
            .iter()
            .filter(|r| &r.facet == facet && r.split == Split::Test)
            .collect();
        let agree = test
            .iter()
            .filter(|r| truth[&file_name(&r.uri)] == r.predicted)
            .count();
        assert_eq!(metrics.count as usize, test.len(), "{facet}");
        assert!(
            (metrics.accuracy - agree as f64 / test.len() as f64).abs() < 1e-12,
            "{facet}"
        );
        let labelled = test
            .iter()
            .filter(|r| r.label.as_deref() == Some(r.predicted.as_str()))
            .count();
        differs_from_labels |= labelled != agree;
    }
    assert!(differs_from_labels, "20% label noise shows in some facet");
}
