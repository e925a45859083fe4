//! Near-duplicates over HTTP: pairs above the threshold grouped (closest group first), an
//! empty page for a threshold no pair reaches, 400 for a threshold that is no similarity;
//! reviewers' verdicts (CSRF, roles) stored and shown, the form going back to its page.

mod common;

use axum::http::{Method, StatusCode};
use common::{fixture, get, login, post_form, record_similarity_run, send};
use serde_json::json;

/// Image i's trained embedding at an angle: 0 and 1 identical, 2 close to them, 5 and 6
/// close to each other, the others 0.3 radians apart (0.4 to 2.2).
fn angle(i: usize) -> f32 {
    match i {
        0 | 1 => 0.0,
        2 => 0.05,
        5 => 3.0,
        6 => 3.02,
        i => {
            let rest = [3, 4, 7, 8, 9, 10, 11];
            0.4 + 0.3 * rest.iter().position(|&r| r == i).unwrap() as f32
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_pairs_are_grouped_and_reviewers_give_verdicts() {
    let fx = fixture().await;
    let run = record_similarity_run(&fx.catalog, &fx.images).await;
    let vectors: Vec<(String, Vec<f32>)> = fx
        .images
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), vec![angle(i).cos(), angle(i).sin()]))
        .collect();
    fx.catalog
        .put_embeddings(&atelier_app::similarity::embedding_key(run), &vectors)
        .await
        .unwrap();
    let viewer = login(&fx.app, "vic").await;
    let report = get(&fx.app, "/api/duplicates?threshold=0.99", Some(&viewer)).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text());
    let report = report.json();
    assert_eq!(report["run"], json!(run));
    assert_eq!(
        (report["pairs"].clone(), report["groups"].clone()),
        (json!(4), json!(2))
    );
    let groups = report["shown"].as_array().unwrap();
    let mut first: Vec<String> = [0, 1, 2].iter().map(|&i| fx.images[i].clone()).collect();
    first.sort();
    assert_eq!(groups[0]["images"], json!(first));
    assert!((groups[0]["best"].as_f64().unwrap() - 1.0).abs() < 1e-5);
    let mut second = vec![fx.images[5].clone(), fx.images[6].clone()];
    second.sort();
    assert_eq!(groups[1]["images"], json!(second));
    assert_eq!(groups[0]["pairs"].as_array().unwrap().len(), 3);

    // Identical embeddings (a re-encoded copy, say) score 1; a bad threshold is a 400.
    let copies = get(&fx.app, "/api/duplicates?threshold=1", Some(&viewer)).await;
    assert_eq!(copies.status, StatusCode::OK);
    let mut identical = vec![fx.images[0].clone(), fx.images[1].clone()];
    identical.sort();
    assert_eq!(copies.json()["shown"][0]["images"], json!(identical));
    assert_eq!(copies.json()["pairs"], json!(1));
    for bad in [
        "threshold=1.5",
        "threshold=0",
        "threshold=x",
        "undecided=maybe",
        "page=0",
    ] {
        let reply = get(&fx.app, &format!("/api/duplicates?{bad}"), Some(&viewer)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.text()
        );
    }

    // Verdicts: viewers may not, a missing token is refused, reviewers are recorded.
    let (a, b) = (fx.images[6].clone(), fx.images[5].clone());
    let verdict = json!({ "a": a, "b": b, "verdict": "same" });
    let post = |session, csrf| {
        send(
            &fx.app,
            Method::POST,
            "/api/duplicates/verdict",
            session,
            csrf,
            Some(verdict.clone()),
        )
    };
    assert_eq!(
        post(Some(&viewer), true).await.status,
        StatusCode::FORBIDDEN
    );
    let rita = login(&fx.app, "rita").await;
    assert_eq!(post(Some(&rita), false).await.status, StatusCode::FORBIDDEN);
    let stored = post(Some(&rita), true).await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text());
    assert_eq!(stored.json()["image_a"], json!(second[0]));
    let bad = send(
        &fx.app,
        Method::POST,
        "/api/duplicates/verdict",
        Some(&rita),
        true,
        Some(json!({ "a": a, "b": b, "verdict": "maybe" })),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let report = get(&fx.app, "/api/duplicates?threshold=0.99", Some(&viewer))
        .await
        .json();
    let pair = &report["shown"][1]["pairs"][0];
    assert_eq!(
        (pair["verdict"].clone(), pair["decided_by"].clone()),
        (json!("same"), json!("rita"))
    );
    let open = get(
        &fx.app,
        "/api/duplicates?threshold=0.99&undecided=yes",
        Some(&viewer),
    )
    .await
    .json();
    assert_eq!(
        (open["pairs"].clone(), open["groups"].clone()),
        (json!(3), json!(1))
    );

    // The page's form: "not the same", then back to the same list.
    let html = get(&fx.app, "/duplicates?threshold=0.99", Some(&rita))
        .await
        .text();
    assert!(
        html.contains("Same product") && html.contains("same product"),
        "{html}"
    );
    let form = format!(
        "csrf={}&a={}&b={}&verdict=different&threshold=0.99&page=1&undecided=yes",
        rita.csrf, fx.images[0], fx.images[1]
    );
    let reply = post_form(&fx.app, "/duplicates/verdict", &rita, form).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    assert_eq!(
        reply.location(),
        Some("/duplicates?threshold=0.99&page=1&undecided=yes")
    );
    assert_eq!(fx.catalog.duplicate_decisions().await.unwrap().len(), 2);
    // Nothing left to decide at 1: an empty page, not an error.
    let none = get(
        &fx.app,
        "/api/duplicates?threshold=1&undecided=yes",
        Some(&viewer),
    )
    .await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(none.json()["groups"], json!(0));
    let html = get(
        &fx.app,
        "/duplicates?threshold=1&undecided=yes",
        Some(&viewer),
    )
    .await
    .text();
    assert!(
        html.contains("No undecided pair scores that high."),
        "{html}"
    );
}
