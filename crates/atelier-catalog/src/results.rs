//! What training runs stored: what each run learnt per facet (its label order, class weights
//! and metrics) and its per-image predictions.
//!
//! Metrics are opaque JSON values here, stored as JSON text on both backends. Predictions keep
//! the run's label order (`run_facets.labels`): reordering a facet's labels later does not
//! change how a stored score vector is read.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::model::Split;
use crate::runs::ensure_run_exists;
use crate::sql::split_from_db;
use crate::sql::{ParamStyle, assembled, insert_values, now_millis, parse_json, select_where_in};
use crate::vocabulary::Vocabulary;

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

/// A results write being checked against the catalogue: the run, the catalogue's vocabulary
/// and the facet results as given.
struct ResultsCheck<'a> {
    run: i64,
    vocabulary: &'a Vocabulary,
    facets: &'a [RunFacetResult],
}

impl Catalog {
    /// Stores what a run learnt per facet and its predictions, replacing any earlier results
    /// of the run. All or nothing: an unknown facet, label or image, or a prediction that does
    /// not fit its facet's results, writes nothing.
    pub async fn record_run_results(
        &self,
        run: i64,
        facets: &[RunFacetResult],
        predictions: &[PredictionRow],
    ) -> Result<(), CatalogError> {
        let style = ParamStyle::for_backend(self.backend);
        let mut tx = self.begin_write().await?;
        ensure_run_exists(&mut tx, run).await?;
        let vocabulary = Vocabulary::load(&mut tx).await?;
        let check = ResultsCheck {
            run,
            vocabulary: &vocabulary,
            facets,
        };
        let resolved = check.resolve_facets()?;
        let mut rows = check.resolve_predictions(&resolved, predictions)?;
        ensure_images_exist(&mut tx, style, &rows).await?;
        replace_results(&mut tx, style, run, &resolved, &mut rows).await?;
        tx.commit().await.map_err(db("replacing a run's results"))?;
        Ok(())
    }

    /// A run's per-facet results in the run's facet order (the order they were recorded in).
    pub async fn run_facets(&self, run: i64) -> Result<Vec<RunFacetResult>, CatalogError> {
        let context = "reading run facets";
        let mut conn = self.pool.acquire().await.map_err(db(context))?;
        let rows = sqlx::query(
            "SELECT f.name AS facet, rf.labels, rf.class_weights, rf.train_metrics, \
             rf.test_metrics \
             FROM run_facets rf JOIN facets f ON f.id = rf.facet_id \
             WHERE rf.run_id = $1 ORDER BY rf.position",
        )
        .bind(run)
        .fetch_all(&mut *conn)
        .await
        .map_err(db(context))?;
        // Only an empty answer needs the run looked up.
        if rows.is_empty() {
            ensure_run_exists(&mut conn, run).await?;
        }
        rows.iter().map(run_facet_result).collect()
    }

    /// A run's predictions, for one facet or all, ordered by image id and then by the run's
    /// facet order.
    pub async fn predictions(
        &self,
        run: i64,
        facet: Option<&str>,
    ) -> Result<Vec<PredictionRecord>, CatalogError> {
        self.stored_predictions(run, facet, false).await
    }

    /// Like [`Catalog::predictions`], but only the predictions made by a model that never saw
    /// the image: test images, and train images predicted out of fold (by a cross-fitted
    /// model).
    pub async fn out_of_sample_predictions(
        &self,
        run: i64,
        facet: Option<&str>,
    ) -> Result<Vec<PredictionRecord>, CatalogError> {
        self.stored_predictions(run, facet, true).await
    }

    async fn stored_predictions(
        &self,
        run: i64,
        facet: Option<&str>,
        out_of_sample_only: bool,
    ) -> Result<Vec<PredictionRecord>, CatalogError> {
        let context = "reading predictions";
        let mut conn = self.pool.acquire().await.map_err(db(context))?;
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
}

impl<'a> ResultsCheck<'a> {
    fn invalid(&self, message: String) -> CatalogError {
        CatalogError::InvalidRunData {
            run: self.run,
            message,
        }
    }

