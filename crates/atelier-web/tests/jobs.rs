//! The jobs page and its JSON twin: the queue as stored, reviewers cancel and retry, viewers
//! may not; a retrain answers with its job and the run page names it.

mod common;

use atelier_catalog::{JobStatus, NewJob};
use axum::http::{Method, StatusCode};
use common::{fixture, get, login, send};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviewers_cancel_and_retry_jobs_and_viewers_only_look() {
    let fx = fixture().await;
    let job = fx
        .catalog
        .enqueue_job(&NewJob {
            kind: "check".into(),
            params: json!({}),
            run_id: None,
            requested_by: "cli".into(),
            device: None,
            run_holder: None,
        })
        .await
        .unwrap();
    let (vic, rita) = (login(&fx.app, "vic").await, login(&fx.app, "rita").await);

    let listed = get(&fx.app, "/api/jobs", Some(&vic)).await.json();
    assert_eq!(listed["jobs"][0]["id"], json!(job), "{listed}");
    assert_eq!(listed["jobs"][0]["status"], json!("queued"));
    assert_eq!(listed["jobs"][0]["stalled"], json!(false));
    let html = get(&fx.app, "/jobs", Some(&vic)).await.text();
    assert!(html.contains(&format!("job-{job}")) && !html.contains("/cancel\""));
    let reviewer_html = get(&fx.app, "/jobs", Some(&rita)).await.text();
    assert!(reviewer_html.contains(&format!("action=\"/jobs/{job}/cancel\"")));

    let cancel = format!("/api/jobs/{job}/cancel");
    let refused = send(&fx.app, Method::POST, &cancel, Some(&vic), true, None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let cancelled = send(&fx.app, Method::POST, &cancel, Some(&rita), true, None).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text());
    assert_eq!(cancelled.json()["status"], json!("cancelled"));
    let again = send(&fx.app, Method::POST, &cancel, Some(&rita), true, None).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "an ended job");
    let stored = fx.catalog.job(job).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Cancelled);
    assert_eq!(stored.error.as_deref(), Some("cancelled by rita"));

    let retry = format!("/api/jobs/{job}/retry");
    let retried = send(&fx.app, Method::POST, &retry, Some(&rita), true, None).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text());
    let shown = get(&fx.app, &format!("/api/jobs/{job}"), Some(&vic))
        .await
        .json();
    assert_eq!(shown["status"], json!("queued"));
    let filtered = get(&fx.app, "/api/jobs?status=failed", Some(&vic))
        .await
        .json();
    assert_eq!(filtered["jobs"], json!([]));
    let bad = get(&fx.app, "/api/jobs?status=lost", Some(&vic)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let missing = get(&fx.app, "/api/jobs/999", Some(&vic)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrain_is_a_queued_job_that_its_run_page_names() {
    let fx = fixture().await;
    let rita = login(&fx.app, "rita").await;
    let path = format!("/api/runs/{}/retrain", fx.run);
    let started = send(
        &fx.app,
        Method::POST,
        &path,
        Some(&rita),
        true,
        Some(json!({})),
    )
    .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text());
    let (run, job) = (started.json()["run"].clone(), started.json()["job"].clone());
    let page = get(&fx.app, &format!("/api/runs/{run}"), Some(&rita))
        .await
        .json();
    assert_eq!(page["job"]["id"], job);
    assert_eq!(page["job"]["status"], json!("queued"));
    // The catalogue's job of the run is that job.
    let queued = fx
        .catalog
        .job_of_run(run.as_i64().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(json!(queued.id), job);
}
