//! Training runs, their results and predictions, and the trainer's reads, each case on SQLite
//! and on PostgreSQL.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use atelier_catalog::{
    Catalog, CatalogError, CheckOutcome, NewRun, PredictionRecord, PredictionRow, RunFacetResult,
    RunFinish, RunStatus, Split,
};
use common::{TestEnv, blob, import, sha256_hex};
use serde_json::json;

/// The process the tests take runs for (see `Catalog::take_run`).
const OWNER: &str = "test-host:1:tests";

/// A lease that lasts the test.
fn later() -> i64 {
    atelier_catalog::now_millis() + 60_000
}

on_both_backends!(
    run_lifecycle_create_progress_finish_reopen,
    results_round_trip,
    rewriting_results_replaces_them,
    invalid_results_leave_nothing_written,
    training_images_are_active_with_masked_labels,
    predictions_keep_the_run_label_order,
    results_span_many_statements,
);

fn id_of(name: &str) -> String {
    sha256_hex(&blob(name))
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| s.to_string()).collect()
}

/// Three dresses: silhouette labels [a-line, sheath], neckline labels [boat, v-neck] (new
/// facets get their labels in alphabetical order); c has no neckline. Split from the manifest.
fn three_dresses(env: &TestEnv) -> PathBuf {
    for name in ["a", "b", "c"] {
        env.write(&format!("img/{name}.jpg"), &blob(name));
    }
    env.write(
        "manifest.csv",
        b"path,split,silhouette,neckline\n\
          img/a.jpg,train,sheath,v-neck\n\
          img/b.jpg,train,a-line,boat\n\
          img/c.jpg,test,sheath,\n",
    )
}

