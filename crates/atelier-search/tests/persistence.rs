//! Index files: round trips give equal results, saves are atomic, and damaged or mismatched
//! files are refused with errors that name the file and the fix.

mod common;

use std::fs;
use std::path::Path;

use atelier_search::{
    ErrorKind, ExactIndex, HnswIndex, HnswParams, IndexKind, Precision, SearchConfig, SearchError,
    SearchIndex, VectorIndex,
};
use common::{clustered_vectors, random_vectors};

const D: usize = 32;

fn filled<I: VectorIndex>(mut index: I, n: usize) -> (I, Vec<f32>) {
    let vectors = clustered_vectors(n, D, 10, 1.0, 21);
    let keys: Vec<u64> = (0..n as u64).map(|k| k * 3 + 1).collect();
    index.add_many(&keys, &vectors).unwrap();
    for key in (0..n as u64)
        .filter(|k| k.is_multiple_of(5))
        .map(|k| k * 3 + 1)
    {
        index.remove(key).unwrap();
    }
    (index, vectors)
}

fn assert_same_results(a: &dyn VectorIndex, b: &dyn VectorIndex) {
    assert_eq!(a.len(), b.len());
    assert_eq!(a.dimensions(), b.dimensions());
    let queries = random_vectors(20, D, 22);
    let candidates: Vec<u64> = (0..600).collect();
    for query in queries.chunks_exact(D) {
        assert_eq!(a.search(query, 10).unwrap(), b.search(query, 10).unwrap());
        let even = |k: u64| k.is_multiple_of(2);
        assert_eq!(
            a.search_filtered(query, 10, &even).unwrap(),
            b.search_filtered(query, 10, &even).unwrap()
        );
        assert_eq!(
            a.search_among(query, 10, &candidates).unwrap(),
            b.search_among(query, 10, &candidates).unwrap()
        );
    }
}

fn only_file_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn exact_round_trip_gives_equal_results() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exact.idx");
    let (index, _) = filled(ExactIndex::new(D), 500);
    index.save(&path).unwrap();
    let loaded = ExactIndex::load(&path, D).unwrap();
    assert_same_results(&index, &loaded);
    assert_eq!(loaded.keys(), index.keys());
    assert!(!loaded.contains(1), "removed keys stay removed");
    let any = SearchIndex::load(&path, D).unwrap();
    assert_eq!(any.kind(), IndexKind::Exact);
    assert_same_results(&index, &any);
    assert_eq!(only_file_in(dir.path()), vec!["exact.idx"]);
}

#[test]
fn hnsw_round_trip_gives_equal_results() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hnsw.idx");
    let params = HnswParams {
        expansion_search: 40,
        ..HnswParams::default()
    };
    let (index, vectors) = filled(HnswIndex::new(D, params).unwrap(), 2_000);
    index.save(&path).unwrap();
    let mut loaded = HnswIndex::load(&path, D).unwrap();
    assert_eq!(loaded.params().expansion_search, 40);
    assert_eq!(loaded.params().precision, Precision::F16);
    assert_same_results(&index, &loaded);
    assert!(!loaded.contains(1), "removed keys stay removed");
    let any = SearchIndex::load(&path, D).unwrap();
    assert_eq!(any.kind(), IndexKind::Hnsw);
    assert_same_results(&index, &any);
    // A loaded index takes new vectors.
    loaded.add(1, &vectors[..D]).unwrap();
    assert_eq!(loaded.search(&vectors[..D], 1).unwrap()[0].key, 1);
    assert_eq!(only_file_in(dir.path()), vec!["hnsw.idx"]);
}

#[test]
fn hnsw_precision_and_search_expansion_are_saved() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hnsw.idx");
    let params = HnswParams {
        precision: Precision::F32,
        ..HnswParams::default()
    };
    let (mut index, _) = filled(HnswIndex::new(D, params).unwrap(), 500);
    index.set_expansion_search(24);
    index.save(&path).unwrap();
    let loaded = HnswIndex::load(&path, D).unwrap();
    assert_eq!(loaded.params().precision, Precision::F32);
    assert_eq!(loaded.params().expansion_search, 24);
    assert_same_results(&index, &loaded);
}

