//! Vector arithmetic shared by both indexes: checking and L2-normalising the caller's vectors,
//! and the dot product the exact scan spends its time in.
//!
//! The dot product is plain Rust that the compiler vectorises for the default target (SSE2 on
//! x86-64). Measured on 2 shared cores: 100 000 256-d vectors take about 5 ms a scan with SSE2
//! and the same with AVX2 and FMA, because the scan is bound by memory bandwidth (about
//! 20 GB/s); AVX2 pays only when the vectors fit in cache (20 000 128-d: 0.53 against
//! 0.22 ms), which is why there is no runtime dispatch to wider instructions.

use crate::error::{SearchError, SearchResult};

/// Lanes of the dot product's accumulator: 16 independent sums let the compiler keep four SSE
/// (or two AVX) registers busy without reassociating floating-point additions itself.
const LANES: usize = 16;

/// The dot product of two equally long slices, written so that it autovectorises.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let (a_chunks, a_tail) = a.as_chunks::<LANES>();
    let (b_chunks, b_tail) = b.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for lane in 0..LANES {
            acc[lane] += x[lane] * y[lane];
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// `vector` scaled to unit length, after checking its dimension and values. `what` names the
/// vector in errors ("query", "vector for key 7").
pub(crate) fn normalised(
    vector: &[f32],
    dimensions: usize,
    what: impl FnOnce() -> String,
) -> SearchResult<Vec<f32>> {
    if vector.len() != dimensions {
        return Err(SearchError::WrongDimension {
            what: what(),
            expected: dimensions,
            got: vector.len(),
        });
    }
    if vector.iter().any(|x| !x.is_finite()) {
        return Err(SearchError::InvalidVector {
            what: what(),
            reason: "holds NaN or infinite values",
        });
    }
    // Summed in f64: embeddings with large components would overflow an f32 sum of squares.
    let norm = vector
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(SearchError::InvalidVector {
            what: what(),
            reason: "has zero length",
        });
    }
    Ok(vector
        .iter()
        .map(|&x| (f64::from(x) / norm) as f32)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_a_plain_sum_at_every_tail_length() {
        for len in [0, 1, 15, 16, 17, 64, 100, 1280] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
            assert!((f64::from(dot(&a, &b)) - plain).abs() < 1e-4, "len {len}");
        }
    }

    #[test]
    fn normalised_vectors_have_unit_length_and_bad_ones_are_refused() {
        let v = normalised(&[3.0, 4.0], 2, || "v".into()).unwrap();
        assert_eq!(v, vec![0.6, 0.8]);
        let big = normalised(&[3e30, 4e30], 2, || "v".into()).unwrap();
        assert!((big[0] - 0.6).abs() < 1e-6);
        assert!(normalised(&[0.0, 0.0], 2, || "v".into()).is_err());
        assert!(normalised(&[f32::NAN, 1.0], 2, || "v".into()).is_err());
        assert!(matches!(
            normalised(&[1.0], 2, || "v".into()),
            Err(SearchError::WrongDimension {
                expected: 2,
                got: 1,
                ..
            })
        ));
    }
}
