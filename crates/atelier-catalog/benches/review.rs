//! Review-query benchmark: a catalogue of N images (default 100 000) with five facets and a
//! run that predicted every image and facet (5 N predictions, about a fifth of them wrong),
//! then the latency (p50, p95, max over repeated calls) of each query behind the review web
//! app's pages, which must answer within 100 ms at p95.
//!
//! `cargo bench -p atelier-catalog --bench review`, or without a release build of the whole
//! dependency tree (dependencies are optimised in test builds already):
//! `CARGO_PROFILE_TEST_OPT_LEVEL=3 cargo test -p atelier-catalog --bench review`.
//! `ATELIER_BENCH_ROWS` changes N, and `ATELIER_BENCH_POSTGRES_URL` (an admin URL) adds a run
//! on a fresh PostgreSQL database.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use atelier_catalog::{
    Catalog, ImportOptions, LabelEdit, NewRun, PredictionRow, ReviewFilter, ReviewQuery,
    RunFacetResult, Split,
};
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};

/// Facets with their labels; new facets get their labels in alphabetical order, which these
/// lists already are.
const FACETS: [(&str, &[&str]); 5] = [
    (
        "silhouette",
        &["a-line", "ball-gown", "empire", "mermaid", "sheath"],
    ),
    (
        "neckline",
        &["boat", "halter", "square", "sweetheart", "v-neck"],
    ),
    ("sleeve", &["cap", "long", "short", "sleeveless"]),
    ("length", &["knee", "maxi", "midi", "mini"]),
    ("occasion", &["bridal", "casual", "party", "work"]),
];

/// Calls per query; p95 of 40 is the second slowest.
const REPEATS: usize = 40;

fn main() {
    let rows: usize = std::env::var("ATELIER_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let (manifest, ids) = write_dataset(dir.path(), rows);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        run("sqlite", &url, &manifest, &ids).await;
        if let Ok(admin) = std::env::var("ATELIER_BENCH_POSTGRES_URL") {
            let name = format!("atelier_review_bench_{}", std::process::id());
            let mut conn = PgConnection::connect(&admin)
                .await
                .expect("connect postgres");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create");
            let base = admin
                .rsplit_once('/')
                .map_or(admin.as_str(), |(base, _)| base);
            run("postgres", &format!("{base}/{name}"), &manifest, &ids).await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .expect("drop");
        }
    });
}

/// The label index of image `i` for facet `f` in the manifest.
fn label_index(i: usize, f: usize) -> usize {
    (i / (f + 1)) % FACETS[f].1.len()
}

