//! The triplet editor: the reference is the photo whose trained and off-the-shelf neighbours
//! differ most, the candidates come from both lists; reviewers store picks (CSRF, roles,
//! repeats are 409s), which then carry their user and leave the reference out of later tasks.

mod common;

use std::collections::HashSet;

use atelier_catalog::TripletSource;
use axum::http::{Method, StatusCode};
use common::{fixture, get, login, off_the_shelf_angle, record_similarity_run, send};
use serde_json::json;

/// The `k` nearest images to `i` when image `j` sits at `angle(j)`.
fn nearest(i: usize, k: usize, angle: impl Fn(usize) -> f32) -> HashSet<usize> {
    let mut others: Vec<usize> = (0..12).filter(|&j| j != i).collect();
    others.sort_by(|&a, &b| {
        let (da, db) = ((angle(a) - angle(i)).abs(), (angle(b) - angle(i)).abs());
        da.total_cmp(&db)
    });
    others.into_iter().take(k).collect()
}

/// Share of image `i`'s 6 nearest that the two embeddings do not share.
fn disagreement(i: usize) -> f32 {
    let trained = nearest(i, 6, |j| j as f32 / 10.0);
    let plain = nearest(i, 6, off_the_shelf_angle);
    1.0 - trained.intersection(&plain).count() as f32 / 6.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_editor_asks_where_embeddings_disagree_and_stores_picks() {
    let fx = fixture().await;
    record_similarity_run(&fx.catalog, &fx.images).await;
    let row = |id: &str| fx.images.iter().position(|i| i == id).unwrap();
    let viewer = login(&fx.app, "vic").await;
    let page = get(&fx.app, "/api/triplets", Some(&viewer)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let data = page.json();
    let task = &data["task"];
    let reference = row(task["reference"].as_str().unwrap());
    let most = (0..12).map(disagreement).fold(0.0f32, f32::max);
    let got = task["disagreement"].as_f64().unwrap() as f32;
    assert!((got - most).abs() < 1e-6, "{got} vs {most}: {task}");
    assert!((disagreement(reference) - most).abs() < 1e-6);
    let trained = nearest(reference, 6, |j| j as f32 / 10.0);
    let plain = nearest(reference, 6, off_the_shelf_angle);
    let candidates = task["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), trained.union(&plain).count().min(9));
    for candidate in candidates {
        let j = row(candidate["image_id"].as_str().unwrap());
        assert_eq!(candidate["trained_score"].is_null(), !trained.contains(&j));
        assert_eq!(
            candidate["off_the_shelf_score"].is_null(),
            !plain.contains(&j)
        );
    }
    assert_eq!(data["labelled"], json!(0));

    let pick = json!({
        "reference": task["reference"],
        "similar": candidates[0]["image_id"],
        "dissimilar": candidates[1]["image_id"],
    });
    let post = |session, csrf, body| {
        send(
            &fx.app,
            Method::POST,
            "/api/triplets",
            session,
            csrf,
            Some(body),
        )
    };
    assert_eq!(
        post(Some(&viewer), true, pick.clone()).await.status,
        StatusCode::FORBIDDEN
    );
    let rita = login(&fx.app, "rita").await;
    assert_eq!(
        post(Some(&rita), false, pick.clone()).await.status,
        StatusCode::FORBIDDEN
    );
    let stored = post(Some(&rita), true, pick.clone()).await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text());
    assert!(stored.json()["id"].as_i64().is_some());
    assert_eq!(
        post(Some(&rita), true, pick.clone()).await.status,
        StatusCode::CONFLICT
    );
    let mut same = pick.clone();
    same["dissimilar"] = same["similar"].clone();
    assert_eq!(
        post(Some(&rita), true, same).await.status,
        StatusCode::BAD_REQUEST
    );
    let mut unknown = pick.clone();
    unknown["dissimilar"] = json!("f".repeat(64));
    assert_eq!(
        post(Some(&rita), true, unknown).await.status,
        StatusCode::NOT_FOUND
    );

    let triplets = fx.catalog.triplets().await.unwrap();
    assert_eq!(triplets.len(), 1);
    assert_eq!(triplets[0].source, TripletSource::Review);
    assert_eq!(triplets[0].actor.as_deref(), Some("rita"));
    assert_eq!(json!(triplets[0].reference), pick["reference"]);
    // The labelled reference is not asked about again (unless asked for by id).
    let next = get(&fx.app, "/api/triplets", Some(&rita)).await.json();
    assert_ne!(next["task"]["reference"], pick["reference"]);
    assert_eq!(next["labelled"], json!(1));
    assert_eq!(next["recent"][0]["actor"], json!("rita"));
    let asked = get(
        &fx.app,
        &format!("/api/triplets?reference={}", fx.images[0]),
        Some(&rita),
    )
    .await
    .json();
    assert_eq!(asked["task"]["reference"], json!(fx.images[0]));

    // The page's form posts the same pick and goes on to the next reference.
    let html = get(&fx.app, "/triplets", Some(&rita)).await.text();
    assert!(html.contains("name=\"similar\""), "{html}");
    let viewer_html = get(&fx.app, "/triplets", Some(&viewer)).await.text();
    assert!(!viewer_html.contains("name=\"similar\""));
}
