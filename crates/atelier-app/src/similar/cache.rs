//! In-process copies of what similarity queries read: the current labels of every active
//! image as a compact table, and a run's vectors (in key order, plus the approximate index
//! opened from its files for large runs), joined row by row. Each copy is kept while the
//! catalogue's change counter for it stays put (one primary-key read per query); a write from
//! this process or any other sharing the database moves the counter, and the next query
//! reloads.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use atelier_catalog::{Catalog, LABELS_COUNTER, LabelCondition, RunRecord, embeddings_counter};
use atelier_search::{ExactIndex, Hit, HnswIndex, VectorIndex, rescore_pool};

use crate::ann::IndexFiles;
use crate::error::AppError;
use crate::similarity::stored_biases;

/// Runs (embedding keys) whose vectors stay loaded at once; the least recently used goes.
const RUNS_KEPT: usize = 4;

/// A label code that no image has (an unknown label in a condition).
const NO_LABEL: u16 = u16::MAX;
/// A key whose image is not active (or was removed from the index).
const NO_ROW: u32 = u32::MAX;

/// The current labels of the active images: per image a row of label codes, one per facet.
pub(super) struct LabelTable {
    facets: Vec<String>,
    /// Per facet, the label of each code.
    names: Vec<Vec<String>>,
    /// Row-major: the code of image row `r`, facet `f` at `r * facets + f` (`NO_LABEL`: none).
    codes: Vec<u16>,
    row_of: HashMap<String, u32>,
    /// Per facet and label code, the rows that carry it, in row order.
    rows_with: Vec<Vec<Vec<u32>>>,
}

/// The change counters that a query's copies are checked against.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamps {
    /// The labels counter.
    pub(super) labels: i64,
    /// The counter of the query's embedding key.
    pub(super) vectors: i64,
}

/// A condition on a facet's label code.
pub(super) struct Condition {
    facet: usize,
    code: u16,
    keep: bool,
}