    /// Checks each facet result and resolves its facet and labels to catalogue ids.
    fn resolve_facets(&self) -> Result<Vec<ResolvedFacet<'a>>, CatalogError> {
        let mut resolved: Vec<ResolvedFacet> = Vec::with_capacity(self.facets.len());
        for result in self.facets {
            let id = self.vocabulary.facet_id(&result.facet)?;
            if resolved.iter().any(|r| r.id == id) {
                return Err(self.invalid(format!(
                    "facet {:?} is listed twice in the results",
                    result.facet
                )));
            }
            self.check_class_weights(result)?;
            let known = self.vocabulary.label_ids(id);
            let run_labels = self.run_labels(id, result, &known)?;
            resolved.push(ResolvedFacet {
                id,
                result,
                run_labels,
                known,
            });
        }
        Ok(resolved)
    }

    /// One finite weight per label of the run's label order.
    fn check_class_weights(&self, result: &RunFacetResult) -> Result<(), CatalogError> {
        if result.class_weights.len() != result.labels.len() {
            return Err(self.invalid(format!(
                "facet {:?} has {} class weights for {} labels; give one weight per label",
                result.facet,
                result.class_weights.len(),
                result.labels.len()
            )));
        }
        if let Some(w) = result.class_weights.iter().find(|w| !w.is_finite()) {
            return Err(self.invalid(format!(
                "facet {:?} has the class weight {w}; weights must be finite",
                result.facet
            )));
        }
        Ok(())
    }