fn uri_of(env: &TestEnv, name: &str) -> String {
    env.path(&format!("img/{name}.jpg"))
        .canonicalize()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

async fn start_run(catalog: &Catalog) -> i64 {
    catalog
        .create_run(&NewRun {
            kind: "facets".to_string(),
            config: json!({"backbone": "tiny", "epochs": 2}),
            parent_run: None,
            lease: None,
        })
        .await
        .unwrap()
}

fn facet_results() -> Vec<RunFacetResult> {
    vec![
        // Not the catalogue's facet order: results come back in the run's order.
        RunFacetResult {
            facet: "neckline".to_string(),
            labels: strings(&["boat", "v-neck"]),
            class_weights: vec![1.5, 0.75],
            train_metrics: Some(json!({"macro_f1": 0.5, "confusion": [[1, 0], [1, 0]]})),
            test_metrics: None,
        },
        RunFacetResult {
            facet: "silhouette".to_string(),
            labels: strings(&["a-line", "sheath"]),
            class_weights: vec![1.0, 1.0 / 3.0],
            train_metrics: Some(json!({"macro_f1": 1.0})),
            test_metrics: Some(json!({"accuracy": 0.1})),
        },
    ]
}

#[allow(clippy::too_many_arguments)]
fn prediction(
    image: &str,
    facet: &str,
    split: Split,
    label: Option<&str>,
    predicted: &str,
    confidence: f64,
    scores: &[f32],
    out_of_fold: bool,
) -> PredictionRow {
    PredictionRow {
        image_id: id_of(image),
        facet: facet.to_string(),
        split,
        label: label.map(str::to_string),
        predicted: predicted.to_string(),
        confidence,
        scores: scores.to_vec(),
        out_of_fold,
    }
}

/// Six predictions over three images and both facets, with values that do not survive a
/// round trip unless stored exactly (thirds, tiny and subnormal-adjacent floats).
fn predictions_of_three() -> Vec<PredictionRow> {
    vec![
        prediction(
            "a",
            "silhouette",
            Split::Train,
            Some("sheath"),
            "sheath",
            0.9,
            &[0.1, 0.9],
            true,
        ),
        prediction(
            "a",
            "neckline",
            Split::Train,
            Some("v-neck"),
            "boat",
            2.0 / 3.0,
            &[2.0 / 3.0, 1.0 / 3.0],
            false,
        ),
        prediction(
            "b",
            "silhouette",
            Split::Train,
            Some("a-line"),
            "a-line",
            0.5,
            &[0.5, 0.5],
            true,
        ),
        prediction(
            "b",
            "neckline",
            Split::Train,
            Some("boat"),
            "boat",
            0.999_999,
            &[0.999_999, 1e-6],
            false,
        ),
        prediction(
            "c",
            "silhouette",
            Split::Test,
            Some("sheath"),
            "a-line",
            0.6,
            &[0.6, 0.4],
            false,
        ),
        prediction(
            "c",
            "neckline",
            Split::Test,
            None,
            "v-neck",
            0.75,
            &[0.25, 0.75],
            false,
        ),
    ]
}

/// What `predictions` must return for `rows`: image id order, then the run's facet order.
fn expected_records(
    env: &TestEnv,
    rows: &[PredictionRow],
    facet_order: &[&str],
) -> Vec<PredictionRecord> {
    let name_of = |id: &str| {
        ["a", "b", "c"]
            .into_iter()
            .find(|n| id_of(n) == id)
            .expect("a known image")
    };
    let mut expected: Vec<PredictionRecord> = rows
        .iter()
        .map(|p| PredictionRecord {
            image_id: p.image_id.clone(),
            uri: uri_of(env, name_of(&p.image_id)),
            facet: p.facet.clone(),
            split: p.split,
            label: p.label.clone(),
            predicted: p.predicted.clone(),
            confidence: p.confidence,
            scores: p.scores.clone(),
            out_of_fold: p.out_of_fold,
        })
        .collect();
    let position = |facet: &str| facet_order.iter().position(|f| *f == facet).unwrap();
    expected.sort_by(|x, y| {
        (x.image_id.as_str(), position(&x.facet)).cmp(&(y.image_id.as_str(), position(&y.facet)))
    });
    expected
}

async fn run_lifecycle_create_progress_finish_reopen(env: &TestEnv) {
    let catalog = env.open().await;
    assert!(catalog.runs().await.unwrap().is_empty());
    let first = start_run(&catalog).await;
    let run = catalog.run(first).await.unwrap().expect("created run");
    assert_eq!(run.id, first);
    assert_eq!(run.kind, "facets");
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.config, json!({"backbone": "tiny", "epochs": 2}));
    assert_eq!(
        (
            run.progress,
            run.summary,
            run.model_ref,
            run.error,
            run.parent_run,
            run.finished_at
        ),
        (None, None, None, None, None, None)
    );
    assert_eq!(run.created_at, run.updated_at);
    assert!(
        run.created_at > 1_600_000_000_000,
        "unix milliseconds: {}",
        run.created_at
    );

    let progress = json!({"epoch": 1, "of": 2, "loss": 0.6875});
    catalog.set_run_progress(first, &progress).await.unwrap();
    let run = catalog.run(first).await.unwrap().unwrap();
    assert_eq!(run.progress, Some(progress.clone()));
    assert!(run.updated_at >= run.created_at);

    let summary = json!({"macro_f1": {"silhouette": 0.8125}});
    catalog
        .finish_run(
            first,
            &RunFinish {
                status: RunStatus::Completed,
                summary: Some(summary.clone()),
                model_ref: Some("models/run-1.mpk".to_string()),
                error: None,
            },
        )
        .await
        .unwrap();
    let run = catalog.run(first).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.summary, Some(summary));
    assert_eq!(run.model_ref.as_deref(), Some("models/run-1.mpk"));
    assert_eq!(run.progress, Some(progress), "progress is kept");
    let finished = run.finished_at.expect("finish time");
    assert!(finished >= run.created_at);

    // A completed run takes no more progress, no second finish and no reopening.
    let err = catalog
        .set_run_progress(first, &json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CatalogError::RunState { run, .. } if run == first),
        "{err}"
    );
    assert!(err.to_string().contains("is completed"), "{err}");
    let failed = RunFinish {
        status: RunStatus::Failed,
        summary: None,
        model_ref: None,
        error: Some("out of memory".to_string()),
    };
    let err = catalog.finish_run(first, &failed).await.unwrap_err();
    assert!(matches!(err, CatalogError::RunState { .. }), "{err}");
    let err = catalog
        .take_run(first, OWNER, later(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::RunState { .. }), "{err}");
    assert_eq!(
        catalog.run(first).await.unwrap().unwrap().status,
        RunStatus::Completed,
        "refused changes leave the run as it was"
    );

    // A child run fails, is taken back (resume) and completes.
    let second = catalog
        .create_run(&NewRun {
            kind: "facets".to_string(),
            config: json!(null),
            parent_run: Some(first),
            lease: None,
        })
        .await
        .unwrap();
    assert!(second > first);
    catalog.finish_run(second, &failed).await.unwrap();
    let run = catalog.run(second).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("out of memory"));
    assert_eq!(run.parent_run, Some(first));
    assert_eq!(run.config, json!(null));
    assert!(run.finished_at.is_some());
    catalog
        .take_run(second, OWNER, later(), None)
        .await
        .unwrap();
    let run = catalog.run(second).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!((run.error, run.finished_at), (None, None));
    catalog
        .set_run_progress(second, &json!({"epoch": 2}))
        .await
        .unwrap();
    // A run left running by a crashed process can be taken again as well.
    catalog
        .take_run(second, OWNER, later(), None)
        .await
        .unwrap();
    let err = catalog
        .finish_run(
            second,
            &RunFinish {
                status: RunStatus::Running,
                summary: None,
                model_ref: None,
                error: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::InvalidRunData { .. }), "{err}");
    catalog
        .finish_run(
            second,
            &RunFinish {
                status: RunStatus::Completed,
                summary: None,
                model_ref: Some("models/run-2.mpk".to_string()),
                error: None,
            },
        )
        .await
        .unwrap();

    let listed: Vec<(i64, RunStatus)> = catalog
        .runs()
        .await
        .unwrap()
        .iter()
        .map(|r| (r.id, r.status))
        .collect();
    assert_eq!(
        listed,
        [
            (second, RunStatus::Completed),
            (first, RunStatus::Completed)
        ],
        "newest first"
    );

    // Unknown ids.
    assert_eq!(catalog.run(second + 100).await.unwrap(), None);
    for err in [
        catalog
            .set_run_progress(second + 100, &json!({}))
            .await
            .unwrap_err(),
        catalog
            .take_run(second + 100, OWNER, later(), None)
            .await
            .unwrap_err(),
        catalog
            .create_run(&NewRun {
                kind: "facets".to_string(),
                config: json!({}),
                parent_run: Some(second + 100),
                lease: None,
            })
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(err, CatalogError::UnknownRun(id) if id == second + 100),
            "{err}"
        );
    }
    assert_eq!(
        catalog.runs().await.unwrap().len(),
        2,
        "the refused child was not created"
    );

    for status in [RunStatus::Running, RunStatus::Completed, RunStatus::Failed] {
        assert_eq!(RunStatus::parse(status.as_str()), Some(status));
    }
    assert_eq!(RunStatus::parse("done"), None);
}

