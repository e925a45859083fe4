//! The queries behind the review pages: a run's mistakes for one label, one confusion-matrix
//! cell, one image's predictions, and the current labels of a facet.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::model::{Backend, Split};
use crate::results::{PREDICTION_COLUMNS, PredictionRecord, prediction_record};
use crate::runs::{ensure_image_exists, ensure_run_exists};
use crate::sql::split_from_db;
use crate::sql::{AnyQuery, assembled};
use crate::vocabulary::Vocabulary;

/// Which predictions of a run a review page shows, for one facet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReviewFilter {
    /// Labelled `label` when the run was trained, but predicted as something else.
    FalseNegatives { label: String },
    /// Predicted `label`, but labelled something else when the run was trained (images
    /// without a label are left out).
    FalsePositives { label: String },
    /// One cell of the confusion matrix: labelled `label`, predicted `predicted` (the two may
    /// be equal: the diagonal).
    Cell { label: String, predicted: String },
}

/// A page of a run's predictions for one facet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewQuery {
    pub run: i64,
    pub facet: String,
    pub filter: ReviewFilter,
    /// Only this split; `None`: both.
    pub split: Option<Split>,
    /// Items to skip (of the ordered result).
    pub offset: u64,
    /// Most items to return.
    pub limit: u64,
}

/// One prediction on a review page, with the image's current label to edit against.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewItem {
    pub image_id: String,
    pub split: Split,
    /// The image's label when the run was trained.
    pub label_at_training: Option<String>,
    /// The image's label now (a reviewer may have changed it since the run).
    pub current_label: Option<String>,
    /// The version of the current label, to send back with an edit; 0 when the image never
    /// had a label for the facet.
    pub version: i64,
    pub predicted: String,
    /// Probability of `predicted`.
    pub confidence: f64,
}

/// The items of one page and how many items the whole query has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewPage {
    pub total: u64,
    pub items: Vec<ReviewItem>,
}

/// The statement parts a review page's count and page share: the `WITH` clause, the
/// conditions on `predictions p`, and the label ids bound as `$3` and `$4`.
struct PageFilter {
    with: &'static str,
    conditions: String,
    first: i64,
    second: i64,
}

impl Catalog {
    /// One page of a run's predictions for a facet, picked by [`ReviewFilter`], of active
    /// images only, most confident first (ties by image id), with each image's current label
    /// and version. `total` counts every matching item, not only the page's. An unknown run,
    /// facet or label is an error, and so is a facet the run has no results for
    /// ([`CatalogError::FacetNotInRun`]).
    pub async fn review_page(&self, query: &ReviewQuery) -> Result<ReviewPage, CatalogError> {
        let context = "reading a review page";
        let mut conn = self.pool.acquire().await.map_err(db(context))?;
        ensure_run_exists(&mut conn, query.run).await?;
        let vocabulary = Vocabulary::load(&mut conn).await?;
        let facet = vocabulary.facet_id(&query.facet)?;
        ensure_run_has_facet(&mut conn, query.run, facet, &query.facet).await?;
        let filter = page_filter(&vocabulary, facet, query, self.backend)?;
        let total = count_matches(&mut conn, query, facet, &filter).await?;
        let rows = page_rows(&mut conn, query, facet, &filter).await?;
        let items = rows
            .iter()
            .map(|row| review_item(row, &vocabulary, facet))
            .collect::<Result<_, _>>()?;
        Ok(ReviewPage {
            total: total.max(0) as u64,
            items,
        })
    }

