//! Search benchmark: build time, memory, single-thread query latency and recall@k of the exact
//! and the HNSW index, for random and clustered vectors.
//!
//! ```sh
//! cargo bench -p atelier-search --bench search -- --sizes 100000,1000000 --dim 256 --out DIR
//! python3 scripts/bench_faiss.py DIR          # FAISS flat and HNSW on the same vectors
//! ```
//!
//! Options: `--sizes N,N..` (default 100000), `--dim D` (256), `--queries Q` (1000), `--k K`
//! (10), `--data random,clustered` (both), `--threads T` (HNSW build threads, default one per
//! core), `--ef-search E,E..` (each measured on the same graph), `--connectivity M`,
//! `--ef-add E` and `--precision f16|f32` (HNSW defaults otherwise), `--reload` (query the
//! graph as saved and loaded again, as a process that opens the index files has it), `--out
//! DIR`.
//!
//! Data: `random` is Gaussian noise (no structure: the hardest case for HNSW); `clustered` is
//! 1000 random unit centres plus Gaussian noise as long as the centre, more like image
//! embeddings. Queries are drawn from the same distribution and are not in the index. Build
//! time for the exact index is `add_many` (normalising and copying); for HNSW it is
//! `add_many` on `--threads` threads. Queries run one at a time on the calling thread, each HNSW
//! walk asking for `rescore_pool(k)` hits that f32 copies score again (as the application
//! does); p50/p99 are per-query latencies. Recall@k is against the exact index's top k. The `filtered` rows
//! allow 10 % of the keys (a predicate for HNSW, candidates for `exact among`).
//!
//! With `--out DIR`, each data set is written for FAISS as `DIR/<data>-<n>-<dim>/` holding
//! `base.npy` (n x dim f32, L2-normalised, key = row number), `queries.npy` (Q x dim f32,
//! L2-normalised) and `truth.npy` (Q x k int64, the exact index's top k per query), plus
//! `rust.json` with this bench's rows.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atelier_search::{
    ExactIndex, Hit, HnswIndex, HnswParams, Precision, VectorIndex, rescore_pool,
};

struct Options {
    sizes: Vec<usize>,
    dim: usize,
    queries: usize,
    k: usize,
    data: Vec<String>,
    params: HnswParams,
    /// The search expansions measured, each on the same graph.
    expansions: Vec<usize>,
    /// Query the graph as saved and loaded again (laid out in slot order) instead of as built.
    reload: bool,
    out: Option<PathBuf>,
}

fn parse_options() -> Options {
    let mut options = Options {
        sizes: vec![100_000],
        dim: 256,
        queries: 1_000,
        k: 10,
        data: vec!["random".into(), "clustered".into()],
        params: HnswParams::default(),
        expansions: vec![HnswParams::default().expansion_search],
        reload: false,
        out: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = || args.get(i + 1).cloned().unwrap_or_default();
        let number = |what: &str| -> usize {
            value()
                .parse()
                .unwrap_or_else(|_| panic!("{what} takes a number"))
        };
        match args[i].as_str() {
            "--sizes" => {
                options.sizes = value()
                    .split(',')
                    .map(|s| s.parse().expect("--sizes takes numbers"))
                    .collect();
            }
            "--dim" => options.dim = number("--dim"),
            "--queries" => options.queries = number("--queries"),
            "--k" => options.k = number("--k"),
            "--data" => options.data = value().split(',').map(str::to_string).collect(),
            "--threads" => options.params.build_threads = number("--threads"),
            "--ef-search" => {
                options.expansions = value()
                    .split(',')
                    .map(|s| s.parse().expect("--ef-search takes numbers"))
                    .collect();
            }
            "--precision" => {
                options.params.precision = match value().as_str() {
                    "f16" => Precision::F16,
                    "f32" => Precision::F32,
                    other => panic!("--precision takes f16 or f32, not {other:?}"),
                };
            }
            "--connectivity" => options.params.connectivity = number("--connectivity"),
            "--ef-add" => options.params.expansion_add = number("--ef-add"),
            "--reload" => {
                options.reload = true;
                i += 1;
                continue;
            }
            "--out" => options.out = Some(PathBuf::from(value())),
            // cargo bench passes --bench; anything else is a mistake worth hearing about.
            "--bench" => {
                i += 1;
                continue;
            }
            other => panic!("unknown option {other}; see the bench's doc comment"),
        }
        i += 2;
    }
    options
}

/// One line of the table.
struct Row {
    data: String,
    n: usize,
    index: &'static str,
    /// The search expansion of an HNSW row.
    ef: Option<usize>,
    build: Option<Duration>,
    memory: Option<usize>,
    latencies: Vec<Duration>,
    recall: f64,
}

