//! What an attacker tried against the app, and what holds now: concurrent guesses cannot
//! outrun the login limits, guessing a user's password elsewhere cannot lock that user out, the
//! login never redirects to another site, only active images whose file still holds the
//! imported bytes are served, every response carries the security headers, cookies are
//! `Secure` over HTTPS, reasons have a size limit, and runs whose process is gone are offered
//! for resuming or marking failed.

mod common;

use std::net::SocketAddr;

use atelier_app::runner::RunPaths;
use atelier_catalog::{LoginTally, NewRun, RunLease, RunStatus, now_millis};
use atelier_web::{AppConfig, router, start};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use common::{PASSWORD, Reply, Session, fixture, get, login, reply_to, send};
use serde_json::{Value, json};

/// A request from client `address` with extra headers and an optional JSON or form body.
async fn request(
    app: &Router,
    method: Method,
    uri: &str,
    address: [u8; 4],
    headers: &[(&str, &str)],
    body: Option<Body>,
) -> Reply {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(body.unwrap_or_else(Body::empty)).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((address, 40_000))));
    reply_to(app, request).await
}

async fn api_login(
    app: &Router,
    user: &str,
    password: &str,
    address: [u8; 4],
    cookie: Option<&str>,
) -> Reply {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(cookie) = cookie {
        headers.push(("cookie", cookie));
    }
    let body = json!({"user": user, "password": password}).to_string();
    request(
        app,
        Method::POST,
        "/api/login",
        address,
        &headers,
        Some(Body::from(body)),
    )
    .await
}

/// `name=value` of the cookie `name` that a reply sets.
fn set_cookie(reply: &Reply, name: &str) -> Option<String> {
    reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}

fn retry_after(reply: &Reply) -> u64 {
    reply
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After on a {}", reply.status))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_are_counted_before_the_password_is_checked() {
    let fx = fixture().await;
    // 40 guesses at once, one of them right: only the free failures' worth are checked.
    let guesses = (0..40).map(|i| {
        let password = if i == 39 { PASSWORD } else { "wrong-password" };
        let app = fx.app.clone();
        async move { api_login(&app, "rita", password, [10, 0, 1, i], None).await }
    });
    let replies = futures_join_all(guesses).await;
    let checked = replies
        .iter()
        .filter(|r| matches!(r.status, StatusCode::OK | StatusCode::FORBIDDEN))
        .count();
    let limited = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(checked <= 5, "{checked} passwords were checked");
    assert_eq!(checked + limited, 40);
}