impl LabelTable {
    fn build(labels: HashMap<String, BTreeMap<String, String>>) -> LabelTable {
        let facets: Vec<String> = labels
            .values()
            .flat_map(|l| l.keys().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut names: Vec<Vec<String>> = vec![Vec::new(); facets.len()];
        let mut code_of: Vec<HashMap<String, u16>> = vec![HashMap::new(); facets.len()];
        let mut codes = Vec::with_capacity(labels.len() * facets.len());
        let mut row_of = HashMap::with_capacity(labels.len());
        for (row, (id, image)) in labels.into_iter().enumerate() {
            for (f, facet) in facets.iter().enumerate() {
                let code = image.get(facet).map_or(NO_LABEL, |label| {
                    *code_of[f].entry(label.clone()).or_insert_with(|| {
                        names[f].push(label.clone());
                        (names[f].len() - 1) as u16
                    })
                });
                codes.push(code);
            }
            row_of.insert(id, row as u32);
        }
        let mut rows_with: Vec<Vec<Vec<u32>>> =
            names.iter().map(|n| vec![Vec::new(); n.len()]).collect();
        for (at, &code) in codes.iter().enumerate() {
            if code != NO_LABEL {
                rows_with[at % facets.len()][code as usize].push((at / facets.len()) as u32);
            }
        }
        LabelTable {
            facets,
            names,
            codes,
            row_of,
            rows_with,
        }
    }

    /// `conditions` as codes; a facet or label no active image has matches nothing.
    pub(super) fn compile(&self, conditions: &[LabelCondition]) -> Vec<Condition> {
        conditions
            .iter()
            .map(|c| {
                let facet = self.facets.iter().position(|f| *f == c.facet);
                let code = facet
                    .and_then(|f| self.names[f].iter().position(|l| *l == c.label))
                    .map_or(NO_LABEL, |code| code as u16);
                Condition {
                    facet: facet.unwrap_or(usize::MAX),
                    code,
                    keep: c.keep,
                }
            })
            .collect()
    }

    /// Whether some active image carries the condition's label of its facet.
    pub(super) fn knows(&self, condition: &LabelCondition) -> bool {
        self.facets
            .iter()
            .position(|f| *f == condition.facet)
            .is_some_and(|f| self.names[f].contains(&condition.label))
    }

    /// The rows that can meet `conditions`: those with the rarest label a condition keeps
    /// (`None`: no condition keeps a label, every row may).
    fn rows_to_check(&self, conditions: &[Condition]) -> Option<&[u32]> {
        conditions
            .iter()
            .filter(|c| c.keep)
            .map(|c| {
                self.rows_with
                    .get(c.facet)
                    .and_then(|labels| labels.get(c.code as usize))
                    .map_or(&[][..], Vec::as_slice)
            })
            .min_by_key(|rows| rows.len())
    }

    /// Whether image row `row` meets every condition.
    pub(super) fn passes(&self, row: u32, conditions: &[Condition]) -> bool {
        let start = row as usize * self.facets.len();
        conditions.iter().all(|c| {
            let have = match c.facet {
                usize::MAX => NO_LABEL,
                f => self.codes[start + f],
            };
            (have != NO_LABEL && have == c.code) == c.keep
        })
    }

    /// The row of an active image.
    pub(super) fn row(&self, id: &str) -> Option<u32> {
        self.row_of.get(id).copied()
    }

    /// How many active images meet `conditions`, `exclude` left out.
    /// Only the rows with the rarest kept label are checked, in row order.
    pub(super) fn count(&self, conditions: &[Condition], exclude: Option<u32>) -> usize {
        let counts = |row: &u32| Some(*row) != exclude && self.passes(*row, conditions);
        match self.rows_to_check(conditions) {
            Some(rows) => rows.iter().filter(|row| counts(row)).count(),
            None => (0..self.row_of.len() as u32).filter(counts).count(),
        }
    }

    /// An active image's labels by facet.
    pub(super) fn labels_of(&self, id: &str) -> BTreeMap<String, String> {
        let Some(row) = self.row(id) else {
            return BTreeMap::new();
        };
        let start = row as usize * self.facets.len();
        self.facets
            .iter()
            .enumerate()
            .filter_map(|(f, facet)| {
                let code = self.codes[start + f];
                (code != NO_LABEL).then(|| (facet.clone(), self.names[f][code as usize].clone()))
            })
            .collect()
    }
}

/// A run's vectors under one embedding key.
enum Vectors {
    Exact(ExactIndex),
    /// The HNSW graph for wide filters, and the same vectors in key order, scanned for narrow
    /// ones (the graph holds 16-bit vectors behind a key lookup each: a flat f32 copy scans
    /// faster and scores exactly).
    Approximate {
        graph: HnswIndex,
        flat: ExactIndex,
    },
}

impl Vectors {
    /// The vectors in key order (the whole run either way).
    fn flat(&self) -> &ExactIndex {
        match self {
            Vectors::Exact(flat) | Vectors::Approximate { flat, .. } => flat,
        }
    }
}

struct RunVectors {
    /// The image of each key (`None`: removed from the approximate index).
    ids: Vec<Option<String>>,
    /// The position of each key's vector in the flat copy.
    position: Vec<Option<usize>>,
    vectors: Vectors,
    /// By position in the flat copy, the hubness bias a search adds to the vector's cosine
    /// (empty: the run ranks by plain cosine).
    bias: Vec<f32>,
}

/// A run's vectors joined with the label table: the row of each key's image, and the key of
/// each row's.
pub(super) struct SearchableRun {
    run: Arc<RunVectors>,
    pub(super) labels: Arc<LabelTable>,
    rows: Vec<u32>,
    keys: Vec<u32>,
}

/// How a search through a [`SearchableRun`] went.
pub(super) struct RunHits {
    pub hits: Vec<(String, f32)>,
    pub candidates: usize,
    /// Whether the approximate index's graph was walked (else: an exact scan).
    pub walked: bool,
}

impl SearchableRun {
    fn join(run: Arc<RunVectors>, labels: Arc<LabelTable>) -> SearchableRun {
        let rows = run
            .ids
            .iter()
            .map(|id| {
                id.as_deref()
                    .and_then(|id| labels.row(id))
                    .unwrap_or(NO_ROW)
            })
            .collect::<Vec<u32>>();
        let mut keys = vec![NO_ROW; labels.row_of.len()];
        for (key, &row) in rows.iter().enumerate() {
            if let Some(slot) = keys.get_mut(row as usize) {
                *slot = key as u32;
            }
        }
        SearchableRun {
            run,
            labels,
            rows,
            keys,
        }
    }