impl Row {
    fn percentile(&self, p: usize) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let at = (sorted.len() * p / 100).min(sorted.len().saturating_sub(1));
        sorted.get(at).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    }

    fn print(&self) {
        let build = self
            .build
            .map_or("-".to_string(), |b| format!("{:.2}", b.as_secs_f64()));
        let memory = self
            .memory
            .map_or("-".to_string(), |m| format!("{:.1}", m as f64 / 1e6));
        let ef = self.ef.map_or("-".to_string(), |ef| ef.to_string());
        println!(
            "{:<10} {:>9} {:<16} {:>5} {:>9} {:>10} {:>10.1} {:>10.1} {:>9.4}",
            self.data,
            self.n,
            self.index,
            ef,
            build,
            memory,
            self.percentile(50),
            self.percentile(99),
            self.recall
        );
    }

    fn json(&self) -> String {
        format!(
            "{{\"data\":\"{}\",\"n\":{},\"index\":\"{}\",\"ef_search\":{},\"build_s\":{},\
             \"memory_bytes\":{},\"p50_us\":{:.1},\"p99_us\":{:.1},\"recall\":{:.4}}}",
            self.data,
            self.n,
            self.index,
            self.ef.map_or("null".into(), |ef| ef.to_string()),
            self.build
                .map_or("null".into(), |b| format!("{:.3}", b.as_secs_f64())),
            self.memory.map_or("null".into(), |m| m.to_string()),
            self.percentile(50),
            self.percentile(99),
            self.recall
        )
    }
}

/// Runs `search` once per query, timing each; returns the latencies and the keys found.
fn timed_queries(
    queries: &[f32],
    dim: usize,
    mut search: impl FnMut(&[f32]) -> Vec<Hit>,
) -> (Vec<Duration>, Vec<Vec<u64>>) {
    let mut latencies = Vec::new();
    let mut found = Vec::new();
    for query in queries.chunks_exact(dim) {
        let start = Instant::now();
        let hits = search(query);
        latencies.push(start.elapsed());
        found.push(hits.iter().map(|h| h.key).collect());
    }
    (latencies, found)
}

fn make_data(kind: &str, n: usize, options: &Options) -> (Vec<f32>, Vec<f32>) {
    let (d, q) = (options.dim, options.queries);
    let mut all = match kind {
        "random" => common::random_vectors(n + q, d, 1),
        "clustered" => common::clustered_vectors(n + q, d, 1_000, 1.0, 1),
        other => panic!("unknown data `{other}`: random or clustered"),
    };
    for row in all.chunks_exact_mut(d) {
        let norm = row
            .iter()
            .map(|&x| f64::from(x).powi(2))
            .sum::<f64>()
            .sqrt();
        row.iter_mut()
            .for_each(|x| *x = (f64::from(*x) / norm) as f32);
    }
    let queries = all.split_off(n * d);
    (all, queries)
}

fn bench_exact(
    kind: &str,
    base: &[f32],
    queries: &[f32],
    keys: &[u64],
    options: &Options,
) -> (Vec<Row>, Vec<Vec<u64>>, Vec<Vec<u64>>) {
    let (d, k, n) = (options.dim, options.k, keys.len());
    let start = Instant::now();
    let mut exact = ExactIndex::with_capacity(d, n);
    exact.add_many(keys, base).unwrap();
    let build = start.elapsed();
    let (latencies, truth) = timed_queries(queries, d, |q| exact.search(q, k).unwrap());
    let mut rows = vec![Row {
        data: kind.to_string(),
        n,
        index: "exact",
        ef: None,
        build: Some(build),
        memory: Some(exact.memory_bytes()),
        latencies,
        recall: 1.0,
    }];
    let allowed = |key: u64| key % 10 == 3;
    let (latencies, filtered_truth) = timed_queries(queries, d, |q| {
        exact.search_filtered(q, k, &allowed).unwrap()
    });
    rows.push(row(kind, n, "exact filtered", latencies, 1.0));
    let candidates: Vec<u64> = keys.iter().copied().filter(|&key| allowed(key)).collect();
    let (latencies, _) = timed_queries(queries, d, |q| {
        exact.search_among(q, k, &candidates).unwrap()
    });
    rows.push(row(kind, n, "exact among 10%", latencies, 1.0));
    (rows, truth, filtered_truth)
}

fn row(data: &str, n: usize, index: &'static str, latencies: Vec<Duration>, recall: f64) -> Row {
    Row {
        data: data.to_string(),
        n,
        index,
        ef: None,
        build: None,
        memory: None,
        latencies,
        recall,
    }
}

