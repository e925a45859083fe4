//! `s3://bucket/key` URIs: parsing, and joining a path listed in a manifest onto the prefix
//! the manifest lies under.

use crate::images::error::ImageError;

/// The scheme of object-storage URIs.
pub const S3_SCHEME: &str = "s3://";

/// Whether `uri` names an object in a bucket rather than a local file.
pub fn is_remote(uri: &str) -> bool {
    uri.starts_with(S3_SCHEME)
}

/// One object (or, with an empty or `/`-ended key, a prefix) in a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectUri {
    pub bucket: String,
    /// The key, without a leading `/`; may be empty (the whole bucket).
    pub key: String,
}

impl ObjectUri {
    /// Parses `s3://bucket/key`. The key's segments must be plain names: no empty, `.` or `..`
    /// segment (object keys are compared as text, so `a//b` and `a/./b` would be other objects).
    pub fn parse(uri: &str) -> Result<ObjectUri, ImageError> {
        let bad = |reason: &str| ImageError::BadUri {
            uri: uri.to_string(),
            reason: reason.to_string(),
        };
        let rest = uri
            .strip_prefix(S3_SCHEME)
            .ok_or_else(|| bad("not an s3://BUCKET/KEY uri"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket: write s3://BUCKET/KEY"));
        }
        let trimmed = key.strip_suffix('/').unwrap_or(key);
        if !trimmed.is_empty()
            && trimmed
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(bad(
                "the key must be plain names separated by single `/` (no `.` or `..`)",
            ));
        }
        Ok(ObjectUri {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// The URI of this object.
    pub fn to_uri(&self) -> String {
        format!("{S3_SCHEME}{}/{}", self.bucket, self.key)
    }

    /// The "folder" this object lies in: its key up to and including the last `/`.
    pub fn parent_prefix(&self) -> String {
        match self.key.rfind('/') {
            Some(end) => self.key[..=end].to_string(),
            None => String::new(),
        }
    }
}

/// The URI of `listed`, a path in a manifest that lies under `base` (a bucket and a prefix
/// ending in `/` or empty): relative paths are joined onto the prefix, with `.` dropped and
/// `..` going up one segment; `s3://` URIs stand as they are. Absolute local paths mean
/// nothing in a bucket and are refused with the fix.
pub fn resolve_listed(base: &ObjectUri, listed: &str) -> Result<String, String> {
    if is_remote(listed) {
        return ObjectUri::parse(listed)
            .map(|uri| uri.to_uri())
            .map_err(|e| e.to_string());
    }
    if listed.starts_with('/') || listed.contains('\\') {
        return Err(format!(
            "{listed:?} is a local path, but the manifest lies in s3://{}/: list keys relative \
             to the manifest's prefix, or s3://BUCKET/KEY uris",
            base.bucket
        ));
    }
    let mut segments: Vec<&str> = base.key.split('/').filter(|s| !s.is_empty()).collect();
    for segment in listed.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(format!(
                        "{listed:?} goes above the top of bucket {}",
                        base.bucket
                    ));
                }
            }
            name => segments.push(name),
        }
    }
    if segments.is_empty() || listed.ends_with('/') {
        return Err(format!("{listed:?} names a folder, not an image"));
    }
    Ok(format!("{S3_SCHEME}{}/{}", base.bucket, segments.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_key() {
        let uri = ObjectUri::parse("s3://photos/a/b.jpg").unwrap();
        assert_eq!(uri.bucket, "photos");
        assert_eq!(uri.key, "a/b.jpg");
        assert_eq!(uri.parent_prefix(), "a/");
        assert_eq!(uri.to_uri(), "s3://photos/a/b.jpg");
        assert_eq!(ObjectUri::parse("s3://photos").unwrap().key, "");
        for bad in ["s3:///k", "s3://b/a//c", "s3://b/../c", "/local/x.jpg"] {
            assert!(ObjectUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listed_paths_resolve_against_the_prefix() {
        let base = ObjectUri::parse("s3://b/shop/2024/").unwrap();
        let resolve = |listed| resolve_listed(&base, listed);
        assert_eq!(resolve("img/1.jpg").unwrap(), "s3://b/shop/2024/img/1.jpg");
        assert_eq!(resolve("./img/../2.jpg").unwrap(), "s3://b/shop/2024/2.jpg");
        assert_eq!(resolve("../../x.jpg").unwrap(), "s3://b/x.jpg");
        assert_eq!(resolve("s3://other/k.jpg").unwrap(), "s3://other/k.jpg");
        assert!(
            resolve("../../../x.jpg")
                .unwrap_err()
                .contains("above the top")
        );
        assert!(
            resolve("/home/me/x.jpg")
                .unwrap_err()
                .contains("local path")
        );
        let top = ObjectUri::parse("s3://b").unwrap();
        assert_eq!(resolve_listed(&top, "x.jpg").unwrap(), "s3://b/x.jpg");
    }
}
