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

/// The dot product of an f32 query and a row stored as 16-bit floats (IEEE half, as bits):
/// sixteen-wide conversions and fused multiply-adds with AVX-512, eight-wide with AVX2, FMA
/// and F16C, else one element at a time.
#[inline]
pub(crate) fn dot_f16(query: &[f32], row: &[u16]) -> f32 {
    debug_assert_eq!(query.len(), row.len());
    #[cfg(target_arch = "x86_64")]
    match half_kernels::level() {
        // SAFETY: `level` found the features each kernel is compiled for.
        half_kernels::Level::Avx512 => return unsafe { half_kernels::dot512(query, row) },
        half_kernels::Level::Avx2 => return unsafe { half_kernels::dot256(query, row) },
        half_kernels::Level::None => {}
    }
    dot_f16_portable(query, row)
}

fn dot_f16_portable(query: &[f32], row: &[u16]) -> f32 {
    query
        .iter()
        .zip(row)
        .map(|(q, &h)| q * half::f16::from_bits(h).to_f32())
        .sum()
}

/// `values` rounded to 16-bit floats (as bits).
pub(crate) fn to_f16(values: &[f32]) -> impl Iterator<Item = u16> + '_ {
    values.iter().map(|&x| half::f16::from_f32(x).to_bits())
}

/// A row of 16-bit floats widened into `out`.
pub(crate) fn from_f16(row: &[u16], out: &mut Vec<f32>) {
    out.clear();
    out.resize(row.len(), 0.0);
    #[cfg(target_arch = "x86_64")]
    if !matches!(half_kernels::level(), half_kernels::Level::None) {
        // SAFETY: every level but `None` has AVX2 and F16C, the features `widen` needs.
        unsafe { half_kernels::widen(row, out) };
        return;
    }
    for (o, &h) in out.iter_mut().zip(row) {
        *o = half::f16::from_bits(h).to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
mod half_kernels {
    use std::arch::x86_64::{
        __m128i, __m256i, _mm_loadu_si128, _mm256_add_ps, _mm256_cvtph_ps, _mm256_fmadd_ps,
        _mm256_loadu_ps, _mm256_loadu_si256, _mm256_setzero_ps, _mm256_storeu_ps, _mm512_add_ps,
        _mm512_cvtph_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_reduce_add_ps, _mm512_setzero_ps,
    };
    use std::sync::OnceLock;

    #[derive(Clone, Copy)]
    pub(super) enum Level {
        Avx512,
        Avx2,
        None,
    }

    /// The widest kernel this processor runs (looked up once).
    #[inline]
    pub(super) fn level() -> Level {
        static LEVEL: OnceLock<Level> = OnceLock::new();
        *LEVEL.get_or_init(|| {
            let avx2 = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c");
            if avx2 && std::arch::is_x86_feature_detected!("avx512f") {
                Level::Avx512
            } else if avx2 {
                Level::Avx2
            } else {
                Level::None
            }
        })
    }

    /// Two accumulators of sixteen lanes; the tail one element at a time.
    #[target_feature(enable = "avx512f")]
    pub(super) fn dot512(query: &[f32], row: &[u16]) -> f32 {
        let n = query.len().min(row.len());
        let (mut a, mut b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut at = 0;
        // SAFETY (every load below): `at + 16 <= n` or `at + 32 <= n` bounds the sixteen or
        // thirty-two elements read from both slices; the loads need no alignment.
        unsafe {
            while at + 32 <= n {
                let h0 = _mm256_loadu_si256(row.as_ptr().add(at) as *const __m256i);
                let h1 = _mm256_loadu_si256(row.as_ptr().add(at + 16) as *const __m256i);
                a = _mm512_fmadd_ps(
                    _mm512_loadu_ps(query.as_ptr().add(at)),
                    _mm512_cvtph_ps(h0),
                    a,
                );
                b = _mm512_fmadd_ps(
                    _mm512_loadu_ps(query.as_ptr().add(at + 16)),
                    _mm512_cvtph_ps(h1),
                    b,
                );
                at += 32;
            }
            if at + 16 <= n {
                let h = _mm256_loadu_si256(row.as_ptr().add(at) as *const __m256i);
                a = _mm512_fmadd_ps(
                    _mm512_loadu_ps(query.as_ptr().add(at)),
                    _mm512_cvtph_ps(h),
                    a,
                );
                at += 16;
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(a, b))
            + super::dot_f16_portable(&query[at..n], &row[at..n])
    }

    /// `row` widened into `out` (equally long), eight at a time.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) fn widen(row: &[u16], out: &mut [f32]) {
        let n = row.len().min(out.len());
        let mut at = 0;
        while at + 8 <= n {
            // SAFETY: `at + 8 <= n` bounds the eight elements read and written; the loads and
            // stores need no alignment.
            unsafe {
                let h = _mm_loadu_si128(row.as_ptr().add(at) as *const __m128i);
                _mm256_storeu_ps(out.as_mut_ptr().add(at), _mm256_cvtph_ps(h));
            }
            at += 8;
        }
        for i in at..n {
            out[i] = half::f16::from_bits(row[i]).to_f32();
        }
    }

    /// Two accumulators of eight lanes; the tail one element at a time.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot256(query: &[f32], row: &[u16]) -> f32 {
        let n = query.len().min(row.len());
        let (mut a, mut b) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut at = 0;
        // SAFETY (every load below): `at + 8 <= n` or `at + 16 <= n` bounds the elements read
        // from both slices; the loads need no alignment.
        unsafe {
            while at + 16 <= n {
                let h0 = _mm_loadu_si128(row.as_ptr().add(at) as *const __m128i);
                let h1 = _mm_loadu_si128(row.as_ptr().add(at + 8) as *const __m128i);
                a = _mm256_fmadd_ps(
                    _mm256_loadu_ps(query.as_ptr().add(at)),
                    _mm256_cvtph_ps(h0),
                    a,
                );
                b = _mm256_fmadd_ps(
                    _mm256_loadu_ps(query.as_ptr().add(at + 8)),
                    _mm256_cvtph_ps(h1),
                    b,
                );
                at += 16;
            }
            if at + 8 <= n {
                let h = _mm_loadu_si128(row.as_ptr().add(at) as *const __m128i);
                a = _mm256_fmadd_ps(
                    _mm256_loadu_ps(query.as_ptr().add(at)),
                    _mm256_cvtph_ps(h),
                    a,
                );
                at += 8;
            }
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds eight floats; the store needs no alignment.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(a, b)) };
        lanes.iter().sum::<f32>() + super::dot_f16_portable(&query[at..n], &row[at..n])
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
    fn half_dot_matches_a_plain_sum_of_the_rounded_rows_at_every_tail_length() {
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 256] {
            let q: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let row: Vec<u16> = to_f16(
                &(0..len)
                    .map(|i| (i as f32 * 0.11).cos())
                    .collect::<Vec<_>>(),
            )
            .collect();
            let mut wide = Vec::new();
            from_f16(&row, &mut wide);
            let plain: f64 = q.iter().zip(&wide).map(|(x, y)| f64::from(x * y)).sum();
            assert!(
                (f64::from(dot_f16(&q, &row)) - plain).abs() < 1e-4,
                "len {len}"
            );
            assert!(
                (f64::from(dot_f16_portable(&q, &row)) - plain).abs() < 1e-4,
                "len {len}"
            );
        }
        let mut one = Vec::new();
        from_f16(&[0x3c00, 0xc000, 0x3800], &mut one);
        assert_eq!(one, vec![1.0, -2.0, 0.5]);
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