fn bench_hnsw(
    kind: &str,
    base: &[f32],
    queries: &[f32],
    keys: &[u64],
    truths: (&[Vec<u64>], &[Vec<u64>]),
    options: &Options,
) -> Vec<Row> {
    let (d, k, n) = (options.dim, options.k, keys.len());
    let start = Instant::now();
    let mut hnsw = HnswIndex::new(d, options.params).unwrap();
    hnsw.add_many(keys, base).unwrap();
    let build = start.elapsed();
    if options.reload {
        let path = std::env::temp_dir().join(format!("atelier-bench-{}.hnsw", std::process::id()));
        hnsw.save(&path).unwrap();
        drop(hnsw);
        hnsw = HnswIndex::load(&path, d).unwrap();
        fs::remove_file(&path).unwrap();
    }
    let allowed: HashSet<u64> = keys.iter().copied().filter(|key| key % 10 == 3).collect();
    // As the application searches: the walk's best `rescore_pool(k)` scored again from f32
    // copies of the vectors, the best k kept.
    let mut flat = ExactIndex::with_capacity(d, n);
    flat.add_many(keys, base).unwrap();
    let walk = |q: &[f32], hits: Vec<Hit>| {
        let mut hits = flat.rescore(q, hits).unwrap();
        hits.truncate(k);
        hits
    };
    let pool = rescore_pool(k);
    let mut rows = Vec::new();
    for &ef in &options.expansions {
        hnsw.set_expansion_search(ef);
        let (latencies, found) =
            timed_queries(queries, d, |q| walk(q, hnsw.search(q, pool).unwrap()));
        rows.push(Row {
            data: kind.to_string(),
            n,
            index: "hnsw",
            ef: Some(ef),
            // The graph is built once: its time and memory go on its first row.
            build: rows.is_empty().then_some(build),
            memory: rows.is_empty().then(|| hnsw.memory_bytes()),
            latencies,
            recall: common::recall(&found, truths.0),
        });
        let (latencies, found) = timed_queries(queries, d, |q| {
            let hits = hnsw.search_filtered(q, pool, &|key| allowed.contains(&key));
            walk(q, hits.unwrap())
        });
        let recall = common::recall(&found, truths.1);
        let mut filtered = row(kind, n, "hnsw filtered", latencies, recall);
        filtered.ef = Some(ef);
        rows.push(filtered);
    }
    rows
}

/// Writes a 2-D little-endian array in NumPy's .npy format (version 1.0).
fn write_npy<const N: usize>(
    path: &Path,
    descr: &str,
    shape: (usize, usize),
    values: impl Iterator<Item = [u8; N]>,
) {
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({}, {}), }}",
        shape.0, shape.1
    );
    // Magic (6) + version (2) + length (2) + dict + padding + newline, a multiple of 64.
    let padded = (10 + dict.len() + 1).div_ceil(64) * 64 - 10;
    let mut header = format!("{dict:<width$}", width = padded - 1);
    header.push('\n');
    let mut file = BufWriter::new(fs::File::create(path).unwrap());
    file.write_all(b"\x93NUMPY\x01\x00").unwrap();
    file.write_all(&(header.len() as u16).to_le_bytes())
        .unwrap();
    file.write_all(header.as_bytes()).unwrap();
    values.for_each(|v| file.write_all(&v).unwrap());
    file.flush().unwrap();
}

fn write_data_set(
    dir: &Path,
    base: &[f32],
    queries: &[f32],
    truth: &[Vec<u64>],
    options: &Options,
) {
    fs::create_dir_all(dir).unwrap();
    let (d, k) = (options.dim, options.k);
    write_npy(
        &dir.join("base.npy"),
        "<f4",
        (base.len() / d, d),
        base.iter().map(|v| v.to_le_bytes()),
    );
    write_npy(
        &dir.join("queries.npy"),
        "<f4",
        (queries.len() / d, d),
        queries.iter().map(|v| v.to_le_bytes()),
    );
    // Rows shorter than k (k above n) are padded with -1, as FAISS does.
    let truth_keys = truth
        .iter()
        .flat_map(|keys| (0..k).map(|i| keys.get(i).map_or(-1, |&key| key as i64)));
    write_npy(
        &dir.join("truth.npy"),
        "<i8",
        (truth.len(), k),
        truth_keys.map(i64::to_le_bytes),
    );
}

fn main() {
    let options = parse_options();
    println!(
        "dim {}, {} queries, k {}, HNSW M {} ef_add {} {:?}, build threads {}",
        options.dim,
        options.queries,
        options.k,
        options.params.connectivity,
        options.params.expansion_add,
        options.params.precision,
        match options.params.build_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            t => t,
        }
    );
    println!(
        "{:<10} {:>9} {:<16} {:>5} {:>9} {:>10} {:>10} {:>10} {:>9}",
        "data", "n", "index", "ef", "build_s", "memory_MB", "p50_us", "p99_us", "recall"
    );
    for &n in &options.sizes {
        for kind in &options.data {
            let (base, queries) = make_data(kind, n, &options);
            let keys: Vec<u64> = (0..n as u64).collect();
            let (mut rows, truth, filtered_truth) =
                bench_exact(kind, &base, &queries, &keys, &options);
            let truths = (truth.as_slice(), filtered_truth.as_slice());
            rows.extend(bench_hnsw(kind, &base, &queries, &keys, truths, &options));
            rows.iter().for_each(Row::print);
            if let Some(out) = &options.out {
                let dir = out.join(format!("{kind}-{n}-{}", options.dim));
                write_data_set(&dir, &base, &queries, &truth, &options);
                let json: Vec<String> = rows.iter().map(Row::json).collect();
                fs::write(dir.join("rust.json"), format!("[{}]\n", json.join(",\n"))).unwrap();
            }
        }
    }
}
