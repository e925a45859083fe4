//! The local image cache: one file per picture, named by the SHA-256 of its bytes
//! (`DIR/ab/abcdef…`), so the same photo listed under two keys is kept once and a file's name
//! says what its bytes must hash to.
//!
//! Files are written to `DIR/tmp/` and renamed into place, so a reader never sees half a file
//! and processes sharing the folder never corrupt each other's copies (the same content under
//! the same name, whoever renames last). A file's modification time is its last use: each hit
//! sets it, and [`ImageCache::evict`] deletes the least recently used files until the cache
//! holds no more than its limit. Every hit hashes the file again; one whose bytes no longer
//! match its name (a disk error, a hand edit) is deleted and counts as a miss.

use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::images::error::ImageError;

/// Where temporary files are written before their rename.
const TMP_DIR: &str = "tmp";

/// Temporary files older than this were left by a process that died; eviction deletes them.
const STALE_TMP: Duration = Duration::from_secs(3600);

/// The cache's default limit: 2 GiB.
pub const DEFAULT_CACHE_SIZE: u64 = 2 << 30;

/// A bounded, content-addressed folder of pictures.
#[derive(Debug, Clone)]
pub struct ImageCache {
    dir: PathBuf,
    limit: u64,
}

/// What the cache holds after an eviction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUsage {
    pub files: usize,
    pub bytes: u64,
    /// Files this eviction deleted.
    pub evicted: usize,
}

/// One cached file as eviction sees it.
struct Entry {
    path: PathBuf,
    name: String,
    bytes: u64,
    used: SystemTime,
}

impl ImageCache {
    /// A cache in `dir` (created on first write) holding at most `limit` bytes.
    pub fn new(dir: impl Into<PathBuf>, limit: u64) -> ImageCache {
        ImageCache {
            dir: dir.into(),
            limit,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Where the content with this SHA-256 (64 lowercase hex digits) is kept.
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.dir.join(&sha256[..2]).join(sha256)
    }

    /// The cached copy of the content hashing to `sha256`, checked and marked used; `None`
    /// when there is none or when the copy no longer hashes to its name (it is then deleted).
    pub fn get(&self, sha256: &str) -> Result<Option<PathBuf>, ImageError> {
        if !is_sha256(sha256) {
            return Ok(None);
        }
        let path = self.path_of(sha256);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ImageError::io(&path, e)),
        };
        if hex::encode(Sha256::digest(&bytes)) != sha256 {
            tracing::warn!(
                "{}: the cached copy does not hash to its name; fetching it again",
                path.display()
            );
            remove_if_present(&path)?;
            return Ok(None);
        }
        touch(&path);
        Ok(Some(path))
    }

    /// Keeps `bytes`, whose SHA-256 is `sha256`, and returns the path of the copy.
    pub fn put(&self, sha256: &str, bytes: &[u8]) -> Result<PathBuf, ImageError> {
        debug_assert!(is_sha256(sha256), "not a SHA-256: {sha256}");
        let path = self.path_of(sha256);
        let tmp_dir = self.dir.join(TMP_DIR);
        for dir in [&tmp_dir, &self.dir.join(&sha256[..2])] {
            fs::create_dir_all(dir).map_err(|e| ImageError::io(dir, e))?;
        }
        let tmp = tmp_dir.join(unique_tmp_name(sha256));
        fs::write(&tmp, bytes).map_err(|e| ImageError::io(&tmp, e))?;
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(ImageError::io(&path, e));
        }
        Ok(path)
    }

    /// Deletes the least recently used files, never those named in `keep`, until the cache
    /// holds at most its limit; also deletes temporary files that a dead process left.
    pub fn evict(&self, keep: &HashSet<String>) -> Result<CacheUsage, ImageError> {
        let mut entries = self.entries()?;
        let mut bytes: u64 = entries.iter().map(|e| e.bytes).sum();
        let mut usage = CacheUsage {
            files: entries.len(),
            bytes,
            evicted: 0,
        };
        if bytes <= self.limit {
            return Ok(usage);
        }
        entries.sort_by(|a, b| a.used.cmp(&b.used).then_with(|| a.name.cmp(&b.name)));
        for entry in entries {
            if bytes <= self.limit {
                break;
            }
            if keep.contains(&entry.name) {
                continue;
            }
            remove_if_present(&entry.path)?;
            bytes -= entry.bytes;
            usage.files -= 1;
            usage.evicted += 1;
        }
        usage.bytes = bytes;
        Ok(usage)
    }

    /// Every cached file (stale temporary files are deleted on the way).
    fn entries(&self) -> Result<Vec<Entry>, ImageError> {
        let mut entries = Vec::new();
        for shard in read_dir(&self.dir)? {
            let shard = shard.map_err(|e| ImageError::io(&self.dir, e))?;
            let shard_path = shard.path();
            if shard.file_name() == TMP_DIR {
                remove_stale(&shard_path)?;
                continue;
            }
            if !shard_path.is_dir() {
                continue;
            }
            for file in read_dir(&shard_path)? {
                let file = file.map_err(|e| ImageError::io(&shard_path, e))?;
                let name = file.file_name().to_string_lossy().into_owned();
                // A file deleted by another process since the listing is simply gone.
                let Ok(metadata) = file.metadata() else {
                    continue;
                };
                if !metadata.is_file() || !is_sha256(&name) {
                    continue;
                }
                entries.push(Entry {
                    path: file.path(),
                    name,
                    bytes: metadata.len(),
                    used: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        Ok(entries)
    }
}

/// 64 lowercase hexadecimal digits.
pub(crate) fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The entries of `dir`, none when it does not exist yet.
fn read_dir(dir: &Path) -> Result<Vec<std::io::Result<fs::DirEntry>>, ImageError> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries.collect()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ImageError::io(dir, e)),
    }
}

