//! Training runs: their lifecycle (running, then completed or failed, or interrupted when its
//! process is gone; taking a failed or interrupted run under a lease, in `leases`, resumes it),
//! what each run learnt per facet (its label order, class weights and
//! metrics) and its per-image predictions, plus the reads a trainer starts from (the usable
//! images with their labels, and each facet's label order).
//!
//! Config, progress, summary and metrics are opaque JSON values here, so that the catalogue
//! does not depend on the training crate; they are stored as JSON text on both backends.
//! Predictions keep the run's label order (`run_facets.labels`): reordering a facet's labels
//! later does not change how a stored score vector is read.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};

use crate::error::{CatalogError, db};
use crate::leases::RunLease;
use crate::model::{Backend, Split};
use crate::sql::{ParamStyle, assembled, insert_values, now_millis, placeholders, select_where_in};

/// Where a run stands. A run starts `Running`; [`crate::Catalog::finish_run`] ends it;
/// [`crate::Catalog::interrupt_orphaned_runs`] marks a running run whose process is gone
/// `Interrupted`; [`crate::Catalog::take_run`] takes a failed or interrupted run back to
/// `Running`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    /// The process that trained it stopped without finishing (a crash, a restart): it can be
    /// resumed from its checkpoints, or marked failed.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// The status spelt as [`RunStatus::as_str`] spells it, or `None`.
    pub fn parse(value: &str) -> Option<RunStatus> {
        match value {
            "running" => Some(RunStatus::Running),
            "completed" => Some(RunStatus::Completed),
            "failed" => Some(RunStatus::Failed),
            "interrupted" => Some(RunStatus::Interrupted),
            _ => None,
        }
    }

    fn from_db(value: &str) -> Result<RunStatus, CatalogError> {
        RunStatus::parse(value).ok_or_else(|| CatalogError::Corrupt {
            table: "runs",
            column: "status",
            value: value.to_string(),
        })
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run to start; it begins as [`RunStatus::Running`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewRun {
    /// What was trained, e.g. `"facets"`.
    pub kind: String,
    pub config: Value,
    /// The run this one continues or was derived from.
    pub parent_run: Option<i64>,
    /// The process that records the run holds it from the start (so that a run queued but not
    /// yet training is not taken for an orphan); `None` leaves it unheld.
    pub lease: Option<RunLease>,
}

/// How a run ended. `status` must be `Completed` or `Failed`; `summary`, `model_ref` and
/// `error` replace whatever the run held.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunFinish {
    pub status: RunStatus,
    pub summary: Option<Value>,
    pub model_ref: Option<String>,
    pub error: Option<String>,
}

/// Everything stored about a run. Timestamps are UTC unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub kind: String,
    pub status: RunStatus,
    pub created_at: i64,
    pub updated_at: i64,
    /// When it last completed or failed; `None` while running.
    pub finished_at: Option<i64>,
    pub config: Value,
    pub progress: Option<Value>,
    pub summary: Option<Value>,
    pub model_ref: Option<String>,
    pub error: Option<String>,
    pub parent_run: Option<i64>,
    /// Who holds the run while it is queued or trains; `None` once it finished or was
    /// interrupted.
    pub lease: Option<RunLease>,
}

/// What a run learnt for one facet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunFacetResult {
    pub facet: String,
    /// The facet's label order at training time: the order of every score vector of the run.
    pub labels: Vec<String>,
    /// One weight per entry of `labels`.
    pub class_weights: Vec<f64>,
    pub train_metrics: Option<Value>,
    pub test_metrics: Option<Value>,
}

/// What a run predicted for one image and one facet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictionRow {
    pub image_id: String,
    pub facet: String,
    pub split: Split,
    /// The image's label when the run was trained; `None` if it had none.
    pub label: Option<String>,
    pub predicted: String,
    /// Probability of `predicted`.
    pub confidence: f64,
    /// Probabilities in the order of the run's `labels` for this facet.
    pub scores: Vec<f32>,
    /// The probabilities come from a cross-fitted model that never saw the image.
    pub out_of_fold: bool,
}

