//! Beyond one process, with real processes: workers take queued jobs from the catalogue, a
//! worker killed with SIGKILL mid-run is replaced by another that resumes from the checkpoint
//! kept in the store and ends with the numbers of an uninterrupted run; on PostgreSQL with an
//! S3 store and photos imported from S3 (moto), two `atelier serve` instances and two
//! workers: a retrain posted to one
//! instance is taken by exactly one worker, a retag on one instance is seen on the other at
//! once, and concurrent retags spread over both lose nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Workspace, assert_same_results, json_lines, json_of, tiny_training};
use serde_json::{Value, json};

/// Epochs of the reference training: enough for a kill to land between two of them.
const EPOCHS: u64 = 12;

/// The reference training: the small CNN, [`EPOCHS`] epochs, fixed seed.
fn tiny_run() -> Vec<&'static str> {
    tiny_training("12", &["--lr", "0.01", "--seed", "11"])
}

/// A child process that is killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The checkpoint state of run `run` under a worker's checkpoint folder, if it saved one.
fn checkpoint_state(folder: &Path, run: i64) -> Option<Value> {
    let text = std::fs::read_dir(folder)
        .ok()?
        .filter_map(|entry| entry.ok())
        .find_map(|entry| {
            std::fs::read_to_string(entry.path().join(format!("run-{run}/state.json"))).ok()
        })?;
    serde_json::from_str(&text).ok()
}

fn job(command: &dyn Fn(&[&str]) -> Command, id: i64) -> Value {
    json_of(
        &command(&["jobs", "show", &id.to_string(), "--json"])
            .output()
            .unwrap(),
    )
}

