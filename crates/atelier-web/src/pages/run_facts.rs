//! How a run trained, in words, for its page: the loss its heads learned with, its detail views
//! and how well their dress locator placed them, and the train labels its main model left out.
//! The JSON twin of the page carries the same facts as the stored configuration and summary.

use atelier_app::RunSummary;
use atelier_train::TrainConfig;
use atelier_train::loss::ClassWeighting;
use serde_json::Value;

/// `(term, description)` pairs for the run page's facts list, from the run's stored
/// configuration (`{"train": TrainConfig}`) and its summary. A configuration this version
/// cannot read gives no facts rather than wrong ones.
pub fn training_facts(config: &Value, summary: Option<&RunSummary>) -> Vec<(&'static str, String)> {
    let Ok(train) = serde_json::from_value::<TrainConfig>(config["train"].clone()) else {
        return Vec::new();
    };
    let mut facts = vec![("Loss", loss_text(&train))];
    if !train.detail_crops.is_empty() {
        let sides: Vec<String> = train
            .detail_crops
            .iter()
            .map(|c| format!("{}", c.side))
            .collect();
        let mut text = format!(
            "{} upper-body square{} of {} dress-box heights, placed by a dress locator",
            train.detail_crops.len(),
            if train.detail_crops.len() == 1 {
                ""
            } else {
                "s"
            },
            sides.join(", ")
        );
        if let Some(iou) = summary.and_then(|s| s.locator?.test_mean_iou) {
            text.push_str(&format!(" (mean IoU {iou:.3} on the test split's boxes)"));
        }
        facts.push(("Detail views", text));
    }
    if let (Some(margin), Some(dropped)) = (
        train.drop_suspects,
        summary.and_then(|s| s.dropped_suspects.as_ref()),
    ) {
        let counts: Vec<String> = dropped
            .iter()
            .map(|(facet, count)| format!("{facet} {count}"))
            .collect();
        facts.push((
            "Left out of training",
            format!(
                "{}: train labels the fold models confidently disputed (margin ≥ {margin}); \
                 the catalogue and the mistag queue keep them",
                counts.join(", ")
            ),
        ));
    }
    facts.extend(publishing_fact(config, summary));
    facts
}

/// Where the run's model is published (or was to be, and why that failed).
fn publishing_fact(config: &Value, summary: Option<&RunSummary>) -> Option<(&'static str, String)> {
    let name = config["publish"].as_str()?;
    let summary = summary?;
    if let Some(published) = &summary.published {
        let text = format!("{} in {}", published.model, published.store);
        return Some(("Published", text));
    }
    summary
        .publish_error
        .as_ref()
        .map(|error| ("Published", format!("not as {name}: {error}")))
}

fn loss_text(train: &TrainConfig) -> String {
    let loss = match train.gce_q {
        Some(q) => format!("generalised cross-entropy (q = {q})"),
        None if train.focal_gamma > 0.0 => format!("focal loss (γ = {})", train.focal_gamma),
        None => "cross-entropy".to_string(),
    };
    let weights = match train.class_weighting {
        ClassWeighting::None => String::new(),
        ClassWeighting::Inverse => ", inverse-frequency class weights".to_string(),
        ClassWeighting::Effective { beta } => {
            format!(", effective-number class weights (β = {beta})")
        }
    };
    format!("{loss}{weights}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use atelier_train::BackboneChoice;
    use atelier_train::crop::DetailCrop;
    use serde_json::json;

    fn stored(train: &TrainConfig) -> Value {
        json!({ "train": train })
    }

    /// A summary with nothing but `extra` set.
    fn summary(extra: Value) -> RunSummary {
        let mut base = json!({
            "facets": {}, "best_epoch": 1, "epochs_run": 1, "stopped_early": false,
            "seconds": 1.0,
        });
        for (key, value) in extra.as_object().unwrap() {
            base[key] = value.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn a_plain_run_names_its_loss_only() {
        let train = TrainConfig::new(BackboneChoice::Tiny, vec!["sleeve".into()]);
        let facts = training_facts(&stored(&train), None);
        assert_eq!(facts, vec![("Loss", "cross-entropy".to_string())]);
    }

    #[test]
    fn the_demo_settings_are_spelled_out_with_their_results() {
        let mut train = TrainConfig::new(BackboneChoice::Tiny, vec!["sleeve".into()]);
        train.gce_q = Some(0.7);
        train.class_weighting = ClassWeighting::Effective { beta: 0.999 };
        let crop = DetailCrop {
            side: 0.72,
            top_margin: 0.05,
        };
        train.detail_crops = vec![crop, DetailCrop { side: 0.9, ..crop }];
        train.folds = 3;
        train.drop_suspects = Some(0.5);
        let summary = summary(json!({
            "locator": {"fit_images": 2443, "test_mean_iou": 0.8721},
            "dropped_suspects": {"neckline": 96, "sleeve": 105},
        }));
        let facts = training_facts(&stored(&train), Some(&summary));
        assert_eq!(
            facts,
            vec![
                (
                    "Loss",
                    "generalised cross-entropy (q = 0.7), effective-number class weights \
                     (β = 0.999)"
                        .to_string()
                ),
                (
                    "Detail views",
                    "2 upper-body squares of 0.72, 0.9 dress-box heights, placed by a dress \
                     locator (mean IoU 0.872 on the test split's boxes)"
                        .to_string()
                ),
                (
                    "Left out of training",
                    "neckline 96, sleeve 105: train labels the fold models confidently \
                     disputed (margin ≥ 0.5); the catalogue and the mistag queue keep them"
                        .to_string()
                ),
            ]
        );
    }

    #[test]
    fn focal_loss_and_unreadable_configurations() {
        let mut train = TrainConfig::new(BackboneChoice::Tiny, vec!["sleeve".into()]);
        train.focal_gamma = 2.0;
        train.class_weighting = ClassWeighting::Inverse;
        assert_eq!(
            training_facts(&stored(&train), None)[0].1,
            "focal loss (γ = 2), inverse-frequency class weights"
        );
        assert!(training_facts(&json!({"train": {"backbone": 3}}), None).is_empty());
    }

    #[test]
    fn the_published_model_or_the_failure_is_named() {
        let config = json!({"publish": "dresses"});
        let done = summary(
            json!({"published": {"model": "dresses@2", "name": "dresses",
            "version": 2, "store": "file:///m", "files": 5, "bytes": 10}}),
        );
        assert_eq!(
            publishing_fact(&config, Some(&done)),
            Some(("Published", "dresses@2 in file:///m".to_string()))
        );
        let failed = summary(json!({"publish_error": "the store is down"}));
        assert_eq!(
            publishing_fact(&config, Some(&failed)).unwrap().1,
            "not as dresses: the store is down"
        );
        assert_eq!(publishing_fact(&json!({}), Some(&done)), None);
        assert_eq!(publishing_fact(&config, None), None);
    }
}