    /// A run's predictions of one image, in the run's facet order (empty if the run did not
    /// predict the image). Unknown runs and images are errors.
    pub async fn image_predictions(
        &self,
        image: &str,
        run: i64,
    ) -> Result<Vec<PredictionRecord>, CatalogError> {
        let context = "reading an image's predictions";
        let mut conn = self.pool.acquire().await.map_err(db(context))?;
        // From the run's few facets to one primary-key look-up of a prediction each. SQLite
        // takes CROSS JOIN as "in this order" (left to right); without it, it may start from the
        // image and scan every prediction of the run. PostgreSQL plans it as an inner join.
        let sql = format!(
            "SELECT {PREDICTION_COLUMNS} \
             FROM run_facets rf CROSS JOIN predictions p \
             JOIN images i ON i.id = p.image_id \
             JOIN facets f ON f.id = p.facet_id \
             JOIN facet_labels pl ON pl.id = p.predicted_label_id \
             LEFT JOIN facet_labels l ON l.id = p.label_id \
             WHERE rf.run_id = $1 AND p.run_id = rf.run_id AND p.facet_id = rf.facet_id \
               AND p.image_id = $2 \
             ORDER BY rf.position"
        );
        let rows = assembled(sql)
            .bind(run)
            .bind(image)
            .fetch_all(&mut *conn)
            .await
            .map_err(db(context))?;
        // A prediction names its run and image; only an empty answer needs them looked up.
        if rows.is_empty() {
            ensure_run_exists(&mut conn, run).await?;
            ensure_image_exists(&mut conn, image, context).await?;
        }
        rows.iter().map(prediction_record).collect()
    }

    /// Image id → (current label, version) for every active image with a label row for
    /// `facet` (a cleared label is `None` with its version).
    pub async fn current_labels(
        &self,
        facet: &str,
    ) -> Result<HashMap<String, (Option<String>, i64)>, CatalogError> {
        let context = "reading current labels";
        let mut conn = self.pool.acquire().await.map_err(db(context))?;
        let vocabulary = Vocabulary::load(&mut conn).await?;
        let facet_id = vocabulary.facet_id(facet)?;
        let names = vocabulary.label_names(facet_id);
        // Two index scans instead of a join that would look up every label's image: the images
        // that are not active (few), left out below, and the facet's labels, which
        // labels_facet_label (facet, label, version, image) holds in full. The labels come as one
        // row per (label, version) with the image ids joined by spaces (ids never contain one):
        // for 100 000 images, a row per image costs several times the query in driver overhead.
        let inactive: HashSet<String> =
            sqlx::query_scalar("SELECT id FROM images WHERE status IN ('quarantined', 'removed')")
                .fetch_all(&mut *conn)
                .await
                .map_err(db(context))?
                .into_iter()
                .collect();
        let groups = label_groups(&mut conn, self.backend, facet_id).await?;
        // Sized up front: growing a map of 100 000 entries step by step rehashes it many times.
        let count: usize = groups
            .iter()
            .map(|(_, _, images)| images.split(' ').count())
            .sum();
        let mut labels = HashMap::with_capacity(count);
        for (label, version, images) in groups {
            let name = match label {
                None => None,
                Some(id) => Some(*names.get(&id).ok_or_else(|| CatalogError::Corrupt {
                    table: "labels",
                    column: "label_id",
                    value: id.to_string(),
                })?),
            };
            for image in images.split(' ') {
                if inactive.is_empty() || !inactive.contains(image) {
                    labels.insert(image.to_string(), (name.map(str::to_string), version));
                }
            }
        }
        Ok(labels)
    }
}

/// The labels of `facet` as one row per (label, version) with the ids of its images joined by
/// spaces (ids never contain one).
async fn label_groups(
    conn: &mut AnyConnection,
    backend: Backend,
    facet: i64,
) -> Result<Vec<(Option<i64>, i64, String)>, CatalogError> {
    let joined = match backend {
        Backend::Sqlite => "group_concat(image_id, ' ')",
        Backend::Postgres => "string_agg(image_id, ' ')",
    };
    assembled(format!(
        "SELECT label_id, version, {joined} AS image_ids FROM labels WHERE facet_id = $1 \
         GROUP BY label_id, version"
    ))
    .bind(facet)
    .fetch_all(&mut *conn)
    .await
    .and_then(|groups| {
        groups
            .iter()
            .map(|group| {
                Ok((
                    group.try_get("label_id")?,
                    group.try_get("version")?,
                    group.try_get("image_ids")?,
                ))
            })
            .collect()
    })
    .map_err(db("reading current labels"))
}

