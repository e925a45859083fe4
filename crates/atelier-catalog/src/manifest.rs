//! Manifest CSV reading. The header names the columns: `path` (required), `split`, the box
//! columns `x0,y0,x1,y1` (all four or none), `design`, the variant columns
//! `variant_of,varied_facet` (both or none, with `design`); every other column is a facet.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::error::CatalogError;
use crate::model::Split;
use crate::remote::Contents;
use crate::source::{
    Batch, BatchSender, BoxCoords, CHUNK_ROWS, Origin, SourcePlan, SourceRow, Stop, Variant,
    resolve_listed_path, send,
};

const BOX_COLUMNS: [&str; 4] = ["x0", "y0", "x1", "y1"];
const VARIANT_COLUMNS: [&str; 2] = ["variant_of", "varied_facet"];

/// Which column holds what.
#[derive(Debug, Clone)]
struct Layout {
    path: usize,
    split: Option<usize>,
    boxes: Option<[usize; 4]>,
    design: Option<usize>,
    /// `variant_of` and `varied_facet`.
    variants: Option<[usize; 2]>,
    /// (column index, facet name), in header order.
    facets: Vec<(usize, String)>,
}

pub(crate) struct ManifestReader {
    file: PathBuf,
    base: PathBuf,
    layout: Layout,
    contents: Contents,
}

/// A manifest row before its file is hashed.
struct ParsedRow {
    line: u64,
    uri: String,
    split: Option<Split>,
    labels: Vec<Option<String>>,
    bbox: Option<BoxCoords>,
    design: Option<String>,
    variant: Option<Variant>,
}

pub(crate) fn csv_reader(file: &Path) -> Result<csv::Reader<BufReader<File>>, CatalogError> {
    let handle = File::open(file).map_err(|source| CatalogError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(BufReader::with_capacity(256 * 1024, handle)))
}

impl ManifestReader {
    /// Reads the header and counts the rows (blocking). `file` is the manifest on this
    /// machine (a copy, for a manifest in object storage); `contents` reads the images.
    pub fn open(
        file: &Path,
        display: String,
        source: String,
        contents: Contents,
    ) -> Result<(SourcePlan, ManifestReader), CatalogError> {
        let mut reader = csv_reader(file)?;
        let header = reader
            .headers()
            .map_err(|e| csv_error(&display, file, e))?
            .clone();
        let layout = Layout::from_header(&header, &display)?;
        // A cheap first pass so that progress can show a total; parse errors surface in the
        // real pass, with their line numbers.
        let rows_total = csv_reader(file)?.byte_records().count() as u64;
        let plan = SourcePlan {
            display,
            source,
            is_manifest: true,
            facets: layout.facets.iter().map(|(_, name)| name.clone()).collect(),
            has_boxes: layout.boxes.is_some(),
            has_design: layout.design.is_some(),
            has_variants: layout.variants.is_some(),
            rows_total,
        };
        let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok((
            plan,
            ManifestReader {
                file: file.to_path_buf(),
                base,
                layout,
                contents,
            },
        ))
    }

    /// Streams the rows in chunks, hashing each chunk's files in parallel (blocking).
    pub fn produce(self, plan: &SourcePlan, sender: &BatchSender) -> Result<(), Stop> {
        let mut reader = csv_reader(&self.file)?;
        let mut record = csv::StringRecord::new();
        let mut chunk = Vec::with_capacity(CHUNK_ROWS);
        loop {
            let more = reader
                .read_record(&mut record)
                .map_err(|e| csv_error(&plan.display, &self.file, e))?;
            if more {
                let line = record.position().map_or(0, |p| p.line());
                chunk.push(self.parse_row(plan, &record, line)?);
            }
            if chunk.len() == CHUNK_ROWS || (!more && !chunk.is_empty()) {
                let parsed = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
                let uris: Vec<String> = parsed.iter().map(|row| row.uri.clone()).collect();
                let contents = self.contents.hash_all(&uris)?;
                let rows = parsed
                    .into_iter()
                    .zip(contents)
                    .map(|(row, content)| SourceRow {
                        origin: Origin::Line(row.line),
                        content,
                        uri: row.uri,
                        split: row.split,
                        labels: row.labels,
                        bbox: row.bbox,
                        design: row.design,
                        variant: row.variant,
                    })
                    .collect();
                send(
                    sender,
                    Batch {
                        rows,
                        ..Batch::default()
                    },
                )?;
            }
            if !more {
                return Ok(());
            }
        }
    }

