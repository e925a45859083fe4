//! Import benchmark: writes N small distinct files (default 100 000) and a manifest with five
//! facets, a box and a design, imports it into a fresh SQLite catalogue, then imports it again
//! (everything unchanged). Prints rows/s, seconds and peak RSS.
//!
//! `cargo bench -p atelier-catalog --bench import`; `ATELIER_BENCH_ROWS` changes N, and
//! `ATELIER_BENCH_POSTGRES_URL` (an admin URL) adds a run on a fresh PostgreSQL database.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use atelier_catalog::{Catalog, ImportOptions, ImportReport};
use sqlx::{Connection, PgConnection};

const FACETS: [(&str, &[&str]); 5] = [
    (
        "silhouette",
        &["a-line", "sheath", "mermaid", "ball-gown", "empire"],
    ),
    (
        "neckline",
        &["v-neck", "boat", "sweetheart", "halter", "square"],
    ),
    ("sleeve", &["sleeveless", "short", "long", "cap"]),
    ("length", &["mini", "knee", "midi", "maxi"]),
    ("occasion", &["bridal", "party", "casual", "work"]),
];

fn main() {
    let rows: usize = std::env::var("ATELIER_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let manifest = write_dataset(dir.path(), rows);
    println!(
        "wrote {rows} files of 64 bytes and the manifest in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        run("sqlite", &url, &manifest, rows).await;
        if let Ok(admin) = std::env::var("ATELIER_BENCH_POSTGRES_URL") {
            let name = format!("atelier_bench_{}", std::process::id());
            let mut conn = PgConnection::connect(&admin)
                .await
                .expect("connect postgres");
            let create = format!("CREATE DATABASE {name}");
            sqlx::raw_sql(sqlx::AssertSqlSafe(create))
                .execute(&mut conn)
                .await
                .expect("create");
            let base = admin
                .rsplit_once('/')
                .map_or(admin.as_str(), |(base, _)| base);
            run("postgres", &format!("{base}/{name}"), &manifest, rows).await;
            let drop = format!("DROP DATABASE {name} WITH (FORCE)");
            sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                .execute(&mut conn)
                .await
                .expect("drop");
        }
    });
}

async fn run(backend: &str, url: &str, manifest: &Path, rows: usize) {
    let catalog = Catalog::open(url).await.expect("open catalogue");
    let opts = ImportOptions::default();
    let first = timed(&catalog, manifest, &opts).await;
    assert_eq!(first.0.added as usize, rows, "{:?}", first.0);
    println!(
        "{backend}: first import  {rows} rows in {:.2} s = {:.0} rows/s, peak RSS {} MiB",
        first.1,
        rows as f64 / first.1,
        peak_rss_mib()
    );
    let second = timed(&catalog, manifest, &opts).await;
    assert_eq!(second.0.unchanged as usize, rows, "{:?}", second.0);
    println!(
        "{backend}: re-import     {rows} rows in {:.2} s = {:.0} rows/s (all unchanged), peak RSS {} MiB",
        second.1,
        rows as f64 / second.1,
        peak_rss_mib()
    );
    catalog.close().await;
}

async fn timed(catalog: &Catalog, manifest: &Path, opts: &ImportOptions) -> (ImportReport, f64) {
    let started = Instant::now();
    let report = catalog.import(manifest, opts).await.expect("import");
    (report, started.elapsed().as_secs_f64())
}

fn write_dataset(dir: &Path, rows: usize) -> std::path::PathBuf {
    let images = dir.join("images");
    let manifest_path = dir.join("manifest.csv");
    let mut manifest = std::io::BufWriter::new(std::fs::File::create(&manifest_path).unwrap());
    let facet_names: Vec<&str> = FACETS.iter().map(|(name, _)| *name).collect();
    writeln!(
        manifest,
        "path,{},x0,y0,x1,y1,design",
        facet_names.join(",")
    )
    .unwrap();
    for i in 0..rows {
        // 1000 files per folder keeps directories small.
        let folder = images.join(format!("{:03}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir_all(&folder).unwrap();
        }
        let mut bytes = [0u8; 64];
        for (k, byte) in bytes.iter_mut().enumerate() {
            *byte = ((i >> ((k % 8) * 8)) as u8) ^ (k as u8).wrapping_mul(31);
        }
        bytes[56..64].copy_from_slice(&(i as u64).to_le_bytes());
        std::fs::write(folder.join(format!("{i}.jpg")), bytes).unwrap();
        let labels: Vec<&str> = FACETS
            .iter()
            .enumerate()
            .map(|(f, (_, values))| values[(i / (f + 1)) % values.len()])
            .collect();
        writeln!(
            manifest,
            "images/{:03}/{i}.jpg,{},{},{},{},{},design-{}",
            i / 1000,
            labels.join(","),
            i % 50,
            i % 70,
            100 + i % 50,
            200 + i % 70,
            i / 4
        )
        .unwrap();
    }
    manifest.flush().unwrap();
    manifest_path
}

/// Peak resident set size of this process (VmHWM), in MiB.
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
