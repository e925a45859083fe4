//! The approximate index: an HNSW graph (`graph.rs`) of L2-normalised vectors scored by their
//! dot product, stored as 16-bit floats by default (half the memory traffic of a walk) or as
//! f32 ([`Precision`]).
//!
//! Its payload in the index file is the parameters (four u32: connectivity, expansion on add,
//! expansion on search, precision: 0 for f32, 1 for f16) then the graph, which is checked
//! (entry point, link bounds, distinct keys) after the file's checksum has been verified.
//! Removed keys leave their slots in the graph until they outnumber the held ones; the next
//! add then rebuilds the graph from the held vectors.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{SearchError, SearchResult};
use crate::graph::{Graph, Rows};
use crate::persist::{self, Header, IndexKind};
use crate::topk::{TopK, sort_hits};
use crate::vector::normalised;
use crate::{Hit, RESERVED_KEY, VectorIndex, check_key, normalised_batch};

/// HNSW build and search parameters. The defaults reach recall@10 ≥ 0.95 against the exact
/// scan on clustered 128- and 256-dimensional vectors (the tests check 20 000 128-d ones; the
/// bench gives 0.9975 on 1 000 000 256-d ones). Vectors without cluster structure are much
/// harder (Gaussian noise: see docs/benchmarks.md); raise `expansion_search` (or use the exact
/// index) for such data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Neighbours kept per node in the upper layers (HNSW's `M`; the bottom layer keeps twice
    /// as many): more is better recall at a given expansion, more memory and slower inserts.
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
            // On 1 000 000 clustered 256-d vectors (f16, 20 hits rescored, one core), 32
            // links reach recall@10 0.993 in 389 us at expansion 96 and 0.9975 in 414 us at
            // 128, where 16 links needed expansion 192 for 0.995 in 479 us; for 18 % more
            // memory and 15 % more build time: see docs/benchmarks.md.
            connectivity: 32,
            expansion_add: 128,
            // There: 64 gave recall@10 0.983 (291 us), 128 gave 0.9975 (414 us).
            expansion_search: 128,
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

/// Approximate nearest-neighbour search with an HNSW graph.
pub struct HnswIndex {
    /// Boxed: the graph's arrays' headers are large next to an exact index's.
    graph: Box<Graph>,
    params: HnswParams,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("dimensions", &self.dimensions())
            .field("len", &self.graph.len())
            .field("params", &self.params)
            .finish()
    }
}

/// Removed slots the graph keeps before an add rebuilds it (and at least as many as held).
const REBUILD_AFTER: usize = 1024;

impl HnswIndex {
    /// An empty index of `dimensions`-dimensional vectors.
    pub fn new(dimensions: usize, params: HnswParams) -> SearchResult<Self> {
        if dimensions == 0 || u32::try_from(dimensions).is_err() {
            return Err(SearchError::BadDimensions { dimensions });
        }
        if !(2..=256).contains(&params.connectivity) || params.expansion_add == 0 {
            return Err(SearchError::BadParameters {
                detail: format!(
                    "connectivity {} (2 to 256) and expansion on add {} (at least 1); the \
                     defaults are 32 and 128",
                    params.connectivity, params.expansion_add
                ),
            });
        }
        Ok(HnswIndex {
            graph: Box::new(empty_graph(dimensions, &params)),
            params,
        })
    }

    /// The parameters the index was built with (and the search expansion it uses now).
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Changes the candidate-list size of later searches (saved with the index).
    pub fn set_expansion_search(&mut self, expansion_search: usize) {
        self.params.expansion_search = expansion_search;
    }

    fn query(&self, query: &[f32]) -> SearchResult<Vec<f32>> {
        normalised(query, self.dimensions(), || "the query".to_string())
    }

    /// Inserts normalised vectors of new, distinct keys, first rebuilding the graph when
    /// removed slots outnumber held ones.
    fn insert(&mut self, items: Vec<(u64, &[f32])>) -> SearchResult<()> {
        let slots = self.graph.len() + self.graph.removed() + items.len();
        if slots >= u32::MAX as usize {
            return Err(SearchError::TooMany { count: slots });
        }
        if self.graph.removed() > REBUILD_AFTER.max(self.graph.len()) {
            let (keys, vectors) = self.graph.live();
            let mut graph = empty_graph(self.dimensions(), &self.params);
            let held: Vec<(u64, &[f32])> = keys
                .iter()
                .copied()
                .zip(vectors.chunks_exact(self.dimensions()))
                .collect();
            graph.insert(&held, self.params.threads());
            *self.graph = graph;
        }
        self.graph.insert(&items, self.params.threads());
        Ok(())
    }