    fn parse_row(
        &self,
        plan: &SourcePlan,
        record: &csv::StringRecord,
        line: u64,
    ) -> Result<ParsedRow, CatalogError> {
        let layout = &self.layout;
        let cell = |index: usize| record.get(index).unwrap_or("");
        let fail = |column: &str, message: String| CatalogError::Source {
            location: plan.location(&Origin::Line(line), Some(column)),
            message,
        };

        let listed = cell(layout.path);
        if listed.is_empty() {
            return Err(fail(
                "path",
                "empty; every row needs the image's file path".into(),
            ));
        }
        let uri = self.resolve(plan, listed).map_err(|m| fail("path", m))?;

        let split = match layout.split {
            None => None,
            Some(column) => parse_split(cell(column)).map_err(|m| fail("split", m))?,
        };

        let bbox = match layout.boxes {
            None => None,
            Some(columns) => {
                parse_box(columns.map(cell)).map_err(|(i, m)| fail(BOX_COLUMNS[i], m))?
            }
        };

        let design = layout
            .design
            .map(cell)
            .filter(|d| !d.is_empty())
            .map(str::to_string);
        let variant = match layout.variants {
            None => None,
            Some(columns) => parse_variant(columns.map(cell), design.as_deref(), &plan.facets)
                .map_err(|(column, m)| fail(column, m))?,
        };

        let labels = layout
            .facets
            .iter()
            .map(|(index, _)| {
                Some(cell(*index))
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
            })
            .collect();

        Ok(ParsedRow {
            line,
            uri,
            split,
            labels,
            bbox,
            design,
            variant,
        })
    }
}

impl ManifestReader {
    /// The URI of a listed path: a file relative to the manifest's folder, or an object
    /// relative to the manifest's prefix.
    fn resolve(&self, plan: &SourcePlan, listed: &str) -> Result<String, String> {
        match &self.contents {
            Contents::Remote(remote) => remote.resolve_listed(&plan.source, listed),
            Contents::Local => resolve_listed_path(&self.base, listed)
                .to_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{listed:?} does not resolve to a UTF-8 path")),
        }
    }

    /// Every row's URI, in order (blocking): what an import from object storage checks
    /// before it reads any object.
    pub fn listed_uris(&self, plan: &SourcePlan) -> Result<Vec<String>, CatalogError> {
        let mut reader = csv_reader(&self.file)?;
        let mut record = csv::StringRecord::new();
        let mut uris = Vec::new();
        while reader
            .read_record(&mut record)
            .map_err(|e| csv_error(&plan.display, &self.file, e))?
        {
            let line = record.position().map_or(0, |p| p.line());
            uris.push(self.parse_row(plan, &record, line)?.uri);
        }
        Ok(uris)
    }
}

impl Layout {
    fn from_header(header: &csv::StringRecord, display: &str) -> Result<Layout, CatalogError> {
        let fail = |message: String| CatalogError::Source {
            location: format!("{display} line 1 (header)"),
            message,
        };
        let mut path = None;
        let mut split = None;
        let mut design = None;
        let mut boxes: [Option<usize>; 4] = [None; 4];
        let mut variants: [Option<usize>; 2] = [None; 2];
        let mut facets: Vec<(usize, String)> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for (index, raw) in header.iter().enumerate() {
            // A UTF-8 byte order mark is not part of the first column's name.
            let name = raw.trim_start_matches('\u{feff}').trim();
            if name.is_empty() {
                return Err(fail(format!(
                    "column {} has no name; name it or delete the column",
                    index + 1
                )));
            }
            let key = name.to_lowercase();
            if seen.contains(&key) {
                return Err(fail(format!(
                    "column {name:?} appears twice; keep one of them"
                )));
            }
            seen.push(key.clone());
            match key.as_str() {
                "path" => path = Some(index),
                "split" => split = Some(index),
                "design" => design = Some(index),
                "x0" => boxes[0] = Some(index),
                "y0" => boxes[1] = Some(index),
                "x1" => boxes[2] = Some(index),
                "y1" => boxes[3] = Some(index),
                "variant_of" => variants[0] = Some(index),
                "varied_facet" => variants[1] = Some(index),
                _ => facets.push((index, name.to_string())),
            }
        }
        let path = path.ok_or_else(|| {
            fail("no \"path\" column; the header must name the column holding image paths".into())
        })?;
        let boxes = match boxes {
            [Some(x0), Some(y0), Some(x1), Some(y1)] => Some([x0, y0, x1, y1]),
            [None, None, None, None] => None,
            partial => {
                let missing: Vec<&str> = BOX_COLUMNS
                    .iter()
                    .zip(partial)
                    .filter(|(_, index)| index.is_none())
                    .map(|(name, _)| *name)
                    .collect();
                return Err(fail(format!(
                    "box columns need all of x0, y0, x1, y1; missing {}",
                    missing.join(", ")
                )));
            }
        };
        let variants = variant_columns(variants, design.is_some()).map_err(fail)?;
        Ok(Layout {
            path,
            split,
            boxes,
            design,
            variants,
            facets,
        })
    }
}

