//! Crowd retagging's storage: batches of labelling tasks (one image and one facet each, under
//! a random token that the workers see), with the label version each task was exported at and
//! its gold answer when it has one, and the votes of crowd workers and reviewers on them (one
//! per worker and task, so that importing the same answers twice adds nothing).

use serde::Serialize;
use sqlx::Row;

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::runs::ensure_run_exists;
use crate::sql::now_millis;
use crate::vocabulary::Vocabulary;

/// A batch to record.
#[derive(Debug, Clone)]
pub struct NewCrowdBatch {
    pub run_id: Option<i64>,
    /// How the tasks were chosen (`mistags`, `false-negatives`, `false-positives`, `all`).
    pub source: String,
    pub votes_per_task: i64,
    pub created_by: String,
    pub tasks: Vec<NewCrowdTask>,
}

/// A task to record: an image and a facet, and the trusted answer of a gold question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCrowdTask {
    pub image_id: String,
    pub facet: String,
    pub gold_label: Option<String>,
}

/// A stored task with what a worker is shown and what applying its answer needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrowdTask {
    pub id: i64,
    pub batch_id: i64,
    /// The task id workers see.
    pub token: String,
    pub image_id: String,
    pub uri: String,
    pub facet: String,
    /// The facet's labels, in its order.
    pub labels: Vec<String>,
    /// The image's label version for the facet when the task was exported (0: none).
    pub label_version: i64,
    /// Its label now (`None`: none).
    pub current_label: Option<String>,
    pub gold_label: Option<String>,
}

/// A stored batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrowdBatch {
    pub id: i64,
    pub run_id: Option<i64>,
    pub source: String,
    pub votes_per_task: i64,
    pub created_by: String,
    pub created_at: i64,
    pub tasks: i64,
    pub votes: i64,
}

/// A vote to store: a worker's answer (a label of the task's facet) to the task `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCrowdVote {
    pub token: String,
    pub worker: String,
    pub label: String,
    pub assignment: Option<String>,
    pub at: i64,
}

/// A stored vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrowdVote {
    pub task_id: i64,
    pub worker: String,
    pub label: String,
}

/// What storing votes did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VotesStored {
    pub added: usize,
    /// Votes of a worker on a task that already had that worker's vote (kept as they were).
    pub already_stored: usize,
}

