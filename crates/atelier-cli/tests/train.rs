//! End-to-end tests of training, evaluation, tagging and resume with the small CNN on a small
//! synthetic catalogue (fast enough for every test run; the demo covers the real backbone).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{Workspace, assert_same_results, json_lines, json_of, tiny_training};

/// Options of a quick run of the small CNN, fine-tuned end to end.
fn tiny_run(epochs: &str, seed: &str) -> Vec<String> {
    tiny_training(epochs, &["--lr", "0.01", "--seed", seed])
        .into_iter()
        .map(str::to_string)
        .collect()
}

fn args(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

/// Precision, recall, F1, support per class, written independently of atelier's metrics:
/// counts of (truth, predicted) pairs, then the textbook formulas.
fn recompute(labels: &[String], pairs: &[(String, String)]) -> Vec<(f64, f64, f64, u64)> {
    labels
        .iter()
        .map(|class| {
            let tp = pairs
                .iter()
                .filter(|(t, p)| t == class && p == class)
                .count() as f64;
            let predicted = pairs.iter().filter(|(_, p)| p == class).count() as f64;
            let support = pairs.iter().filter(|(t, _)| t == class).count() as f64;
            let precision = if predicted > 0.0 { tp / predicted } else { 0.0 };
            let recall = if support > 0.0 { tp / support } else { 0.0 };
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            (precision, recall, f1, support as u64)
        })
        .collect()
}

#[test]
fn train_eval_and_tag_agree_with_each_other() {
    let workspace = Workspace::synthetic(96, &[], &[]);
    let mut options = tiny_run("2", "3");
    options.extend(["--facets", "length,neckline", "--class-weights", "inverse"].map(String::from));
    let trained = json_of(&workspace.run(&args(&options)));
    let run = trained["run"].as_i64().expect("run id");
    assert!(
        trained["facets"]["length"]["test_macro_f1"].is_number(),
        "{trained}"
    );

    // The tables, in each facet's stored label order.
    let eval = json_of(&workspace.run(&["eval", &run.to_string(), "--json"]));
    assert_eq!(eval["run"], run);
    let facets = eval["facets"].as_object().unwrap();
    assert_eq!(facets.keys().collect::<Vec<_>>(), ["length", "neckline"]);

    // Recompute every table from the per-image predictions.
    let lines = json_lines(&workspace.run(&["eval", &run.to_string(), "--predictions", "--json"]));
    assert_eq!(lines.len(), 96 * 2, "one line per image and facet");
    for (facet, table) in facets {
        let labels: Vec<String> = serde_json::from_value(table["labels"].clone()).unwrap();
        let weights = table["class_weights"].as_array().unwrap();
        assert_eq!(weights.len(), labels.len());
        for split in ["train", "test"] {
            let pairs: Vec<(String, String)> = lines
                .iter()
                .filter(|l| l["facet"] == *facet && l["split"] == split && l["label"].is_string())
                .map(|l| {
                    let scores: Vec<f64> = serde_json::from_value(l["scores"].clone()).unwrap();
                    assert_eq!(scores.len(), labels.len());
                    assert!((scores.iter().sum::<f64>() - 1.0).abs() < 1e-4);
                    // The predicted label is the highest score.
                    let best = scores
                        .iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .unwrap()
                        .0;
                    assert_eq!(l["predicted"], labels[best].as_str());
                    (
                        l["label"].as_str().unwrap().to_owned(),
                        l["predicted"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            let expected = recompute(&labels, &pairs);
            let per_class = table[split]["per_class"].as_array().unwrap();
            assert_eq!(per_class.len(), labels.len());
            for ((got, want), label) in per_class.iter().zip(&expected).zip(&labels) {
                assert_eq!(got["label"], label.as_str());
                assert_eq!(
                    got["support"].as_u64().unwrap(),
                    want.3,
                    "{facet} {split} {label}"
                );
                for (key, value) in [("precision", want.0), ("recall", want.1), ("f1", want.2)] {
                    let stored = got[key].as_f64().unwrap();
                    assert!(
                        (stored - value).abs() < 1e-12,
                        "{facet} {split} {label} {key}"
                    );
                }
            }
            let macro_f1 = expected.iter().map(|c| c.2).sum::<f64>() / labels.len() as f64;
            assert!((table[split]["macro_f1"].as_f64().unwrap() - macro_f1).abs() < 1e-12);
        }
    }

    // Tagging: good files, a folder, a corrupt file; the corrupt one fails on its own.
    let images = workspace.root.join("synth/images");
    let corrupt = workspace.root.join("broken.jpg");
    std::fs::write(&corrupt, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let first = images.join("000000.jpg");
    let output = workspace.run(&[
        "tag",
        first.to_str().unwrap(),
        corrupt.to_str().unwrap(),
        images.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(2), "some files failed");
    let records = json_lines(&output);
    assert_eq!(records.len(), 2 + 96);
    let broken = &records[1];
    assert_eq!(broken["ok"], false);
    assert!(
        broken["error"].as_str().unwrap().contains("broken.jpg"),
        "{broken}"
    );
    for record in records.iter().filter(|r| r["ok"] == true) {
        let facets = record["facets"].as_object().unwrap();
        assert_eq!(facets.len(), 2);
        for (facet, tag) in facets {
            let scores = tag["scores"].as_object().unwrap();
            let labels: Vec<&String> = scores.keys().collect();
            let order: Vec<String> =
                serde_json::from_value(eval["facets"][facet]["labels"].clone()).unwrap();
            assert_eq!(
                labels,
                order.iter().collect::<Vec<_>>(),
                "scores in label order"
            );
            let best = scores
                .iter()
                .max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap()))
                .unwrap();
            assert_eq!(tag["label"], best.0.as_str());
            assert_eq!(tag["confidence"], *best.1);
        }
    }
    // Tagging an image gives the same scores as the run's stored prediction for it.
    let stored: BTreeMap<(String, String), Vec<f64>> = lines
        .iter()
        .map(|l| {
            (
                (
                    l["path"].as_str().unwrap().to_owned(),
                    l["facet"].as_str().unwrap().to_owned(),
                ),
                serde_json::from_value(l["scores"].clone()).unwrap(),
            )
        })
        .collect();
    let canonical = std::fs::canonicalize(&first).unwrap();
    let tagged = &records[0]["facets"]["length"]["scores"];
    let stored_scores = stored
        .iter()
        .find(|((path, facet), _)| {
            facet == "length" && std::fs::canonicalize(path).ok().as_ref() == Some(&canonical)
        })
        .map(|(_, scores)| scores)
        .expect("the first image has a stored prediction");
    for (tagged, stored) in tagged.as_object().unwrap().values().zip(stored_scores) {
        assert!((tagged.as_f64().unwrap() - stored).abs() < 1e-5);
    }
}

/// The checkpoint state of run `run`, kept under the catalogue's folder of `checkpoints/`.
fn checkpoint_state(root: &Path, run: i64) -> Option<Value> {
    let text = std::fs::read_dir(root.join("checkpoints"))
        .ok()?
        .filter_map(|entry| entry.ok())
        .find_map(|entry| {
            std::fs::read_to_string(entry.path().join(format!("run-{run}/state.json"))).ok()
        })?;
    serde_json::from_str(&text).ok()
}

#[test]
fn resume_after_kill_9_ends_like_an_uninterrupted_run() {
    let workspace = Workspace::synthetic(160, &[], &[]);
    let options = tiny_run("5", "11");

    let uninterrupted = json_of(&workspace.run(&args(&options)));
    assert_eq!(uninterrupted["run"], 1);

    // The same run again, killed without warning once it has checkpointed an epoch.
    let mut child = workspace
        .command(&args(&options))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let killed_after = loop {
        if let Some(state) = checkpoint_state(&workspace.root, 2) {
            let epochs = state["completed_epochs"].as_u64().unwrap();
            if epochs >= 1 {
                child.kill().unwrap(); // SIGKILL on Unix
                child.wait().unwrap();
                break epochs;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(killed_after < 5, "killed mid-run");
    let runs = json_of(&workspace.run(&["runs", "--json"]));
    let killed = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == 2)
        .unwrap();
    assert_eq!(killed["status"], "running", "a killed run is left running");

    let resumed = json_of(&workspace.run(&["train", "facets", "--resume", "2", "--json"]));
    assert_eq!(resumed["run"], 2);

    assert_same_results(&|args: &[&str]| workspace.command(args), 1, 2);
    // A finished run cannot be resumed again.
    let again = workspace.run(&["train", "facets", "--resume", "2"]);
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn bad_training_options_are_refused_with_the_fix() {
    let workspace = Workspace::synthetic(12, &[], &[]);
    for (option, value, hint) in [
        ("--backbone", "vgg", "resnet18"),
        ("--class-weights", "sqrt", "inverse"),
        ("--facets", "colour", "colour"),
        ("--device", "tpu", "vulkan"),
    ] {
        let mut options = vec!["train", "facets", "--epochs", "1", "--image-size", "64"];
        if option != "--backbone" {
            options.extend(["--backbone", "tiny"]);
        }
        options.extend([option, value]);
        let output = workspace.run(&options);
        assert_eq!(output.status.code(), Some(2), "{option} {value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(hint), "{option}: {stderr}");
    }
    let missing = workspace.run(&["tag", "--model", "run-99", "x.jpg"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("run-99"));
}
