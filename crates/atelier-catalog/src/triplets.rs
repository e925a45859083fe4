//! Similarity triplets: "the reference image looks more like the similar one than like the
//! dissimilar one", the judgements a dress similarity search is measured against. They come
//! from a CSV file or, one at a time, from the review app's editor.
//!
//! The CSV's header is `reference,similar,dissimilar`. A cell is an image id (64 lowercase hex
//! digits) or an image's path, relative to the CSV's folder (or absolute) and resolved exactly
//! as an import resolves a manifest's paths, so that it finds the image by the uri the import
//! stored.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::manifest::{csv_error, csv_reader};
use crate::source::resolve_listed_path;
use crate::sql::{ParamStyle, insert_values, now_millis, select_where_in};
use crate::truth::current_image_per_uri;

/// The roles of a triplet's images, in column order.
const ROLES: [&str; 3] = ["reference", "similar", "dissimilar"];

/// Who added a triplet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TripletSource {
    /// A triplets CSV ([`crate::Catalog::import_triplets`]).
    Import,
    /// The review app's editor ([`crate::Catalog::add_triplet`]).
    Review,
}

impl TripletSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TripletSource::Import => "import",
            TripletSource::Review => "review",
        }
    }

    fn from_db(value: &str) -> Result<TripletSource, CatalogError> {
        match value {
            "import" => Ok(TripletSource::Import),
            "review" => Ok(TripletSource::Review),
            other => Err(CatalogError::Corrupt {
                table: "triplets",
                column: "source",
                value: other.to_string(),
            }),
        }
    }
}

impl fmt::Display for TripletSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored triplet: `reference` looks more like `similar` than like `dissimilar` (image ids).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TripletRecord {
    /// Never reused.
    pub id: i64,
    pub reference: String,
    pub similar: String,
    pub dissimilar: String,
    pub source: TripletSource,
    /// Who added it.
    pub actor: Option<String>,
    /// UTC unix milliseconds.
    pub created_at: i64,
    /// All three images are active (none quarantined or removed): the triplet can measure a
    /// search.
    pub usable: bool,
}

/// What [`crate::Catalog::import_triplets`] stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TripletImportReport {
    /// Data rows read (the header not counted).
    pub rows: u64,
    /// Triplets stored by this import.
    pub added: u64,
    /// Rows whose triplet was stored before, or listed on an earlier row of the file.
    pub already_stored: u64,
}

/// One cell of a triplets CSV.
enum ImageCell {
    Id(String),
    Path {
        /// As written in the file.
        listed: String,
        /// Absolute and normalised, as an import stores an image's uri.
        uri: String,
    },
}

struct TripletRow {
    line: u64,
    /// In [`ROLES`] order.
    cells: [ImageCell; 3],
}

struct TripletFile {
    /// The path as the caller gave it, for messages.
    display: String,
    rows: Vec<TripletRow>,
}

/// A triplet's image ids in [`ROLES`] order.
type Triplet = [String; 3];

impl Catalog {
    /// Stores the triplets of a CSV file (`reference,similar,dissimilar`, each cell an image id
    /// or path) with source `import`, in one transaction. All or nothing: an image the
    /// catalogue does not hold, or a row that names one image twice, fails the import and
    /// writes nothing. A triplet already stored is counted, not stored again.
    pub async fn import_triplets(
        &self,
        csv: &Path,
        actor: &str,
    ) -> Result<TripletImportReport, CatalogError> {
        if actor.trim().is_empty() {
            return Err(CatalogError::InvalidOptions(
                "actor is empty; name who imports the triplets".to_string(),
            ));
        }
        let path = csv.to_path_buf();
        let file = tokio::task::spawn_blocking(move || read_triplets(&path))
            .await
            .map_err(|e| CatalogError::Interrupted(format!("reading {}: {e}", csv.display())))??;
        let style = ParamStyle::for_backend(self.backend);
        let mut tx = self.begin_write().await?;
        let triplets = resolve_rows(&mut tx, style, &file).await?;
        let mut distinct = HashSet::with_capacity(triplets.len());
        let new: Vec<&Triplet> = triplets.iter().filter(|t| distinct.insert(*t)).collect();
        let now = now_millis();
        let added = insert_values(
            &mut tx,
            style,
            "INSERT INTO triplets (reference_id, similar_id, dissimilar_id, source, actor, \
             created_at)",
            6,
            "ON CONFLICT (reference_id, similar_id, dissimilar_id) DO NOTHING",
            &new,
            |q, [reference, similar, dissimilar]| {
                q.bind(reference.as_str())
                    .bind(similar.as_str())
                    .bind(dissimilar.as_str())
                    .bind(TripletSource::Import.as_str())
                    .bind(actor)
                    .bind(now)
            },
        )
        .await
        .map_err(db("writing triplets"))?;
        tx.commit().await.map_err(db("committing triplets"))?;
        let rows = file.rows.len() as u64;
        Ok(TripletImportReport {
            rows,
            added,
            already_stored: rows - added,
        })
    }

