//! The model store from the command line, on a local folder and on a moto S3 server
//! (`ATELIER_TEST_S3_ENDPOINT`, started by `scripts/test`): train with `--publish`, promote,
//! tag with `--model NAME:TAG`, list/show/pull/push/rm, and the errors a user sees.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{json_of, tiny_training};

const S3_ENV: &str = "ATELIER_TEST_S3_ENDPOINT";

struct Workspace {
    _dir: tempfile::TempDir,
    root: PathBuf,
    db: String,
    store: String,
    /// Extra environment (the S3 settings).
    env: Vec<(String, String)>,
}

impl Workspace {
    /// A catalogue of `count` synthetic 64-pixel images, imported and checked, with `store`.
    fn new(count: usize, store: impl FnOnce(&Path) -> (String, Vec<(String, String)>)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let (store, env) = store(&root);
        let workspace = Workspace {
            db: format!("sqlite://{}", root.join("catalog.db").display()),
            _dir: dir,
            root,
            store,
            env,
        };
        let synth = workspace.root.join("synth");
        let count = count.to_string();
        json_of(&workspace.run(&[
            "synth",
            "--out",
            synth.to_str().unwrap(),
            "--count",
            &count,
            "--size",
            "64",
            "--json",
        ]));
        let manifest = synth.join("manifest.csv");
        json_of(&workspace.run(&["import", manifest.to_str().unwrap(), "--json"]));
        json_of(&workspace.run(&["check", "--json"]));
        workspace
    }

    fn local() -> Self {
        Self::new(48, |root| {
            (
                format!("file://{}", root.join("store").display()),
                Vec::new(),
            )
        })
    }