async fn results_round_trip(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &three_dresses(env)).await;
    let run = start_run(&catalog).await;
    let facets = facet_results();
    let rows = predictions_of_three();
    catalog
        .record_run_results(run, &facets, &rows)
        .await
        .unwrap();

    assert_eq!(catalog.run_facets(run).await.unwrap(), facets);
    let all = catalog.predictions(run, None).await.unwrap();
    assert_eq!(
        all,
        expected_records(env, &rows, &["neckline", "silhouette"])
    );
    // Spelled out for one row, so that a shared mistake in the helper cannot hide a bug.
    let c_neckline = all
        .iter()
        .find(|p| p.image_id == id_of("c") && p.facet == "neckline")
        .unwrap();
    assert_eq!(c_neckline.label, None);
    assert_eq!(c_neckline.scores, vec![0.25f32, 0.75]);
    assert_eq!(c_neckline.split, Split::Test);
    assert_eq!(c_neckline.uri, uri_of(env, "c"));
    let a_neckline = all
        .iter()
        .find(|p| p.image_id == id_of("a") && p.facet == "neckline")
        .unwrap();
    assert_eq!(a_neckline.confidence, 2.0 / 3.0);
    assert_eq!(a_neckline.scores, vec![2.0f32 / 3.0, 1.0 / 3.0]);
    assert_eq!(
        all.iter().filter(|p| p.out_of_fold).count(),
        2,
        "out_of_fold kept per row"
    );

    let silhouette = catalog.predictions(run, Some("silhouette")).await.unwrap();
    assert_eq!(silhouette.len(), 3);
    assert!(silhouette.iter().all(|p| p.facet == "silhouette"));
    let mut ids: Vec<&str> = silhouette.iter().map(|p| p.image_id.as_str()).collect();
    let sorted = {
        let mut s = ids.clone();
        s.sort();
        s
    };
    assert_eq!(ids, sorted, "ordered by image id");
    ids.dedup();
    assert_eq!(ids.len(), 3);

    let err = catalog.predictions(run, Some("colour")).await.unwrap_err();
    assert!(matches!(err, CatalogError::UnknownFacet { .. }), "{err}");
    let err = catalog.predictions(run + 1, None).await.unwrap_err();
    assert!(matches!(err, CatalogError::UnknownRun(_)), "{err}");
    let err = catalog.run_facets(run + 1).await.unwrap_err();
    assert!(matches!(err, CatalogError::UnknownRun(_)), "{err}");

    // Another run's results are its own.
    let other = start_run(&catalog).await;
    assert!(catalog.predictions(other, None).await.unwrap().is_empty());
    assert!(catalog.run_facets(other).await.unwrap().is_empty());
}

