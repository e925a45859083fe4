//! One single-threaded matrix product through the `gemm` crate (the one flex uses), shared
//! by the crate's convolution kernels.

/// A matrix operand: its first value and its `[row, column]` strides.
pub(crate) type Operand = (*const f32, [usize; 2]);

/// One single-threaded `gemm` call: `dst[m × n] (+)= lhs[m × k] · rhs[k × n]`.
///
/// # Safety
/// Every index the strides reach must be inside the three buffers, and nothing else may use
/// `dst`'s values meanwhile.
pub(crate) unsafe fn serial_product(
    [m, n, k]: [usize; 3],
    (dst, [dst_rs, dst_cs], accumulate): (*mut f32, [usize; 2], bool),
    (lhs, [lhs_rs, lhs_cs]): Operand,
    (rhs, [rhs_rs, rhs_cs]): Operand,
) {
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}
