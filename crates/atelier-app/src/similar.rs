//! Finding similar dresses with a completed similarity run: the photos most like a catalogue
//! photo or a new file, among those whose CURRENT labels pass the filters (a retag changes the
//! next answer; removed and quarantined photos never come back), and "the same dress, another
//! facet" (`swap`: only photos with the wanted label). Also keeping a run's stored embeddings in
//! step with the catalogue ([`index`]).
//!
//! On PostgreSQL with pgvector the database answers ([`atelier_catalog::Catalog::nearest`]:
//! its HNSW index, the label filters applied during the walk). Elsewhere the search is an
//! exact scan over the filtered photos ([`atelier_search::ExactIndex`]): with a few facet
//! values per filter the subset is known before the scan, and an exact answer is cheap up to a
//! few hundred thousand photos.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use atelier_catalog::{Catalog, LabelCondition, RunRecord, RunStatus};
use atelier_models::Device;
use atelier_search::{ExactIndex, VectorIndex};
use atelier_train::DeviceChoice;
use atelier_train::device::device_for;
use atelier_train::features::load_rgb;
use atelier_train::similarity_model::{
    CellAgreement, PhotoEmbedding, SimilarityManifest, SimilarityNet, load_similarity_model,
};
use image::RgbImage;
use serde::Serialize;

use crate::ann::IndexFiles;
use crate::error::AppError;
use crate::runner::find_run;
use crate::similarity::{SIMILARITY_RUN, embedding_key, off_the_shelf_key};

/// What to look for similar dresses to.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryPhoto {
    /// A catalogue photo, by image id.
    Image(String),
    /// A photo file, embedded with the run's model.
    File(PathBuf),
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
    /// Cosine similarity to the query, in `[-1, 1]`.
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
    Hnsw,
}

/// The completed similarity run `run`, or the newest one.
pub async fn similarity_run(catalog: &Catalog, run: Option<i64>) -> Result<RunRecord, AppError> {
    let record = match run {
        Some(run) => find_run(catalog, run).await?,
        None => catalog
            .runs()
            .await?
            .into_iter()
            .find(|r| r.kind == SIMILARITY_RUN && r.status == RunStatus::Completed)
            .ok_or_else(|| {
                AppError::Invalid(
                    "the catalogue has no completed similarity run; train one with `atelier \
                     train similarity`"
                        .into(),
                )
            })?,
    };
    if record.kind != SIMILARITY_RUN || record.status != RunStatus::Completed {
        return Err(AppError::Invalid(format!(
            "run {} is a {} `{}` run; similar photos come from a completed `{SIMILARITY_RUN}` run",
            record.id, record.status, record.kind
        )));
    }
    Ok(record)
}

