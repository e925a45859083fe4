//! `atelier train similarity`, `atelier similar`, `atelier index`, `atelier boxes` and
//! `atelier duplicates` end to end with the small CNN: the run's JSON, filtered answers, swap
//! answers, bad queries exit 2, the index following a photo that was quarantined, the run's
//! located boxes and a reviewer's box, close pairs and a verdict.

mod common;

use common::{Workspace, json_of};
use serde_json::Value;

fn similarity_run(workspace: &Workspace) -> Value {
    json_of(&workspace.run(&[
        "train",
        "similarity",
        "--backbone",
        "tiny",
        "--image-size",
        "48",
        "--epochs",
        "2",
        "--embedding-dim",
        "8",
        "--eval-fraction",
        "0.3",
        "--json",
    ]))
}

#[test]
fn similar_dresses_with_filters_and_swaps() {
    let workspace = Workspace::synthetic(50, &[], &["--test-fraction", "0.3"]);
    similar_dresses_on(&workspace, "scan");
}

/// The same on PostgreSQL with pgvector, which answers from its own index.
#[test]
fn similar_dresses_with_filters_and_swaps_on_pgvector() {
    let Ok(admin_url) = std::env::var("ATELIER_TEST_PGVECTOR_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "ATELIER_TEST_PGVECTOR_URL must be set under CI (scripts/test sets it)"
        );
        eprintln!("skipped: ATELIER_TEST_PGVECTOR_URL not set");
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(common::fresh_postgres_database(&admin_url));
    let workspace = Workspace::synthetic_on(Some(db), 50, &[], &["--test-fraction", "0.3"]);
    similar_dresses_on(&workspace, "pgvector");
}

fn similar_dresses_on(workspace: &Workspace, engine: &str) {
    // Stored triplets: training learns from some, the others score the run.
    let rows: Vec<String> = (0..12)
        .map(|i| {
            format!(
                "images/{:06}.jpg,images/{:06}.jpg,images/{:06}.jpg",
                i,
                i + 1,
                i + 2
            )
        })
        .collect();
    let triplets = workspace.root.join("synth/triplets.csv");
    std::fs::write(
        &triplets,
        format!("reference,similar,dissimilar\n{}\n", rows.join("\n")),
    )
    .unwrap();
    json_of(&workspace.run(&["import", "--triplets", triplets.to_str().unwrap(), "--json"]));
    let trained = similarity_run(workspace);
    assert_eq!(trained["run"], 1, "{trained}");
    let evaluation = &trained["summary"]["evaluation"];
    // Both box stages report their IoUs on the test split's boxes.
    let locator = &evaluation["locator"];
    for stage in ["whole_photo", "dress_crop"] {
        for piece in ["regressor", "vote", "combined"] {
            let value = locator[stage][piece].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&value), "{locator}");
        }
    }
    assert_eq!(locator["test_mean_iou"], locator["dress_crop"]["combined"]);
    let learnt = evaluation["stored_triplets_learnt"].as_u64().unwrap();
    let scored = evaluation["stored_triplets_scored"].as_u64().unwrap();
    assert_eq!(learnt + scored, 12, "{evaluation}");
    assert!(learnt > 0, "{evaluation}");
    if scored > 0 {
        assert!(evaluation["trained"]["stored_triplet_accuracy"].is_number());
    }
    assert!(
        evaluation["held_out_designs"].as_u64().unwrap() > 0,
        "{trained}"
    );
    assert!(
        evaluation["trained"]["recall_at_10"].is_number(),
        "{trained}"
    );

    // `eval` of a similarity run gives its held-out numbers.
    let evaluated = json_of(&workspace.run(&["eval", "1", "--json"]));
    assert_eq!(evaluated["summary"], trained["summary"], "{evaluated}");

    let index = json_of(&workspace.run(&["index", "--json"]));
    assert_eq!(
        (index["added"].as_u64(), index["removed"].as_u64()),
        (Some(0), Some(0))
    );

    // A photo file is embedded with the saved model; the catalogue's copy of it comes first.
    let photo = workspace.root.join("synth/images/000000.jpg");
    let photo = photo.to_str().unwrap();
    let answer = json_of(&workspace.run(&["similar", photo, "--k", "5", "--json"]));
    assert_eq!(answer["engine"], engine, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 5, "{answer}");
    assert!(
        results[0]["path"].as_str().unwrap().ends_with("000000.jpg"),
        "{answer}"
    );
    // Ranked by score: the cosine plus each photo's hubness bias, added after the walk.
    let scores: Vec<f64> = results
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{answer}");
    let id = results[0]["image_id"].as_str().unwrap().to_string();
    let label = results[1]["labels"]["neckline"]
        .as_str()
        .unwrap()
        .to_string();

    // A catalogue photo by id, filtered on its current labels: never itself, only the label.
    let filter = format!("neckline={label}");
    for option in ["--where", "--swap"] {
        let answer = json_of(&workspace.run(&[
            "similar", "--id", &id, "--k", "50", option, &filter, "--json",
        ]));
        let results = answer["results"].as_array().unwrap();
        assert!(!results.is_empty(), "{answer}");
        for result in results {
            assert_ne!(result["image_id"], id.as_str());
            assert_eq!(
                result["labels"]["neckline"],
                label.as_str(),
                "{option}: {answer}"
            );
        }
    }
    let answer = json_of(&workspace.run(&[
        "similar",
        "--id",
        &id,
        "--k",
        "50",
        "--where-not",
        &filter,
        "--json",
    ]));
    for result in answer["results"].as_array().unwrap() {
        assert_ne!(result["labels"]["neckline"], label.as_str(), "{answer}");
    }

    // `--explain` gives each result its 3x3 grid of cell agreements.
    let answer =
        json_of(&workspace.run(&["similar", "--id", &id, "--k", "3", "--explain", "--json"]));
    for result in answer["results"].as_array().unwrap() {
        let cells = result["explain"]["cells"].as_array().unwrap();
        assert_eq!(cells.len(), 9, "{answer}");
        let values: Vec<f64> = cells.iter().map(|c| c.as_f64().unwrap()).collect();
        assert!(
            values.iter().all(|v| (-1.001..=1.001).contains(v)),
            "{answer}"
        );
        let mean = values.iter().sum::<f64>() / 9.0;
        let reported = result["explain"]["mean"].as_f64().unwrap();
        assert!((mean - reported).abs() < 1e-4, "{answer}");
    }
    // The squares the grids cover are the ones `crop` cuts: the query's, and each result's
    // not compared mirrored (a mirrored one is in the mirror image's pixels).
    let mut paths = vec![photo.to_string()];
    let mut squares = vec![answer["results"][0]["explain"]["query_crop"]["square"].clone()];
    for result in answer["results"].as_array().unwrap() {
        if result["explain"]["flipped"] == false {
            paths.push(result["path"].as_str().unwrap().to_string());
            squares.push(result["explain"]["crop"]["square"].clone());
        }
    }
    let mut args = vec!["crop"];
    args.extend(paths.iter().map(String::as_str));
    args.push("--json");
    let cut: Vec<serde_json::Value> = common::json_lines(&workspace.run(&args))
        .into_iter()
        .map(|line| line["crop"].clone())
        .collect();
    assert_eq!(cut, squares, "{answer}");

    // `crop` locates the dress in files and cuts it out; an unreadable file fails alone.
    let crops = workspace.root.join("crops");
    let broken = workspace.root.join("broken.jpg");
    std::fs::write(&broken, b"not a photo").unwrap();
    let output = workspace.run(&[
        "crop",
        photo,
        broken.to_str().unwrap(),
        "--out",
        crops.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let lines = common::json_lines(&output);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["ok"], true);
    assert_eq!(lines[0]["box"].as_array().unwrap().len(), 4);
    let foreground = lines[0]["foreground"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&foreground), "{lines:?}");
    assert_eq!(lines[1]["ok"], false);
    assert!(crops.join("000000.png").is_file());

    boxes_and_duplicates(workspace, &id);

    // Bad queries are the user's to fix (exit 2) and say what to write.
    for (args, hint) in [
        (
            vec!["similar", "--id", &id, "--where", "neckline"],
            "FACET=LABEL",
        ),
        (vec!["similar", "--id", "nope"], "nope"),
        (vec!["similar", "--id", &id, "--run", "99"], "99"),
    ] {
        let output = workspace.run(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(hint), "{args:?}: {stderr}");
    }
}