/// The variant columns: both or neither, and only next to a `design` column.
fn variant_columns(
    found: [Option<usize>; 2],
    has_design: bool,
) -> Result<Option<[usize; 2]>, String> {
    match found {
        [None, None] => Ok(None),
        [Some(_), Some(_)] if !has_design => Err("variant_of and varied_facet describe a row's \
             design, but there is no \"design\" column; add it or remove them"
            .to_string()),
        [Some(of), Some(facet)] => Ok(Some([of, facet])),
        [of, _] => {
            let (present, missing) = if of.is_some() {
                (VARIANT_COLUMNS[0], VARIANT_COLUMNS[1])
            } else {
                (VARIANT_COLUMNS[1], VARIANT_COLUMNS[0])
            };
            Err(format!(
                "column {present:?} needs a {missing:?} column next to it; add it or remove \
                 {present:?}"
            ))
        }
    }
}

/// Both cells empty: the row's design varies none. Otherwise the design varied and the facet
/// it varies, both set, for a row that names its design, which cannot vary itself; the facet
/// must be one of the manifest's facet columns. Errors carry the offending column.
fn parse_variant(
    [of, facet]: [&str; 2],
    design: Option<&str>,
    facets: &[String],
) -> Result<Option<Variant>, (&'static str, String)> {
    let [of_column, facet_column] = VARIANT_COLUMNS;
    match (of.is_empty(), facet.is_empty()) {
        (true, true) => return Ok(None),
        (true, false) => {
            return Err((
                of_column,
                format!(
                    "empty while varied_facet is {facet:?}; name the design this one varies, or \
                     leave both empty"
                ),
            ));
        }
        (false, true) => {
            return Err((
                facet_column,
                format!(
                    "empty while variant_of is {of:?}; name the facet the variant changes, or \
                     leave both empty"
                ),
            ));
        }
        (false, false) => {}
    }
    let Some(design) = design else {
        return Err((
            "design",
            format!("empty while variant_of is {of:?}; name the design that varies it"),
        ));
    };
    if of == design {
        return Err((
            of_column,
            format!("{of:?} is the row's own design; a design cannot vary itself"),
        ));
    }
    if !facets.iter().any(|f| f == facet) {
        return Err((
            facet_column,
            format!(
                "{facet:?} is not a facet column of this manifest (it has: {}); name the facet \
                 the variant changes",
                facets.join(", ")
            ),
        ));
    }
    Ok(Some(Variant {
        of: of.to_string(),
        facet: facet.to_string(),
    }))
}

/// An empty cell asks for no split; otherwise train or test, in any case.
fn parse_split(cell: &str) -> Result<Option<Split>, String> {
    match cell {
        "" => Ok(None),
        value if value.eq_ignore_ascii_case("train") => Ok(Some(Split::Train)),
        value if value.eq_ignore_ascii_case("test") => Ok(Some(Split::Test)),
        value => Err(format!("{value:?} is not train, test or empty")),
    }
}

/// All four cells empty: no box. Otherwise four finite numbers with x0 <= x1 and y0 <= y1.
/// Errors carry the index of the offending column.
fn parse_box(cells: [&str; 4]) -> Result<Option<BoxCoords>, (usize, String)> {
    if cells.iter().all(|c| c.is_empty()) {
        return Ok(None);
    }
    let mut coords = [0f64; 4];
    for (i, cell) in cells.iter().enumerate() {
        if cell.is_empty() {
            return Err((
                i,
                "empty while other box columns are set; give all four of x0, y0, x1, y1 or none"
                    .to_string(),
            ));
        }
        coords[i] = match cell.parse::<f64>() {
            Ok(v) if v.is_finite() => v,
            _ => return Err((i, format!("{cell:?} is not a finite number"))),
        };
    }
    if coords[0] > coords[2] {
        return Err((
            2,
            format!(
                "{} is less than x0 ({}); a box needs x0 <= x1",
                coords[2], coords[0]
            ),
        ));
    }
    if coords[1] > coords[3] {
        return Err((
            3,
            format!(
                "{} is less than y0 ({}); a box needs y0 <= y1",
                coords[3], coords[1]
            ),
        ));
    }
    Ok(Some(coords))
}

