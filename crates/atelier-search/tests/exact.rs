//! The exact index against a brute-force reference: top-k, ties, removal, replacement, filters.

mod common;

use std::collections::HashSet;

use atelier_search::{ErrorKind, ExactIndex, Hit, SearchError, VectorIndex};
use common::{assert_same_ranking, cosine, random_vectors, reference, rows};

const D: usize = 64;

fn pairs(hits: &[Hit]) -> Vec<(u64, f32)> {
    hits.iter().map(|h| (h.key, h.score)).collect()
}

fn keys(hits: &[Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.key).collect()
}

fn index_of(vectors: &[f32]) -> ExactIndex {
    let mut index = ExactIndex::new(D);
    for (key, row) in rows(vectors, D) {
        index.add(key, row).unwrap();
    }
    index
}

#[test]
fn top_k_matches_a_brute_force_reference() {
    let vectors = random_vectors(2_000, D, 1);
    let queries = random_vectors(20, D, 2);
    let index = index_of(&vectors);
    let items = rows(&vectors, D);
    for query in queries.chunks_exact(D) {
        for k in [1, 10, 50, 2_500] {
            let hits = index.search(query, k).unwrap();
            let expected = reference(&items, query, k, |_| true);
            let score_of = |key: u64| cosine(items[key as usize].1, query);
            assert_same_ranking(&pairs(&hits), &expected, score_of);
        }
    }
    assert!(index.search(&queries[..D], 0).unwrap().is_empty());
}

#[test]
fn equal_scores_come_back_in_key_order() {
    let base = random_vectors(3, D, 3);
    let mut index = ExactIndex::new(D);
    // Five copies of one vector (scaled by powers of two, which normalisation undoes exactly,
    // so that they are identical to the bit), added out of key order, among two other vectors.
    for (key, scale) in [(40u64, 1.0f32), (7, 2.0), (23, 0.5), (3, 4.0), (11, 0.25)] {
        let v: Vec<f32> = base[..D].iter().map(|x| x * scale).collect();
        index.add(key, &v).unwrap();
    }
    index.add(1, &base[D..2 * D]).unwrap();
    index.add(2, &base[2 * D..]).unwrap();

    let query = &base[..D];
    assert_eq!(keys(&index.search(query, 3).unwrap()), vec![3, 7, 11]);
    assert_eq!(
        keys(&index.search(query, 5).unwrap()),
        vec![3, 7, 11, 23, 40]
    );
    let odd = |key: u64| key % 2 == 1;
    assert_eq!(
        keys(&index.search_filtered(query, 2, &odd).unwrap()),
        vec![3, 7]
    );
    let among = index.search_among(query, 3, &[40, 23, 1, 11]).unwrap();
    assert_eq!(keys(&among), vec![11, 23, 40]);
}

#[test]
fn removed_keys_never_come_back() {
    let vectors = random_vectors(500, D, 4);
    let mut index = index_of(&vectors);
    let removed: Vec<u64> = (0..500).filter(|k| k % 3 == 0).collect();
    for &key in &removed {
        assert!(index.remove(key).unwrap());
        assert!(
            !index.remove(key).unwrap(),
            "a second removal finds nothing"
        );
    }
    assert_eq!(index.len(), 500 - removed.len());
    let gone: HashSet<u64> = removed.iter().copied().collect();
    for &key in &removed {
        assert!(!index.contains(key));
        let query = &vectors[key as usize * D..(key as usize + 1) * D];
        let hits = index.search(query, 50).unwrap();
        assert_eq!(hits.len(), 50);
        assert!(hits.iter().all(|h| !gone.contains(&h.key)), "key {key}");
        let among = index.search_among(query, 5, &[key]).unwrap();
        assert!(among.is_empty());
    }
    // Rows moved by removals still hold their own vectors.
    let items = rows(&vectors, D);
    for (key, row) in items.iter().filter(|(k, _)| !gone.contains(k)) {
        let hits = index.search(row, 1).unwrap();
        assert_eq!(hits[0].key, *key);
        assert!((hits[0].score - 1.0).abs() < 1e-5);
    }
}

