//! The approximate index: an HNSW graph kept by usearch, with the inner product of
//! L2-normalised vectors (so usearch's distance is `1 - cosine`), stored as 16-bit floats by
//! default (half the memory traffic of a walk: on 100 000 clustered 128-d vectors, p50 100 us
//! instead of 177 us, recall@10 0.9995 instead of 1.000) or as f32 ([`Precision`]).
//!
//! Saving and loading hold the serialised graph in memory next to the index (about twice the
//! index's memory at that moment).
//!
//! usearch serves each concurrent call from one of a fixed number of per-thread contexts and
//! fails a call that finds none free; a [`Gate`] makes callers wait for one instead. Its payload
//! in the index file is the parameters (four u32: connectivity, expansion on add, expansion on
//! search, precision: 0 for f32, 1 for f16) then usearch's own serialisation, which is handed to usearch only after the
//! file's checksum has been verified.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Condvar, Mutex, PoisonError};

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::error::{SearchError, SearchResult};
use crate::persist::{self, Header, IndexKind};
use crate::topk::{TopK, sort_hits};
use crate::vector::{dot, normalised};
use crate::{Hit, VectorIndex, check_key, normalised_batch};

/// HNSW build and search parameters. The defaults reach recall@10 ≥ 0.95 against the exact
/// scan on clustered 128- and 256-dimensional vectors (the tests check 20 000 128-d ones; the
/// bench gives 1.00 on 100 000 256-d ones). Vectors without cluster structure are much harder:
/// on 100 000 256-d Gaussian noise vectors recall@10 is 0.11 (FAISS's HNSW with the same
/// parameters: 0.12); raise `expansion_search` (or use the exact index) for such data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Neighbours kept per node and layer (HNSW's `M`): more is better recall, more memory and
    /// slower inserts.
    pub connectivity: usize,
    /// Candidate-list size while inserting (`efConstruction`): more is a better graph and
    /// slower inserts.
    pub expansion_add: usize,
    /// Candidate-list size while searching (`ef`), raised to `k` when `k` is larger: more is
    /// better recall and slower queries.
    pub expansion_search: usize,
    /// How the graph stores its vectors (and scores them while walking).
    pub precision: Precision,
    /// Threads [`VectorIndex::add_many`] inserts with; 0 means one per core. Not saved.
    pub build_threads: usize,
}

/// The number format of the vectors an HNSW graph stores and walks with. Queries come in as
/// f32 either way; with f16 the scores of a walk are rounded to about three decimal places
/// (a caller holding the f32 vectors can score its hits again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    F32,
    #[default]
    F16,
}

impl Precision {
    /// The number the index file stores.
    fn code(self) -> u32 {
        match self {
            Precision::F32 => 0,
            Precision::F16 => 1,
        }
    }

    fn from_code(code: u32) -> Option<Precision> {
        match code {
            0 => Some(Precision::F32),
            1 => Some(Precision::F16),
            _ => None,
        }
    }
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            connectivity: 16,
            expansion_add: 128,
            // On 1 000 000 clustered 128-d vectors (f16, 20 hits rescored), 64 gave recall@10
            // 0.91 (p50 264 us), 128 gave 0.983 (385 us) and 256 gave 0.996 (551 us, one
            // core): see docs/benchmarks.md.
            expansion_search: 256,
            precision: Precision::default(),
            build_threads: 0,
        }
    }
}

impl HnswParams {
    fn threads(&self) -> usize {
        match self.build_threads {
            0 => cores(),
            n => n,
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Lets at most a fixed number of callers into usearch at once.
struct Gate {
    free: Mutex<usize>,
    freed: Condvar,
}

struct Pass<'a>(&'a Gate);

impl Gate {
    fn new(contexts: usize) -> Self {
        Gate {
            free: Mutex::new(contexts),
            freed: Condvar::new(),
        }
    }

    fn enter(&self) -> Pass<'_> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        Pass(self)
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.freed.notify_one();
    }
}

/// Approximate nearest-neighbour search with an HNSW graph (usearch).
pub struct HnswIndex {
    index: Index,
    params: HnswParams,
    /// Per-thread contexts reserved in usearch; the gate hands them out.
    contexts: usize,
    gate: Gate,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("dimensions", &self.index.dimensions())
            .field("len", &self.index.size())
            .field("params", &self.params)
            .finish()
    }
}