/// A deterministic pseudo-random number in [0, 1) for (image, facet).
fn noise(i: usize, f: usize) -> f64 {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (f as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

async fn run(backend: &str, url: &str, manifest: &Path, ids: &[String]) {
    let catalog = Catalog::open(url).await.expect("open catalogue");
    let started = Instant::now();
    catalog
        .import(manifest, &ImportOptions::default())
        .await
        .expect("import");
    println!(
        "{backend}: imported {} images in {:.1} s",
        ids.len(),
        started.elapsed().as_secs_f64()
    );
    let run = catalog
        .create_run(&NewRun {
            kind: "facets".to_string(),
            config: serde_json::json!({}),
            parent_run: None,
            lease: None,
        })
        .await
        .expect("run");
    let facets: Vec<RunFacetResult> = FACETS
        .iter()
        .map(|(name, labels)| RunFacetResult {
            facet: name.to_string(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            class_weights: vec![1.0; labels.len()],
            train_metrics: None,
            test_metrics: None,
        })
        .collect();
    // Splits come from the content hash at import; predictions carry the image's split.
    let splits: HashMap<String, Split> = catalog
        .training_images(&[])
        .await
        .expect("images")
        .into_iter()
        .map(|image| (image.id, image.split))
        .collect();
    let mut predictions = Vec::with_capacity(ids.len() * FACETS.len());
    for (i, id) in ids.iter().enumerate() {
        for (f, (facet, labels)) in FACETS.iter().enumerate() {
            let label = label_index(i, f);
            let r = noise(i, f);
            // About one prediction in five is wrong, with a confidence spread over (0.3, 1).
            let predicted = if r < 0.2 {
                (label + 1 + (r * 100.0) as usize % (labels.len() - 1)) % labels.len()
            } else {
                label
            };
            let confidence = 0.3 + 0.7 * noise(i + 7, f);
            let mut scores =
                vec![((1.0 - confidence) / (labels.len() - 1) as f64) as f32; labels.len()];
            scores[predicted] = confidence as f32;
            predictions.push(PredictionRow {
                image_id: id.clone(),
                facet: facet.to_string(),
                split: splits[id],
                label: Some(labels[label].to_string()),
                predicted: labels[predicted].to_string(),
                confidence,
                scores,
                out_of_fold: false,
            });
        }
    }
    let recording = Instant::now();
    catalog
        .record_run_results(run, &facets, &predictions)
        .await
        .expect("results");
    println!(
        "{backend}: recorded {} predictions in {:.1} s",
        predictions.len(),
        recording.elapsed().as_secs_f64()
    );

    if backend == "postgres" {
        // A catalogue that serves pages has been analysed by autovacuum since its last bulk
        // write; without statistics and a visibility map, the planner of a freshly filled
        // database neither picks good plans nor reads indexes alone.
        let mut conn = PgConnection::connect(url).await.expect("connect");
        sqlx::raw_sql("VACUUM ANALYZE")
            .execute(&mut conn)
            .await
            .expect("vacuum");
    }

    let page = |filter: ReviewFilter, split: Option<Split>, offset: u64| ReviewQuery {
        run,
        facet: "silhouette".to_string(),
        filter,
        split,
        offset,
        limit: 50,
    };
    let label = |l: &str| l.to_string();
    let queries = [
        (
            "review_page false negatives, first page",
            page(
                ReviewFilter::FalseNegatives {
                    label: label("a-line"),
                },
                None,
                0,
            ),
        ),
        (
            "review_page false positives, first page",
            page(
                ReviewFilter::FalsePositives {
                    label: label("a-line"),
                },
                None,
                0,
            ),
        ),
        (
            "review_page cell, test split, page 3",
            page(
                ReviewFilter::Cell {
                    label: label("a-line"),
                    predicted: label("sheath"),
                },
                Some(Split::Test),
                100,
            ),
        ),
        (
            "review_page diagonal cell, page 100",
            page(
                ReviewFilter::Cell {
                    label: label("a-line"),
                    predicted: label("a-line"),
                },
                None,
                5_000,
            ),
        ),
    ];
    for (name, query) in &queries {
        let total = catalog.review_page(query).await.expect("page").total;
        let times = timed(|| async {
            catalog.review_page(query).await.expect("page");
        })
        .await;
        report(backend, &format!("{name} (total {total})"), &times);
    }
    let mut k = 0;
    let times = timed(|| {
        k += 7919;
        let id = &ids[k % ids.len()];
        let catalog = &catalog;
        async move {
            let found = catalog.image_predictions(id, run).await.expect("image");
            assert_eq!(found.len(), FACETS.len());
        }
    })
    .await;
    report(backend, "image_predictions", &times);
    let times = timed(|| async {
        catalog.current_labels("silhouette").await.expect("labels");
    })
    .await;
    report(backend, "current_labels (every image)", &times);
    let mut version = 1;
    let times = timed(|| {
        let label = if version % 2 == 1 { "sheath" } else { "a-line" };
        let edit = LabelEdit {
            image: ids[0].clone(),
            facet: "silhouette".to_string(),
            label: Some(label.to_string()),
            expected_version: version,
            actor: "bench".to_string(),
            reason: None,
            run_id: Some(run),
        };
        version += 1;
        let catalog = &catalog;
        async move {
            catalog.set_labels(&[edit]).await.expect("edit");
        }
    })
    .await;
    report(backend, "set_labels (one edit)", &times);
    catalog.close().await;
}

/// Calls `call` [`REPEATS`] times after one warm-up call; returns the times in ms, sorted.
async fn timed<F, Fut>(mut call: F) -> Vec<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    call().await;
    let mut times = Vec::with_capacity(REPEATS);
    for _ in 0..REPEATS {
        let started = Instant::now();
        call().await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times
}

fn report(backend: &str, name: &str, sorted_ms: &[f64]) {
    let at = |q: f64| sorted_ms[((sorted_ms.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "{backend}: {name:<55} p50 {:>7.2} ms  p95 {:>7.2} ms  max {:>7.2} ms",
        at(0.5),
        at(0.95),
        sorted_ms[sorted_ms.len() - 1]
    );
}

/// Writes `rows` distinct small files and a manifest with the five facets; returns the
/// manifest and the image ids (sha256 of each file) in row order.
fn write_dataset(dir: &Path, rows: usize) -> (PathBuf, Vec<String>) {
    let images = dir.join("images");
    let manifest_path = dir.join("manifest.csv");
    let mut manifest = std::io::BufWriter::new(std::fs::File::create(&manifest_path).unwrap());
    let names: Vec<&str> = FACETS.iter().map(|(name, _)| *name).collect();
    writeln!(manifest, "path,{}", names.join(",")).unwrap();
    let mut ids = Vec::with_capacity(rows);
    for i in 0..rows {
        let folder = images.join(format!("{:03}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir_all(&folder).unwrap();
        }
        let bytes = format!("review bench image {i}").into_bytes();
        ids.push(hex::encode(Sha256::digest(&bytes)));
        std::fs::write(folder.join(format!("{i}.jpg")), &bytes).unwrap();
        let labels: Vec<&str> = (0..FACETS.len())
            .map(|f| FACETS[f].1[label_index(i, f)])
            .collect();
        writeln!(
            manifest,
            "images/{:03}/{i}.jpg,{}",
            i / 1000,
            labels.join(",")
        )
        .unwrap();
    }
    manifest.flush().unwrap();
    (manifest_path, ids)
}
