//! The index file: a 48-byte header, then the index's payload.
//!
//! ```text
//! offset  size  field (integers little-endian)
//!      0     8  magic "ATSEARCH"
//!      8     4  format version (FORMAT_VERSION)
//!     12     4  kind: 1 = exact, 2 = HNSW
//!     16     4  metric: 1 = cosine (dot product of L2-normalised vectors)
//!     20     4  dimensions
//!     24     8  number of vectors
//!     32     8  payload length in bytes
//!     40     4  CRC-32 of the payload
//!     44     4  CRC-32 of bytes 0..44
//!     48        payload (its layout is the index kind's business)
//! ```
//!
//! Files are written under a temporary name in the same folder, synced, then renamed over the
//! target, so a reader sees the old file or the new one, never a half-written one. Reading
//! checks everything the header promises (magic, version, header checksum, kind, metric,
//! dimensions, length) before the payload is allocated, and the payload checksum at the end.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{SearchError, SearchResult};

/// The index file format this build writes and reads.
pub const FORMAT_VERSION: u32 = 2;

const MAGIC: [u8; 8] = *b"ATSEARCH";
const HEADER_LEN: usize = 48;
const METRIC_COSINE: u32 = 1;

/// Which index a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// [`crate::ExactIndex`]: every vector, scanned in full.
    Exact,
    /// [`crate::HnswIndex`]: an HNSW graph.
    Hnsw,
}

impl IndexKind {
    fn code(self) -> u32 {
        match self {
            IndexKind::Exact => 1,
            IndexKind::Hnsw => 2,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(IndexKind::Exact),
            2 => Some(IndexKind::Hnsw),
            _ => None,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            IndexKind::Exact => "an exact index",
            IndexKind::Hnsw => "an HNSW (approximate) index",
        }
    }

    fn loader(self) -> &'static str {
        match self {
            IndexKind::Exact => "ExactIndex::load",
            IndexKind::Hnsw => "HnswIndex::load",
        }
    }
}

/// What an index file's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub kind: IndexKind,
    pub dimensions: usize,
    pub count: u64,
    pub payload_len: u64,
}

impl Header {
    fn encode(&self, payload_crc: u32) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[0..8].copy_from_slice(&MAGIC);
        bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.kind.code().to_le_bytes());
        bytes[16..20].copy_from_slice(&METRIC_COSINE.to_le_bytes());
        bytes[20..24].copy_from_slice(&(self.dimensions as u32).to_le_bytes());
        bytes[24..32].copy_from_slice(&self.count.to_le_bytes());
        bytes[32..40].copy_from_slice(&self.payload_len.to_le_bytes());
        bytes[40..44].copy_from_slice(&payload_crc.to_le_bytes());
        let header_crc = crc32fast::hash(&bytes[0..44]);
        bytes[44..48].copy_from_slice(&header_crc.to_le_bytes());
        bytes
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// A writer that checksums and counts what passes through it.
pub(crate) struct PayloadWriter {
    inner: BufWriter<File>,
    hasher: crc32fast::Hasher,
    written: u64,
}

impl PayloadWriter {
    /// Writes `bytes` in full.
    pub(crate) fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.inner.write_all(bytes)
    }

    /// Writes `values` little-endian.
    pub(crate) fn put_u64s(&mut self, values: &[u64]) -> std::io::Result<()> {
        if cfg!(target_endian = "little") {
            return self.put(bytemuck::cast_slice(values));
        }
        values.iter().try_for_each(|v| self.put(&v.to_le_bytes()))
    }

    /// Writes `values` little-endian.
    pub(crate) fn put_f32s(&mut self, values: &[f32]) -> std::io::Result<()> {
        if cfg!(target_endian = "little") {
            return self.put(bytemuck::cast_slice(values));
        }
        values.iter().try_for_each(|v| self.put(&v.to_le_bytes()))
    }
}