    /// The stored vector of active image `id`, if the run holds one.
    pub(super) fn vector_of(&self, id: &str) -> Option<Vec<f32>> {
        let key = *self.keys.get(self.labels.row(id)? as usize)?;
        let flat = self.run.vectors.flat();
        flat.get(u64::from(key)).map(<[f32]>::to_vec)
    }

    /// The `k` nearest vectors of active images meeting `conditions`, without `exclude`'s
    /// image. Through the approximate index, a filter that leaves at most `exact_below`
    /// candidates is scored exactly instead of walking the graph.
    pub(super) fn search(
        &self,
        query: &[f32],
        k: usize,
        conditions: &[Condition],
        exclude: Option<&str>,
        exact_below: usize,
    ) -> Result<RunHits, AppError> {
        let excluded = exclude.and_then(|id| self.labels.row(id));
        let pass = |key: u64| {
            let row = self.rows[key as usize];
            row != NO_ROW && Some(row) != excluded && self.labels.passes(row, conditions)
        };
        // The flat copy's position of every key that passes: through the rows of the rarest
        // label a condition keeps (a swap's), else in one pass over the keys. Either way in
        // storage order: the scan then reads memory forwards (in row order, a swap took twice
        // as long).
        let positions: Vec<usize> = match self.labels.rows_to_check(conditions) {
            Some(rows) => {
                let mut positions: Vec<usize> = rows
                    .iter()
                    .map(|&row| self.keys[row as usize])
                    .filter(|&key| key != NO_ROW && pass(u64::from(key)))
                    .filter_map(|key| self.run.position[key as usize])
                    .collect();
                positions.sort_unstable();
                positions
            }
            None => (0..self.rows.len())
                .filter(|&key| pass(key as u64))
                .filter_map(|key| self.run.position[key])
                .collect(),
        };
        let candidates = positions.len();
        // Through the approximate index, a wide filter walks the graph; a photo no edge leads
        // to is never reached, so a short walk is not an answer. The flat copy scores the
        // candidates exactly otherwise, and gives a walk's hits their exact scores.
        let flat = self.run.vectors.flat();
        let walked = match &self.run.vectors {
            Vectors::Approximate { graph, .. } if candidates > exact_below => {
                Some(graph.search_filtered(query, rescore_pool(k), &pass)?)
                    .filter(|walked| walked.len() >= k.min(candidates))
            }
            _ => None,
        };
        let bias = &self.run.bias;
        let (hits, walked): (Vec<Hit>, bool) = match walked {
            Some(hits) => {
                let mut hits = flat.rescore_biased(query, hits, bias)?;
                hits.truncate(k);
                (hits, true)
            }
            None => (
                flat.search_positions_biased(query, k, &positions, bias)?,
                false,
            ),
        };
        let hits = hits
            .into_iter()
            .filter_map(|hit| {
                let id = self.run.ids.get(hit.key as usize)?.clone()?;
                Some((id, hit.score))
            })
            .collect();
        Ok(RunHits {
            hits,
            candidates,
            walked,
        })
    }
}

impl SearchableRun {
    /// Pairs of active photos whose vectors score at least `min_score`, looked for among each
    /// photo's `k` nearest (through the approximate index for a run that has one), each pair
    /// once, the smaller image id first, best first.
    pub(super) fn close_pairs(
        &self,
        k: usize,
        min_score: f32,
    ) -> Result<Vec<(String, String, f32)>, AppError> {
        use rayon::prelude::*;
        let flat = self.run.vectors.flat();
        let active: Vec<u64> = (0..self.rows.len())
            .filter(|&key| self.rows[key] != NO_ROW && self.run.position[key].is_some())
            .map(|key| key as u64)
            .collect();
        let positions: Vec<usize> = active
            .iter()
            .filter_map(|&key| self.run.position[key as usize])
            .collect();
        let is_active = |key: u64| self.rows.get(key as usize).is_some_and(|&r| r != NO_ROW);
        let neighbours: Vec<Vec<Hit>> = active
            .par_iter()
            .map(|&key| {
                let query = flat.get(key).unwrap_or_default();
                match &self.run.vectors {
                    Vectors::Exact(_) => flat.search_positions(query, k + 1, &positions),
                    Vectors::Approximate { graph, .. } => graph
                        .search_filtered(query, rescore_pool(k + 1), &is_active)
                        .and_then(|hits| flat.rescore(query, hits))
                        .map(|mut hits| {
                            hits.truncate(k + 1);
                            hits
                        }),
                }
            })
            .collect::<Result<_, _>>()?;
        let mut best: HashMap<(u64, u64), f32> = HashMap::new();
        for (&key, hits) in active.iter().zip(neighbours) {
            for hit in hits
                .into_iter()
                .filter(|h| h.key != key && h.score >= min_score)
            {
                best.insert((key.min(hit.key), key.max(hit.key)), hit.score);
            }
        }
        let id = |key: u64| self.run.ids[key as usize].clone();
        let mut pairs: Vec<(String, String, f32)> = best
            .into_iter()
            .filter_map(|((a, b), score)| {
                let (a, b) = (id(a)?, id(b)?);
                Some(if a < b { (a, b, score) } else { (b, a, score) })
            })
            .collect();
        pairs.sort_by(|x, y| {
            y.2.total_cmp(&x.2)
                .then_with(|| (&x.0, &x.1).cmp(&(&y.0, &y.1)))
        });
        Ok(pairs)
    }
}

/// The copies, shared by the queries of one process.
#[derive(Default)]
pub struct SearchCache {
    state: tokio::sync::Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    labels: Option<(i64, Arc<LabelTable>)>,
    /// (key, vectors counter, labels counter, joined), least recently used first.
    runs: Vec<(String, i64, i64, Arc<SearchableRun>)>,
}

impl SearchCache {
    /// The change counters of the labels and of `key`'s vectors, read together.
    pub(super) async fn stamps(&self, catalog: &Catalog, key: &str) -> Result<Stamps, AppError> {
        let [labels, vectors] = catalog
            .change_counters([LABELS_COUNTER, &embeddings_counter(key)])
            .await?;
        Ok(Stamps { labels, vectors })
    }