/// Waits (up to `limit`) for `ready` to give a value.
fn wait_for<T>(limit: Duration, what: &str, ready: impl FnMut() -> Option<T>) -> T {
    wait_or(limit, ready).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

fn wait_or<T>(limit: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = ready() {
            return Some(value);
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the worker that holds job `id` once the store's copy of its run's checkpoints names
/// at least one complete epoch; returns which of `workers` it was.
fn kill_mid_run(
    command: &dyn Fn(&[&str]) -> Command,
    workers: &mut [Running],
    id: i64,
    mirrored_epochs: &dyn Fn() -> Option<u64>,
) -> usize {
    let holder = wait_for(Duration::from_secs(300), "a worker to take the job", || {
        let record = job(command, id);
        let worker = record["worker"].as_str()?.to_string();
        workers
            .iter()
            .position(|w| worker.contains(&format!(":{}:", w.0.id())))
    });
    let epochs = wait_or(Duration::from_secs(300), || {
        assert!(
            workers[holder].0.try_wait().unwrap().is_none(),
            "the worker ended before it could be killed"
        );
        mirrored_epochs().filter(|e| *e >= 1)
    })
    .unwrap_or_else(|| panic!("no checkpoint reached the store: {}", job(command, id)));
    workers[holder].0.kill().unwrap(); // SIGKILL on Unix
    workers[holder].0.wait().unwrap();
    assert!(epochs < EPOCHS, "killed mid-run, after {epochs} epochs");
    holder
}

#[test]
fn sqlite_a_killed_worker_is_replaced_and_the_run_ends_as_if_uninterrupted() {
    let workspace = Workspace::synthetic(160, &[], &[]);
    let command = |args: &[&str]| workspace.command(args);
    let uninterrupted = json_of(&workspace.run(&tiny_run()));
    assert_eq!(uninterrupted["run"], 1);

    let mut queue = tiny_run();
    queue.push("--queue");
    let queued = json_of(&workspace.run(&queue));
    assert_eq!(
        (queued["run"].as_i64(), queued["status"].as_str()),
        (Some(2), Some("queued"))
    );
    let id = queued["job"].as_i64().unwrap();

    let worker = |folder: &str, extra: &[&str]| {
        let mut args = vec!["worker", "--checkpoint-dir", folder, "--poll", "0.1"];
        args.extend(extra);
        let child = workspace
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Running(child)
    };
    let mut first = [worker("w1", &[])];
    let store = workspace.root.join("models/_mirrors/checkpoints");
    let mirrored = || checkpoint_state(&store, 2).and_then(|s| s["completed_epochs"].as_u64());
    kill_mid_run(&command, &mut first, id, &mirrored);
    let killed = job(&command, id);
    assert_eq!(killed["status"], "running", "{killed}");
    assert_eq!(killed["attempts"], 1);

    // A new worker (its own, empty checkpoint folder) takes the job over at once: the dead
    // one ran on this machine, so its lease need not run out first.
    let mut second = worker("w2", &["--until-idle", "--json"]);
    let mut out = String::new();
    second
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(second.0.wait().unwrap().success());
    let done: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(done["jobs"][0]["id"], id, "{done}");
    let finished = job(&command, id);
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(finished["attempts"], 2);
    assert!(
        checkpoint_state(&workspace.root.join("w2"), 2).is_some(),
        "the second worker went on from the store's checkpoint"
    );
    assert_same_results(&command, 1, 2);
}

#[test]
fn imports_and_checks_queued_from_the_command_line_are_done_by_a_worker() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let command = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_atelier"));
        command
            .current_dir(dir.path())
            .args(["--db", &db, "--store", "models"])
            .args(args)
            .env_remove("ATELIER_DB")
            .env_remove("ATELIER_STORE");
        command
    };
    let run = |args: &[&str]| json_of(&command(args).output().unwrap());
    run(&[
        "synth", "--out", "photos", "--count", "40", "--size", "64", "--json",
    ]);
    let import = run(&["import", "photos/manifest.csv", "--queue", "--json"]);
    let check = run(&["check", "--queue", "--json"]);
    let missing = run(&["import", "gone/manifest.csv", "--queue", "--json"]);
    let queued = job(&command, import["job"].as_i64().unwrap());
    let source = queued["params"]["source"].as_str().unwrap();
    assert!(
        Path::new(source).is_absolute() && source.ends_with("photos/manifest.csv"),
        "a worker elsewhere reads the path as queued: {source}"
    );
    assert_eq!(
        run(&["summary", "--json"])["images"],
        0,
        "nothing imported yet"
    );

    let done = run(&[
        "worker",
        "--kinds",
        "import,check",
        "--until-idle",
        "--json",
    ]);
    let jobs = done["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3, "{done}");
    let imported = job(&command, import["job"].as_i64().unwrap());
    assert_eq!(imported["status"], "succeeded", "{imported}");
    assert_eq!(imported["result"]["added"], 40, "{imported}");
    let checked = job(&command, check["job"].as_i64().unwrap());
    assert_eq!(checked["status"], "succeeded", "{checked}");
    assert_eq!(checked["result"]["checked"], 40, "{checked}");
    let failed = job(&command, missing["job"].as_i64().unwrap());
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("gone"),
        "{failed}"
    );
    assert_eq!(run(&["summary", "--json"])["images"], 40);
}

// ---- PostgreSQL, S3, two app instances, two workers ----

fn s3_endpoint() -> Option<String> {
    match std::env::var("ATELIER_TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ if std::env::var_os("CI").is_some() => {
            panic!("ATELIER_TEST_S3_ENDPOINT must be set under CI (scripts/test sets it)")
        }
        _ => None,
    }
}

fn postgres_admin() -> Option<String> {
    match std::env::var("ATELIER_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("ATELIER_TEST_POSTGRES_URL must be set under CI (scripts/test sets it)")
        }
        _ => None,
    }
}

