//! Owns atelier's nearest-neighbour search over image embeddings: an exact scan and an
//! approximate (HNSW) index behind one trait, both with filters, add/remove and index files.
//!
//! It knows nothing of the catalogue, the database or the networks: callers pass `u64` keys
//! (mapping their image ids to keys themselves) and `f32` vectors of a fixed dimension per index.
//!
//! **Vectors.** The index L2-normalises every vector it is given, on add and on search, so
//! callers pass raw embeddings; a vector of the wrong length, with NaN or infinite values or of
//! zero length is refused. Similarity is the dot product of the normalised vectors (cosine), in
//! `[-1, 1]`, higher is closer. Results are ordered by score, then by key, so equal scores come
//! back in a deterministic order. Every `u64` is a valid key except `u64::MAX`, which both
//! indexes refuse (it marks "no key").
//!
//! **Which index.** [`ExactIndex`] scans every vector (contiguous f32 storage, a dot product
//! with AVX2 and FMA where the processor has them, a bounded top-k heap); [`HnswIndex`] walks
//! an HNSW graph of vectors stored as 16-bit floats (or f32, [`Precision`]).
//! [`SearchIndex`] holds either, chosen by size against [`SearchConfig::ann_threshold`].
//! Filtering by facet is [`VectorIndex::search_among`] over the caller's candidate keys, which
//! scores every candidate in both indexes (a scan over the subset, the intended way up to a few
//! hundred thousand images; exact in the exact index), or [`VectorIndex::search_filtered`]
//! with a predicate, which the HNSW index applies during its traversal. A caller that keeps
//! the f32 vectors asks the walk for [`rescore_pool`] hits and gives them exact
//! scores with [`ExactIndex::rescore`]. A caller that ranks by cosine plus a bias of its own
//! per stored vector (atelier's hubness correction) scans with
//! [`ExactIndex::search_positions_biased`] and rescores with [`ExactIndex::rescore_biased`].
//!
//! **Why a graph of its own.** The approximate index is atelier's own HNSW (`graph.rs`)
//! rather than a crate's, for speed. The best crate measured, `usearch` (`hnsw_rs` cannot
//! remove keys and builds 5-10x slower), answers at 0.8-1.0x the queries per second of FAISS's
//! HNSW at equal recall on a million clustered vectors: its walk follows a pointer per node
//! and per vector, prefetches nothing, and its new nodes take half as many bottom-layer links
//! as FAISS's. This graph keeps vectors and links in flat arrays, prefetches a candidate's
//! neighbours all at once and links new nodes as FAISS does; on 1 000 000 clustered 256-d and
//! 372-d vectors (2-core machine, one query thread) it answers at 1.1-1.5x FAISS's queries per
//! second at equal recall from 0.95 up, with either connectivity, builds in 0.77-0.81x FAISS's
//! time and holds 0.61-0.65x its memory (`docs/benchmarks.md`; on Gaussian noise it builds
//! 1.7x slower).
//! - filtering during traversal: a predicate; refused nodes are walked through but not
//!   returned, and the walk goes on until it has `expansion_search` allowed hits, so it keeps
//!   recall under a filter (0.999 with 10 % allowed, where FAISS's HNSW gets 0.85-0.995),
//!   paying for it in time;
//! - removal marks a node (walks pass through it); the graph is rebuilt from the held vectors
//!   when removed nodes outnumber held ones;
//! - persistence: the graph's arrays in the checksummed file, checked (entry point, link
//!   bounds, distinct keys) before use;
//! - pure Rust: no C++ compiler needed, and a predicate that panics unwinds like any other.
//!
//! A graph built on several threads (`add_many`) depends on their timing, so its approximate
//! results can differ slightly from build to build; a loaded index answers like the saved one.
//!
//! **Files.** [`VectorIndex::save`] writes a header (format version, kind, metric,
//! dimension, count, checksums) and the index under a temporary name, then renames it over the
//! target; [`VectorIndex::load`] refuses damaged or mismatched files with a [`SearchError`]
//! that names the file and the fix. The layout is in `persist.rs`.
//!
//! Modules: `vector` (normalising, dot products), `topk` (bounded heap), `exact`, `graph` (the
//! HNSW graph), `hnsw` (the index around it),
//! `persist` (the file format), `error`.

mod error;
mod exact;
mod graph;
mod hnsw;
mod persist;
mod topk;
mod vector;

use std::path::Path;