/// `boxes`: the run's located boxes least sure first, a reviewer's box with its version (a stale
/// one exits 2 and shows the current box); `duplicates`: close pairs and a verdict on one.
fn boxes_and_duplicates(workspace: &Workspace, id: &str) {
    let queue = json_of(&workspace.run(&["boxes", "unsure", "--per-page", "50", "--json"]));
    let entries = queue["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 50, "{queue}");
    let least = |e: &Value| {
        let located = &e["located"];
        located["foreground"]
            .as_f64()
            .unwrap()
            .min(located["agreement"].as_f64().unwrap())
    };
    assert!(
        entries.windows(2).all(|w| least(&w[0]) <= least(&w[1])),
        "{queue}"
    );

    let shown = json_of(&workspace.run(&["boxes", "show", id, "--json"]));
    assert_eq!(shown["current"]["version"], 0, "{shown}");
    assert!(shown["located"]["foreground"].is_number(), "{shown}");
    let set = [
        "boxes",
        "set",
        id,
        "2",
        "3",
        "30",
        "40",
        "--version",
        "0",
        "--as",
        "ana",
    ];
    let saved = json_of(&workspace.run(&[&set[..], &["--json"]].concat()));
    assert_eq!(saved["box"]["version"], 1, "{saved}");
    assert_eq!(
        saved["box"]["coords"],
        serde_json::json!([2.0, 3.0, 30.0, 40.0])
    );
    let stale = workspace.run(&set);
    assert_eq!(stale.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&stale.stderr);
    assert!(
        stderr.contains("it is now version 1 (2, 3, 30, 40)"),
        "{stderr}"
    );
    let queue = json_of(&workspace.run(&["boxes", "unsure", "--per-page", "50", "--json"]));
    assert_eq!(
        queue["entries"].as_array().unwrap().len(),
        49,
        "a set box leaves the queue"
    );

    let listed = json_of(&workspace.run(&["duplicates", "list", "--threshold", "0.5", "--json"]));
    let pair = &listed["shown"][0]["pairs"][0];
    assert!(pair["score"].as_f64().unwrap() >= 0.5, "{listed}");
    let (a, b) = (pair["a"].as_str().unwrap(), pair["b"].as_str().unwrap());
    let marked =
        json_of(&workspace.run(&["duplicates", "mark", b, a, "same", "--as", "ana", "--json"]));
    assert_eq!(
        (marked["image_a"].as_str(), marked["verdict"].as_str()),
        (Some(a), Some("same"))
    );
    let listed = json_of(&workspace.run(&["duplicates", "list", "--threshold", "0.5", "--json"]));
    assert_eq!(
        listed["shown"][0]["pairs"][0]["verdict"], "same",
        "{listed}"
    );
    let bad = workspace.run(&["duplicates", "list", "--threshold", "2"]);
    assert_eq!(bad.status.code(), Some(2));
}
