//! A similarity run end to end on synthetic photos with the small CNN: it locates, crops,
//! embeds and scores, and the numbers it reports are consistent with its embeddings.

use std::collections::BTreeMap;
use std::path::Path;

use atelier_train::BackboneChoice;
use atelier_train::data::{Dataset, Example, Split};
use atelier_train::progress::Silent;
use atelier_train::similarity::{SimilarityConfig, recall_at};
use atelier_train::similarity_run::{
    SimilarityData, SimilarityRunConfig, design_groups, run_similarity,
};
use atelier_vision::synth::{SynthOptions, synthesize};

/// `count` 64-pixel synthetic photos with their designs, boxes and neckline labels.
fn data(dir: &Path, count: usize) -> SimilarityData {
    let summary = synthesize(
        &SynthOptions {
            out_dir: dir.to_path_buf(),
            count,
            seed: 11,
            size: 64,
            label_noise: 0.0,
        },
        &|_| {},
    )
    .unwrap();
    let mut reader = csv::Reader::from_path(&summary.manifest).unwrap();
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (mut examples, mut designs, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for (i, record) in reader.records().enumerate() {
        let record = record.unwrap();
        examples.push(Example {
            image_id: format!("{i:064x}"),
            path: dir.join(&record[column("path")]),
            split: if i % 4 == 0 {
                Split::Test
            } else {
                Split::Train
            },
            targets: Vec::new(),
            dress_box: Some(["x0", "y0", "x1", "y1"].map(|c| record[column(c)].parse().unwrap())),
            detail_regions: Vec::new(),
        });
        designs.push(Some(record[column("design")].to_string()));
        labels.push(BTreeMap::from([(
            "neckline".to_string(),
            record[column("neckline")].to_string(),
        )]));
    }
    SimilarityData {
        dataset: Dataset {
            facets: Vec::new(),
            examples,
        },
        designs,
        variants: Vec::new(),
        labels,
        stored_triplets: Vec::new(),
    }
}

#[test]
fn a_similarity_run_embeds_every_photo_and_scores_held_out_designs() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = data(dir.path(), 90);
    let settings = SimilarityRunConfig {
        backbone: BackboneChoice::Tiny,
        image_size: 64,
        feature_stage: None,
        similarity: SimilarityConfig {
            embedding_dim: 16,
            hidden: 32,
            epochs: 3,
            designs_per_batch: 4,
            eval_fraction: 0.4,
            ..SimilarityConfig::default()
        },
        ..SimilarityRunConfig::default()
    };
    let outcome = run_similarity(&mut data, &settings, Some(7), None, &mut Silent).unwrap();
    let n = data.dataset.examples.len();
    assert_eq!(outcome.trained.len(), n);
    assert_eq!(outcome.off_the_shelf.len(), n);
    // The network's 16 numbers, the facet probes' classes, the colour histogram.
    let probe = outcome
        .manifest
        .probe
        .as_ref()
        .expect("facet probes by default");
    let classes: usize = probe.facets.iter().map(|(_, classes)| classes).sum();
    assert!(classes > 0);
    let width = 16 + classes + atelier_train::colour::COLOUR_DIMS;
    assert!(
        outcome
            .trained
            .iter()
            .all(|e| e.len() == width && (e.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-4)
    );
    assert_eq!(
        outcome.evaluation.facet_probe_accuracy.len(),
        probe.facets.len()
    );
    let evaluation = &outcome.evaluation;
    assert!(
        evaluation.held_out_designs > 0 && evaluation.queries > 0,
        "{evaluation:?}"
    );
    assert!(evaluation.locator.test_mean_iou.is_some());
    // The reported Recall@1 is the one its embeddings give on its held-out photos.
    let groups = design_groups(&data.designs);
    let held: Vec<usize> = (0..n)
        .filter(|&i| {
            atelier_train::similarity::held_out_design(
                data.designs[i].as_deref().unwrap(),
                settings.similarity.seed,
                settings.similarity.eval_fraction,
            )
        })
        .collect();
    let everyone: Vec<usize> = (0..n).collect();
    assert_eq!(evaluation.held_out_photos, held.len());
    assert_eq!(
        evaluation.trained.recall_at_1,
        recall_at(&outcome.trained, &groups, &held, &everyone, 1)
    );
    for scores in [evaluation.trained, evaluation.off_the_shelf] {
        for value in [
            scores.recall_at_1,
            scores.recall_at_10,
            scores.triplet_accuracy,
        ] {
            let value = value.expect("a score");
            assert!((0.0..=1.0).contains(&value));
        }
        assert!(scores.recall_at_10 >= scores.recall_at_1);
    }
    // Every photo got a detail region: the dress square.
    assert!(
        data.dataset
            .examples
            .iter()
            .all(|e| e.detail_regions.len() == 1)
    );
    assert_eq!(outcome.manifest.run, Some(7));
}
