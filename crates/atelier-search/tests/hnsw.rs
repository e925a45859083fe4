//! The HNSW index against the exact one: recall with the default parameters, filters,
//! removal and the rebuild after many, replacement, exact search among candidates, many
//! threads at once, and bad input.

mod common;

use std::collections::HashSet;

use atelier_search::{ErrorKind, ExactIndex, Hit, HnswIndex, HnswParams, Precision, VectorIndex};
use common::{clustered_vectors, recall};

const D: usize = 128;

fn keys(hits: &[Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.key).collect()
}

/// How far a score from f16 vectors may stray from the f32 one (unit vectors of 128 values:
/// each rounded to 11 significant bits).
const F16_SCORE_ERROR: f32 = 2e-3;

fn both(vectors: &[f32], d: usize) -> (ExactIndex, HnswIndex) {
    both_at(vectors, d, Precision::default())
}

fn both_at(vectors: &[f32], d: usize, precision: Precision) -> (ExactIndex, HnswIndex) {
    let keys: Vec<u64> = (0..(vectors.len() / d) as u64).collect();
    let mut exact = ExactIndex::new(d);
    exact.add_many(&keys, vectors).unwrap();
    let params = HnswParams {
        precision,
        ..HnswParams::default()
    };
    let mut hnsw = HnswIndex::new(d, params).unwrap();
    hnsw.add_many(&keys, vectors).unwrap();
    (exact, hnsw)
}

#[test]
fn recall_at_10_against_exact_is_at_least_0_95_with_default_parameters() {
    let all = clustered_vectors(20_200, D, 200, 1.0, 11);
    let (vectors, queries) = all.split_at(20_000 * D);
    let (exact, hnsw) = both(vectors, D);
    assert_eq!(hnsw.len(), 20_000);
    let mut found = Vec::new();
    let mut truth = Vec::new();
    for query in queries.chunks_exact(D) {
        let hits = hnsw.search(query, 10).unwrap();
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        found.push(keys(&hits));
        truth.push(keys(&exact.search(query, 10).unwrap()));
    }
    let r = recall(&found, &truth);
    assert!(r >= 0.95, "recall@10 {r}");
}

#[test]
fn filtered_search_returns_only_allowed_keys() {
    let all = clustered_vectors(5_100, D, 50, 1.0, 12);
    let (vectors, queries) = all.split_at(5_000 * D);
    let (exact, hnsw) = both(vectors, D);
    let allowed: HashSet<u64> = (0..5_000).filter(|k| k % 4 == 1).collect();
    let allow = |k: u64| allowed.contains(&k);
    let mut found = Vec::new();
    let mut truth = Vec::new();
    for query in queries.chunks_exact(D) {
        let hits = hnsw.search_filtered(query, 10, &allow).unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| allowed.contains(&h.key)), "{hits:?}");
        found.push(keys(&hits));
        truth.push(keys(&exact.search_filtered(query, 10, &allow).unwrap()));
    }
    let r = recall(&found, &truth);
    assert!(r >= 0.9, "filtered recall@10 {r}");
    assert!(
        hnsw.search_filtered(&queries[..D], 10, &|_| false)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn removed_keys_never_come_back_and_can_be_added_again() {
    let vectors = clustered_vectors(3_000, D, 30, 1.0, 13);
    let (_, mut hnsw) = both(&vectors, D);
    let removed: Vec<u64> = (0..3_000).filter(|k| k % 10 == 4).collect();
    for &key in &removed {
        assert!(hnsw.remove(key).unwrap());
        assert!(!hnsw.remove(key).unwrap());
    }
    assert_eq!(hnsw.len(), 3_000 - removed.len());
    let gone: HashSet<u64> = removed.iter().copied().collect();
    for &key in &removed {
        assert!(!hnsw.contains(key));
        let query = &vectors[key as usize * D..(key as usize + 1) * D];
        let hits = hnsw.search(query, 20).unwrap();
        assert!(hits.iter().all(|h| !gone.contains(&h.key)), "key {key}");
        let filtered = hnsw.search_filtered(query, 20, &|_| true).unwrap();
        assert!(filtered.iter().all(|h| !gone.contains(&h.key)), "key {key}");
        assert!(hnsw.search_among(query, 5, &[key]).unwrap().is_empty());
    }
    let key = removed[0];
    let row = &vectors[key as usize * D..(key as usize + 1) * D];
    hnsw.add(key, row).unwrap();
    assert_eq!(hnsw.search(row, 1).unwrap()[0].key, key);
}

#[test]
fn a_graph_mostly_of_removed_keys_is_rebuilt_and_answers_like_the_exact_index() {
    let all = clustered_vectors(4_050, D, 40, 1.0, 17);
    let (vectors, queries) = all.split_at(4_000 * D);
    let (mut exact, mut hnsw) = both(vectors, D);
    let memory = hnsw.memory_bytes();
    // Remove 3 000 of 4 000 (more than the rebuild threshold and than those held), then add
    // one: the graph keeps only the 1 001 held keys.
    for key in 0..3_000u64 {
        assert!(hnsw.remove(key).unwrap());
        assert!(exact.remove(key).unwrap());
    }
    let extra = &queries[..D];
    hnsw.add(9_999, extra).unwrap();
    exact.add(9_999, extra).unwrap();
    assert_eq!(hnsw.len(), 1_001);
    assert!(
        hnsw.memory_bytes() < memory / 2,
        "{} of {memory} bytes after the rebuild",
        hnsw.memory_bytes()
    );
    let mut found = Vec::new();
    let mut truth = Vec::new();
    for query in queries.chunks_exact(D) {
        found.push(keys(&hnsw.search(query, 10).unwrap()));
        truth.push(keys(&exact.search(query, 10).unwrap()));
    }
    assert!(recall(&found, &truth) >= 0.99, "{}", recall(&found, &truth));
    assert_eq!(hnsw.search(extra, 1).unwrap()[0].key, 9_999);
}

#[test]
fn add_replaces_the_vector_of_a_present_key() {
    let vectors = clustered_vectors(2_001, D, 20, 1.0, 14);
    let (stored, fresh) = vectors.split_at(2_000 * D);
    let (_, mut hnsw) = both(stored, D);
    hnsw.add(5, fresh).unwrap();
    assert_eq!(hnsw.len(), 2_000);
    let hits = hnsw.search(fresh, 1).unwrap();
    assert_eq!(hits[0].key, 5);
    assert!((hits[0].score - 1.0).abs() < F16_SCORE_ERROR);
    let old = &stored[5 * D..6 * D];
    assert!(
        hnsw.search(old, 3)
            .unwrap()
            .iter()
            .all(|h| h.key != 5 || h.score < 0.99)
    );
}

#[test]
fn search_among_is_exact_with_f32_and_within_rounding_with_f16() {
    let all = clustered_vectors(4_010, D, 40, 1.0, 15);
    let (vectors, queries) = all.split_at(4_000 * D);
    let mut candidates: Vec<u64> = (0..4_000u64).filter(|k| k.is_multiple_of(13)).collect();
    candidates.extend([9_999, 13, 13]);
    let (exact, hnsw) = both_at(vectors, D, Precision::F32);
    for query in queries.chunks_exact(D) {
        let a = hnsw.search_among(query, 15, &candidates).unwrap();
        let b = exact.search_among(query, 15, &candidates).unwrap();
        assert_eq!(keys(&a), keys(&b));
        for (x, y) in a.iter().zip(&b) {
            assert!((x.score - y.score).abs() < 1e-5);
        }
    }
    // Rounded vectors: every candidate is still scored, so the score at each rank is the exact
    // one's up to the rounding, and each hit's score is its exact score up to the rounding.
    let (exact, hnsw) = both_at(vectors, D, Precision::F16);
    let mut differing = 0;
    for query in queries.chunks_exact(D) {
        let a = hnsw.search_among(query, 15, &candidates).unwrap();
        let b = exact.search_among(query, 15, &candidates).unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x.score - y.score).abs() < F16_SCORE_ERROR, "{x:?} {y:?}");
        }
        let rescored = exact.rescore(query, a.clone()).unwrap();
        for hit in &a {
            let true_score = rescored.iter().find(|h| h.key == hit.key).unwrap().score;
            assert!((hit.score - true_score).abs() < F16_SCORE_ERROR);
            differing += usize::from(hit.score != true_score);
        }
    }
    assert!(differing > 0, "f16 scores should show some rounding");
}

