//! The loop in the app, with real (tiny) training: a reviewer fixes a label, starts a retrain
//! from the run page's endpoint, the job trains in the background with its progress on the run,
//! and the new run appears with its parent and can be compared with it.

use std::path::Path;
use std::time::{Duration, Instant};

use atelier_app::jobs::{self, WorkerConfig};
use atelier_app::runner::create_published_run;
use atelier_app::{RunPaths, create_run, execute_run};
use atelier_catalog::{Catalog, RunStatus, now_millis};
use atelier_train::BackboneChoice;
use atelier_train::config::HeadKind;
use atelier_train::config::TrainConfig;
use atelier_train::progress::Silent;
use atelier_web::{AppConfig, start};
use axum::http::{Method, StatusCode};
use serde_json::json;

mod common;

use common::{get, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrain_from_the_app_trains_in_the_background_and_is_comparable() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = common::synthetic_catalogue(dir.path(), 30, 3, 0.1).await;
    let paths = paths_of(dir.path());
    let mut config = TrainConfig::new(BackboneChoice::Tiny, vec!["silhouette".into()]);
    config.weights = Some(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../atelier-models/fixtures/tiny_cnn.safetensors"),
    );
    config.image_size = 32;
    config.epochs = 2;
    config.batch_size = 8;
    config.head = HeadKind::Pooled;
    config.freeze_backbone = true;
    config.folds = 2;
    config.gce_q = Some(0.7);
    // Published as `dresses`: its retrains publish under that name too.
    let first = create_published_run(&catalog, &config, &paths, None, Some("dresses"))
        .await
        .unwrap();
    let finished = execute_run(&catalog, first, &paths, Box::new(Silent))
        .await
        .unwrap();
    let published = finished.published.unwrap().unwrap();
    assert_eq!(published.model, "dresses@1");

    let _worker = spawn_worker(&catalog, paths.clone());
    let (app, rita) = common::app_with_reviewer(&catalog, paths, dir.path().join("thumbs")).await;

    // The queue of the first run lists out-of-fold train images too.
    let queue = get(&app, &format!("/api/runs/{first}/mistags"), Some(&rita)).await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.text());
    assert_eq!(queue.json()["train_images_included"], json!(true));

    let second = start_retrain(&app, first, &rita).await;
    assert_eq!(second, first + 1);

    // The job runs in the background; the run page (JSON twin) shows its state.
    let page = wait_for_completion(&app, second, &rita).await;
    // The retrain published its model as the next version of its parent's name.
    assert_eq!(
        page["summary"]["published"]["model"],
        json!("dresses@2"),
        "{page}"
    );
    assert_eq!(page["run"]["parent_run"], json!(first));
    assert_eq!(
        page["config"]["train"]["folds"],
        json!(2),
        "the parent's settings"
    );
    let parent = get(&app, &format!("/api/runs/{first}"), Some(&rita))
        .await
        .json();
    assert_eq!(parent["retrains"], json!([second]));
    // The run page says in words how the retrain learned: its parent's loss.
    let html = get(&app, &format!("/runs/{second}"), Some(&rita)).await;
    assert!(
        html.text().contains("generalised cross-entropy (q = 0.7)"),
        "{}",
        html.text()
    );

    let compare = get(
        &app,
        &format!("/api/runs/compare?a={first}&b={second}"),
        Some(&rita),
    )
    .await;
    assert_eq!(compare.status, StatusCode::OK);
    let facets = compare.json()["facets"].clone();
    assert_eq!(facets[0]["facet"], json!("silhouette"));
    let class = &facets[0]["classes"][0];
    let expected = class["test_b"].as_f64().unwrap() - class["test_a"].as_f64().unwrap();
    assert!((class["test_delta"].as_f64().unwrap() - expected).abs() < 1e-12);
    let html = get(
        &app,
        &format!("/runs/compare?a={first}&b={second}"),
        Some(&rita),
    )
    .await;
    assert!(html.text().contains("class=\"delta"));

    // A run whose process died (here: recorded by a process on another machine whose lease ran
    // out) is interrupted when the app starts, and resumes from its page to the end.
    let orphan = create_run(&catalog, &config, &paths_of(dir.path()), None)
        .await
        .unwrap();
    catalog
        .take_run(
            orphan,
            "another-host:99:gone",
            now_millis() - 1,
            Some(atelier_app::lease::owner()),
        )
        .await
        .unwrap();
    // This app works the job queue itself (the worker above has its own folders).
    let mut config = AppConfig::new(paths_of(dir.path()), dir.path().join("thumbs"));
    config.worker = true;
    let app = start(catalog.clone(), config).await.unwrap();
    let page = get(&app, &format!("/api/runs/{orphan}"), Some(&rita))
        .await
        .json();
    assert_eq!(page["run"]["status"], json!("interrupted"));
    let resumed = send(
        &app,
        Method::POST,
        &format!("/api/runs/{orphan}/resume"),
        Some(&rita),
        true,
        None,
    )
    .await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.text());
    wait_for_completion(&app, orphan, &rita).await;
    let record = catalog.run(orphan).await.unwrap().unwrap();
    assert_eq!((record.status, record.lease), (RunStatus::Completed, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_similarity_retrain_learns_from_a_reviewers_triplet_and_is_comparable() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, first, _, paths) = common::similarity_catalogue(dir.path()).await;
    let _worker = spawn_worker(&catalog, paths.clone());
    let (app, rita) = common::app_with_reviewer(&catalog, paths, dir.path().join("thumbs")).await;

    // A triplet from the editor, on the run's real embeddings.
    let task = get(&app, "/api/triplets", Some(&rita)).await.json()["task"].clone();
    let candidates = task["candidates"].as_array().unwrap();
    let pick = json!({
        "reference": task["reference"],
        "similar": candidates[0]["image_id"],
        "dissimilar": candidates[candidates.len() - 1]["image_id"],
    });
    let stored = send(
        &app,
        Method::POST,
        "/api/triplets",
        Some(&rita),
        true,
        Some(pick),
    )
    .await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text());

    let second = start_retrain(&app, first, &rita).await;
    let page = wait_for_completion(&app, second, &rita).await;
    assert_eq!(page["run"]["kind"], json!("similarity"));
    assert_eq!(page["run"]["parent_run"], json!(first));
    let evaluation = &page["similarity"];
    let stored_triplets = evaluation["stored_triplets_learnt"].as_u64().unwrap()
        + evaluation["stored_triplets_scored"].as_u64().unwrap();
    assert_eq!(stored_triplets, 1, "the reviewer's triplet: {evaluation}");
    assert!(
        evaluation["trained"]["recall_at_1"].is_number(),
        "{evaluation}"
    );
    let html = get(&app, &format!("/runs/{second}"), Some(&rita))
        .await
        .text();
    assert!(html.contains("Retrieval on held-out designs"), "{html}");

    // The runs list shows both runs' numbers, the compare view their change.
    let runs = get(&app, "/api/runs", Some(&rita)).await.json();
    for row in runs["runs"].as_array().unwrap() {
        assert!(row["retrieval"]["recall_at_1"].is_number(), "{row}");
    }
    let compare = get(
        &app,
        &format!("/api/runs/compare?a={first}&b={second}"),
        Some(&rita),
    )
    .await
    .json();
    let rows = compare["retrieval"].as_array().unwrap();
    assert_eq!(rows[0]["metric"], json!("Recall@1"));
    for row in rows {
        if let (Some(a), Some(b)) = (row["a"].as_f64(), row["b"].as_f64()) {
            assert!(
                (row["delta"].as_f64().unwrap() - (b - a)).abs() < 1e-12,
                "{row}"
            );
        }
    }
}