/// One HTTP/1.1 exchange: (status, body).
fn http(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// A logged-in reviewer on one app instance.
struct Session {
    address: String,
    cookie: String,
    csrf: String,
}

impl Session {
    fn login(address: &str) -> Session {
        let body = r#"{"user":"rita","password":"reviewer-pass"}"#;
        let mut stream = TcpStream::connect(address).unwrap();
        let request = format!(
            "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let cookie = response
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: atelier_session="))
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_string();
        let json: Value = serde_json::from_str(response.split_once("\r\n\r\n").unwrap().1).unwrap();
        Session {
            address: address.to_string(),
            cookie: format!("atelier_session={cookie}"),
            csrf: json["csrf_token"].as_str().unwrap().to_string(),
        }
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = http(&self.address, "GET", path, &[("Cookie", &self.cookie)], "");
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let headers = [
            ("Cookie", self.cookie.as_str()),
            ("X-CSRF-Token", self.csrf.as_str()),
            ("Content-Type", "application/json"),
        ];
        let (status, text) = http(&self.address, "POST", path, &headers, &body.to_string());
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// Starts `atelier serve` on a free port; returns it with its address.
fn serve(command: &dyn Fn(&[&str]) -> Command, thumbs: &Path) -> (Running, String) {
    let mut child = command(&[
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--no-worker",
        "--thumbnail-cache",
        thumbs.to_str().unwrap(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let address = common::served_address(&mut child);
    (Running(child), address)
}

/// How many epochs the store's copy of run `run`'s checkpoints holds, from a listing of the
/// bucket: its newest epoch folder, once `state.json` (sent after the folders it names) is
/// there.
fn mirrored_epochs(endpoint: &str, bucket: &str, run: i64) -> Option<u64> {
    let host = endpoint.trim_start_matches("http://");
    let path = format!("/{bucket}?list-type=2&prefix=store/_mirrors/");
    let (status, listing) = http(host, "GET", &path, &[], "");
    if status != 200 {
        return None;
    }
    let run_folder = format!("/run-{run}/");
    let keys: Vec<&str> = listing
        .split("<Key>")
        .filter_map(|k| k.split("</Key>").next())
        .filter(|k| k.contains(&run_folder))
        .collect();
    keys.iter().find(|k| k.ends_with("/state.json"))?;
    keys.iter()
        .filter_map(|k| {
            k.split(&run_folder)
                .nth(1)?
                .strip_prefix("epoch-")?
                .get(..4)
        })
        .filter_map(|n| n.parse().ok())
        .max()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_s3_two_app_instances_and_two_workers() {
    let (Some(admin), Some(endpoint)) = (postgres_admin(), s3_endpoint()) else {
        eprintln!("skipped: needs ATELIER_TEST_POSTGRES_URL and ATELIER_TEST_S3_ENDPOINT");
        return;
    };
    let host = endpoint.trim_start_matches("http://").to_string();
    let bucket = format!(
        "atelier-scale-out-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let (status, body) = http(&host, "PUT", &format!("/{bucket}"), &[], "");
    assert_eq!(status, 200, "{body}");
    let db = common::fresh_postgres_database(&admin).await;
    tokio::task::spawn_blocking(move || scale_out(db, endpoint, bucket))
        .await
        .unwrap();
}

fn scale_out(db: String, endpoint: String, bucket: String) {
    let s3 = endpoint.clone();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("s3://{bucket}/store");
    let root = dir.path().to_path_buf();
    let folder = root.clone();
    let command = move |args: &[&str]| -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_atelier"));
        command
            .current_dir(&folder)
            .args(["--db", &db, "--store", &store])
            .args(args)
            .env("ATELIER_FEATURE_CACHE", folder.join("feature-cache"))
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env_remove("ATELIER_DB")
            .env_remove("ATELIER_STORE");
        command
    };
    photos_from_s3(&command, &root, &s3, &bucket);
    let mut add = command(&["users", "add", "rita", "--role", "reviewer", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(b"reviewer-pass\n")
        .unwrap();
    assert!(add.wait().unwrap().success());
    let reference = json_of(&command(&tiny_run()).output().unwrap());
    assert_eq!(reference["run"], 1);

    let (_app_a, a) = serve(&command, &root.join("thumbs-a"));
    let (_app_b, b) = serve(&command, &root.join("thumbs-b"));
    let worker = |folder: &str| {
        Running(
            command(&["worker", "--checkpoint-dir", folder, "--poll", "0.2"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut workers = [worker("w1"), worker("w2")];
    let (rita_a, rita_b) = (Session::login(&a), Session::login(&b));

    let mirrored = |run: i64| mirrored_epochs(&s3, &bucket, run);
    retrain_survives_a_killed_worker(&command, &rita_a, &mut workers, &mirrored);
    retags_are_shared_and_never_lost(&command, &rita_a, &rita_b);
    drop(workers);
}

/// Renders 160 photos, uploads them with their manifest to the bucket, and imports and checks
/// them from there: the catalogue names `s3://` objects, read through the image cache.
fn photos_from_s3(command: &dyn Fn(&[&str]) -> Command, root: &Path, endpoint: &str, bucket: &str) {
    let synth = root.join("synth");
    let synth_args = [
        "synth",
        "--out",
        synth.to_str().unwrap(),
        "--count",
        "160",
        "--size",
        "64",
    ];
    json_of(
        &command(&[&synth_args[..], &["--json"]].concat())
            .output()
            .unwrap(),
    );
    let host = endpoint.trim_start_matches("http://");
    let mut pending = vec![synth.clone()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let key = path
                .strip_prefix(&synth)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let bytes = std::fs::read(&path).unwrap();
            let mut stream = TcpStream::connect(host).unwrap();
            let head = format!(
                "PUT /{bucket}/photos/{key} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                bytes.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&bytes).unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            assert!(response.starts_with("HTTP/1.1 200"), "{key}: {response}");
        }
    }
    std::fs::remove_dir_all(&synth).unwrap();
    let manifest = format!("s3://{bucket}/photos/manifest.csv");
    let imported = json_of(&command(&["import", &manifest, "--json"]).output().unwrap());
    assert_eq!(imported["added"], 160, "{imported}");
    json_of(&command(&["check", "--json"]).output().unwrap());
    let images = json_of(
        &command(&["images", "--per-page", "1", "--json"])
            .output()
            .unwrap(),
    );
    let uri = images["images"][0]["uri"].as_str().unwrap();
    assert!(uri.starts_with(&format!("s3://{bucket}/photos/")), "{uri}");
}

fn retrain_survives_a_killed_worker(
    command: &dyn Fn(&[&str]) -> Command,
    rita_a: &Session,
    workers: &mut [Running; 2],
    mirrored: &dyn Fn(i64) -> Option<u64>,
) {
    let (status, started) = rita_a.post("/api/runs/1/retrain", &json!({}));
    assert_eq!(status, 200, "{started}");
    let (run, id) = (
        started["run"].as_i64().unwrap(),
        started["job"].as_i64().unwrap(),
    );
    let killed = kill_mid_run(command, workers, id, &|| mirrored(run));
    let survivor = workers[1 - killed].0.id();
    let finished = wait_for(Duration::from_secs(600), "the job to finish", || {
        let record = job(command, id);
        (record["status"] != "running" && record["status"] != "queued").then_some(record)
    });
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(
        finished["attempts"], 2,
        "taken once, then once more after the kill"
    );
    assert!(
        finished["worker"]
            .as_str()
            .unwrap()
            .contains(&format!(":{survivor}:")),
        "{finished}"
    );
    let all = json_of(&command(&["jobs", "list", "--json"]).output().unwrap());
    assert_eq!(
        all["jobs"].as_array().unwrap().len(),
        1,
        "one job, taken by one worker at a time"
    );
    assert_same_results(command, 1, run);
    a_machine_without_the_model_fetches_it(command, run);
}

/// A machine that did not train run `run` (here: its model folder deleted) loads the model
/// from the store's copy the worker sent, and tags with it as the worker's folder would.
fn a_machine_without_the_model_fetches_it(command: &dyn Fn(&[&str]) -> Command, run: i64) {
    let images = json_of(
        &command(&["images", "--per-page", "2", "--json"])
            .output()
            .unwrap(),
    );
    let photos: Vec<&str> = images["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["uri"].as_str().unwrap())
        .collect();
    let tag = |photo: &str| {
        json_lines(
            &command(&["tag", photo, "--model", &run.to_string(), "--json"])
                .output()
                .unwrap(),
        )
    };
    let here = tag(photos[0]);
    let record = json_of(&command(&["runs", "--json"]).output().unwrap());
    let model = record
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == run)
        .and_then(|r| r["model_ref"].as_str())
        .unwrap_or_else(|| panic!("{record}"))
        .to_string();
    std::fs::remove_dir_all(&model).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let elsewhere = command(&["tag", photos[0], "--model", &run.to_string(), "--json"])
        .env("ATELIER_MODEL_CACHE", cache.path())
        .output()
        .unwrap();
    assert_eq!(
        json_lines(&elsewhere),
        here,
        "the same model, fetched from the store"
    );
}

fn retags_are_shared_and_never_lost(
    command: &dyn Fn(&[&str]) -> Command,
    rita_a: &Session,
    rita_b: &Session,
) {
    let images = json_of(
        &command(&["images", "--per-page", "60", "--json"])
            .output()
            .unwrap(),
    );
    let ids: Vec<String> = images["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.len() >= 51, "{images}");
    // A retag on A is what B shows at once.
    let first = &ids[0];
    let (label, version) = silhouette(rita_a, first);
    let other = other_label(rita_a, first, &label);
    let edit = json!({"edits": [{"image": first, "facet": "silhouette", "label": other, "expected_version": version}]});
    let (status, answer) = rita_a.post("/api/labels", &edit);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(silhouette(rita_b, first).0, other);

    // 50 retags at once, alternating between the instances: every one is recorded.
    let before = label_events(command);
    let edits: Vec<(String, String, i64)> = ids[1..51]
        .iter()
        .map(|id| {
            let (label, version) = silhouette(rita_a, id);
            (id.clone(), other_label(rita_a, id, &label), version)
        })
        .collect();
    std::thread::scope(|scope| {
        for (i, (image, label, version)) in edits.iter().enumerate() {
            let session = if i % 2 == 0 { rita_a } else { rita_b };
            scope.spawn(move || {
                let edit = json!({"edits": [{"image": image, "facet": "silhouette", "label": label, "expected_version": version}]});
                let (status, answer) = session.post("/api/labels", &edit);
                assert_eq!(status, 200, "{answer}");
            });
        }
    });
    assert_eq!(label_events(command), before + 50);
    for (image, label, _) in &edits[..5] {
        assert_eq!(&silhouette(rita_b, image).0, label);
    }
}

fn silhouette(session: &Session, image: &str) -> (String, i64) {
    let page = session.get(&format!("/api/images/{image}"));
    let facet = page["facets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["facet"] == "silhouette")
        .unwrap_or_else(|| panic!("{page}"))
        .clone();
    (
        facet["label"].as_str().unwrap_or("").to_string(),
        facet["version"].as_i64().unwrap(),
    )
}

fn other_label(session: &Session, image: &str, current: &str) -> String {
    let page = session.get(&format!("/api/images/{image}"));
    let facet = page["facets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["facet"] == "silhouette")
        .unwrap()
        .clone();
    facet["labels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|l| *l != current)
        .unwrap()
        .to_string()
}

fn label_events(command: &dyn Fn(&[&str]) -> Command) -> u64 {
    json_of(&command(&["summary", "--json"]).output().unwrap())["label_events"]
        .as_u64()
        .unwrap()
}