impl HnswIndex {
    /// An empty index of `dimensions`-dimensional vectors.
    pub fn new(dimensions: usize, params: HnswParams) -> SearchResult<Self> {
        if dimensions == 0 || u32::try_from(dimensions).is_err() {
            return Err(SearchError::BadDimensions { dimensions });
        }
        let index = Index::new(&options(dimensions, &params))
            .map_err(|e| SearchError::backend("create", e))?;
        let contexts = cores().max(params.threads());
        let hnsw = HnswIndex {
            index,
            params,
            contexts,
            gate: Gate::new(contexts),
        };
        hnsw.reserve(1024)?;
        Ok(hnsw)
    }

    /// The parameters the index was built with (and the search expansion it uses now).
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Changes the candidate-list size of later searches (saved with the index).
    pub fn set_expansion_search(&mut self, expansion_search: usize) {
        self.index.change_expansion_search(expansion_search);
        self.params.expansion_search = expansion_search;
    }

    /// Makes room for `capacity` vectors in all.
    fn reserve(&self, capacity: usize) -> SearchResult<()> {
        self.index
            .reserve_capacity_and_threads(capacity, self.contexts)
            .map_err(|e| SearchError::backend("reserve", e))
    }

    /// Makes room for `more` vectors beyond those present, growing at least twofold.
    fn grow_for(&self, more: usize) -> SearchResult<()> {
        let needed = self.index.size() + more;
        let capacity = self.index.capacity();
        if needed <= capacity {
            return Ok(());
        }
        self.reserve(needed.max(capacity * 2))
    }

    /// Inserts normalised vectors from `threads` threads; the keys are new and distinct.
    fn insert_parallel(&self, items: &[(u64, &[f32])], threads: usize) -> SearchResult<()> {
        let chunk = items.len().div_ceil(threads.max(1)).max(1);
        std::thread::scope(|scope| {
            let workers: Vec<_> = items
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter().try_for_each(|&(key, unit)| {
                            self.index
                                .add(key, unit)
                                .map_err(|e| SearchError::backend("add", e))
                        })
                    })
                })
                .collect();
            workers
                .into_iter()
                .try_for_each(|w| w.join().expect("an insert thread panicked"))
        })
    }

    fn query(&self, query: &[f32]) -> SearchResult<Vec<f32>> {
        normalised(query, self.index.dimensions(), || "the query".to_string())
    }

    /// usearch's matches as hits in result order.
    fn hits(matches: usearch::ffi::Matches) -> Vec<Hit> {
        let mut hits: Vec<Hit> = matches
            .keys
            .iter()
            .zip(&matches.distances)
            .map(|(&key, &distance)| Hit {
                key,
                score: 1.0 - distance,
            })
            .collect();
        sort_hits(&mut hits);
        hits
    }
}

fn options(dimensions: usize, params: &HnswParams) -> IndexOptions {
    IndexOptions {
        dimensions,
        metric: MetricKind::IP,
        quantization: match params.precision {
            Precision::F32 => ScalarKind::F32,
            Precision::F16 => ScalarKind::F16,
        },
        connectivity: params.connectivity,
        expansion_add: params.expansion_add,
        expansion_search: params.expansion_search,
        multi: false,
    }
}

impl VectorIndex for HnswIndex {
    fn dimensions(&self) -> usize {
        self.index.dimensions()
    }

    fn len(&self) -> usize {
        self.index.size()
    }

    fn contains(&self, key: u64) -> bool {
        self.index.contains(key)
    }

    fn add(&mut self, key: u64, vector: &[f32]) -> SearchResult<()> {
        check_key(key)?;
        let unit = normalised(vector, self.dimensions(), || {
            format!("the vector for key {key}")
        })?;
        self.remove(key)?;
        self.grow_for(1)?;
        self.index
            .add(key, &unit)
            .map_err(|e| SearchError::backend("add", e))
    }

    fn add_many(&mut self, keys: &[u64], vectors: &[f32]) -> SearchResult<()> {
        let d = self.dimensions();
        let units = normalised_batch(keys, vectors, d)?;
        // A key given twice keeps its last vector, as if added one by one.
        let last: HashMap<u64, usize> = keys.iter().enumerate().map(|(i, &k)| (k, i)).collect();
        let mut items = Vec::with_capacity(last.len());
        for (i, (&key, unit)) in keys.iter().zip(units.chunks_exact(d)).enumerate() {
            if last[&key] == i {
                self.remove(key)?;
                items.push((key, unit));
            }
        }
        self.grow_for(items.len())?;
        self.insert_parallel(&items, self.params.threads().min(self.contexts))
    }

    fn remove(&mut self, key: u64) -> SearchResult<bool> {
        let removed = self
            .index
            .remove(key)
            .map_err(|e| SearchError::backend("remove", e))?;
        Ok(removed > 0)
    }

