//! End-to-end tests of the `atelier` binary: exit codes, `--json` output, and the
//! synth → import → check loop with the corrupt-file battery on SQLite and on PostgreSQL.

use std::path::Path;
use std::process::{Command, Output};

use atelier_vision::battery::{Expected, battery};
use serde_json::Value;

mod common;

use common::json_of;

fn atelier(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atelier"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("ATELIER_DB")
        .output()
        .expect("run atelier")
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A database URL per backend: a fresh SQLite file, and a fresh PostgreSQL database when
/// `ATELIER_TEST_POSTGRES_URL` names a server (required under CI).
async fn databases(dir: &Path) -> Vec<String> {
    let mut urls = vec![format!("sqlite://{}", dir.join("catalog.db").display())];
    match std::env::var("ATELIER_TEST_POSTGRES_URL") {
        Ok(admin_url) => urls.push(common::fresh_postgres_database(&admin_url).await),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("ATELIER_TEST_POSTGRES_URL must be set under CI (scripts/test sets it)")
        }
        Err(_) => eprintln!("skipped PostgreSQL half: ATELIER_TEST_POSTGRES_URL not set"),
    }
    urls
}

#[test]
fn missing_manifest_is_bad_input_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    let output = atelier(&db, &["import", "/nonexistent/manifest.csv"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line expected: {stderr}"
    );
    assert!(stderr.contains("/nonexistent/manifest.csv"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn devices_say_what_this_build_and_machine_have() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    let output = atelier(&db, &["--json", "devices"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l["device"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cpu", "cuda", "vulkan"]);
    assert_eq!(lines[0]["available"], true);
    // The test build has no GPU backend: each says which feature adds it.
    for line in &lines[1..] {
        let device = line["device"].as_str().unwrap();
        assert_eq!(line["built"], false, "{line}");
        assert_eq!(line["available"], false, "{line}");
        let problem = line["problem"].as_str().unwrap();
        assert!(
            problem.contains(&format!("--features {device}")),
            "{problem}"
        );
    }
    // A command asked to run on a device this build lacks stops with that fix, exit 2.
    let train = atelier(
        &db,
        &["train", "facets", "--backbone", "tiny", "--device", "cuda"],
    );
    assert_eq!(train.status.code(), Some(2), "{}", stderr_of(&train));
    let stderr = stderr_of(&train);
    assert!(stderr.contains("--features cuda"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_option_values_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    let out = dir.path().join("synth");
    let output = atelier(
        &db,
        &["synth", "--out", out.to_str().unwrap(), "--size", "3"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("size"),
        "{}",
        stderr_of(&output)
    );

    let output = atelier("mysql://nope", &["summary"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("mysql://nope"));

    // The small CNN has three stages.
    let output = atelier(
        &db,
        &[
            "train",
            "facets",
            "--backbone",
            "tiny",
            "--feature-stage",
            "4",
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("--feature-stage 4") && stderr.contains("stages 1 to 3"),
        "{stderr}"
    );

    // Generalised cross-entropy: its exponent's range, and not together with a focal loss.
    for (options, expected) in [
        (&["--gce-q", "1.5"][..], "--gce-q 1.5"),
        (&["--gce-q", "0"][..], "(0, 1]"),
        (&["--gce-q", "0.7", "--focal-gamma", "2"][..], "choose one"),
    ] {
        let mut arguments = vec!["train", "facets", "--backbone", "tiny"];
        arguments.extend_from_slice(options);
        let output = atelier(&db, &arguments);
        assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
        let stderr = stderr_of(&output);
        assert!(stderr.contains(expected), "{options:?}: {stderr}");
    }
}

/// A recipe is the starting point, options override it, `--config` replaces it with a stored
/// configuration, and options a recipe or a file now covers fail with their replacement.
#[test]
fn recipes_configuration_files_and_dropped_options() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let config_of = |options: &[&str]| {
        let mut arguments = vec!["train", "facets", "--print-config", "--backbone", "tiny"];
        arguments.extend_from_slice(options);
        json_of(&atelier(&db, &arguments))
    };

    let demo = config_of(&[
        "--recipe",
        "frozen-lite0-views",
        "--epochs",
        "3",
        "--head",
        "grid",
    ]);
    assert_eq!(demo["freeze_backbone"], true);
    assert_eq!(demo["epochs"], 3);
    // The recipe's 3x3 grid stays 3x3 when its kind is named again.
    assert_eq!(
        demo["head"],
        serde_json::json!({"kind": "grid", "cells": 3})
    );
    assert_eq!(demo["detail_crops"].as_array().unwrap().len(), 2);
    assert_eq!(
        (demo["folds"].as_u64(), demo["drop_suspects"].as_f64()),
        (Some(3), Some(0.5))
    );
    // A tiny backbone has no stage 6: naming another backbone leaves the stage to it.
    assert!(demo["feature_stage"].is_null(), "{demo}");
    let no_folds = config_of(&[
        "--recipe",
        "demo",
        "--folds",
        "0",
        "--freeze-backbone=false",
        "--detail-views",
        "none",
    ]);
    assert!(no_folds["drop_suspects"].is_null(), "{no_folds}");
    assert_eq!(no_folds["freeze_backbone"], false);
    assert_eq!(no_folds["detail_crops"], serde_json::json!([]));

    let finetune = config_of(&[]);
    assert_eq!(finetune["freeze_backbone"], false);
    assert_eq!(finetune["epochs"], 20);

    // A hand-written file names only what it changes; options still override it.
    let file = dir.path().join("run.json");
    std::fs::write(
        &file,
        r#"{"epochs": 4, "optimizer": {"name": "sgd", "momentum": 0.8, "weight_decay": 0.0}}"#,
    )
    .unwrap();
    let from_file = config_of(&["--config", file.to_str().unwrap(), "--lr", "0.01"]);
    assert_eq!(from_file["epochs"], 4);
    assert_eq!(from_file["optimizer"]["momentum"], 0.8);
    assert_eq!(from_file["learning_rate"], 0.01);
    std::fs::write(&file, "{\"epochs\": \"many\"}").unwrap();
    let output = atelier(
        &db,
        &[
            "train",
            "facets",
            "--config",
            file.to_str().unwrap(),
            "--print-config",
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("not a training configuration"));

    for (options, replacement) in [
        (
            &["--detail-crop", "--detail-side", "0.7"][..],
            "--detail-views",
        ),
        (&["--momentum", "0.5"][..], "`optimizer` in a --config file"),
        (&["--feature-stride", "16"][..], "--feature-stage"),
    ] {
        let mut arguments = vec!["train", "facets", "--backbone", "tiny"];
        arguments.extend_from_slice(options);
        let output = atelier(&db, &arguments);
        assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
        let stderr = stderr_of(&output);
        assert!(
            stderr.contains("no longer an option") && stderr.contains(replacement),
            "{stderr}"
        );
    }
    // A bad setting is refused before a run is recorded.
    let output = atelier(
        &db,
        &["train", "facets", "--backbone", "tiny", "--epochs", "0"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("--epochs 0: use at least 1"));
    let runs = json_of(&atelier(&db, &["runs", "--json"]));
    assert_eq!(runs.as_array().map(Vec::len), Some(0), "{runs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn synth_import_reimport_and_facets() {
    let dir = tempfile::tempdir().unwrap();
    let synth_dir = dir.path().join("synth");
    let rendered = json_of(&atelier(
        "sqlite://unused.db",
        &[
            "synth",
            "--out",
            synth_dir.to_str().unwrap(),
            "--count",
            "30",
            "--size",
            "96",
            "--json",
        ],
    ));
    assert_eq!(rendered["images"], 30);
    let manifest = synth_dir.join("manifest.csv");
    let manifest = manifest.to_str().unwrap();

    for db in databases(dir.path()).await {
        let first = json_of(&atelier(&db, &["import", manifest, "--json"]));
        assert_eq!(first["added"], 30, "{db}: {first}");
        assert_eq!(first["unchanged"], 0);

        let again = atelier(&db, &["import", manifest]);
        let text = String::from_utf8_lossy(&again.stdout);
        assert!(again.status.success());
        assert!(text.contains("nothing changed"), "{db}: {text}");
        let again = json_of(&atelier(&db, &["import", manifest, "--json"]));
        assert_eq!(again["unchanged"], 30, "{db}: {again}");
        assert_eq!(again["added"], 0);

        let facets = json_of(&atelier(&db, &["facets", "--json"]));
        let names: Vec<&str> = facets
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        for facet in ["silhouette", "neckline", "sleeve", "length", "occasion"] {
            assert!(names.contains(&facet), "{db}: {names:?}");
        }

        // An order must list exactly the stored labels: the ones 30 images happen to show,
        // here from maxi to mini.
        let length_labels = |facets: &Value| -> Vec<String> {
            facets
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == "length")
                .unwrap()["labels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["label"].as_str().unwrap().to_string())
                .collect()
        };
        let present = length_labels(&facets);
        let wanted: Vec<String> = ["maxi", "midi", "knee", "mini"]
            .iter()
            .map(|l| l.to_string())
            .filter(|l| present.contains(l))
            .collect();
        assert_eq!(wanted.len(), present.len(), "{present:?}");
        let ordered = json_of(&atelier(
            &db,
            &["facets", "order", "length", &wanted.join(","), "--json"],
        ));
        assert_eq!(length_labels(&ordered), wanted, "{db}");

        // `images` lists a page of the catalogue with the filters on current labels.
        let all = json_of(&atelier(&db, &["images", "--per-page", "7", "--json"]));
        assert_eq!(
            (all["total"].clone(), all["pages"].clone()),
            (30.into(), 5.into()),
            "{db}"
        );
        assert_eq!(all["images"].as_array().unwrap().len(), 7);
        let first_label = all["images"][0]["labels"]["length"]
            .as_str()
            .unwrap()
            .to_string();
        let kept = json_of(&atelier(
            &db,
            &[
                "images",
                "--where",
                &format!("length={first_label}"),
                "--per-page",
                "30",
                "--json",
            ],
        ));
        let left = json_of(&atelier(
            &db,
            &[
                "images",
                "--where-not",
                &format!("length={first_label}"),
                "--json",
            ],
        ));
        assert!(
            kept["images"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["labels"]["length"] == first_label.as_str()),
            "{db}: {kept}"
        );
        assert_eq!(
            kept["total"].as_u64().unwrap() + left["total"].as_u64().unwrap(),
            30,
            "{db}"
        );
        let typo = atelier(&db, &["images", "--where", "length=ankle-ish"]);
        assert_eq!(typo.status.code(), Some(2), "{db}");
        assert!(
            stderr_of(&typo).contains("its labels are"),
            "{}",
            stderr_of(&typo)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_quarantines_the_battery_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let cases = battery();
    let mut manifest = String::from("path,neckline\n");
    for case in &cases {
        std::fs::write(files.join(case.file_name), &case.bytes).unwrap();
        manifest.push_str(&format!("files/{},crew\n", case.file_name));
    }
    manifest.push_str("files/not-there.jpg,crew\n");
    let manifest_path = dir.path().join("manifest.csv");
    std::fs::write(&manifest_path, manifest).unwrap();

    for db in databases(dir.path()).await {
        // Two unusable files in fifteen are more than the tenth an import accepts unasked.
        let imported = json_of(&atelier(
            &db,
            &[
                "import",
                manifest_path.to_str().unwrap(),
                "--allow-missing",
                "--json",
            ],
        ));
        // The empty and the missing file cannot be hashed, so import already quarantines them.
        assert_eq!(imported["quarantined"], 2, "{db}: {imported}");

        let checked = json_of(&atelier(&db, &["check", "--json"]));
        let quarantined = checked["quarantined_images"].as_array().unwrap();
        let reason_for = |file: &str| {
            quarantined
                .iter()
                .find(|q| q["uri"].as_str().unwrap().ends_with(file))
                .map(|q| q["reason"].as_str().unwrap().to_string())
        };
        for case in &cases {
            match case.expected {
                Expected::Usable { .. } => assert_eq!(
                    reason_for(case.file_name),
                    None,
                    "{db}: {} should be usable",
                    case.file_name
                ),
                Expected::Quarantined(reason) => {
                    let got = reason_for(case.file_name)
                        .unwrap_or_else(|| panic!("{db}: {} not quarantined", case.file_name));
                    assert!(got.contains(reason), "{db}: {}: {got}", case.file_name);
                }
            }
        }
        let missing = reason_for("not-there.jpg").expect("missing file quarantined");
        assert!(missing.contains("not found"), "{missing}");
        let usable = cases
            .iter()
            .filter(|c| matches!(c.expected, Expected::Usable { .. }))
            .count();
        assert_eq!(checked["ok"], usable as u64, "{db}: {checked}");

        // The summary agrees: usable images are active and checked.
        let summary = json_of(&atelier(&db, &["summary", "--json"]));
        let active = summary["active"]["train"].as_u64().unwrap()
            + summary["active"]["test"].as_u64().unwrap();
        assert_eq!(active, usable as u64, "{db}: {summary}");
        assert_eq!(summary["unchecked"], 0);
    }
}

#[test]
fn unknown_label_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    let image = dir.path().join("a.png");
    std::fs::write(&image, atelier_vision::battery::grey_png()).unwrap();
    let first = dir.path().join("first.csv");
    std::fs::write(&first, "path,length\na.png,mini\n").unwrap();
    assert!(
        atelier(&db, &["import", first.to_str().unwrap()])
            .status
            .success()
    );

    let second = dir.path().join("second.csv");
    std::fs::write(&second, "path,length\na.png,floor\n").unwrap();
    let output = atelier(&db, &["import", second.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("floor") && stderr.contains("allow_new_labels"),
        "{stderr}"
    );

    let output = atelier(
        &db,
        &[
            "import",
            second.to_str().unwrap(),
            "--allow-new-labels",
            "--json",
        ],
    );
    assert_eq!(json_of(&output)["updated"], 1);
}

#[test]
fn demo_runs_the_loop_and_a_rerun_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let args = [
        "demo",
        "--dir",
        demo_dir.to_str().unwrap(),
        "--count",
        "24",
        "--size",
        "96",
        "--no-serve",
        "--json",
    ];
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_atelier"))
            .args(args)
            .env_remove("ATELIER_DB")
            .output()
            .expect("run atelier");
        json_of(&output)
    };
    let first = run(&args);
    assert_eq!(first["synth"]["images"], 24, "{first}");
    assert_eq!(first["import"]["added"], 24);
    assert_eq!(first["check"]["ok"], 24);
    assert_eq!(first["check"]["quarantined"], 0);
    let active = &first["summary"]["active"];
    assert_eq!(
        active["train"].as_u64().unwrap() + active["test"].as_u64().unwrap(),
        24
    );
    assert!(demo_dir.join("atelier.db").exists());
    // The tagger is scored against the renderer's truth too, for every facet.
    let against_truth = first["test_macro_f1_against_truth"].as_object().unwrap();
    assert_eq!(against_truth.len(), 5, "{first}");
    assert!(
        against_truth
            .values()
            .all(|f1| (0.0..=1.0).contains(&f1.as_f64().unwrap())),
        "{first}"
    );

    // 24 photos hold too few repeated designs to learn similarity from; the demo says so.
    assert!(
        first["similarity"]["trained"].is_object() || first["similarity"]["skipped"].is_string(),
        "{first}"
    );

    let second = run(&args);
    assert_eq!(second["import"]["unchanged"], 24, "{second}");
    assert_eq!(second["import"]["added"], 0);

    // The demo stores the renderer's label order, not the alphabetical default.
    let db = format!("sqlite://{}", demo_dir.join("atelier.db").display());
    let facets = json_of(&atelier(&db, &["facets", "--json"]));
    let sleeve = facets
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "sleeve")
        .unwrap();
    let labels: Vec<&str> = sleeve["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["label"].as_str().unwrap())
        .collect();
    let canonical = atelier_vision::synth::FACETS
        .iter()
        .find(|(name, _)| *name == "sleeve")
        .unwrap()
        .1;
    let expected: Vec<&str> = canonical
        .iter()
        .copied()
        .filter(|l| labels.contains(l))
        .collect();
    assert_eq!(labels, expected);
}

/// `atelier backbone predict` with the real EfficientNet-Lite0 weights gives PyTorch's top-5 on
/// real photographs (reference made by crates/atelier-models/fixtures/make_imagenet_reference.py).
#[test]
fn backbone_predict_matches_the_pytorch_reference() {
    let Ok(weights) = std::env::var("ATELIER_EFFICIENTNET_LITE0") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "ATELIER_EFFICIENTNET_LITE0 must be set under CI (scripts/test sets it)"
        );
        eprintln!("skipped: ATELIER_EFFICIENTNET_LITE0 not set");
        return;
    };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../atelier-models/fixtures");
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("efficientnet_lite0_reference.json")).unwrap(),
    )
    .unwrap();
    let images = reference["images"].as_array().unwrap();
    let mut args = vec![
        "backbone".to_string(),
        "predict".to_string(),
        "--weights".to_string(),
        weights,
        "--json".to_string(),
    ];
    for image in images {
        let file = fixtures.join(image["file"].as_str().unwrap());
        args.push(file.to_str().unwrap().to_string());
    }
    // A broken file among them gets its own error line; the others still get predictions.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.jpg");
    std::fs::write(&broken, b"<html>not a photo</html>").unwrap();
    args.push(broken.to_str().unwrap().to_string());

    let output = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(&args)
        .output()
        .expect("run atelier");
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), images.len() + 1);
    for (line, expected) in lines.iter().zip(images) {
        let ours = line["top5"].as_array().expect("top5");
        let theirs = expected["top5"].as_array().unwrap();
        assert_eq!(ours.len(), 5);
        for (a, b) in ours.iter().zip(theirs) {
            assert_eq!(
                a["index"], b[0],
                "{}: top-5 order differs",
                expected["file"]
            );
            let (p, q) = (a["probability"].as_f64().unwrap(), b[1].as_f64().unwrap());
            assert!((p - q).abs() < 1e-3, "{}: {p} vs {q}", expected["file"]);
        }
    }
    let last = lines.last().unwrap();
    assert_eq!(last["ok"], false);
    assert!(last["error"].as_str().unwrap().contains("HTML"), "{last}");
}
