//! Every route for every role: what each may read, that writes need the reviewer (or admin)
//! role and the session's CSRF token, conflicts, undo, login limits, and that pages and their
//! JSON twins carry the same data.

mod common;

use axum::http::{Method, StatusCode};
use common::{LABELS, fixture, get, login, send};
use serde_json::json;

/// Every page (HTML path; the JSON twin is `/api` + path) of the fixture.
fn pages(run: i64, image: &str) -> Vec<String> {
    vec![
        "/runs".into(),
        format!("/runs/{run}"),
        format!("/runs/compare?a={run}&b={run}"),
        format!("/runs/{run}/facets/silhouette"),
        format!("/runs/{run}/facets/silhouette/review?kind=fn&label=sheath"),
        format!("/runs/{run}/facets/silhouette/review?kind=fp&label=a-line&split=train"),
        format!("/runs/{run}/facets/silhouette/review?kind=cell&label=a-line&predicted=sheath"),
        format!("/runs/{run}/mistags"),
        format!("/images/{image}"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_reads_every_page_and_its_json_twin() {
    let fx = fixture().await;
    for user in ["vic", "rita", "ada"] {
        let session = login(&fx.app, user).await;
        for path in pages(fx.run, &fx.images[0]) {
            let page = get(&fx.app, &path, Some(&session)).await;
            assert_eq!(
                page.status,
                StatusCode::OK,
                "{user} {path}: {}",
                page.text()
            );
            assert!(page.text().starts_with("<!DOCTYPE html>"), "{path}");
            let api = get(&fx.app, &format!("/api{path}"), Some(&session)).await;
            assert_eq!(
                api.status,
                StatusCode::OK,
                "{user} /api{path}: {}",
                api.text()
            );
            api.json();
        }
        for path in [
            format!("/images/{}/file", fx.images[0]),
            format!("/images/{}/thumb", fx.images[0]),
        ] {
            let reply = get(&fx.app, &path, Some(&session)).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}");
            assert!(image::load_from_memory(&reply.body).is_ok(), "{path}");
        }
        let users = get(&fx.app, "/api/users", Some(&session)).await;
        let expected = if user == "ada" {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(users.status, expected, "{user} /api/users");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_pages_redirect_to_login_and_the_api_answers_401() {
    let fx = fixture().await;
    for path in pages(fx.run, &fx.images[0]) {
        let page = get(&fx.app, &path, None).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            page.location().unwrap().starts_with("/login?next="),
            "{path}"
        );
        let api = get(&fx.app, &format!("/api{path}"), None).await;
        assert_eq!(api.status, StatusCode::UNAUTHORIZED, "/api{path}");
    }
    let file = get(&fx.app, &format!("/images/{}/file", fx.images[0]), None).await;
    assert_eq!(file.status, StatusCode::SEE_OTHER);
    let bogus = common::Session {
        cookie: "atelier_session=forged".into(),
        csrf: "x".into(),
    };
    assert_eq!(
        get(&fx.app, "/api/runs", Some(&bogus)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_f1_json_twin_carries_the_runs_tables() {
    let fx = fixture().await;
    let session = login(&fx.app, "vic").await;
    let facet = get(
        &fx.app,
        &format!("/api/runs/{}/facets/silhouette", fx.run),
        Some(&session),
    )
    .await
    .json();
    assert_eq!(facet["labels"], json!(LABELS));
    // Test split by hand: a-line 1 sample predicted sheath; mermaid 1 correct; sheath 2, one
    // predicted a-line. Confusion rows = label, columns = prediction.
    assert_eq!(
        facet["test"]["confusion"],
        json!([[0, 0, 1], [0, 1, 0], [1, 0, 1]])
    );
    assert_eq!(facet["test"]["per_class"][1]["f1"], json!(1.0));
    let page = get(
        &fx.app,
        &format!("/runs/{}/facets/silhouette", fx.run),
        Some(&session),
    )
    .await
    .text();
    // The heat map links its cells to their images.
    assert!(page.contains("review?kind=cell&amp;label=sheath&amp;predicted=a-line&amp;split=test"));
    assert!(page.contains("<svg"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn false_negatives_are_sorted_by_confidence_and_filtered_by_split() {
    let fx = fixture().await;
    let session = login(&fx.app, "vic").await;
    let uri = format!(
        "/api/runs/{}/facets/silhouette/review?kind=fn&label=sheath",
        fx.run
    );
    let all = get(&fx.app, &uri, Some(&session)).await.json();
    // Sheath images predicted as something else: #5 (train, 0.95) and #10 (test, 0.6).
    assert_eq!(all["total"], json!(2));
    let ids: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [fx.images[5].as_str(), fx.images[10].as_str()]);
    let test = get(&fx.app, &format!("{uri}&split=test"), Some(&session))
        .await
        .json();
    assert_eq!(test["total"], json!(1));
    let bad = get(&fx.app, &format!("{uri}&split=both"), Some(&session)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

fn edit(image: &str, label: &str, version: i64) -> serde_json::Value {
    json!({"edits": [{"image": image, "facet": "silhouette", "label": label,
                      "expected_version": version, "reason": "test", "run": 1}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_the_role_and_the_csrf_token() {
    let fx = fixture().await;
    let image = &fx.images[5];
    let viewer = login(&fx.app, "vic").await;
    let reviewer = login(&fx.app, "rita").await;
    let refused = send(
        &fx.app,
        Method::POST,
        "/api/labels",
        Some(&viewer),
        true,
        Some(edit(image, "a-line", 1)),
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "a viewer cannot retag"
    );
    let no_token = send(
        &fx.app,
        Method::POST,
        "/api/labels",
        Some(&reviewer),
        false,
        Some(edit(image, "a-line", 1)),
    )
    .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN, "no CSRF token");
    let mut wrong = reviewer.clone();
    wrong.csrf = viewer.csrf.clone();
    let wrong_token = send(
        &fx.app,
        Method::POST,
        "/api/labels",
        Some(&wrong),
        true,
        Some(edit(image, "a-line", 1)),
    )
    .await;
    assert_eq!(
        wrong_token.status,
        StatusCode::FORBIDDEN,
        "another session's token"
    );
    assert!(
        fx.catalog.label_history(image).await.unwrap().len() == 1,
        "only the import event"
    );

    let accepted = send(
        &fx.app,
        Method::POST,
        "/api/labels",
        Some(&reviewer),
        true,
        Some(edit(image, "a-line", 1)),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text());
    let change = &accepted.json()["changes"][0];
    assert_eq!(change["old_label"], json!("sheath"));
    assert_eq!(change["new_label"], json!("a-line"));
    assert_eq!(change["version"], json!(2));
    let history = fx.catalog.label_history(image).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.actor.as_str(), last.reason.as_deref(), last.run_id),
        ("rita", Some("test"), Some(1))
    );

    // Retrain, user management and undo are writes too.
    for (path, body) in [
        (format!("/api/runs/{}/retrain", fx.run), json!({})),
        (
            "/api/users".to_string(),
            json!({"name": "eve", "password": "password-123", "role": "admin"}),
        ),
        ("/api/users/vic/role".to_string(), json!({"role": "admin"})),
        ("/api/users/vic/remove".to_string(), json!({})),
        (
            "/api/labels/undo".to_string(),
            json!({"event": change["event_id"]}),
        ),
    ] {
        let reply = send(
            &fx.app,
            Method::POST,
            &path,
            Some(&viewer),
            true,
            Some(body.clone()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "viewer {path}");
        if path.starts_with("/api/users") {
            let reply = send(
                &fx.app,
                Method::POST,
                &path,
                Some(&reviewer),
                true,
                Some(body),
            )
            .await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "reviewer {path}");
        }
    }
    assert!(fx.catalog.user("eve").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_version_is_a_conflict_and_undo_is_a_new_event() {
    let fx = fixture().await;
    let image = &fx.images[1];
    let rita = login(&fx.app, "rita").await;
    let ron = login(&fx.app, "ron").await;
    let first = send(
        &fx.app,
        Method::POST,
        "/api/labels",
        Some(&rita),
        true,
        Some(edit(image, "sheath", 1)),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK);
    // Ron saw version 1 too.
    let second = send(
        &fx.app,
        Method::POST,
        "/api/labels",
        Some(&ron),
        true,
        Some(edit(image, "mermaid", 1)),
    )
    .await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    let conflict = second.json();
    assert_eq!(conflict["current"]["label"], json!("sheath"));
    assert_eq!(conflict["current"]["version"], json!(2));
    // Resolving: Ron applies his label over the version he now knows.
    let resolved = send(
        &fx.app,
        Method::POST,
        "/api/labels",
        Some(&ron),
        true,
        Some(edit(image, "mermaid", 2)),
    )
    .await;
    assert_eq!(resolved.status, StatusCode::OK);
    let event = resolved.json()["changes"][0]["event_id"].clone();
    let undone = send(
        &fx.app,
        Method::POST,
        "/api/labels/undo",
        Some(&ron),
        true,
        Some(json!({"event": event})),
    )
    .await;
    assert_eq!(undone.status, StatusCode::OK, "{}", undone.text());
    assert_eq!(undone.json()["new_label"], json!("sheath"));
    let history = fx.catalog.label_history(image).await.unwrap();
    let changes: Vec<(Option<&str>, Option<&str>, &str)> = history
        .iter()
        .map(|e| {
            (
                e.old_label.as_deref(),
                e.new_label.as_deref(),
                e.actor.as_str(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            (None, Some("a-line"), "import"),
            (Some("a-line"), Some("sheath"), "rita"),
            (Some("sheath"), Some("mermaid"), "ron"),
            (Some("mermaid"), Some("sheath"), "ron"),
        ]
    );
    // The image page's JSON shows the label and the version the next change must quote.
    let page = get(&fx.app, &format!("/api/images/{image}"), Some(&rita))
        .await
        .json();
    assert_eq!(page["facets"][0]["label"], json!("sheath"));
    assert_eq!(page["facets"][0]["version"], json!(4));
    assert_eq!(page["history"].as_array().unwrap().len(), 4);
    assert!(page.get("uri").is_none(), "no server paths in the API");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_retag_is_all_or_nothing() {
    let fx = fixture().await;
    let rita = login(&fx.app, "rita").await;
    let body = json!({"edits": [
        {"image": fx.images[0], "facet": "silhouette", "label": "mermaid", "expected_version": 1},
        {"image": fx.images[2], "facet": "silhouette", "label": "mermaid", "expected_version": 7},
    ]});
    let reply = send(
        &fx.app,
        Method::POST,
        "/api/labels",
        Some(&rita),
        true,
        Some(body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(
        fx.catalog.label_history(&fx.images[0]).await.unwrap().len(),
        1
    );
    let unknown = send(
        &fx.app,
        Method::POST,
        "/api/labels",
        Some(&rita),
        true,
        Some(edit(&fx.images[0], "ballgown", 1)),
    )
    .await;
    assert_eq!(
        unknown.status,
        StatusCode::BAD_REQUEST,
        "{}",
        unknown.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_rate_limited_and_forms_need_their_token() {
    let fx = fixture().await;
    for _ in 0..5 {
        let reply = send(
            &fx.app,
            Method::POST,
            "/api/login",
            None,
            false,
            Some(json!({"user": "rita", "password": "wrong-password"})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
    }
    let limited = send(
        &fx.app,
        Method::POST,
        "/api/login",
        None,
        false,
        Some(json!({"user": "rita", "password": common::PASSWORD})),
    )
    .await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    // Other users are not affected.
    login(&fx.app, "ron").await;

    // The HTML login form without its token cookie opens no session.
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(
            "user=ron&password=password-123&csrf=guess",
        ))
        .unwrap();
    let response = tower::ServiceExt::oneshot(fx.app.clone(), request)
        .await
        .unwrap();
    let sets_session = response.headers().get_all("set-cookie").iter().any(|v| {
        v.to_str().unwrap().starts_with("atelier_session=")
            && !v.to_str().unwrap().starts_with("atelier_session=;")
    });
    assert!(!sets_session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_served_by_id_only() {
    let fx = fixture().await;
    let vic = login(&fx.app, "vic").await;
    for path in [
        "/images/..%2F..%2Fetc%2Fpasswd/file",
        "/images/%2Fetc%2Fpasswd/thumb",
        "/images/0000/file",
    ] {
        let reply = get(&fx.app, path, Some(&vic)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_users_and_logout_ends_the_session() {
    let fx = fixture().await;
    let ada = login(&fx.app, "ada").await;
    let added = send(
        &fx.app,
        Method::POST,
        "/api/users",
        Some(&ada),
        true,
        Some(json!({"name": "nina", "password": "password-123", "role": "viewer"})),
    )
    .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.text());
    let nina = login(&fx.app, "nina").await;
    let promoted = send(
        &fx.app,
        Method::POST,
        "/api/users/nina/role",
        Some(&ada),
        true,
        Some(json!({"role": "reviewer"})),
    )
    .await;
    assert_eq!(promoted.status, StatusCode::OK);
    // The new role applies to the open session at once.
    let retag = send(
        &fx.app,
        Method::POST,
        "/api/labels",
        Some(&nina),
        true,
        Some(edit(&fx.images[3], "sheath", 1)),
    )
    .await;
    assert_eq!(retag.status, StatusCode::OK, "{}", retag.text());
    let short = send(
        &fx.app,
        Method::POST,
        "/api/users",
        Some(&ada),
        true,
        Some(json!({"name": "olga", "password": "short", "role": "viewer"})),
    )
    .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    let removed = send(
        &fx.app,
        Method::POST,
        "/api/users/nina/remove",
        Some(&ada),
        true,
        Some(json!({})),
    )
    .await;
    assert_eq!(removed.status, StatusCode::OK);
    assert_eq!(
        get(&fx.app, "/api/runs", Some(&nina)).await.status,
        StatusCode::UNAUTHORIZED
    );

    let logout = send(&fx.app, Method::POST, "/logout", Some(&ada), true, None).await;
    assert_eq!(logout.status, StatusCode::SEE_OTHER);
    assert_eq!(
        get(&fx.app, "/api/runs", Some(&ada)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Sends a urlencoded form as a browser without script would.
async fn post_form(
    app: &axum::Router,
    uri: &str,
    session: &common::Session,
    form: &str,
) -> common::Reply {
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header("cookie", &session.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(form.to_string()))
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.clone(), request)
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    common::Reply {
        status,
        headers,
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_forms_need_the_csrf_field_and_the_role() {
    let fx = fixture().await;
    let image = &fx.images[2];
    let uri = format!("/images/{image}/labels");
    let rita = login(&fx.app, "rita").await;
    let vic = login(&fx.app, "vic").await;
    let form = |csrf: &str| format!("csrf={csrf}&facet=silhouette&label=sheath&expected_version=1");

    let missing = post_form(
        &fx.app,
        &uri,
        &rita,
        "facet=silhouette&label=sheath&expected_version=1",
    )
    .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(
        missing.text().contains("CSRF"),
        "an HTML error page says why"
    );
    let viewer = post_form(&fx.app, &uri, &vic, &form(&vic.csrf)).await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);
    assert_eq!(fx.catalog.label_history(image).await.unwrap().len(), 1);

    let saved = post_form(&fx.app, &uri, &rita, &form(&rita.csrf)).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text());
    assert_eq!(saved.location(), Some(format!("/images/{image}").as_str()));
    let record = fx.catalog.image(image).await.unwrap().unwrap();
    assert_eq!(record.labels[0].label.as_deref(), Some("sheath"));
    // The same form again quotes a stale version: a conflict page, nothing written.
    let stale = post_form(&fx.app, &uri, &rita, &form(&rita.csrf)).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(fx.catalog.label_history(image).await.unwrap().len(), 2);

    // Retrain and logout forms check the field too.
    let retrain = post_form(
        &fx.app,
        &format!("/runs/{}/retrain", fx.run),
        &rita,
        "csrf=wrong",
    )
    .await;
    assert_eq!(retrain.status, StatusCode::FORBIDDEN);
    let logout = post_form(&fx.app, "/logout", &rita, "csrf=wrong").await;
    assert_eq!(logout.status, StatusCode::FORBIDDEN);
    assert_eq!(
        get(&fx.app, "/api/runs", Some(&rita)).await.status,
        StatusCode::OK
    );
    let logout = post_form(&fx.app, "/logout", &rita, &format!("csrf={}", rita.csrf)).await;
    assert_eq!(logout.status, StatusCode::SEE_OTHER);
    assert_eq!(
        get(&fx.app, "/api/runs", Some(&rita)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_served_without_a_session() {
    let fx = fixture().await;
    for (path, kind) in [
        ("/assets/app.css", "text/css"),
        ("/assets/app.js", "text/javascript"),
        ("/favicon.ico", "image/svg+xml"),
        ("/login", "text/html"),
    ] {
        let reply = get(&fx.app, path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        let content_type = reply.headers.get("content-type").unwrap().to_str().unwrap();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
    }
    let root = get(&fx.app, "/", None).await;
    assert_eq!(root.location(), Some("/runs"));
}