    /// The current label table.
    pub(super) async fn labels(&self, catalog: &Catalog) -> Result<Arc<LabelTable>, AppError> {
        let [stamp] = catalog.change_counters([LABELS_COUNTER]).await?;
        self.labels_at(catalog, stamp).await
    }

    /// The label table as of labels counter `stamp` (read with [`SearchCache::stamps`]).
    pub(super) async fn labels_at(
        &self,
        catalog: &Catalog,
        stamp: i64,
    ) -> Result<Arc<LabelTable>, AppError> {
        let mut state = self.state.lock().await;
        state.labels_at(catalog, stamp).await
    }

    /// `key`'s vectors as of `stamps` joined with the labels as of `stamps`, or `None` when
    /// the run stored none. With `files`, a run large enough for them is searched through its
    /// approximate index.
    pub(super) async fn run(
        &self,
        catalog: &Catalog,
        key: &str,
        files: Option<&IndexFiles>,
        stamps: Stamps,
    ) -> Result<Option<Arc<SearchableRun>>, AppError> {
        let Stamps {
            labels: label_stamp,
            vectors: vector_stamp,
        } = stamps;
        let mut state = self.state.lock().await;
        let labels = state.labels_at(catalog, label_stamp).await?;
        let kept = state
            .runs
            .iter()
            .position(|r| r.0 == key)
            .map(|at| state.runs.remove(at));
        let joined = match kept {
            Some((_, v, l, joined)) if v == vector_stamp && l == label_stamp => joined,
            Some((_, v, _, joined)) if v == vector_stamp => {
                Arc::new(SearchableRun::join(joined.run.clone(), labels))
            }
            _ => match load(catalog, key, files).await? {
                Some(run) => Arc::new(SearchableRun::join(Arc::new(run), labels)),
                None => return Ok(None),
            },
        };
        state
            .runs
            .push((key.to_string(), vector_stamp, label_stamp, joined.clone()));
        if state.runs.len() > RUNS_KEPT {
            state.runs.remove(0);
        }
        Ok(Some(joined))
    }
}

impl CacheState {
    async fn labels_at(
        &mut self,
        catalog: &Catalog,
        stamp: i64,
    ) -> Result<Arc<LabelTable>, AppError> {
        if let Some((kept, table)) = &self.labels
            && *kept == stamp
        {
            return Ok(table.clone());
        }
        let labels = catalog.active_labels().await?;
        let table = Arc::new(
            tokio::task::spawn_blocking(move || LabelTable::build(labels))
                .await
                .map_err(|e| AppError::Thread(e.to_string()))?,
        );
        self.labels = Some((stamp, table.clone()));
        Ok(table)
    }
}

/// Every vector `key` holds (of images in any state: the label table decides which count),
/// through the approximate index when `files` want that many, else in an exact index.
async fn load(
    catalog: &Catalog,
    key: &str,
    files: Option<&IndexFiles>,
) -> Result<Option<RunVectors>, AppError> {
    let ids = catalog.embedded_image_ids(key).await?;
    let Some(dim) = catalog.embedding_dim(key).await? else {
        return Ok(None);
    };
    // The biases before the vectors: they are written before the vectors they go with.
    let biases = stored_biases(catalog, key, &ids).await?;
    let stored = catalog.embeddings_of(key, &ids).await?;
    if let Some(files) = files.filter(|f| f.wants(ids.len())) {
        let run = files.open(catalog, key, dim, &ids).await?;
        let keys = run.ids;
        let (flat, keys) =
            spawn(move || flat_index(dim, &keys, stored).map(|flat| (flat, keys))).await?;
        return Ok(Some(RunVectors {
            bias: by_position(&flat, &keys, biases),
            position: positions(&flat, keys.len()),
            ids: keys,
            vectors: Vectors::Approximate {
                graph: run.index,
                flat,
            },
        }));
    }
    let ids: Vec<Option<String>> = stored.iter().map(|(id, _)| Some(id.clone())).collect();
    let (flat, ids) = spawn(move || flat_index(dim, &ids, stored).map(|flat| (flat, ids))).await?;
    Ok(Some(RunVectors {
        bias: by_position(&flat, &ids, biases),
        position: positions(&flat, ids.len()),
        ids,
        vectors: Vectors::Exact(flat),
    }))
}

/// The stored `biases` (by image) in `flat`'s storage order, whose keys name images in `ids`;
/// 0 for an image without one, and nothing at all without any.
fn by_position(
    flat: &ExactIndex,
    ids: &[Option<String>],
    biases: HashMap<String, f32>,
) -> Vec<f32> {
    if biases.is_empty() {
        return Vec::new();
    }
    flat.keys()
        .iter()
        .map(|&key| {
            ids.get(key as usize)
                .and_then(Option::as_ref)
                .and_then(|id| biases.get(id))
                .copied()
                .unwrap_or(0.0)
        })
        .collect()
}

/// Where each of `keys` keys lies in `flat`'s storage order.
fn positions(flat: &ExactIndex, keys: usize) -> Vec<Option<usize>> {
    let mut position = vec![None; keys];
    for (at, &key) in flat.keys().iter().enumerate() {
        if let Some(slot) = position.get_mut(key as usize) {
            *slot = Some(at);
        }
    }
    position
}

/// `stored` in a flat index, each vector under the key of its image in `ids`.
fn flat_index(
    dim: usize,
    ids: &[Option<String>],
    stored: Vec<(String, Vec<f32>)>,
) -> Result<ExactIndex, AppError> {
    let mut vectors: HashMap<String, Vec<f32>> = stored.into_iter().collect();
    let mut flat = ExactIndex::with_capacity(dim, vectors.len());
    for (key, id) in ids.iter().enumerate() {
        if let Some(vector) = id.as_ref().and_then(|id| vectors.remove(id)) {
            flat.add(key as u64, &vector)?;
        }
    }
    Ok(flat)
}

/// Runs `work` off the async runtime.
async fn spawn<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AppError::Thread(e.to_string()))?
}

