//! Folder-tree sources: `ROOT/<facet>/<label>/<image file>`. A picture filed under several
//! facets (as copies or links) is one image with all those labels, since ids are content hashes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::content::ContentId;
use crate::error::CatalogError;
use crate::remote::Contents;
use crate::source::{Batch, BatchSender, CHUNK_ROWS, Origin, SourcePlan, SourceRow, Stop, send};

/// File name extensions taken as images (compared case-insensitively).
const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

/// At most this many ignored paths are named in the warning; the rest are counted.
const NAMED_IGNORED: usize = 5;

struct FileEntry {
    uri: String,
    facet: usize,
    label: String,
}

pub(crate) struct FolderTree {
    entries: Vec<FileEntry>,
    facet_count: usize,
    ignored: Vec<String>,
    contents: Contents,
}

impl FolderTree {
    /// Walks the tree (blocking); files elsewhere than at depth three are ignored with a warning.
    pub fn open(
        root: &Path,
        display: String,
        source: String,
    ) -> Result<(SourcePlan, FolderTree), CatalogError> {
        let mut facets = Vec::new();
        let mut entries = Vec::new();
        let mut ignored = Vec::new();
        for (facet_path, facet_kind) in sorted_children(root)? {
            if facet_kind != Kind::Folder {
                ignored.push(facet_kind.describe(&facet_path));
                continue;
            }
            let facet = utf8_name(&facet_path)?;
            let facet_index = facets.len();
            facets.push(facet);
            for (label_path, label_kind) in sorted_children(&facet_path)? {
                if label_kind != Kind::Folder {
                    ignored.push(label_kind.describe(&label_path));
                    continue;
                }
                let label = utf8_name(&label_path)?;
                for (file_path, file_kind) in sorted_children(&label_path)? {
                    // Files may be links (a picture filed under several facets); folders there
                    // are ignored.
                    if file_kind == Kind::Folder
                        || file_kind == Kind::FolderLink
                        || !has_image_extension(&file_path)
                    {
                        ignored.push(file_kind.describe(&file_path));
                        continue;
                    }
                    let uri = file_path
                        .to_str()
                        .ok_or_else(|| not_utf8(&file_path))?
                        .to_string();
                    entries.push(FileEntry {
                        uri,
                        facet: facet_index,
                        label: label.clone(),
                    });
                }
            }
        }
        Ok(FolderTree::plan(
            display,
            source,
            facets,
            entries,
            ignored,
            Contents::Local,
        ))
    }

    /// The tree formed by the objects `objects` (URIs) under `root` (a URI ending in `/`):
    /// the same rules as a folder's, on the keys' segments.
    pub fn from_listing(
        root: &str,
        objects: &[String],
        contents: Contents,
    ) -> (SourcePlan, FolderTree) {
        let mut relative: Vec<(&str, &str)> = objects
            .iter()
            .filter_map(|uri| Some((uri.as_str(), uri.strip_prefix(root)?)))
            .filter(|(_, rest)| !rest.split('/').any(|s| s.starts_with('.')))
            .collect();
        relative.sort_by(|a, b| a.1.cmp(b.1));
        let (mut facets, mut entries, mut ignored) = (Vec::<String>::new(), Vec::new(), Vec::new());
        for (uri, rest) in relative {
            let segments: Vec<&str> = rest.split('/').collect();
            let [facet, label, file] = segments[..] else {
                ignored.push(uri.to_string());
                continue;
            };
            if !has_image_extension(Path::new(file)) {
                ignored.push(uri.to_string());
                continue;
            }
            let facet_index = match facets.iter().position(|f| f == facet) {
                Some(index) => index,
                None => {
                    facets.push(facet.to_string());
                    facets.len() - 1
                }
            };
            entries.push(FileEntry {
                uri: uri.to_string(),
                facet: facet_index,
                label: label.to_string(),
            });
        }
        let root = root.to_string();
        FolderTree::plan(root.clone(), root, facets, entries, ignored, contents)
    }

