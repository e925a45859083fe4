//! The catalogue browser: every image a page at a time, filtered by current labels (with and
//! without), split, status (quarantined with the reason), review and design; typos in names are
//! 400s that list the right ones, filters no image passes are an empty page.

mod common;

use atelier_catalog::{CheckOutcome, LabelEdit};
use axum::http::StatusCode;
use common::{Fixture, IMAGES, LABELS, fixture, get, login};
use serde_json::{Value, json};

/// Fixture rows in the browser's order (by path: img/0.png, img/1.png, img/10.png, ...).
fn path_order() -> Vec<usize> {
    let mut rows: Vec<usize> = (0..IMAGES.len()).collect();
    rows.sort_by_key(|i| format!("img/{i}.png"));
    rows
}

/// The fixture rows of a listing's images.
fn rows_of(fx: &Fixture, data: &Value) -> Vec<usize> {
    data["images"]
        .as_array()
        .unwrap_or_else(|| panic!("no images in {data}"))
        .iter()
        .map(|image| {
            let id = image["id"].as_str().unwrap();
            fx.images.iter().position(|i| i == id).unwrap()
        })
        .collect()
}

fn rows_where(keep: impl Fn(usize) -> bool) -> Vec<usize> {
    path_order().into_iter().filter(|&i| keep(i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_filters_by_labels_split_status_and_review() {
    let fx = fixture().await;
    let rita_changes = fx.images[4].clone();
    fx.catalog
        .set_labels(&[LabelEdit {
            image: rita_changes.clone(),
            facet: "silhouette".into(),
            label: Some("mermaid".into()),
            expected_version: 1,
            actor: "rita".into(),
            reason: None,
            run_id: None,
        }])
        .await
        .unwrap();
    fx.catalog
        .record_checks(&[CheckOutcome {
            id: fx.images[11].clone(),
            result: Err("the file is truncated".into()),
        }])
        .await
        .unwrap();
    let session = login(&fx.app, "vic").await;
    let list = |query: &str| {
        let (app, session) = (fx.app.clone(), session.clone());
        let uri = format!("/api/images{query}");
        async move {
            let reply = get(&app, &uri, Some(&session)).await;
            assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text());
            reply.json()
        }
    };
    let all = list("").await;
    assert_eq!(all["total"], json!(12));
    assert_eq!(rows_of(&fx, &all), path_order());
    let text = all.to_string();
    assert!(!text.contains("img/"), "no server paths: {text}");
    assert_eq!(all["facets"]["silhouette"], json!(LABELS));
    let quarantined = all["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == json!(fx.images[11]))
        .unwrap();
    assert_eq!(quarantined["status"], json!("quarantined"));
    assert_eq!(
        quarantined["quarantine_reason"],
        json!("the file is truncated")
    );

    let label_of = |i: usize| if i == 4 { 1 } else { IMAGES[i].1 };
    let cases: Vec<(&str, Vec<usize>)> = vec![
        ("?with=silhouette:mermaid", rows_where(|i| label_of(i) == 1)),
        (
            "?without=silhouette:mermaid&without=silhouette:sheath",
            rows_where(|i| label_of(i) == 0),
        ),
        ("?split=test", rows_where(|i| IMAGES[i].0 == "test")),
        (
            "?split=test&with=silhouette:sheath&status=active",
            rows_where(|i| IMAGES[i].0 == "test" && label_of(i) == 2 && i != 11),
        ),
        ("?status=quarantined", vec![11]),
        ("?reviewed=yes", vec![4]),
        ("?reviewed=no&split=all", rows_where(|i| i != 4)),
        ("?design=no-such-design", vec![]),
        // Known names that no image has together: an empty page, not an error.
        (
            "?with=silhouette:mermaid&without=silhouette:mermaid",
            vec![],
        ),
    ];
    for (query, expected) in cases {
        let data = list(query).await;
        assert_eq!(rows_of(&fx, &data), expected, "{query}");
        assert_eq!(data["total"], json!(expected.len()), "{query}");
    }

    let page = list("?per_page=5&page=3").await;
    assert_eq!(
        (page["pages"].clone(), page["page"].clone()),
        (json!(3), json!(3))
    );
    assert_eq!(rows_of(&fx, &page), path_order()[10..].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_filters_are_400s_that_say_what_to_write() {
    let fx = fixture().await;
    let session = login(&fx.app, "vic").await;
    for (query, expected) in [
        (
            "with=colour:red",
            "no facet `colour`; its facets are silhouette",
        ),
        (
            "with=silhouette:bell",
            "its labels are a-line, mermaid, sheath",
        ),
        ("with=silhouette", "write FACET:LABEL"),
        ("split=validation", "choose train, test or all"),
        ("status=lost", "choose active, quarantined or removed"),
        ("reviewed=maybe", "choose yes or no"),
        ("page=0", "pages count from 1"),
        ("per_page=100000", "give 1 to 500"),
        ("page=two", "give a whole number"),
        ("colour=red", "unknown parameter \"colour\""),
    ] {
        let reply = get(&fx.app, &format!("/api/images?{query}"), Some(&session)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        let message = reply.json()["error"].as_str().unwrap().to_string();
        assert!(message.contains(expected), "{query}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_page_shows_cards_filters_and_needs_a_login() {
    let fx = fixture().await;
    let anonymous = get(&fx.app, "/images?with=silhouette:mermaid", None).await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert_eq!(
        anonymous.location(),
        Some("/login?next=/images%3Fwith%3Dsilhouette%3Amermaid")
    );
    let session = login(&fx.app, "vic").await;
    let page = get(&fx.app, "/images?with=silhouette:mermaid", Some(&session)).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert_eq!(
        html.matches("<article class=\"card catalogue-card\"")
            .count(),
        3,
        "{html}"
    );
    assert!(
        html.contains(&format!("href=\"/images/{}#similar\"", fx.images[2])),
        "{html}"
    );
    // The active filter is a chip whose link removes it.
    assert!(html.contains("silhouette:mermaid ×"), "{html}");
    assert!(html.contains("href=\"/images?\""), "{html}");
    assert!(
        html.contains("<option value=\"silhouette:mermaid\" selected>"),
        "{html}"
    );
    let empty = get(&fx.app, "/images?design=none", Some(&session)).await;
    assert!(empty.text().contains("No image passes these filters."));
}
