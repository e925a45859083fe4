//! The approximate (HNSW) index of a run's vectors, for catalogues searched in this process
//! (SQLite, or PostgreSQL without pgvector) once a run holds `ann_threshold` vectors or more:
//! built from the catalogue's stored vectors, kept as files in a folder of derived data (one
//! index file and one key list per embedding key; deleting them only costs a rebuild) and
//! brought in step with the catalogue whenever it is opened (vectors of images that left are
//! removed, new ones added), so `atelier index` and the first query after it pay for changes,
//! never for a full rebuild.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use atelier_catalog::Catalog;
use atelier_search::{HnswIndex, HnswParams, SearchConfig, VectorIndex};
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// Where the approximate indexes live and from what size they are used.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexFiles {
    pub dir: PathBuf,
    /// Runs with at least this many stored vectors are searched through the index.
    pub ann_threshold: usize,
    /// Filtered queries with at most this many candidates score them exactly instead of
    /// walking the graph (see `SearchConfig::exact_below`).
    pub exact_below: usize,
    pub hnsw: HnswParams,
}

impl IndexFiles {
    /// Index files in `dir`, used from the search crate's default threshold.
    pub fn new(dir: PathBuf) -> Self {
        let config = SearchConfig::default();
        IndexFiles {
            dir,
            ann_threshold: config.ann_threshold,
            exact_below: config.exact_below,
            hnsw: config.hnsw,
        }
    }

    /// The files of the catalogue at `db_url`: a folder under `root` named by a hash of its
    /// URL (for SQLite, of the file's absolute path, so that every way of naming one file
    /// shares it).
    pub fn for_catalogue(root: &Path, db_url: &str) -> Self {
        let file = db_url
            .strip_prefix("sqlite://")
            .or_else(|| db_url.strip_prefix("sqlite:"))
            .map(|rest| rest.split('?').next().unwrap_or(rest));
        let identity = file
            .and_then(|path| std::fs::canonicalize(path).ok())
            .map_or_else(|| db_url.to_string(), |path| path.display().to_string());
        let hash = atelier_core::stable_hash(&identity);
        Self::new(root.join(format!("{hash:016x}")))
    }

    /// Whether `count` stored vectors call for the index.
    pub fn wants(&self, count: usize) -> bool {
        count >= self.ann_threshold
    }

    fn paths(&self, key: &str) -> (PathBuf, PathBuf) {
        let name: String = key
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        (
            self.dir.join(format!("{name}.hnsw")),
            self.dir.join(format!("{name}.ids.json")),
        )
    }

    /// The index of `key`'s vectors (`dim` values each), in step with `stored`, the images
    /// the catalogue holds a vector of now: read from its files (or built when they are
    /// missing, damaged or of another dimension), then images no longer in `stored` removed
    /// and new ones added; saved when changed.
    pub async fn open(
        &self,
        catalog: &Catalog,
        key: &str,
        dim: usize,
        stored: &[String],
    ) -> Result<RunIndex, AppError> {
        let (index_path, ids_path) = self.paths(key);
        let mut run = match RunIndex::load(&index_path, &ids_path, dim) {
            Some(run) => run,
            None => RunIndex {
                index: HnswIndex::new(dim, self.hnsw)?,
                ids: Vec::new(),
            },
        };
        let mut changed = run.drop_missing(stored)?;
        let present: HashSet<&str> = run.ids.iter().flatten().map(String::as_str).collect();
        let missing: Vec<String> = stored
            .iter()
            .filter(|id| !present.contains(id.as_str()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let vectors = catalog.embeddings_of(key, &missing).await?;
            run = tokio::task::spawn_blocking(move || run.add(vectors))
                .await
                .map_err(|e| AppError::Thread(e.to_string()))??;
            changed = true;
        }
        if changed {
            std::fs::create_dir_all(&self.dir).map_err(|e| io_error(&self.dir, e))?;
            run.save(&index_path, &ids_path)?;
        }
        Ok(run)
    }
}

/// A run's HNSW index and the image id of each key (`None` once removed).
pub struct RunIndex {
    pub index: HnswIndex,
    pub ids: Vec<Option<String>>,
}

/// The key list as saved.
#[derive(Serialize, Deserialize)]
struct KeyList {
    ids: Vec<Option<String>>,
}

impl RunIndex {
    /// The saved index, or `None` when its files are missing or do not fit together.
    fn load(index_path: &Path, ids_path: &Path, dim: usize) -> Option<RunIndex> {
        let ids: KeyList = serde_json::from_slice(&std::fs::read(ids_path).ok()?).ok()?;
        let index = match HnswIndex::load(index_path, dim) {
            Ok(index) => index,
            Err(error) => {
                tracing::warn!("rebuilding the approximate index: {error}");
                return None;
            }
        };
        let held = ids.ids.iter().flatten().count();
        (index.len() == held).then_some(RunIndex {
            index,
            ids: ids.ids,
        })
    }

    fn save(&self, index_path: &Path, ids_path: &Path) -> Result<(), AppError> {
        self.index.save(index_path)?;
        let json = serde_json::to_vec(&KeyList {
            ids: self.ids.clone(),
        })
        .expect("a list of strings serialises");
        let partial = ids_path.with_extension("json.partial");
        std::fs::write(&partial, json).map_err(|e| io_error(&partial, e))?;
        std::fs::rename(&partial, ids_path).map_err(|e| io_error(ids_path, e))
    }

    /// Removes the keys of images not in `stored`; says whether any went.
    fn drop_missing(&mut self, stored: &[String]) -> Result<bool, AppError> {
        let wanted: HashSet<&str> = stored.iter().map(String::as_str).collect();
        let mut changed = false;
        for (key, id) in self.ids.iter_mut().enumerate() {
            if id.as_deref().is_some_and(|image| !wanted.contains(image)) {
                self.index.remove(key as u64)?;
                *id = None;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Adds `vectors` under new keys.
    fn add(mut self, vectors: Vec<(String, Vec<f32>)>) -> Result<RunIndex, AppError> {
        let start = self.ids.len() as u64;
        let keys: Vec<u64> = (start..start + vectors.len() as u64).collect();
        let flat: Vec<f32> = vectors
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        self.index.add_many(&keys, &flat)?;
        self.ids.extend(vectors.into_iter().map(|(id, _)| Some(id)));
        Ok(self)
    }
}

fn io_error(path: &Path, source: std::io::Error) -> AppError {
    AppError::Io {
        path: path.to_path_buf(),
        source,
    }
}
