//! 3×3 stride-1 convolutions by Winograd's minimal filtering F(4×4, 3×3) (Lavin and Gray,
//! "Fast Algorithms for Convolutional Neural Networks", 2016): each 4×4 block of output pixels
//! comes from a 6×6 block of input pixels with 36 multiplications per channel pair instead of
//! 144, so the matrix products shrink fourfold for the transforms' cost (a few dozen additions
//! per channel and block).
//!
//! `flex_conv` sends the forward pass and the input gradient of ResNet's 3×3 stride-1 layers
//! here (the input gradient of a stride-1 convolution is a stride-1 convolution of the output
//! gradient with the kernels transposed and turned by 180°); its weight gradient stays an
//! im2col product. Blocks of output tiles go to rayon's threads, each transformed, multiplied
//! (36 single-threaded `gemm` calls, one per position of the 6×6 transform) and transformed
//! back while it is in the core's cache.

use rayon::prelude::*;

use crate::matrix::serial_product;
use crate::simd::with_simd;

/// A 3×3 stride-1 convolution: input `[n, c, h, w]`, output `[n, co, ho, wo]`, `pad` rows and
/// columns of zeros before the input's first row and column (those after its end follow from
/// the output's size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub ho: usize,
    pub wo: usize,
    pub pad: [usize; 2],
}

/// Output pixels per tile side.
const TILE: usize = 4;
/// Input pixels per tile side.
const PATCH: usize = TILE + 2;
/// Positions of the transformed tile: one matrix product each.
const POSITIONS: usize = PATCH * PATCH;
/// Values of the transformed input and product of one block of tiles (4 MB, a core's share of
/// the L2 and L3 caches on the machines measured).
const BLOCK_VALUES: usize = 1 << 20;

impl Shape {
    /// Whether Winograd's products pay for their transforms: enough channels for the products
    /// to dominate, and output planes of at least 14×14 (on 7×7 planes the 4×4 tiles cover 8×8,
    /// and the weights' transform, 36 values per channel pair, costs as much as the saving).
    pub(crate) fn worthwhile(&self) -> bool {
        self.c >= 16 && self.co >= 16 && self.ho >= 14 && self.wo >= 14 && self.pad_fits()
    }

    /// At most two padding rows and columns before the input (a 3×3 kernel reads no further).
    fn pad_fits(&self) -> bool {
        self.pad[0] <= 2 && self.pad[1] <= 2
    }

    fn tiles_down(&self) -> usize {
        self.ho.div_ceil(TILE)
    }

    fn tiles_across(&self) -> usize {
        self.wo.div_ceil(TILE)
    }

    /// Tiles over the whole batch.
    fn tiles(&self) -> usize {
        self.n * self.tiles_down() * self.tiles_across()
    }

    /// Tiles per block: the block's transformed input and product hold at most about
    /// [`BLOCK_VALUES`], and the blocks are a whole number per thread.
    fn block_tiles(&self) -> usize {
        let by_cache = (BLOCK_VALUES / (POSITIONS * (self.c + self.co))).clamp(LANES, 256);
        let threads = rayon::current_num_threads().max(1);
        let blocks = self.tiles().div_ceil(by_cache).next_multiple_of(threads);
        self.tiles().div_ceil(blocks).max(1)
    }

    /// Tile `index`'s image and first output row and column.
    fn tile(&self, index: usize) -> Origin {
        let per_image = self.tiles_down() * self.tiles_across();
        let (image, within) = (index / per_image, index % per_image);
        let across = self.tiles_across();
        (image, within / across * TILE, within % across * TILE)
    }

    /// The shape of the input gradient as a convolution of the output gradient: channels and
    /// sizes swapped, and `2 − pad` rows and columns of zeros before it.
    fn transposed(&self) -> Self {
        Self {
            n: self.n,
            c: self.co,
            h: self.ho,
            w: self.wo,
            co: self.c,
            ho: self.h,
            wo: self.w,
            pad: [2 - self.pad[0], 2 - self.pad[1]],
        }
    }
}

