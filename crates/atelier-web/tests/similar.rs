//! The image page's similar dresses: absent without a similarity run; with one, the nearest
//! stored embeddings in order, "the same dress, another LABEL" keeps only that label, and a
//! swap the catalogue cannot answer is a 400 that names the parameter.

mod common;

use atelier_app::similarity::embedding_key;
use axum::http::StatusCode;
use common::{LABELS, fixture, get, login, record_similarity_run};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_page_lists_similar_dresses_and_swaps_to_one_label() {
    let fx = fixture().await;
    let session = login(&fx.app, "vic").await;
    let first = &fx.images[0];
    let page = get(&fx.app, &format!("/api/images/{first}"), Some(&session)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.json()["similar"].is_null(), "{}", page.text());
    // The facet run stays the page's run once a similarity run is newer.
    assert_eq!(page.json()["run"], json!(fx.run));

    let run = record_similarity_run(&fx.catalog, &fx.images).await;

    let page = get(&fx.app, &format!("/api/images/{first}"), Some(&session)).await;
    let data = page.json();
    assert_eq!(
        data["run"],
        json!(fx.run),
        "the facet run, not the similarity run"
    );
    let similar = &data["similar"];
    assert_eq!(similar["run"], json!(run));
    let ids: Vec<&str> = similar["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["image_id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = fx.images[1..9].iter().map(String::as_str).collect();
    assert_eq!(ids, expected);
    let top = similar["results"][0]["score"].as_f64().unwrap();
    assert!((top - 0.1f64.cos()).abs() < 1e-5, "{top}");
    assert!(
        similar["results"][0].get("path").is_none(),
        "no server paths"
    );

    // The same dress, another silhouette: the mermaid photos (fixture rows 2, 3 and 9) only,
    // nearest first.
    let swap = get(
        &fx.app,
        &format!("/api/images/{first}?swap_facet=silhouette&swap_label=mermaid"),
        Some(&session),
    )
    .await;
    let similar = &swap.json()["similar"];
    assert_eq!(similar["swap"], json!(["silhouette", "mermaid"]));
    let ids: Vec<&str> = similar["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["labels"]["silhouette"], json!(LABELS[1]));
            r["image_id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            fx.images[2].as_str(),
            fx.images[3].as_str(),
            fx.images[9].as_str()
        ]
    );
    // The HTML page links every other label of each facet.
    let html = get(&fx.app, &format!("/images/{first}"), Some(&session)).await;
    let text = html.text();
    assert!(text.contains("same dress, another silhouette"), "{text}");
    assert!(
        text.contains(&format!(
            "/images/{first}?swap_facet=silhouette&amp;swap_label=mermaid#similar"
        )),
        "{text}"
    );

    // Swaps the catalogue cannot answer are refused, naming the parameter.
    for (query, names) in [
        ("swap_facet=silhouette&swap_label=tutu", "swap_label"),
        ("swap_facet=colour&swap_label=red", "swap_facet"),
        ("swap_facet=silhouette", "swap_facet and swap_label"),
    ] {
        let reply = get(
            &fx.app,
            &format!("/api/images/{first}?{query}"),
            Some(&session),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(reply.text().contains(names), "{query}: {}", reply.text());
    }

    // A photo the run has no embedding of says so instead of failing the page.
    fx.catalog
        .delete_embeddings(&embedding_key(run), &[fx.images[5].clone()])
        .await
        .unwrap();
    let page = get(
        &fx.app,
        &format!("/api/images/{}", fx.images[5]),
        Some(&session),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let problem = page.json()["similar"]["problem"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        problem.contains("index") || problem.contains("embedding"),
        "{problem}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_where_each_similar_dress_agrees_or_says_why_not() {
    let fx = fixture().await;
    let session = login(&fx.app, "vic").await;
    let first = &fx.images[0];
    // A run without a saved model lists its dresses and says why it cannot explain them.
    common::record_similarity_run(&fx.catalog, &fx.images).await;
    let page = get(
        &fx.app,
        &format!("/api/images/{first}?explain=true"),
        Some(&session),
    )
    .await;
    let similar = &page.json()["similar"];
    assert_eq!(similar["results"].as_array().unwrap().len(), 8, "{similar}");
    assert!(
        similar["explain_problem"]
            .as_str()
            .unwrap()
            .contains("saved no model"),
        "{similar}"
    );
    // With a model: a 3x3 grid of cosines per result, drawn as a heat map.
    common::record_model_similarity_run(&fx).await;
    let page = get(
        &fx.app,
        &format!("/api/images/{first}?explain=true"),
        Some(&session),
    )
    .await;
    let similar = &page.json()["similar"];
    assert!(similar["explain_problem"].is_null(), "{similar}");
    for result in similar["results"].as_array().unwrap() {
        let cells = result["explain"]["cells"].as_array().unwrap();
        assert_eq!(cells.len(), 9);
        // The squares the two grids cover, in the fixture photos' 24 x 32 pixels.
        for crop in ["query_crop", "crop"] {
            let view = &result["explain"][crop];
            assert_eq!(view["size"], serde_json::json!([24, 32]), "{result}");
            assert!(view["square"][2].as_i64().unwrap() > 0, "{result}");
        }
        assert!(
            cells
                .iter()
                .all(|c| c.as_f64().unwrap().abs() <= 1.0 + 1e-5)
        );
    }
    let html = get(
        &fx.app,
        &format!("/images/{first}?explain=true"),
        Some(&session),
    )
    .await
    .text();
    assert_eq!(html.matches("class=\"heat\"").count(), 8, "{html}");
    // Each drawn over both dress crops: this photo's and the similar dress's.
    assert_eq!(html.matches("class=\"heat-crop\"").count(), 16, "{html}");
    assert_eq!(
        html.matches(&format!("href=\"/images/{first}/thumb\""))
            .count(),
        8,
        "the query's crop under each of the 8"
    );
    assert!(html.contains("hide the heat maps"));
    let plain = get(&fx.app, &format!("/images/{first}"), Some(&session))
        .await
        .text();
    assert!(plain.contains("explain the scores") && !plain.contains("class=\"heat\""));
}
