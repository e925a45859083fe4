//! Test data shared by the tests and the bench: seeded random and clustered vectors, and a
//! brute-force reference that sorts every score, computed without the crate's code.
#![allow(dead_code)]

/// SplitMix64: small, seeded, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// `n` vectors of `d` Gaussian components, row-major (not normalised).
pub fn random_vectors(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n * d).map(|_| rng.normal()).collect()
}

/// `n` vectors around `clusters` random unit centres, row-major: each is its centre plus
/// Gaussian noise of expected length `spread` (not normalised). Embeddings of photos of similar
/// dresses look like this more than like uniform noise.
pub fn clustered_vectors(n: usize, d: usize, clusters: usize, spread: f32, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| unit((0..d).map(|_| rng.normal()).collect()))
        .collect();
    let scale = spread / (d as f32).sqrt();
    let mut out = Vec::with_capacity(n * d);
    for _ in 0..n {
        let centre = &centres[rng.below(clusters)];
        out.extend(centre.iter().map(|c| c + scale * rng.normal()));
    }
    out
}

pub fn unit(v: Vec<f32>) -> Vec<f32> {
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    v.iter().map(|&x| (f64::from(x) / norm) as f32).collect()
}

/// Cosine similarity in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    let na: f64 = a.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Every (key, score) of `items` that `allow` accepts, scored against `query` and sorted by
/// score (descending) then key: the brute-force reference, truncated to `k`.
pub fn reference(
    items: &[(u64, &[f32])],
    query: &[f32],
    k: usize,
    allow: impl Fn(u64) -> bool,
) -> Vec<(u64, f64)> {
    let mut all: Vec<(u64, f64)> = items
        .iter()
        .filter(|(key, _)| allow(*key))
        .map(|(key, v)| (*key, cosine(v, query)))
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

/// Fraction of `truth`'s keys found in `found`, over all queries.
pub fn recall(found: &[Vec<u64>], truth: &[Vec<u64>]) -> f64 {
    let mut hit = 0usize;
    let mut total = 0usize;
    for (f, t) in found.iter().zip(truth) {
        hit += t.iter().filter(|key| f.contains(key)).count();
        total += t.len();
    }
    if total == 0 {
        return 1.0;
    }
    hit as f64 / total as f64
}

/// Rows of a row-major buffer paired with keys `0..n`.
pub fn rows(vectors: &[f32], d: usize) -> Vec<(u64, &[f32])> {
    vectors
        .chunks_exact(d)
        .enumerate()
        .map(|(i, row)| (i as u64, row))
        .collect()
}

/// Asserts that `found` (key, score) is `reference` up to rounding: the same scores within
/// 1e-5, and the same keys except where two reference scores are that close.
pub fn assert_same_ranking(
    found: &[(u64, f32)],
    reference: &[(u64, f64)],
    score_of: impl Fn(u64) -> f64,
) {
    assert_eq!(found.len(), reference.len(), "{found:?} vs {reference:?}");
    for (i, (&(key, score), &(ref_key, ref_score))) in found.iter().zip(reference).enumerate() {
        assert!(
            (f64::from(score) - ref_score).abs() < 1e-5,
            "rank {i}: score {score} vs reference {ref_score}"
        );
        assert!(
            key == ref_key || (score_of(key) - ref_score).abs() < 1e-5,
            "rank {i}: key {key} vs reference {ref_key}"
        );
    }
}
