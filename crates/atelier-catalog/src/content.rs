//! Content ids: an image's id is the sha256 of its bytes, so the same picture gets the same id
//! wherever it lies. Files that cannot be hashed get a stable placeholder id derived from their
//! path instead. Also the hash-based train/test assignment.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::model::Split;

/// Prefix of placeholder ids, given to rows whose file could not be hashed.
pub const PLACEHOLDER_PREFIX: &str = "missing-";

/// An image id: sha256 of the file bytes, or, for a placeholder, sha256 of the file's uri.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ContentId {
    pub digest: [u8; 32],
    pub placeholder: bool,
}

impl ContentId {
    pub fn placeholder_for(uri: &str) -> ContentId {
        ContentId {
            digest: Sha256::digest(uri.as_bytes()).into(),
            placeholder: true,
        }
    }

    /// The id as stored: 64 lowercase hex digits, with [`PLACEHOLDER_PREFIX`] for placeholders.
    pub fn to_id(self) -> String {
        if self.placeholder {
            format!("{PLACEHOLDER_PREFIX}{}", hex::encode(self.digest))
        } else {
            hex::encode(self.digest)
        }
    }

    /// Parses a stored id; `None` for text this crate never produces.
    pub fn parse(id: &str) -> Option<ContentId> {
        let (hex_part, placeholder) = match id.strip_prefix(PLACEHOLDER_PREFIX) {
            Some(rest) => (rest, true),
            None => (id, false),
        };
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut digest).ok()?;
        Some(ContentId {
            digest,
            placeholder,
        })
    }

    pub fn split(self, test_fraction: f64) -> Split {
        split_for_digest(&self.digest, test_fraction)
    }
}

/// Deterministic split from a sha256 digest: its first 8 bytes, read as a big-endian u64 and
/// scaled to [0, 1), fall below `test_fraction` for test images. Content hashes are uniform, so
/// about `test_fraction` of the images land in test, and an image always lands in the same split.
pub fn split_for_digest(digest: &[u8; 32], test_fraction: f64) -> Split {
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    let unit = u64::from_be_bytes(head) as f64 / 18_446_744_073_709_551_616.0; // 2^64
    if unit < test_fraction {
        Split::Test
    } else {
        Split::Train
    }
}

/// What reading a listed file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileContent {
    Hashed {
        id: ContentId,
        byte_size: u64,
    },
    /// The file cannot be used (missing, unreadable or empty); `reason` says why and names the
    /// path. Recorded as a quarantined placeholder.
    Unreadable {
        id: ContentId,
        reason: String,
    },
    /// The path is no regular file (a folder, a device, a pipe, or a file of the kernel's
    /// `/proc`, `/sys` or `/dev`): never an image, so the import refuses it.
    NotRegular {
        id: ContentId,
        reason: String,
    },
}

impl FileContent {
    pub fn id(&self) -> ContentId {
        match self {
            FileContent::Hashed { id, .. }
            | FileContent::Unreadable { id, .. }
            | FileContent::NotRegular { id, .. } => *id,
        }
    }
}