/// A stored prediction with the image's file path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictionRecord {
    pub image_id: String,
    pub uri: String,
    pub facet: String,
    pub split: Split,
    pub label: Option<String>,
    pub predicted: String,
    pub confidence: f64,
    pub scores: Vec<f32>,
    pub out_of_fold: bool,
}

/// An active image with its labels for the facets asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelledImage {
    pub id: String,
    pub uri: String,
    pub split: Split,
    /// One entry per requested facet, in the order requested; `None` where the image has no
    /// label for that facet.
    pub labels: Vec<Option<String>>,
}

const RUN_COLUMNS: &str = "id, kind, status, created_at, updated_at, finished_at, config, \
                           progress, summary, model_ref, error, parent_run, lease_owner, \
                           lease_expires_at";

pub(crate) async fn create_run(
    pool: &AnyPool,
    backend: Backend,
    new: &NewRun,
) -> Result<i64, CatalogError> {
    let context = "creating a run";
    let now = now_millis();
    let mut tx = crate::begin_write(pool, backend).await?;
    if let Some(parent) = new.parent_run {
        ensure_run_exists(&mut tx, parent).await?;
    }
    let id = sqlx::query(
        "INSERT INTO runs (kind, status, created_at, updated_at, config, parent_run, \
         lease_owner, lease_expires_at) \
         VALUES ($1, 'running', $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(new.kind.as_str())
    .bind(now)
    .bind(now)
    .bind(new.config.to_string())
    .bind(new.parent_run)
    .bind(new.lease.as_ref().map(|l| l.owner.clone()))
    .bind(new.lease.as_ref().map(|l| l.expires_at))
    .fetch_one(&mut *tx)
    .await
    .and_then(|row| row.try_get::<i64, _>(0))
    .map_err(db(context))?;
    tx.commit().await.map_err(db(context))?;
    Ok(id)
}

pub(crate) async fn set_run_progress(
    pool: &AnyPool,
    run: i64,
    progress: &Value,
) -> Result<(), CatalogError> {
    let context = "recording run progress";
    let updated = sqlx::query(
        "UPDATE runs SET progress = $1, updated_at = $2 WHERE id = $3 AND status = 'running'",
    )
    .bind(progress.to_string())
    .bind(now_millis())
    .bind(run)
    .execute(pool)
    .await
    .map_err(db(context))?;
    if updated.rows_affected() == 0 {
        return Err(refusal(pool, run, "record progress", "a running").await);
    }
    Ok(())
}

/// Which runs a finish may end.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FinishGuard<'a> {
    /// A running or interrupted run, whoever holds it.
    Any,
    /// A running run that this owner still holds.
    HeldBy(&'a str),
    /// An interrupted run only (marking it failed).
    Interrupted,
}

pub(crate) async fn finish_run(
    pool: &AnyPool,
    run: i64,
    finish: &RunFinish,
    guard: FinishGuard<'_>,
) -> Result<(), CatalogError> {
    let context = "finishing a run";
    if matches!(finish.status, RunStatus::Running | RunStatus::Interrupted) {
        return Err(CatalogError::InvalidRunData {
            run,
            message: "a run is finished as completed or failed".to_string(),
        });
    }
    let now = now_millis();
    let (condition, holder, allowed) = match guard {
        FinishGuard::Any => (
            "status IN ('running', 'interrupted') AND $8 = ''",
            "",
            "a running or interrupted",
        ),
        FinishGuard::HeldBy(owner) => (
            "status = 'running' AND lease_owner = $8",
            owner,
            "a running run this process holds, or",
        ),
        FinishGuard::Interrupted => ("status = 'interrupted' AND $8 = ''", "", "an interrupted"),
    };
    let sql = format!(
        "UPDATE runs SET status = $1, summary = $2, model_ref = $3, error = $4, \
         finished_at = $5, updated_at = $6, lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = $7 AND {condition}"
    );
    let updated = assembled(sql)
        .bind(finish.status.as_str())
        .bind(finish.summary.as_ref().map(Value::to_string))
        .bind(finish.model_ref.as_deref())
        .bind(finish.error.as_deref())
        .bind(now)
        .bind(now)
        .bind(run)
        .bind(holder.to_string())
        .execute(pool)
        .await
        .map_err(db(context))?;
    if updated.rows_affected() == 0 {
        return Err(refusal(pool, run, "finish it", allowed).await);
    }
    Ok(())
}

/// Why a guarded `UPDATE runs` matched nothing: the run is unknown or in the wrong state.
async fn refusal(
    pool: &AnyPool,
    run: i64,
    action: &'static str,
    allowed: &'static str,
) -> CatalogError {
    let status = sqlx::query_scalar::<_, String>("SELECT status FROM runs WHERE id = $1")
        .bind(run)
        .fetch_optional(pool)
        .await;
    match status {
        Ok(None) => CatalogError::UnknownRun(run),
        Ok(Some(status)) => CatalogError::RunState {
            run,
            status,
            action,
            allowed,
        },
        Err(source) => CatalogError::Database {
            context: "reading a run's status",
            source,
        },
    }
}

pub(crate) async fn ensure_run_exists(
    conn: &mut AnyConnection,
    run: i64,
) -> Result<(), CatalogError> {
    let found = sqlx::query("SELECT 1 FROM runs WHERE id = $1")
        .bind(run)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("looking up a run"))?;
    match found {
        Some(_) => Ok(()),
        None => Err(CatalogError::UnknownRun(run)),
    }
}

