//! Vector arithmetic shared by both indexes: checking and L2-normalising the caller's vectors,
//! and the dot product the exact scan spends its time in.
//!
//! The dot product is plain Rust that the compiler vectorises for the default target (SSE2 on
//! x86-64), and on processors with AVX2 and FMA (checked at run time) eight-wide fused
//! multiply-adds. Measured on a 2-core Intel Xeon: the exact scan of 100 000 128-d vectors
//! took 5.0 ms with SSE2 (FAISS's flat index: 2.2 ms on the same vectors) and
//! 2.1 ms with AVX2 and FMA.

use crate::error::{SearchError, SearchResult};

/// Lanes of the portable dot product's accumulator: 16 independent sums let the compiler keep
/// four SSE registers busy without reassociating floating-point additions itself.
const LANES: usize = 16;

/// The dot product of two equally long slices: eight-wide fused multiply-adds where the
/// processor has them, else [`dot_portable`].
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if avx::available() {
        // SAFETY: the processor has AVX2 and FMA, the features `avx::dot` is compiled for.
        return unsafe { avx::dot(a, b) };
    }
    dot_portable(a, b)
}

/// The dot product written so that it autovectorises for any target.
#[inline]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
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

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
        _mm256_storeu_ps,
    };

    /// Whether this processor has AVX2 and FMA (std caches the answer after the first call).
    #[inline]
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }

    /// Eight floats of `values` from `at` (`at + 8 <= values.len()`).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn load(values: &[f32], at: usize) -> __m256 {
        let eight = &values[at..at + 8];
        // SAFETY: `eight` holds eight floats; the load needs no alignment.
        unsafe { _mm256_loadu_ps(eight.as_ptr()) }
    }

    /// The dot product with four accumulators of eight lanes each.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let mut sums = [_mm256_setzero_ps(); 4];
        let mut at = 0;
        while at + 32 <= n {
            for (lane, sum) in sums.iter_mut().enumerate() {
                let from = at + lane * 8;
                *sum = _mm256_fmadd_ps(load(a, from), load(b, from), *sum);
            }
            at += 32;
        }
        while at + 8 <= n {
            sums[0] = _mm256_fmadd_ps(load(a, at), load(b, at), sums[0]);
            at += 8;
        }
        let total = _mm256_add_ps(
            _mm256_add_ps(sums[0], sums[1]),
            _mm256_add_ps(sums[2], sums[3]),
        );
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds eight floats; the store needs no alignment.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), total) };
        let tail: f32 = a[at..n].iter().zip(&b[at..n]).map(|(x, y)| x * y).sum();
        lanes.iter().sum::<f32>() + tail
    }
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
            assert!(
                (f64::from(dot_portable(&a, &b)) - plain).abs() < 1e-4,
                "len {len}"
            );
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
