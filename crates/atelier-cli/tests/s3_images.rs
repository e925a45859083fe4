//! Catalogue images in S3 from the command line, against moto: `import s3://…` of a manifest
//! and of a folder tree, `check`, training and `tag` reading the photos through the image
//! cache (also once the server is gone), a damaged cached copy fetched again, the cache kept
//! within `--cache-size`, and a manifest naming missing objects refused before anything is
//! recorded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{json_of, tiny_training};

/// A moto server of this test's own (the test stops it to show what the cache serves).
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start(log: &Path) -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start `python3 -m moto.server` (pip install 'moto[server]')");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One unsigned request (moto does not check credentials by default); the status code.
fn put(endpoint: &str, path: &str, body: &[u8]) -> u16 {
    let address = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "PUT {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A folder with synthetic photos uploaded to a bucket, and `atelier` run against it.
struct Workspace {
    _dir: tempfile::TempDir,
    root: PathBuf,
    moto: Moto,
    bucket: String,
}

impl Workspace {
    /// `count` synthetic 64-pixel photos and their manifest uploaded under `shop/`.
    fn new(count: usize) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let moto = Moto::start(&root.join("moto.log"));
        let workspace = Workspace {
            _dir: dir,
            root,
            moto,
            bucket: "photos".to_string(),
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
        assert_eq!(workspace.put("", b""), 200, "creating the bucket");
        workspace.upload(&synth, "manifest.csv");
        for entry in std::fs::read_dir(synth.join("images")).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            workspace.upload(&synth, &format!("images/{name}"));
        }
        workspace
    }

    fn put(&self, key: &str, body: &[u8]) -> u16 {
        put(
            &self.moto.endpoint,
            &format!("/{}/{key}", self.bucket),
            body,
        )
    }

    fn upload(&self, folder: &Path, relative: &str) {
        let bytes = std::fs::read(folder.join(relative)).unwrap();
        assert_eq!(
            self.put(&format!("shop/{relative}"), &bytes),
            200,
            "{relative}"
        );
    }

    fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn cache(&self) -> PathBuf {
        self.root.join("image-cache")
    }

    fn command(&self, db: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_atelier"));
        command
            .current_dir(&self.root)
            .arg("--db")
            .arg(format!("sqlite://{}", self.root.join(db).display()))
            .arg("--store")
            .arg(self.root.join("models"))
            .arg("--image-cache")
            .arg(self.cache())
            .args(args)
            .env("ATELIER_FEATURE_CACHE", self.root.join("feature-cache"))
            .env_remove("ATELIER_DB")
            .env_remove("ATELIER_STORE")
            .env_remove("ATELIER_IMAGE_CACHE_SIZE");
        for (key, value) in [
            ("AWS_ENDPOINT_URL", self.moto.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ALLOW_HTTP", "true"),
        ] {
            command.env(key, value);
        }
        command
    }

    fn run_on(&self, db: &str, args: &[&str]) -> Output {
        self.command(db, args).output().expect("run atelier")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_on("catalog.db", args)
    }
}

/// Every file of the image cache with its size (temporary files left out).
fn cached_files(cache: &Path) -> Vec<(PathBuf, u64)> {
    let mut files = Vec::new();
    for shard in std::fs::read_dir(cache).unwrap().flatten() {
        if shard.file_name() == "tmp" {
            continue;
        }
        for file in std::fs::read_dir(shard.path()).unwrap().flatten() {
            files.push((file.path(), file.metadata().unwrap().len()));
        }
    }
    files
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn enabled() -> bool {
    let on = std::process::Command::new("python3")
        .args(["-c", "import moto.server"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !on {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty()),
            "moto is missing, but CI is set: the S3 image tests must run in CI"
        );
        eprintln!("skipped: python3 -m moto.server is not available");
    }
    on
}

#[test]
fn import_check_train_and_tag_photos_from_s3() {
    if !enabled() {
        return;
    }
    let mut workspace = Workspace::new(40);
    let manifest = workspace.uri("shop/manifest.csv");
    let report = json_of(&workspace.run(&["import", &manifest, "--json"]));
    assert_eq!(report["added"], 40, "{report}");
    assert_eq!(report["source"], manifest.as_str(), "{report}");
    let page = json_of(&workspace.run(&["images", "--per-page", "100", "--json"]));
    let uris: Vec<&str> = page["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| image["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris.len(), 40);
    let prefix = workspace.uri("shop/images/");
    assert!(uris.iter().all(|uri| uri.starts_with(&prefix)), "{uris:?}");

    // The import kept a copy of each photo; a damaged one is fetched again by check.
    let files = cached_files(&workspace.cache());
    assert_eq!(files.len(), 40);
    std::fs::write(&files[0].0, b"damaged").unwrap();
    let checked = json_of(&workspace.run(&["check", "--json"]));
    assert_eq!(
        (checked["checked"].clone(), checked["ok"].clone()),
        (40.into(), 40.into())
    );
    assert_eq!(std::fs::metadata(&files[0].0).unwrap().len(), files[0].1);

    // With the server gone, training and checking read the cached copies.
    workspace.moto.stop();
    let trained = json_of(&workspace.run(&tiny_training("1", &[])));
    assert!(trained["run"].as_i64().is_some(), "{trained}");
    let checked = json_of(&workspace.run(&["check", "--json"]));
    assert_eq!(checked["ok"], 40, "{checked}");

    // `tag` takes objects as given, uncatalogued, so it fetches them: the error names the
    // object and the server.
    let image = uris[0].to_string();
    let output = workspace.run(&["tag", "--model", "1", &image, "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("unreachable") && message.contains(&image),
        "{message}"
    );
}

#[test]
fn tag_reads_objects_named_on_the_command_line() {
    if !enabled() {
        return;
    }
    let workspace = Workspace::new(24);
    json_of(&workspace.run(&["import", &workspace.uri("shop/manifest.csv"), "--json"]));
    json_of(&workspace.run(&["check", "--json"]));
    json_of(&workspace.run(&tiny_training("1", &[])));
    let image = workspace.uri("shop/images/000003.jpg");
    let missing = workspace.uri("shop/images/gone.jpg");
    let output = workspace.run(&["tag", "--model", "1", &image, &missing, "--json"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let lines = common::json_lines(&output);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["path"], image.as_str());
    assert_eq!(lines[0]["ok"], true, "{}", lines[0]);
    assert!(
        lines[0]["facets"]["sleeve"]["label"].is_string(),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1]["path"], missing.as_str());
    assert_eq!(lines[1]["ok"], false);
    let error = lines[1]["error"].as_str().unwrap();
    assert!(
        error.contains(&missing) && error.contains("does not exist"),
        "{error}"
    );
}

#[test]
fn missing_objects_are_refused_before_anything_is_recorded() {
    if !enabled() {
        return;
    }
    let workspace = Workspace::new(6);
    let synth = workspace.root.join("synth");
    let listed = std::fs::read_to_string(synth.join("manifest.csv")).unwrap();
    let broken = format!("{listed}images/gone-1.jpg,,a-line,,,,,,,,,,,\n");
    assert_eq!(workspace.put("shop/broken.csv", broken.as_bytes()), 200);
    let output = workspace.run(&["import", &workspace.uri("shop/broken.csv"), "--json"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains(&workspace.uri("shop/images/gone-1.jpg")) && message.contains("upload"),
        "{message}"
    );
    let summary = json_of(&workspace.run(&["images", "--json"]));
    assert_eq!(summary["total"], 0, "nothing was imported: {summary}");

    // Allowed, the missing object becomes a quarantined placeholder, as a missing file does.
    let report = json_of(&workspace.run(&[
        "import",
        &workspace.uri("shop/broken.csv"),
        "--allow-missing",
        "--json",
    ]));
    assert_eq!(
        (report["rows"].clone(), report["quarantined"].clone()),
        (7.into(), 1.into())
    );
}

#[test]
fn a_folder_tree_in_a_bucket_imports_like_a_local_one_within_the_cache_size() {
    if !enabled() {
        return;
    }
    let workspace = Workspace::new(12);
    let images = workspace.root.join("synth").join("images");
    let mut photos: Vec<PathBuf> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    photos.sort();
    // The same tree on disk and in the bucket: ROOT/<facet>/<label>/<image>, plus a file
    // that is no image, which both ignore.
    let tree = workspace.root.join("tree");
    let mut total = 0;
    let places = [("sleeve", "long"), ("sleeve", "short"), ("length", "mini")];
    for (photo, (facet, label)) in photos.iter().zip(places.iter().cycle()) {
        let bytes = std::fs::read(photo).unwrap();
        let name = photo.file_name().unwrap().to_str().unwrap();
        let relative = format!("{facet}/{label}/{name}");
        std::fs::create_dir_all(tree.join(facet).join(label)).unwrap();
        std::fs::write(tree.join(&relative), &bytes).unwrap();
        assert_eq!(workspace.put(&format!("tree/{relative}"), &bytes), 200);
        total += bytes.len() as u64;
    }
    std::fs::write(tree.join("README.txt"), b"notes").unwrap();
    assert_eq!(workspace.put("tree/README.txt", b"notes"), 200);

    let limit = total / 2;
    let remote = json_of(&workspace.run(&[
        "--cache-size",
        &format!("{limit}B"),
        "import",
        &workspace.uri("tree/"),
        "--json",
    ]));
    let on_disk =
        json_of(&workspace.run_on("local.db", &["import", tree.to_str().unwrap(), "--json"]));
    for field in ["rows", "added", "quarantined", "duplicates"] {
        assert_eq!(
            remote[field], on_disk[field],
            "{field}: {remote} vs {on_disk}"
        );
    }
    assert_eq!(remote["added"], 12, "{remote}");
    let cached: u64 = cached_files(&workspace.cache())
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert!(
        cached > 0 && cached <= limit,
        "{cached} bytes cached, limit {limit}"
    );
    let facets = json_of(&workspace.run(&["facets", "--json"]));
    let facets_local = json_of(&workspace.run_on("local.db", &["facets", "--json"]));
    assert_eq!(facets, facets_local);
}
