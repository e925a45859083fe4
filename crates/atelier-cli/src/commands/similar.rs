//! `atelier similar` and `atelier index`: parsing the query, printing the answer.

use atelier_app::similar::{self, LabelFilter, QueryPhoto, SimilarQuery};
use atelier_catalog::{Catalog, LabelCondition};

use std::path::PathBuf;

use atelier_app::ann::IndexFiles;

use crate::args::{AnnArgs, CropArgs, IndexArgs, SimilarArgs};
use crate::error::{CliError, CliResult};
use crate::output::print_json;

/// The approximate index files of the catalogue at `db_url`, used from `--ann-threshold`.
pub(crate) fn index_files(db_url: &str, args: &AnnArgs) -> IndexFiles {
    let root = match std::env::var_os("ATELIER_INDEX_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
            .join(".cache/atelier/indexes"),
    };
    IndexFiles {
        ann_threshold: args.ann_threshold,
        exact_below: args.exact_below,
        ..IndexFiles::for_catalogue(&root, db_url)
    }
}

/// The photo file to query with: a local file, or an `s3://` object fetched into the image cache.
async fn local_photo(path: &std::path::Path) -> CliResult<PathBuf> {
    let given = [path.to_path_buf()];
    let mut local = atelier_app::images::resolver()
        .localise_given(&given)
        .await?;
    match local.pop() {
        Some((_, Some(reason))) => Err(CliError::bad_input(reason)),
        Some((local, None)) => Ok(local),
        None => Ok(path.to_path_buf()),
    }
}

pub async fn run(catalog: &Catalog, db_url: &str, args: &SimilarArgs, json: bool) -> CliResult {
    let photo = match (&args.id, &args.image) {
        (Some(id), _) => QueryPhoto::Image(id.clone()),
        (None, Some(path)) => QueryPhoto::File(local_photo(path).await?),
        (None, None) => return Err(CliError::bad_input("name a photo file or --id IMAGE_ID")),
    };
    let filters = label_conditions(&args.where_, &args.where_not)?
        .into_iter()
        .map(|c| LabelFilter {
            facet: c.facet,
            label: c.label,
            keep: c.keep,
        })
        .collect();
    let swap = args
        .swap
        .as_deref()
        .map(|value| facet_label("--swap", value))
        .transpose()?;
    let query = SimilarQuery {
        run: args.run,
        photo,
        k: args.k,
        filters,
        swap,
        off_the_shelf: args.off_the_shelf,
        explain: args.explain,
    };
    let answer = similar::similar(catalog, &query, Some(&index_files(db_url, &args.ann))).await?;
    if json {
        return print_json(&answer);
    }
    let engine = match answer.engine {
        similar::SearchEngine::Scan => "exact scan",
        similar::SearchEngine::Pgvector => "pgvector",
        similar::SearchEngine::Hnsw => "approximate index",
    };
    println!(
        "{} photos most like {} (run {}, {} candidates, {engine}):",
        answer.results.len(),
        answer.query,
        answer.run,
        answer.candidates
    );
    for (rank, photo) in answer.results.iter().enumerate() {
        let labels: Vec<String> = photo
            .labels
            .iter()
            .map(|(f, l)| format!("{f}={l}"))
            .collect();
        println!(
            "{:>3}. {:.3}  {}  {}",
            rank + 1,
            photo.score,
            photo.path,
            labels.join(" ")
        );
        if let Some(agreement) = &photo.explain {
            print_agreement(agreement);
        }
    }
    Ok(())
}

/// The cell grid under a result, rows top to bottom.
fn print_agreement(agreement: &atelier_train::similarity_model::CellAgreement) {
    let side = (agreement.cells.len() as f64).sqrt().round() as usize;
    let mirrored = if agreement.flipped { ", mirrored" } else { "" };
    println!(
        "       cells agree {:.3} on average{mirrored}:",
        agreement.mean
    );
    for row in agreement.cells.chunks(side.max(1)) {
        let row: Vec<String> = row.iter().map(|v| format!("{v:6.3}")).collect();
        println!("       {}", row.join(" "));
    }
}

