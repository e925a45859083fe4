//! The triplet editor's use cases: which reference photo a reviewer sees next and its
//! candidates, and storing the reviewer's pick.
//!
//! TiefVision's flow: a reference photo and its nearest neighbours; the reviewer picks the one
//! most like it and the one least like it. The editor prefers references where the trained and
//! the off-the-shelf embeddings disagree about the neighbours (the triplets that teach the
//! embedding most): from a sample of photos no reviewer has used as a reference yet, the one
//! whose two neighbour lists share the fewest photos. The candidates are both lists,
//! interleaved.

use std::collections::{BTreeMap, HashSet};

use atelier_catalog::{Catalog, TripletSource};
use serde::Serialize;

use crate::error::AppError;
use crate::similar::{QueryPhoto, Searcher, SimilarAnswer, SimilarQuery, similarity_run};
use crate::similarity::embedding_key;

/// How the editor picks its tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TripletEditorConfig {
    /// Photos compared per pick of a reference.
    pub sample: usize,
    /// Neighbours per embedding (the candidates are up to twice as many, without repeats).
    pub neighbours: usize,
    /// Candidates shown (the digit keys pick the first nine).
    pub candidates: usize,
}

impl Default for TripletEditorConfig {
    fn default() -> Self {
        TripletEditorConfig {
            sample: 24,
            neighbours: 6,
            candidates: 9,
        }
    }
}

/// One photo offered as a candidate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub image_id: String,
    /// Cosine similarity to the reference by the trained embedding, when among its neighbours.
    pub trained_score: Option<f32>,
    /// The same by the off-the-shelf embedding.
    pub off_the_shelf_score: Option<f32>,
    pub labels: BTreeMap<String, String>,
}

/// What the reviewer is asked about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TripletTask {
    /// The similarity run whose embeddings chose the candidates.
    pub run: i64,
    pub reference: String,
    pub reference_labels: BTreeMap<String, String>,
    /// Share of the two neighbour lists that differ (0: the embeddings agree; 1: no photo in
    /// common).
    pub disagreement: f32,
    pub candidates: Vec<Candidate>,
}

/// The next task: for `reference` when given, else for the sampled photo (the sample depends on
/// `round`, so asking again with another round offers other photos) where the embeddings
/// disagree most. `None` when every photo with an embedding was a reference already.
pub async fn next_task(
    catalog: &Catalog,
    searcher: &Searcher,
    config: &TripletEditorConfig,
    reference: Option<&str>,
    round: u64,
) -> Result<Option<TripletTask>, AppError> {
    let record = similarity_run(catalog, None).await?;
    let references: Vec<String> = match reference {
        Some(id) => vec![id.to_string()],
        None => sample(catalog, searcher, record.id, config.sample, round).await?,
    };
    let mut best: Option<TripletTask> = None;
    for reference in references {
        let task = task_for(catalog, searcher, config, record.id, &reference).await?;
        if best
            .as_ref()
            .is_none_or(|b| task.disagreement > b.disagreement)
        {
            best = Some(task);
        }
    }
    if let Some(task) = &mut best
        && let Some(image) = catalog.image(&task.reference).await?
    {
        task.reference_labels = image
            .labels
            .into_iter()
            .filter_map(|l| Some((l.facet, l.label?)))
            .collect();
    }
    Ok(best)
}

/// Up to `count` active photos with a trained embedding that no review triplet has as its
/// reference, chosen by a hash of their id and `round`.
async fn sample(
    catalog: &Catalog,
    searcher: &Searcher,
    run: i64,
    count: usize,
    round: u64,
) -> Result<Vec<String>, AppError> {
    let used: HashSet<String> = catalog
        .triplets()
        .await?
        .into_iter()
        .filter(|t| t.source == TripletSource::Review)
        .map(|t| t.reference)
        .collect();
    let embedded = catalog.embedded_image_ids(&embedding_key(run)).await?;
    let mut open: Vec<(u64, String)> = searcher
        .active(catalog, embedded)
        .await?
        .into_iter()
        .filter(|id| !used.contains(id))
        .map(|id| (atelier_core::stable_hash(&format!("{round}:{id}")), id))
        .collect();
    open.sort_unstable();
    Ok(open.into_iter().take(count).map(|(_, id)| id).collect())
}

/// The reference's neighbours by both embeddings, and how much the two lists differ.
async fn task_for(
    catalog: &Catalog,
    searcher: &Searcher,
    config: &TripletEditorConfig,
    run: i64,
    reference: &str,
) -> Result<TripletTask, AppError> {
    let ask = |off_the_shelf| SimilarQuery {
        run: Some(run),
        photo: QueryPhoto::Image(reference.to_string()),
        k: config.neighbours,
        filters: Vec::new(),
        swap: None,
        off_the_shelf,
        explain: false,
    };
    let trained = searcher.similar(catalog, &ask(false)).await?;
    let plain = searcher.similar(catalog, &ask(true)).await?;
    let shared = trained
        .results
        .iter()
        .filter(|t| plain.results.iter().any(|p| p.image_id == t.image_id))
        .count();
    let listed = trained.results.len().max(plain.results.len()).max(1);
    Ok(TripletTask {
        run,
        reference: reference.to_string(),
        reference_labels: BTreeMap::new(),
        disagreement: 1.0 - shared as f32 / listed as f32,
        candidates: interleave(&trained, &plain, config.candidates),
    })
}

/// The two answers' photos, alternately, without repeats, at most `limit`.
fn interleave(trained: &SimilarAnswer, plain: &SimilarAnswer, limit: usize) -> Vec<Candidate> {
    let score_in = |answer: &SimilarAnswer, id: &str| {
        answer
            .results
            .iter()
            .find(|r| r.image_id == id)
            .map(|r| r.score)
    };
    let longest = trained.results.len().max(plain.results.len());
    let mut candidates: Vec<Candidate> = Vec::new();
    for i in 0..longest {
        for answer in [trained, plain] {
            let Some(photo) = answer.results.get(i) else {
                continue;
            };
            if candidates.iter().any(|c| c.image_id == photo.image_id) {
                continue;
            }
            candidates.push(Candidate {
                image_id: photo.image_id.clone(),
                trained_score: score_in(trained, &photo.image_id),
                off_the_shelf_score: score_in(plain, &photo.image_id),
                labels: photo.labels.clone(),
            });
        }
    }
    candidates.truncate(limit);
    candidates
}

/// Stores a reviewer's pick: `similar` is the candidate most like `reference`, `dissimilar`
/// the one least like it. Returns the triplet's id.
pub async fn label_triplet(
    catalog: &Catalog,
    reference: &str,
    similar: &str,
    dissimilar: &str,
    actor: &str,
) -> Result<i64, AppError> {
    Ok(catalog
        .add_triplet(reference, similar, dissimilar, actor)
        .await?)
}