pub(crate) async fn run(pool: &AnyPool, id: i64) -> Result<Option<RunRecord>, CatalogError> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
    let row = assembled(sql)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db("reading a run"))?;
    row.as_ref().map(run_record).transpose()
}

pub(crate) async fn runs(pool: &AnyPool) -> Result<Vec<RunRecord>, CatalogError> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC");
    assembled(sql)
        .fetch_all(pool)
        .await
        .map_err(db("listing runs"))?
        .iter()
        .map(run_record)
        .collect()
}

fn run_record(row: &AnyRow) -> Result<RunRecord, CatalogError> {
    let get = db("reading a run");
    let status: String = row.try_get(2).map_err(&get)?;
    let json = |index: usize, column: &'static str| -> Result<Option<Value>, CatalogError> {
        let text: Option<String> = row.try_get(index).map_err(&get)?;
        text.map(|t| parse_json("runs", column, &t)).transpose()
    };
    Ok(RunRecord {
        id: row.try_get(0).map_err(&get)?,
        kind: row.try_get(1).map_err(&get)?,
        status: RunStatus::from_db(&status)?,
        created_at: row.try_get(3).map_err(&get)?,
        updated_at: row.try_get(4).map_err(&get)?,
        finished_at: row.try_get(5).map_err(&get)?,
        config: json(6, "config")?.unwrap_or(Value::Null),
        progress: json(7, "progress")?,
        summary: json(8, "summary")?,
        model_ref: row.try_get(9).map_err(&get)?,
        error: row.try_get(10).map_err(&get)?,
        parent_run: row.try_get(11).map_err(&get)?,
        lease: match (
            row.try_get::<Option<String>, _>(12).map_err(&get)?,
            row.try_get::<Option<i64>, _>(13).map_err(&get)?,
        ) {
            (Some(owner), Some(expires_at)) => Some(RunLease { owner, expires_at }),
            _ => None,
        },
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    column: &'static str,
    text: &str,
) -> Result<T, CatalogError> {
    serde_json::from_str(text).map_err(|_| CatalogError::Corrupt {
        table,
        column,
        value: text.chars().take(200).collect(),
    })
}

/// The catalogue's facets and labels, read once per operation (both tables are small).
pub(crate) struct Vocabulary {
    /// (id, name) in creation order.
    facets: Vec<(i64, String)>,
    /// Per facet id: labels in their stored order, with their ids.
    labels: HashMap<i64, Vec<(String, i64)>>,
}

impl Vocabulary {
    pub(crate) async fn load(conn: &mut AnyConnection) -> Result<Vocabulary, CatalogError> {
        let context = "loading facets and labels";
        let facets = sqlx::query("SELECT id, name FROM facets ORDER BY id")
            .fetch_all(&mut *conn)
            .await
            .map_err(db(context))?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(db(context))?;
        let mut labels: HashMap<i64, Vec<(String, i64)>> = HashMap::new();
        let rows = sqlx::query(
            "SELECT facet_id, label, id FROM facet_labels ORDER BY facet_id, position, id",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(db(context))?;
        for row in rows {
            let facet: i64 = row.try_get(0).map_err(db(context))?;
            labels.entry(facet).or_default().push((
                row.try_get(1).map_err(db(context))?,
                row.try_get(2).map_err(db(context))?,
            ));
        }
        Ok(Vocabulary { facets, labels })
    }

    /// The id of the facet named `name`, or [`CatalogError::UnknownFacet`] listing the others.
    pub(crate) fn facet_id(&self, name: &str) -> Result<i64, CatalogError> {
        self.facets
            .iter()
            .find(|(_, n)| n == name)
            .map(|(id, _)| *id)
            .ok_or_else(|| CatalogError::UnknownFacet {
                facet: name.to_string(),
                known: if self.facets.is_empty() {
                    "no facets yet".to_string()
                } else {
                    let names: Vec<&str> = self.facets.iter().map(|(_, n)| n.as_str()).collect();
                    names.join(", ")
                },
            })
    }

    /// The name of the facet with id `id`.
    pub(crate) fn facet_name(&self, id: i64) -> Option<&str> {
        self.facets
            .iter()
            .find(|(facet, _)| *facet == id)
            .map(|(_, name)| name.as_str())
    }

    /// A facet's labels with their ids, in stored order.
    pub(crate) fn labels(&self, facet: i64) -> &[(String, i64)] {
        self.labels.get(&facet).map_or(&[], Vec::as_slice)
    }

    /// Label name → id for one facet, for the many lookups of a results write.
    pub(crate) fn label_ids(&self, facet: i64) -> HashMap<&str, i64> {
        self.labels(facet)
            .iter()
            .map(|(name, id)| (name.as_str(), *id))
            .collect()
    }

    /// Label id → name for one facet, to turn rows read by id back into names.
    pub(crate) fn label_names(&self, facet: i64) -> HashMap<i64, &str> {
        self.labels(facet)
            .iter()
            .map(|(name, id)| (*id, name.as_str()))
            .collect()
    }

    /// The id of label `label` of facet `facet`, or [`CatalogError::UnknownLabel`] at
    /// `location` listing the facet's labels.
    pub(crate) fn label_id(
        &self,
        facet: i64,
        label: &str,
        location: impl FnOnce() -> String,
    ) -> Result<i64, CatalogError> {
        self.labels(facet)
            .iter()
            .find(|(name, _)| name == label)
            .map(|(_, id)| *id)
            .ok_or_else(|| self.unknown_label(facet, location(), label))
    }

    pub(crate) fn unknown_label(&self, facet: i64, location: String, label: &str) -> CatalogError {
        let name = self
            .facets
            .iter()
            .find(|(id, _)| *id == facet)
            .map_or("", |(_, n)| n.as_str());
        let known: Vec<&str> = self.labels(facet).iter().map(|(l, _)| l.as_str()).collect();
        CatalogError::UnknownLabel {
            location,
            facet: name.to_string(),
            label: label.to_string(),
            known: if known.is_empty() {
                "no labels".to_string()
            } else {
                known.join(", ")
            },
        }
    }
}

/// One facet of a results write, resolved against the catalogue.
struct ResolvedFacet<'a> {
    id: i64,
    result: &'a RunFacetResult,
    /// The run's labels: name → catalogue id.
    run_labels: HashMap<&'a str, i64>,
    /// Every label of the facet in the catalogue, for the images' own labels.
    known: HashMap<&'a str, i64>,
}

/// A prediction ready to bind.
struct PredictionInsert<'a> {
    image: &'a str,
    facet: i64,
    split: Split,
    label: Option<i64>,
    predicted: i64,
    confidence: f64,
    scores: String,
    out_of_fold: bool,
}