    /// Stores one triplet of image ids with source `review` (the review app's editor) and
    /// returns its id. Three different images the catalogue holds are needed; a triplet that
    /// is stored already fails with [`CatalogError::TripletExists`].
    pub async fn add_triplet(
        &self,
        reference: &str,
        similar: &str,
        dissimilar: &str,
        actor: &str,
    ) -> Result<i64, CatalogError> {
        if actor.trim().is_empty() {
            return Err(CatalogError::InvalidTriplet(
                "the actor is empty; name who adds the triplet".to_string(),
            ));
        }
        let ids = [reference, similar, dissimilar];
        if let Some(repeated) = repeated_image(&ids) {
            return Err(CatalogError::InvalidTriplet(format!(
                "{repeated}; pick three different images"
            )));
        }
        let context = "adding a triplet";
        let mut tx = self.begin_write().await?;
        let style = ParamStyle::for_backend(self.backend);
        let known = known_ids(&mut tx, style, &ids).await?;
        if let Some(unknown) = ids.iter().find(|id| !known.contains(**id)) {
            return Err(CatalogError::UnknownImage(unknown.to_string()));
        }
        let stored: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM triplets \
             WHERE reference_id = $1 AND similar_id = $2 AND dissimilar_id = $3",
        )
        .bind(reference)
        .bind(similar)
        .bind(dissimilar)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db(context))?;
        if let Some(id) = stored {
            return Err(CatalogError::TripletExists {
                id,
                reference: reference.to_string(),
                similar: similar.to_string(),
                dissimilar: dissimilar.to_string(),
            });
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO triplets (reference_id, similar_id, dissimilar_id, source, actor, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(reference)
        .bind(similar)
        .bind(dissimilar)
        .bind(TripletSource::Review.as_str())
        .bind(actor)
        .bind(now_millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(db(context))?;
        tx.commit().await.map_err(db(context))?;
        Ok(id)
    }

    /// Every stored triplet, oldest first, with whether its three images are all active.
    pub async fn triplets(&self) -> Result<Vec<TripletRecord>, CatalogError> {
        let rows = sqlx::query(
            "SELECT t.id, t.reference_id, t.similar_id, t.dissimilar_id, t.source, t.actor, \
                    t.created_at, \
                    CASE WHEN r.status = 'active' AND s.status = 'active' \
                              AND d.status = 'active' THEN 1 ELSE 0 END AS usable \
             FROM triplets t \
             JOIN images r ON r.id = t.reference_id \
             JOIN images s ON s.id = t.similar_id \
             JOIN images d ON d.id = t.dissimilar_id \
             ORDER BY t.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading triplets"))?;
        rows.iter().map(triplet_record).collect()
    }

    /// Deletes triplet `id`; an id that is not stored is [`CatalogError::UnknownTriplet`].
    pub async fn remove_triplet(&self, id: i64) -> Result<(), CatalogError> {
        let deleted = sqlx::query("DELETE FROM triplets WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("removing a triplet"))?
            .rows_affected();
        if deleted == 0 {
            return Err(CatalogError::UnknownTriplet(id));
        }
        Ok(())
    }
}

fn triplet_record(row: &AnyRow) -> Result<TripletRecord, CatalogError> {
    let get = db("reading triplets");
    let source: String = row.try_get("source").map_err(&get)?;
    let usable: i64 = row.try_get("usable").map_err(&get)?;
    Ok(TripletRecord {
        id: row.try_get("id").map_err(&get)?,
        reference: row.try_get("reference_id").map_err(&get)?,
        similar: row.try_get("similar_id").map_err(&get)?,
        dissimilar: row.try_get("dissimilar_id").map_err(&get)?,
        source: TripletSource::from_db(&source)?,
        actor: row.try_get("actor").map_err(&get)?,
        created_at: row.try_get("created_at").map_err(&get)?,
        usable: usable == 1,
    })
}

/// `similar and dissimilar are the same image (ID)` for the first two roles of `ids` that name
/// one image, or `None` when the three differ.
fn repeated_image<S: AsRef<str>>(ids: &[S; 3]) -> Option<String> {
    let pairs = [(0, 1), (0, 2), (1, 2)];
    pairs
        .iter()
        .find(|(a, b)| ids[*a].as_ref() == ids[*b].as_ref())
        .map(|(a, b)| {
            format!(
                "{} and {} are the same image ({})",
                ROLES[*a],
                ROLES[*b],
                ids[*a].as_ref()
            )
        })
}

/// Which of `ids` are images of the catalogue.
async fn known_ids<S: AsRef<str>>(
    conn: &mut AnyConnection,
    style: ParamStyle,
    ids: &[S],
) -> Result<HashSet<String>, CatalogError> {
    select_where_in(conn, style, "SELECT id FROM images WHERE id IN (", "", ids)
        .await
        .and_then(|rows| rows.iter().map(|r| r.try_get("id")).collect())
        .map_err(db("looking up triplet images"))
}

/// The image ids of every row of `file`, in row order. A cell that names no image of the
/// catalogue, or a row that names one image twice, fails with the row's location.
async fn resolve_rows(
    conn: &mut AnyConnection,
    style: ParamStyle,
    file: &TripletFile,
) -> Result<Vec<Triplet>, CatalogError> {
    let mut ids: Vec<&str> = Vec::new();
    let mut uris: Vec<&str> = Vec::new();
    for cell in file.rows.iter().flat_map(|row| &row.cells) {
        match cell {
            ImageCell::Id(id) => ids.push(id),
            ImageCell::Path { uri, .. } => uris.push(uri),
        }
    }
    for list in [&mut ids, &mut uris] {
        list.sort_unstable();
        list.dedup();
    }
    let known = known_ids(conn, style, &ids).await?;
    let context = "matching triplet paths to images";
    let rows = select_where_in(
        conn,
        style,
        "SELECT id, uri, status, updated_at FROM images WHERE uri IN (",
        "",
        &uris,
    )
    .await
    .map_err(db(context))?;
    let by_uri = current_image_per_uri(&rows, context)?;
    file.rows
        .iter()
        .map(|row| resolve_row(&file.display, row, &known, &by_uri))
        .collect()
}

/// One row's image ids, checked: each known, three different images.
fn resolve_row(
    display: &str,
    row: &TripletRow,
    known: &HashSet<String>,
    by_uri: &HashMap<String, String>,
) -> Result<Triplet, CatalogError> {
    let resolve = |cell: &ImageCell, role: &str| {
        let fail = |message: String| CatalogError::Source {
            location: format!("{display} line {}, column {role}", row.line),
            message,
        };
        match cell {
            ImageCell::Id(id) if known.contains(id) => Ok(id.clone()),
            ImageCell::Id(id) => Err(fail(format!(
                "image {id} is not in the catalogue; correct the id, or import the manifest \
                 that lists the image first"
            ))),
            ImageCell::Path { uri, .. } if by_uri.contains_key(uri) => Ok(by_uri[uri].clone()),
            ImageCell::Path { listed, uri } => Err(fail(format!(
                "{listed:?} ({uri}) is no image of the catalogue; paths are relative to this \
                 file's folder: correct the path, or import the manifest that lists the image \
                 first"
            ))),
        }
    };
    let [reference, similar, dissimilar] = &row.cells;
    let triplet = [
        resolve(reference, ROLES[0])?,
        resolve(similar, ROLES[1])?,
        resolve(dissimilar, ROLES[2])?,
    ];
    if let Some(repeated) = repeated_image(&triplet) {
        return Err(CatalogError::Source {
            location: format!("{display} line {}", row.line),
            message: format!(
                "{repeated}; a triplet needs three different images: fix the row or remove it"
            ),
        });
    }
    Ok(triplet)
}

/// Reads and parses a triplets CSV (blocking).
fn read_triplets(csv: &Path) -> Result<TripletFile, CatalogError> {
    let display = csv.display().to_string();
    let canonical = std::fs::canonicalize(csv).map_err(|source| CatalogError::Io {
        path: csv.to_path_buf(),
        source,
    })?;
    let base: PathBuf = canonical
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut reader = csv_reader(&canonical)?;
    let header = reader
        .headers()
        .map_err(|e| csv_error(&display, csv, e))?
        .clone();
    let columns = role_columns(&header, &display)?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(&display, csv, e))?;
        rows.push(triplet_row(&record, &display, &base, columns)?);
    }
    Ok(TripletFile { display, rows })
}