/// Fails with [`CatalogError::FacetNotInRun`] unless `run` stored results for `facet`.
async fn ensure_run_has_facet(
    conn: &mut AnyConnection,
    run: i64,
    facet: i64,
    name: &str,
) -> Result<(), CatalogError> {
    let context = "reading a run's facets";
    let facets: Vec<(i64, String)> = sqlx::query(
        "SELECT rf.facet_id, f.name FROM run_facets rf JOIN facets f ON f.id = rf.facet_id \
         WHERE rf.run_id = $1 ORDER BY rf.position",
    )
    .bind(run)
    .fetch_all(&mut *conn)
    .await
    .map_err(db(context))?
    .iter()
    .map(|row| Ok((row.try_get("facet_id")?, row.try_get("name")?)))
    .collect::<Result<_, sqlx::Error>>()
    .map_err(db(context))?;
    if facets.iter().any(|(id, _)| *id == facet) {
        return Ok(());
    }
    Err(CatalogError::FacetNotInRun {
        run,
        facet: name.to_string(),
        trained: if facets.is_empty() {
            "no facet (it has no results yet)".to_string()
        } else {
            facets
                .iter()
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
    })
}

/// How a statement over `predictions p` keeps the predictions of active images only, without
/// a look-up per prediction: a `WITH` clause to put before the statement, and a condition for
/// its `WHERE`. Both exclude the (usually few) images that are not active, found through the
/// `images (status, split)` index. Each engine needs its own spelling to do that well:
/// SQLite evaluates `NOT IN (subquery)` once into a temporary index, where a `NOT EXISTS`
/// would run per row. PostgreSQL, under a LIMIT, plans `NOT EXISTS` on `images` as a
/// primary-key look-up per row, and stops hashing a `NOT IN` list once it outgrows
/// `work_mem`; a materialised list has no index to look up, so it is hashed (and a hash join
/// spills to disk gracefully).
fn active_images_only(backend: Backend) -> (&'static str, &'static str) {
    match backend {
        Backend::Sqlite => (
            "",
            "p.image_id NOT IN (SELECT id FROM images WHERE status IN ('quarantined', 'removed'))",
        ),
        Backend::Postgres => (
            "WITH inactive AS MATERIALIZED \
             (SELECT id FROM images WHERE status IN ('quarantined', 'removed')) ",
            "NOT EXISTS (SELECT 1 FROM inactive WHERE inactive.id = p.image_id)",
        ),
    }
}

/// The conditions of a review page's statements for `query`'s filter. Parameters: $1 run, $2
/// facet, $3 and $4 the filter's labels, then the split, if any.
fn page_filter(
    vocabulary: &Vocabulary,
    facet: i64,
    query: &ReviewQuery,
    backend: Backend,
) -> Result<PageFilter, CatalogError> {
    let label_id = |label: &str| {
        vocabulary.label_id(facet, label, || {
            format!("review of run {}, facet {:?}", query.run, query.facet)
        })
    };
    // Each filter is a range of one of the two covering indexes of migration 0004:
    // predictions_by_label (run, facet, label, predicted, confidence DESC, image, split) or
    // predictions_by_prediction (run, facet, predicted, confidence DESC, image, label, split).
    // "Anything but L" is written as the list of the facet's other labels: `<> L` is no index
    // range, so the database would walk every row of L and sort the survivors, while `IN
    // (others)` is one short range per other label (100 000 images: 4.5 ms -> 1 ms a count).
    // The ids come from the catalogue itself, so inlining them is safe; `<> $4` stays so that
    // every statement binds the same parameters.
    let others = |id: i64| {
        let ids: Vec<String> = vocabulary
            .labels(facet)
            .iter()
            .map(|(_, other)| *other)
            .filter(|other| *other != id)
            .map(|other| other.to_string())
            .collect();
        if ids.is_empty() {
            "(NULL)".to_string()
        } else {
            format!("({})", ids.join(", "))
        }
    };
    let (filter, first, second) = match &query.filter {
        ReviewFilter::FalseNegatives { label } => {
            let id = label_id(label)?;
            (
                format!(
                    "p.label_id = $3 AND p.predicted_label_id <> $4 AND p.predicted_label_id IN {}",
                    others(id)
                ),
                id,
                id,
            )
        }
        ReviewFilter::FalsePositives { label } => {
            let id = label_id(label)?;
            (
                format!(
                    "p.predicted_label_id = $3 AND p.label_id <> $4 AND p.label_id IN {}",
                    others(id)
                ),
                id,
                id,
            )
        }
        ReviewFilter::Cell { label, predicted } => (
            "p.label_id = $3 AND p.predicted_label_id = $4".to_string(),
            label_id(label)?,
            label_id(predicted)?,
        ),
    };
    let split = if query.split.is_some() {
        " AND p.split = $5"
    } else {
        ""
    };
    let (with, active) = active_images_only(backend);
    Ok(PageFilter {
        with,
        conditions: format!("p.run_id = $1 AND p.facet_id = $2 AND {filter}{split} AND {active}"),
        first,
        second,
    })
}

/// Binds the parameters every review statement shares: run, facet, the filter's labels and
/// the split, if any.
fn bind_filter(
    statement: AnyQuery<'static>,
    query: &ReviewQuery,
    facet: i64,
    filter: &PageFilter,
) -> AnyQuery<'static> {
    let statement = statement
        .bind(query.run)
        .bind(facet)
        .bind(filter.first)
        .bind(filter.second);
    match query.split {
        Some(split) => statement.bind(split.as_str()),
        None => statement,
    }
}

