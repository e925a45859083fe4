//! The Crowd pages and their JSON twins: batches, one batch's aggregation, reviewers answering
//! tasks (their answers are votes), viewers only looking, and applying a batch.

mod common;

use std::time::Duration;

use atelier_app::crowd::{ExportRequest, TaskSource, export};
use axum::http::{Method, StatusCode};
use common::{fixture, get, login, send};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviewers_answer_tasks_and_apply_a_batch() {
    let fx = fixture().await;
    let batch = export(
        &fx.catalog,
        &ExportRequest {
            run: fx.run,
            facet: None,
            from: TaskSource::All,
            limit: 4,
            votes: 2,
            gold: 0.0,
            base_url: Some("https://crowd.example".into()),
            publish_images: None,
            expires_in: Duration::from_secs(3600),
            created_by: "test".into(),
        },
    )
    .await
    .unwrap()
    .batch;
    let (vic, rita, ron) = (
        login(&fx.app, "vic").await,
        login(&fx.app, "rita").await,
        login(&fx.app, "ron").await,
    );
    let listed = get(&fx.app, "/api/crowd", Some(&vic)).await.json();
    assert_eq!(listed["batches"][0]["tasks"], json!(4), "{listed}");
    assert!(
        get(&fx.app, "/crowd", Some(&vic))
            .await
            .text()
            .contains(&format!("/crowd/{batch}"))
    );

    // Two reviewers answer every task: each task's first label.
    let answer_path = format!("/api/crowd/{batch}/answer");
    for session in [&rita, &ron] {
        let mut answered = 0;
        loop {
            let page = get(&fx.app, &answer_path, Some(session)).await.json();
            if page["task"].is_null() {
                break;
            }
            let (token, label) = (
                page["task"]["token"].clone(),
                page["task"]["labels"][0].clone(),
            );
            let body = json!({ "token": token, "label": label });
            let stored = send(
                &fx.app,
                Method::POST,
                &answer_path,
                Some(session),
                true,
                Some(body),
            )
            .await;
            assert_eq!(stored.status, StatusCode::OK, "{}", stored.text());
            assert_eq!(stored.json()["added"], json!(1));
            answered += 1;
            assert!(answered <= 4, "the next task is one not answered yet");
        }
        assert_eq!(answered, 4);
    }
    let html = get(&fx.app, &format!("/crowd/{batch}/answer"), Some(&rita))
        .await
        .text();
    assert!(html.contains("You answered every task"), "{html}");

    // Viewers may look but not answer; a token of no task of this batch is a 404.
    let viewer_form = get(&fx.app, &answer_path, Some(&vic)).await.json();
    let token = viewer_form["task"]["token"].clone();
    let refused = send(
        &fx.app,
        Method::POST,
        &answer_path,
        Some(&vic),
        true,
        Some(json!({ "token": token, "label": "x" })),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let unknown = send(
        &fx.app,
        Method::POST,
        &answer_path,
        Some(&rita),
        true,
        Some(json!({ "token": "0".repeat(32), "label": "x" })),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let shown = get(&fx.app, &format!("/api/crowd/{batch}"), Some(&vic))
        .await
        .json();
    let workers = shown["aggregation"]["workers"].as_array().unwrap();
    let names: Vec<&str> = workers
        .iter()
        .map(|w| w["worker"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["(catalogue)", "review:rita", "review:ron"],
        "{shown}"
    );
    assert_eq!(shown["aggregation"]["tasks"].as_array().unwrap().len(), 4);
    let html = get(&fx.app, &format!("/crowd/{batch}"), Some(&rita))
        .await
        .text();
    assert!(html.contains(&format!("action=\"/crowd/{batch}/apply\"")));

    let apply = format!("/api/crowd/{batch}/apply");
    let viewer_apply = send(
        &fx.app,
        Method::POST,
        &apply,
        Some(&vic),
        true,
        Some(json!({})),
    )
    .await;
    assert_eq!(viewer_apply.status, StatusCode::FORBIDDEN);
    let applied = send(
        &fx.app,
        Method::POST,
        &apply,
        Some(&rita),
        true,
        Some(json!({ "min_posterior": "0.5" })),
    )
    .await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.text());
    let report = applied.json();
    let changed = report["changed"].as_u64().unwrap();
    let confirmed = report["confirmed"].as_u64().unwrap();
    assert_eq!(
        changed + confirmed,
        4,
        "two agreeing reviewers settle every task: {report}"
    );
}