#[test]
fn empty_indexes_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let exact_path = dir.path().join("e.idx");
    let hnsw_path = dir.path().join("h.idx");
    ExactIndex::new(D).save(&exact_path).unwrap();
    HnswIndex::new(D, HnswParams::default())
        .unwrap()
        .save(&hnsw_path)
        .unwrap();
    assert!(ExactIndex::load(&exact_path, D).unwrap().is_empty());
    let hnsw = HnswIndex::load(&hnsw_path, D).unwrap();
    assert!(hnsw.is_empty());
    assert!(hnsw.search(&[1.0; D], 5).unwrap().is_empty());
}

fn refused(path: &Path, kind: ErrorKind, needles: &[&str]) -> SearchError {
    let error = SearchIndex::load(path, D).unwrap_err();
    let message = error.to_string();
    assert_eq!(error.kind(), kind, "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    for needle in needles {
        assert!(message.contains(needle), "`{needle}` not in: {message}");
    }
    error
}

#[test]
fn damaged_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, index) in [
        (
            "exact.idx",
            SearchIndex::Exact(filled(ExactIndex::new(D), 300).0),
        ),
        (
            "hnsw.idx",
            SearchIndex::Hnsw(filled(HnswIndex::new(D, HnswParams::default()).unwrap(), 300).0),
        ),
    ] {
        let path = dir.path().join(name);
        index.save(&path).unwrap();
        let good = fs::read(&path).unwrap();

        let mut flipped = good.clone();
        let at = flipped.len() - 100;
        flipped[at] ^= 0x10;
        fs::write(&path, &flipped).unwrap();
        refused(
            &path,
            ErrorKind::Damaged,
            &["checksum", "Rebuild the index"],
        );

        fs::write(&path, &good[..good.len() - 1]).unwrap();
        refused(&path, ErrorKind::Damaged, &["bytes", "truncated"]);

        let mut header = good.clone();
        header[24] ^= 0x01; // the count
        fs::write(&path, &header).unwrap();
        refused(&path, ErrorKind::Damaged, &["header checksum"]);

        fs::write(&path, &good[..20]).unwrap();
        refused(&path, ErrorKind::Damaged, &["header bytes"]);
    }
    let other = dir.path().join("notes.txt");
    fs::write(&other, "not an index at all").unwrap();
    refused(&other, ErrorKind::Damaged, &["not an atelier search index"]);
    fs::write(&other, "").unwrap();
    refused(&other, ErrorKind::Damaged, &["not an atelier search index"]);
    let missing = dir.path().join("missing.idx");
    refused(&missing, ErrorKind::Io, &[]);
}

#[test]
fn mismatched_files_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exact.idx");
    filled(ExactIndex::new(D), 100).0.save(&path).unwrap();

    let error = ExactIndex::load(&path, 64).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Mismatched);
    let message = error.to_string();
    assert!(
        message.contains("32-dimensional") && message.contains("64"),
        "{message}"
    );
    assert!(message.contains("rebuild the index"), "{message}");

    let error = HnswIndex::load(&path, D).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Mismatched);
    assert!(error.to_string().contains("ExactIndex::load"), "{error}");

    let mut newer = fs::read(&path).unwrap();
    newer[8] = 3; // format version 3
    fs::write(&path, &newer).unwrap();
    refused(
        &path,
        ErrorKind::Mismatched,
        &["version 3", "reads version 2"],
    );
}

#[test]
fn saving_replaces_the_file_whole_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.idx");
    let (small, _) = filled(ExactIndex::new(D), 50);
    let (large, _) = filled(ExactIndex::new(D), 400);
    small.save(&path).unwrap();
    large.save(&path).unwrap();
    assert_same_results(&large, &ExactIndex::load(&path, D).unwrap());
    assert_eq!(only_file_in(dir.path()), vec!["index.idx"]);

    let nowhere = dir.path().join("no-such-folder").join("index.idx");
    let error = large.save(&nowhere).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Io);
    assert!(error.to_string().contains("no-such-folder"), "{error}");
    assert_eq!(only_file_in(dir.path()), vec!["index.idx"]);
}

#[test]
fn search_index_chooses_by_size() {
    let config = SearchConfig {
        ann_threshold: 1_000,
        ..SearchConfig::default()
    };
    let small = SearchIndex::for_size(&config, D, 999).unwrap();
    assert_eq!(small.kind(), IndexKind::Exact);
    let vectors = random_vectors(1_000, D, 23);
    let keys: Vec<u64> = (0..1_000).collect();
    let large = SearchIndex::build(&config, D, &keys, &vectors).unwrap();
    assert_eq!(large.kind(), IndexKind::Hnsw);
    assert_eq!(large.len(), 1_000);
    assert_eq!(SearchConfig::default().ann_threshold, 200_000);
}
