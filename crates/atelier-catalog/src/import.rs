//! Import: synchronises the catalogue with one source (manifest or folder tree) in a single
//! transaction. New images are added, changed labels updated with an event, images the source
//! no longer lists marked removed; a source imported twice leaves the database untouched.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use sqlx::{AnyConnection, Row};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Catalog;
use crate::content::{ContentId, FileContent};
use crate::counters::{self, LABELS_COUNTER};
use crate::error::{CatalogError, db};
use crate::model::{ImportOptions, ImportProgress, ImportReport, Split, Status};
use crate::relabel::decided_by_people;
use crate::remote::{RemoteObjects, RemoteSource};
use crate::source::{Batch, BoxCoords, Origin, SourcePlan, SourceRow, Variant};
use crate::source_reader::SourceReader;
use crate::sql::split_from_db;
use crate::sql::status_from_db;
use crate::sql::{ParamStyle, assembled, insert_values, now_millis, placeholders, select_where_in};

/// Individual warnings kept in a report; further ones are only counted.
const MAX_WARNINGS: usize = 100;

/// Positions given to labels created during an import until `finish` sorts them into place.
const PROVISIONAL_POSITION: i64 = 1 << 40;

/// Ids per page when scanning a source's images for ones it no longer lists.
const SCAN_PAGE: i64 = 5_000;

/// Paths named in a refusal; the rest are counted.
const NAMED_PATHS: usize = 5;

impl Catalog {
    /// Synchronises the catalogue with a manifest CSV or a folder tree. All or nothing: on any
    /// error the database is left as it was.
    pub async fn import(
        &self,
        path: &Path,
        opts: &ImportOptions,
    ) -> Result<ImportReport, CatalogError> {
        check_options(opts)?;
        let owned_path = path.to_path_buf();
        let opened = tokio::task::spawn_blocking(move || SourceReader::open(&owned_path))
            .await
            .map_err(|e| CatalogError::Interrupted(format!("source reader failed: {e}")))??;
        self.import_opened(opened, opts).await
    }

    /// Synchronises the catalogue with a manifest or folder tree in object storage, whose
    /// objects `remote` reads; the images are recorded with their URIs. Before any object is
    /// read, a manifest's rows are checked to name existing objects: unless missing ones are
    /// allowed (then quarantined placeholders, as for missing files), any missing object
    /// refuses the import, naming them. All or nothing, like [`Catalog::import`].
    pub async fn import_remote(
        &self,
        source: RemoteSource,
        remote: Arc<dyn RemoteObjects>,
        opts: &ImportOptions,
    ) -> Result<ImportReport, CatalogError> {
        check_options(opts)?;
        let check_missing = !opts.allow_missing;
        let opened = tokio::task::spawn_blocking(move || {
            let (plan, reader) = SourceReader::open_remote(&source, remote.clone())?;
            if check_missing {
                refuse_missing_objects(&plan, &reader, remote.as_ref())?;
            }
            Ok::<_, CatalogError>((plan, reader))
        })
        .await
        .map_err(|e| CatalogError::Interrupted(format!("source reader failed: {e}")))??;
        self.import_opened(opened, opts).await
    }

    /// Reads an opened source to the end and writes it.
    async fn import_opened(
        &self,
        (plan, reader): (SourcePlan, SourceReader),
        opts: &ImportOptions,
    ) -> Result<ImportReport, CatalogError> {
        // A small buffer lets the reader hash the next chunk while this one is written.
        let (sender, mut receiver) = mpsc::channel(2);
        let reader_plan = plan.clone();
        let producer = tokio::task::spawn_blocking(move || reader.produce(&reader_plan, &sender));
        let outcome = self
            .write_source(&plan, opts, &mut receiver, producer)
            .await;
        // Dropping the receiver makes a reader that is still running stop at its next send.
        drop(receiver);
        outcome
    }

    /// Writes the chunks the reader sends, in one transaction committed only once the reader
    /// finished.
    async fn write_source(
        &self,
        plan: &SourcePlan,
        opts: &ImportOptions,
        receiver: &mut mpsc::Receiver<Result<Batch, CatalogError>>,
        producer: JoinHandle<()>,
    ) -> Result<ImportReport, CatalogError> {
        let mut tx = self.begin_write().await?;
        let style = ParamStyle::for_backend(self.backend);
        let mut sync = Synchroniser::start(&mut tx, plan, opts, style).await?;
        let mut rows_done = 0u64;
        while let Some(batch) = receiver.recv().await {
            let batch = batch?;
            rows_done += batch.rows.len() as u64 + batch.duplicates;
            sync.apply(&mut tx, batch).await?;
            sync.progress(rows_done.min(plan.rows_total));
        }
        // The channel also closes when the reader panics; never commit a partial source.
        producer
            .await
            .map_err(|e| CatalogError::Interrupted(format!("source reader failed: {e}")))?;
        let report = sync.finish(&mut tx).await?;
        if report.added + report.updated + report.removed + report.quarantined > 0 {
            counters::bump(&mut tx, LABELS_COUNTER)
                .await
                .map_err(db("committing the import"))?;
        }
        tx.commit().await.map_err(db("committing the import"))?;
        Ok(report)
    }
}

/// Refuses a manifest in object storage whose rows name objects that do not exist (blocking).
fn refuse_missing_objects(
    plan: &SourcePlan,
    reader: &SourceReader,
    remote: &dyn RemoteObjects,
) -> Result<(), CatalogError> {
    let uris = reader.listed_uris(plan)?;
    let missing = remote.missing(&uris)?;
    if missing.is_empty() {
        return Ok(());
    }
    let mut named = PathTally::default();
    for uri in missing.iter().take(NAMED_PATHS) {
        named.push(uri);
    }
    named.count = missing.len() as u64;
    Err(CatalogError::Source {
        location: plan.display.clone(),
        message: format!(
            "{} of {} rows name objects that do not exist: {}. Nothing was imported; upload \
             them, correct their paths (relative to the manifest's prefix), or allow missing \
             files (import option allow_missing) to import them as quarantined placeholders",
            missing.len(),
            uris.len(),
            named.describe()
        ),
    })
}