/// `y = conv(x, weight)`: `x` is `[n, c, h, w]`, `weight` `[co, c, 3, 3]`, the result
/// `[n, co, ho, wo]`, all row-major.
pub(crate) fn forward(x: &[f32], weight: &[f32], shape: &Shape) -> Vec<f32> {
    assert!(shape.pad_fits(), "winograd: padding {:?} over 2", shape.pad);
    assert_eq!(x.len(), shape.n * shape.c * shape.h * shape.w);
    assert_eq!(weight.len(), shape.co * shape.c * 9);
    let kernels = transform_weights(weight, shape.co, shape.c);
    let block = shape.block_tiles();
    let blocks = shape.tiles().div_ceil(block);
    let pixels = shape.n * shape.co * shape.ho * shape.wo;
    // SAFETY: the output tiles cover every pixel of `[n, co, ho, wo]` once, each block writes
    // its own tiles' pixels and nothing reads them before the loop ends.
    unsafe {
        crate::buffer::filled(pixels, |y| {
            let y = y as usize;
            (0..blocks).into_par_iter().for_each(|index| {
                SCRATCH.with_borrow_mut(|scratch| {
                    let first = index * block;
                    let tiles = first..(first + block).min(shape.tiles());
                    scratch.origins.clear();
                    scratch.origins.extend(tiles.map(|tile| shape.tile(tile)));
                    transform_inputs(x, shape, scratch);
                    multiply(&kernels, shape, scratch);
                    restore(scratch, shape, y as *mut f32);
                })
            });
        })
    }
}

