//! Search by photo: by a catalogue image id or an uploaded photo's vector, with label filters,
//! a page at a time; uploads need the session's CSRF token, stay out of the catalogue, and a
//! file too large, a decompression bomb or an HTML file named .jpg is a clear 4xx.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Fixture, Session, fixture, get, login, record_model_similarity_run, reply_to};
use serde_json::{Value, json};

/// The fixture rows of an answer's results.
fn rows_of(fx: &Fixture, data: &Value) -> Vec<usize> {
    data["answer"]["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {data}"))
        .iter()
        .map(|r| {
            let id = r["image_id"].as_str().unwrap();
            fx.images.iter().position(|i| i == id).unwrap()
        })
        .collect()
}

fn hex_vector(values: &[f32]) -> String {
    values
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_id_or_vector_filters_and_pages() {
    let fx = fixture().await;
    let session = login(&fx.app, "vic").await;
    let empty = get(&fx.app, "/api/search", Some(&session)).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text());
    assert!(empty.json()["answer"].is_null());
    assert_eq!(
        empty.json()["facets"]["silhouette"],
        json!(["a-line", "mermaid", "sheath"])
    );
    common::record_similarity_run(&fx.catalog, &fx.images).await;
    let first = &fx.images[0];
    let by_id = get(&fx.app, &format!("/api/search?id={first}"), Some(&session)).await;
    assert_eq!(by_id.status, StatusCode::OK, "{}", by_id.text());
    assert_eq!(rows_of(&fx, &by_id.json()), (1..12).collect::<Vec<_>>());
    let filtered = get(
        &fx.app,
        &format!("/api/search?id={first}&with=silhouette:mermaid"),
        Some(&session),
    )
    .await;
    assert_eq!(rows_of(&fx, &filtered.json()), vec![2, 3, 9]);
    let second_page = get(
        &fx.app,
        &format!("/api/search?id={first}&page=2"),
        Some(&session),
    )
    .await;
    assert_eq!(rows_of(&fx, &second_page.json()), Vec::<usize>::new());

    // A vector at 0.52 radians lies nearest image 5 (0.5), then 6 (0.6), then 4 (0.4).
    let vector = hex_vector(&[0.52f32.cos(), 0.52f32.sin()]);
    let by_vector = get(
        &fx.app,
        &format!("/api/search?vector={vector}"),
        Some(&session),
    )
    .await;
    assert_eq!(by_vector.status, StatusCode::OK, "{}", by_vector.text());
    assert_eq!(rows_of(&fx, &by_vector.json())[..3], [5, 6, 4]);
    let html = get(
        &fx.app,
        &format!("/search?vector={vector}&without=silhouette:sheath"),
        Some(&session),
    )
    .await;
    let text = html.text();
    assert_eq!(
        text.matches("<article class=\"card similar-card\"").count(),
        7,
        "{text}"
    );

    for (query, expected) in [
        ("vector=abc".to_string(), "upload the photo again"),
        (
            format!("vector={}", hex_vector(&[1.0, 0.0, 0.0])),
            "embed the photo again",
        ),
        (format!("id={first}&vector={vector}"), "not both"),
        (format!("id={first}&page=41"), "give 1 to 40"),
        (format!("id={first}&with=silhouette:bell"), "its labels are"),
        ("colour=red".to_string(), "unknown parameter"),
    ] {
        let reply = get(&fx.app, &format!("/api/search?{query}"), Some(&session)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        let message = reply.json()["error"].as_str().unwrap().to_string();
        assert!(message.contains(expected), "{query}: {message}");
    }
}

/// A form field: name, file name (for a file), bytes.
type Field<'a> = (&'a str, Option<&'a str>, &'a [u8]);