/// Answers a similarity query: inside the database with pgvector where the catalogue has it,
/// else through the run's approximate index when `files` are given and the run holds enough
/// vectors for it, else by an exact scan of the run's stored vectors.
pub async fn similar(
    catalog: &Catalog,
    query: &SimilarQuery,
    files: Option<&IndexFiles>,
) -> Result<SimilarAnswer, AppError> {
    let record = similarity_run(catalog, query.run).await?;
    let key = match query.off_the_shelf {
        true => off_the_shelf_key(record.id),
        false => embedding_key(record.id),
    };
    let (vector, query_id, described) = query_vector(catalog, &record, &key, query).await?;
    let labels = catalog.active_labels().await?;
    let conditions = conditions(query);
    let allowed = |id: &str| {
        let Some(have) = labels.get(id) else {
            return false;
        };
        conditions
            .iter()
            .all(|c| (have.get(&c.facet) == Some(&c.label)) == c.keep)
            && Some(id) != query_id.as_deref()
    };
    let (hits, candidates, engine) = if catalog.searches_vectors() {
        let hits = catalog
            .nearest(&key, &vector, query.k, &conditions, query_id.as_deref())
            .await?;
        let candidates = labels.keys().filter(|id| allowed(id)).count();
        (hits, candidates, SearchEngine::Pgvector)
    } else if let Some((files, stored)) = approximate(catalog, files, &key).await? {
        let run = files.open(catalog, &key, vector.len(), &stored).await?;
        let keys: Vec<u64> = (0..run.ids.len() as u64)
            .filter(|&k| run.image(k).is_some_and(&allowed))
            .collect();
        // A narrow filter is answered exactly from the index's vectors; a wide one by the walk.
        let (hits, engine) = if keys.len() <= files.exact_below {
            let hits = run.index.search_among(&vector, query.k, &keys)?;
            (hits, SearchEngine::Scan)
        } else {
            let allow = |k: u64| run.image(k).is_some_and(&allowed);
            let hits = run.index.search_filtered(&vector, query.k, &allow)?;
            (hits, SearchEngine::Hnsw)
        };
        let hits = hits
            .into_iter()
            .filter_map(|hit| Some((run.image(hit.key)?.to_string(), hit.score)))
            .collect();
        (hits, keys.len(), engine)
    } else {
        let (hits, candidates) = scan(catalog, &record, &key, &vector, query.k, allowed).await?;
        (hits, candidates, SearchEngine::Scan)
    };
    let mut results = Vec::with_capacity(hits.len());
    for (id, score) in hits {
        results.push(SimilarPhoto {
            path: photo_path(catalog, &id).await?,
            labels: labels.get(&id).cloned().unwrap_or_default(),
            image_id: id,
            score,
            explain: None,
        });
    }
    if query.explain && !results.is_empty() {
        let query_path = match &query.photo {
            QueryPhoto::File(path) => path.clone(),
            QueryPhoto::Image(id) => PathBuf::from(photo_path(catalog, id).await?),
        };
        let paths: Vec<PathBuf> = results.iter().map(|r| PathBuf::from(&r.path)).collect();
        let agreements = explain(&record, query_path, paths).await?;
        for (result, agreement) in results.iter_mut().zip(agreements) {
            result.explain = Some(agreement);
        }
    }
    Ok(SimilarAnswer {
        run: record.id,
        query: described,
        candidates,
        engine,
        results,
    })
}

