//! The crowd's signed image links, without a login: a valid link shows the task's photo; an
//! expired one, a tampered one and one task's signature on another task all get the same 404.

mod common;

use std::time::Duration;

use atelier_app::crowd::{ExportRequest, TaskSource, export};
use axum::http::StatusCode;
use common::{fixture, get};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The link's signature, computed here independently of the app: HMAC-SHA256 of
/// `TOKEN.EXPIRES` under the catalogue's key.
fn sign(key_hex: &str, token: &str, expires: i64) -> String {
    let key = hex::decode(key_hex).unwrap();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(format!("{token}.{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_links_show_their_photo_and_nothing_else() {
    let fx = fixture().await;
    let exported = export(
        &fx.catalog,
        &ExportRequest {
            run: fx.run,
            facet: None,
            from: TaskSource::All,
            limit: 3,
            votes: 3,
            gold: 0.0,
            base_url: Some("https://crowd.example/".into()),
            publish_images: None,
            expires_in: Duration::from_secs(3600),
            created_by: "test".into(),
        },
    )
    .await
    .unwrap();
    let rows: Vec<Vec<&str>> = exported
        .csv
        .lines()
        .skip(1)
        .map(|line| line.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 3, "{}", exported.csv);
    let (token, url) = (rows[0][0], rows[0][3]);
    let path = url.strip_prefix("https://crowd.example").unwrap();
    assert!(
        path.starts_with(&format!("/crowd/images/{token}?expires=")),
        "{url}"
    );

    // No session needed; the photo's bytes are the image's (its id is their SHA-256).
    let shown = get(&fx.app, path, None).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text());
    let task = fx.catalog.crowd_task(token).await.unwrap().unwrap();
    assert_eq!(hex::encode(Sha256::digest(&shown.body)), task.image_id);

    let key = fx
        .catalog
        .setting_or_insert("crowd_url_key", "unused")
        .await
        .unwrap();
    let expires = exported.expires_at;
    assert_eq!(
        path,
        format!(
            "/crowd/images/{token}?expires={expires}&sig={}",
            sign(&key, token, expires)
        ),
        "the app signs as documented"
    );
    let past = expires - 7200;
    let other = rows[1][0];
    let refused = [
        // Expired, though properly signed.
        format!(
            "/crowd/images/{token}?expires={past}&sig={}",
            sign(&key, token, past)
        ),
        // Tampered: a later expiry under the old signature.
        format!(
            "/crowd/images/{token}?expires={}&sig={}",
            expires + 1,
            sign(&key, token, expires)
        ),
        // Another task's token under this task's signature.
        format!(
            "/crowd/images/{other}?expires={expires}&sig={}",
            sign(&key, token, expires)
        ),
        // A signature under another key.
        format!(
            "/crowd/images/{token}?expires={expires}&sig={}",
            sign("00ff", token, expires)
        ),
    ];
    for path in refused {
        let answer = get(&fx.app, &path, None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!answer.text().contains(&task.image_id), "reveals nothing");
    }
}