impl Catalog {
    /// Records a batch and its tasks in one transaction (each task with its image's current
    /// label version for the facet and a fresh random token); returns the batch id. An unknown
    /// image, facet or gold label is refused and nothing is written.
    pub async fn create_crowd_batch(&self, batch: &NewCrowdBatch) -> Result<i64, CatalogError> {
        let context = "recording a crowd batch";
        let mut tx = self.begin_write().await?;
        if let Some(run) = batch.run_id {
            ensure_run_exists(&mut tx, run).await?;
        }
        let vocabulary = Vocabulary::load(&mut tx).await?;
        let id: i64 = sqlx::query(
            "INSERT INTO crowd_batches (run_id, source, votes_per_task, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(batch.run_id)
        .bind(batch.source.as_str())
        .bind(batch.votes_per_task)
        .bind(batch.created_by.as_str())
        .bind(now_millis())
        .fetch_one(&mut *tx)
        .await
        .and_then(|row| row.try_get("id"))
        .map_err(db(context))?;
        for (n, task) in batch.tasks.iter().enumerate() {
            let facet = vocabulary.facet_id(&task.facet)?;
            let gold = task
                .gold_label
                .as_deref()
                .map(|label| vocabulary.label_id(facet, label, || format!("gold task {}", n + 1)))
                .transpose()?;
            let version: Option<i64> =
                sqlx::query("SELECT version FROM labels WHERE image_id = $1 AND facet_id = $2")
                    .bind(task.image_id.as_str())
                    .bind(facet)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db(context))?
                    .map(|row| row.try_get("version"))
                    .transpose()
                    .map_err(db(context))?;
            crate::runs::ensure_image_exists(&mut tx, &task.image_id, context).await?;
            sqlx::query(
                "INSERT INTO crowd_tasks (batch_id, token, image_id, facet_id, label_version, \
                 gold_label_id) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(random_token())
            .bind(task.image_id.as_str())
            .bind(facet)
            .bind(version.unwrap_or(0))
            .bind(gold)
            .execute(&mut *tx)
            .await
            .map_err(db(context))?;
        }
        tx.commit().await.map_err(db(context))?;
        Ok(id)
    }

    /// Every batch, newest first, with its numbers of tasks and votes.
    pub async fn crowd_batches(&self) -> Result<Vec<CrowdBatch>, CatalogError> {
        self.batches_where(None).await
    }

    /// Batch `batch`, if it exists.
    pub async fn crowd_batch(&self, batch: i64) -> Result<Option<CrowdBatch>, CatalogError> {
        Ok(self.batches_where(Some(batch)).await?.pop())
    }

    async fn batches_where(&self, batch: Option<i64>) -> Result<Vec<CrowdBatch>, CatalogError> {
        let context = "listing crowd batches";
        let filter = if batch.is_some() {
            "WHERE b.id = $1"
        } else {
            ""
        };
        let query = crate::sql::assembled(format!(
            "SELECT b.id, b.run_id, b.source, b.votes_per_task, b.created_by, b.created_at, \
             (SELECT COUNT(*) FROM crowd_tasks t WHERE t.batch_id = b.id) AS tasks, \
             (SELECT COUNT(*) FROM crowd_votes v JOIN crowd_tasks t ON t.id = v.task_id \
              WHERE t.batch_id = b.id) AS votes \
             FROM crowd_batches b {filter} ORDER BY b.id DESC"
        ));
        let query = match batch {
            Some(batch) => query.bind(batch),
            None => query,
        };
        let rows = query.fetch_all(&self.pool).await.map_err(db(context))?;
        rows.iter()
            .map(|row| {
                Ok(CrowdBatch {
                    id: row.try_get("id")?,
                    run_id: row.try_get("run_id")?,
                    source: row.try_get("source")?,
                    votes_per_task: row.try_get("votes_per_task")?,
                    created_by: row.try_get("created_by")?,
                    created_at: row.try_get("created_at")?,
                    tasks: row.try_get("tasks")?,
                    votes: row.try_get("votes")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db(context))
    }

    /// The tasks of batch `batch` in the order they were recorded, with their images' current
    /// labels. [`CatalogError::UnknownCrowdBatch`] for a batch that does not exist.
    pub async fn crowd_tasks(&self, batch: i64) -> Result<Vec<CrowdTask>, CatalogError> {
        self.tasks_where("t.batch_id = $1", batch.to_string(), Some(batch))
            .await
    }

    /// The task whose token is `token`, if any.
    pub async fn crowd_task(&self, token: &str) -> Result<Option<CrowdTask>, CatalogError> {
        Ok(self
            .tasks_where("t.token = $1", token.to_string(), None)
            .await?
            .pop())
    }

    async fn tasks_where(
        &self,
        filter: &str,
        value: String,
        batch: Option<i64>,
    ) -> Result<Vec<CrowdTask>, CatalogError> {
        let context = "reading crowd tasks";
        let mut conn = self.pool.acquire().await.map_err(db(context))?;
        let vocabulary = Vocabulary::load(&mut conn).await?;
        let sql = format!(
            "SELECT t.id, t.batch_id, t.token, t.image_id, i.uri, t.facet_id, t.label_version, \
             t.gold_label_id, l.label_id AS current_label_id \
             FROM crowd_tasks t JOIN images i ON i.id = t.image_id \
             LEFT JOIN labels l ON l.image_id = t.image_id AND l.facet_id = t.facet_id \
             WHERE {filter} ORDER BY t.id"
        );
        let query = crate::sql::assembled(sql);
        let query = match batch {
            Some(batch) => query.bind(batch),
            None => query.bind(value),
        };
        let rows = query.fetch_all(&mut *conn).await.map_err(db(context))?;
        if rows.is_empty()
            && let Some(batch) = batch
            && self.crowd_batch(batch).await?.is_none()
        {
            return Err(CatalogError::UnknownCrowdBatch(batch));
        }
        rows.iter()
            .map(|row| task_record(row, &vocabulary).map_err(db(context)))
            .collect()
    }

    /// Stores votes in one transaction; a worker's second vote on a task is ignored. Each vote
    /// must name a task and a label of its facet, else [`CatalogError::InvalidCrowdVote`] names
    /// the first bad one (by its place in `votes`) and nothing is written.
    pub async fn add_crowd_votes(
        &self,
        votes: &[NewCrowdVote],
    ) -> Result<VotesStored, CatalogError> {
        let context = "storing crowd votes";
        let mut tx = self.begin_write().await?;
        let vocabulary = Vocabulary::load(&mut tx).await?;
        let mut stored = VotesStored::default();
        for (n, vote) in votes.iter().enumerate() {
            let invalid = |reason: String| CatalogError::InvalidCrowdVote { index: n, reason };
            let row = sqlx::query("SELECT id, facet_id FROM crowd_tasks WHERE token = $1")
                .bind(vote.token.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db(context))?
                .ok_or_else(|| invalid(format!("no task {:?} in the catalogue", vote.token)))?;
            let task: i64 = row.try_get("id").map_err(db(context))?;
            let facet: i64 = row.try_get("facet_id").map_err(db(context))?;
            let label = vocabulary
                .label_id(facet, &vote.label, String::new)
                .map_err(|_| {
                    invalid(format!(
                        "{:?} is not a label of the task's facet",
                        vote.label
                    ))
                })?;
            let inserted = sqlx::query(
                "INSERT INTO crowd_votes (task_id, worker, label_id, assignment, at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (task_id, worker) DO NOTHING",
            )
            .bind(task)
            .bind(vote.worker.as_str())
            .bind(label)
            .bind(vote.assignment.as_deref())
            .bind(vote.at)
            .execute(&mut *tx)
            .await
            .map_err(db(context))?;
            if inserted.rows_affected() == 1 {
                stored.added += 1;
            } else {
                stored.already_stored += 1;
            }
        }
        tx.commit().await.map_err(db(context))?;
        Ok(stored)
    }

    /// The votes on batch `batch`'s tasks, by task then worker.
    pub async fn crowd_votes(&self, batch: i64) -> Result<Vec<CrowdVote>, CatalogError> {
        let context = "reading crowd votes";
        let rows = sqlx::query(
            "SELECT v.task_id, v.worker, fl.label FROM crowd_votes v \
             JOIN crowd_tasks t ON t.id = v.task_id JOIN facet_labels fl ON fl.id = v.label_id \
             WHERE t.batch_id = $1 ORDER BY v.task_id, v.worker",
        )
        .bind(batch)
        .fetch_all(&self.pool)
        .await
        .map_err(db(context))?;
        rows.iter()
            .map(|row| {
                Ok(CrowdVote {
                    task_id: row.try_get("task_id")?,
                    worker: row.try_get("worker")?,
                    label: row.try_get("label")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db(context))
    }
}

impl Catalog {
    /// The labels reviewers set (source `review`) that are still current, for facet `facet`
    /// or every facet: (image id, facet, label), by image id. The trusted answers of gold
    /// questions.
    pub async fn reviewed_labels(
        &self,
        facet: Option<&str>,
    ) -> Result<Vec<(String, String, String)>, CatalogError> {
        let context = "reading reviewed labels";
        let rows = sqlx::query(
            "SELECT l.image_id, f.name AS facet, fl.label FROM labels l \
             JOIN facets f ON f.id = l.facet_id JOIN facet_labels fl ON fl.id = l.label_id \
             JOIN images i ON i.id = l.image_id \
             WHERE l.source = $1 AND i.status = 'active' ORDER BY l.image_id, f.name",
        )
        .bind(crate::relabel::REVIEW_SOURCE)
        .fetch_all(&self.pool)
        .await
        .map_err(db(context))?;
        let all = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("image_id")?,
                    row.try_get("facet")?,
                    row.try_get("label")?,
                ))
            })
            .collect::<Result<Vec<(String, String, String)>, sqlx::Error>>()
            .map_err(db(context))?;
        Ok(all
            .into_iter()
            .filter(|(_, f, _)| facet.is_none_or(|wanted| wanted == f))
            .collect())
    }
}

fn task_record(row: &sqlx::any::AnyRow, vocabulary: &Vocabulary) -> Result<CrowdTask, sqlx::Error> {
    let facet: i64 = row.try_get("facet_id")?;
    let names = vocabulary.label_names(facet);
    let name_of = |id: Option<i64>| id.and_then(|id| names.get(&id).map(|n| n.to_string()));
    Ok(CrowdTask {
        id: row.try_get("id")?,
        batch_id: row.try_get("batch_id")?,
        token: row.try_get("token")?,
        image_id: row.try_get("image_id")?,
        uri: row.try_get("uri")?,
        facet: vocabulary.facet_name(facet).unwrap_or_default().to_string(),
        labels: vocabulary
            .labels(facet)
            .iter()
            .map(|(name, _)| name.clone())
            .collect(),
        label_version: row.try_get("label_version")?,
        current_label: name_of(row.try_get("current_label_id")?),
        gold_label: name_of(row.try_get("gold_label_id")?),
    })
}

/// 32 random hex digits.
fn random_token() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}