fn remove_if_present(path: &Path) -> Result<(), ImageError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(ImageError::io(path, e)),
        _ => Ok(()),
    }
}

/// Deletes the temporary files in `dir` older than [`STALE_TMP`].
fn remove_stale(dir: &Path) -> Result<(), ImageError> {
    let now = SystemTime::now();
    for file in read_dir(dir)?.into_iter().flatten() {
        let old = file
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE_TMP);
        if old {
            remove_if_present(&file.path())?;
        }
    }
    Ok(())
}

/// Marks a file used now (its modification time). Best effort: a file another process just
/// evicted is fetched again next time.
fn touch(path: &Path) {
    if let Ok(file) = fs::File::options().write(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// A temporary name no other writer uses: the hash, this process and a counter.
fn unique_tmp_name(sha256: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{sha256}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Parses a cache size: a number of bytes with an optional unit, `B`, decimal `KB`, `MB`,
/// `GB`, `TB` or binary `KiB`, `MiB`, `GiB`, `TiB` (any case; `K`, `M`, `G`, `T` alone are
/// binary), such as `500MB`, `2GiB` or `1.5 GB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size; write e.g. 500MB, 2GiB or 1073741824"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?}; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
            ));
        }
    };
    let bytes = (value * scale).round();
    if !(1.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!(
            "{text:?}: the image cache needs a size of at least 1 byte"
        ));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5 gb"), Ok(1_500_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64k"), Ok(65_536));
        for bad in ["", "MB", "2 parsecs", "0", "-1GB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn a_copy_that_no_longer_matches_its_name_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(dir.path(), 1 << 20);
        let bytes = b"a photo".to_vec();
        let path = cache.put(&sha(&bytes), &bytes).unwrap();
        assert_eq!(cache.get(&sha(&bytes)).unwrap(), Some(path.clone()));
        fs::write(&path, b"a phot0").unwrap();
        assert_eq!(cache.get(&sha(&bytes)).unwrap(), None);
        assert!(!path.exists(), "the damaged copy is deleted");
    }

    #[test]
    fn eviction_deletes_the_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(dir.path(), 250);
        let contents: Vec<Vec<u8>> = (0u8..4).map(|i| vec![i; 100]).collect();
        let start = SystemTime::now() - Duration::from_secs(100);
        for (i, bytes) in contents.iter().enumerate() {
            let path = cache.put(&sha(bytes), bytes).unwrap();
            let file = fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(start + Duration::from_secs(i as u64))
                .unwrap();
        }
        // Using the oldest makes the second oldest the least recently used.
        assert!(cache.get(&sha(&contents[0])).unwrap().is_some());
        let keep = HashSet::from([sha(&contents[2])]);
        let usage = cache.evict(&keep).unwrap();
        assert_eq!((usage.files, usage.bytes, usage.evicted), (2, 200, 2));
        let kept: Vec<bool> = contents
            .iter()
            .map(|b| cache.path_of(&sha(b)).exists())
            .collect();
        assert_eq!(kept, [true, false, true, false]);
    }

    #[test]
    fn writers_and_evictors_sharing_the_folder_leave_only_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let contents: Vec<Vec<u8>> = (0u8..8).map(|i| vec![i; 4096]).collect();
        std::thread::scope(|scope| {
            for worker in 0..4 {
                let (dir, contents) = (dir.path(), &contents);
                scope.spawn(move || {
                    // Each worker is a process of its own: its own handle on the folder.
                    let cache = ImageCache::new(dir, 3 * 4096);
                    for round in 0..50 {
                        let bytes = &contents[(worker + round) % contents.len()];
                        let name = sha(bytes);
                        let path = match cache.get(&name).unwrap() {
                            Some(path) => path,
                            None => cache.put(&name, bytes).unwrap(),
                        };
                        // A copy evicted by another worker since is simply gone, never torn.
                        if let Ok(read) = fs::read(&path) {
                            assert_eq!(&read, bytes);
                        }
                        cache.evict(&HashSet::new()).unwrap();
                    }
                });
            }
        });
        let cache = ImageCache::new(dir.path(), 3 * 4096);
        let usage = cache.evict(&HashSet::new()).unwrap();
        assert!(usage.bytes <= 3 * 4096, "{usage:?}");
        for entry in cache.entries().unwrap() {
            assert_eq!(sha(&fs::read(&entry.path).unwrap()), entry.name);
        }
        let leftovers = fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count();
        assert_eq!(leftovers, 0, "no temporary file is left behind");
    }
}
