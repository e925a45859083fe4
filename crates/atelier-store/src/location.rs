//! Where a store lives (`--store`): a local folder or an S3 bucket and prefix, how to open it
//! as an `object_store`, and how long to keep retrying when it does not answer.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig};

use crate::error::{StoreError, StoreResult};

/// A parsed `--store` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// `file:///abs/path`, `file://./rel` or a plain path.
    Local(PathBuf),
    /// `s3://bucket/prefix` (the prefix may be empty).
    S3 { bucket: String, prefix: String },
}

impl StoreLocation {
    pub fn parse(url: &str) -> StoreResult<Self> {
        let bad = |reason: &str| StoreError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket: write s3://BUCKET or s3://BUCKET/PREFIX"));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|s| s == "." || s == "..")
                || prefix.contains("//")
                || ObjectPath::parse(prefix).is_err()
            {
                return Err(bad(
                    "the prefix must be plain folder names separated by `/`",
                ));
            }
            return Ok(StoreLocation::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err(bad(
                    "no folder: write file:///abs/path or file://./relative",
                ));
            }
            return Ok(StoreLocation::Local(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(bad(&format!(
                "`{scheme}://` stores are not supported; use a folder, file://PATH or s3://BUCKET/PREFIX"
            )));
        }
        if url.is_empty() {
            return Err(bad(
                "empty: give a folder, file://PATH or s3://BUCKET/PREFIX",
            ));
        }
        Ok(StoreLocation::Local(PathBuf::from(url)))
    }

    /// The folder of a local store, as given (possibly relative).
    pub fn local_dir(&self) -> Option<&Path> {
        match self {
            StoreLocation::Local(dir) => Some(dir),
            StoreLocation::S3 { .. } => None,
        }
    }
}

/// How hard to try before declaring a remote store unavailable. Applies to every request;
/// local folders do not retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries of one request after its first attempt.
    pub max_retries: usize,
    /// No retry starts later than this after the first attempt.
    pub total: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    /// For one whole request, upload or download included (weights can be large).
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // About 7 s of retries (jittered backoff from 0.5 s) before a store counts as down:
        // enough to ride out a restarting server or a dropped connection.
        RetryPolicy {
            max_retries: 6,
            total: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(600),
        }
    }
}

/// An opened backend: the object store, the key prefix every object lives under, and the
/// store's canonical URL for messages.
pub(crate) struct Backend {
    pub store: Arc<dyn ObjectStore>,
    /// The same S3 client, for presigned links (`None` on a local folder).
    pub s3: Option<object_store::aws::AmazonS3>,
    pub root: ObjectPath,
    pub url: String,
    /// Said after unexplained S3 failures when no access key is configured: the credentials
    /// then come from the machine's metadata service, which is rarely what was meant.
    pub credentials_hint: Option<String>,
}

pub(crate) fn open(
    location: &StoreLocation,
    retry: &RetryPolicy,
    aws_settings: &[(String, String)],
) -> StoreResult<Backend> {
    match location {
        StoreLocation::Local(dir) => open_local(dir),
        StoreLocation::S3 { bucket, prefix } => open_s3(bucket, prefix, retry, aws_settings),
    }
}

fn open_local(dir: &Path) -> StoreResult<Backend> {
    let absolute = normalize(dir)?;
    let root = ObjectPath::from_absolute_path(&absolute).map_err(|e| StoreError::BadUrl {
        url: dir.display().to_string(),
        reason: format!("not usable as a store folder: {e}"),
    })?;
    // No prefix (root `/`): LocalFileSystem::new_with_prefix would require the folder
    // to exist, and listing a store that was never written to should just be empty.
    let store = LocalFileSystem::new().with_automatic_cleanup(true);
    Ok(Backend {
        s3: None,
        store: Arc::new(store),
        root,
        url: format!("file://{}", absolute.display()),
        credentials_hint: None,
    })
}

