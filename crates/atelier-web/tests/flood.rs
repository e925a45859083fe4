//! A login flood against a real server on a loopback socket: 128 logins at once for names
//! that do not exist, each from its own address (the server trusts X-Forwarded-For here, so
//! the per-address limit does not stop them first). Each password check needs argon2's 19 MiB;
//! unbounded checks on the runtime's blocking threads took the server from 78 MB to 3.7 GB.
//! Checked on as many threads as cores, each reusing its memory, the peak stays flat. This
//! measures memory, not time: it asserts the peak resident size.

use std::time::Duration;

use atelier_app::runner::RunPaths;
use atelier_catalog::{Catalog, Role};
use atelier_web::{AppConfig, hash_password, serve_on};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REQUESTS: usize = 128;

/// `VmHWM` (peak resident size) or `VmRSS` of this process, in MiB.
fn memory_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// One login over HTTP/1.1; the status code, or 0 when the connection failed.
async fn login(port: u16, i: usize) -> u16 {
    let body = format!(r#"{{"user":"nobody-{i}","password":"wrong-password"}}"#);
    let request = format!(
        "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nX-Forwarded-For: 10.{}.{}.1\r\nConnection: close\r\n\r\n{body}",
        body.len(),
        i / 256,
        i % 256
    );
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return 0;
    };
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply).await;
    String::from_utf8_lossy(&reply)
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_keeps_memory_flat() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("no /proc/self/status here: the flood's memory cannot be read; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let catalog = Catalog::open(&url).await.unwrap();
    catalog
        .add_user("ada", Role::Admin, &hash_password("password-123").unwrap())
        .await
        .unwrap();
    let mut config = AppConfig::new(
        RunPaths {
            checkpoint_base: dir.path().join("checkpoints"),
            model_base: dir.path().join("models"),
            feature_cache: dir.path().join("features"),
            store: None,
            mirror_checkpoints: false,
        },
        dir.path().join("thumbs"),
    );
    config.behind_proxy = true;
    config.login.check_wait = Duration::from_secs(60);
    let checks = config.login.concurrent_checks;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(serve_on(listener, catalog, config));
    // One login first, so that the baseline includes a warmed-up server.
    login(port, REQUESTS).await;
    let before = memory_mib("VmRSS:");

    let flood: Vec<_> = (0..REQUESTS)
        .map(|i| tokio::spawn(login(port, i)))
        .collect();
    let mut statuses = Vec::new();
    for request in flood {
        statuses.push(
            tokio::time::timeout(Duration::from_secs(300), request)
                .await
                .expect("every login is answered")
                .unwrap(),
        );
    }
    let peak = memory_mib("VmHWM:");
    eprintln!(
        "login flood: {REQUESTS} concurrent logins, {checks} password checks at a time: \
         resident {before:.0} MiB before, peak {peak:.0} MiB (+{:.0} MiB); statuses {:?}",
        peak - before,
        count(&statuses)
    );
    assert!(
        statuses.iter().all(|s| *s == 403),
        "every wrong login is answered 403: {:?}",
        count(&statuses)
    );
    // Each running check holds 19 MiB; allow every one of them twice over, plus slack for the
    // allocator and the runtime: far below the 1.3 GB that 64 unbounded checks took.
    let bound = 64.0 + 2.0 * 19.0 * checks as f64;
    assert!(
        peak - before < bound,
        "the flood grew the server by {:.0} MiB (bound {bound:.0} MiB)",
        peak - before
    );
}

fn count(statuses: &[u16]) -> std::collections::BTreeMap<u16, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for status in statuses {
        *counts.entry(*status).or_default() += 1;
    }
    counts
}