    /// The run's label order of facet `id` as catalogue ids; each label must be known, once.
    fn run_labels(
        &self,
        id: i64,
        result: &'a RunFacetResult,
        known: &HashMap<&str, i64>,
    ) -> Result<HashMap<&'a str, i64>, CatalogError> {
        let mut run_labels = HashMap::with_capacity(result.labels.len());
        for label in &result.labels {
            let Some(&label_id) = known.get(label.as_str()) else {
                return Err(self.vocabulary.unknown_label(
                    id,
                    format!(
                        "results of run {}, label order of facet {:?}",
                        self.run, result.facet
                    ),
                    label,
                ));
            };
            if run_labels.insert(label.as_str(), label_id).is_some() {
                return Err(self.invalid(format!(
                    "facet {:?} lists label {label:?} twice in its label order",
                    result.facet
                )));
            }
        }
        Ok(run_labels)
    }

    /// Checks every prediction against its facet's results and resolves it to ids; an image
    /// has at most one prediction per facet.
    fn resolve_predictions<'p>(
        &self,
        resolved: &[ResolvedFacet],
        predictions: &'p [PredictionRow],
    ) -> Result<Vec<PredictionInsert<'p>>, CatalogError> {
        let mut rows = Vec::with_capacity(predictions.len());
        let mut seen: HashSet<(i64, &str)> = HashSet::with_capacity(predictions.len());
        for p in predictions {
            let row = self.resolve_prediction(resolved, p)?;
            if !seen.insert((row.facet, row.image)) {
                return Err(self.invalid(format!(
                    "image {} has two predictions for facet {:?}",
                    p.image_id, p.facet
                )));
            }
            rows.push(row);
        }
        Ok(rows)
    }

    fn resolve_prediction<'p>(
        &self,
        resolved: &[ResolvedFacet],
        p: &'p PredictionRow,
    ) -> Result<PredictionInsert<'p>, CatalogError> {
        let vocabulary = self.vocabulary;
        let location = || {
            format!(
                "results of run {}, prediction for image {}",
                self.run, p.image_id
            )
        };
        let facet_id = vocabulary.facet_id(&p.facet)?;
        let Some(facet) = resolved.iter().find(|r| r.id == facet_id) else {
            let listed: Vec<&str> = self.facets.iter().map(|f| f.facet.as_str()).collect();
            return Err(self.invalid(format!(
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
                return Err(self.invalid(format!(
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
        self.check_scores(facet, p)?;
        Ok(PredictionInsert {
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
        })
    }

    /// One finite score per label of the run's label order, and a finite confidence.
    fn check_scores(&self, facet: &ResolvedFacet, p: &PredictionRow) -> Result<(), CatalogError> {
        if p.scores.len() != facet.result.labels.len() {
            return Err(self.invalid(format!(
                "the prediction for image {} facet {:?} has {} scores for the run's {} labels",
                p.image_id,
                p.facet,
                p.scores.len(),
                facet.result.labels.len()
            )));
        }
        if !p.confidence.is_finite() || p.scores.iter().any(|s| !s.is_finite()) {
            return Err(self.invalid(format!(
                "the prediction for image {} facet {:?} holds a non-finite confidence or score",
                p.image_id, p.facet
            )));
        }
        Ok(())
    }
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
            .map(|r| r.try_get("id"))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db("looking up predicted images"))?;
    match ids.into_iter().find(|id| !found.contains(*id)) {
        Some(missing) => Err(CatalogError::UnknownImage(missing.to_string())),
        None => Ok(()),
    }
}

/// Replaces the run's stored results with `resolved` and `rows`, inside the caller's
/// transaction, and marks the run updated.
async fn replace_results(
    conn: &mut AnyConnection,
    style: ParamStyle,
    run: i64,
    resolved: &[ResolvedFacet<'_>],
    rows: &mut [PredictionInsert<'_>],
) -> Result<(), CatalogError> {
    let context = "replacing a run's results";
    for table in ["predictions", "run_facets"] {
        assembled(format!("DELETE FROM {table} WHERE run_id = $1"))
            .bind(run)
            .execute(&mut *conn)
            .await
            .map_err(db(context))?;
    }
    let facet_rows: Vec<(usize, &ResolvedFacet)> = resolved.iter().enumerate().collect();
    insert_values(
        conn,
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
        conn,
        style,
        "INSERT INTO predictions (run_id, image_id, facet_id, split, label_id, \
         predicted_label_id, confidence, scores, out_of_fold)",
        9,
        "",
        rows,
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
        .execute(&mut *conn)
        .await
        .map_err(db(context))?;
    Ok(())
}

/// One row of `run_facets` joined to its facet's name.
fn run_facet_result(row: &AnyRow) -> Result<RunFacetResult, CatalogError> {
    let get = db("reading run facets");
    let text = |column: &'static str| -> Result<Option<String>, CatalogError> {
        row.try_get(column).map_err(&get)
    };
    let metrics = |column: &'static str| {
        text(column)?
            .map(|t| parse_json("run_facets", column, &t))
            .transpose()
    };
    Ok(RunFacetResult {
        facet: row.try_get("facet").map_err(&get)?,
        labels: parse_json("run_facets", "labels", &text("labels")?.unwrap_or_default())?,
        class_weights: parse_json(
            "run_facets",
            "class_weights",
            &text("class_weights")?.unwrap_or_default(),
        )?,
        train_metrics: metrics("train_metrics")?,
        test_metrics: metrics("test_metrics")?,
    })
}

/// The columns [`prediction_record`] reads, for a query over `predictions p` joined to
/// `images i`, `facets f`, `facet_labels pl` (predicted) and `facet_labels l` (label, LEFT).
pub(crate) const PREDICTION_COLUMNS: &str = "p.image_id, i.uri, f.name AS facet, p.split, \
     l.label AS label, pl.label AS predicted, p.confidence, p.scores, p.out_of_fold";

/// One row selected with [`PREDICTION_COLUMNS`].
pub(crate) fn prediction_record(row: &AnyRow) -> Result<PredictionRecord, CatalogError> {
    let get = db("reading predictions");
    let split: String = row.try_get("split").map_err(&get)?;
    let scores: String = row.try_get("scores").map_err(&get)?;
    let out_of_fold: i64 = row.try_get("out_of_fold").map_err(&get)?;
    Ok(PredictionRecord {
        image_id: row.try_get("image_id").map_err(&get)?,
        uri: row.try_get("uri").map_err(&get)?,
        facet: row.try_get("facet").map_err(&get)?,
        split: split_from_db(&split)?,
        label: row.try_get("label").map_err(&get)?,
        predicted: row.try_get("predicted").map_err(&get)?,
        confidence: row.try_get("confidence").map_err(&get)?,
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
