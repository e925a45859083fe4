//! Runtime dispatch of the crate's own hot loops to the widest vector instructions the CPU
//! has. The crate is compiled for the baseline x86-64 target (SSE2: four lanes, no fused
//! multiply-add), which is what a release binary must run on; [`with_simd!`] compiles a
//! function's body a second and third time with AVX-512 and with AVX2 and FMA enabled and
//! picks one per call from the CPU's features (a cached check).

/// Defines `fn NAME(ARGS)` (no return value) whose body runs compiled for AVX-512F, else
/// AVX2 + FMA, else the baseline, whichever the CPU supports.
macro_rules! with_simd {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (and so AVX2 and FMA).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

pub(crate) use with_simd;

#[cfg(test)]
mod tests {
    with_simd! {
        /// `out[k] = a[k] · b[k] + 1`.
        fn scaled(out: &mut [f32], a: &[f32], b: &[f32]) {
            for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
                *o = x * y + 1.0;
            }
        }
    }

    /// Whatever variant the CPU picks computes the same values as the definition.
    #[test]
    fn every_variant_computes_the_body() {
        let a: Vec<f32> = (0..37).map(|k| k as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|k| 3.0 - k as f32).collect();
        let mut out = vec![0.0; 37];
        scaled(&mut out, &a, &b);
        for k in 0..37 {
            assert_eq!(out[k], a[k] * b[k] + 1.0);
        }
    }
}