pub(crate) async fn record_run_results(
    pool: &AnyPool,
    backend: Backend,
    run: i64,
    facets: &[RunFacetResult],
    predictions: &[PredictionRow],
) -> Result<(), CatalogError> {
    let style = ParamStyle::for_backend(backend);
    let mut tx = crate::begin_write(pool, backend).await?;
    ensure_run_exists(&mut tx, run).await?;
    let vocabulary = Vocabulary::load(&mut tx).await?;
    let invalid = |message: String| CatalogError::InvalidRunData { run, message };

    let mut resolved: Vec<ResolvedFacet> = Vec::with_capacity(facets.len());
    for result in facets {
        let id = vocabulary.facet_id(&result.facet)?;
        if resolved.iter().any(|r| r.id == id) {
            return Err(invalid(format!(
                "facet {:?} is listed twice in the results",
                result.facet
            )));
        }
        if result.class_weights.len() != result.labels.len() {
            return Err(invalid(format!(
                "facet {:?} has {} class weights for {} labels; give one weight per label",
                result.facet,
                result.class_weights.len(),
                result.labels.len()
            )));
        }
        if let Some(w) = result.class_weights.iter().find(|w| !w.is_finite()) {
            return Err(invalid(format!(
                "facet {:?} has the class weight {w}; weights must be finite",
                result.facet
            )));
        }
        let known = vocabulary.label_ids(id);
        let mut run_labels = HashMap::with_capacity(result.labels.len());
        for label in &result.labels {
            let Some(&label_id) = known.get(label.as_str()) else {
                return Err(vocabulary.unknown_label(
                    id,
                    format!(
                        "results of run {run}, label order of facet {:?}",
                        result.facet
                    ),
                    label,
                ));
            };
            if run_labels.insert(label.as_str(), label_id).is_some() {
                return Err(invalid(format!(
                    "facet {:?} lists label {label:?} twice in its label order",
                    result.facet
                )));
            }
        }
        resolved.push(ResolvedFacet {
            id,
            result,
            run_labels,
            known,
        });
    }

    let mut rows = Vec::with_capacity(predictions.len());
    let mut seen: HashSet<(i64, &str)> = HashSet::with_capacity(predictions.len());
    for p in predictions {
        let location = || format!("results of run {run}, prediction for image {}", p.image_id);
        let facet_id = vocabulary.facet_id(&p.facet)?;
        let Some(facet) = resolved.iter().find(|r| r.id == facet_id) else {
            let listed: Vec<&str> = facets.iter().map(|f| f.facet.as_str()).collect();
            return Err(invalid(format!(
                "the prediction for image {} is for facet {:?}, which the results do not list \
                 (they list: {}); add its RunFacetResult",
                p.image_id,
                p.facet,
                listed.join(", ")
            )));
        };
        let label = match &p.label {
            None => None,
            Some(name) => match facet.known.get(name.as_str()) {
                Some(&id) => Some(id),
                None => return Err(vocabulary.unknown_label(facet_id, location(), name)),
            },
        };
        let predicted = match facet.run_labels.get(p.predicted.as_str()) {
            Some(&id) => id,
            None if facet.known.contains_key(p.predicted.as_str()) => {
                return Err(invalid(format!(
                    "the prediction for image {} predicts {:?}, which is not in the run's label \
                     order for facet {:?} ({})",
                    p.image_id,
                    p.predicted,
                    p.facet,
                    facet.result.labels.join(", ")
                )));
            }
            None => return Err(vocabulary.unknown_label(facet_id, location(), &p.predicted)),
        };
        if p.scores.len() != facet.result.labels.len() {
            return Err(invalid(format!(
                "the prediction for image {} facet {:?} has {} scores for the run's {} labels",
                p.image_id,
                p.facet,
                p.scores.len(),
                facet.result.labels.len()
            )));
        }
        if !p.confidence.is_finite() || p.scores.iter().any(|s| !s.is_finite()) {
            return Err(invalid(format!(
                "the prediction for image {} facet {:?} holds a non-finite confidence or score",
                p.image_id, p.facet
            )));
        }
        if !seen.insert((facet_id, p.image_id.as_str())) {
            return Err(invalid(format!(
                "image {} has two predictions for facet {:?}",
                p.image_id, p.facet
            )));
        }
        rows.push(PredictionInsert {
            image: &p.image_id,
            facet: facet_id,
            split: p.split,
            label,
            predicted,
            confidence: p.confidence,
            // Vec<f32> serialises infallibly; finiteness was checked above, so no score turns
            // into JSON null.
            scores: serde_json::to_string(&p.scores).unwrap_or_default(),
            out_of_fold: p.out_of_fold,
        });
    }
    ensure_images_exist(&mut tx, style, &rows).await?;

    let context = "replacing a run's results";
    for table in ["predictions", "run_facets"] {
        assembled(format!("DELETE FROM {table} WHERE run_id = $1"))
            .bind(run)
            .execute(&mut *tx)
            .await
            .map_err(db(context))?;
    }
    let facet_rows: Vec<(usize, &ResolvedFacet)> = resolved.iter().enumerate().collect();
    insert_values(
        &mut tx,
        style,
        "INSERT INTO run_facets (run_id, facet_id, position, labels, class_weights, \
         train_metrics, test_metrics)",
        7,
        "",
        &facet_rows,
        |q, (position, f)| {
            q.bind(run)
                .bind(f.id)
                .bind(*position as i64)
                .bind(serde_json::to_string(&f.result.labels).unwrap_or_default())
                .bind(serde_json::to_string(&f.result.class_weights).unwrap_or_default())
                .bind(f.result.train_metrics.as_ref().map(Value::to_string))
                .bind(f.result.test_metrics.as_ref().map(Value::to_string))
        },
    )
    .await
    .map_err(db("writing run facets"))?;

    // In primary-key order, every insert appends to the end of the table's B-tree.
    rows.sort_unstable_by(|a, b| (a.facet, a.image).cmp(&(b.facet, b.image)));
    insert_values(
        &mut tx,
        style,
        "INSERT INTO predictions (run_id, image_id, facet_id, split, label_id, \
         predicted_label_id, confidence, scores, out_of_fold)",
        9,
        "",
        &rows,
        |q, r| {
            q.bind(run)
                .bind(r.image)
                .bind(r.facet)
                .bind(r.split.as_str())
                .bind(r.label)
                .bind(r.predicted)
                .bind(r.confidence)
                .bind(r.scores.as_str())
                .bind(i64::from(r.out_of_fold))
        },
    )
    .await
    .map_err(db("writing predictions"))?;

    sqlx::query("UPDATE runs SET updated_at = $1 WHERE id = $2")
        .bind(now_millis())
        .bind(run)
        .execute(&mut *tx)
        .await
        .map_err(db(context))?;
    tx.commit().await.map_err(db(context))?;
    Ok(())
}