async fn rewriting_results_replaces_them(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &three_dresses(env)).await;
    let run = start_run(&catalog).await;
    let other = start_run(&catalog).await;
    catalog
        .record_run_results(run, &facet_results(), &predictions_of_three())
        .await
        .unwrap();
    catalog
        .record_run_results(other, &facet_results(), &predictions_of_three())
        .await
        .unwrap();

    // The resumed run writes again: silhouette only, two images, new values.
    let facets = vec![RunFacetResult {
        facet: "silhouette".to_string(),
        labels: strings(&["sheath", "a-line"]),
        class_weights: vec![2.0, 0.5],
        train_metrics: None,
        test_metrics: Some(json!({"macro_f1": 0.25})),
    }];
    let rows = vec![
        prediction(
            "b",
            "silhouette",
            Split::Train,
            Some("a-line"),
            "sheath",
            0.7,
            &[0.7, 0.3],
            false,
        ),
        prediction(
            "a",
            "silhouette",
            Split::Train,
            Some("sheath"),
            "sheath",
            0.8,
            &[0.8, 0.2],
            true,
        ),
    ];
    catalog
        .record_run_results(run, &facets, &rows)
        .await
        .unwrap();
    assert_eq!(catalog.run_facets(run).await.unwrap(), facets);
    assert_eq!(
        catalog.predictions(run, None).await.unwrap(),
        expected_records(env, &rows, &["silhouette"])
    );
    assert_eq!(
        catalog.predictions(other, None).await.unwrap().len(),
        6,
        "another run's results are untouched"
    );
    // Results can be written to a run again after reopening it.
    catalog
        .finish_run(
            run,
            &RunFinish {
                status: RunStatus::Failed,
                summary: None,
                model_ref: None,
                error: Some("interrupted".to_string()),
            },
        )
        .await
        .unwrap();
    catalog.take_run(run, OWNER, later(), None).await.unwrap();
    catalog.record_run_results(run, &[], &[]).await.unwrap();
    assert!(catalog.run_facets(run).await.unwrap().is_empty());
    assert!(catalog.predictions(run, None).await.unwrap().is_empty());
}