/// The index files to search through, when given and the run holds enough vectors for them,
/// with the ids of the images `key` has vectors for.
async fn approximate<'a>(
    catalog: &Catalog,
    files: Option<&'a IndexFiles>,
    key: &str,
) -> Result<Option<(&'a IndexFiles, Vec<String>)>, AppError> {
    let Some(files) = files else {
        return Ok(None);
    };
    let stored = catalog.embedded_image_ids(key).await?;
    Ok(files.wants(stored.len()).then_some((files, stored)))
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

/// The exact scan over the stored vectors that pass `allowed`: the hits and how many passed.
async fn scan(
    catalog: &Catalog,
    record: &RunRecord,
    key: &str,
    vector: &[f32],
    k: usize,
    allowed: impl Fn(&str) -> bool,
) -> Result<(Vec<(String, f32)>, usize), AppError> {
    let stored = catalog.embeddings(key).await?;
    if stored.is_empty() {
        return Err(no_embeddings(record));
    }
    let mut index = ExactIndex::with_capacity(vector.len(), stored.len());
    let mut candidates = Vec::new();
    for (row, (id, embedding)) in stored.iter().enumerate() {
        index.add(row as u64, embedding)?;
        if allowed(id) {
            candidates.push(row as u64);
        }
    }
    let hits = index.search_among(vector, k, &candidates)?;
    let hits = hits
        .into_iter()
        .map(|hit| (stored[hit.key as usize].0.clone(), hit.score))
        .collect();
    Ok((hits, candidates.len()))
}

fn no_embeddings(record: &RunRecord) -> AppError {
    AppError::Invalid(format!(
        "run {} has no stored embeddings; build them with `atelier index --run {}`",
        record.id, record.id
    ))
}

/// The query's embedding, the catalogue id it stands for (left out of the answer) and how to
/// name it.
async fn query_vector(
    catalog: &Catalog,
    record: &RunRecord,
    key: &str,
    query: &SimilarQuery,
) -> Result<(Vec<f32>, Option<String>, String), AppError> {
    match &query.photo {
        QueryPhoto::Image(id) => {
            let vector = catalog.embedding(key, id).await?.ok_or_else(|| {
                AppError::Invalid(format!(
                    "image {id} has no embedding in run {}: it is unknown, not active, or \
                     newer than the run (`atelier index --run {}` embeds new photos)",
                    record.id, record.id
                ))
            })?;
            Ok((vector, Some(id.clone()), id.clone()))
        }
        QueryPhoto::File(path) => {
            let embedded = embed_file(record, path).await?;
            let vector = match query.off_the_shelf {
                true => embedded.off_the_shelf,
                false => embedded.embedding,
            };
            Ok((vector, None, path.display().to_string()))
        }
    }
}

/// Stores `vectors` under `key` and (with pgvector) makes sure the key has its HNSW index.
pub(crate) async fn store_vectors(
    catalog: &Catalog,
    key: &str,
    vectors: &[(String, Vec<f32>)],
) -> Result<(), AppError> {
    catalog.put_embeddings(key, vectors).await?;
    if let Some((_, first)) = vectors.first() {
        catalog.index_vectors(key, first.len()).await?;
    }
    Ok(())
}

/// Where each result photo agrees with the query photo, cell by cell (each result also
/// compared mirrored), with the run's saved model.
async fn explain(
    record: &RunRecord,
    query: PathBuf,
    results: Vec<PathBuf>,
) -> Result<Vec<CellAgreement>, AppError> {
    let model_dir = model_dir(record)?;
    tokio::task::spawn_blocking(move || {
        let (device, manifest, net) = cpu_model(&model_dir)?;
        let query = load_rgb(&query)?;
        let mut agreements = Vec::with_capacity(results.len());
        for chunk in results.chunks(8) {
            let photos = decoded(chunk)?;
            agreements.extend(net.agreements(&manifest, &query, &photos, &device));
        }
        Ok::<_, AppError>(agreements)
    })
    .await
    .map_err(|e| AppError::Thread(e.to_string()))?
}

/// The CPU and a similarity run's saved model on it.
fn cpu_model(model_dir: &Path) -> Result<(Device, SimilarityManifest, SimilarityNet), AppError> {
    let device = device_for(DeviceChoice::Cpu)?;
    let (manifest, net) = load_similarity_model(model_dir, &device)?;
    Ok((device, manifest, net))
}

/// The photo files `paths`, decoded.
fn decoded(paths: &[PathBuf]) -> Result<Vec<RgbImage>, AppError> {
    paths.iter().map(|p| Ok(load_rgb(p)?)).collect()
}

fn model_dir(record: &RunRecord) -> Result<PathBuf, AppError> {
    record
        .model_ref
        .clone()
        .map(PathBuf::from)
        .ok_or_else(|| AppError::Invalid(format!("run {} saved no model", record.id)))
}

/// Embeds one photo file with the run's saved model.
pub async fn embed_file(record: &RunRecord, path: &Path) -> Result<PhotoEmbedding, AppError> {
    let embedded = embed_files(record, &[path.to_path_buf()]).await?;
    Ok(embedded
        .into_iter()
        .next()
        .expect("one photo, one embedding"))
}

/// Embeds photo files with the run's saved model, off the async runtime.
pub async fn embed_files(
    record: &RunRecord,
    paths: &[PathBuf],
) -> Result<Vec<PhotoEmbedding>, AppError> {
    let model_dir = model_dir(record)?;
    let paths = paths.to_vec();
    tokio::task::spawn_blocking(move || {
        let (device, manifest, net) = cpu_model(&model_dir)?;
        let mut embedded = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(16) {
            embedded.extend(net.embed_photos(&manifest, &decoded(chunk)?, &device));
        }
        Ok::<_, AppError>(embedded)
    })
    .await
    .map_err(|e| AppError::Thread(e.to_string()))?
}

/// One photo's located dress, or why the photo could not be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocatedPhoto {
    pub path: PathBuf,
    pub outcome: Result<PhotoEmbedding, String>,
}

