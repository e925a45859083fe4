//! Database URLs: which backend a URL names, and the exact URL handed to sqlx.

use std::path::{Component, Path, PathBuf};

use crate::error::CatalogError;
use crate::model::Backend;

/// The URL [`crate::Catalog::open`] uses when the caller gives none.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://atelier.db";

/// A parsed database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DatabaseTarget {
    pub backend: Backend,
    /// What sqlx connects to. For SQLite: an absolute path, with `mode=rwc` so that a missing
    /// file is created.
    pub connect_url: String,
    /// The SQLite file, for messages and the parent-folder check.
    pub sqlite_file: Option<PathBuf>,
}

impl DatabaseTarget {
    pub fn parse(url: &str) -> Result<DatabaseTarget, CatalogError> {
        let bad = |reason: &str| CatalogError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = url.trim();
        if let Some(rest) = trimmed
            .strip_prefix("sqlite://")
            .or_else(|| trimmed.strip_prefix("sqlite:"))
        {
            let (path, params) = match rest.split_once('?') {
                Some((path, params)) => (path, Some(params)),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(bad("no database file path after the scheme"));
            }
            let mut query: Vec<String> = params
                .into_iter()
                .flat_map(|p| p.split('&'))
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            if path == ":memory:" {
                return Ok(DatabaseTarget {
                    backend: Backend::Sqlite,
                    connect_url: with_query("sqlite::memory:".to_string(), &query),
                    sqlite_file: None,
                });
            }
            if !query.iter().any(|p| p.starts_with("mode=")) {
                query.push("mode=rwc".to_string());
            }
            let file = absolute(Path::new(path))
                .map_err(|e| bad(&format!("cannot resolve the path: {e}")))?;
            let file_text = file
                .to_str()
                .ok_or_else(|| bad("the path is not valid UTF-8"))?;
            let connect_url = with_query(format!("sqlite://{}", encode_path(file_text)), &query);
            return Ok(DatabaseTarget {
                backend: Backend::Sqlite,
                connect_url,
                sqlite_file: Some(file),
            });
        }
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            let after_scheme = trimmed.split_once("://").map_or("", |(_, rest)| rest);
            if after_scheme.is_empty() || after_scheme.starts_with('/') {
                return Err(bad("no host after the scheme"));
            }
            return Ok(DatabaseTarget {
                backend: Backend::Postgres,
                connect_url: trimmed.to_string(),
                sqlite_file: None,
            });
        }
        Err(bad("unsupported scheme"))
    }
}

fn with_query(mut url: String, query: &[String]) -> String {
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    url
}

/// Makes `path` absolute against the current folder and drops `.` components, without touching
/// the file system (the file may not exist yet).
pub(crate) fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    Ok(normalize(&joined))
}

/// Lexically removes `.` and resolves `..` components of an absolute path.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Percent-encodes the characters that would end or alter the path part of a URL; sqlx decodes
/// them again, so any file name survives the round trip.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for ch in path.chars() {
        match ch {
            '%' | '?' | '#' | ' ' | '"' | '<' | '>' | '`' | '{' | '}' => {
                let mut buf = [0u8; 4];
                for byte in ch.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_forms_resolve_to_an_absolute_file_created_on_demand() {
        let a = DatabaseTarget::parse("sqlite:///tmp/x/a.db").unwrap();
        assert_eq!(a.backend, Backend::Sqlite);
        assert_eq!(a.connect_url, "sqlite:///tmp/x/a.db?mode=rwc");
        let b = DatabaseTarget::parse("sqlite:/tmp/x/./a.db").unwrap();
        assert_eq!(b.connect_url, a.connect_url);
        let relative = DatabaseTarget::parse("sqlite://atelier.db").unwrap();
        let expected = std::env::current_dir().unwrap().join("atelier.db");
        assert_eq!(relative.sqlite_file.as_deref(), Some(expected.as_path()));
    }

    #[test]
    fn sqlite_keeps_caller_mode_and_encodes_odd_file_names() {
        let t = DatabaseTarget::parse("sqlite:/tmp/my db#1.db?mode=ro").unwrap();
        assert_eq!(t.connect_url, "sqlite:///tmp/my%20db%231.db?mode=ro");
    }

    #[test]
    fn postgres_urls_pass_through() {
        for url in ["postgres://u@h:5432/db", "postgresql://u@h/db"] {
            let t = DatabaseTarget::parse(url).unwrap();
            assert_eq!(t.backend, Backend::Postgres);
            assert_eq!(t.connect_url, url);
        }
    }

    #[test]
    fn bad_urls_name_the_url_and_the_accepted_forms() {
        for url in ["mysql://x/y", "atelier.db", "sqlite://", "postgres://"] {
            let message = DatabaseTarget::parse(url).unwrap_err().to_string();
            assert!(message.contains(&format!("{url:?}")), "{message}");
            assert!(message.contains("sqlite://PATH"), "{message}");
        }
    }
}