async fn invalid_results_leave_nothing_written(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &three_dresses(env)).await;
    let run = start_run(&catalog).await;
    let facets = facet_results();
    let rows = predictions_of_three();
    catalog
        .record_run_results(run, &facets, &rows)
        .await
        .unwrap();
    let before = catalog.predictions(run, None).await.unwrap();

    // Each attempt starts from a valid set of half the rows and breaks one thing near the end,
    // so that a partial write would show.
    let fresh = || rows[..3].to_vec();
    let mut attempts: Vec<(&str, Vec<RunFacetResult>, Vec<PredictionRow>)> = Vec::new();
    let mut bad = fresh();
    bad[2].predicted = "mermaid".to_string();
    attempts.push(("unknown predicted label", facets.clone(), bad));
    let mut bad = fresh();
    bad[2].label = Some("mermaid".to_string());
    attempts.push(("unknown true label", facets.clone(), bad));
    let mut unknown_in_order = facets.clone();
    unknown_in_order[1].labels.push("mermaid".to_string());
    unknown_in_order[1].class_weights.push(1.0);
    attempts.push((
        "unknown label in the run's order",
        unknown_in_order,
        fresh(),
    ));
    let mut unknown_facet = facets.clone();
    unknown_facet[1].facet = "colour".to_string();
    attempts.push(("unknown facet", unknown_facet, fresh()));
    let mut bad = fresh();
    bad[2].facet = "colour".to_string();
    attempts.push(("prediction for an unknown facet", facets.clone(), bad));
    let mut bad = fresh();
    bad[2].image_id = sha256_hex(b"never imported");
    attempts.push(("unknown image", facets.clone(), bad));
    let mut bad = fresh();
    bad[2].scores.push(0.0);
    attempts.push(("score count", facets.clone(), bad));
    let mut bad = fresh();
    bad[2].scores[0] = f32::NAN;
    attempts.push(("non-finite score", facets.clone(), bad));
    let mut bad = fresh();
    bad.push(bad[0].clone());
    attempts.push(("duplicate prediction", facets.clone(), bad));
    attempts.push(("facet without results", facets[..1].to_vec(), fresh()));
    let mut weights = facets.clone();
    weights[0].class_weights.pop();
    attempts.push(("class weight count", weights, fresh()));
    let mut narrow = facets.clone();
    narrow[1].labels = strings(&["a-line"]);
    narrow[1].class_weights = vec![1.0];
    let mut bad = fresh();
    for row in bad.iter_mut().filter(|r| r.facet == "silhouette") {
        row.predicted = "a-line".to_string();
        row.scores = vec![1.0];
    }
    bad[0].predicted = "sheath".to_string();
    attempts.push(("predicted label outside the run's order", narrow, bad));

    for (what, facets, rows) in &attempts {
        let err = catalog
            .record_run_results(run, facets, rows)
            .await
            .unwrap_err();
        let message = err.to_string();
        match *what {
            "unknown predicted label"
            | "unknown true label"
            | "unknown label in the run's order" => {
                assert!(
                    matches!(&err, CatalogError::UnknownLabel { facet, label, .. }
                        if facet == "silhouette" && label == "mermaid"),
                    "{what}: {message}"
                );
                assert!(
                    message.contains("a-line, sheath"),
                    "names the known labels: {message}"
                );
            }
            "unknown facet" | "prediction for an unknown facet" => {
                assert!(
                    matches!(&err, CatalogError::UnknownFacet { facet, .. } if facet == "colour"),
                    "{what}: {message}"
                );
                assert!(message.contains("silhouette, neckline"), "{message}");
            }
            "unknown image" => assert!(
                matches!(&err, CatalogError::UnknownImage(id) if *id == sha256_hex(b"never imported")),
                "{what}: {message}"
            ),
            _ => assert!(
                matches!(&err, CatalogError::InvalidRunData { run: r, .. } if *r == run),
                "{what}: {message}"
            ),
        }
        assert_eq!(
            catalog.predictions(run, None).await.unwrap(),
            before,
            "{what}: nothing written"
        );
        assert_eq!(
            catalog.run_facets(run).await.unwrap(),
            facet_results(),
            "{what}"
        );
    }
    let err = catalog
        .record_run_results(run + 5, &facets, &rows)
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::UnknownRun(_)), "{err}");
}

