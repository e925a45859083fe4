//! The box editor and the least-sure queue over HTTP: viewers see boxes, reviewers save them
//! (CSRF, versions: a stale one is a 409 with the current box), bad boxes are 400s that write
//! nothing, the form posts back to the image page, and the queue lists located boxes least
//! sure first until a reviewer checks them.

mod common;

use atelier_catalog::LocatedBox;
use axum::http::{Method, StatusCode};
use common::{fixture, get, login, post_form, record_similarity_run, send};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviewers_edit_boxes_with_versions_and_viewers_only_look() {
    let fx = fixture().await;
    let image = fx.images[0].clone();
    let uri = format!("/api/images/{image}/box");
    let body = |x1: f64, version: i64| json!({ "x0": 2, "y0": 3, "x1": x1, "y1": 30, "expected_version": version });
    let viewer = login(&fx.app, "vic").await;
    let page = get(&fx.app, &format!("/api/images/{image}"), Some(&viewer)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.json()["boxes"]["current"], json!(null));
    let html = get(&fx.app, &format!("/images/{image}"), Some(&viewer)).await;
    assert!(html.text().contains("No dress box stored yet."));
    assert!(!html.text().contains("box-editor"), "viewers get no editor");
    let post = |session, csrf, body| send(&fx.app, Method::POST, &uri, session, csrf, Some(body));
    assert_eq!(
        post(Some(&viewer), true, body(20.0, 0)).await.status,
        StatusCode::FORBIDDEN
    );
    let rita = login(&fx.app, "rita").await;
    assert_eq!(
        post(Some(&rita), false, body(20.0, 0)).await.status,
        StatusCode::FORBIDDEN,
        "no CSRF token"
    );
    let html = get(&fx.app, &format!("/images/{image}"), Some(&rita)).await;
    assert!(html.text().contains("form class=\"box-editor\""));

    let saved = post(Some(&rita), true, body(20.0, 0)).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text());
    let saved = saved.json();
    assert_eq!(saved["box"]["version"], json!(1));
    assert_eq!(saved["box"]["coords"], json!([2.0, 3.0, 20.0, 30.0]));
    assert_eq!(saved["event"]["actor"], json!("rita"));

    // Ron saw version 0 too: 409, with Rita's box.
    let ron = login(&fx.app, "ron").await;
    let late = post(Some(&ron), true, body(22.0, 0)).await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    let late = late.json();
    assert_eq!(late["current"]["box"]["version"], json!(1));
    assert_eq!(
        late["current"]["box"]["coords"],
        json!([2.0, 3.0, 20.0, 30.0])
    );
    assert!(late["error"].as_str().unwrap().contains("reload"));

    // Bad boxes: 400s naming the problem; nothing written.
    for (bad, says) in [
        (body(1.0, 1), "x1 must be greater"),
        (body(25.0, 1), "outside the 24x32 image"),
        (
            json!({ "x0": "left", "y0": 3, "x1": 9, "y1": 9, "expected_version": 1 }),
            "is not a number of pixels",
        ),
        (
            json!({ "x0": 1, "y0": 3, "x1": 9, "expected_version": 1 }),
            "y1",
        ),
    ] {
        let reply = post(Some(&ron), true, bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
        assert!(reply.text().contains(says), "{}", reply.text());
    }
    let unknown = send(
        &fx.app,
        Method::POST,
        &format!("/api/images/{}/box", "0".repeat(64)),
        Some(&ron),
        true,
        Some(body(9.0, 0)),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // The form (no script): back to the image page, which shows the new box and its change.
    let form = format!("csrf={}&expected_version=1&x0=1&y0=2&x1=10&y1=20", ron.csrf);
    let reply = post_form(&fx.app, &format!("/images/{image}/box"), &ron, form).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    assert_eq!(
        reply.location(),
        Some(format!("/images/{image}#box").as_str())
    );
    let page = get(&fx.app, &format!("/api/images/{image}"), Some(&viewer))
        .await
        .json();
    assert_eq!(page["boxes"]["current"]["version"], json!(2));
    assert_eq!(page["boxes"]["current"]["actor"], json!("ron"));
    assert_eq!(page["boxes"]["events"].as_array().unwrap().len(), 2);
    let html = get(&fx.app, &format!("/images/{image}"), Some(&viewer))
        .await
        .text();
    assert!(
        html.contains("Box changes") && html.contains("(1, 2, 10, 20)"),
        "{html}"
    );
    // The locator's next run learns from the reviewer's box.
    let boxes = fx.catalog.dress_boxes().await.unwrap();
    assert_eq!(boxes[&image], [1.0, 2.0, 10.0, 20.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_lists_least_sure_boxes_until_reviewers_check_them() {
    let fx = fixture().await;
    let viewer = login(&fx.app, "vic").await;
    // Without a similarity run the queue says how to get one.
    let none = get(&fx.app, "/api/boxes", Some(&viewer)).await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    assert!(none.text().contains("atelier train similarity"));

    let run = record_similarity_run(&fx.catalog, &fx.images).await;
    let located: Vec<LocatedBox> = fx
        .images
        .iter()
        .enumerate()
        .map(|(i, id)| LocatedBox {
            image: id.clone(),
            coords: [1.0, 1.0, 20.0, 30.0],
            foreground: Some(0.2 + i as f64 / 20.0),
            agreement: Some(0.9),
        })
        .collect();
    fx.catalog.store_located_boxes(run, &located).await.unwrap();
    let queue = get(&fx.app, "/api/boxes", Some(&viewer)).await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.text());
    let queue = queue.json();
    assert_eq!(queue["run"], json!(run));
    let first: Vec<&str> = queue["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["located"]["image"].as_str().unwrap())
        .collect();
    assert_eq!(first.len(), 12);
    assert_eq!(first[0], fx.images[0], "least sure first");
    let html = get(&fx.app, "/boxes", Some(&viewer)).await.text();
    assert!(
        html.contains("foreground 0.20 · regressor IoU 0.90"),
        "{html}"
    );
    // The image page draws the located box with its confidence.
    let page = get(
        &fx.app,
        &format!("/api/images/{}", fx.images[0]),
        Some(&viewer),
    )
    .await
    .json();
    assert_eq!(page["boxes"]["located"]["foreground"], json!(0.2));

    let rita = login(&fx.app, "rita").await;
    let saved = send(
        &fx.app,
        Method::POST,
        &format!("/api/images/{}/box", fx.images[0]),
        Some(&rita),
        true,
        Some(json!({ "x0": 1, "y0": 1, "x1": 20, "y1": 30, "expected_version": 0 })),
    )
    .await;
    assert_eq!(saved.status, StatusCode::OK);
    let queue = get(&fx.app, "/api/boxes", Some(&viewer)).await.json();
    let entries = queue["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 11);
    assert_eq!(entries[0]["located"]["image"], json!(fx.images[1]));
    let bad_page = get(&fx.app, "/api/boxes?page=0", Some(&viewer)).await;
    assert_eq!(bad_page.status, StatusCode::BAD_REQUEST);
}