/// Distinguishes the temporary files of saves running at once in one process.
static SAVE_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "index".to_string());
    let n = SAVE_COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

/// Writes an index file atomically: `payload` must write exactly `header.payload_len` bytes.
pub(crate) fn save(
    path: &Path,
    header: Header,
    payload: impl FnOnce(&mut PayloadWriter) -> std::io::Result<()>,
) -> SearchResult<()> {
    let temp = temporary_path(path);
    let result = write_file(&temp, header, payload).and_then(|()| {
        fs::rename(&temp, path).map_err(|e| SearchError::io(path, e))?;
        sync_parent(path);
        Ok(())
    });
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn write_file(
    temp: &Path,
    header: Header,
    payload: impl FnOnce(&mut PayloadWriter) -> std::io::Result<()>,
) -> SearchResult<()> {
    let io = |e| SearchError::io(temp, e);
    let file = File::create(temp).map_err(io)?;
    let mut writer = PayloadWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: crc32fast::Hasher::new(),
        written: 0,
    };
    writer.inner.write_all(&[0u8; HEADER_LEN]).map_err(io)?;
    payload(&mut writer).map_err(io)?;
    if writer.written != header.payload_len {
        return Err(SearchError::backend(
            "save",
            format!(
                "wrote {} payload bytes where the header promises {}",
                writer.written, header.payload_len
            ),
        ));
    }
    let crc = writer.hasher.finalize();
    let mut file = writer.inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(&header.encode(crc)).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Makes the rename durable where the platform allows syncing a folder (best effort).
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
}

/// Reads an index file's payload, checksumming it as it goes.
pub(crate) struct PayloadReader {
    path: PathBuf,
    inner: BufReader<File>,
    hasher: crc32fast::Hasher,
    remaining: u64,
    expected_crc: u32,
}

impl PayloadReader {
    /// The error for a payload whose contents do not hold together.
    pub(crate) fn damaged(&self, detail: impl Into<String>) -> SearchError {
        SearchError::damaged(&self.path, detail)
    }

    /// Fills `buffer` from the payload.
    pub(crate) fn take(&mut self, buffer: &mut [u8]) -> SearchResult<()> {
        if buffer.len() as u64 > self.remaining {
            return Err(SearchError::damaged(
                &self.path,
                "the payload is shorter than its contents need",
            ));
        }
        self.inner
            .read_exact(buffer)
            .map_err(|e| SearchError::io(&self.path, e))?;
        self.hasher.update(buffer);
        self.remaining -= buffer.len() as u64;
        Ok(())
    }

    /// Fills `values` with little-endian u64s from the payload.
    pub(crate) fn take_u64s(&mut self, values: &mut [u64]) -> SearchResult<()> {
        self.take(bytemuck::cast_slice_mut(values))?;
        if cfg!(target_endian = "big") {
            values.iter_mut().for_each(|v| *v = u64::from_le(*v));
        }
        Ok(())
    }

    /// Fills `values` with little-endian f32s from the payload.
    pub(crate) fn take_f32s(&mut self, values: &mut [f32]) -> SearchResult<()> {
        self.take(bytemuck::cast_slice_mut(values))?;
        if cfg!(target_endian = "big") {
            values
                .iter_mut()
                .for_each(|v| *v = f32::from_bits(u32::from_le(v.to_bits())));
        }
        Ok(())
    }

    /// Checks that the whole payload was read and that its checksum matches the header's.
    pub(crate) fn finish(self) -> SearchResult<()> {
        if self.remaining != 0 {
            return Err(SearchError::damaged(
                &self.path,
                format!("{} payload bytes left unread", self.remaining),
            ));
        }
        let crc = self.hasher.finalize();
        if crc != self.expected_crc {
            return Err(SearchError::damaged(
                &self.path,
                format!(
                    "payload checksum {crc:08x} does not match the header's {:08x}",
                    self.expected_crc
                ),
            ));
        }
        Ok(())
    }
}