async fn training_images_are_active_with_masked_labels(env: &TestEnv) {
    let catalog = env.open().await;
    for name in ["a", "b", "c", "d", "e"] {
        env.write(&format!("img/{name}.jpg"), &blob(name));
    }
    let first = env.write(
        "manifest.csv",
        b"path,split,silhouette,neckline\n\
          img/a.jpg,train,sheath,v-neck\n\
          img/b.jpg,test,a-line,\n\
          img/c.jpg,train,,boat\n\
          img/d.jpg,train,sheath,boat\n\
          img/e.jpg,train,a-line,boat\n\
          img/missing.jpg,train,sheath,boat\n",
    );
    import(&catalog, &first).await;
    // d leaves the source (removed); a's neckline is cleared (a stored NULL label).
    let second = env.write(
        "manifest.csv",
        b"path,split,silhouette,neckline\n\
          img/a.jpg,train,sheath,\n\
          img/b.jpg,test,a-line,\n\
          img/c.jpg,train,,boat\n\
          img/e.jpg,train,a-line,boat\n\
          img/missing.jpg,train,sheath,boat\n",
    );
    let report = import(&catalog, &second).await;
    assert_eq!((report.removed, report.quarantined), (1, 1));
    // e does not decode (quarantined).
    catalog
        .record_checks(&[CheckOutcome {
            id: id_of("e"),
            result: Err("truncated JPEG".to_string()),
        }])
        .await
        .unwrap();

    let images = catalog
        .training_images(&strings(&["neckline", "silhouette"]))
        .await
        .unwrap();
    let mut expected = vec![
        (
            id_of("a"),
            uri_of(env, "a"),
            Split::Train,
            vec![None, Some("sheath")],
        ),
        (
            id_of("b"),
            uri_of(env, "b"),
            Split::Test,
            vec![None, Some("a-line")],
        ),
        (
            id_of("c"),
            uri_of(env, "c"),
            Split::Train,
            vec![Some("boat"), None],
        ),
    ];
    expected.sort_by(|x, y| x.0.cmp(&y.0));
    let got: Vec<(String, String, Split, Vec<Option<&str>>)> = images
        .iter()
        .map(|i| {
            (
                i.id.clone(),
                i.uri.clone(),
                i.split,
                i.labels.iter().map(|l| l.as_deref()).collect(),
            )
        })
        .collect();
    assert_eq!(got, expected);

    // A facet asked twice fills both slots; no facets lists the images alone.
    let twice = catalog
        .training_images(&strings(&["silhouette", "neckline", "silhouette"]))
        .await
        .unwrap();
    let c = twice.iter().find(|i| i.id == id_of("c")).unwrap();
    assert_eq!(c.labels, [None, Some("boat".to_string()), None]);
    let a = twice.iter().find(|i| i.id == id_of("a")).unwrap();
    assert_eq!(
        a.labels,
        [Some("sheath".to_string()), None, Some("sheath".to_string())]
    );
    let bare = catalog.training_images(&[]).await.unwrap();
    assert_eq!(
        bare.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
        expected.iter().map(|e| e.0.clone()).collect::<Vec<_>>()
    );
    assert!(bare.iter().all(|i| i.labels.is_empty()));

    let err = catalog
        .training_images(&strings(&["neckline", "colour"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CatalogError::UnknownFacet { facet, .. } if facet == "colour"),
        "{err}"
    );
}

async fn predictions_keep_the_run_label_order(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &three_dresses(env)).await;
    assert_eq!(
        catalog
            .facet_label_orders(&strings(&["neckline", "silhouette"]))
            .await
            .unwrap(),
        [
            ("neckline".to_string(), strings(&["boat", "v-neck"])),
            ("silhouette".to_string(), strings(&["a-line", "sheath"])),
        ]
    );
    let run = start_run(&catalog).await;
    let rows = predictions_of_three();
    catalog
        .record_run_results(run, &facet_results(), &rows)
        .await
        .unwrap();
    catalog
        .set_label_order("neckline", &strings(&["v-neck", "boat"]))
        .await
        .unwrap();
    assert_eq!(
        catalog
            .facet_label_orders(&strings(&["neckline"]))
            .await
            .unwrap(),
        [("neckline".to_string(), strings(&["v-neck", "boat"]))]
    );
    // The run still reads its scores in its own order: boat first.
    let neckline = &catalog.run_facets(run).await.unwrap()[0];
    assert_eq!(neckline.labels, strings(&["boat", "v-neck"]));
    let b = catalog
        .predictions(run, Some("neckline"))
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.image_id == id_of("b"))
        .unwrap();
    assert_eq!(b.scores, vec![0.999_999f32, 1e-6]);
    let boat = neckline
        .labels
        .iter()
        .position(|l| *l == b.predicted)
        .unwrap();
    assert_eq!(boat, 0);
    assert_eq!(
        catalog.predictions(run, None).await.unwrap(),
        expected_records(env, &rows, &["neckline", "silhouette"])
    );
    // Out of sample: test rows, and train rows predicted out of fold; no in-sample train row.
    let out_of_sample: Vec<PredictionRow> = rows
        .iter()
        .filter(|r| r.split == Split::Test || r.out_of_fold)
        .cloned()
        .collect();
    assert!(out_of_sample.len() < rows.len() && !out_of_sample.is_empty());
    assert_eq!(
        catalog.out_of_sample_predictions(run, None).await.unwrap(),
        expected_records(env, &out_of_sample, &["neckline", "silhouette"])
    );
    let err = catalog
        .facet_label_orders(&strings(&["colour"]))
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::UnknownFacet { .. }), "{err}");
}