/// Names the first predicted image the catalogue does not hold, rather than letting a foreign
/// key failure say only that some row was wrong.
async fn ensure_images_exist(
    conn: &mut AnyConnection,
    style: ParamStyle,
    rows: &[PredictionInsert<'_>],
) -> Result<(), CatalogError> {
    let mut distinct = HashSet::new();
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r.image)
        .filter(|id| distinct.insert(*id))
        .collect();
    let found: HashSet<String> =
        select_where_in(conn, style, "SELECT id FROM images WHERE id IN (", "", &ids)
            .await
            .map_err(db("looking up predicted images"))?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db("looking up predicted images"))?;
    match ids.into_iter().find(|id| !found.contains(*id)) {
        Some(missing) => Err(CatalogError::UnknownImage(missing.to_string())),
        None => Ok(()),
    }
}

pub(crate) async fn run_facets(
    pool: &AnyPool,
    run: i64,
) -> Result<Vec<RunFacetResult>, CatalogError> {
    let context = "reading run facets";
    let mut conn = pool.acquire().await.map_err(db(context))?;
    ensure_run_exists(&mut conn, run).await?;
    let rows = sqlx::query(
        "SELECT f.name, rf.labels, rf.class_weights, rf.train_metrics, rf.test_metrics \
         FROM run_facets rf JOIN facets f ON f.id = rf.facet_id \
         WHERE rf.run_id = $1 ORDER BY rf.position",
    )
    .bind(run)
    .fetch_all(&mut *conn)
    .await
    .map_err(db(context))?;
    rows.iter()
        .map(|row| {
            let text = |index: usize| -> Result<Option<String>, CatalogError> {
                row.try_get(index).map_err(db(context))
            };
            let metrics = |index: usize, column| {
                text(index)?
                    .map(|t| parse_json("run_facets", column, &t))
                    .transpose()
            };
            Ok(RunFacetResult {
                facet: row.try_get(0).map_err(db(context))?,
                labels: parse_json("run_facets", "labels", &text(1)?.unwrap_or_default())?,
                class_weights: parse_json(
                    "run_facets",
                    "class_weights",
                    &text(2)?.unwrap_or_default(),
                )?,
                train_metrics: metrics(3, "train_metrics")?,
                test_metrics: metrics(4, "test_metrics")?,
            })
        })
        .collect()
}

