//! Truth labels: the clean labels of a synthetic catalogue, as `atelier synth` writes them to
//! `truth.csv` before it adds label noise to the manifest. With them, the review pages can
//! measure how many of the deliberately mistagged images a run's mistakes point at.
//!
//! `truth.csv` has the header `path,<facet columns...>,flipped`. `path` is relative to the
//! CSV's folder (or absolute) and is resolved exactly as an import resolves manifest paths, so
//! that a row finds its image by the `images.uri` the import stored. `flipped` (which facets
//! the noise changed) is not stored: it follows from the truth and the imported labels.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::model::Status;
use crate::source::resolve_listed_path;
use crate::sql::status_from_db;
use crate::sql::{ParamStyle, insert_values};
use crate::vocabulary::Vocabulary;

/// Unmatched paths listed by name in a report; the rest are only counted.
const MAX_UNMATCHED_SHOWN: usize = 20;

/// Columns of `truth.csv` that are not facets.
const PATH_COLUMN: &str = "path";
const FLIPPED_COLUMN: &str = "flipped";

/// What [`crate::Catalog::import_truth`] stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TruthReport {
    /// Data rows read (the header not counted).
    pub rows: u64,
    /// Rows whose path is an image of the catalogue.
    pub matched_images: u64,
    /// Truth labels stored: one per matched row and non-empty facet cell.
    pub labels: u64,
    /// The first 20 listed paths (as written in the file) that match no image.
    pub unmatched_paths: Vec<String>,
}

/// `truth.csv` as read from disk, before it is checked against the catalogue.
struct TruthFile {
    /// The path as the caller gave it, for messages.
    display: String,
    /// Facet columns: (column index, facet name), in header order.
    facets: Vec<(usize, String)>,
    rows: Vec<TruthRow>,
}

/// A truth label to store: (image id, facet id, label id).
type TruthLabel<'a> = (&'a str, i64, i64);

struct TruthRow {
    line: u64,
    /// The path as written in the file.
    listed: String,
    /// The absolute, normalised path an import would have stored as the image's uri.
    uri: String,
    /// One cell per facet column; empty cells (no truth for that facet) are `None`.
    labels: Vec<Option<String>>,
}

impl Catalog {
    /// Stores the clean labels of a synthetic catalogue from the `truth.csv` that
    /// `atelier synth` writes (`path,<facets...>,flipped`), replacing any stored before, in
    /// one transaction. Rows are matched to images by path, resolved as an import resolves a
    /// manifest's paths; rows that match no image are reported, not stored. A column that is
    /// not a facet of the catalogue, or a label a facet does not know, fails the import.
    pub async fn import_truth(&self, csv: &Path) -> Result<TruthReport, CatalogError> {
        let path = csv.to_path_buf();
        let file = tokio::task::spawn_blocking(move || read_truth(&path))
            .await
            .map_err(|e| CatalogError::Interrupted(format!("reading {}: {e}", csv.display())))??;

        let context = "importing truth labels";
        let mut tx = self.begin_write().await?;
        let vocabulary = Vocabulary::load(&mut tx).await?;
        let facet_ids = file_facet_ids(&vocabulary, &file)?;
        let images = images_by_uri(&mut tx).await?;
        let (report, truth) = match_rows(&file, &vocabulary, &facet_ids, &images)?;

        // The file is the whole truth: a re-import replaces what an earlier one stored.
        sqlx::query("DELETE FROM truth_labels")
            .execute(&mut *tx)
            .await
            .map_err(db(context))?;
        insert_values(
            &mut tx,
            ParamStyle::for_backend(self.backend),
            "INSERT INTO truth_labels (image_id, facet_id, label_id)",
            3,
            "",
            &truth,
            |q, (image, facet, label)| q.bind(*image).bind(*facet).bind(*label),
        )
        .await
        .map_err(db("writing truth labels"))?;
        tx.commit().await.map_err(db(context))?;
        Ok(report)
    }

