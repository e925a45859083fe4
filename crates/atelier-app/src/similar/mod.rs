//! Finding similar dresses with a completed similarity run: the photos most like a catalogue
//! photo, a new file or an uploaded photo's vector, among those whose CURRENT labels pass the
//! filters (a retag changes the next answer; removed and quarantined photos never come back),
//! and "the same dress, another facet" (`swap`: only photos with the wanted label). Also
//! running the run's model on photos ([`embed_files`], [`decode_upload`], [`locate_files`]) and
//! keeping its stored embeddings in step with the catalogue ([`index`]).
//!
//! On PostgreSQL with pgvector the database answers ([`atelier_catalog::Catalog::nearest`]:
//! its HNSW index, the label filters applied during the walk), except for filters narrow
//! enough to be scored exactly (at most [`IndexFiles::exact_below`] candidates), which its
//! walk serves badly. Elsewhere, and for those, a [`Searcher`]
//! answers in this process from its copies of the run's vectors and the current labels
//! (kept while the catalogue's change counters stay put): an exact scan over the filtered
//! photos, or, for runs at least [`IndexFiles::ann_threshold`] large, the run's HNSW index.

mod cache;
mod embed;
mod index;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use atelier_catalog::{Catalog, LabelCondition, RunRecord};
use atelier_search::SearchConfig;
use atelier_train::similarity_model::CellAgreement;
use serde::Serialize;

use crate::ann::IndexFiles;
use crate::browse::check_label_conditions;
use crate::error::AppError;
use crate::similarity::{embedding_key, off_the_shelf_key, stored_biases};

pub use crate::similarity::similarity_run;
pub use cache::SearchCache;
pub use embed::{LocatedPhoto, decode_upload, embed_file, embed_files, embed_photo, locate_files};
pub use index::{IndexReport, index};

use cache::{LabelTable, SearchableRun};
use embed::explain;

/// What to look for similar dresses to.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryPhoto {
    /// A catalogue photo, by image id.
    Image(String),
    /// A photo file, embedded with the run's model.
    File(PathBuf),
    /// A vector the run's model made (of an uploaded photo, say: [`embed_photo`]), of the
    /// embedding the query searches (trained, or off the shelf).
    Embedding(Vec<f32>),
}

/// A facet filter on the current labels: `keep` photos with (or, when false, without) the label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFilter {
    pub facet: String,
    pub label: String,
    pub keep: bool,
}

/// A similarity query.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarQuery {
    /// The similarity run whose embeddings answer; `None`: the newest completed one.
    pub run: Option<i64>,
    pub photo: QueryPhoto,
    pub k: usize,
    pub filters: Vec<LabelFilter>,
    /// "The same dress, another facet": only photos with this label of this facet.
    pub swap: Option<(String, String)>,
    /// Answer with the off-the-shelf embedding instead of the trained one.
    pub off_the_shelf: bool,
    /// Say where each result agrees with the query, cell by cell ([`CellAgreement`]).
    pub explain: bool,
}

/// One similar photo.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimilarPhoto {
    pub image_id: String,
    pub path: String,
    /// Cosine similarity to the query plus the photo's hubness bias (minus half of how much
    /// closer its 10 nearest catalogue photos are than the catalogue's average: a photo in a
    /// crowded neighbourhood ranks lower; see [`atelier_train::hubness`]). Runs trained
    /// without the correction give the plain cosine, in `[-1, 1]`.
    pub score: f32,
    pub labels: BTreeMap<String, String>,
    /// With `explain`: where the dresses agree (a 3x3 grid of the crops' cells, row-major).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<CellAgreement>,
}

/// The answer to a [`SimilarQuery`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimilarAnswer {
    pub run: i64,
    pub query: String,
    /// Active photos that passed the filters.
    pub candidates: usize,
    /// What searched.
    pub engine: SearchEngine,
    pub results: Vec<SimilarPhoto>,
}

/// What answered a similarity query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchEngine {
    /// An exact scan of the stored vectors that pass the filters, in this process.
    Scan,
    /// PostgreSQL with pgvector: its HNSW index, filtered during the walk (iterative scan).
    Pgvector,
    /// The run's HNSW index in this process (see [`IndexFiles`]), filtered during the walk.
    /// A walk that returns fewer photos than asked for while more pass the filter (HNSW can
    /// leave a photo with no edge leading to it) is replaced by the exact scan, so such an
    /// answer says `Scan`.
    Hnsw,
}

