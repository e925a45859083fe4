//! End-to-end tests of `train facets --folds`, `atelier mistags` and `atelier retrain` with the
//! small CNN on a small synthetic catalogue with label noise.

use std::collections::HashMap;

use serde_json::Value;

mod common;

use common::{Workspace, json_lines, json_of, tiny_training};

/// A quick run of the small CNN on the length and silhouette facets.
fn tiny_run<'a>(epochs: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut options = vec![
        "--lr",
        "0.01",
        "--seed",
        "3",
        "--facets",
        "length,silhouette",
    ];
    options.extend(extra);
    tiny_training(epochs, &options)
}

/// `eval RUN --predictions` lines by (image, facet).
fn predictions(workspace: &Workspace, run: &str) -> HashMap<(String, String), Value> {
    let output = workspace.run(&["eval", run, "--predictions", "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    json_lines(&output)
        .into_iter()
        .map(|line| {
            let key = (
                line["image"].as_str().unwrap().to_owned(),
                line["facet"].as_str().unwrap().to_owned(),
            );
            (key, line)
        })
        .collect()
}

#[test]
fn folds_give_out_of_fold_train_predictions_and_a_queue_of_out_of_sample_suspects() {
    let workspace =
        Workspace::synthetic(80, &["--label-noise", "0.2"], &["--test-fraction", "0.3"]);
    let trained = json_of(&workspace.run(&tiny_run("2", &["--freeze-backbone", "--folds", "2"])));
    let run = trained["run"].as_i64().unwrap().to_string();

    let lines = predictions(&workspace, &run);
    assert_eq!(lines.len(), 80 * 2);
    let train = lines.values().filter(|l| l["split"] == "train").count();
    assert!(train > 0 && train < lines.len());
    for line in lines.values() {
        let expected = line["split"] == "train";
        assert_eq!(line["out_of_fold"], expected, "{line}");
    }
    let runs = json_of(&workspace.run(&["runs", "--json"]));
    assert_eq!(runs[0]["summary"]["train_metrics"], "out_of_fold");
    assert_eq!(runs[0]["config"]["train"]["folds"], 2);

    let queue = json_of(&workspace.run(&["mistags", &run, "--limit", "1000", "--json"]));
    assert_eq!(queue["run"].as_i64().unwrap().to_string(), run);
    assert_eq!(queue["train_images_included"], true);
    let items = queue["items"].as_array().unwrap();
    assert!(!items.is_empty(), "20% label noise leaves suspects");
    // The likeliest mistakes first: the lowest calibrated probability of the given label.
    let given: Vec<f64> = items
        .iter()
        .map(|i| i["given_probability"].as_f64().unwrap())
        .collect();
    assert!(given.windows(2).all(|p| p[0] <= p[1]), "{given:?}");
    let estimates = queue["estimates"].as_array().unwrap();
    assert_eq!(estimates.len(), 2, "{estimates:?}");
    for estimate in estimates {
        assert!(
            estimate["estimated_wrong"].as_u64().unwrap() > 0,
            "{estimate}"
        );
    }
    for item in items {
        let key = (
            item["image_id"].as_str().unwrap().to_owned(),
            item["facet"].as_str().unwrap().to_owned(),
        );
        let line = &lines[&key];
        assert!(
            line["split"] == "test" || line["out_of_fold"] == true,
            "{item} is in-sample"
        );
        assert_eq!(item["split"], line["split"]);
        assert_eq!(item["given"], line["label"]);
        assert_ne!(item["given"], item["suggested"]);
    }
    // No truth was imported: no precision, no known flips, no recall.
    assert_eq!(queue["precision_at"], Value::Array(vec![]));
    assert_eq!(queue["known_flips"], Value::Null);
    assert_eq!(queue["recall"], Value::Null);

    // --limit cuts the listing, not the order; --facet keeps one facet.
    let first = json_of(&workspace.run(&["mistags", &run, "--limit", "2", "--json"]));
    let first_items = first["items"].as_array().unwrap();
    assert_eq!(first_items.len(), items.len().min(2));
    assert_eq!(first_items[..], items[..first_items.len()]);
    let length = json_of(&workspace.run(&["mistags", &run, "--facet", "length", "--json"]));
    let length_items = length["items"].as_array().unwrap();
    assert!(length_items.iter().all(|i| i["facet"] == "length"));
    let expected: Vec<&Value> = items.iter().filter(|i| i["facet"] == "length").collect();
    assert_eq!(length_items.len(), expected.len().min(50));

    let text = workspace.run(&["mistags", &run]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("suspected mistags"), "{text}");
    assert!(text.contains(" -> "), "{text}");
    assert!(text.contains("wrong labels among"), "{text}");

    for (args, hint) in [
        (vec!["mistags", "99"], "99"),
        (vec!["mistags", &run, "--facet", "neckline"], "neckline"),
    ] {
        let refused = workspace.run(&args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&refused.stderr).contains(hint));
    }
}

#[test]
fn retrain_repeats_a_run_with_its_options_as_its_child() {
    let workspace =
        Workspace::synthetic(40, &["--label-noise", "0.2"], &["--test-fraction", "0.3"]);
    // Full fine-tuning with folds works, and warns of its cost.
    let output = workspace.run(&tiny_run("1", &["--folds", "2"]));
    let trained = json_of(&output);
    assert_eq!(trained["run"], 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("2 folds without cached features"),
        "{stderr}"
    );

    let retrained = json_of(&workspace.run(&["retrain", "1", "--json"]));
    assert_eq!(retrained["run"], 2);
    assert_eq!(retrained["parent_run"], 1);
    assert!(retrained["facets"]["length"]["test_macro_f1"].is_number());

    let runs = json_of(&workspace.run(&["runs", "--json"]));
    let record = |id: i64| {
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
    };
    let (parent, child) = (record(1), record(2));
    assert_eq!(child["parent_run"], 1);
    assert_eq!(child["status"], "completed");
    assert_eq!(
        child["config"], parent["config"],
        "same options, folds included"
    );
    assert!(
        predictions(&workspace, "2")
            .values()
            .all(|l| l["out_of_fold"] == (l["split"] == "train"))
    );

    let missing = workspace.run(&["retrain", "99"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("99"));
}