    /// Image id → clean label of `facet`, for every image that has one stored.
    pub async fn truth_labels(&self, facet: &str) -> Result<HashMap<String, String>, CatalogError> {
        let context = "reading truth labels";
        let mut conn = self.pool.acquire().await.map_err(db(context))?;
        let vocabulary = Vocabulary::load(&mut conn).await?;
        let facet_id = vocabulary.facet_id(facet)?;
        let names = vocabulary.label_names(facet_id);
        let rows = sqlx::query("SELECT image_id, label_id FROM truth_labels WHERE facet_id = $1")
            .bind(facet_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(db(context))?;
        let get = db(context);
        let mut truth = HashMap::with_capacity(rows.len());
        for row in rows {
            let label: i64 = row.try_get("label_id").map_err(&get)?;
            let name = names.get(&label).ok_or_else(|| CatalogError::Corrupt {
                table: "truth_labels",
                column: "label_id",
                value: label.to_string(),
            })?;
            truth.insert(row.try_get("image_id").map_err(&get)?, name.to_string());
        }
        Ok(truth)
    }
}

/// The catalogue's id of each facet column of `file`; a column that is no facet fails.
fn file_facet_ids(vocabulary: &Vocabulary, file: &TruthFile) -> Result<Vec<i64>, CatalogError> {
    let mut facet_ids = Vec::with_capacity(file.facets.len());
    for (_, name) in &file.facets {
        match vocabulary.facet_id(name) {
            Ok(id) => facet_ids.push(id),
            Err(CatalogError::UnknownFacet { known, .. }) => {
                return Err(CatalogError::Source {
                    location: format!("{} line 1 (header), column {name}", file.display),
                    message: format!(
                        "{name:?} is not a facet of the catalogue (it has: {known}); rename or \
                         remove the column, or import the manifest that sets this facet first"
                    ),
                });
            }
            Err(other) => return Err(other),
        }
    }
    Ok(facet_ids)
}

/// Matches the file's rows to images by uri: the report, and the (image, facet, label) ids to
/// store. A label a facet does not know, or two rows of one image, fail.
fn match_rows<'a>(
    file: &TruthFile,
    vocabulary: &Vocabulary,
    facet_ids: &[i64],
    images: &'a HashMap<String, String>,
) -> Result<(TruthReport, Vec<TruthLabel<'a>>), CatalogError> {
    let mut report = TruthReport {
        rows: file.rows.len() as u64,
        matched_images: 0,
        labels: 0,
        unmatched_paths: Vec::new(),
    };
    let mut truth: Vec<TruthLabel> = Vec::new();
    // The line that first named each image.
    let mut first_line: HashMap<&str, u64> = HashMap::new();
    for row in &file.rows {
        let mut labels = Vec::with_capacity(facet_ids.len());
        for ((facet, (_, column)), cell) in facet_ids.iter().zip(&file.facets).zip(&row.labels) {
            if let Some(label) = cell {
                let location = || format!("{} line {}, column {column}", file.display, row.line);
                labels.push((*facet, vocabulary.label_id(*facet, label, location)?));
            }
        }
        let Some(image) = images.get(row.uri.as_str()) else {
            if report.unmatched_paths.len() < MAX_UNMATCHED_SHOWN {
                report.unmatched_paths.push(row.listed.clone());
            }
            continue;
        };
        if let Some(first) = first_line.insert(image.as_str(), row.line) {
            return Err(CatalogError::Source {
                location: format!("{} line {}", file.display, row.line),
                message: format!(
                    "{} is the same image as line {first}; list each picture once",
                    row.listed
                ),
            });
        }
        report.matched_images += 1;
        truth.extend(
            labels
                .into_iter()
                .map(|(facet, label)| (image.as_str(), facet, label)),
        );
    }
    report.labels = truth.len() as u64;
    Ok((report, truth))
}

/// Image id per uri. Several images can have lain at one path (a file replaced by another
/// picture leaves the old image removed); the path's current picture is the one that is not
/// removed, else the one updated last.
async fn images_by_uri(
    conn: &mut sqlx::AnyConnection,
) -> Result<HashMap<String, String>, CatalogError> {
    let context = "matching truth paths to images";
    let rows = sqlx::query("SELECT id, uri, status, updated_at FROM images")
        .fetch_all(&mut *conn)
        .await
        .map_err(db(context))?;
    current_image_per_uri(&rows, context)
}