/// The conditions of `--where FACET=LABEL` (keep) and `--where-not FACET=LABEL` options.
pub(crate) fn label_conditions(
    where_: &[String],
    where_not: &[String],
) -> CliResult<Vec<LabelCondition>> {
    let mut conditions = Vec::new();
    for (values, keep, option) in [(where_, true, "--where"), (where_not, false, "--where-not")] {
        for value in values {
            let (facet, label) = facet_label(option, value)?;
            conditions.push(LabelCondition { facet, label, keep });
        }
    }
    Ok(conditions)
}

/// `FACET=LABEL`.
fn facet_label(option: &str, value: &str) -> CliResult<(String, String)> {
    match value.split_once('=') {
        Some((facet, label)) if !facet.is_empty() && !label.is_empty() => {
            Ok((facet.to_string(), label.to_string()))
        }
        _ => Err(CliError::bad_input(format!(
            "{option} {value}: write FACET=LABEL, e.g. neckline=v-neck"
        ))),
    }
}

pub async fn index(catalog: &Catalog, db_url: &str, args: &IndexArgs, json: bool) -> CliResult {
    if args.queue {
        let job = atelier_app::jobs::queue_index(catalog, args.run, "cli").await?;
        return crate::commands::jobs::print_queued(job, None, json);
    }
    let files = index_files(db_url, &args.ann);
    let report = similar::index(catalog, args.run, Some(&files), args.device).await?;
    if json {
        return print_json(&report);
    }
    println!(
        "run {}: {} photos embedded, {} removed, {} kept",
        report.run, report.added, report.removed, report.kept
    );
    Ok(())
}

/// `atelier crop`: one line per photo,
/// `{"path","ok":true,"box":[x0,y0,x1,y1],"foreground":p,"crop":[x0,y0,side]}` (`crop`: the
/// square the embedding reads; `foreground`: the classifier's confidence in the box, `null`
/// for models without one) or `{"path","ok":false,"error"}`; exit 2 when any photo failed.
pub async fn crop(catalog: &Catalog, args: &CropArgs, json: bool) -> CliResult {
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)
            .map_err(|e| CliError::bad_input(format!("--out {}: {e}", out.display())))?;
    }
    let located = similar::locate_files(catalog, args.run, &args.paths).await?;
    let mut failed = 0;
    for photo in &located {
        let line = match &photo.outcome {
            Ok(found) => {
                if let Some(out) = &args.out {
                    write_crop(&photo.path, found.crop, out)?;
                }
                serde_json::json!({
                    "path": photo.path,
                    "ok": true,
                    "box": found.dress_box,
                    "foreground": found.foreground,
                    "crop": found.crop,
                })
            }
            Err(error) => {
                failed += 1;
                serde_json::json!({"path": photo.path, "ok": false, "error": error})
            }
        };
        if json {
            print_json(&line)?;
        } else {
            println!("{line}");
        }
    }
    match failed {
        0 => Ok(()),
        n => Err(CliError::bad_input(format!(
            "{n} of {} photos could not be read",
            located.len()
        ))),
    }
}

fn write_crop(
    path: &std::path::Path,
    [x0, y0, side]: [i64; 3],
    out: &std::path::Path,
) -> CliResult {
    let rgb = atelier_train::features::load_rgb(path).map_err(CliError::from)?;
    let region = atelier_train::crop::Region {
        x0,
        y0,
        side: side.max(1) as u32,
    };
    let stem = path
        .file_stem()
        .map_or_else(|| "crop".into(), |s| s.to_string_lossy());
    let target = out.join(format!("{stem}.png"));
    atelier_train::crop::crop(&rgb, region)
        .save(&target)
        .map_err(|e| CliError::internal(format!("{}: {e}", target.display())))
}