#[test]
fn add_replaces_the_vector_of_a_present_key() {
    let vectors = random_vectors(300, D, 5);
    let mut index = index_of(&vectors);
    let old = vectors[..D].to_vec();
    let new = random_vectors(1, D, 6);
    index.add(0, &new).unwrap();
    assert_eq!(index.len(), 300);
    let hits = index.search(&new, 1).unwrap();
    assert_eq!(hits[0].key, 0);
    assert!((hits[0].score - 1.0).abs() < 1e-5);
    let stored = index.get(0).unwrap();
    assert!((cosine(stored, &new) - 1.0).abs() < 1e-6);
    let old_hits = index.search(&old, 300).unwrap();
    let score = old_hits.iter().find(|h| h.key == 0).unwrap().score;
    assert!((f64::from(score) - cosine(&old, &new)).abs() < 1e-5);
}

#[test]
fn filters_exclude_exactly_what_they_should() {
    let vectors = random_vectors(1_000, D, 7);
    let index = index_of(&vectors);
    let items = rows(&vectors, D);
    let queries = random_vectors(10, D, 8);
    let allowed: HashSet<u64> = (0..1_000).filter(|k| k % 7 == 2 || k % 11 == 0).collect();
    let mut candidates: Vec<u64> = allowed.iter().copied().collect();
    candidates.extend([5_000, 6_000, 2, 2, 11]); // unknown keys and repeats
    for query in queries.chunks_exact(D) {
        let score_of = |key: u64| cosine(items[key as usize].1, query);
        let expected = reference(&items, query, 30, |k| allowed.contains(&k));

        let filtered = index
            .search_filtered(query, 30, &|k| allowed.contains(&k))
            .unwrap();
        assert_same_ranking(&pairs(&filtered), &expected, score_of);

        let among = index.search_among(query, 30, &candidates).unwrap();
        assert_same_ranking(&pairs(&among), &expected, score_of);

        let all = index.search_among(query, 10_000, &candidates).unwrap();
        assert_eq!(
            all.len(),
            allowed.len(),
            "every allowed key once, nothing else"
        );
    }
    let none = index
        .search_filtered(&queries[..D], 10, &|_| false)
        .unwrap();
    assert!(none.is_empty());
}

#[test]
fn add_many_is_adding_one_by_one() {
    let vectors = random_vectors(200, D, 9);
    let mut keys: Vec<u64> = (0..200).map(|k| k * 10).collect();
    keys[199] = 30; // key 30 again: its last vector wins
    let mut batch = ExactIndex::new(D);
    batch.add_many(&keys, &vectors).unwrap();
    let mut single = ExactIndex::new(D);
    for (key, row) in keys.iter().zip(vectors.chunks_exact(D)) {
        single.add(*key, row).unwrap();
    }
    assert_eq!(batch.len(), 199);
    assert_eq!(batch.get(30), single.get(30));
    let query = &vectors[199 * D..];
    assert_eq!(
        batch.search(query, 20).unwrap(),
        single.search(query, 20).unwrap()
    );
}