#[test]
fn more_threads_than_cores_can_search_at_once() {
    let vectors = clustered_vectors(2_000, D, 20, 1.0, 16);
    let (_, hnsw) = both(&vectors, D);
    let query = |key: usize| &vectors[key * D..(key + 1) * D];
    let odd = |k: u64| k % 2 == 1;
    let expected: Vec<_> = (0..2_000)
        .map(|key| {
            let hits = hnsw.search(query(key), 3).unwrap();
            let filtered = hnsw.search_filtered(query(key), 3, &odd).unwrap();
            (hits, filtered)
        })
        .collect();
    std::thread::scope(|scope| {
        for t in 0..48 {
            let (hnsw, expected) = (&hnsw, &expected);
            scope.spawn(move || {
                for key in (t * 40..(t + 1) * 40).map(|i| i % 2_000) {
                    assert_eq!(hnsw.search(query(key), 3).unwrap(), expected[key].0);
                    let filtered = hnsw.search_filtered(query(key), 3, &odd).unwrap();
                    assert_eq!(filtered, expected[key].1);
                }
            });
        }
    });
}

#[test]
fn bad_dimensions_queries_and_keys_are_refused() {
    let error = HnswIndex::new(0, HnswParams::default()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BadInput);
    for connectivity in [1, 257] {
        let params = HnswParams {
            connectivity,
            ..HnswParams::default()
        };
        let error = HnswIndex::new(4, params).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::BadInput);
        assert!(error.to_string().contains("connectivity"), "{error}");
    }
    let mut hnsw = HnswIndex::new(4, HnswParams::default()).unwrap();
    for error in [
        hnsw.add(u64::MAX, &[1.0; 4]).unwrap_err(),
        hnsw.add(1, &[1.0; 5]).unwrap_err(),
        hnsw.add(1, &[0.0; 4]).unwrap_err(),
        hnsw.add_many(&[1, 2], &[1.0; 4]).unwrap_err(),
        hnsw.search(&[1.0; 3], 1).unwrap_err(),
    ] {
        assert_eq!(error.kind(), ErrorKind::BadInput, "{error}");
    }
    assert!(hnsw.is_empty());
}