    fn s3(endpoint: &str) -> Self {
        let bucket = format!("atelier-cli-{}", std::process::id());
        create_bucket(endpoint, &bucket);
        let env = [
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec();
        Self::new(48, |_| (format!("s3://{bucket}/models"), env))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_atelier"));
        command
            .current_dir(&self.root)
            .arg("--db")
            .arg(&self.db)
            .arg("--store")
            .arg(&self.store)
            .args(args)
            .env("ATELIER_FEATURE_CACHE", self.root.join("feature-cache"))
            .env("ATELIER_MODEL_CACHE", self.root.join("model-cache"))
            .env_remove("ATELIER_DB")
            .env_remove("ATELIER_STORE");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run atelier")
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn s3_endpoint() -> Option<String> {
    match std::env::var(S3_ENV) {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ => {
            if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
                panic!(
                    "{S3_ENV} is not set, but CI is: the S3 half of the store tests must run in CI"
                );
            }
            eprintln!("skipped: {S3_ENV} not set (scripts/test starts a moto S3 server)");
            None
        }
    }
}

/// Creates a bucket with one unsigned request (moto does not check credentials by default).
fn create_bucket(endpoint: &str, bucket: &str) {
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

/// Label counts per facet from the synthetic manifest, independently of atelier's lineage.
fn manifest_label_counts(root: &Path) -> BTreeMap<String, BTreeMap<String, u64>> {
    let text = std::fs::read_to_string(root.join("synth/manifest.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let facets = ["silhouette", "neckline", "sleeve", "length", "occasion"];
    let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        for facet in facets {
            let column = header.iter().position(|h| *h == facet).unwrap();
            if !cells[column].is_empty() {
                *counts
                    .entry(facet.to_string())
                    .or_default()
                    .entry(cells[column].to_string())
                    .or_default() += 1;
            }
        }
    }
    counts
}

fn train_publish_promote_and_tag(workspace: &Workspace) {
    let trained = json_of(&workspace.run(&tiny_training("1", &["--publish", "dresses"])));
    assert_eq!(trained["published"]["model"], "dresses@1", "{trained}");
    assert_eq!(
        trained["published"]["files"], 5,
        "model, weights, metrics, lineage, checksums"
    );
    // Relative to the workspace for a remote store (`models/run-N`).
    let run_folder = workspace.root.join(trained["model"].as_str().unwrap());

    let listed = json_of(&workspace.run(&["models", "list", "--json"]));
    let versions = listed[0]["versions"].as_array().unwrap();
    assert_eq!(
        (listed[0]["name"].as_str(), versions.len()),
        (Some("dresses"), 1)
    );
    assert_eq!(versions[0]["metadata"]["backbone"], "tiny");
    assert_eq!(versions[0]["metadata"]["run"], trained["run"]);

    let promoted =
        json_of(&workspace.run(&["models", "promote", "dresses@1", "production", "--json"]));
    assert_eq!(promoted["model"], "dresses@1");

    // Tagging with the store reference gives what the run's own folder gives.
    let image = workspace.root.join("synth/images/000003.jpg");
    let image = image.to_str().unwrap();
    let from_store =
        json_of(&workspace.run(&["tag", "--model", "dresses:production", image, "--json"]));
    let from_folder = json_of(&workspace.run(&[
        "tag",
        "--model",
        run_folder.to_str().unwrap(),
        image,
        "--json",
    ]));
    assert_eq!(from_store["ok"], true, "{from_store}");
    assert_eq!(from_store["facets"], from_folder["facets"]);

    // The pull is cached: the next one downloads nothing.
    let pulled = json_of(&workspace.run(&["models", "pull", "dresses:production", "--json"]));
    assert_eq!(pulled["model"], "dresses@1");
    assert_eq!(
        pulled["downloaded"], false,
        "tag already pulled it: {pulled}"
    );
    let cached = PathBuf::from(pulled["dir"].as_str().unwrap());
    assert!(
        cached.starts_with(workspace.root.join("model-cache")),
        "{cached:?}"
    );
    assert_eq!(
        std::fs::read(cached.join("weights.bpk")).unwrap(),
        std::fs::read(run_folder.join("weights.bpk")).unwrap()
    );

    // Lineage: counts agree with the manifest the images came from.
    let shown = json_of(&workspace.run(&["models", "show", "dresses:production", "--json"]));
    assert_eq!(shown["tags"], serde_json::json!(["production"]));
    let lineage = &shown["lineage"];
    let hash = lineage["catalog_label_snapshot_sha256"].as_str().unwrap();
    assert_eq!(hash.len(), 64, "{lineage}");
    let images = &lineage["images"];
    let total = images["train"].as_u64().unwrap_or(0) + images["test"].as_u64().unwrap_or(0);
    assert_eq!(total, 48, "{images}");
    for (facet, labels) in manifest_label_counts(&workspace.root) {
        for (label, expected) in labels {
            let per_split = &lineage["labels"][&facet][&label];
            let counted =
                per_split["train"].as_u64().unwrap_or(0) + per_split["test"].as_u64().unwrap_or(0);
            assert_eq!(counted, expected, "{facet}={label}: {per_split}");
        }
    }

    // Pushing the same folder makes version 2; the tag still names version 1.
    let pushed = json_of(&workspace.run(&[
        "models",
        "push",
        run_folder.to_str().unwrap(),
        "--name",
        "dresses",
        "--json",
    ]));
    assert_eq!(pushed["model"], "dresses@2");
    let latest = json_of(&workspace.run(&["models", "pull", "dresses", "--json"]));
    assert_eq!(latest["model"], "dresses@2");

    // Errors a user can act on, with exit code 2.
    let tagged = workspace.run(&["models", "rm", "dresses@1"]);
    assert_eq!(tagged.status.code(), Some(2));
    assert!(
        stderr(&tagged).contains("tagged production"),
        "{}",
        stderr(&tagged)
    );
    let missing = workspace.run(&["tag", "--model", "dresses@9", image]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("no version dresses@9"),
        "{}",
        stderr(&missing)
    );
    assert!(
        stderr(&missing).contains("published versions: 1, 2"),
        "{}",
        stderr(&missing)
    );

    let removed = json_of(&workspace.run(&["models", "rm", "dresses@2", "--json"]));
    assert_eq!(removed["removed"], "dresses@2");
    let listed = json_of(&workspace.run(&["models", "list", "dresses", "--json"]));
    assert_eq!(listed[0]["versions"].as_array().unwrap().len(), 1);
}

#[test]
fn train_publish_promote_and_tag_on_a_local_store() {
    train_publish_promote_and_tag(&Workspace::local());
}

#[test]
fn train_publish_promote_and_tag_on_s3() {
    if let Some(endpoint) = s3_endpoint() {
        train_publish_promote_and_tag(&Workspace::s3(&endpoint));
    }
}

#[test]
fn an_unreachable_store_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .current_dir(dir.path())
        .args(["--store", "s3://atelier/models", "models", "list"])
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true")
        .env("ATELIER_MODEL_CACHE", dir.path().join("cache"))
        .env_remove("ATELIER_STORE")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.trim().lines().count(), 1, "one line: {message}");
    assert!(
        message.contains("s3://atelier/models is unreachable (cannot connect"),
        "{message}"
    );
}

#[test]
fn bad_store_urls_and_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (args, hint) in [
        (
            vec!["--store", "gs://b/p", "models", "list"],
            "not supported",
        ),
        (
            vec!["models", "show", "Dresses"],
            "must start with a lowercase letter",
        ),
        (
            vec!["models", "rm", "dresses"],
            "name the version to remove",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_atelier"))
            .current_dir(dir.path())
            .args(&args)
            .env_remove("ATELIER_STORE")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains(hint),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}