/// Refuses options out of their range before anything is read.
fn check_options(opts: &ImportOptions) -> Result<(), CatalogError> {
    if !(0.0..=1.0).contains(&opts.test_fraction) {
        return Err(CatalogError::InvalidOptions(format!(
            "test_fraction is {}, it must be between 0 and 1",
            opts.test_fraction
        )));
    }
    for (name, share) in [
        ("max_missing_share", opts.max_missing_share),
        ("max_removed_share", opts.max_removed_share),
    ] {
        if !(0.0..=1.0).contains(&share) {
            return Err(CatalogError::InvalidOptions(format!(
                "{name} is {share}, it must be between 0 and 1"
            )));
        }
    }
    if opts.actor.trim().is_empty() {
        return Err(CatalogError::InvalidOptions(
            "actor is empty; name who runs the import".to_string(),
        ));
    }
    Ok(())
}

/// A facet the source sets, with its known labels.
struct FacetColumn {
    id: i64,
    name: String,
    /// Existed before this import: unknown labels need `allow_new_labels`.
    existed: bool,
    labels: HashMap<String, i64>,
    /// Labels in stored order, for messages.
    ordered: Vec<String>,
    /// Labels this import created, with their ids.
    created: Vec<(String, i64)>,
    next_position: i64,
}

/// An image's stored state, as far as an import compares it.
struct StoredImage {
    uri: String,
    byte_size: Option<i64>,
    split: Split,
    status: Status,
    reason: Option<String>,
    source: String,
    design: Option<String>,
}

/// The full row an import writes for a new or changed image.
struct ImageWrite {
    id: String,
    uri: String,
    byte_size: Option<i64>,
    split: Split,
    status: Status,
    reason: Option<String>,
    source: String,
    design: Option<String>,
}

/// An image's stored label for one facet, as far as an import compares it.
struct StoredLabel {
    /// `None`: cleared.
    label: Option<i64>,
    /// Who set it: `import`, or `review` for a reviewer's change.
    source: String,
}

struct LabelWrite {
    image: String,
    facet: i64,
    old: Option<i64>,
    new: Option<i64>,
}

/// What the catalogue holds of one listed image: its row, and the stored labels and import
/// boxes of the chunk.
struct Stored<'a> {
    image: &'a StoredImage,
    labels: &'a HashMap<(String, i64), StoredLabel>,
    boxes: Option<&'a Vec<BoxCoords>>,
}

/// Writes one chunk needs, gathered first so that each table gets a few multi-row statements.
#[derive(Default)]
struct ChunkWrites {
    designs: Vec<String>,
    images: Vec<ImageWrite>,
    labels: Vec<LabelWrite>,
    box_deletes: Vec<String>,
    box_inserts: Vec<(String, BoxCoords)>,
}

#[derive(Default)]
struct Warnings {
    shown: Vec<String>,
    hidden: u64,
}

impl Warnings {
    fn push(&mut self, warning: String) {
        if self.shown.len() < MAX_WARNINGS {
            self.shown.push(warning);
        } else {
            self.hidden += 1;
        }
    }

    fn into_vec(mut self) -> Vec<String> {
        if self.hidden > 0 {
            self.shown
                .push(format!("... and {} more warnings not shown", self.hidden));
        }
        self.shown
    }
}

struct Synchroniser<'a> {
    plan: &'a SourcePlan,
    style: ParamStyle,
    opts: &'a ImportOptions,
    now: i64,
    facets: Vec<FacetColumn>,
    /// Every id this source listed so far, with where it was first listed and its labels.
    seen: HashMap<ContentId, (Origin, Vec<Option<String>>)>,
    report: ImportReport,
    warnings: Warnings,
    /// Images listed here but owned by another source: source -> count.
    foreign: BTreeMap<String, u64>,
    /// Rows whose file is missing, unreadable or empty, and the first of their paths.
    missing: PathTally,
    /// Rows that name no regular file (refused), and the first of their reasons.
    not_regular: PathTally,
    /// The source's images that were not removed before this import.
    owned_before: u64,
    /// What each listed design varies, as its first row says (sources with variant columns).
    variants: BTreeMap<String, ListedVariant>,
}

/// What a source says one design varies, and where it first said so.
struct ListedVariant {
    origin: Origin,
    variant: Option<Variant>,
}

impl ListedVariant {
    /// `a variant of "d1" in neckline`, or `no variant`, for messages.
    fn describe(&self) -> String {
        match &self.variant {
            Some(v) => format!("a variant of {:?} in {}", v.of, v.facet),
            None => "no variant".to_string(),
        }
    }
}

/// A count of rows with the first few of their paths (or reasons), for a refusal's message.
#[derive(Default)]
struct PathTally {
    count: u64,
    named: Vec<String>,
}

impl PathTally {
    fn push(&mut self, path: &str) {
        self.count += 1;
        if self.named.len() < NAMED_PATHS {
            self.named.push(path.to_string());
        }
    }

    /// `a, b, c and 7 more`.
    fn describe(&self) -> String {
        let more = self.count.saturating_sub(self.named.len() as u64);
        let mut text = self.named.join(", ");
        if more > 0 {
            text.push_str(&format!(" and {more} more"));
        }
        text
    }
}