/// Locates the dress in each photo file with the run's model; a file that cannot be read gets
/// its reason instead, and the others go on.
pub async fn locate_files(
    catalog: &Catalog,
    run: Option<i64>,
    paths: &[PathBuf],
) -> Result<Vec<LocatedPhoto>, AppError> {
    let record = similarity_run(catalog, run).await?;
    let readable: Vec<Result<(), String>> = paths
        .iter()
        .map(|path| load_rgb(path).map(|_| ()).map_err(|e| e.to_string()))
        .collect();
    let good: Vec<PathBuf> = paths
        .iter()
        .zip(&readable)
        .filter(|(_, read)| read.is_ok())
        .map(|(path, _)| path.clone())
        .collect();
    let mut embedded = embed_files(&record, &good).await?.into_iter();
    Ok(paths
        .iter()
        .zip(readable)
        .map(|(path, read)| LocatedPhoto {
            path: path.clone(),
            outcome: read.map(|()| embedded.next().expect("one embedding per readable photo")),
        })
        .collect())
}

async fn photo_path(catalog: &Catalog, id: &str) -> Result<String, AppError> {
    Ok(catalog
        .image(id)
        .await?
        .map(|image| image.uri)
        .unwrap_or_default())
}

/// Brings `key`'s approximate index in step when the catalogue searches in this process and
/// the run is large enough for one; says whether it did.
async fn refresh_approximate(
    catalog: &Catalog,
    files: Option<&IndexFiles>,
    key: &str,
) -> Result<bool, AppError> {
    if catalog.searches_vectors() {
        return Ok(false);
    }
    let Some((files, stored)) = approximate(catalog, files, key).await? else {
        return Ok(false);
    };
    let Some((_, vector)) = catalog.embeddings_of(key, &stored[..1]).await?.pop() else {
        return Ok(false);
    };
    files.open(catalog, key, vector.len(), &stored).await?;
    Ok(true)
}

/// What [`index`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IndexReport {
    pub run: i64,
    /// Active photos embedded now (new since the run, or back from quarantine).
    pub added: usize,
    /// Stored embeddings of photos that are no longer active, deleted.
    pub removed: usize,
    /// Embeddings kept as they were.
    pub kept: usize,
    /// Whether the run's approximate indexes were brought in step too.
    pub approximate_index: bool,
}

/// Brings a similarity run's stored embeddings in step with the catalogue: embeds the active
/// photos that have none (with the run's model) and deletes those of photos that are no longer
/// active; with `files`, the run's approximate indexes follow (when the run is large enough
/// for them). Labels are read at query time, so a retag needs nothing here.
pub async fn index(
    catalog: &Catalog,
    run: Option<i64>,
    files: Option<&IndexFiles>,
) -> Result<IndexReport, AppError> {
    let record = similarity_run(catalog, run).await?;
    let (key, plain_key) = (embedding_key(record.id), off_the_shelf_key(record.id));
    let active: HashMap<String, String> = catalog
        .training_images(&[])
        .await?
        .into_iter()
        .map(|image| (image.id, image.uri))
        .collect();
    let embedded: HashSet<String> = catalog
        .embedded_image_ids(&key)
        .await?
        .into_iter()
        .collect();
    let stale: Vec<String> = embedded
        .iter()
        .filter(|id| !active.contains_key(*id))
        .cloned()
        .collect();
    let mut missing: Vec<(&String, &String)> = active
        .iter()
        .filter(|(id, _)| !embedded.contains(*id))
        .collect();
    missing.sort();
    if !missing.is_empty() {
        let paths: Vec<PathBuf> = missing.iter().map(|(_, uri)| PathBuf::from(uri)).collect();
        let photos = embed_files(&record, &paths).await?;
        let ids = missing.iter().map(|(id, _)| (*id).clone());
        let trained: Vec<_> = ids
            .clone()
            .zip(photos.iter().map(|p| p.embedding.clone()))
            .collect();
        let plain: Vec<_> = ids
            .zip(photos.into_iter().map(|p| p.off_the_shelf))
            .collect();
        store_vectors(catalog, &key, &trained).await?;
        store_vectors(catalog, &plain_key, &plain).await?;
    }
    catalog.delete_embeddings(&key, &stale).await?;
    catalog.delete_embeddings(&plain_key, &stale).await?;
    let mut approximate_index = false;
    for key in [&key, &plain_key] {
        approximate_index |= refresh_approximate(catalog, files, key).await?;
    }
    Ok(IndexReport {
        approximate_index,
        run: record.id,
        added: missing.len(),
        removed: stale.len(),
        kept: embedded.len() - stale.len(),
    })
}
