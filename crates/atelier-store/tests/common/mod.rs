//! Test environments for the store: every shared test body runs once on a fresh local folder
//! and once on a fresh bucket of the S3 server named by `ATELIER_TEST_S3_ENDPOINT` (moto,
//! started by `scripts/test`). Fault tests start their own moto server, which they can pause
//! or kill without disturbing the others.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use atelier_store::{ModelStore, RetryPolicy, StoreOptions};

pub const S3_ENV: &str = "ATELIER_TEST_S3_ENDPOINT";

/// Runs each named `async fn(&TestStore)` as `<name>::file` and `<name>::s3`.
#[macro_export]
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => { $(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn file() {
                let store = $crate::common::TestStore::local();
                super::$case(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn s3() {
                if let Some(endpoint) = $crate::common::s3_endpoint() {
                    let store = $crate::common::TestStore::s3(&endpoint);
                    super::$case(&store).await;
                }
            }
        }
    )* };
}

/// The shared S3 endpoint, or `None` (after saying so) when it is not configured. Under CI a
/// missing endpoint fails the test instead: the S3 half must run there.
pub fn s3_endpoint() -> Option<String> {
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

/// Short retries, so that fault tests finish in seconds.
pub fn test_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        total: Duration::from_secs(2),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
    }
}

/// S3 settings for a moto endpoint (moto accepts any key unless told to check them).
pub fn s3_settings(endpoint: &str, key: &str, secret: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", key),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A fresh, empty store (a temporary folder or a new bucket) plus a temporary cache folder.
pub struct TestStore {
    pub url: String,
    pub aws_settings: Vec<(String, String)>,
    pub dir: tempfile::TempDir,
}

impl TestStore {
    pub fn local() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("store").display());
        TestStore {
            url,
            aws_settings: Vec::new(),
            dir,
        }
    }

    pub fn s3(endpoint: &str) -> TestStore {
        let bucket = unique_bucket();
        create_bucket(endpoint, &bucket);
        TestStore {
            url: format!("s3://{bucket}/models/test"),
            aws_settings: s3_settings(endpoint, "test", "test"),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn is_s3(&self) -> bool {
        self.url.starts_with("s3://")
    }

    /// A store client with its own cache folder `cache-<cache>`.
    pub fn open_with_cache(&self, cache: &str) -> ModelStore {
        ModelStore::open(
            &self.url,
            StoreOptions {
                cache_dir: self.dir.path().join(format!("cache-{cache}")),
                retry: test_retry(),
                aws_settings: self.aws_settings.clone(),
            },
        )
        .unwrap()
    }

    pub fn open(&self) -> ModelStore {
        self.open_with_cache("default")
    }

    /// A model folder whose contents depend on `seed`: model.json, weights.bin, metrics.json.
    pub fn model_folder(&self, label: &str, seed: u64, weights_len: usize) -> PathBuf {
        let dir = self.dir.path().join(format!("folder-{label}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("model.json"),
            format!("{{\"label\":\"{label}\",\"seed\":{seed}}}"),
        )
        .unwrap();
        std::fs::write(dir.join("weights.bin"), pseudo_random(seed, weights_len)).unwrap();
        std::fs::write(dir.join("metrics.json"), b"[]").unwrap();
        dir
    }
}

/// Deterministic bytes (an LCG), different for every seed.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

pub fn unique_bucket() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "atelier-test-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// One plain HTTP request (moto accepts unsigned requests unless authentication is on);
/// returns the status code and body.
pub fn http(endpoint: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

pub fn create_bucket(endpoint: &str, bucket: &str) {
    let (status, body) = http(endpoint, "PUT", &format!("/{bucket}"), b"");
    assert_eq!(
        status, 200,
        "creating bucket {bucket} at {endpoint}: {body}"
    );
}

/// A moto S3 server of this test's own, on a free 127.0.0.1 port.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    log: PathBuf,
}

impl Moto {
    pub fn start(log_dir: &Path) -> Moto {
        let port = free_port();
        let log = log_dir.join(format!("moto-{port}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
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
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start `python3 -m moto.server` (pip install 'moto[server]')");
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let started = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Some(status) = moto.child.try_wait().unwrap() {
                panic!(
                    "moto exited with {status}: {}",
                    std::fs::read_to_string(&moto.log).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto did not start listening within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} moto");
    }

    /// Freezes the server (SIGSTOP): connections are accepted but never answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Kills the server (SIGKILL): connections are refused from now on.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // A paused server must be resumed to die promptly.
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-CONT", &self.child.id().to_string()])
                .stderr(Stdio::null())
                .status();
        }
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Turns on moto's credential checks after creating an IAM user allowed everything on S3;
/// returns that user's key id and secret.
pub fn enable_moto_auth(endpoint: &str) -> (String, String) {
    const SCRIPT: &str = r#"
import sys, json, boto3, urllib.request
endpoint = sys.argv[1]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="setup", aws_secret_access_key="setup")
iam.create_user(UserName="atelier")
key = iam.create_access_key(UserName="atelier")["AccessKey"]
iam.put_user_policy(UserName="atelier", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
print(key["AccessKeyId"], key["SecretAccessKey"])
"#;
    let output = Command::new("python3")
        .args(["-c", SCRIPT, endpoint])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "setting up moto authentication: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    set_moto_auth(endpoint, true);
    let text = String::from_utf8(output.stdout).unwrap();
    let mut words = text.split_whitespace();
    (
        words.next().unwrap().to_string(),
        words.next().unwrap().to_string(),
    )
}

/// From now on moto checks every request's signature against IAM (or stops checking).
pub fn set_moto_auth(endpoint: &str, on: bool) {
    let body: &[u8] = if on { b"0" } else { b"inf" };
    let (status, text) = http(endpoint, "POST", "/moto-api/reset-auth", body);
    assert_eq!(status, 200, "moto reset-auth: {text}");
}