pub use error::{ErrorKind, SearchError, SearchResult};
pub use exact::ExactIndex;
pub use hnsw::{HnswIndex, HnswParams, Precision};
pub use persist::{FORMAT_VERSION, IndexKind};

/// The one key no index accepts (kept free as a marker for "no key").
pub const RESERVED_KEY: u64 = u64::MAX;

/// How many hits to ask an approximate search (an [`HnswIndex`] walk, or pgvector's) for when
/// the caller scores them again from f32 copies ([`ExactIndex::rescore`]) and keeps the best
/// `k`: twice `k`, and at least `k + 10`. The rounding of 16-bit vectors reorders close
/// neighbours, so the walk's own top `k` misses some true ones that its candidate list holds
/// (recall@10 0.9995 -> 0.9999 on 100 000 clustered 128-d vectors at expansion 64), and a
/// caller that adds its own per-vector bias to the scores reorders them too. With the search
/// expansion at least that large, the walk itself is no longer.
pub fn rescore_pool(k: usize) -> usize {
    k.saturating_mul(2).max(k.saturating_add(10))
}

/// One search result: a key and its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub key: u64,
    /// Dot product of the normalised query and stored vector, in `[-1, 1]`.
    pub score: f32,
}

/// What every index does. Vectors and queries are normalised by the index (see the crate docs).
pub trait VectorIndex: Send + Sync {
    /// Length of every vector the index holds.
    fn dimensions(&self) -> usize;

    /// Number of keys held.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn contains(&self, key: u64) -> bool;

    /// Adds `key`, replacing its vector if the key is present.
    fn add(&mut self, key: u64, vector: &[f32]) -> SearchResult<()>;

    /// Adds `keys[i]` with `vectors[i * d..(i + 1) * d]` for every `i` (replacing present keys;
    /// a key given twice keeps its last vector). Every vector is checked before any is added.
    fn add_many(&mut self, keys: &[u64], vectors: &[f32]) -> SearchResult<()>;

    /// Removes `key`; says whether it was present.
    fn remove(&mut self, key: u64) -> SearchResult<bool>;

    /// The `k` keys most similar to `query`, best first.
    fn search(&self, query: &[f32], k: usize) -> SearchResult<Vec<Hit>>;

    /// Like [`VectorIndex::search`], over the keys that `allow` accepts.
    fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        allow: &dyn Fn(u64) -> bool,
    ) -> SearchResult<Vec<Hit>>;

    /// The `k` best of `candidates` (exact in every index; keys not held are skipped, and a key
    /// given twice counts once).
    fn search_among(&self, query: &[f32], k: usize, candidates: &[u64]) -> SearchResult<Vec<Hit>>;

    /// Approximate bytes of memory held.
    fn memory_bytes(&self) -> usize;

    /// Writes the index to `path` atomically (temporary file, then rename).
    fn save(&self, path: &Path) -> SearchResult<()>;

    /// Reads an index written by `save`, which must hold `dimensions`-dimensional vectors.
    fn load(path: &Path, dimensions: usize) -> SearchResult<Self>
    where
        Self: Sized;
}

/// How [`SearchIndex`] chooses and builds its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchConfig {
    /// Collections of at least this many vectors get the HNSW index, smaller ones the exact
    /// scan. Default 200 000: one query scans 200 000 256-d vectors in about 10 ms on one core
    /// (the scan is bound by memory bandwidth, about 20 GB/s), while building an HNSW graph of
    /// 100 000 of them took 40-80 s on two shared cores.
    pub ann_threshold: usize,
    /// A filtered query that leaves at most this many candidates scores them exactly (the
    /// HNSW index's `search_among`) instead of walking the graph past every key the filter
    /// refuses. Default 20 000: on 2 cores, 128-d, scoring 10 000 allowed keys of 100 000 took
    /// 0.62 ms against 2.5 ms for the filtered walk, 100 000 of 1 000 000 took 42 ms against
    /// 8.6 ms, and a narrower filter only slows the walk.
    pub exact_below: usize,
    pub hnsw: HnswParams,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            ann_threshold: 200_000,
            exact_below: 20_000,
            hnsw: HnswParams::default(),
        }
    }
}

/// An exact or an HNSW index, chosen by size; also loads either kind of file.
#[derive(Debug)]
pub enum SearchIndex {
    Exact(ExactIndex),
    Hnsw(HnswIndex),
}

