//! Model references (`NAME`, `NAME@VERSION`, `NAME:TAG`) and the rules for names and tags.

use std::fmt;
use std::str::FromStr;

use crate::error::StoreError;

/// Which version of a named model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The highest published version.
    Latest,
    Version(u64),
    Tag(String),
}

/// `NAME`, `NAME@VERSION` or `NAME:TAG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    pub name: String,
    pub selector: Selector,
}

impl ModelRef {
    pub fn version(name: &str, version: u64) -> Self {
        ModelRef {
            name: name.to_string(),
            selector: Selector::Version(version),
        }
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.selector {
            Selector::Latest => write!(f, "{}", self.name),
            Selector::Version(v) => write!(f, "{}@{v}", self.name),
            Selector::Tag(t) => write!(f, "{}:{t}", self.name),
        }
    }
}

impl FromStr for ModelRef {
    type Err = StoreError;

    fn from_str(reference: &str) -> Result<Self, StoreError> {
        let bad = |reason: String| StoreError::BadReference {
            reference: reference.to_string(),
            reason,
        };
        let (name, selector) = if let Some((name, version)) = reference.split_once('@') {
            let version: u64 = version.parse().ok().filter(|v| *v > 0).ok_or_else(|| {
                bad(format!(
                    "`{version}` is not a version; versions are whole numbers from 1 (e.g. {name}@3)"
                ))
            })?;
            (name, Selector::Version(version))
        } else if let Some((name, tag)) = reference.split_once(':') {
            check_tag(tag).map_err(bad)?;
            (name, Selector::Tag(tag.to_string()))
        } else {
            (reference, Selector::Latest)
        };
        check_name(name).map_err(bad)?;
        Ok(ModelRef {
            name: name.to_string(),
            selector,
        })
    }
}

/// Model names become object-key segments: lowercase letters, digits, `.`, `_`, `-`, starting
/// with a letter or digit, at most 100 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 100 {
        return Err("a model name has 1 to 100 characters".into());
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Err(format!(
            "model name `{name}` must start with a lowercase letter or a digit"
        ));
    }
    if let Some(c) = name.chars().find(|c| !is_name_char(*c)) {
        return Err(format!(
            "model name `{name}` contains `{c}`; use lowercase letters, digits, `.`, `_` and `-`"
        ));
    }
    // Training saves `run-N` folders in a local store's folder; a model name must not clash.
    if name
        .strip_prefix("run-")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!(
            "`{name}` is reserved for training runs' folders; choose another model name"
        ));
    }
    Ok(())
}

/// Tags follow the name rules, start with a letter (so `3` is never mistaken for a version)
/// and are not `tags` or `latest`.
pub fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() || tag.len() > 100 {
        return Err("a tag has 1 to 100 characters".into());
    }
    if !tag.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!("tag `{tag}` must start with a lowercase letter"));
    }
    if let Some(c) = tag.chars().find(|c| !is_name_char(*c)) {
        return Err(format!(
            "tag `{tag}` contains `{c}`; use lowercase letters, digits, `.`, `_` and `-`"
        ));
    }
    if tag == "latest" {
        return Err("`latest` is implied by a bare name (e.g. `dresses`), not a tag".into());
    }
    Ok(())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        let r: ModelRef = "dresses".parse().unwrap();
        assert_eq!(r.selector, Selector::Latest);
        let r: ModelRef = "dresses@12".parse().unwrap();
        assert_eq!(
            (r.name.as_str(), r.selector),
            ("dresses", Selector::Version(12))
        );
        let r: ModelRef = "dresses:production".parse().unwrap();
        assert_eq!(r.selector, Selector::Tag("production".into()));
        assert_eq!(r.to_string(), "dresses:production");
    }

    #[test]
    fn refuses_bad_references_naming_the_problem() {
        for (reference, hint) in [
            ("dresses@0", "whole numbers from 1"),
            ("dresses@x", "`x` is not a version"),
            ("Dresses", "must start with a lowercase letter"),
            ("dress/es", "contains `/`"),
            ("dresses:1", "tag `1` must start"),
            ("dresses:latest", "implied by a bare name"),
            ("", "1 to 100"),
            ("run-12", "reserved for training runs"),
        ] {
            let error = reference.parse::<ModelRef>().unwrap_err().to_string();
            assert!(error.contains(hint), "{reference}: {error}");
        }
    }
}