    fn search(&self, query: &[f32], k: usize) -> SearchResult<Vec<Hit>> {
        let query = self.query(query)?;
        if k == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        let _pass = self.gate.enter();
        let matches = self
            .index
            .search(&query, k)
            .map_err(|e| SearchError::backend("search", e))?;
        Ok(Self::hits(matches))
    }

    /// Filters during the graph traversal: nodes that `allow` refuses are walked through but
    /// never returned, and the walk goes on until `k` allowed hits are found. That keeps recall
    /// (0.98 with 10 % of 100 000 clustered 256-d vectors allowed) but costs time as the filter
    /// gets selective: there it took 4.2 ms, 13x an unfiltered search and 3x the exact index's
    /// filtered scan. For a subset of known keys, [`VectorIndex::search_among`] is exact and cheaper.
    /// `allow` is called from usearch's C++ code: it must not panic (that aborts the process).
    fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        allow: &dyn Fn(u64) -> bool,
    ) -> SearchResult<Vec<Hit>> {
        let query = self.query(query)?;
        if k == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        let _pass = self.gate.enter();
        let matches = self
            .index
            .filtered_search(&query, k, allow)
            .map_err(|e| SearchError::backend("filtered search", e))?;
        Ok(Self::hits(matches))
    }

    /// Scores every candidate's stored vector, at the cost of one lookup and copy per
    /// candidate: exact like [`crate::ExactIndex::search_among`] with f32 storage; with f16,
    /// every candidate is scored, but from its rounded vector.
    fn search_among(&self, query: &[f32], k: usize, candidates: &[u64]) -> SearchResult<Vec<Hit>> {
        let query = self.query(query)?;
        let mut top = TopK::new(k);
        let mut row = vec![0f32; query.len()];
        for &key in candidates {
            let found = self
                .index
                .get(key, &mut row)
                .map_err(|e| SearchError::backend("get", e))?;
            if found > 0 {
                top.push_unique(Hit {
                    key,
                    score: dot(&row, &query),
                });
            }
        }
        Ok(top.into_sorted())
    }

    fn memory_bytes(&self) -> usize {
        self.index.memory_usage()
    }

    fn save(&self, path: &Path) -> SearchResult<()> {
        let mut bytes = vec![0u8; self.index.serialized_length()];
        self.index
            .save_to_buffer(&mut bytes)
            .map_err(|e| SearchError::backend("save", e))?;
        let params = [
            self.params.connectivity as u32,
            self.params.expansion_add as u32,
            self.params.expansion_search as u32,
            self.params.precision.code(),
        ];
        let header = Header {
            kind: IndexKind::Hnsw,
            dimensions: self.dimensions(),
            count: self.len() as u64,
            payload_len: (size_of_val(&params) + bytes.len()) as u64,
        };
        persist::save(path, header, |out| {
            params.iter().try_for_each(|p| out.put(&p.to_le_bytes()))?;
            out.put(&bytes)
        })
    }

    fn load(path: &Path, dimensions: usize) -> SearchResult<Self> {
        let (header, mut payload) = persist::open(path, Some(IndexKind::Hnsw), dimensions)?;
        let mut raw = [0u8; 16];
        payload.take(&mut raw)?;
        let field = |i: usize| u32::from_le_bytes(raw[i * 4..i * 4 + 4].try_into().unwrap());
        let precision = Precision::from_code(field(3)).ok_or_else(|| {
            SearchError::damaged(path, format!("unknown vector precision {}", field(3)))
        })?;
        let params = HnswParams {
            connectivity: field(0) as usize,
            expansion_add: field(1) as usize,
            expansion_search: field(2) as usize,
            precision,
            build_threads: 0,
        };
        let graph_len = header
            .payload_len
            .checked_sub(raw.len() as u64)
            .ok_or_else(|| SearchError::damaged(path, "the payload is too short for a graph"))?;
        let mut bytes = vec![0u8; graph_len as usize];
        payload.take(&mut bytes)?;
        payload.finish()?;
        let hnsw = HnswIndex::new(dimensions, params)?;
        hnsw.index
            .load_from_buffer(&bytes)
            .map_err(|e| SearchError::damaged(path, format!("usearch refused it: {e}")))?;
        hnsw.reserve(hnsw.index.capacity().max(hnsw.index.size()))?;
        if hnsw.dimensions() != dimensions || hnsw.len() as u64 != header.count {
            return Err(SearchError::damaged(
                path,
                "the graph's size or dimension differs from the header's",
            ));
        }
        Ok(hnsw)
    }
}