/// The column index of each role, from the header `reference,similar,dissimilar` (in any order,
/// any case); another column fails.
fn role_columns(header: &csv::StringRecord, display: &str) -> Result<[usize; 3], CatalogError> {
    let fail = |message: String| CatalogError::Source {
        location: format!("{display} line 1 (header)"),
        message,
    };
    let mut columns: [Option<usize>; 3] = [None; 3];
    for (index, raw) in header.iter().enumerate() {
        // A UTF-8 byte order mark is not part of the first column's name.
        let name = raw.trim_start_matches('\u{feff}').trim();
        let Some(role) = ROLES.iter().position(|r| r.eq_ignore_ascii_case(name)) else {
            return Err(fail(format!(
                "column {} ({name:?}) is not one of reference, similar, dissimilar; the header \
                 is reference,similar,dissimilar: remove or rename the column",
                index + 1
            )));
        };
        if columns[role].replace(index).is_some() {
            return Err(fail(format!(
                "column {name:?} appears twice; keep one of them"
            )));
        }
    }
    match columns {
        [Some(r), Some(s), Some(d)] => Ok([r, s, d]),
        _ => {
            let missing: Vec<&str> = ROLES
                .iter()
                .zip(columns)
                .filter(|(_, c)| c.is_none())
                .map(|(role, _)| *role)
                .collect();
            Err(fail(format!(
                "no {} column; the header is reference,similar,dissimilar",
                missing.join(", no ")
            )))
        }
    }
}

