//! Library-level training tests on a few synthetic photos with the small CNN: resume after an
//! interruption reproduces an uninterrupted run, and a frozen backbone stays frozen while a
//! spatial transformer in front of it learns. (Masking and class weights are checked against
//! their formulas in `src/loss.rs`.)

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use atelier_train::config::HeadKind;
use atelier_train::config::TrainConfig;
use atelier_train::data::{Dataset, Example, FacetSpec, Split};
use atelier_train::progress::{EpochRecord, Observer, Silent};
use atelier_train::{BackboneChoice, train};
use atelier_vision::synth::{SynthOptions, synthesize};
use burn::module::Module;
use burn::prelude::*;

/// `count` 64-pixel synthetic photos with their silhouette and length labels; every fifth
/// image is test.
fn dataset(dir: &Path, count: usize) -> Dataset {
    let summary = synthesize(
        &SynthOptions {
            out_dir: dir.to_path_buf(),
            count,
            seed: 5,
            size: 64,
            label_noise: 0.0,
        },
        &|_| {},
    )
    .unwrap();
    let mut reader = csv::Reader::from_path(&summary.manifest).unwrap();
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let facets: Vec<FacetSpec> = ["silhouette", "length"]
        .iter()
        .map(|name| FacetSpec {
            name: name.to_string(),
            labels: atelier_vision::synth::FACETS
                .iter()
                .find(|(facet, _)| facet == name)
                .unwrap()
                .1
                .iter()
                .map(|l| l.to_string())
                .collect(),
        })
        .collect();
    let examples = reader
        .records()
        .enumerate()
        .map(|(i, record)| {
            let record = record.unwrap();
            Example {
                image_id: format!("{i:064x}"),
                path: dir.join(&record[column("path")]),
                split: if i % 5 == 0 {
                    Split::Test
                } else {
                    Split::Train
                },
                targets: facets
                    .iter()
                    .map(|f| f.labels.iter().position(|l| l == &record[column(&f.name)]))
                    .collect(),
                dress_box: Some(
                    ["x0", "y0", "x1", "y1"].map(|c| record[column(c)].parse().unwrap()),
                ),
                detail_regions: Vec::new(),
            }
        })
        .collect();
    Dataset { facets, examples }
}

fn tiny_config(epochs: usize) -> TrainConfig {
    let mut config = TrainConfig::new(
        BackboneChoice::Tiny,
        vec!["silhouette".into(), "length".into()],
    );
    config.image_size = 32;
    config.epochs = epochs;
    config.batch_size = 8;
    config.learning_rate = 0.01;
    config.head = HeadKind::Pooled;
    config.freeze_backbone = false;
    config.seed = 9;
    config
}

/// Panics when the epoch after `epoch` starts. The checkpoint of `epoch` is written after
/// `epoch_end`, so exactly `epoch` epochs are on disk, as after a `kill -9` between epochs.
struct InterruptAfter {
    epoch: usize,
    seen: usize,
}

impl Observer for InterruptAfter {
    fn epoch_end(&mut self, record: &EpochRecord) {
        self.seen = record.epoch;
    }

    fn phase(&mut self, _name: &str, _total: u64) {
        if self.seen == self.epoch {
            panic!("interrupted");
        }
    }
}

#[test]
fn a_resumed_run_ends_exactly_like_an_uninterrupted_one() {
    let data_dir = tempfile::tempdir().unwrap();
    let data = dataset(data_dir.path(), 40);
    let config = tiny_config(3);

    let straight_dir = tempfile::tempdir().unwrap();
    let straight = train(&data, &config, straight_dir.path(), None, &mut Silent).unwrap();

    let resumed_dir = tempfile::tempdir().unwrap();
    let interrupted = catch_unwind(AssertUnwindSafe(|| {
        let mut stop = InterruptAfter { epoch: 1, seen: 0 };
        train(&data, &config, resumed_dir.path(), None, &mut stop)
    }));
    assert!(interrupted.is_err(), "the first attempt was interrupted");
    let state = std::fs::read_to_string(resumed_dir.path().join("state.json")).unwrap();
    assert!(state.contains("\"completed_epochs\": 1"), "{state}");
    let resumed = train(&data, &config, resumed_dir.path(), None, &mut Silent).unwrap();

    assert_eq!(resumed.history.len(), 3);
    for (a, b) in straight.history.iter().zip(&resumed.history) {
        assert_eq!(a.train_loss, b.train_loss, "epoch {}", a.epoch);
        assert_eq!(a.validation_macro_f1, b.validation_macro_f1);
    }
    assert_eq!(straight.best_epoch, resumed.best_epoch);
    assert_eq!(straight.probabilities, resumed.probabilities);
    assert_eq!(straight.evaluation, resumed.evaluation);

    // A resume with other options is refused instead of mixing two runs.
    let mut other = config.clone();
    other.learning_rate = 0.5;
    let refused = train(&data, &other, resumed_dir.path(), None, &mut Silent);
    assert!(refused.is_err());
}

fn parameters(module: &impl Module) -> Vec<f32> {
    let mut values = Vec::new();
    let mut collect =
        |tensor: Tensor<1>| values.extend(tensor.into_data().try_to_vec::<f32>().unwrap());
    module.visit(&mut Flatten(&mut collect));
    values
}

struct Flatten<'a>(&'a mut dyn FnMut(Tensor<1>));

impl burn::module::ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let tensor = param.val();
        let n = tensor.shape().num_elements();
        (self.0)(tensor.reshape([n]));
    }
}

#[test]
fn a_frozen_backbone_stays_fixed_while_the_spatial_transformer_learns() {
    let data_dir = tempfile::tempdir().unwrap();
    let data = dataset(data_dir.path(), 24);
    let mut config = tiny_config(2);
    config.freeze_backbone = true;
    config.spatial_transformer = true;
    config.learning_rate = 0.05;

    // Start from known weights so the frozen backbone can be compared with them.
    let weights = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../atelier-models/fixtures/tiny_cnn.safetensors");
    config.weights = Some(weights.clone());
    // Built exclusively: the other test may be initialising its run in parallel.
    let initial = atelier_train::init::exclusive(|| {
        BackboneChoice::Tiny
            .build(Some(&weights), &Device::flex())
            .unwrap()
    });
    let checkpoints = tempfile::tempdir().unwrap();
    let outcome = train(&data, &config, checkpoints.path(), None, &mut Silent).unwrap();
    assert_eq!(parameters(&outcome.net.backbone), parameters(&initial));
    let transformer = outcome.net.spatial_transformer.as_ref().expect("attached");
    let theta_weights = parameters(&transformer.fc_theta);
    assert!(
        theta_weights.iter().any(|w| *w != 0.0),
        "the localisation head moved away from its zero initialisation"
    );
}