    fn hits(found: Vec<(u64, f32)>) -> Vec<Hit> {
        let mut hits: Vec<Hit> = found
            .into_iter()
            .map(|(key, score)| Hit { key, score })
            .collect();
        sort_hits(&mut hits);
        hits
    }
}

fn empty_graph(dimensions: usize, params: &HnswParams) -> Graph {
    let rows = match params.precision {
        Precision::F32 => Rows::F32(Vec::new()),
        Precision::F16 => Rows::F16(Vec::new()),
    };
    Graph::new(dimensions, params.connectivity, params.expansion_add, rows)
}

impl VectorIndex for HnswIndex {
    fn dimensions(&self) -> usize {
        self.graph.dimensions()
    }

    fn len(&self) -> usize {
        self.graph.len()
    }

    fn contains(&self, key: u64) -> bool {
        self.graph.contains(key)
    }

    fn add(&mut self, key: u64, vector: &[f32]) -> SearchResult<()> {
        check_key(key)?;
        let unit = normalised(vector, self.dimensions(), || {
            format!("the vector for key {key}")
        })?;
        self.graph.remove(key);
        self.insert(vec![(key, &unit)])
    }

    fn add_many(&mut self, keys: &[u64], vectors: &[f32]) -> SearchResult<()> {
        let d = self.dimensions();
        let units = normalised_batch(keys, vectors, d)?;
        // A key given twice keeps its last vector, as if added one by one.
        let last: HashMap<u64, usize> = keys.iter().enumerate().map(|(i, &k)| (k, i)).collect();
        let mut items = Vec::with_capacity(last.len());
        for (i, (&key, unit)) in keys.iter().zip(units.chunks_exact(d)).enumerate() {
            if last[&key] == i {
                self.graph.remove(key);
                items.push((key, unit));
            }
        }
        self.insert(items)
    }

    fn remove(&mut self, key: u64) -> SearchResult<bool> {
        Ok(self.graph.remove(key))
    }

    fn search(&self, query: &[f32], k: usize) -> SearchResult<Vec<Hit>> {
        let query = self.query(query)?;
        let found = self
            .graph
            .search(&query, k, self.params.expansion_search, None);
        Ok(Self::hits(found))
    }

    /// Filters during the graph traversal: nodes that `allow` refuses are walked through but
    /// never returned, and the walk goes on until it holds `expansion_search` allowed hits (or
    /// runs out of graph). That keeps recall under a selective filter but costs time as the
    /// filter narrows (see docs/benchmarks.md); for a subset of known keys,
    /// [`VectorIndex::search_among`] is exact and cheaper.
    fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        allow: &dyn Fn(u64) -> bool,
    ) -> SearchResult<Vec<Hit>> {
        let query = self.query(query)?;
        let found = self
            .graph
            .search(&query, k, self.params.expansion_search, Some(allow));
        Ok(Self::hits(found))
    }

    /// Scores every candidate's stored vector: exact like [`crate::ExactIndex::search_among`]
    /// with f32 storage; with f16, every candidate is scored, but from its rounded vector.
    fn search_among(&self, query: &[f32], k: usize, candidates: &[u64]) -> SearchResult<Vec<Hit>> {
        let query = self.query(query)?;
        let mut top = TopK::new(k);
        for &key in candidates {
            if let Some(score) = self.graph.score_key(&query, key) {
                top.push_unique(Hit { key, score });
            }
        }
        Ok(top.into_sorted())
    }

    fn memory_bytes(&self) -> usize {
        self.graph.memory_bytes()
    }

    fn save(&self, path: &Path) -> SearchResult<()> {
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
            payload_len: size_of_val(&params) as u64 + self.graph.encoded_len(),
        };
        persist::save(path, header, |out| {
            params.iter().try_for_each(|p| out.put(&p.to_le_bytes()))?;
            self.graph.write(out)
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
        let mut hnsw = HnswIndex::new(dimensions, params)
            .map_err(|e| SearchError::damaged(path, e.to_string()))?;
        let left = header.payload_len.saturating_sub(raw.len() as u64);
        let graph = empty_graph(dimensions, &params).read(&mut payload, left)?;
        payload.finish()?;
        *hnsw.graph = graph;
        hnsw.graph
            .check(RESERVED_KEY)
            .map_err(|detail| SearchError::damaged(path, detail))?;
        if hnsw.len() as u64 != header.count {
            return Err(SearchError::damaged(
                path,
                "the graph holds another number of keys than the header says",
            ));
        }
        Ok(hnsw)
    }
}