impl SearchIndex {
    /// An empty index suited to a collection of `expected_len` vectors.
    pub fn for_size(
        config: &SearchConfig,
        dimensions: usize,
        expected_len: usize,
    ) -> SearchResult<Self> {
        if dimensions == 0 || u32::try_from(dimensions).is_err() {
            return Err(SearchError::BadDimensions { dimensions });
        }
        if expected_len >= config.ann_threshold {
            Ok(SearchIndex::Hnsw(HnswIndex::new(dimensions, config.hnsw)?))
        } else {
            Ok(SearchIndex::Exact(ExactIndex::with_capacity(
                dimensions,
                expected_len,
            )))
        }
    }

    /// An index of `keys` and their `vectors` (row-major), chosen by their number.
    pub fn build(
        config: &SearchConfig,
        dimensions: usize,
        keys: &[u64],
        vectors: &[f32],
    ) -> SearchResult<Self> {
        let mut index = Self::for_size(config, dimensions, keys.len())?;
        index.add_many(keys, vectors)?;
        Ok(index)
    }

    pub fn kind(&self) -> IndexKind {
        match self {
            SearchIndex::Exact(_) => IndexKind::Exact,
            SearchIndex::Hnsw(_) => IndexKind::Hnsw,
        }
    }

    fn inner(&self) -> &dyn VectorIndex {
        match self {
            SearchIndex::Exact(index) => index,
            SearchIndex::Hnsw(index) => index,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn VectorIndex {
        match self {
            SearchIndex::Exact(index) => index,
            SearchIndex::Hnsw(index) => index,
        }
    }
}

impl VectorIndex for SearchIndex {
    fn dimensions(&self) -> usize {
        self.inner().dimensions()
    }

    fn len(&self) -> usize {
        self.inner().len()
    }

    fn contains(&self, key: u64) -> bool {
        self.inner().contains(key)
    }

    fn add(&mut self, key: u64, vector: &[f32]) -> SearchResult<()> {
        self.inner_mut().add(key, vector)
    }

    fn add_many(&mut self, keys: &[u64], vectors: &[f32]) -> SearchResult<()> {
        self.inner_mut().add_many(keys, vectors)
    }

    fn remove(&mut self, key: u64) -> SearchResult<bool> {
        self.inner_mut().remove(key)
    }

    fn search(&self, query: &[f32], k: usize) -> SearchResult<Vec<Hit>> {
        self.inner().search(query, k)
    }

    fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        allow: &dyn Fn(u64) -> bool,
    ) -> SearchResult<Vec<Hit>> {
        self.inner().search_filtered(query, k, allow)
    }

    fn search_among(&self, query: &[f32], k: usize, candidates: &[u64]) -> SearchResult<Vec<Hit>> {
        self.inner().search_among(query, k, candidates)
    }

    fn memory_bytes(&self) -> usize {
        self.inner().memory_bytes()
    }

    fn save(&self, path: &Path) -> SearchResult<()> {
        self.inner().save(path)
    }

    /// Loads whichever kind of index the file holds.
    fn load(path: &Path, dimensions: usize) -> SearchResult<Self> {
        match persist::peek(path)?.kind {
            IndexKind::Exact => Ok(SearchIndex::Exact(ExactIndex::load(path, dimensions)?)),
            IndexKind::Hnsw => Ok(SearchIndex::Hnsw(HnswIndex::load(path, dimensions)?)),
        }
    }
}

pub(crate) fn check_key(key: u64) -> SearchResult<()> {
    if key == RESERVED_KEY {
        return Err(SearchError::ReservedKey { key });
    }
    Ok(())
}

/// Checks a batch for [`VectorIndex::add_many`] and returns its vectors normalised, row-major.
pub(crate) fn normalised_batch(
    keys: &[u64],
    vectors: &[f32],
    dimensions: usize,
) -> SearchResult<Vec<f32>> {
    if Some(vectors.len()) != keys.len().checked_mul(dimensions) {
        return Err(SearchError::BatchLength {
            keys: keys.len(),
            values: vectors.len(),
            dimensions,
        });
    }
    let mut units = Vec::with_capacity(vectors.len());
    for (&key, vector) in keys.iter().zip(vectors.chunks_exact(dimensions)) {
        check_key(key)?;
        let unit = vector::normalised(vector, dimensions, || format!("the vector for key {key}"))?;
        units.extend_from_slice(&unit);
    }
    Ok(units)
}