/// Enough rows that the insert is split into several statements (9 values a row).
async fn results_span_many_statements(env: &TestEnv) {
    let catalog = env.open().await;
    let images = 1_500;
    let (manifest, _) = write_dataset(env, images, 2);
    import(&catalog, &manifest).await;
    let run = start_run(&catalog).await;
    let (facets, rows) = synthetic_results(&catalog, 2).await;
    assert_eq!(rows.len(), images * 2);
    catalog
        .record_run_results(run, &facets, &rows)
        .await
        .unwrap();
    let stored = catalog.predictions(run, None).await.unwrap();
    assert_eq!(stored.len(), rows.len());
    let mut expected: Vec<&PredictionRow> = rows.iter().collect();
    expected.sort_by(|x, y| (&x.image_id, &x.facet).cmp(&(&y.image_id, &y.facet)));
    for (got, want) in stored.iter().zip(expected) {
        assert_eq!(
            (
                &got.image_id,
                &got.facet,
                &got.label,
                &got.predicted,
                got.confidence,
                &got.scores,
                got.out_of_fold
            ),
            (
                &want.image_id,
                &want.facet,
                &want.label,
                &want.predicted,
                want.confidence,
                &want.scores,
                want.out_of_fold
            )
        );
    }
}

const BULK_FACETS: [(&str, &[&str]); 5] = [
    (
        "f0",
        &["a-line", "sheath", "mermaid", "ball-gown", "empire"],
    ),
    ("f1", &["boat", "halter", "square", "sweetheart", "v-neck"]),
    ("f2", &["cap", "long", "short", "sleeveless"]),
    ("f3", &["knee", "maxi", "midi", "mini"]),
    ("f4", &["bridal", "casual", "party", "work"]),
];

/// `images` distinct small files and a manifest over the first `facets` of [`BULK_FACETS`]
/// (facet names sort in creation order), every tenth image without a label for `f0`.
fn write_dataset(env: &TestEnv, images: usize, facets: usize) -> (PathBuf, usize) {
    use std::io::Write;
    let mut manifest = String::from("path");
    for (name, _) in &BULK_FACETS[..facets] {
        manifest.push(',');
        manifest.push_str(name);
    }
    manifest.push('\n');
    let dir = env.path("bulk");
    std::fs::create_dir_all(&dir).unwrap();
    for n in 0..images {
        let file = format!("bulk/{n:06}.jpg");
        let mut f = std::fs::File::create(env.path(&file)).unwrap();
        write!(f, "bulk image {n:06} {}", "x".repeat(40)).unwrap();
        manifest.push_str(&file);
        for (f, (_, labels)) in BULK_FACETS[..facets].iter().enumerate() {
            manifest.push(',');
            if !(f == 0 && n % 10 == 0) {
                manifest.push_str(labels[(n + f) % labels.len()]);
            }
        }
        manifest.push('\n');
    }
    (env.write("bulk.csv", manifest.as_bytes()), images)
}