pub(crate) async fn predictions(
    pool: &AnyPool,
    run: i64,
    facet: Option<&str>,
    out_of_sample_only: bool,
) -> Result<Vec<PredictionRecord>, CatalogError> {
    let context = "reading predictions";
    let mut conn = pool.acquire().await.map_err(db(context))?;
    ensure_run_exists(&mut conn, run).await?;
    let facet_id = match facet {
        Some(name) => Some(Vocabulary::load(&mut conn).await?.facet_id(name)?),
        None => None,
    };
    let sql = format!(
        "SELECT {PREDICTION_COLUMNS} \
         FROM predictions p \
         JOIN run_facets rf ON rf.run_id = p.run_id AND rf.facet_id = p.facet_id \
         JOIN images i ON i.id = p.image_id \
         JOIN facets f ON f.id = p.facet_id \
         JOIN facet_labels pl ON pl.id = p.predicted_label_id \
         LEFT JOIN facet_labels l ON l.id = p.label_id \
         WHERE p.run_id = $1 {} {} \
         ORDER BY p.image_id, rf.position",
        if facet_id.is_some() {
            "AND p.facet_id = $2"
        } else {
            ""
        },
        if out_of_sample_only {
            "AND (p.split = 'test' OR p.out_of_fold = 1)"
        } else {
            ""
        }
    );
    let mut query = assembled(sql).bind(run);
    if let Some(id) = facet_id {
        query = query.bind(id);
    }
    let rows = query.fetch_all(&mut *conn).await.map_err(db(context))?;
    rows.iter().map(prediction_record).collect()
}