thread_local! {
    /// Each thread's buffers for [`forward`]'s blocks, kept between calls (at most about
    /// [`BLOCK_VALUES`] values each) so that they are not allocated and cleared per block.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// The gradient of [`forward`]'s `x` given the gradient of its output `dy` (`[n, co, ho, wo]`):
/// `dy` convolved with `weight` transposed (`[c, co, 3, 3]`) and turned by 180°.
pub(crate) fn input_gradient(dy: &[f32], weight: &[f32], shape: &Shape) -> Vec<f32> {
    let (c, co) = (shape.c, shape.co);
    let mut turned = vec![0.0f32; weight.len()];
    for o in 0..co {
        for i in 0..c {
            for tap in 0..9 {
                turned[(i * co + o) * 9 + 8 - tap] = weight[(o * c + i) * 9 + tap];
            }
        }
    }
    forward(dy, &turned, &shape.transposed())
}

/// The gradient of [`forward`]'s `weight` (`[co, c, 3, 3]`) given its input `x` and the
/// gradient of its output `dy`: the chain rule through the transforms, `Gᵀ·(Σ over tiles of
/// (A·dy·Aᵀ) ⊙ (Bᵀ·d·B))·G`, whose sum over tiles is one product per position.
pub(crate) fn weight_gradient(x: &[f32], dy: &[f32], shape: &Shape) -> Vec<f32> {
    assert!(shape.pad_fits(), "winograd: padding {:?} over 2", shape.pad);
    assert_eq!(x.len(), shape.n * shape.c * shape.h * shape.w);
    assert_eq!(dy.len(), shape.n * shape.co * shape.ho * shape.wo);
    // One share of the tiles per thread, in blocks as large as the cache bound allows times
    // four: the sums over a block are products as deep as the block has tiles.
    let threads = rayon::current_num_threads().max(1);
    let block = (4 * BLOCK_VALUES / (POSITIONS * (shape.c + shape.co))).max(LANES);
    let share = shape.tiles().div_ceil(threads);
    let sums = (0..threads)
        .into_par_iter()
        .map(|part| {
            let mut scratch = Scratch::default();
            let mut sums = Vec::with_capacity(POSITIONS * shape.co * shape.c);
            sums.resize(sums.capacity(), 0.0f32);
            let tiles = (part * share).min(shape.tiles())..((part + 1) * share).min(shape.tiles());
            for first in tiles.clone().step_by(block) {
                scratch.origins.clear();
                let end = (first + block).min(tiles.end);
                scratch
                    .origins
                    .extend((first..end).map(|tile| shape.tile(tile)));
                transform_inputs(x, shape, &mut scratch);
                transform_output_grads(dy, shape, &mut scratch);
                add_products(&scratch, shape, &mut sums);
            }
            sums
        })
        .reduce_with(|mut total, part| {
            total.iter_mut().zip(&part).for_each(|(t, p)| *t += p);
            total
        })
        .unwrap_or_else(|| vec![0.0; POSITIONS * shape.co * shape.c]);
    kernel_gradients(&sums, shape.co, shape.c)
}

/// Tiles transformed together, one per SIMD lane.
const LANES: usize = 8;

/// One value per tile of a group.
type Lanes = [f32; LANES];

/// A tile's image and first output row and column.
type Origin = (usize, usize, usize);

/// A thread's buffers: the block's tiles (image, first output row and column), transformed
/// input (`[position][c][slot]`) and product (`[position][co][slot]`), with room for a
/// whole number of [`LANES`] slots.
#[derive(Default)]
struct Scratch {
    origins: Vec<Origin>,
    inputs: Vec<f32>,
    products: Vec<f32>,
}

impl Scratch {
    /// Slots per row of `inputs` and `products`: the block's tiles rounded up to whole groups.
    fn width(&self) -> usize {
        self.origins.len().next_multiple_of(LANES)
    }
}

/// `G·g·Gᵀ` for every kernel, as `[position][co][c]`: the left operand of each position's
/// product.
fn transform_weights(weight: &[f32], co: usize, c: usize) -> Vec<f32> {
    // SAFETY: every output channel's item writes its row of all 36 positions' co × c
    // matrices, so every value once.
    unsafe {
        crate::buffer::filled(POSITIONS * co * c, |first| {
            fill_kernels(weight, co, c, first)
        })
    }
}

/// [`transform_weights`] into `first`, the start of `[position][co][c]`.
fn fill_kernels(weight: &[f32], co: usize, c: usize, first: *mut f32) {
    let address = first as usize;
    (0..co)
        .into_par_iter()
        .for_each_init(Vec::new, |local: &mut Vec<f32>, o| {
            // local[position][i] for this output channel, then one run of c per position.
            local.resize(POSITIONS * c, 0.0);
            for i in 0..c {
                let g = &weight[(o * c + i) * 9..][..9];
                let columns: [[f32; PATCH]; 3] =
                    std::array::from_fn(|j| kernel_rows([g[j], g[3 + j], g[6 + j]]));
                for r in 0..PATCH {
                    let row = kernel_rows([columns[0][r], columns[1][r], columns[2][r]]);
                    for (q, value) in row.into_iter().enumerate() {
                        local[(r * PATCH + q) * c + i] = value;
                    }
                }
            }
            for (position, run) in local.chunks_exact(c).enumerate() {
                // SAFETY: row `o` of each position's co × c matrix lies inside `kernels`, and
                // only the item for `o` writes it.
                unsafe {
                    let target = (address as *mut f32).add((position * co + o) * c);
                    std::ptr::copy_nonoverlapping(run.as_ptr(), target, c);
                }
            }
        });
}

/// `G·g` for three kernel taps: six values.
fn kernel_rows([g0, g1, g2]: [f32; 3]) -> [f32; PATCH] {
    [
        g0 / 4.0,
        -(g0 + g1 + g2) / 6.0,
        -(g0 - g1 + g2) / 6.0,
        g0 / 24.0 + g1 / 12.0 + g2 / 6.0,
        g0 / 24.0 - g1 / 12.0 + g2 / 6.0,
        g2,
    ]
}

/// `Bᵀ·d` for six input values per lane.
#[inline(always)]
fn input_rows(d: [&Lanes; PATCH]) -> [Lanes; PATCH] {
    let mut out = [[0.0f32; LANES]; PATCH];
    for l in 0..LANES {
        let (d0, d1, d2, d3, d4, d5) = (d[0][l], d[1][l], d[2][l], d[3][l], d[4][l], d[5][l]);
        out[0][l] = 4.0 * d0 - 5.0 * d2 + d4;
        out[1][l] = -4.0 * (d1 + d2) + d3 + d4;
        out[2][l] = 4.0 * (d1 - d2) - d3 + d4;
        out[3][l] = -2.0 * (d1 - d3) - d2 + d4;
        out[4][l] = 2.0 * (d1 - d3) - d2 + d4;
        out[5][l] = 4.0 * d1 - 5.0 * d3 + d5;
    }
    out
}

/// `Aᵀ·m` for six transformed values per lane: four output values.
#[inline(always)]
fn output_rows(m: [&Lanes; PATCH]) -> [Lanes; TILE] {
    let mut out = [[0.0f32; LANES]; TILE];
    for l in 0..LANES {
        let (sum, difference) = (m[1][l] + m[2][l], m[1][l] - m[2][l]);
        let (sum_far, difference_far) = (m[3][l] + m[4][l], m[3][l] - m[4][l]);
        out[0][l] = m[0][l] + sum + sum_far;
        out[1][l] = difference + 2.0 * difference_far;
        out[2][l] = sum + 4.0 * sum_far;
        out[3][l] = difference + 8.0 * difference_far + m[5][l];
    }
    out
}

with_simd! {
    /// `Bᵀ·d·B` for the 6×6 input patch of every tile of the block and every channel, into
    /// `inputs[position][channel][slot]`, a group of [`LANES`] tiles at a time.
    fn transform_inputs(x: &[f32], s: &Shape, scratch: &mut Scratch) {
        let width = scratch.width();
        scratch.inputs.resize(POSITIONS * s.c * width, 0.0);
        let plane = s.h * s.w;
        for channel in 0..s.c {
            for (first, group) in groups(&scratch.origins) {
                // patch[r][j][lane]: the input pixels of each tile of the group.
                let mut patch = [[[0.0f32; LANES]; PATCH]; PATCH];
                for (lane, &(image, row, column)) in group.iter().enumerate() {
                    let source = &x[(image * s.c + channel) * plane..][..plane];
                    read_patch(source, s, (row, column), |r, j, v| patch[r][j][lane] = v);
                }
                let columns: [[Lanes; PATCH]; PATCH] =
                    std::array::from_fn(|j| input_rows(std::array::from_fn(|r| &patch[r][j])));
                let rows: [[Lanes; PATCH]; PATCH] =
                    std::array::from_fn(|r| input_rows(std::array::from_fn(|j| &columns[j][r])));
                store_positions(&rows, &mut scratch.inputs, [s.c, channel], width, first);
            }
        }
    }
}

/// The block's tiles in groups of [`LANES`] (the last one shorter), each with the slot of its
/// first tile.
#[inline(always)]
fn groups(origins: &[Origin]) -> impl Iterator<Item = (usize, &[Origin])> {
    origins
        .chunks(LANES)
        .enumerate()
        .map(|(index, group)| (index * LANES, group))
}

/// Writes a group's 36 transformed values per lane to `buffer[position][channel][slot]`
/// (`channels` rows per position, `width` slots per row, the group's from `first`).
#[inline(always)]
fn store_positions(
    rows: &[[Lanes; PATCH]; PATCH],
    buffer: &mut [f32],
    [channels, channel]: [usize; 2],
    width: usize,
    first: usize,
) {
    for (r, row) in rows.iter().enumerate() {
        for (q, values) in row.iter().enumerate() {
            let offset = ((r * PATCH + q) * channels + channel) * width + first;
            buffer[offset..offset + LANES].copy_from_slice(values);
        }
    }
}

/// Hands `set(r, j, value)` the pixels of the 6×6 input patch that output pixels
/// `(row..row + 4, column..column + 4)` read and that lie inside the input (the rest are the
/// padding's zeros).
#[inline(always)]
fn read_patch(
    plane: &[f32],
    s: &Shape,
    (row, column): (usize, usize),
    mut set: impl FnMut(usize, usize, f32),
) {
    // Input column of the patch's first column, and the part of the patch inside the input.
    let first = column as isize - s.pad[1] as isize;
    let start = (-first).max(0) as usize;
    let end = (s.w as isize - first).clamp(0, PATCH as isize) as usize;
    if start >= end {
        return;
    }
    for r in 0..PATCH {
        let Some(input_row) = (row + r).checked_sub(s.pad[0]).filter(|&ih| ih < s.h) else {
            continue;
        };
        let offset = input_row * s.w + (first + start as isize) as usize;
        for (j, &value) in plane[offset..][..end - start].iter().enumerate() {
            set(r, start + j, value);
        }
    }
}

with_simd! {
    /// `A·dy·Aᵀ` for the 4×4 output-gradient tile of every tile of the block and every output
    /// channel, into `products[position][channel][slot]` (zeros past the output's edge).
    fn transform_output_grads(dy: &[f32], s: &Shape, scratch: &mut Scratch) {
        let width = scratch.width();
        scratch.products.resize(POSITIONS * s.co * width, 0.0);
        let plane = s.ho * s.wo;
        for channel in 0..s.co {
            for (first, group) in groups(&scratch.origins) {
                let mut tile = [[[0.0f32; LANES]; TILE]; TILE];
                for (lane, &(image, row, column)) in group.iter().enumerate() {
                    let source = &dy[(image * s.co + channel) * plane..][..plane];
                    let cut = TILE.min(s.wo - column);
                    for (r, target) in tile.iter_mut().take(TILE.min(s.ho - row)).enumerate() {
                        let values = &source[(row + r) * s.wo + column..][..cut];
                        for (k, &value) in values.iter().enumerate() {
                            target[k][lane] = value;
                        }
                    }
                }
                let columns: [[Lanes; PATCH]; TILE] =
                    std::array::from_fn(|j| gradient_rows(std::array::from_fn(|r| &tile[r][j])));
                let rows: [[Lanes; PATCH]; PATCH] = std::array::from_fn(|k| {
                    gradient_rows(std::array::from_fn(|j| &columns[j][k]))
                });
                store_positions(&rows, &mut scratch.products, [s.co, channel], width, first);
            }
        }
    }
}

/// `A·y` for four output-gradient values per lane: six values.
#[inline(always)]
fn gradient_rows(y: [&Lanes; TILE]) -> [Lanes; PATCH] {
    let mut out = [[0.0f32; LANES]; PATCH];
    for l in 0..LANES {
        let (y0, y1, y2, y3) = (y[0][l], y[1][l], y[2][l], y[3][l]);
        let (even, odd) = (y0 + y2, y1 + y3);
        let (even_far, odd_far) = (y0 + 4.0 * y2, 2.0 * y1 + 8.0 * y3);
        out[0][l] = y0;
        out[1][l] = even + odd;
        out[2][l] = even - odd;
        out[3][l] = even_far + odd_far;
        out[4][l] = even_far - odd_far;
        out[5][l] = y3;
    }
    out
}

/// `sums[p] (co × c) += products[p] (co × slots) · inputs[p]ᵀ (slots × c)` for every position.
fn add_products(scratch: &Scratch, s: &Shape, sums: &mut [f32]) {
    let (c, co, width) = (s.c, s.co, scratch.width());
    for position in 0..POSITIONS {
        let lhs = &scratch.products[position * co * width..][..co * width];
        let rhs = &scratch.inputs[position * c * width..][..c * width];
        let dst = &mut sums[position * co * c..][..co * c];
        // SAFETY: `dst` is co × c, `lhs` co × width (row-major) and `rhs` read as the
        // transpose of its c × width rows, each exactly as long as its slice.
        unsafe {
            serial_product(
                [co, c, width],
                (dst.as_mut_ptr(), [c, 1], true),
                (lhs.as_ptr(), [width, 1]),
                (rhs.as_ptr(), [1, width]),
            )
        }
    }
}

/// `Gᵀ·u·G` for every channel pair's 6×6 sums (`[position][co][c]`): the `[co, c, 3, 3]`
/// weight gradient.
fn kernel_gradients(sums: &[f32], co: usize, c: usize) -> Vec<f32> {
    let fold = |u: [f32; PATCH]| {
        [
            u[0] / 4.0 - (u[1] + u[2]) / 6.0 + (u[3] + u[4]) / 24.0,
            (u[2] - u[1]) / 6.0 + (u[3] - u[4]) / 12.0,
            -(u[1] + u[2]) / 6.0 + (u[3] + u[4]) / 6.0 + u[5],
        ]
    };
    let mut gradient = vec![0.0f32; co * c * 9];
    gradient
        .par_chunks_mut(c * 9)
        .enumerate()
        .for_each(|(o, kernels)| {
            for (i, kernel) in kernels.chunks_exact_mut(9).enumerate() {
                let u = |r: usize, q: usize| sums[((r * PATCH + q) * co + o) * c + i];
                let rows: [[f32; 3]; PATCH] =
                    std::array::from_fn(|r| fold(std::array::from_fn(|q| u(r, q))));
                for j in 0..3 {
                    let column = fold(std::array::from_fn(|r| rows[r][j]));
                    for (r, value) in column.into_iter().enumerate() {
                        kernel[r * 3 + j] = value;
                    }
                }
            }
        });
    gradient
}

/// Each position's product of the block: `products[p] (co × slots) = kernels[p] (co × c) ·
/// inputs[p] (c × slots)`.
fn multiply(kernels: &[f32], s: &Shape, scratch: &mut Scratch) {
    let (c, co, width) = (s.c, s.co, scratch.width());
    scratch.products.resize(POSITIONS * co * width, 0.0);
    for position in 0..POSITIONS {
        let lhs = &kernels[position * co * c..][..co * c];
        let rhs = &scratch.inputs[position * c * width..][..c * width];
        let dst = &mut scratch.products[position * co * width..][..co * width];
        // SAFETY: `dst` is co × width, `lhs` co × c and `rhs` c × width, each row-major and
        // exactly as long as its slice.
        unsafe {
            serial_product(
                [co, width, c],
                (dst.as_mut_ptr(), [width, 1], false),
                (lhs.as_ptr(), [c, 1]),
                (rhs.as_ptr(), [width, 1]),
            )
        }
    }
}

/// `Aᵀ·m·A` for every output channel and tile of the block, a group of [`LANES`] tiles at a
/// time, written to the output pixels inside `[ho, wo]`.
///
/// # Safety
/// `y` must point at the `[n, co, ho, wo]` output, and nothing else may write these tiles'
/// pixels meanwhile.
unsafe fn restore(scratch: &Scratch, s: &Shape, y: *mut f32) {
    restore_at(scratch, s, y as usize)
}

with_simd! {
    /// [`restore`] with the output's address as a number, for [`with_simd!`]; only
    /// [`restore`] calls it, under its contract.
    fn restore_at(scratch: &Scratch, s: &Shape, y: usize) {
        let y = y as *mut f32;
        let width = scratch.width();
        let plane = s.ho * s.wo;
        for channel in 0..s.co {
            for (first, group) in groups(&scratch.origins) {
                let m: [&Lanes; POSITIONS] = std::array::from_fn(|p| {
                    let offset = (p * s.co + channel) * width + first;
                    scratch.products[offset..offset + LANES].try_into().unwrap()
                });
                let columns: [[Lanes; TILE]; PATCH] = std::array::from_fn(|j| {
                    output_rows(std::array::from_fn(|r| m[r * PATCH + j]))
                });
                let rows: [[Lanes; TILE]; TILE] = std::array::from_fn(|r| {
                    output_rows(std::array::from_fn(|j| &columns[j][r]))
                });
                for (lane, &(image, row, column)) in group.iter().enumerate() {
                    let cut = TILE.min(s.wo - column);
                    for (r, values) in rows.iter().take(TILE.min(s.ho - row)).enumerate() {
                        let offset = (image * s.co + channel) * plane + (row + r) * s.wo + column;
                        for (k, value) in values.iter().take(cut).enumerate() {
                            // SAFETY: `restore`'s contract; `cut` keeps the row inside the
                            // output.
                            unsafe { *y.add(offset + k) = value[lane] };
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random value in [-1, 1).
    fn noise(seed: usize) -> f32 {
        let mut v = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        v ^= v >> 29;
        v = v.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        v ^= v >> 32;
        (v % 2_000_000) as f32 / 1_000_000.0 - 1.0
    }

    /// The convolution by its definition, in f64.
    fn direct(x: &[f32], weight: &[f32], s: &Shape) -> Vec<f32> {
        let mut y = vec![0.0f32; s.n * s.co * s.ho * s.wo];
        for image in 0..s.n {
            for o in 0..s.co {
                for oh in 0..s.ho {
                    for ow in 0..s.wo {
                        let mut total = 0.0f64;
                        for i in 0..s.c {
                            for (tap, &g) in weight[(o * s.c + i) * 9..][..9].iter().enumerate() {
                                let ih = (oh + tap / 3).checked_sub(s.pad[0]);
                                let iw = (ow + tap % 3).checked_sub(s.pad[1]);
                                if let (Some(ih), Some(iw)) = (ih, iw)
                                    && ih < s.h
                                    && iw < s.w
                                {
                                    let v = x[((image * s.c + i) * s.h + ih) * s.w + iw];
                                    total += f64::from(v) * f64::from(g);
                                }
                            }
                        }
                        y[((image * s.co + o) * s.ho + oh) * s.wo + ow] = total as f32;
                    }
                }
            }
        }
        y
    }

    fn inputs(s: &Shape, seed: usize) -> (Vec<f32>, Vec<f32>) {
        let x = (0..s.n * s.c * s.h * s.w)
            .map(|k| noise(seed + k))
            .collect();
        let w = (0..s.co * s.c * 9)
            .map(|k| noise(seed + 7_919 * k + 1))
            .collect();
        (x, w)
    }

    fn shape(n: usize, c: usize, co: usize, [h, w]: [usize; 2], pad: [usize; 2]) -> Shape {
        let out = |size: usize, pad: usize| size + 2 * pad - 2;
        Shape {
            n,
            c,
            h,
            w,
            co,
            ho: out(h, pad[0]),
            wo: out(w, pad[1]),
            pad,
        }
    }

    /// Hand-computed: one channel, a 4×4 input of ones, a kernel of ones and no padding give
    /// a 2×2 output of nines; with one pixel of padding the corners see 4 taps, edges 6.
    #[test]
    fn ones_by_hand() {
        let valid = shape(1, 1, 1, [4, 4], [0, 0]);
        assert_eq!(forward(&[1.0; 16], &[1.0; 9], &valid), vec![9.0; 4]);
        let padded = shape(1, 1, 1, [3, 3], [1, 1]);
        let y = forward(&[1.0; 9], &[1.0; 9], &padded);
        let expected = [4.0, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0];
        for (got, want) in y.iter().zip(expected) {
            assert!((got - want).abs() < 1e-5, "{y:?}");
        }
    }

    /// Against the definition: ResNet's padding of one, none, uneven sizes whose last tiles
    /// are cut off, several blocks per thread.
    #[test]
    fn matches_the_direct_convolution() {
        for (s, seed) in [
            (shape(2, 16, 24, [14, 14], [1, 1]), 1),
            (shape(3, 5, 7, [11, 17], [1, 1]), 2),
            (shape(1, 3, 2, [9, 10], [0, 0]), 3),
            (shape(2, 4, 3, [7, 6], [2, 1]), 4),
            (shape(5, 20, 18, [30, 29], [1, 1]), 5),
        ] {
            let (x, w) = inputs(&s, seed);
            let reference = direct(&x, &w, &s);
            let ours = forward(&x, &w, &s);
            crate::testing::assert_close(ours, reference, 1e-5, &format!("{s:?}"));
        }
    }

    /// The input gradient against the definition: `dx[i] = Σ dy[o] · w[o, i]` over every output
    /// pixel and tap that read input pixel `i`.
    #[test]
    fn input_gradient_matches_the_definition() {
        for (s, seed) in [
            (shape(2, 6, 5, [13, 9], [1, 1]), 11),
            (shape(1, 3, 4, [8, 11], [0, 0]), 12),
        ] {
            let (_, w) = inputs(&s, seed);
            let dy: Vec<f32> = (0..s.n * s.co * s.ho * s.wo)
                .map(|k| noise(seed * 1_000 + k))
                .collect();
            let mut reference = vec![0.0f64; s.n * s.c * s.h * s.w];
            for image in 0..s.n {
                for o in 0..s.co {
                    for oh in 0..s.ho {
                        for ow in 0..s.wo {
                            let g = f64::from(dy[((image * s.co + o) * s.ho + oh) * s.wo + ow]);
                            for i in 0..s.c {
                                for tap in 0..9 {
                                    let ih = (oh + tap / 3).checked_sub(s.pad[0]);
                                    let iw = (ow + tap % 3).checked_sub(s.pad[1]);
                                    if let (Some(ih), Some(iw)) = (ih, iw)
                                        && ih < s.h
                                        && iw < s.w
                                    {
                                        reference[((image * s.c + i) * s.h + ih) * s.w + iw] +=
                                            g * f64::from(w[(o * s.c + i) * 9 + tap]);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let reference = reference.into_iter().map(|v| v as f32).collect();
            let ours = input_gradient(&dy, &w, &s);
            crate::testing::assert_close(ours, reference, 1e-5, &format!("{s:?}"));
        }
    }

    /// The weight gradient against the definition: `dw[o, i, tap] = Σ dy[o] · x[i]` over every
    /// output pixel, at the input pixel that tap read.
    #[test]
    fn weight_gradient_matches_the_definition() {
        for (s, seed) in [
            (shape(2, 6, 5, [13, 9], [1, 1]), 21),
            (shape(1, 3, 4, [8, 11], [0, 0]), 22),
            (shape(3, 17, 16, [15, 14], [1, 1]), 23),
        ] {
            let (x, _) = inputs(&s, seed);
            let dy: Vec<f32> = (0..s.n * s.co * s.ho * s.wo)
                .map(|k| noise(seed * 1_000 + k))
                .collect();
            let mut reference = vec![0.0f64; s.co * s.c * 9];
            for image in 0..s.n {
                for o in 0..s.co {
                    for oh in 0..s.ho {
                        for ow in 0..s.wo {
                            let g = f64::from(dy[((image * s.co + o) * s.ho + oh) * s.wo + ow]);
                            for i in 0..s.c {
                                for tap in 0..9 {
                                    let ih = (oh + tap / 3).checked_sub(s.pad[0]);
                                    let iw = (ow + tap % 3).checked_sub(s.pad[1]);
                                    if let (Some(ih), Some(iw)) = (ih, iw)
                                        && ih < s.h
                                        && iw < s.w
                                    {
                                        reference[(o * s.c + i) * 9 + tap] += g * f64::from(
                                            x[((image * s.c + i) * s.h + ih) * s.w + iw],
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let reference = reference.into_iter().map(|v| v as f32).collect();
            let ours = weight_gradient(&x, &dy, &s);
            crate::testing::assert_close(ours, reference, 1e-5, &format!("{s:?}"));
        }
    }

    /// Which shapes take this path: ResNet's 3×3 layers on planes of 14 pixels and up.
    #[test]
    fn worthwhile_shapes() {
        assert!(shape(8, 64, 64, [56, 56], [1, 1]).worthwhile());
        assert!(shape(8, 256, 256, [14, 14], [1, 1]).worthwhile());
        assert!(!shape(8, 512, 512, [7, 7], [1, 1]).worthwhile(), "7x7");
        assert!(
            !shape(8, 3, 64, [56, 56], [1, 1]).worthwhile(),
            "3 channels"
        );
    }
}