/// A prediction for every training image and facet, scores derived from the image's index.
async fn synthetic_results(
    catalog: &Catalog,
    facets: usize,
) -> (Vec<RunFacetResult>, Vec<PredictionRow>) {
    let names: Vec<String> = BULK_FACETS[..facets]
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    let orders = catalog.facet_label_orders(&names).await.unwrap();
    let results: Vec<RunFacetResult> = orders
        .iter()
        .map(|(facet, labels)| RunFacetResult {
            facet: facet.clone(),
            labels: labels.clone(),
            class_weights: vec![1.0; labels.len()],
            train_metrics: Some(json!({"macro_f1": 0.5})),
            test_metrics: None,
        })
        .collect();
    let images = catalog.training_images(&names).await.unwrap();
    let mut rows = Vec::with_capacity(images.len() * facets);
    for (n, image) in images.iter().enumerate() {
        for (f, (facet, labels)) in orders.iter().enumerate() {
            let k = labels.len();
            let top = (n + f) % k;
            let mut scores = vec![0.5 / (k - 1) as f32; k];
            scores[top] = 0.5 + (n % 7) as f32 / 100.0;
            rows.push(PredictionRow {
                image_id: image.id.clone(),
                facet: facet.clone(),
                split: image.split,
                label: image.labels[f].clone(),
                predicted: labels[top].clone(),
                confidence: f64::from(scores[top]),
                scores,
                out_of_fold: n % 3 == 0,
            });
        }
    }
    (results, rows)
}

/// 100 000 images x 5 facets = 500 000 predictions: times the write, the read and a rewrite.
/// `cargo test --release -p atelier-catalog --test runs -- --ignored --nocapture`.
async fn bulk_predictions(env: &TestEnv, backend: &str) {
    let images = std::env::var("ATELIER_BULK_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let catalog = env.open().await;
    let started = Instant::now();
    let (manifest, _) = write_dataset(env, images, 5);
    import(&catalog, &manifest).await;
    println!(
        "{backend}: {images} images written and imported in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let run = start_run(&catalog).await;
    let started = Instant::now();
    let (facets, rows) = synthetic_results(&catalog, 5).await;
    println!(
        "{backend}: training_images + {} prediction rows built in {:.2} s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    catalog
        .record_run_results(run, &facets, &rows)
        .await
        .unwrap();
    let write = started.elapsed().as_secs_f64();
    println!(
        "{backend}: record_run_results {} rows in {write:.2} s = {:.0} rows/s",
        rows.len(),
        rows.len() as f64 / write
    );
    let started = Instant::now();
    let stored = catalog.predictions(run, None).await.unwrap();
    println!(
        "{backend}: predictions() read {} rows in {:.2} s",
        stored.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(stored.len(), rows.len());
    let started = Instant::now();
    catalog
        .record_run_results(run, &facets, &rows)
        .await
        .unwrap();
    println!(
        "{backend}: rewrite (delete + insert) in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    catalog.close().await;
    println!(
        "{backend}: close in {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "bulk timing: 100 000 images x 5 facets; run with --release --ignored --nocapture"]
async fn bulk_predictions_sqlite() {
    let env = TestEnv::sqlite();
    bulk_predictions(&env, "sqlite").await;
    let started = Instant::now();
    drop(env);
    println!(
        "sqlite: test folder removed in {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "bulk timing: 100 000 images x 5 facets; run with --release --ignored --nocapture"]
async fn bulk_predictions_postgres() {
    if let Some(env) = TestEnv::postgres().await {
        bulk_predictions(&env, "postgres").await;
    }
}