/// One data row, its path cells resolved against `base` (the CSV's folder).
fn triplet_row(
    record: &csv::StringRecord,
    display: &str,
    base: &Path,
    columns: [usize; 3],
) -> Result<TripletRow, CatalogError> {
    let line = record.position().map_or(0, |p| p.line());
    let cell = |role: usize| -> Result<ImageCell, CatalogError> {
        let listed = record.get(columns[role]).unwrap_or("");
        let fail = |message: String| CatalogError::Source {
            location: format!("{display} line {line}, column {}", ROLES[role]),
            message,
        };
        if listed.is_empty() {
            return Err(fail(
                "empty; name the image by its id or its file path".to_string(),
            ));
        }
        if is_image_id(listed) {
            return Ok(ImageCell::Id(listed.to_string()));
        }
        let uri = resolve_listed_path(base, listed)
            .to_str()
            .ok_or_else(|| fail(format!("{listed:?} does not resolve to a UTF-8 path")))?
            .to_string();
        Ok(ImageCell::Path {
            listed: listed.to_string(),
            uri,
        })
    };
    Ok(TripletRow {
        line,
        cells: [cell(0)?, cell(1)?, cell(2)?],
    })
}

/// 64 lowercase hex digits: an image id (the sha256 of its bytes) rather than a path.
fn is_image_id(cell: &str) -> bool {
    cell.len() == 64 && cell.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_lowercase_hex_digits() {
        assert!(is_image_id(&"0a".repeat(32)));
        assert!(!is_image_id(&"0A".repeat(32)));
        assert!(!is_image_id(&"0a".repeat(31)));
        assert!(!is_image_id("img/a.jpg"));
    }

    #[test]
    fn repeated_images_are_named_by_role() {
        assert_eq!(repeated_image(&["a", "b", "c"]), None);
        assert_eq!(
            repeated_image(&["a", "a", "c"]).as_deref(),
            Some("reference and similar are the same image (a)")
        );
        assert_eq!(
            repeated_image(&["a", "b", "b"]).as_deref(),
            Some("similar and dissimilar are the same image (b)")
        );
    }

    #[test]
    fn header_names_the_three_roles() {
        let header = csv::StringRecord::from(vec!["\u{feff}Similar", "reference", "dissimilar"]);
        assert_eq!(role_columns(&header, "t.csv").unwrap(), [1, 0, 2]);
        let extra = csv::StringRecord::from(vec!["reference", "similar", "dissimilar", "note"]);
        let message = role_columns(&extra, "t.csv").unwrap_err().to_string();
        assert!(message.contains("column 4 (\"note\")"), "{message}");
        let short = csv::StringRecord::from(vec!["similar"]);
        let message = role_columns(&short, "t.csv").unwrap_err().to_string();
        assert!(
            message.starts_with("t.csv line 1 (header): no reference, no dissimilar column"),
            "{message}"
        );
    }
}