/// What answers similarity queries in a process: the approximate index files (when given, for
/// runs large enough for them) and the [`SearchCache`]. A long-lived process (the web app)
/// keeps one for all its requests; a command makes one per query.
#[derive(Default)]
pub struct Searcher {
    files: Option<IndexFiles>,
    cache: SearchCache,
    /// The last close-pairs answer: the joined run it came from, its `k` and minimum score.
    pairs: tokio::sync::Mutex<Option<KeptPairs>>,
}

struct KeptPairs {
    from: std::sync::Arc<SearchableRun>,
    k: usize,
    min_score: u32,
    pairs: std::sync::Arc<Vec<(String, String, f32)>>,
}

impl Searcher {
    pub fn new(files: Option<IndexFiles>) -> Self {
        Searcher {
            files,
            ..Searcher::default()
        }
    }

    /// Pairs of active photos whose trained embeddings by similarity run `run` (the newest
    /// without one) score at least `min_score`, among each photo's `k` nearest: each pair once,
    /// the smaller id first, best first. Kept until the run's vectors or the catalogue's
    /// labels or statuses change (a catalogue-wide pass: a few seconds at 10 000 photos).
    pub async fn close_pairs(
        &self,
        catalog: &Catalog,
        run: Option<i64>,
        k: usize,
        min_score: f32,
    ) -> Result<(RunRecord, std::sync::Arc<Vec<(String, String, f32)>>), AppError> {
        let record = similarity_run(catalog, run).await?;
        let key = embedding_key(record.id);
        let stamps = self.cache.stamps(catalog, &key).await?;
        let joined = self
            .cache
            .run(catalog, &key, self.files.as_ref(), stamps)
            .await?
            .ok_or_else(|| cache::no_embeddings(&record))?;
        // Held while computing, so that concurrent callers wait for one pass.
        let mut kept = self.pairs.lock().await;
        if let Some(kept) = kept.as_ref()
            && std::sync::Arc::ptr_eq(&kept.from, &joined)
            && kept.k == k
            && kept.min_score == min_score.to_bits()
        {
            return Ok((record, kept.pairs.clone()));
        }
        let run = joined.clone();
        let pairs = tokio::task::spawn_blocking(move || run.close_pairs(k, min_score))
            .await
            .map_err(|e| AppError::Thread(e.to_string()))??;
        let pairs = std::sync::Arc::new(pairs);
        *kept = Some(KeptPairs {
            from: joined,
            k,
            min_score: min_score.to_bits(),
            pairs: pairs.clone(),
        });
        Ok((record, pairs))
    }

    /// The ids of `ids` whose images are active now, from this searcher's label table.
    pub async fn active(
        &self,
        catalog: &Catalog,
        ids: Vec<String>,
    ) -> Result<Vec<String>, AppError> {
        let labels = self.cache.labels(catalog).await?;
        Ok(ids
            .into_iter()
            .filter(|id| labels.row(id).is_some())
            .collect())
    }

    /// Answers a similarity query: inside the database with pgvector where the catalogue has
    /// it, else from this searcher's copies of the run's vectors (an exact scan, or the run's
    /// approximate index) and of the current labels.
    pub async fn similar(
        &self,
        catalog: &Catalog,
        query: &SimilarQuery,
    ) -> Result<SimilarAnswer, AppError> {
        let record = similarity_run(catalog, query.run).await?;
        self.similar_in(catalog, &record, query).await
    }