/// The columns [`prediction_record`] reads, for a query over `predictions p` joined to
/// `images i`, `facets f`, `facet_labels pl` (predicted) and `facet_labels l` (label, LEFT).
pub(crate) const PREDICTION_COLUMNS: &str = "p.image_id, i.uri, f.name, p.split, l.label, \
     pl.label, p.confidence, p.scores, p.out_of_fold";

/// One row selected with [`PREDICTION_COLUMNS`].
pub(crate) fn prediction_record(row: &AnyRow) -> Result<PredictionRecord, CatalogError> {
    let get = db("reading predictions");
    let split: String = row.try_get(3).map_err(&get)?;
    let scores: String = row.try_get(7).map_err(&get)?;
    let out_of_fold: i64 = row.try_get(8).map_err(&get)?;
    Ok(PredictionRecord {
        image_id: row.try_get(0).map_err(&get)?,
        uri: row.try_get(1).map_err(&get)?,
        facet: row.try_get(2).map_err(&get)?,
        split: Split::from_db(&split)?,
        label: row.try_get(4).map_err(&get)?,
        predicted: row.try_get(5).map_err(&get)?,
        confidence: row.try_get(6).map_err(&get)?,
        scores: parse_json("predictions", "scores", &scores)?,
        out_of_fold: match out_of_fold {
            0 => false,
            1 => true,
            other => {
                return Err(CatalogError::Corrupt {
                    table: "predictions",
                    column: "out_of_fold",
                    value: other.to_string(),
                });
            }
        },
    })
}