pub(super) fn no_embeddings(record: &RunRecord) -> AppError {
    AppError::Invalid(format!(
        "run {} has no stored embeddings; build them with `atelier index --run {}`",
        record.id, record.id
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use atelier_search::HnswParams;

    /// Ten photos in one direction's neighbourhood, all labelled alike; the graph holds all
    /// but `unreachable` (as if no edge led to it), the flat copy holds all.
    fn run_missing_one_in_graph(unreachable: u64) -> SearchableRun {
        let dim = 4;
        let vector = |key: u64| vec![1.0, key as f32 * 0.1, 0.0, 0.0];
        let mut graph = HnswIndex::new(dim, HnswParams::default()).unwrap();
        let mut flat = ExactIndex::new(dim);
        for key in 0..10u64 {
            flat.add(key, &vector(key)).unwrap();
            if key != unreachable {
                graph.add(key, &vector(key)).unwrap();
            }
        }
        let ids: Vec<Option<String>> = (0..10).map(|k| Some(format!("img{k}"))).collect();
        let labels = (0..10)
            .map(|k| {
                let facets = BTreeMap::from([("neckline".to_string(), "v".to_string())]);
                (format!("img{k}"), facets)
            })
            .collect();
        let run = RunVectors {
            position: positions(&flat, ids.len()),
            ids,
            vectors: Vectors::Approximate { graph, flat },
            bias: Vec::new(),
        };
        SearchableRun::join(Arc::new(run), Arc::new(LabelTable::build(labels)))
    }

    #[test]
    fn conditions_are_checked_on_the_rows_of_the_rarest_kept_label() {
        let labels: HashMap<String, BTreeMap<String, String>> = (0..6)
            .map(|i| {
                let neckline = if i < 4 { "v" } else { "boat" };
                let sleeve = if i % 2 == 0 { "long" } else { "short" };
                let facets = BTreeMap::from([
                    ("neckline".to_string(), neckline.to_string()),
                    ("sleeve".to_string(), sleeve.to_string()),
                ]);
                (format!("img{i}"), facets)
            })
            .collect();
        let table = LabelTable::build(labels);
        let condition = |facet: &str, label: &str, keep: bool| LabelCondition {
            facet: facet.into(),
            label: label.into(),
            keep,
        };
        let ids = |rows: &[u32]| -> Vec<String> {
            let mut ids: Vec<String> = table
                .row_of
                .iter()
                .filter(|(_, row)| rows.contains(row))
                .map(|(id, _)| id.clone())
                .collect();
            ids.sort();
            ids
        };
        let both = table.compile(&[
            condition("neckline", "v", true),
            condition("sleeve", "short", true),
        ]);
        // Three short sleeves against four v-necks: the short sleeves are checked.
        let rows = table.rows_to_check(&both).unwrap();
        assert_eq!(ids(rows), ["img1", "img3", "img5"]);
        let passing: Vec<u32> = rows
            .iter()
            .copied()
            .filter(|&r| table.passes(r, &both))
            .collect();
        assert_eq!(ids(&passing), ["img1", "img3"]);
        // Only exclusions: every row; an unknown label: none.
        let excluded = table.compile(&[condition("neckline", "v", false)]);
        assert!(table.rows_to_check(&excluded).is_none());
        let unknown = table.compile(&[condition("neckline", "cowl", true)]);
        assert_eq!(table.rows_to_check(&unknown), Some(&[][..]));
        // Counts, with and without a kept label, one row left out.
        let img1 = table.row("img1");
        assert_eq!(table.count(&both, None), 2);
        assert_eq!(table.count(&both, img1), 1);
        assert_eq!(table.count(&excluded, None), 2);
        assert_eq!(table.count(&excluded, img1), 2, "img1 has a v-neck");
        assert_eq!(table.count(&excluded, table.row("img4")), 1);
        assert_eq!(table.count(&[], None), 6);
        assert_eq!(table.count(&unknown, None), 0);
    }

    #[test]
    fn a_walk_that_misses_a_candidate_is_replaced_by_the_exact_scan() {
        let run = run_missing_one_in_graph(9);
        let conditions = run.labels.compile(&[LabelCondition {
            facet: "neckline".into(),
            label: "v".into(),
            keep: true,
        }]);
        let query = [1.0, 0.0, 0.0, 0.0];
        // The three nearest are in the graph: its walk answers.
        let near = run.search(&query, 3, &conditions, None, 0).unwrap();
        assert!(near.walked);
        let ids: Vec<&str> = near.hits.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["img0", "img1", "img2"]);
        // All ten pass the filter but the walk finds nine: the scan answers, with all ten.
        let all = run.search(&query, 10, &conditions, None, 0).unwrap();
        assert!(!all.walked);
        assert_eq!(all.candidates, 10);
        assert_eq!(all.hits.len(), 10);
        assert_eq!(all.hits[9].0, "img9");
        // Asking for more than pass the filter is not short.
        let excluded = run
            .search(&query, 10, &conditions, Some("img9"), 0)
            .unwrap();
        assert_eq!(excluded.candidates, 9);
        assert!(excluded.walked);
        assert_eq!(excluded.hits.len(), 9);
    }
}
