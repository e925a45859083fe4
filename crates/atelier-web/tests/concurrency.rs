//! 50 clients retag at once, half on the same label, half on different images: every accepted
//! change is in the history, every refused one is a conflict, and the final labels agree with
//! the history.

mod common;

use atelier_catalog::Role;
use atelier_web::hash_password;
use axum::http::{Method, StatusCode};
use common::{IMAGES, LABELS, fixture, login, send};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_clients_retag_at_once_without_losing_a_change() {
    let fx = fixture().await;
    let hash = hash_password(common::PASSWORD).unwrap();
    let mut sessions = Vec::new();
    for i in 0..50 {
        let name = format!("reviewer{i}");
        fx.catalog
            .add_user(&name, Role::Reviewer, &hash)
            .await
            .unwrap();
        sessions.push(login(&fx.app, &name).await);
    }
    let mut tasks = Vec::new();
    for (i, session) in sessions.into_iter().enumerate() {
        let app = fx.app.clone();
        // Even clients fight over image 0 (all quoting version 1); odd ones each retag their
        // own image: images 1..=11, several clients per image, each quoting version 1 too.
        let index = if i % 2 == 0 { 0 } else { 1 + (i / 2) % 11 };
        let image = fx.images[index].clone();
        // Never the imported label, so every accepted change writes an event.
        let label = LABELS[(IMAGES[index].1 + 1 + (i / 2) % 2) % 3];
        tasks.push(tokio::spawn(async move {
            let body = json!({"edits": [{"image": image, "facet": "silhouette", "label": label,
                                          "expected_version": 1, "reason": format!("client {i}")}]});
            let reply = send(&app, Method::POST, "/api/labels", Some(&session), true, Some(body)).await;
            (image, reply.status, reply.json())
        }));
    }
    let mut accepted = Vec::new();
    for task in tasks {
        let (image, status, body) = task.await.unwrap();
        match status {
            StatusCode::OK => accepted.push((image, body["changes"][0].clone())),
            StatusCode::CONFLICT => assert_eq!(body["current"]["version"], json!(2), "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    // Exactly one winner per image.
    let mut winners: Vec<&String> = accepted.iter().map(|(image, _)| image).collect();
    winners.sort();
    let before = winners.len();
    winners.dedup();
    assert_eq!(before, winners.len(), "two clients won the same image");
    assert_eq!(winners.len(), 12, "every image had a winner");

    for image in &fx.images {
        let history = fx.catalog.label_history(image).await.unwrap();
        let record = fx.catalog.image(image).await.unwrap().unwrap();
        let label = &record.labels[0];
        // Version = 1 (import) + one per later event, and the last event's label is current.
        assert_eq!(label.version as usize, history.len(), "{image}");
        assert_eq!(history.last().unwrap().new_label, label.label, "{image}");
        let (_, change) = accepted.iter().find(|(i, _)| i == image).unwrap();
        assert_eq!(
            history.len(),
            2,
            "{image}: the import and the one accepted change"
        );
        assert_eq!(history[1].id, change["event_id"].as_i64().unwrap());
        assert_eq!(
            history[1].new_label.as_deref(),
            change["new_label"].as_str()
        );
        assert!(history[1].actor.starts_with("reviewer"));
    }
}