fn open_s3(
    bucket: &str,
    prefix: &str,
    retry: &RetryPolicy,
    aws_settings: &[(String, String)],
) -> StoreResult<Backend> {
    let url = if prefix.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{prefix}")
    };
    let builder = s3_builder(bucket, &url, retry, aws_settings)?;
    let store = builder.build().map_err(|e| StoreError::BadUrl {
        url: url.clone(),
        reason: format!(
            "cannot configure S3 ({e}); set AWS_REGION, and AWS_ENDPOINT_URL (with \
             AWS_ALLOW_HTTP=true for http://) for a server other than AWS"
        ),
    })?;
    let root = ObjectPath::parse(prefix).map_err(|e| StoreError::BadUrl {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    Ok(Backend {
        s3: Some(store.clone()),
        store: Arc::new(store),
        root,
        url,
        credentials_hint: credentials_hint(aws_settings),
    })
}

/// The S3 client for `bucket`: the environment's settings, `aws_settings` over them, and the
/// retry policy.
fn s3_builder(
    bucket: &str,
    url: &str,
    retry: &RetryPolicy,
    aws_settings: &[(String, String)],
) -> StoreResult<AmazonS3Builder> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    for (name, value) in aws_settings {
        let key: AmazonS3ConfigKey =
            name.to_ascii_lowercase()
                .parse()
                .map_err(|e| StoreError::BadUrl {
                    url: url.to_string(),
                    reason: format!("setting {name}: {e}"),
                })?;
        builder = builder.with_config(key, value);
    }
    Ok(builder
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: retry.initial_backoff,
                max_backoff: retry.max_backoff,
                base: 2.0,
            },
            max_retries: retry.max_retries,
            retry_timeout: retry.total,
        })
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            format!("{}ms", retry.connect_timeout.as_millis()),
        )
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            format!("{}ms", retry.request_timeout.as_millis()),
        ))
}

/// The hint for unexplained S3 failures when no access key is configured, in the environment
/// or in `aws_settings`.
fn credentials_hint(aws_settings: &[(String, String)]) -> Option<String> {
    let has_key = std::env::var_os("AWS_ACCESS_KEY_ID").is_some_and(|k| !k.is_empty())
        || aws_settings
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("AWS_ACCESS_KEY_ID") && !v.is_empty());
    (!has_key).then(|| {
        "AWS_ACCESS_KEY_ID is not set, so credentials were asked of the instance \
         metadata service; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            .to_string()
    })
}

/// An absolute path without `.` or `..` (object keys cannot contain them), resolved
/// lexically: the folder may not exist yet.
fn normalize(dir: &Path) -> StoreResult<PathBuf> {
    let absolute = std::path::absolute(dir).map_err(|e| StoreError::io(dir, e))?;
    let mut out = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_urls() {
        assert_eq!(
            StoreLocation::parse("s3://bucket/a/b/").unwrap(),
            StoreLocation::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            StoreLocation::parse("s3://bucket").unwrap(),
            StoreLocation::S3 {
                bucket: "bucket".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            StoreLocation::parse("file://./models").unwrap(),
            StoreLocation::Local("./models".into())
        );
        assert_eq!(
            StoreLocation::parse("/tmp/m").unwrap(),
            StoreLocation::Local("/tmp/m".into())
        );
        for (url, hint) in [
            ("gs://b/p", "not supported"),
            ("s3:///p", "no bucket"),
            ("s3://b/../x", "plain folder names"),
            ("file://", "no folder"),
        ] {
            let error = StoreLocation::parse(url).unwrap_err().to_string();
            assert!(
                error.contains(hint) && error.contains(url),
                "{url}: {error}"
            );
        }
    }

    #[test]
    fn local_paths_are_made_absolute_lexically() {
        let normalized = normalize(Path::new("/a/b/../c/./d")).unwrap();
        assert_eq!(normalized, PathBuf::from("/a/c/d"));
    }
}
