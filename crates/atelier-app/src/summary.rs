//! What a completed run stores as its summary: per-facet scores, how training went, the
//! dress locator's fit, the labels left out, where the model was published. One typed record,
//! written by the runner, read by the command line, the demo and the web app; it prints itself
//! as the table `atelier train facets` shows.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use std::fmt;

use atelier_catalog::RunRecord;
use atelier_train::dress_boxes::LocatorReport;
use atelier_train::progress::EpochRecord;
use serde::{Deserialize, Serialize};

/// A facet's headline scores in a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FacetScores {
    /// Out of fold when the run has folds (see [`RunSummary::train_metrics`]).
    pub train_macro_f1: f64,
    pub test_macro_f1: f64,
    pub test_weighted_f1: f64,
    pub test_accuracy: f64,
}

/// Where the train scores come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainMetrics {
    /// From models that never saw the image (`--folds`).
    OutOfFold,
    /// From the model that trained on the image: flattering.
    InSample,
}

/// A model a run published to the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedModel {
    /// `NAME@VERSION`.
    pub model: String,
    pub name: String,
    pub version: u64,
    pub store: String,
    pub files: usize,
    pub bytes: u64,
}

/// The summary stored with a completed run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// By facet name, in the run's facet order (the catalogue stores them by name).
    pub facets: IndexMap<String, FacetScores>,
    /// The epoch whose model was kept (1-based).
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub stopped_early: bool,
    #[serde(default)]
    pub history: Vec<EpochRecord>,
    #[serde(default)]
    pub folds: usize,
    #[serde(default = "in_sample")]
    pub train_metrics: TrainMetrics,
    /// How well the dress locator of a detail-view run placed its boxes.
    pub locator: Option<LocatorReport>,
    /// Per facet, the train labels the main model did not learn from (`--drop-suspects`).
    pub dropped_suspects: Option<BTreeMap<String, usize>>,
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<PublishedModel>,
    /// Why publishing failed, for a run recorded with a name to publish under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_error: Option<String>,
}

fn in_sample() -> TrainMetrics {
    TrainMetrics::InSample
}

impl RunSummary {
    /// The summary of a completed run, or `None` when it has none (or one this version of
    /// atelier cannot read).
    pub fn of(record: &RunRecord) -> Option<RunSummary> {
        serde_json::from_value(record.summary.clone()?).ok()
    }
}

/// The run's table: per facet, train and test macro-F1 and test accuracy, then notes on the
/// train scores, the locator, the labels left out and the published model.
impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<12} {:>14} {:>14} {:>12}",
            "facet", "train macro-F1", "test macro-F1", "test acc."
        )?;
        for (facet, scores) in &self.facets {
            writeln!(
                f,
                "{facet:<12} {:>14.3} {:>14.3} {:>12.3}",
                scores.train_macro_f1, scores.test_macro_f1, scores.test_accuracy
            )?;
        }
        if self.train_metrics == TrainMetrics::OutOfFold {
            writeln!(
                f,
                "train macro-F1 is out of fold ({} folds): each train image scored by a model \
                 that never saw it",
                self.folds
            )?;
        }
        if let Some(locator) = &self.locator {
            let iou = locator
                .test_mean_iou
                .map_or("no test boxes".to_string(), |iou| {
                    format!("mean IoU {iou:.3} on the test split's boxes")
                });
            writeln!(
                f,
                "dress locator (places the detail views): learned from {} boxes, {iou}",
                locator.fit_images
            )?;
        }
        if let Some(dropped) = &self.dropped_suspects {
            let counts: Vec<String> = dropped
                .iter()
                .map(|(facet, count)| format!("{facet} {count}"))
                .collect();
            writeln!(
                f,
                "suspected mistags left out of the main model's training (the catalogue keeps \
                 them): {}",
                counts.join(", ")
            )?;
        }
        if let Some(published) = &self.published {
            writeln!(f, "published {} to {}", published.model, published.store)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> RunSummary {
        let scores = FacetScores {
            train_macro_f1: 0.81234,
            test_macro_f1: 0.9,
            test_weighted_f1: 0.91,
            test_accuracy: 0.95,
        };
        RunSummary {
            facets: IndexMap::from([("sleeve".to_string(), scores)]),
            best_epoch: 3,
            epochs_run: 3,
            stopped_early: false,
            history: Vec::new(),
            folds: 3,
            train_metrics: TrainMetrics::OutOfFold,
            locator: Some(LocatorReport {
                fit_images: 40,
                test_mean_iou: Some(0.5),
                whole_photo: None,
                dress_crop: None,
            }),
            dropped_suspects: Some(BTreeMap::from([("sleeve".to_string(), 7)])),
            seconds: 1.5,
            published: None,
            publish_error: None,
        }
    }

    #[test]
    fn a_summary_reads_back_from_the_json_it_writes() {
        let written = serde_json::to_value(summary()).unwrap();
        assert_eq!(written["train_metrics"], "out_of_fold");
        assert_eq!(written["facets"]["sleeve"]["test_macro_f1"], 0.9);
        assert!(written.get("published").is_none());
        let back: RunSummary = serde_json::from_value(written).unwrap();
        assert_eq!(back, summary());
    }

    #[test]
    fn the_table_names_every_facet_and_note() {
        let text = summary().to_string();
        let row = format!(
            "{:<12} {:>14} {:>14} {:>12}",
            "sleeve", "0.812", "0.900", "0.950"
        );
        assert!(text.contains(&row), "{text}");
        assert!(text.contains("out of fold (3 folds)"), "{text}");
        assert!(
            text.contains("learned from 40 boxes, mean IoU 0.500"),
            "{text}"
        );
        assert!(text.contains("them): sleeve 7"), "{text}");
    }
}
