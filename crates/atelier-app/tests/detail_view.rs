//! A catalogue run with a detail view (`--detail-crop`) end to end, on a few synthetic photos
//! with the small CNN: the dress locator is trained on the catalogue's boxes and reported, the
//! saved model tags a photo exactly as the run predicted it (same locator, same crop, same
//! heads, same feature tap), cross-fitted folds reuse the placed views, and a catalogue without dress boxes gets
//! an error that says what to do.

mod common;

use std::path::{Path, PathBuf};

use atelier_app::summary::TrainMetrics;
use atelier_app::{AppError, create_run, execute_run};
use atelier_catalog::{Catalog, ImportOptions, Split};
use atelier_models::Device;
use atelier_train::TrainError;
use atelier_train::config::HeadKind;
use atelier_train::config::TrainConfig;
use atelier_train::crop::DetailCrop;
use atelier_train::progress::Silent;
use atelier_train::tagger::Tagger;
use atelier_vision::synth::SynthOptions;
use common::Setup;

async fn setup(count: usize) -> Setup {
    common::setup(
        SynthOptions {
            out_dir: PathBuf::new(),
            count,
            seed: 5,
            size: 96,
            label_noise: 0.0,
        },
        false,
    )
    .await
}

fn config(head: HeadKind, folds: usize) -> TrainConfig {
    let mut config = common::frozen_tiny(&["neckline", "sleeve"]);
    config.epochs = 2;
    config.head = head;
    config.detail_crops = vec![DetailCrop::default()];
    config.folds = folds;
    config.seed = 9;
    config
}

/// The run's stored scores for every image and facet must be what the saved model gives when
/// it tags the file: the tagger runs the whole photo, the locator, the crop and the heads
/// itself, while training read cached feature maps of views the runner placed.
async fn assert_tagging_repeats_the_run(setup: &Setup, run: i64, model_dir: &Path) {
    let tagger = Tagger::load(model_dir, &Device::flex()).unwrap();
    let rows = setup.catalog.predictions(run, None).await.unwrap();
    let test_paths: Vec<PathBuf> = {
        let mut paths: Vec<PathBuf> = rows
            .iter()
            .filter(|r| r.split == Split::Test)
            .map(|r| PathBuf::from(&r.uri))
            .collect();
        paths.sort();
        paths.dedup();
        paths
    };
    assert!(!test_paths.is_empty());
    let tagged = tagger.tag(&test_paths, 4);
    let mut compared = 0;
    for result in &tagged {
        let tags = result.outcome.as_ref().expect("synthetic photos decode");
        for tag in tags {
            let row = rows
                .iter()
                .find(|r| Path::new(&r.uri) == result.path && r.facet == tag.facet)
                .expect("a stored prediction per image and facet");
            assert_eq!(tag.label, row.predicted, "{}", result.path.display());
            for ((_, tagged), stored) in tag.scores.iter().zip(&row.scores) {
                assert!(
                    (tagged - stored).abs() < 1e-4,
                    "{} {}: tagged {tagged}, stored {stored}",
                    result.path.display(),
                    tag.facet
                );
            }
            compared += 1;
        }
    }
    assert_eq!(compared, test_paths.len() * 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detail_view_model_tags_new_photos_as_it_was_evaluated() {
    let setup = setup(40).await;
    // The third model reads the small CNN's second stage instead of its final map, in training
    // (cached maps) and in tagging (the backbone run anew) alike, and has a second, wider
    // detail view.
    let wider = DetailCrop {
        side: 0.9,
        ..DetailCrop::default()
    };
    for (head, stage, more_crops) in [
        (HeadKind::Spatial { channels: 4 }, None, vec![]),
        (HeadKind::Pooled, None, vec![]),
        (HeadKind::Grid { cells: 2 }, Some(2), vec![wider]),
    ] {
        let mut config = config(head, 0);
        config.feature_stage = stage;
        config.detail_crops.extend(more_crops);
        let (run, finished) = setup.train(&config).await;
        let locator = finished
            .summary
            .locator
            .expect("a detail-view run reports its locator");
        assert!(locator.fit_images > 20, "{locator:?}");
        let iou = locator.test_mean_iou.unwrap();
        assert!((0.0..=1.0).contains(&iou), "{locator:?}");
        assert_tagging_repeats_the_run(&setup, run, &finished.model_dir).await;
    }
    // The first two runs placed their views from the same cached whole-photo maps; the
    // stage-2 maps are cached apart from the final ones; detail maps are cached apart from
    // whole ones, and a configuration's detail views share one folder (the crop is in the file
    // name).
    let caches: Vec<String> = std::fs::read_dir(&setup.paths.feature_cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(caches.len(), 4, "{caches:?}");
    assert_eq!(
        caches.iter().filter(|c| c.ends_with(".detail")).count(),
        2,
        "{caches:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folds_reuse_the_placed_views() {
    let setup = setup(30).await;
    let (_, finished) = setup.train(&config(HeadKind::Pooled, 2)).await;
    assert_eq!(finished.summary.train_metrics, TrainMetrics::OutOfFold);
    // One detail map per image: the fold models found every view in the cache.
    let detail_dir = std::fs::read_dir(&setup.paths.feature_cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "detail"))
        .unwrap();
    let files: usize = std::fs::read_dir(&detail_dir)
        .unwrap()
        .map(|prefix| std::fs::read_dir(prefix.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(files, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalogue_without_dress_boxes_is_refused_with_a_fix() {
    let setup = setup(12).await;
    // The same photos, imported again from a manifest without box columns.
    let text = std::fs::read_to_string(&setup.manifest).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let keep: Vec<usize> = (0..headers.len())
        .filter(|&i| !["x0", "y0", "x1", "y1"].contains(&&headers[i]))
        .collect();
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(keep.iter().map(|&i| &headers[i]))
        .unwrap();
    for record in reader.records() {
        let record = record.unwrap();
        writer
            .write_record(keep.iter().map(|&i| &record[i]))
            .unwrap();
    }
    let no_boxes = setup.manifest.with_file_name("no-boxes.csv");
    std::fs::write(&no_boxes, writer.into_inner().unwrap()).unwrap();
    let catalog = Catalog::open(&format!(
        "sqlite://{}",
        setup.manifest.with_file_name("bare.db").display()
    ))
    .await
    .unwrap();
    catalog
        .import(&no_boxes, &ImportOptions::default())
        .await
        .unwrap();
    let run = create_run(&catalog, &config(HeadKind::Pooled, 0), &setup.paths, None)
        .await
        .unwrap();
    let Err(error) = execute_run(&catalog, run, &setup.paths, Box::new(Silent)).await else {
        panic!("no boxes, no locator");
    };
    let message = error.to_string();
    assert!(
        matches!(error, AppError::Train(TrainError::EmptyDataset { .. })),
        "{message}"
    );
    assert!(message.contains("dress box"), "{message}");
    assert!(message.contains("x0,y0,x1,y1"), "{message}");
}