    fn plan(
        display: String,
        source: String,
        facets: Vec<String>,
        entries: Vec<FileEntry>,
        ignored: Vec<String>,
        contents: Contents,
    ) -> (SourcePlan, FolderTree) {
        let plan = SourcePlan {
            display,
            source,
            is_manifest: false,
            facets,
            has_boxes: false,
            has_design: false,
            has_variants: false,
            rows_total: entries.len() as u64,
        };
        let facet_count = plan.facets.len();
        let tree = FolderTree {
            entries,
            facet_count,
            ignored,
            contents,
        };
        (plan, tree)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Hashes every file in parallel chunks, merges files with the same content into one row,
    /// and sends the rows (blocking). Memory grows with the number of images in the tree.
    pub fn produce(self, sender: &BatchSender) -> Result<(), Stop> {
        let mut warnings = Vec::new();
        if !self.ignored.is_empty() {
            let named: Vec<&str> = self
                .ignored
                .iter()
                .take(NAMED_IGNORED)
                .map(String::as_str)
                .collect();
            let more = self.ignored.len().saturating_sub(NAMED_IGNORED);
            warnings.push(format!(
                "ignored {} paths that are not image files at ROOT/<facet>/<label>/<file>: {}{}",
                self.ignored.len(),
                named.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ));
        }
        let mut images: BTreeMap<ContentId, SourceRow> = BTreeMap::new();
        let mut duplicates = 0u64;
        for chunk in self.entries.chunks(CHUNK_ROWS) {
            let uris: Vec<String> = chunk.iter().map(|e| e.uri.clone()).collect();
            let hashed = self.contents.hash_all(&uris)?;
            for (entry, content) in chunk.iter().zip(hashed) {
                let id = content.id();
                let row = images.entry(id).or_insert_with(|| SourceRow {
                    origin: Origin::File(entry.uri.clone()),
                    uri: entry.uri.clone(),
                    content,
                    split: None,
                    labels: vec![None; self.facet_count],
                    bbox: None,
                    design: None,
                    variant: None,
                });
                match &row.labels[entry.facet] {
                    None => row.labels[entry.facet] = Some(entry.label.clone()),
                    Some(first) => {
                        duplicates += 1;
                        let note = if *first == entry.label {
                            "it is skipped".to_string()
                        } else {
                            format!("its label {:?} is ignored, {first:?} is kept", entry.label)
                        };
                        warnings.push(format!(
                            "{} has the same content as {} (id {}); {note}",
                            entry.uri,
                            row.uri,
                            id.to_id()
                        ));
                    }
                }
            }
        }
        let mut batch = Batch {
            warnings,
            duplicates,
            ..Batch::default()
        };
        for row in images.into_values() {
            batch.rows.push(row);
            if batch.rows.len() == CHUNK_ROWS {
                send(sender, std::mem::take(&mut batch))?;
            }
        }
        if !batch.rows.is_empty() || !batch.warnings.is_empty() || batch.duplicates > 0 {
            send(sender, batch)?;
        }
        Ok(())
    }
}

/// What a folder entry is, as far as walking a tree cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Folder,
    /// A link to a folder: not followed, so a link such as `ROOT/up -> ..` cannot make the
    /// tree's parent (or the tree itself) a facet.
    FolderLink,
    /// A file, or a link to one.
    File,
}

impl Kind {
    /// The path as an ignored entry is named.
    fn describe(self, path: &Path) -> String {
        match self {
            Kind::FolderLink => format!("{} (a link to a folder, not followed)", path.display()),
            Kind::Folder | Kind::File => path.display().to_string(),
        }
    }
}

/// Children of `dir`, sorted by name, hidden ones (leading dot) left out.
fn sorted_children(dir: &Path) -> Result<Vec<(PathBuf, Kind)>, CatalogError> {
    let io = |source| CatalogError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut children = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        let is_dir = std::fs::metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        let kind = match (is_dir, is_link) {
            (true, true) => Kind::FolderLink,
            (true, false) => Kind::Folder,
            (false, _) => Kind::File,
        };
        children.push((path, kind));
    }
    children.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(children)
}

fn has_image_extension(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        IMAGE_EXTENSIONS
            .iter()
            .any(|known| e.eq_ignore_ascii_case(known))
    })
}

fn utf8_name(path: &Path) -> Result<String, CatalogError> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| not_utf8(path))
}

fn not_utf8(path: &Path) -> CatalogError {
    CatalogError::Source {
        location: path.display().to_string(),
        message: "the name is not valid UTF-8; rename it".to_string(),
    }
}