/// A multipart body of `fields`.
fn multipart(fields: &[Field<'_>]) -> (String, Vec<u8>) {
    let boundary = "atelier-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, file, bytes) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(file) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                     Content-Type: image/jpeg\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(fx: &Fixture, session: &Session, fields: &[Field<'_>]) -> common::Reply {
    upload_to(fx, session, "/api/search", fields).await
}

async fn upload_to(
    fx: &Fixture,
    session: &Session,
    uri: &str,
    fields: &[Field<'_>],
) -> common::Reply {
    let (content_type, body) = multipart(fields);
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::COOKIE, &session.cookie)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap();
    reply_to(&fx.app, request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_searched_and_bad_uploads_are_clear_4xx() {
    let fx = fixture().await;
    let session = login(&fx.app, "vic").await;
    let csrf = session.csrf.clone();
    let photo = std::fs::read(fx.dir.path().join("img/3.png")).unwrap();
    let html = b"<!doctype html><html><body>not a photo</body></html>".to_vec();
    let bomb = atelier_vision::battery::png_bomb_header();
    let huge = vec![0u8; 50 << 20];
    let cases: Vec<(Vec<Field<'_>>, StatusCode, &str)> = vec![
        (
            vec![("photo", Some("a.png"), &photo)],
            StatusCode::FORBIDDEN,
            "CSRF",
        ),
        (
            vec![("csrf", None, csrf.as_bytes())],
            StatusCode::BAD_REQUEST,
            "choose a photo",
        ),
        (
            vec![
                ("csrf", None, csrf.as_bytes()),
                ("photo", Some("dress.jpg"), &html),
            ],
            StatusCode::BAD_REQUEST,
            "the uploaded file cannot be used",
        ),
        (
            vec![
                ("csrf", None, csrf.as_bytes()),
                ("photo", Some("bomb.png"), &bomb),
            ],
            StatusCode::BAD_REQUEST,
            "the uploaded file cannot be used",
        ),
        (
            vec![
                ("csrf", None, csrf.as_bytes()),
                ("photo", Some("big.jpg"), &huge),
            ],
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than the 16 MiB",
        ),
        (
            vec![("csrf", None, csrf.as_bytes()), ("colour", None, b"red")],
            StatusCode::BAD_REQUEST,
            "unknown form field",
        ),
        // A good photo, but no similarity run to search with yet.
        (
            vec![
                ("csrf", None, csrf.as_bytes()),
                ("photo", Some("a.png"), &photo),
            ],
            StatusCode::BAD_REQUEST,
            "no completed similarity run",
        ),
    ];
    for (fields, status, expected) in cases {
        let reply = upload(&fx, &session, &fields).await;
        let names: Vec<&str> = fields.iter().map(|f| f.1.unwrap_or(f.0)).collect();
        assert_eq!(reply.status, status, "{names:?}: {}", reply.text());
        let message = reply.json()["error"].as_str().unwrap().to_string();
        assert!(message.contains(expected), "{names:?}: {message}");
    }

    // In a browser, a bad upload brings the form back with the reason above it.
    let page = upload_to(
        &fx,
        &session,
        "/search",
        &[
            ("csrf", None, csrf.as_bytes()),
            ("photo", Some("dress.jpg"), &html),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let text = page.text();
    assert!(text.contains("the uploaded file cannot be used"), "{text}");
    assert!(text.contains("enctype=\"multipart/form-data\""), "{text}");

    let run = record_model_similarity_run(&fx).await;
    let images_before = fx.catalog.summary().await.unwrap();
    let reply = upload(
        &fx,
        &session,
        &[
            ("csrf", None, csrf.as_bytes()),
            ("photo", Some("a.png"), &photo),
            ("without", None, b"silhouette:sheath"),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let data = reply.json();
    assert_eq!(data["answer"]["run"], json!(run));
    assert_eq!(data["answer"]["query"], json!("an uploaded photo"));
    let rows = rows_of(&fx, &data);
    // Every photo but the sheath ones (rows 4, 5, 7, 10, 11), the photo itself first.
    assert_eq!(rows.len(), 7, "{data}");
    assert_eq!(rows[0], 3, "{data}");
    assert!(data["answer"]["results"][0]["score"].as_f64().unwrap() > 0.999);
    // The answer's vector pages with GET and gives the same ranking.
    let vector = data["params"]["vector"].as_str().unwrap();
    let again = get(
        &fx.app,
        &format!("/api/search?run={run}&vector={vector}&without=silhouette:sheath"),
        Some(&session),
    )
    .await;
    assert_eq!(rows_of(&fx, &again.json()), rows);
    // Nothing was added to the catalogue.
    assert_eq!(fx.catalog.summary().await.unwrap(), images_before);
}