    /// [`Searcher::similar`] with the run already read (`query.run` is not looked at).
    pub async fn similar_in(
        &self,
        catalog: &Catalog,
        record: &RunRecord,
        query: &SimilarQuery,
    ) -> Result<SimilarAnswer, AppError> {
        crate::similarity::check_similarity_run(record)?;
        let conditions = conditions(query);
        let key = match query.off_the_shelf {
            true => off_the_shelf_key(record.id),
            false => embedding_key(record.id),
        };
        // Both counters at once: the in-process path needs the vectors' too.
        let stamps = self.cache.stamps(catalog, &key).await?;
        let labels = self.cache.labels_at(catalog, stamps.labels).await?;
        // Names some active photo carries are known; others are checked against the
        // vocabulary, which also knows labels no photo carries now.
        if !conditions.iter().all(|c| labels.knows(c)) {
            check_label_conditions(catalog, &conditions).await?;
        }
        // A catalogue photo is left out of its own answer.
        let exclude = match &query.photo {
            QueryPhoto::Image(id) => Some(id.as_str()),
            _ => None,
        };
        // The query's vector once made, so that a photo file is embedded once.
        let mut asked = None;
        if let Some(candidates) = self.database_candidates(catalog, &labels, &conditions, exclude) {
            let (vector, described) = query_vector(catalog, record, &key, query).await?;
            let pool = atelier_search::rescore_pool(query.k);
            let hits = catalog
                .nearest(&key, &vector, pool, &conditions, exclude)
                .await?;
            // pgvector's walk, like any HNSW walk, can miss photos that no edge leads to; an
            // answer shorter than the filter allows is made again by the exact path below.
            if hits.len() >= query.k.min(candidates) {
                let engine = SearchEngine::Pgvector;
                let found = Found {
                    hits: with_biases(catalog, &key, hits, query.k).await?,
                    candidates,
                    engine,
                    labels,
                };
                return answer(catalog, record, query, found, described).await;
            }
            asked = Some((vector, described));
        }
        let run = self
            .cache
            .run(catalog, &key, self.files.as_ref(), stamps)
            .await?
            .ok_or_else(|| cache::no_embeddings(record))?;
        let (vector, described) = match asked {
            Some(asked) => asked,
            // A catalogue photo's vector is in the copy (else read, or made).
            None => match exclude.and_then(|id| run.vector_of(id)) {
                Some(vector) => (vector, exclude.unwrap_or_default().to_string()),
                None => query_vector(catalog, record, &key, query).await?,
            },
        };
        let compiled = run.labels.compile(&conditions);
        let hits = run.search(&vector, query.k, &compiled, exclude, self.exact_below())?;
        let found = Found {
            hits: hits.hits,
            candidates: hits.candidates,
            engine: match hits.walked {
                true => SearchEngine::Hnsw,
                false => SearchEngine::Scan,
            },
            labels: run.labels.clone(),
        };
        answer(catalog, record, query, found, described).await
    }

    /// Filtered queries with at most this many candidates score them exactly.
    fn exact_below(&self) -> usize {
        self.files
            .as_ref()
            .map_or(SearchConfig::default().exact_below, |f| f.exact_below)
    }

    /// With pgvector, the candidates of a query the database answers; `None` for one answered
    /// here. pgvector walks its graph for unfiltered and wide queries; a narrow filter makes
    /// its iterative scan visit most of the graph (measured: 6-8 s a query for 12 354
    /// candidates of 100 000), so those candidates are scored here instead.
    fn database_candidates(
        &self,
        catalog: &Catalog,
        labels: &LabelTable,
        conditions: &[LabelCondition],
        exclude: Option<&str>,
    ) -> Option<usize> {
        if !catalog.searches_vectors() {
            return None;
        }
        let compiled = labels.compile(conditions);
        let candidates = labels.count(&compiled, exclude.and_then(|id| labels.row(id)));
        (conditions.is_empty() || candidates > self.exact_below()).then_some(candidates)
    }
}

/// What a search found, before the results are described.
struct Found {
    hits: Vec<(String, f32)>,
    candidates: usize,
    engine: SearchEngine,
    /// The label table the search filtered with.
    labels: std::sync::Arc<LabelTable>,
}

/// The answer to `query` from what the search found: each hit's path and labels, and with
/// `explain`, where it agrees with the query photo.
async fn answer(
    catalog: &Catalog,
    record: &RunRecord,
    query: &SimilarQuery,
    found: Found,
    described: String,
) -> Result<SimilarAnswer, AppError> {
    let ids: Vec<String> = found.hits.iter().map(|(id, _)| id.clone()).collect();
    let paths = catalog.image_uris(&ids).await?;
    let mut results: Vec<SimilarPhoto> = found
        .hits
        .into_iter()
        .map(|(id, score)| SimilarPhoto {
            path: paths.get(&id).cloned().unwrap_or_default(),
            labels: found.labels.labels_of(&id),
            image_id: id,
            score,
            explain: None,
        })
        .collect();
    if query.explain && !results.is_empty() {
        explain_results(catalog, record, &query.photo, &mut results).await?;
    }
    Ok(SimilarAnswer {
        run: record.id,
        query: described,
        candidates: found.candidates,
        engine: found.engine,
        results,
    })
}