/// Opens an index file and checks its header: it must hold `kind` (any kind when `None`) with
/// `dimensions`-dimensional vectors.
pub(crate) fn open(
    path: &Path,
    kind: Option<IndexKind>,
    dimensions: usize,
) -> SearchResult<(Header, PayloadReader)> {
    let io = |e| SearchError::io(path, e);
    let file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut inner = BufReader::with_capacity(1 << 20, file);
    let mut bytes = Vec::with_capacity(HEADER_LEN);
    (&mut inner)
        .take(HEADER_LEN as u64)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let header = parse_header(path, &bytes)?;
    check_expected(path, &header, kind, dimensions)?;
    let promised = HEADER_LEN as u64 + header.payload_len;
    if file_len != promised {
        return Err(SearchError::damaged(
            path,
            format!("the file has {file_len} bytes, its header promises {promised}"),
        ));
    }
    let reader = PayloadReader {
        path: path.to_path_buf(),
        inner,
        hasher: crc32fast::Hasher::new(),
        remaining: header.payload_len,
        expected_crc: u32_at(&bytes, 40),
    };
    Ok((header, reader))
}

/// Reads just the header: which kind of index a file holds, its dimension and size.
pub(crate) fn peek(path: &Path) -> SearchResult<Header> {
    let mut bytes = Vec::with_capacity(HEADER_LEN);
    File::open(path)
        .and_then(|f| f.take(HEADER_LEN as u64).read_to_end(&mut bytes))
        .map_err(|e| SearchError::io(path, e))?;
    parse_header(path, &bytes)
}

fn parse_header(path: &Path, bytes: &[u8]) -> SearchResult<Header> {
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] || bytes.is_empty() {
        return Err(SearchError::NotAnIndex {
            path: path.to_path_buf(),
            detail: "it does not start with the index magic bytes".to_string(),
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(SearchError::damaged(
            path,
            format!("only {} of the {HEADER_LEN} header bytes", bytes.len()),
        ));
    }
    let version = u32_at(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(SearchError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if crc32fast::hash(&bytes[0..44]) != u32_at(bytes, 44) {
        return Err(SearchError::damaged(path, "header checksum mismatch"));
    }
    let metric = u32_at(bytes, 16);
    if metric != METRIC_COSINE {
        return Err(SearchError::Mismatch {
            path: path.to_path_buf(),
            detail: format!(
                "uses metric {metric}, but this build only knows cosine ({METRIC_COSINE})"
            ),
            fix: "rebuild the index from the embeddings with this build".to_string(),
        });
    }
    let kind = IndexKind::from_code(u32_at(bytes, 12)).ok_or_else(|| {
        SearchError::damaged(path, format!("unknown index kind {}", u32_at(bytes, 12)))
    })?;
    Ok(Header {
        kind,
        dimensions: u32_at(bytes, 20) as usize,
        count: u64_at(bytes, 24),
        payload_len: u64_at(bytes, 32),
    })
}

fn check_expected(
    path: &Path,
    header: &Header,
    kind: Option<IndexKind>,
    dimensions: usize,
) -> SearchResult<()> {
    if let Some(kind) = kind
        && kind != header.kind
    {
        return Err(SearchError::Mismatch {
            path: path.to_path_buf(),
            detail: format!("holds {}, not {}", header.kind.describe(), kind.describe()),
            fix: format!("load it with {} or SearchIndex::load", header.kind.loader()),
        });
    }
    if header.dimensions != dimensions {
        return Err(SearchError::Mismatch {
            path: path.to_path_buf(),
            detail: format!(
                "holds {}-dimensional vectors, but the caller's embeddings have {dimensions}",
                header.dimensions
            ),
            fix: "rebuild the index from the current embeddings, or point to the index built \
                  for this embedding model"
                .to_string(),
        });
    }
    Ok(())
}