pub(crate) fn csv_error(display: &str, file: &Path, error: csv::Error) -> CatalogError {
    let line = error.position().map(|p| p.line());
    let location = match line {
        Some(line) => format!("{display} line {line}"),
        None => display.to_string(),
    };
    match error.into_kind() {
        csv::ErrorKind::Io(source) => CatalogError::Io {
            path: file.to_path_buf(),
            source,
        },
        csv::ErrorKind::Utf8 { err, .. } => CatalogError::Source {
            location,
            message: format!(
                "field {} is not valid UTF-8; save the file as UTF-8",
                err.field() + 1
            ),
        },
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => CatalogError::Source {
            location,
            message: format!(
                "has {len} fields but the header has {expected_len}; check for missing or extra commas"
            ),
        },
        other => CatalogError::Source {
            location,
            message: format!("cannot parse CSV: {other:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_cells_all_or_nothing() {
        assert_eq!(parse_box(["", "", "", ""]), Ok(None));
        assert_eq!(
            parse_box(["1", "2", "3.5", "4"]),
            Ok(Some([1.0, 2.0, 3.5, 4.0]))
        );
        assert_eq!(parse_box(["1", "", "3", "4"]).unwrap_err().0, 1);
        assert_eq!(parse_box(["1", "2", "x", "4"]).unwrap_err().0, 2);
        assert_eq!(parse_box(["1", "2", "inf", "4"]).unwrap_err().0, 2);
        assert_eq!(parse_box(["5", "2", "3", "4"]).unwrap_err().0, 2);
    }

    #[test]
    fn header_classifies_columns() {
        let header =
            csv::StringRecord::from(vec!["\u{feff}Path", "split", "sleeve", "design", "length"]);
        let layout = Layout::from_header(&header, "m.csv").unwrap();
        assert_eq!(layout.path, 0);
        assert_eq!(layout.split, Some(1));
        assert_eq!(layout.design, Some(3));
        assert_eq!(
            layout.facets,
            vec![(2, "sleeve".to_string()), (4, "length".to_string())]
        );
    }

    #[test]
    fn header_errors_name_the_problem() {
        let no_path = csv::StringRecord::from(vec!["file", "sleeve"]);
        let message = Layout::from_header(&no_path, "m.csv")
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("m.csv line 1 (header): no \"path\" column"),
            "{message}"
        );
        let partial = csv::StringRecord::from(vec!["path", "x0", "y0"]);
        let message = Layout::from_header(&partial, "m.csv")
            .unwrap_err()
            .to_string();
        assert!(message.contains("missing x1, y1"), "{message}");
        let twice = csv::StringRecord::from(vec!["path", "sleeve", "Sleeve"]);
        let message = Layout::from_header(&twice, "m.csv")
            .unwrap_err()
            .to_string();
        assert!(message.contains("\"Sleeve\" appears twice"), "{message}");
    }

    #[test]
    fn variant_columns_come_in_pairs_next_to_design() {
        let header = csv::StringRecord::from(vec![
            "path",
            "neckline",
            "design",
            "variant_of",
            "Varied_Facet",
        ]);
        let layout = Layout::from_header(&header, "m.csv").unwrap();
        assert_eq!(layout.variants, Some([3, 4]));
        assert_eq!(layout.facets, vec![(1, "neckline".to_string())]);

        let lone = csv::StringRecord::from(vec!["path", "design", "varied_facet"]);
        let message = Layout::from_header(&lone, "m.csv").unwrap_err().to_string();
        assert!(
            message.contains("\"varied_facet\" needs a \"variant_of\" column"),
            "{message}"
        );
        let no_design = csv::StringRecord::from(vec!["path", "variant_of", "varied_facet"]);
        let message = Layout::from_header(&no_design, "m.csv")
            .unwrap_err()
            .to_string();
        assert!(message.contains("no \"design\" column"), "{message}");
    }

    #[test]
    fn variant_cells_are_both_set_or_both_empty() {
        let facets = ["neckline".to_string(), "sleeve".to_string()];
        let variant = |of, facet, design| parse_variant([of, facet], design, &facets);
        assert_eq!(variant("", "", Some("d2")), Ok(None));
        assert_eq!(variant("", "", None), Ok(None));
        assert_eq!(
            variant("d1", "sleeve", Some("d2")),
            Ok(Some(Variant {
                of: "d1".to_string(),
                facet: "sleeve".to_string()
            }))
        );
        assert_eq!(
            variant("", "sleeve", Some("d2")).unwrap_err().0,
            "variant_of"
        );
        assert_eq!(variant("d1", "", Some("d2")).unwrap_err().0, "varied_facet");
        assert_eq!(variant("d1", "sleeve", None).unwrap_err().0, "design");
        assert_eq!(
            variant("d2", "sleeve", Some("d2")).unwrap_err().0,
            "variant_of"
        );
        let (column, message) = variant("d1", "colour", Some("d2")).unwrap_err();
        assert_eq!(column, "varied_facet");
        assert!(message.contains("(it has: neckline, sleeve)"), "{message}");
    }
}