/// `hits` (by cosine) with the hubness biases of `key`'s vectors added to their scores (where
/// the run stored biases), best first, the best `k` kept.
async fn with_biases(
    catalog: &Catalog,
    key: &str,
    mut hits: Vec<(String, f32)>,
    k: usize,
) -> Result<Vec<(String, f32)>, AppError> {
    let ids: Vec<String> = hits.iter().map(|(id, _)| id.clone()).collect();
    let biases = stored_biases(catalog, key, &ids).await?;
    for (id, score) in &mut hits {
        *score += biases.get(id).copied().unwrap_or(0.0);
    }
    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    hits.truncate(k);
    Ok(hits)
}

/// Answers one similarity query with a searcher of its own (see [`Searcher::similar`]).
pub async fn similar(
    catalog: &Catalog,
    query: &SimilarQuery,
    files: Option<&IndexFiles>,
) -> Result<SimilarAnswer, AppError> {
    Searcher::new(files.cloned()).similar(catalog, query).await
}

/// Adds to each result where it agrees with the query photo, cell by cell.
async fn explain_results(
    catalog: &Catalog,
    record: &RunRecord,
    photo: &QueryPhoto,
    results: &mut [SimilarPhoto],
) -> Result<(), AppError> {
    let resolver = crate::images::resolver();
    let query_path = match photo {
        QueryPhoto::File(path) => path.clone(),
        QueryPhoto::Image(id) => {
            let mut paths: HashMap<String, String> =
                catalog.image_uris(std::slice::from_ref(id)).await?;
            let uri = paths.remove(id).unwrap_or_default();
            let mut resolved = resolver.resolve(&[(uri.as_str(), id.as_str())]).await?;
            resolved.pop().unwrap_or_else(|| Ok(PathBuf::from(&uri)))?
        }
        QueryPhoto::Embedding(_) => {
            return Err(AppError::Invalid(
                "explain compares photos cell by cell: query with a photo or an image id, \
                 not a vector"
                    .into(),
            ));
        }
    };
    let images: Vec<(&str, &str)> = results
        .iter()
        .map(|r| (r.path.as_str(), r.image_id.as_str()))
        .collect();
    let paths = resolver
        .resolve(&images)
        .await?
        .into_iter()
        .collect::<Result<Vec<PathBuf>, _>>()?;
    let agreements: Vec<CellAgreement> = explain(record, query_path, paths).await?;
    for (result, agreement) in results.iter_mut().zip(agreements) {
        result.explain = Some(agreement);
    }
    Ok(())
}

/// The query's filters and swap as conditions on current labels.
fn conditions(query: &SimilarQuery) -> Vec<LabelCondition> {
    let filters = query.filters.iter().map(|f| LabelCondition {
        facet: f.facet.clone(),
        label: f.label.clone(),
        keep: f.keep,
    });
    let swap = query.swap.iter().map(|(facet, label)| LabelCondition {
        facet: facet.clone(),
        label: label.clone(),
        keep: true,
    });
    filters.chain(swap).collect()
}

/// The query's embedding and how to name it.
async fn query_vector(
    catalog: &Catalog,
    record: &RunRecord,
    key: &str,
    query: &SimilarQuery,
) -> Result<(Vec<f32>, String), AppError> {
    match &query.photo {
        QueryPhoto::Image(id) => {
            let vector = catalog.embedding(key, id).await?.ok_or_else(|| {
                AppError::Invalid(format!(
                    "image {id} has no embedding in run {}: it is unknown, not active, or \
                     newer than the run (`atelier index --run {}` embeds new photos)",
                    record.id, record.id
                ))
            })?;
            Ok((vector, id.clone()))
        }
        QueryPhoto::File(path) => {
            let embedded = embed_file(record, path).await?;
            let vector = match query.off_the_shelf {
                true => embedded.off_the_shelf,
                false => embedded.embedding,
            };
            Ok((vector, path.display().to_string()))
        }
        QueryPhoto::Embedding(vector) => {
            let expected = catalog
                .embedding_dim(key)
                .await?
                .ok_or_else(|| cache::no_embeddings(record))?;
            if vector.len() != expected || vector.iter().any(|v| !v.is_finite()) {
                return Err(AppError::Invalid(format!(
                    "the query vector has {} numbers (all finite?), but run {}'s embeddings \
                     have {expected}: embed the photo again with this run",
                    vector.len(),
                    record.id
                )));
            }
            Ok((vector.clone(), "an uploaded photo".to_string()))
        }
    }
}