/// A worker on the catalogue's job queue, as `atelier worker` runs one; it works until the
/// test ends.
fn spawn_worker(catalog: &Catalog, paths: RunPaths) -> tokio::task::JoinHandle<()> {
    let catalog = catalog.clone();
    tokio::spawn(async move {
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        let mut config = WorkerConfig::new(paths, None);
        config.poll = Duration::from_millis(100);
        jobs::work(&catalog, &config, stopped).await.unwrap();
    })
}

/// Starts a retrain of `run` through the run page's endpoint; returns the new run's id.
async fn start_retrain(app: &axum::Router, run: i64, session: &common::Session) -> i64 {
    let started = send(
        app,
        Method::POST,
        &format!("/api/runs/{run}/retrain"),
        Some(session),
        true,
        Some(json!({})),
    )
    .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    started.json()["run"].as_i64().unwrap()
}

fn paths_of(dir: &Path) -> RunPaths {
    RunPaths {
        checkpoint_base: dir.join("checkpoints"),
        model_base: dir.join("models"),
        feature_cache: dir.join("features"),
        store: Some(dir.join("store").display().to_string()),
        mirror_checkpoints: false,
    }
}

/// The run's page (JSON twin) once the run completed; fails when it fails or takes too long.
async fn wait_for_completion(
    app: &axum::Router,
    run: i64,
    session: &common::Session,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let page = get(app, &format!("/api/runs/{run}"), Some(session))
            .await
            .json();
        match page["run"]["status"].as_str() {
            Some("completed") => return page,
            Some("failed") => panic!("run {run} failed: {page}"),
            _ if Instant::now() > deadline => panic!("run {run} did not finish: {page}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