/// How many predictions match the page's filter.
async fn count_matches(
    conn: &mut AnyConnection,
    query: &ReviewQuery,
    facet: i64,
    filter: &PageFilter,
) -> Result<i64, CatalogError> {
    let PageFilter {
        with, conditions, ..
    } = filter;
    let count = assembled(format!(
        "{with}SELECT COUNT(*) AS total FROM predictions p WHERE {conditions}"
    ));
    bind_filter(count, query, facet, filter)
        .fetch_one(&mut *conn)
        .await
        .and_then(|row| row.try_get("total"))
        .map_err(db("reading a review page"))
}

/// The page's rows, with each image's current label and version.
async fn page_rows(
    conn: &mut AnyConnection,
    query: &ReviewQuery,
    facet: i64,
    filter: &PageFilter,
) -> Result<Vec<AnyRow>, CatalogError> {
    let PageFilter {
        with, conditions, ..
    } = filter;
    let (limit, offset) = if query.split.is_some() {
        ("$6", "$7")
    } else {
        ("$5", "$6")
    };
    // The page is cut from the index first; only its rows then look up their current label.
    let page = assembled(format!(
        "{with}SELECT page.image_id, page.split, page.label_id AS label_at_training, \
                l.label_id AS current_label, l.version, page.predicted_label_id, \
                page.confidence \
         FROM (SELECT p.image_id, p.facet_id, p.split, p.label_id, p.predicted_label_id, \
                      p.confidence \
               FROM predictions p WHERE {conditions} \
               ORDER BY p.confidence DESC, p.image_id LIMIT {limit} OFFSET {offset}) page \
         LEFT JOIN labels l ON l.image_id = page.image_id AND l.facet_id = page.facet_id \
         ORDER BY page.confidence DESC, page.image_id"
    ));
    bind_filter(page, query, facet, filter)
        .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
        .bind(i64::try_from(query.offset).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await
        .map_err(db("reading a review page"))
}

/// One row of [`page_rows`] as a review item, its label ids named.
fn review_item(
    row: &AnyRow,
    vocabulary: &Vocabulary,
    facet: i64,
) -> Result<ReviewItem, CatalogError> {
    let get = db("reading a review page");
    let split: String = row.try_get("split").map_err(&get)?;
    let version: Option<i64> = row.try_get("version").map_err(&get)?;
    let predicted: i64 = row.try_get("predicted_label_id").map_err(&get)?;
    let label_at_training: Option<i64> = row.try_get("label_at_training").map_err(&get)?;
    let current_label: Option<i64> = row.try_get("current_label").map_err(&get)?;
    Ok(ReviewItem {
        image_id: row.try_get("image_id").map_err(&get)?,
        split: split_from_db(&split)?,
        label_at_training: vocabulary.stored_label_name(facet, label_at_training, "predictions")?,
        current_label: vocabulary.stored_label_name(facet, current_label, "labels")?,
        version: version.unwrap_or(0),
        predicted: vocabulary
            .stored_label_name(facet, Some(predicted), "predictions")?
            .unwrap_or_default(),
        confidence: row.try_get("confidence").map_err(&get)?,
    })
}