#[test]
fn bad_vectors_and_keys_are_refused() {
    let mut index = ExactIndex::new(4);
    let refused = |e: SearchError| {
        assert_eq!(e.kind(), ErrorKind::BadInput, "{e}");
        e.to_string()
    };
    let msg = refused(index.add(1, &[1.0, 2.0]).unwrap_err());
    assert!(
        msg.contains("key 1") && msg.contains("2 dimensions") && msg.contains('4'),
        "{msg}"
    );
    refused(index.add(1, &[0.0; 4]).unwrap_err());
    refused(index.add(1, &[f32::NAN, 1.0, 1.0, 1.0]).unwrap_err());
    refused(index.add(u64::MAX, &[1.0; 4]).unwrap_err());
    refused(index.add_many(&[1, 2], &[1.0; 7]).unwrap_err());
    refused(index.search(&[1.0; 3], 1).unwrap_err());
    // A refused batch adds nothing.
    refused(
        index
            .add_many(&[1, 2], &[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
            .unwrap_err(),
    );
    assert!(index.is_empty());
}

#[test]
fn candidates_by_position_rank_like_candidates_by_key() {
    let vectors = random_vectors(1_000, D, 5);
    let mut index = index_of(&vectors);
    // A removal moves the last row into the removed one's place: positions are not keys.
    index.remove(3).unwrap();
    let queries = random_vectors(5, D, 6);
    let positions: Vec<usize> = (0..index.len()).filter(|p| p % 3 == 0).collect();
    let chosen: Vec<u64> = positions.iter().map(|&p| index.keys()[p]).collect();
    for query in queries.chunks_exact(D) {
        let by_key = index.search_among(query, 10, &chosen).unwrap();
        let mut with_stray = positions.clone();
        with_stray.push(index.len() + 5);
        let by_position = index.search_positions(query, 10, &with_stray).unwrap();
        assert_eq!(by_position, by_key);
    }
}

#[test]
fn rescoring_gives_each_hit_its_cosine_and_ranks_again() {
    let vectors = random_vectors(50, D, 31);
    let query = &random_vectors(1, D, 32)[..];
    let index = index_of(&vectors);
    let items = rows(&vectors, D);
    // Scores as a rough index might give them, in the wrong order, and a key the index lacks.
    let rough = vec![
        Hit { key: 7, score: 0.9 },
        Hit { key: 3, score: 0.8 },
        Hit {
            key: 40,
            score: 0.1,
        },
        Hit {
            key: 999,
            score: 0.5,
        },
    ];
    let rescored = index.rescore(query, rough).unwrap();
    let mut expected: Vec<(u64, f32)> = [7u64, 3, 40]
        .iter()
        .map(|&key| (key, cosine(items[key as usize].1, query) as f32))
        .chain([(999, 0.5)])
        .collect();
    expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    assert_eq!(
        keys(&rescored),
        expected.iter().map(|e| e.0).collect::<Vec<_>>()
    );
    for (hit, (_, score)) in rescored.iter().zip(&expected) {
        assert!((hit.score - score).abs() < 1e-5, "{hit:?} vs {score}");
    }
    assert!(
        index.rescore(&[1.0; 3], Vec::new()).is_err(),
        "a query of another dimension"
    );
}

/// A bias per stored position is added to the cosine, in the scan and in rescoring alike: the
/// ranking is the brute-force one of cosine plus bias (positions past the bias's end: none).
#[test]
fn biased_scans_and_rescoring_rank_by_cosine_plus_bias() {
    let vectors = random_vectors(300, D, 41);
    let queries = random_vectors(5, D, 42);
    let mut index = index_of(&vectors);
    index.remove(10).unwrap();
    let items = rows(&vectors, D);
    // The first 200 positions get a bias; large enough to reorder the top.
    let bias: Vec<f32> = (0..200)
        .map(|p| ((p * 37) % 11) as f32 * 0.03 - 0.15)
        .collect();
    let bias_of = |key: u64| {
        let position = index.keys().iter().position(|&k| k == key).unwrap();
        bias.get(position).copied().unwrap_or(0.0)
    };
    let positions: Vec<usize> = (0..index.len()).collect();
    for query in queries.chunks_exact(D) {
        let score = |key: u64| cosine(items[key as usize].1, query) as f32 + bias_of(key);
        let mut expected: Vec<(u64, f32)> = index.keys().iter().map(|&k| (k, score(k))).collect();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        expected.truncate(10);
        let hits = index
            .search_positions_biased(query, 10, &positions, &bias)
            .unwrap();
        assert_eq!(
            keys(&hits),
            expected.iter().map(|e| e.0).collect::<Vec<_>>()
        );
        for (hit, (_, want)) in hits.iter().zip(&expected) {
            assert!((hit.score - want).abs() < 1e-5, "{hit:?} vs {want}");
        }
        let plain = index.search(query, 10).unwrap();
        assert_ne!(
            keys(&plain),
            keys(&hits),
            "the bias should reorder this top 10"
        );
        // Rescoring every plain hit with the bias ranks them as the biased scan does.
        let mut rescored = index
            .rescore_biased(query, index.search(query, index.len()).unwrap(), &bias)
            .unwrap();
        rescored.truncate(10);
        assert_eq!(keys(&rescored), keys(&hits));
    }
}