/// Folders whose files are made up by the kernel (process memory, environment, devices): an
/// import refuses every path that resolves below them.
const PSEUDO_FILESYSTEMS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Hashes the file at `uri` (an absolute path), streaming it through a fixed buffer. Links are
/// followed; what they lead to must be a regular file outside the kernel's pseudo-filesystems.
pub(crate) fn hash_file(uri: &str) -> FileContent {
    let unreadable = |reason: String| FileContent::Unreadable {
        id: ContentId::placeholder_for(uri),
        reason,
    };
    let not_regular = |what: &str| FileContent::NotRegular {
        id: ContentId::placeholder_for(uri),
        reason: format!("{uri} is {what}, not an image file"),
    };
    let metadata = match std::fs::metadata(Path::new(uri)) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return unreadable(format!("file not found: {uri}"));
        }
        Err(e) => return unreadable(format!("cannot open {uri}: {e}")),
    };
    if metadata.is_dir() {
        return not_regular("a folder");
    }
    if !metadata.is_file() {
        return not_regular("a device, pipe or socket");
    }
    if let Ok(resolved) = std::fs::canonicalize(uri)
        && PSEUDO_FILESYSTEMS
            .iter()
            .any(|root| resolved.starts_with(root))
    {
        return not_regular(&format!(
            "a file of the kernel's {} (it resolves to {})",
            PSEUDO_FILESYSTEMS
                .iter()
                .find(|root| resolved.starts_with(root))
                .copied()
                .unwrap_or_default(),
            resolved.display()
        ));
    }
    let mut file = match File::open(Path::new(uri)) {
        Ok(file) => file,
        Err(e) => return unreadable(format!("cannot open {uri}: {e}")),
    };
    let mut hasher = Sha256::new();
    let mut buffer = [0u8; 64 * 1024];
    let mut byte_size = 0u64;
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buffer[..n]);
                byte_size += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return unreadable(format!("cannot read {uri}: {e}")),
        }
    }
    if byte_size == 0 {
        return unreadable(format!("file is empty (0 bytes): {uri}"));
    }
    FileContent::Hashed {
        id: ContentId {
            digest: hasher.finalize().into(),
            placeholder: false,
        },
        byte_size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_round_trips_through_text() {
        let id = ContentId::placeholder_for("/a/b.jpg");
        let text = id.to_id();
        assert!(text.starts_with(PLACEHOLDER_PREFIX));
        assert_eq!(ContentId::parse(&text), Some(id));
        assert_eq!(ContentId::parse("not hex"), None);
    }

    #[test]
    fn file_hash_matches_sha256_of_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        std::fs::write(&path, b"abc").unwrap();
        let content = hash_file(path.to_str().unwrap());
        // sha256("abc"), from FIPS 180-2 appendix B.1.
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(content.id().to_id(), expected);
        assert!(matches!(content, FileContent::Hashed { byte_size: 3, .. }));
    }

    #[test]
    fn missing_and_empty_files_get_reasons_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone.jpg");
        let missing = missing.to_str().unwrap();
        match hash_file(missing) {
            FileContent::Unreadable { id, reason } => {
                assert_eq!(reason, format!("file not found: {missing}"));
                assert_eq!(id, ContentId::placeholder_for(missing));
            }
            other => panic!("expected unreadable, got {other:?}"),
        }
        let empty = dir.path().join("empty.jpg");
        std::fs::write(&empty, b"").unwrap();
        let empty = empty.to_str().unwrap();
        assert!(
            matches!(hash_file(empty), FileContent::Unreadable { reason, .. }
            if reason == format!("file is empty (0 bytes): {empty}"))
        );
    }

    #[cfg(unix)]
    #[test]
    fn folders_devices_and_kernel_files_are_not_regular() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().to_str().unwrap().to_string();
        assert!(
            matches!(hash_file(&folder), FileContent::NotRegular { reason, .. }
            if reason == format!("{folder} is a folder, not an image file"))
        );
        assert!(matches!(
            hash_file("/dev/null"),
            FileContent::NotRegular { .. }
        ));
        if Path::new("/proc/self/environ").exists() {
            // A regular file to `stat`, but made up by the kernel: refused.
            assert!(
                matches!(hash_file("/proc/self/environ"), FileContent::NotRegular { reason, .. }
                if reason.contains("/proc"))
            );
            // Also through a link from an innocent-looking name.
            let link = dir.path().join("dress.jpg");
            std::os::unix::fs::symlink("/proc/self/environ", &link).unwrap();
            assert!(matches!(
                hash_file(link.to_str().unwrap()),
                FileContent::NotRegular { .. }
            ));
        }
    }

    #[test]
    fn split_uses_the_first_eight_bytes() {
        let mut digest = [0xffu8; 32];
        digest[..8].copy_from_slice(&0u64.to_be_bytes());
        assert_eq!(split_for_digest(&digest, 0.1), Split::Test);
        digest[..8].copy_from_slice(&(u64::MAX / 2).to_be_bytes());
        assert_eq!(split_for_digest(&digest, 0.1), Split::Train);
        assert_eq!(split_for_digest(&digest, 0.6), Split::Test);
        assert_eq!(split_for_digest(&digest, 0.0), Split::Train);
    }
}