impl<'a> Synchroniser<'a> {
    async fn start(
        conn: &mut AnyConnection,
        plan: &'a SourcePlan,
        opts: &'a ImportOptions,
        style: ParamStyle,
    ) -> Result<Synchroniser<'a>, CatalogError> {
        let now = now_millis();
        let mut facets = Vec::with_capacity(plan.facets.len());
        for name in &plan.facets {
            facets.push(load_or_create_facet(conn, name, now).await?);
        }
        let owned_before: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM images WHERE source = $1 AND status <> 'removed'",
        )
        .bind(plan.source.as_str())
        .fetch_one(&mut *conn)
        .await
        .map_err(db("counting the source's images"))?;
        Ok(Synchroniser {
            plan,
            style,
            opts,
            now,
            facets,
            seen: HashMap::new(),
            report: ImportReport {
                source: plan.source.clone(),
                rows: plan.rows_total,
                ..ImportReport::default()
            },
            warnings: Warnings::default(),
            foreign: BTreeMap::new(),
            missing: PathTally::default(),
            not_regular: PathTally::default(),
            owned_before: owned_before.max(0) as u64,
            variants: BTreeMap::new(),
        })
    }

    fn progress(&self, rows_done: u64) {
        if let Some(callback) = &self.opts.on_progress {
            callback(ImportProgress {
                rows_done,
                rows_total: self.plan.rows_total,
            });
        }
    }

    async fn apply(&mut self, conn: &mut AnyConnection, batch: Batch) -> Result<(), CatalogError> {
        self.report.duplicates += batch.duplicates;
        for warning in batch.warnings {
            self.warnings.push(warning);
        }
        let rows = self.drop_unusable(batch.rows);
        let rows = self.drop_duplicates(rows);
        if rows.is_empty() {
            return Ok(());
        }
        if self.plan.has_variants {
            self.collect_variants(&rows)?;
        }
        let mut label_ids = Vec::with_capacity(rows.len());
        for row in &rows {
            label_ids.push(self.resolve_labels(conn, row).await?);
        }
        let ids: Vec<String> = rows.iter().map(|r| r.content.id().to_id()).collect();
        let stored = load_images(conn, self.style, &ids).await?;
        let stored_ids: Vec<String> = ids
            .iter()
            .filter(|id| stored.contains_key(*id))
            .cloned()
            .collect();
        let stored_labels = load_labels(conn, self.style, &stored_ids).await?;
        let stored_boxes = if self.plan.has_boxes {
            load_import_boxes(conn, self.style, &stored_ids).await?
        } else {
            HashMap::new()
        };

        let mut writes = ChunkWrites::default();
        if self.plan.has_design {
            writes.designs = missing_designs(conn, self.style, &rows).await?;
        }
        for ((row, id), labels) in rows.iter().zip(&ids).zip(&label_ids) {
            match stored.get(id) {
                None => self.add_image(&mut writes, row, id, labels),
                Some(image) => {
                    let stored = Stored {
                        image,
                        labels: &stored_labels,
                        boxes: stored_boxes.get(id),
                    };
                    self.compare_image(&mut writes, row, id, labels, &stored)
                }
            }
        }
        self.write_chunk(conn, writes).await
    }

    /// Leaves out rows that name no regular file (counted, to refuse the import at the end)
    /// and counts rows whose file is missing.
    fn drop_unusable(&mut self, rows: Vec<SourceRow>) -> Vec<SourceRow> {
        let mut kept = Vec::with_capacity(rows.len());
        for row in rows {
            match &row.content {
                FileContent::NotRegular { reason, .. } => self.not_regular.push(reason),
                FileContent::Unreadable { .. } => {
                    self.missing.push(&row.uri);
                    kept.push(row);
                }
                FileContent::Hashed { .. } => kept.push(row),
            }
        }
        kept
    }

    /// Keeps the first row of each content id; later ones become warnings, which name the
    /// labels the later row disagrees on.
    fn drop_duplicates(&mut self, rows: Vec<SourceRow>) -> Vec<SourceRow> {
        let mut kept = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.content.id();
            if let Some((first, first_labels)) = self.seen.get(&id) {
                self.report.duplicates += 1;
                let what = if id.placeholder {
                    "lists the same file"
                } else {
                    "has the same content"
                };
                let first_at = self.plan.location(first, None);
                let conflict = self.label_conflict(first_labels, &row.labels);
                let outcome = match conflict {
                    Some(conflict) => format!(
                        " but with other labels ({conflict}); {first_at}'s labels are kept and this row \
                         is skipped: fix whichever is wrong"
                    ),
                    None => "; the later row is skipped".to_string(),
                };
                self.warnings.push(format!(
                    "{} ({}) {what} as {first_at} (id {}){outcome}",
                    self.plan.location(&row.origin, None),
                    row.uri,
                    id.to_id()
                ));
                continue;
            }
            self.seen
                .insert(id, (row.origin.clone(), row.labels.clone()));
            kept.push(row);
        }
        kept
    }

    /// Notes what each row's design varies; two rows of one design that disagree fail.
    fn collect_variants(&mut self, rows: &[SourceRow]) -> Result<(), CatalogError> {
        for row in rows {
            let Some(design) = &row.design else {
                continue;
            };
            let listed = ListedVariant {
                origin: row.origin.clone(),
                variant: row.variant.clone(),
            };
            match self.variants.get(design) {
                None => {
                    self.variants.insert(design.clone(), listed);
                }
                Some(first) if first.variant == listed.variant => {}
                Some(first) => {
                    return Err(CatalogError::Source {
                        location: self.plan.location(&row.origin, Some("variant_of")),
                        message: format!(
                            "design {design:?} is {} here but {} at {}; give every row of a \
                             design the same variant_of and varied_facet",
                            listed.describe(),
                            first.describe(),
                            self.plan.location(&first.origin, None)
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// `neckline "v-neck" there, "round" here; ...` for the facets where two rows disagree.
    fn label_conflict(&self, first: &[Option<String>], later: &[Option<String>]) -> Option<String> {
        let shown = |label: &Option<String>| {
            label
                .as_deref()
                .map_or_else(|| "(none)".to_string(), |l| format!("{l:?}"))
        };
        let differences: Vec<String> = self
            .facets
            .iter()
            .zip(first.iter().zip(later))
            .filter(|(_, (a, b))| a != b)
            .map(|(facet, (a, b))| format!("{} {} there, {} here", facet.name, shown(a), shown(b)))
            .collect();
        (!differences.is_empty()).then(|| differences.join("; "))
    }

    /// Label ids for a row's labels, creating labels where that is allowed.
    async fn resolve_labels(
        &mut self,
        conn: &mut AnyConnection,
        row: &SourceRow,
    ) -> Result<Vec<Option<i64>>, CatalogError> {
        let mut ids = Vec::with_capacity(row.labels.len());
        for (facet, label) in self.facets.iter_mut().zip(&row.labels) {
            let Some(label) = label else {
                ids.push(None);
                continue;
            };
            if let Some(id) = facet.labels.get(label) {
                ids.push(Some(*id));
                continue;
            }
            if facet.existed && !self.opts.allow_new_labels {
                let column = self.plan.is_manifest.then_some(facet.name.as_str());
                return Err(CatalogError::UnknownLabel {
                    location: self.plan.location(&row.origin, column),
                    facet: facet.name.clone(),
                    label: label.clone(),
                    known: if facet.ordered.is_empty() {
                        "none".to_string()
                    } else {
                        facet.ordered.join(", ")
                    },
                });
            }
            let id: i64 = sqlx::query(
                "INSERT INTO facet_labels (facet_id, label, position) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(facet.id)
            .bind(label.as_str())
            .bind(PROVISIONAL_POSITION + facet.created.len() as i64)
            .fetch_one(&mut *conn)
            .await
            .and_then(|r| r.try_get("id"))
            .map_err(db("adding a label"))?;
            facet.labels.insert(label.clone(), id);
            facet.created.push((label.clone(), id));
            ids.push(Some(id));
        }
        Ok(ids)
    }

    fn add_image(
        &mut self,
        writes: &mut ChunkWrites,
        row: &SourceRow,
        id: &str,
        labels: &[Option<i64>],
    ) {
        let (status, reason, byte_size) = match &row.content {
            FileContent::Hashed { byte_size, .. } => {
                self.report.added += 1;
                (Status::Active, None, Some(*byte_size as i64))
            }
            FileContent::Unreadable { reason, .. } | FileContent::NotRegular { reason, .. } => {
                self.report.quarantined += 1;
                (Status::Quarantined, Some(reason.clone()), None)
            }
        };
        writes.images.push(ImageWrite {
            id: id.to_string(),
            uri: row.uri.clone(),
            byte_size,
            split: row
                .split
                .unwrap_or_else(|| row.content.id().split(self.opts.test_fraction)),
            status,
            reason,
            source: self.plan.source.clone(),
            design: row.design.clone().filter(|_| self.plan.has_design),
        });
        for (facet, label) in self.facets.iter().zip(labels) {
            if label.is_some() {
                writes.labels.push(LabelWrite {
                    image: id.to_string(),
                    facet: facet.id,
                    old: None,
                    new: *label,
                });
            }
        }
        if let Some(bbox) = row.bbox.filter(|_| self.plan.has_boxes) {
            writes.box_inserts.push((id.to_string(), bbox));
        }
    }

    /// Compares a listed image with its stored state and gathers the writes that bring the
    /// catalogue up to date, counting the image as updated, unchanged or quarantined.
    fn compare_image(
        &mut self,
        writes: &mut ChunkWrites,
        row: &SourceRow,
        id: &str,
        labels: &[Option<i64>],
        stored: &Stored<'_>,
    ) {
        let image = self.listed_image(row, id, stored.image);
        let old = stored.image;
        let mut changed = image.uri != old.uri
            || image.byte_size != old.byte_size
            || image.status != old.status
            || image.reason != old.reason
            || image.source != old.source
            || image.design != old.design;
        changed |= self.compare_labels(writes, id, labels, stored.labels);
        changed |= self.compare_boxes(writes, row, id, stored.boxes);
        match (&row.content, changed) {
            (FileContent::Unreadable { .. } | FileContent::NotRegular { .. }, _) => {
                self.report.quarantined += 1
            }
            (FileContent::Hashed { .. }, true) => self.report.updated += 1,
            (FileContent::Hashed { .. }, false) => self.report.unchanged += 1,
        }
        if changed {
            writes.images.push(image);
        }
    }

    /// The row a stored image gets from this listing. Another source's image keeps its path
    /// and source (counted as foreign), unless it was removed: then this source adopts it.
    /// The split never changes; a source that asks for another one gets a warning.
    fn listed_image(&mut self, row: &SourceRow, id: &str, stored: &StoredImage) -> ImageWrite {
        let owned = stored.source == self.plan.source;
        // A removed image belongs to whichever source lists it again.
        let adopted = !owned && stored.status == Status::Removed;
        if !owned && !adopted {
            *self.foreign.entry(stored.source.clone()).or_default() += 1;
        }
        let (status, reason, byte_size) = listed_state(&row.content, stored);
        if let Some(asked) = row.split.filter(|s| *s != stored.split) {
            self.warnings.push(format!(
                "{}: image {} (id {id}) stays in split {}; the source asks for {asked}, but a split never changes once assigned",
                self.plan.location(&row.origin, None),
                row.uri,
                stored.split
            ));
        }
        ImageWrite {
            id: id.to_string(),
            uri: if owned || adopted {
                row.uri.clone()
            } else {
                stored.uri.clone()
            },
            byte_size,
            split: stored.split,
            status,
            reason,
            source: if adopted {
                self.plan.source.clone()
            } else {
                stored.source.clone()
            },
            design: if self.plan.has_design {
                row.design.clone()
            } else {
                stored.design.clone()
            },
        }
    }

    /// Gathers the label changes of a stored image; whether there are any.
    fn compare_labels(
        &mut self,
        writes: &mut ChunkWrites,
        id: &str,
        labels: &[Option<i64>],
        stored_labels: &HashMap<(String, i64), StoredLabel>,
    ) -> bool {
        let mut changed = false;
        for (facet, new) in self.facets.iter().zip(labels) {
            let stored = stored_labels.get(&(id.to_string(), facet.id));
            let old = stored.and_then(|s| s.label);
            if old != *new {
                // Reviewers (and crowd votes they applied) fix the source's mistakes: their
                // label stands until people change it again.
                if stored.is_some_and(|s| decided_by_people(&s.source)) {
                    self.report.kept_reviewed_labels += 1;
                    continue;
                }
                changed = true;
                writes.labels.push(LabelWrite {
                    image: id.to_string(),
                    facet: facet.id,
                    old,
                    new: *new,
                });
            }
        }
        changed
    }

    /// Gathers the box changes of a stored image, if the source sets boxes; whether there are
    /// any.
    fn compare_boxes(
        &self,
        writes: &mut ChunkWrites,
        row: &SourceRow,
        id: &str,
        stored_boxes: Option<&Vec<BoxCoords>>,
    ) -> bool {
        if !self.plan.has_boxes {
            return false;
        }
        let wanted: Vec<BoxCoords> = row.bbox.into_iter().collect();
        let current = stored_boxes.map(Vec::as_slice).unwrap_or_default();
        if wanted.as_slice() == current {
            return false;
        }
        if !current.is_empty() {
            writes.box_deletes.push(id.to_string());
        }
        writes
            .box_inserts
            .extend(wanted.into_iter().map(|b| (id.to_string(), b)));
        true
    }

    /// Writes what one chunk gathered: designs, images, labels with their events, and boxes.
    async fn write_chunk(
        &self,
        conn: &mut AnyConnection,
        writes: ChunkWrites,
    ) -> Result<(), CatalogError> {
        insert_values(
            conn,
            self.style,
            "INSERT INTO designs (id, created_at)",
            2,
            "",
            &writes.designs,
            |q, d| q.bind(d.as_str()).bind(self.now),
        )
        .await
        .map_err(db("adding designs"))?;
        self.write_images(conn, &writes.images).await?;
        self.write_labels(conn, &writes.labels).await?;
        self.write_boxes(conn, &writes.box_deletes, &writes.box_inserts)
            .await
    }

    async fn write_images(
        &self,
        conn: &mut AnyConnection,
        images: &[ImageWrite],
    ) -> Result<(), CatalogError> {
        let now = self.now;
        insert_values(
            conn,
            self.style,
            "INSERT INTO images (id, uri, byte_size, split, status, quarantine_reason, source, design, created_at, updated_at)",
            10,
            "ON CONFLICT (id) DO UPDATE SET uri = excluded.uri, byte_size = excluded.byte_size, \
             status = excluded.status, quarantine_reason = excluded.quarantine_reason, \
             source = excluded.source, design = excluded.design, updated_at = excluded.updated_at",
            images,
            |q, i| {
                q.bind(i.id.as_str())
                    .bind(i.uri.as_str())
                    .bind(i.byte_size)
                    .bind(i.split.as_str())
                    .bind(i.status.as_str())
                    .bind(i.reason.as_deref())
                    .bind(i.source.as_str())
                    .bind(i.design.as_deref())
                    .bind(now)
                    .bind(now)
            },
        )
        .await
        .map_err(db("writing images"))?;
        Ok(())
    }

    /// Writes labels (version + 1 on change) and one label event per change.
    async fn write_labels(
        &self,
        conn: &mut AnyConnection,
        labels: &[LabelWrite],
    ) -> Result<(), CatalogError> {
        let now = self.now;
        insert_values(
            conn,
            self.style,
            "INSERT INTO labels (image_id, facet_id, label_id, source, version, updated_at)",
            6,
            "ON CONFLICT (image_id, facet_id) DO UPDATE SET label_id = excluded.label_id, \
             source = excluded.source, version = labels.version + 1, updated_at = excluded.updated_at",
            labels,
            |q, l| {
                q.bind(l.image.as_str())
                    .bind(l.facet)
                    .bind(l.new)
                    .bind("import")
                    .bind(1i64)
                    .bind(now)
            },
        )
        .await
        .map_err(db("writing labels"))?;

        let actor = self.opts.actor.as_str();
        insert_values(
            conn,
            self.style,
            "INSERT INTO label_events (image_id, facet_id, old_label_id, new_label_id, actor, source, at)",
            7,
            "",
            labels,
            |q, l| {
                q.bind(l.image.as_str())
                    .bind(l.facet)
                    .bind(l.old)
                    .bind(l.new)
                    .bind(actor)
                    .bind("import")
                    .bind(now)
            },
        )
        .await
        .map_err(db("recording label events"))?;
        Ok(())
    }

    /// Replaces the import's dress boxes of `deletes` and adds `inserts`.
    async fn write_boxes(
        &self,
        conn: &mut AnyConnection,
        deletes: &[String],
        inserts: &[(String, BoxCoords)],
    ) -> Result<(), CatalogError> {
        for ids in deletes.chunks(crate::sql::MAX_PARAMS) {
            let sql = format!(
                "DELETE FROM boxes WHERE source = 'import' AND kind = 'dress' AND image_id IN ({})",
                placeholders(self.style, 1, ids.len())
            );
            let mut query = assembled(sql);
            for id in ids {
                query = query.bind(id.as_str());
            }
            query
                .execute(&mut *conn)
                .await
                .map_err(db("replacing boxes"))?;
        }
        insert_values(
            conn,
            self.style,
            "INSERT INTO boxes (image_id, x0, y0, x1, y1, kind, source)",
            7,
            "",
            inserts,
            |q, (id, b)| {
                q.bind(id.as_str())
                    .bind(b[0])
                    .bind(b[1])
                    .bind(b[2])
                    .bind(b[3])
                    .bind("dress")
                    .bind("import")
            },
        )
        .await
        .map_err(db("writing boxes"))?;
        Ok(())
    }

    /// Marks the source's unlisted images removed, orders new labels, and builds the report.
    async fn finish(mut self, conn: &mut AnyConnection) -> Result<ImportReport, CatalogError> {
        self.refuse_unusable_rows()?;
        self.write_variants(conn).await?;
        let unlisted = self.unlisted_images(conn).await?;
        self.refuse_mass_removal(conn, &unlisted).await?;
        for ids in unlisted.chunks(crate::sql::MAX_PARAMS - 1) {
            let sql = format!(
                "UPDATE images SET status = 'removed', updated_at = {} WHERE id IN ({})",
                placeholders(self.style, 1, 1),
                placeholders(self.style, 2, ids.len())
            );
            let mut query = assembled(sql).bind(self.now);
            for id in ids {
                query = query.bind(id.as_str());
            }
            query
                .execute(&mut *conn)
                .await
                .map_err(db("marking unlisted images removed"))?;
        }
        self.report.removed = unlisted.len() as u64;

        for facet in &self.facets {
            place_created_labels(conn, facet).await?;
        }
        for (source, count) in &self.foreign {
            self.warnings.push(format!(
                "{count} listed images were first imported from {source}; their labels were updated here, but that source still owns them (their path and removal follow it)"
            ));
        }
        if self.report.rows == 0 {
            self.warnings.push(format!(
                "{} lists no images{}",
                self.plan.display,
                if self.plan.is_manifest {
                    ""
                } else {
                    "; a folder source is laid out as ROOT/<facet>/<label>/<image file>"
                }
            ));
        }
        self.progress(self.plan.rows_total);
        let mut report = self.report;
        report.warnings = self.warnings.into_vec();
        Ok(report)
    }

    /// Stores what the listed designs vary where that changed, once every listed design exists.
    /// A design varied that neither the source nor the catalogue lists fails the import.
    async fn write_variants(&mut self, conn: &mut AnyConnection) -> Result<(), CatalogError> {
        if self.variants.is_empty() {
            return Ok(());
        }
        self.refuse_unknown_varied_designs(conn).await?;
        let designs: Vec<&str> = self.variants.keys().map(String::as_str).collect();
        let rows = select_where_in(
            conn,
            self.style,
            "SELECT id, variant_of, varied_facet FROM designs WHERE id IN (",
            "",
            &designs,
        )
        .await
        .map_err(db("loading design variants"))?;
        let get = db("loading design variants");
        let mut stored: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
        for row in rows {
            let varied = (
                row.try_get("variant_of").map_err(&get)?,
                row.try_get("varied_facet").map_err(&get)?,
            );
            stored.insert(row.try_get("id").map_err(&get)?, varied);
        }
        let changed: Vec<(&str, Option<&Variant>)> = self
            .variants
            .iter()
            .filter(|(design, listed)| {
                let wanted = listed
                    .variant
                    .as_ref()
                    .map(|v| (v.of.as_str(), v.facet.as_str()));
                let current = stored
                    .get(design.as_str())
                    .and_then(|(of, facet)| of.as_deref().zip(facet.as_deref()));
                wanted != current
            })
            .map(|(design, listed)| (design.as_str(), listed.variant.as_ref()))
            .collect();
        // Every listed design exists by now: these upserts only update.
        insert_values(
            conn,
            self.style,
            "INSERT INTO designs (id, created_at, variant_of, varied_facet)",
            4,
            "ON CONFLICT (id) DO UPDATE SET variant_of = excluded.variant_of, \
             varied_facet = excluded.varied_facet",
            &changed,
            |q, (design, variant)| {
                q.bind(*design)
                    .bind(self.now)
                    .bind(variant.map(|v| v.of.as_str()))
                    .bind(variant.map(|v| v.facet.as_str()))
            },
        )
        .await
        .map_err(db("writing design variants"))?;
        self.report.variants_updated = changed.len() as u64;
        Ok(())
    }

    /// Fails on the first row (in design order) whose design varies one that the catalogue
    /// does not hold, now that the source's designs are written.
    async fn refuse_unknown_varied_designs(
        &self,
        conn: &mut AnyConnection,
    ) -> Result<(), CatalogError> {
        let varied: Vec<&str> = self
            .variants
            .values()
            .filter_map(|listed| listed.variant.as_ref().map(|v| v.of.as_str()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let known: HashSet<String> = select_where_in(
            conn,
            self.style,
            "SELECT id FROM designs WHERE id IN (",
            "",
            &varied,
        )
        .await
        .and_then(|rows| rows.iter().map(|r| r.try_get("id")).collect())
        .map_err(db("looking up varied designs"))?;
        let unknown = self.variants.iter().find_map(|(design, listed)| {
            let variant = listed.variant.as_ref()?;
            (!known.contains(&variant.of)).then_some((design, listed, variant))
        });
        match unknown {
            None => Ok(()),
            Some((design, listed, variant)) => Err(CatalogError::Source {
                location: self.plan.location(&listed.origin, Some("variant_of")),
                message: format!(
                    "design {design:?} varies design {:?}, which neither this manifest nor the \
                     catalogue lists; list the design it varies, or correct variant_of. Nothing \
                     was imported",
                    variant.of
                ),
            }),
        }
    }

    /// Refuses an import that names paths that are no regular files, or (unless allowed) one
    /// where too many rows name missing files: likely a manifest for another machine or
    /// folder. The transaction is then rolled back, so nothing is written.
    fn refuse_unusable_rows(&self) -> Result<(), CatalogError> {
        let location = self.plan.display.clone();
        if self.not_regular.count > 0 {
            return Err(CatalogError::Source {
                location,
                message: format!(
                    "{} rows name paths that are not image files: {}; list only image files. \
                     Nothing was imported",
                    self.not_regular.count,
                    self.not_regular.describe()
                ),
            });
        }
        let rows = self.report.rows.max(1) as f64;
        let share = self.missing.count as f64 / rows;
        if !self.opts.allow_missing && share > self.opts.max_missing_share {
            return Err(CatalogError::Source {
                location,
                message: format!(
                    "{} of {} rows ({:.0}%, more than {:.0}%) name files that are missing, \
                     unreadable or empty: {}. Nothing was imported; check that the paths are \
                     relative to the manifest's folder, or allow missing files (import option \
                     allow_missing) to import them as quarantined placeholders",
                    self.missing.count,
                    self.report.rows,
                    share * 100.0,
                    self.opts.max_missing_share * 100.0,
                    self.missing.describe()
                ),
            });
        }
        Ok(())
    }

    /// Refuses (unless allowed) an import that would mark more than the allowed share of the
    /// source's images removed: a manifest cut short or emptied by mistake.
    async fn refuse_mass_removal(
        &self,
        conn: &mut AnyConnection,
        unlisted: &[String],
    ) -> Result<(), CatalogError> {
        let before = self.owned_before.max(1) as f64;
        let share = unlisted.len() as f64 / before;
        if self.opts.allow_removals || unlisted.is_empty() || share <= self.opts.max_removed_share {
            return Ok(());
        }
        let mut named = PathTally::default();
        for id in unlisted.iter().take(NAMED_PATHS) {
            let uri: String = sqlx::query_scalar("SELECT uri FROM images WHERE id = $1")
                .bind(id.as_str())
                .fetch_one(&mut *conn)
                .await
                .map_err(db("naming images the source no longer lists"))?;
            named.push(&uri);
        }
        named.count = unlisted.len() as u64;
        Err(CatalogError::Source {
            location: self.plan.display.clone(),
            message: format!(
                "this import would mark {} of the source's {} images removed ({:.0}%, more than \
                 {:.0}%) because it no longer lists them: {}. Was the manifest cut short? Nothing \
                 was imported; allow removals (import option allow_removals) to remove them",
                unlisted.len(),
                self.owned_before,
                share * 100.0,
                self.opts.max_removed_share * 100.0,
                named.describe()
            ),
        })
    }

    /// Images of this source that are not removed and that this import did not list.
    async fn unlisted_images(&self, conn: &mut AnyConnection) -> Result<Vec<String>, CatalogError> {
        let mut unlisted = Vec::new();
        let mut after = String::new();
        loop {
            let page = sqlx::query(
                "SELECT id FROM images WHERE source = $1 AND status <> 'removed' AND id > $2 ORDER BY id LIMIT $3",
            )
            .bind(self.plan.source.as_str())
            .bind(after.as_str())
            .bind(SCAN_PAGE)
            .fetch_all(&mut *conn)
            .await
            .map_err(db("finding images the source no longer lists"))?;
            let count = page.len();
            for row in page {
                let id: String = row.try_get("id").map_err(db("reading image ids"))?;
                let listed = ContentId::parse(&id).is_some_and(|c| self.seen.contains_key(&c));
                if !listed {
                    unlisted.push(id.clone());
                }
                after = id;
            }
            if (count as i64) < SCAN_PAGE {
                return Ok(unlisted);
            }
        }
    }
}

async fn load_or_create_facet(
    conn: &mut AnyConnection,
    name: &str,
    now: i64,
) -> Result<FacetColumn, CatalogError> {
    let existing = sqlx::query("SELECT id FROM facets WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("loading facets"))?;
    let (id, existed) = match existing {
        Some(row) => (
            row.try_get::<i64, _>("id").map_err(db("loading facets"))?,
            true,
        ),
        None => {
            let id =
                sqlx::query("INSERT INTO facets (name, created_at) VALUES ($1, $2) RETURNING id")
                    .bind(name)
                    .bind(now)
                    .fetch_one(&mut *conn)
                    .await
                    .and_then(|r| r.try_get::<i64, _>("id"))
                    .map_err(db("adding a facet"))?;
            (id, false)
        }
    };
    let rows = sqlx::query(
        "SELECT id, label, position FROM facet_labels WHERE facet_id = $1 ORDER BY position, id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db("loading facet labels"))?;
    let mut labels = HashMap::with_capacity(rows.len());
    let mut ordered = Vec::with_capacity(rows.len());
    let mut next_position = 0;
    for row in rows {
        let label_id: i64 = row.try_get("id").map_err(db("loading facet labels"))?;
        let label: String = row.try_get("label").map_err(db("loading facet labels"))?;
        let position: i64 = row
            .try_get("position")
            .map_err(db("loading facet labels"))?;
        next_position = next_position.max(position + 1);
        labels.insert(label.clone(), label_id);
        ordered.push(label);
    }
    Ok(FacetColumn {
        id,
        name: name.to_string(),
        existed,
        labels,
        ordered,
        created: Vec::new(),
        next_position,
    })
}

/// New facets get all their labels in alphabetical order; labels added to an existing facet go
/// after its current ones, alphabetically among themselves.
async fn place_created_labels(
    conn: &mut AnyConnection,
    facet: &FacetColumn,
) -> Result<(), CatalogError> {
    if facet.created.is_empty() {
        return Ok(());
    }
    let mut placed: Vec<(&str, i64)> = if facet.existed {
        facet
            .created
            .iter()
            .map(|(l, id)| (l.as_str(), *id))
            .collect()
    } else {
        facet
            .labels
            .iter()
            .map(|(l, id)| (l.as_str(), *id))
            .collect()
    };
    placed.sort_by(|a, b| alphabetical(a.0, b.0));
    let first = if facet.existed {
        facet.next_position
    } else {
        0
    };
    for (offset, (_, id)) in placed.iter().enumerate() {
        sqlx::query("UPDATE facet_labels SET position = $1 WHERE id = $2")
            .bind(first + offset as i64)
            .bind(*id)
            .execute(&mut *conn)
            .await
            .map_err(db("ordering new labels"))?;
    }
    Ok(())
}

/// The status, quarantine reason and byte size a stored image gets from a listing whose file
/// reads as `content`.
fn listed_state(
    content: &FileContent,
    stored: &StoredImage,
) -> (Status, Option<String>, Option<i64>) {
    match content {
        FileContent::Unreadable { reason, .. } | FileContent::NotRegular { reason, .. } => {
            (Status::Quarantined, Some(reason.clone()), stored.byte_size)
        }
        FileContent::Hashed { byte_size, .. } => {
            let (status, reason) = match stored.status {
                // Back from removal; a failed decode check still holds, though.
                Status::Removed if stored.reason.is_some() => {
                    (Status::Quarantined, stored.reason.clone())
                }
                Status::Removed => (Status::Active, None),
                other => (other, stored.reason.clone()),
            };
            (status, reason, Some(*byte_size as i64))
        }
    }
}

/// Case-insensitive order, ties broken by the exact text, so that the order is total.
pub(crate) fn alphabetical(a: &str, b: &str) -> std::cmp::Ordering {
    a.to_lowercase()
        .cmp(&b.to_lowercase())
        .then_with(|| a.cmp(b))
}

async fn load_images(
    conn: &mut AnyConnection,
    style: ParamStyle,
    ids: &[String],
) -> Result<HashMap<String, StoredImage>, CatalogError> {
    let rows = select_where_in(
        conn,
        style,
        "SELECT id, uri, byte_size, split, status, quarantine_reason, source, design \
         FROM images WHERE id IN (",
        "",
        ids,
    )
    .await
    .map_err(db("loading stored images"))?;
    let get = db("loading stored images");
    let mut stored = HashMap::new();
    for row in rows {
        let split: String = row.try_get("split").map_err(&get)?;
        let status: String = row.try_get("status").map_err(&get)?;
        stored.insert(
            row.try_get("id").map_err(&get)?,
            StoredImage {
                uri: row.try_get("uri").map_err(&get)?,
                byte_size: row.try_get("byte_size").map_err(&get)?,
                split: split_from_db(&split)?,
                status: status_from_db(&status)?,
                reason: row.try_get("quarantine_reason").map_err(&get)?,
                source: row.try_get("source").map_err(&get)?,
                design: row.try_get("design").map_err(&get)?,
            },
        );
    }
    Ok(stored)
}

/// The stored labels of `ids`, per (image, facet).
async fn load_labels(
    conn: &mut AnyConnection,
    style: ParamStyle,
    ids: &[String],
) -> Result<HashMap<(String, i64), StoredLabel>, CatalogError> {
    let rows = select_where_in(
        conn,
        style,
        "SELECT image_id, facet_id, label_id, source FROM labels WHERE image_id IN (",
        "",
        ids,
    )
    .await
    .map_err(db("loading stored labels"))?;
    let get = db("loading stored labels");
    let mut stored = HashMap::new();
    for row in rows {
        stored.insert(
            (
                row.try_get("image_id").map_err(&get)?,
                row.try_get("facet_id").map_err(&get)?,
            ),
            StoredLabel {
                label: row.try_get("label_id").map_err(&get)?,
                source: row.try_get("source").map_err(&get)?,
            },
        );
    }
    Ok(stored)
}

/// The boxes earlier imports wrote (source 'import', kind 'dress'), per image, in id order.
async fn load_import_boxes(
    conn: &mut AnyConnection,
    style: ParamStyle,
    ids: &[String],
) -> Result<HashMap<String, Vec<BoxCoords>>, CatalogError> {
    let rows = select_where_in(
        conn,
        style,
        "SELECT image_id, x0, y0, x1, y1 FROM boxes \
         WHERE source = 'import' AND kind = 'dress' AND image_id IN (",
        " ORDER BY id",
        ids,
    )
    .await
    .map_err(db("loading stored boxes"))?;
    let get = db("loading stored boxes");
    let mut stored: HashMap<String, Vec<BoxCoords>> = HashMap::new();
    for row in rows {
        let coords = [
            row.try_get("x0").map_err(&get)?,
            row.try_get("y0").map_err(&get)?,
            row.try_get("x1").map_err(&get)?,
            row.try_get("y1").map_err(&get)?,
        ];
        stored
            .entry(row.try_get("image_id").map_err(&get)?)
            .or_default()
            .push(coords);
    }
    Ok(stored)
}

/// Design ids the rows name that the catalogue does not have yet.
async fn missing_designs(
    conn: &mut AnyConnection,
    style: ParamStyle,
    rows: &[SourceRow],
) -> Result<Vec<String>, CatalogError> {
    let named: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.design.as_deref())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let rows = select_where_in(
        conn,
        style,
        "SELECT id FROM designs WHERE id IN (",
        "",
        &named,
    )
    .await
    .map_err(db("loading designs"))?;
    let mut known = HashSet::new();
    for row in rows {
        known.insert(
            row.try_get::<String, _>("id")
                .map_err(db("loading designs"))?,
        );
    }
    Ok(named
        .into_iter()
        .filter(|d| !known.contains(*d))
        .map(str::to_string)
        .collect())
}