/// Joins futures without pulling in the futures crate: each on its own task.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<Reply>
where
    F: std::future::Future<Output = Reply> + Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut replies = Vec::new();
    for handle in handles {
        replies.push(handle.await.unwrap());
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_a_users_password_slows_strangers_but_never_locks_the_user_out() {
    let fx = fixture().await;
    let home = [192, 168, 1, 7];
    // Rita logs in at her desk: a session and a device cookie.
    let first = api_login(&fx.app, "rita", PASSWORD, home, None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let session = Session {
        cookie: set_cookie(&first, "atelier_session").unwrap(),
        csrf: first.json()["csrf_token"].as_str().unwrap().to_string(),
    };
    let device = set_cookie(&first, "atelier_device").expect("a device cookie");

    // Someone guesses her password from many addresses.
    for i in 0..12u8 {
        let guess = format!("guess-{i}-wrong");
        let reply = api_login(&fx.app, "rita", &guess, [203, 0, 113, i], None).await;
        assert!(
            matches!(
                reply.status,
                StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
            ),
            "{}",
            reply.status
        );
    }
    // Strangers now wait (a backoff of at most a minute), even with the right password...
    let stranger = api_login(&fx.app, "rita", PASSWORD, [198, 51, 100, 1], None).await;
    assert_eq!(stranger.status, StatusCode::TOO_MANY_REQUESTS);
    assert!((1..=60).contains(&retry_after(&stranger)));
    // ... but Rita's open session keeps working, and her own browser logs in at once.
    let runs = get(&fx.app, "/api/runs", Some(&session)).await;
    assert_eq!(runs.status, StatusCode::OK);
    let again = api_login(&fx.app, "rita", PASSWORD, home, Some(&device)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    // A device cookie of another user's is no pass for rita.
    let ron = api_login(&fx.app, "ron", PASSWORD, [10, 9, 9, 9], None).await;
    let rons_device = set_cookie(&ron, "atelier_device").unwrap();
    for i in 0..6u8 {
        api_login(&fx.app, "rita", "wrong-again", [203, 0, 114, i], None).await;
    }
    let borrowed = api_login(&fx.app, "rita", PASSWORD, [10, 9, 9, 9], Some(&rons_device)).await;
    assert_eq!(borrowed.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_is_refused_after_its_failures_whatever_the_names() {
    let fx = fixture().await;
    let attacker = [203, 0, 113, 50];
    let mut refused = 0;
    for i in 0..30 {
        let reply = api_login(
            &fx.app,
            &format!("name-{i}"),
            "wrong-password",
            attacker,
            None,
        )
        .await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
            assert!(retry_after(&reply) > 60, "an address waits for its window");
        }
    }
    assert_eq!(refused, 10, "20 failures per address, then refused");
    // Another address is not affected.
    let ok = api_login(&fx.app, "vic", PASSWORD, [10, 1, 1, 1], None).await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_instances_on_one_catalogue_count_each_others_failures() {
    let fx = fixture().await;
    // A second instance of the app on the same catalogue (behind one load balancer).
    let paths = RunPaths {
        checkpoint_base: fx.dir.path().join("checkpoints"),
        model_base: fx.dir.path().join("models"),
        feature_cache: fx.dir.path().join("features"),
        store: None,
        mirror_checkpoints: false,
    };
    let other = router(
        fx.catalog.clone(),
        AppConfig::new(paths, fx.dir.path().join("thumbs")),
    );
    let attacker = [203, 0, 113, 60];
    for i in 0..20 {
        let reply = api_login(&fx.app, &format!("name-{i}"), "wrong", attacker, None).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
    }
    // The failures reach the catalogue in the background.
    let recorded = || async {
        fx.catalog
            .login_failures("an observer", &[(LoginTally::Address, "203.0.113.60")], 0)
            .await
            .unwrap()[0]
            .len()
    };
    let started = std::time::Instant::now();
    while recorded().await < 20 {
        assert!(
            started.elapsed().as_secs() < 10,
            "the failures were not shared"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The other instance refuses that address at once, for any name, right password or not.
    let refused = api_login(&other, "vic", PASSWORD, attacker, None).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        retry_after(&refused) > 60,
        "the address waits for its window"
    );

    // Five free failures of one name on the first instance slow that name down on the other.
    for i in 0..5u8 {
        let reply = api_login(&fx.app, "ron", "wrong", [198, 51, 100, i], None).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
    }
    let ron = |catalog: atelier_catalog::Catalog| async move {
        catalog
            .login_failures("an observer", &[(LoginTally::Name, "ron")], 0)
            .await
            .unwrap()[0]
            .len()
    };
    while ron(fx.catalog.clone()).await < 5 {
        assert!(
            started.elapsed().as_secs() < 20,
            "the failures were not shared"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let slowed = api_login(&other, "ron", "wrong", [198, 51, 100, 9], None).await;
    assert_eq!(slowed.status, StatusCode::TOO_MANY_REQUESTS);
    // Another name is not affected there.
    let fine = api_login(&other, "vic", PASSWORD, [10, 1, 1, 2], None).await;
    assert_eq!(fine.status, StatusCode::OK);
}

/// Posts the HTML login form with `next`, its token cookie and the right password.
async fn form_login(app: &Router, next: &str) -> Reply {
    let form = get(app, "/login", None).await;
    let token = set_cookie(&form, "atelier_login").unwrap();
    let csrf = token.split_once('=').unwrap().1.to_string();
    let body = format!(
        "user=vic&password={PASSWORD}&csrf={csrf}&next={}",
        encode(next)
    );
    request(
        app,
        Method::POST,
        "/login",
        [10, 2, 2, 2],
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", &token),
        ],
        Some(Body::from(body)),
    )
    .await
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_goes_back_only_to_paths_of_this_site() {
    let fx = fixture().await;
    let run_page = format!("/runs/{}?tab=1", fx.run);
    let reply = form_login(&fx.app, &run_page).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), Some(run_page.as_str()));
    for evil in [
        "/\\evil.example/",
        "/\t/evil.example",
        "//evil.example/",
        "https://evil.example/",
        "/runs\r\nSet-Cookie: x=y",
        "/\n/evil.example",
    ] {
        let reply = form_login(&fx.app, evil).await;
        assert_eq!(
            reply.status,
            StatusCode::SEE_OTHER,
            "{evil:?}: {}",
            reply.text()
        );
        assert_eq!(reply.location(), Some("/runs"), "{evil:?}");
    }
    // The form does not carry a bad `next` either.
    let form = get(&fx.app, "/login?next=%2F%5Cevil.example%2F", None).await;
    assert!(
        form.text().contains("name=\"next\" value=\"/runs\""),
        "{}",
        form.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_active_checked_images_with_their_imported_bytes_are_served() {
    let fx = fixture().await;
    let vic = login(&fx.app, "vic").await;
    let good = get(
        &fx.app,
        &format!("/images/{}/file", fx.images[0]),
        Some(&vic),
    )
    .await;
    assert_eq!(good.status, StatusCode::OK);
    assert_eq!(good.headers[header::CONTENT_TYPE], "image/png");
    assert_eq!(good.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(
        get(
            &fx.app,
            &format!("/images/{}/thumb", fx.images[0]),
            Some(&vic)
        )
        .await
        .status,
        StatusCode::OK
    );

    // The file behind image 1 is replaced by a link to /etc/passwd: not served.
    let path = fx.dir.path().join("img/1.png");
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
    for kind in ["file", "thumb"] {
        let reply = get(
            &fx.app,
            &format!("/images/{}/{kind}", fx.images[1]),
            Some(&vic),
        )
        .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{kind}");
        assert!(!reply.text().contains("root:"), "{kind}");
    }

    // A quarantined image is not served, even though its file is intact.
    fx.catalog
        .record_checks(&[atelier_catalog::CheckOutcome {
            id: fx.images[2].clone(),
            result: Err("cannot decode".into()),
        }])
        .await
        .unwrap();
    let quarantined = get(
        &fx.app,
        &format!("/images/{}/file", fx.images[2]),
        Some(&vic),
    )
    .await;
    assert_eq!(quarantined.status, StatusCode::NOT_FOUND);
    assert!(
        quarantined.text().contains("quarantined"),
        "{}",
        quarantined.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_carry_the_security_headers_and_cookies_are_secure_over_https() {
    let fx = fixture().await;
    let vic = login(&fx.app, "vic").await;
    for path in [
        "/login".to_string(),
        "/runs".into(),
        format!("/runs/{}", fx.run),
    ] {
        let reply = get(&fx.app, &path, Some(&vic)).await;
        let csp = reply.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(reply.headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(reply.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        // The CSP forbids inline style and script; no page uses them.
        let text = reply.text();
        assert!(
            !text.contains("style=\"") && !text.contains("<script>"),
            "{path}"
        );
    }
    let plain = api_login(&fx.app, "vic", PASSWORD, [10, 3, 3, 3], None).await;
    assert!(
        !plain.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Secure")
    );

    let paths = RunPaths {
        checkpoint_base: fx.dir.path().join("checkpoints"),
        model_base: fx.dir.path().join("models"),
        feature_cache: fx.dir.path().join("features"),
        store: None,
        mirror_checkpoints: false,
    };
    let mut secure = AppConfig::new(paths.clone(), fx.dir.path().join("thumbs"));
    secure.secure_cookies = true;
    let app = router(fx.catalog.clone(), secure);
    let reply = api_login(&app, "vic", PASSWORD, [10, 3, 3, 3], None).await;
    for cookie in reply.headers.get_all(header::SET_COOKIE) {
        assert!(cookie.to_str().unwrap().ends_with("; Secure"), "{cookie:?}");
    }
    // Behind a trusted proxy: Secure when the proxy says https, and the proxy's client address.
    let mut proxied = AppConfig::new(paths, fx.dir.path().join("thumbs"));
    proxied.behind_proxy = true;
    let app = router(fx.catalog.clone(), proxied);
    // A login through the proxy (from 127.0.0.1) with the proxy's headers.
    let proxied_login =
        |user: String, password: &'static str, forwarded: Vec<(&'static str, &'static str)>| {
            let app = app.clone();
            async move {
                let mut headers = vec![("content-type", "application/json")];
                headers.extend(forwarded);
                let body = json!({"user": user, "password": password}).to_string();
                request(
                    &app,
                    Method::POST,
                    "/api/login",
                    [127, 0, 0, 1],
                    &headers,
                    Some(Body::from(body)),
                )
                .await
            }
        };
    let reply = proxied_login("vic".into(), PASSWORD, vec![("x-forwarded-proto", "https")]).await;
    assert!(
        reply.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .ends_with("; Secure")
    );
    for i in 0..20u8 {
        let forwarded = vec![("x-forwarded-for", "198.51.100.9, 203.0.113.9")];
        proxied_login(format!("n{i}"), "wrong-password", forwarded).await;
    }
    let limited = proxied_login(
        "vic".into(),
        PASSWORD,
        vec![("x-forwarded-for", "203.0.113.9")],
    )
    .await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "counted per forwarded address"
    );
    let other = proxied_login(
        "vic".into(),
        PASSWORD,
        vec![("x-forwarded-for", "203.0.113.10")],
    )
    .await;
    assert_eq!(other.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retag_reason_has_a_size_limit() {
    let fx = fixture().await;
    let rita = login(&fx.app, "rita").await;
    let image = fx.catalog.image(&fx.images[0]).await.unwrap().unwrap();
    let version = image.labels[0].version;
    let edit = |reason: String| {
        json!({"edits": [{"image": fx.images[0], "facet": "silhouette", "label": "mermaid",
            "expected_version": version, "reason": reason}]})
    };
    let long = send(
        &fx.app,
        Method::POST,
        "/api/labels",
        Some(&rita),
        true,
        Some(edit("x".repeat(501))),
    )
    .await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    assert!(long.text().contains("keep it to 500"), "{}", long.text());
    let fine = send(
        &fx.app,
        Method::POST,
        "/api/labels",
        Some(&rita),
        true,
        Some(edit("y".repeat(500))),
    )
    .await;
    assert_eq!(fine.status, StatusCode::OK, "{}", fine.text());
}

async fn orphan_run(fx: &common::Fixture, lease: Option<RunLease>) -> i64 {
    fx.catalog
        .create_run(&NewRun {
            kind: "facets".into(),
            config: json!({"train": {"backbone": "tiny", "facets": ["silhouette"]}}),
            parent_run: None,
            lease,
        })
        .await
        .unwrap()
}

fn status_of(page: &Value) -> &str {
    page["run"]["status"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_start_runs_whose_process_is_gone_are_interrupted_and_can_be_failed() {
    let fx = fixture().await;
    let expired = orphan_run(
        &fx,
        Some(RunLease {
            owner: "gone-host:77:dead".into(),
            expires_at: now_millis() - 1,
        }),
    )
    .await;
    let held = orphan_run(
        &fx,
        Some(RunLease {
            owner: "other-host:78:live".into(),
            expires_at: now_millis() + 60_000,
        }),
    )
    .await;
    // An expired session is purged at start too.
    fx.catalog
        .create_session("expired-hash", "vic", "csrf", now_millis() - 1)
        .await
        .unwrap();
    let paths = RunPaths {
        checkpoint_base: fx.dir.path().join("checkpoints"),
        model_base: fx.dir.path().join("models"),
        feature_cache: fx.dir.path().join("features"),
        store: None,
        mirror_checkpoints: false,
    };
    let app = start(
        fx.catalog.clone(),
        AppConfig::new(paths, fx.dir.path().join("thumbs")),
    )
    .await
    .unwrap();
    assert!(
        fx.catalog
            .session("expired-hash", 0)
            .await
            .unwrap()
            .is_none()
    );

    let vic = login(&app, "vic").await;
    let rita = login(&app, "rita").await;
    let page = get(&app, &format!("/api/runs/{expired}"), Some(&vic))
        .await
        .json();
    assert_eq!(status_of(&page), "interrupted");
    let held_page = get(&app, &format!("/api/runs/{held}"), Some(&vic))
        .await
        .json();
    assert_eq!(
        status_of(&held_page),
        "running",
        "a living holder keeps its run"
    );
    // Reviewers see Resume and Mark failed; viewers may not use them.
    let html = get(&app, &format!("/runs/{expired}"), Some(&rita))
        .await
        .text();
    assert!(
        html.contains(&format!("action=\"/runs/{expired}/resume\"")),
        "{html}"
    );
    assert!(html.contains(&format!("action=\"/runs/{expired}/fail\"")));
    assert!(
        !html.contains("data-reload"),
        "an interrupted run does not reload forever"
    );
    let viewer = send(
        &app,
        Method::POST,
        &format!("/api/runs/{expired}/fail"),
        Some(&vic),
        true,
        None,
    )
    .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);
    // The living run cannot be marked failed or resumed from here.
    let busy = send(
        &app,
        Method::POST,
        &format!("/api/runs/{held}/resume"),
        Some(&rita),
        true,
        None,
    )
    .await;
    assert_eq!(busy.status, StatusCode::CONFLICT);
    let failed = send(
        &app,
        Method::POST,
        &format!("/api/runs/{expired}/fail"),
        Some(&rita),
        true,
        None,
    )
    .await;
    assert_eq!(failed.status, StatusCode::OK, "{}", failed.text());
    let record = fx.catalog.run(expired).await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    assert!(record.error.unwrap().starts_with("marked failed by rita"));
}