pub(crate) async fn training_images(
    pool: &AnyPool,
    backend: Backend,
    facets: &[String],
) -> Result<Vec<LabelledImage>, CatalogError> {
    let context = "listing training images";
    let mut conn = pool.acquire().await.map_err(db(context))?;
    let vocabulary = Vocabulary::load(&mut conn).await?;
    let facet_ids = facets
        .iter()
        .map(|name| vocabulary.facet_id(name))
        .collect::<Result<Vec<i64>, _>>()?;
    let mut distinct = facet_ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    // One statement, so that images and labels come from one snapshot; an image has one row
    // per requested facet it carries a label for (or one row without a label). A join per
    // facet instead would hit SQLite's 64-table limit with many facets.
    let sql = if distinct.is_empty() {
        // No labels to read. (A join `ON 1 = 0` instead would make SQLite scan every label
        // once per image.)
        "SELECT i.id, i.uri, i.split, NULL, NULL FROM images i \
         WHERE i.status = 'active' ORDER BY i.id"
            .to_string()
    } else {
        format!(
            "SELECT i.id, i.uri, i.split, l.facet_id, fl.label FROM images i \
             LEFT JOIN labels l ON l.image_id = i.id AND l.facet_id IN ({}) \
             LEFT JOIN facet_labels fl ON fl.id = l.label_id \
             WHERE i.status = 'active' ORDER BY i.id",
            placeholders(ParamStyle::for_backend(backend), 1, distinct.len())
        )
    };
    let mut query = assembled(sql);
    for id in &distinct {
        query = query.bind(*id);
    }
    let mut images: Vec<LabelledImage> = Vec::new();
    for row in query.fetch_all(&mut *conn).await.map_err(db(context))? {
        let get = db(context);
        let id: String = row.try_get(0).map_err(&get)?;
        if images.last().is_none_or(|last| last.id != id) {
            let split: String = row.try_get(2).map_err(&get)?;
            images.push(LabelledImage {
                id,
                uri: row.try_get(1).map_err(&get)?,
                split: Split::from_db(&split)?,
                labels: vec![None; facets.len()],
            });
        }
        let facet: Option<i64> = row.try_get(3).map_err(&get)?;
        let label: Option<String> = row.try_get(4).map_err(&get)?;
        let (Some(facet), Some(label), Some(image)) = (facet, label, images.last_mut()) else {
            continue;
        };
        // A facet may be requested twice; each of its slots gets the label.
        for (slot, id) in facet_ids.iter().enumerate() {
            if *id == facet {
                image.labels[slot] = Some(label.clone());
            }
        }
    }
    Ok(images)
}

pub(crate) async fn facet_label_orders(
    pool: &AnyPool,
    facets: &[String],
) -> Result<Vec<(String, Vec<String>)>, CatalogError> {
    let mut conn = pool.acquire().await.map_err(db("reading label orders"))?;
    let vocabulary = Vocabulary::load(&mut conn).await?;
    facets
        .iter()
        .map(|name| {
            let id = vocabulary.facet_id(name)?;
            let labels = vocabulary
                .labels(id)
                .iter()
                .map(|(l, _)| l.clone())
                .collect();
            Ok((name.clone(), labels))
        })
        .collect()
}

/// The dress box `[x0, y0, x1, y1]` (pixels) of every active image that has one; an image with
/// several dress boxes gets its first.
pub(crate) async fn dress_boxes(pool: &AnyPool) -> Result<HashMap<String, [f64; 4]>, CatalogError> {
    let rows = sqlx::query(
        "SELECT b.image_id, b.x0, b.y0, b.x1, b.y1 FROM boxes b \
         JOIN images i ON i.id = b.image_id \
         WHERE b.kind = 'dress' AND i.status = 'active' ORDER BY b.image_id, b.id",
    )
    .fetch_all(pool)
    .await
    .map_err(db("reading dress boxes"))?;
    let mut boxes = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get(0).map_err(db("reading dress boxes"))?;
        let coords = [1, 2, 3, 4].map(|column| row.try_get::<f64, _>(column).unwrap_or(f64::NAN));
        if coords.iter().all(|c| c.is_finite()) {
            boxes.entry(id).or_insert(coords);
        }
    }
    Ok(boxes)
}