/// Image id per uri of `rows` (`id, uri, status, updated_at` of `images`): where several images
/// lay at one path, the one that is not removed, else the one updated last.
pub(crate) fn current_image_per_uri(
    rows: &[AnyRow],
    context: &'static str,
) -> Result<HashMap<String, String>, CatalogError> {
    let mut best: HashMap<String, (String, (bool, i64))> = HashMap::with_capacity(rows.len());
    for row in rows {
        let get = db(context);
        let id: String = row.try_get("id").map_err(&get)?;
        let uri: String = row.try_get("uri").map_err(&get)?;
        let status: String = row.try_get("status").map_err(&get)?;
        let updated_at: i64 = row.try_get("updated_at").map_err(&get)?;
        let rank = (status_from_db(&status)? != Status::Removed, updated_at);
        match best.get(&uri) {
            Some((_, kept)) if *kept >= rank => {}
            _ => {
                best.insert(uri, (id, rank));
            }
        }
    }
    Ok(best.into_iter().map(|(uri, (id, _))| (uri, id)).collect())
}

/// Reads and parses `truth.csv` (blocking).
fn read_truth(csv: &Path) -> Result<TruthFile, CatalogError> {
    let display = csv.display().to_string();
    let canonical = std::fs::canonicalize(csv).map_err(|source| CatalogError::Io {
        path: csv.to_path_buf(),
        source,
    })?;
    let base: PathBuf = canonical
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let handle = std::fs::File::open(&canonical).map_err(|source| CatalogError::Io {
        path: csv.to_path_buf(),
        source,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(std::io::BufReader::new(handle));
    let csv_error = |e: csv::Error| CatalogError::Source {
        location: match e.position() {
            Some(p) => format!("{display} line {}", p.line()),
            None => display.clone(),
        },
        message: format!("not a readable CSV file: {e}"),
    };
    let header = reader.headers().map_err(csv_error)?.clone();
    let (path_column, facets) = header_columns(&header, &display)?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        rows.push(truth_row(&record, &display, &base, path_column, &facets)?);
    }
    Ok(TruthFile {
        display,
        facets,
        rows,
    })
}

/// The path column's index and the facet columns (index, name) of `truth.csv`'s header.
fn header_columns(
    header: &csv::StringRecord,
    display: &str,
) -> Result<(usize, Vec<(usize, String)>), CatalogError> {
    let header_error = |message: String| CatalogError::Source {
        location: format!("{display} line 1 (header)"),
        message,
    };
    let mut path_column = None;
    let mut facets: Vec<(usize, String)> = Vec::new();
    for (index, name) in header.iter().enumerate() {
        if name.is_empty() {
            return Err(header_error(format!(
                "column {} has no name; name it after a facet or remove it",
                index + 1
            )));
        }
        let repeated = (name == PATH_COLUMN && path_column.is_some())
            || facets.iter().any(|(_, facet)| facet == name);
        if repeated {
            return Err(header_error(format!(
                "column {name:?} appears twice; keep one"
            )));
        }
        match name {
            PATH_COLUMN => path_column = Some(index),
            FLIPPED_COLUMN => {}
            facet => facets.push((index, facet.to_string())),
        }
    }
    let Some(path_column) = path_column else {
        return Err(header_error(format!(
            "no {PATH_COLUMN:?} column; truth.csv starts with path,<facets...>,flipped"
        )));
    };
    Ok((path_column, facets))
}

/// One data row of `truth.csv`, its path resolved against `base` (the CSV's folder).
fn truth_row(
    record: &csv::StringRecord,
    display: &str,
    base: &Path,
    path_column: usize,
    facets: &[(usize, String)],
) -> Result<TruthRow, CatalogError> {
    let line = record.position().map_or(0, |p| p.line());
    let listed = record.get(path_column).unwrap_or("");
    let location = || format!("{display} line {line}, column {PATH_COLUMN}");
    if listed.is_empty() {
        return Err(CatalogError::Source {
            location: location(),
            message: "empty; every row needs the image's file path".to_string(),
        });
    }
    let uri = resolve_listed_path(base, listed)
        .to_str()
        .ok_or_else(|| CatalogError::Source {
            location: location(),
            message: format!("{listed:?} does not resolve to a UTF-8 path"),
        })?
        .to_string();
    let labels = facets
        .iter()
        .map(|(index, _)| {
            Some(record.get(*index).unwrap_or(""))
                .filter(|label| !label.is_empty())
                .map(str::to_string)
        })
        .collect();
    Ok(TruthRow {
        line,
        listed: listed.to_string(),
        uri,
        labels,
    })
}
