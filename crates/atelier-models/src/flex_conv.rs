//! Dense and depthwise convolutions on the flex CPU backend: dense ones as `im2col` plus one
//! matrix product per chunk of images, forward and backward; depthwise ones plane by plane.
//!
//! This replaces, on flex, these burn-backend 0.22 / burn-flex 0.22 paths:
//! - the weight gradient (`ModuleOps::conv2d_weight_backward`'s default, which flex keeps). For
//!   a dense convolution it runs a convolution whose batch is the input channels and whose output
//!   is the kernel: per input channel a product only `kh·kw` columns wide, in `gemm`'s narrowest
//!   kernel (a quarter of a ResNet-18 training step; see `docs/benchmarks.md`). Here it is
//!   `dW[C_out, C_in·kh·kw] = dY[C_out, N·P] · im2col(X)[N·P, C_in·kh·kw]` (P output pixels per
//!   image). For a depthwise convolution burn runs one convolution per channel; here each
//!   channel's `kh·kw` sums are computed directly, channels in parallel;
//! - the dense forward (flex's `conv2d`, which copies the input to NHWC serially, builds im2col
//!   tiles element by element in zero-filled buffers and scatters each tile's result): here
//!   `Y = W[C_out, C_in·kh·kw] · im2col(X)`, the im2col rows copied in parallel;
//! - the dense input gradient (flex's `conv_transpose2d`): here `Wᵀ · dY` followed by col2im;
//! - the depthwise forward (flex's depthwise kernel, which walks each plane tap by tap in rows
//!   as wide as the output): here each plane is copied once into zero-padded phases and every
//!   tap is one multiply-add pass over the whole plane (EfficientNet-Lite0's inference went
//!   from 34 to 51 images/s at batch 8 on 2 cores), and the depthwise input gradient, each
//!   plane's taps added straight into it.
//!
//! 3×3 stride-1 layers with at least 16 channels each way on planes of 14 pixels and up
//! (ResNet's) take Winograd's transforms instead, forward and backward ([`crate::winograd`]).
//!
//! The products go to the `gemm` crate (the one flex uses) on chunks of images whose im2col
//! buffer stays near 32 MB. The operation is a burn backend extension ([`FlexConvBackend`])
//! with a handwritten autodiff rule; the tests below check the output and the input, weight
//! and bias gradients against burn's `Conv2d`. Other dtypes, and grouped convolutions that are
//! not depthwise, keep burn's paths.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Dispatch, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

use crate::matrix::serial_product;
use crate::simd::with_simd;
use crate::winograd;

/// A convolution without bias, computed by this module where it can (see the module
/// documentation). Implemented for flex, with and without autodiff.
#[backend_extension(Flex, Autodiff)]
pub trait FlexConvBackend: burn::backend::Backend {
    /// `conv2d(x, weight)` with `options`, no bias.
    fn flex_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
}

impl FlexConvBackend for Flex {
    fn flex_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        conv_output(x, weight, options)
    }
}

impl<C: CheckpointStrategy> FlexConvBackend for Autodiff<Flex, C> {
    fn flex_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (weight, weight_node) = weight.into_parts();
        let prepared = FlexConvBackward
            .prepare::<C>([x_node, weight_node])
            .compute_bound()
            .stateful();
        match prepared {
            OpsKind::Tracked(prep) => {
                let output = conv_output(x.clone(), weight.clone(), options.clone());
                prep.finish((x, weight, options), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(conv_output(x, weight, options)),
        }
    }
}

/// The backward step: input and weight gradients.
#[derive(Debug)]
struct FlexConvBackward;

impl Backward<Flex, 2> for FlexConvBackward {
    type State = (FlexTensor, FlexTensor, ConvOptions<2>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let output_grad = grads.consume::<Flex>(&ops.node);
        let (x, weight, options) = ops.state;
        if let Some(node) = node_weight {
            let grad = weight_gradient(&x, &weight, &output_grad, &options).unwrap_or_else(|| {
                Flex::conv2d_weight_backward(
                    x.clone(),
                    weight.clone(),
                    output_grad.clone(),
                    options.clone(),
                )
            });
            grads.register::<Flex>(node.id, grad);
        }
        if let Some(node) = node_x {
            let grad = input_gradient(&x, &weight, &output_grad, &options)
                .unwrap_or_else(|| Flex::conv2d_x_backward(x, weight, output_grad, options));
            grads.register::<Flex>(node.id, grad);
        }
    }
}

/// Whether `conv` on `x` goes through [`forward`]: `x` lives on flex and the convolution is
/// dense (other than 1×1, which [`crate::pointwise`] and flex's own 1×1 path handle) or
/// depthwise.
pub(crate) fn applies(conv: &Conv2d, x: &Tensor<4>) -> bool {
    let [_, channels, ..] = x.dims();
    let [out_channels, ..] = conv.weight.dims();
    let dense = conv.groups == 1 && conv.kernel_size != [1, 1];
    let depthwise = conv.groups == channels && out_channels == channels;
    (dense || depthwise) && crate::on_flex(&x.device())
}

/// `conv` applied to `x` through [`FlexConvBackend`], plus the bias.
pub(crate) fn forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let [_, _, height, width] = x.dims();
    let options = ConvOptions::new_with_padding(
        conv.stride,
        padding_pairs(
            &conv.padding,
            [height, width],
            conv.kernel_size,
            conv.stride,
        ),
        conv.dilation,
        conv.groups,
    );
    let output = <Dispatch as FlexConvBackend>::flex_conv2d(
        x.into_dispatch(),
        conv.weight.val().into_dispatch(),
        options,
    );
    let y = Tensor::<4>::from_dispatch(output);
    match &conv.bias {
        Some(bias) => {
            let [out_channels] = bias.dims();
            y + bias.val().reshape([1, out_channels, 1, 1])
        }
        None => y,
    }
}

/// The convolution's output: dense and depthwise f32 convolutions here, the rest by flex.
fn conv_output(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
    if let Some(dense) = Dense::new(&x, &weight, &options) {
        return dense.forward();
    }
    let Some(geometry) = depthwise_geometry(&x, &weight, &options) else {
        return Flex::conv2d(x, weight, None, options);
    };
    let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
    let y = depthwise_forward(x.storage::<f32>(), weight.storage::<f32>(), &geometry);
    FlexTensor::from_data(TensorData::new(
        y,
        [geometry.n, geometry.c, geometry.ho, geometry.wo],
    ))
}

/// The input gradient of a dense or depthwise f32 convolution, or `None` for flex's own rule.
fn input_gradient(
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<FlexTensor> {
    if output_grad.dtype() != DType::F32 {
        return None;
    }
    if let Some(dense) = Dense::new(x, weight, options) {
        return Some(dense.input_gradient(output_grad));
    }
    let geometry = depthwise_geometry(x, weight, options)?;
    let (weight, output_grad) = (weight.to_contiguous(), output_grad.to_contiguous());
    let dx = depthwise_input_gradient(
        weight.storage::<f32>(),
        output_grad.storage::<f32>(),
        &geometry,
    );
    Some(FlexTensor::from_data(TensorData::new(
        dx,
        [geometry.n, geometry.c, geometry.h, geometry.w],
    )))
}

/// The geometry of a depthwise f32 convolution, or `None` for any other (the counterpart of
/// [`Dense::new`]).
fn depthwise_geometry(
    x: &FlexTensor,
    weight: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<Geometry> {
    let geometry = Geometry::new(x.layout().shape(), weight.layout().shape(), options);
    let f32s = x.dtype() == DType::F32 && weight.dtype() == DType::F32;
    (f32s && geometry.is_depthwise(weight, options)).then_some(geometry)
}

/// A dense (one group) f32 convolution's contiguous input and weights, and its geometry.
struct Dense {
    x: FlexTensor,
    weight: FlexTensor,
    geometry: Geometry,
}

impl Dense {
    fn new(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> Option<Self> {
        let f32s = x.dtype() == DType::F32 && weight.dtype() == DType::F32;
        if options.groups != 1 || !f32s {
            return None;
        }
        let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
        let geometry = Geometry::new(x.layout().shape(), weight.layout().shape(), options);
        Some(Self {
            x,
            weight,
            geometry,
        })
    }

    /// `Y[image] = W · im2col(X[image])`, or Winograd's transforms for 3×3 stride-1 layers
    /// where they pay.
    fn forward(&self) -> FlexTensor {
        let g = &self.geometry;
        if let Some(shape) = g.winograd() {
            let (x, w) = (self.x.storage::<f32>(), self.weight.storage::<f32>());
            let y = winograd::forward(x, w, &shape);
            return FlexTensor::from_data(TensorData::new(y, [g.n, g.co, g.ho, g.wo]));
        }
        if !g.tiled() {
            self.forward_chunked()
        } else {
            self.forward_tiled()
        }
    }

    /// The product for chunks of whole images: for large weight matrices, which `gemm` packs
    /// once per call.
    fn forward_chunked(&self) -> FlexTensor {
        let g = &self.geometry;
        let (x, w) = (self.x.storage::<f32>(), self.weight.storage::<f32>());
        let (depth, pixels) = (g.depth(), g.pixels());
        let mut y = vec![0.0f32; g.n * g.co * pixels];
        let (mut cols, mut out) = (Vec::new(), Vec::new());
        for images in g.chunks() {
            let width = images.len() * pixels;
            im2col(x, g, images.clone(), &mut cols);
            out.resize(g.co * width, 0.0);
            // SAFETY: `out` is co × width, `w` co × depth and `cols` depth × width, row-major.
            unsafe {
                product(
                    [g.co, width, depth],
                    (&mut out, [width, 1], false),
                    (w, [depth, 1]),
                    (&cols, [width, 1]),
                )
            };
            scatter_rows(&out, g.co, images, pixels, &mut y);
        }
        FlexTensor::from_data(TensorData::new(y, [g.n, g.co, g.ho, g.wo]))
    }

    /// The product in tiles of output pixels whose im2col block stays in a core's cache, tiles
    /// in parallel, each built and multiplied by one thread.
    fn forward_tiled(&self) -> FlexTensor {
        let g = &self.geometry;
        let pixels = g.pixels();
        // SAFETY: the tiles cover every output pixel of every image once, and `gemm` writes
        // its destination without reading it (`accumulate` is false).
        let y =
            unsafe { crate::buffer::filled(g.n * g.co * pixels, |y| self.fill_tiles(y as usize)) };
        FlexTensor::from_data(TensorData::new(y, [g.n, g.co, g.ho, g.wo]))
    }

    /// [`Dense::forward_tiled`]'s products into the output at `y_address`.
    fn fill_tiles(&self, y_address: usize) {
        let g = &self.geometry;
        let (x, w) = (self.x.storage::<f32>(), self.weight.storage::<f32>());
        let (depth, pixels) = (g.depth(), g.pixels());
        (0..g.tiles())
            .into_par_iter()
            .for_each_init(Vec::new, |cols, tile| {
                let (image, span) = g.tile(tile);
                im2col_tile(x, g, image, span.clone(), cols);
                // SAFETY: the tile's output, columns `span` of image `image`'s co × pixels block of
                // `y`, is written by this item alone; `w` is co × depth and `cols` depth × width.
                unsafe {
                    serial_product(
                        [g.co, span.len(), depth],
                        (
                            (y_address as *mut f32).add(image * g.co * pixels + span.start),
                            [pixels, 1],
                            false,
                        ),
                        (w.as_ptr(), [depth, 1]),
                        (cols.as_ptr(), [span.len(), 1]),
                    )
                };
            });
    }

    /// `dX = col2im(Wᵀ · dY)`.
    fn input_gradient(&self, output_grad: &FlexTensor) -> FlexTensor {
        let g = &self.geometry;
        let output_grad = output_grad.to_contiguous();
        let dy = output_grad.storage::<f32>();
        let dx = if let Some(shape) = g.winograd() {
            winograd::input_gradient(dy, self.weight.storage::<f32>(), &shape)
        } else if g.tiled() && g.n >= rayon::current_num_threads() {
            self.input_gradient_tiled(dy)
        } else {
            self.input_gradient_chunked(dy)
        };
        FlexTensor::from_data(TensorData::new(dx, [g.n, g.c, g.h, g.w]))
    }

    /// Images in parallel, each in tiles of output pixels whose columns stay in cache.
    fn input_gradient_tiled(&self, dy: &[f32]) -> Vec<f32> {
        let g = &self.geometry;
        let w = self.weight.storage::<f32>();
        let (depth, pixels, plane) = (g.depth(), g.pixels(), g.c * g.h * g.w);
        let mut dx = written_zeros(g.n * plane);
        let per_image = g.tiles() / g.n.max(1);
        dx.par_chunks_mut(plane)
            .enumerate()
            .for_each_init(Vec::new, |cols, (image, dx_image)| {
                for tile in image * per_image..(image + 1) * per_image {
                    let (_, span) = g.tile(tile);
                    cols.resize(depth * span.len(), 0.0);
                    // SAFETY: `cols` is depth × width, `w` read as its transpose and the
                    // image's output gradient as co × width with row stride `pixels`.
                    unsafe {
                        serial_product(
                            [depth, span.len(), g.co],
                            (cols.as_mut_ptr(), [span.len(), 1], false),
                            (w.as_ptr(), [1, depth]),
                            (
                                dy[image * g.co * pixels + span.start..].as_ptr(),
                                [pixels, 1],
                            ),
                        )
                    };
                    for (tap, row) in cols.chunks(span.len()).enumerate() {
                        col2im_span(dx_image, g, tap, span.clone(), row);
                    }
                }
            });
        dx
    }

    /// A chunk of images per product, the columns of the whole chunk at once.
    fn input_gradient_chunked(&self, dy: &[f32]) -> Vec<f32> {
        let g = &self.geometry;
        let w = self.weight.storage::<f32>();
        let (depth, pixels) = (g.depth(), g.pixels());
        let mut dx = written_zeros(g.n * g.c * g.h * g.w);
        let (mut rows, mut cols) = (Vec::new(), Vec::new());
        for images in g.chunks() {
            let width = images.len() * pixels;
            gather_output_grad(dy, g, images.clone(), &mut rows);
            cols.resize(depth * width, 0.0);
            // SAFETY: `cols` is depth × width, `w` read as its transpose (depth × co, column
            // stride depth) and `rows` co × width, row-major.
            unsafe {
                product(
                    [depth, width, g.co],
                    (&mut cols, [width, 1], false),
                    (w, [1, depth]),
                    (&rows, [width, 1]),
                )
            };
            col2im(&cols, g, images, &mut dx);
        }
        dx
    }
}

/// Columns of `dst` per single-threaded `gemm` call in [`product`].
const PRODUCT_TILE: usize = 256;

/// `dst[m × n] (+)= lhs[m × k] · rhs[k × n]` with `gemm`. Each operand comes with its
/// `[row, column]` strides; `accumulate` adds to `dst` instead of overwriting it.
///
/// The columns of `dst` are split into equal tiles of at most [`PRODUCT_TILE`], a whole number
/// per thread, one single-threaded `gemm` call each, spread over rayon's threads: on 2 cores that ran 1.4× as fast as one call
/// with gemm's own rayon parallelism (147 against 103 GFLOP/s for ResNet's first 3×3 layer,
/// m = 64, n = 12 544, k = 576).
///
/// # Safety
/// The strides must keep every index of the three matrices inside their slices.
unsafe fn product(
    [m, n, k]: [usize; 3],
    (dst, [dst_rs, dst_cs], accumulate): (&mut [f32], [usize; 2], bool),
    (lhs, [lhs_rs, lhs_cs]): (&[f32], [usize; 2]),
    (rhs, [rhs_rs, rhs_cs]): (&[f32], [usize; 2]),
) {
    assert!((m - 1) * dst_rs + (n - 1) * dst_cs < dst.len());
    assert!((m - 1) * lhs_rs + (k - 1) * lhs_cs < lhs.len());
    assert!((k - 1) * rhs_rs + (n - 1) * rhs_cs < rhs.len());
    // Addresses, so that the closure is `Send`; each tile writes its own columns of `dst`.
    let (dst, lhs, rhs) = (
        dst.as_mut_ptr() as usize,
        lhs.as_ptr() as usize,
        rhs.as_ptr() as usize,
    );
    // A whole number of tiles per thread, each at most PRODUCT_TILE columns wide.
    let threads = rayon::current_num_threads().max(1);
    let width = n.div_ceil(n.div_ceil(PRODUCT_TILE).div_ceil(threads) * threads);
    (0..n.div_ceil(width)).into_par_iter().for_each(|tile| {
        let first = tile * width;
        let columns = width.min(n - first);
        // SAFETY: the asserts above keep every tile inside the slices, and tiles write
        // disjoint columns of `dst`.
        unsafe {
            serial_product(
                [m, columns, k],
                (
                    (dst as *mut f32).add(first * dst_cs),
                    [dst_rs, dst_cs],
                    accumulate,
                ),
                (lhs as *const f32, [lhs_rs, lhs_cs]),
                ((rhs as *const f32).add(first * rhs_cs), [rhs_rs, rhs_cs]),
            )
        }
    });
}

/// Copies `rows[channel][slot·P + p]` (a chunk's product) to `y[image][channel][p]`.
fn scatter_rows(
    rows: &[f32],
    channels: usize,
    images: std::ops::Range<usize>,
    pixels: usize,
    y: &mut [f32],
) {
    let width = images.len() * pixels;
    let first = images.start;
    y[first * channels * pixels..images.end * channels * pixels]
        .par_chunks_mut(pixels)
        .enumerate()
        .for_each(|(plane, target)| {
            let (slot, channel) = (plane / channels, plane % channels);
            target.copy_from_slice(&rows[channel * width + slot * pixels..][..pixels]);
        });
}

/// `dX[image][ci][ih][iw] += cols[(ci·kh + i)·kw + j][slot·P + oh·wo + ow]` for every tap that
/// read that pixel: the inverse of [`im2col`], planes in parallel.
fn col2im(cols: &[f32], g: &Geometry, images: std::ops::Range<usize>, dx: &mut [f32]) {
    let (plane_size, pixels) = (g.h * g.w, g.pixels());
    let width = images.len() * pixels;
    let taps = g.kh * g.kw;
    dx[images.start * g.c * plane_size..images.end * g.c * plane_size]
        .par_chunks_mut(plane_size)
        .enumerate()
        .for_each(|(plane_index, plane)| {
            let (slot, ci) = (plane_index / g.c, plane_index % g.c);
            for tap in 0..taps {
                let (i, j) = (tap / g.kw, tap % g.kw);
                let (first, end, first_column) = g.column_span(j);
                let row = &cols[(ci * taps + tap) * width + slot * pixels..][..pixels];
                for (oh, ih) in g.rows_read(i) {
                    let source = &row[oh * g.wo..][first..end];
                    let target = &mut plane[ih * g.w..][..g.w];
                    add_scaled(target, first_column, g.stride[1], source, 1.0);
                }
            }
        });
}

/// `n` zeros, written rather than allocated zeroed, for buffers that are added to. `vec![0.0;
/// n]` takes fresh zero pages from the kernel, mapped to the shared zero page on the first
/// read; the first write after that is a copy-on-write fault that flushes every core's TLB (on
/// 2 cores that cost a depthwise layer's backward pass two thirds of its time).
pub(crate) fn written_zeros(n: usize) -> Vec<f32> {
    let mut values = Vec::with_capacity(n);
    values.resize(n, 0.0);
    values
}

/// `target[first + k·stride] += scale · source[k]` for every `k`.
#[inline(always)]
fn add_scaled(target: &mut [f32], first: usize, stride: usize, source: &[f32], scale: f32) {
    if stride == 1 {
        for (t, s) in target[first..][..source.len()].iter_mut().zip(source) {
            *t += scale * s;
        }
    } else {
        for (k, s) in source.iter().enumerate() {
            target[first + k * stride] += scale * s;
        }
    }
}

/// `(begin, end)` padding of each spatial axis, as burn's `Conv2d` computes it (`Same` puts the
/// odd pixel at the end, as TensorFlow does).
fn padding_pairs(
    padding: &PaddingConfig2d,
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
) -> [(usize, usize); 2] {
    let same = |axis: usize| {
        let out = size[axis].div_ceil(stride[axis]);
        let needed =
            (out.saturating_sub(1) * stride[axis] + kernel[axis]).saturating_sub(size[axis]);
        (needed / 2, needed - needed / 2)
    };
    match padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Same => [same(0), same(1)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(*top, *bottom), (*left, *right)],
    }
}

/// The sizes of one convolution: input `[n, c, h, w]`, output `[n, co, ho, wo]`, kernel
/// `kh × kw`, stride, begin padding and dilation per axis.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    co: usize,
    ho: usize,
    wo: usize,
    kh: usize,
    kw: usize,
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
}

impl Geometry {
    fn new(x: &[usize], weight: &[usize], options: &ConvOptions<2>) -> Self {
        let out = |axis: usize, size: usize, kernel: usize| {
            let (begin, end) = options.padding[axis];
            let reach = options.dilation[axis] * (kernel - 1) + 1;
            (size + begin + end).saturating_sub(reach) / options.stride[axis] + 1
        };
        Self {
            n: x[0],
            c: x[1],
            h: x[2],
            w: x[3],
            co: weight[0],
            kh: weight[2],
            kw: weight[3],
            ho: out(0, x[2], weight[2]),
            wo: out(1, x[3], weight[3]),
            stride: options.stride,
            pad: options.padding_begin(),
            dilation: options.dilation,
        }
    }

    /// The convolution as a [`winograd::Shape`], if it is one that [`winograd`] computes
    /// faster: 3×3, stride 1, no dilation, and [`winograd::Shape::worthwhile`].
    fn winograd(&self) -> Option<winograd::Shape> {
        let plain =
            [self.kh, self.kw] == [3, 3] && self.stride == [1, 1] && self.dilation == [1, 1];
        let shape = winograd::Shape {
            n: self.n,
            c: self.c,
            h: self.h,
            w: self.w,
            co: self.co,
            ho: self.ho,
            wo: self.wo,
            pad: self.pad,
        };
        (plain && shape.worthwhile()).then_some(shape)
    }

    /// Whether the convolution has one group per input channel and one output channel per
    /// group.
    fn is_depthwise(&self, weight: &FlexTensor, options: &ConvOptions<2>) -> bool {
        options.groups == self.c && self.co == self.c && weight.layout().shape()[1] == 1
    }

    /// Output pixels per image.
    fn pixels(&self) -> usize {
        self.ho * self.wo
    }

    /// Rows of the im2col matrix: one per input channel and kernel tap.
    fn depth(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// The batch in chunks whose im2col buffer holds about [`CHUNK_VALUES`] values (at least
    /// one image each).
    fn chunks(&self) -> impl Iterator<Item = std::ops::Range<usize>> {
        let chunk = (CHUNK_VALUES / (self.depth() * self.pixels()).max(1)).clamp(1, self.n.max(1));
        let n = self.n;
        (0..n)
            .step_by(chunk)
            .map(move |first| first..(first + chunk).min(n))
    }

    /// Whether the products go tile by tile (each tile's im2col block built and multiplied by
    /// one thread) rather than a chunk of whole images at a time: not for weight matrices above
    /// [`LARGE_WEIGHTS`], which `gemm` would pack again for every tile.
    fn tiled(&self) -> bool {
        self.co * self.depth() <= LARGE_WEIGHTS
    }

    /// Output pixels per tile: an im2col block of about [`TILE_VALUES`] values.
    fn tile_pixels(&self) -> usize {
        (TILE_VALUES / self.depth())
            .clamp(16, self.pixels().max(16))
            .min(self.pixels())
    }

    /// Tiles over the batch (the same number in every image).
    fn tiles(&self) -> usize {
        self.n * self.pixels().div_ceil(self.tile_pixels())
    }

    /// Tile `index`'s image and output pixels.
    fn tile(&self, index: usize) -> (usize, std::ops::Range<usize>) {
        let (size, per_image) = (
            self.tile_pixels(),
            self.pixels().div_ceil(self.tile_pixels()),
        );
        let first = index % per_image * size;
        (index / per_image, first..(first + size).min(self.pixels()))
    }

    /// The output rows that the pixels of `span` cover, as `(oh, first ow, end ow, offset of
    /// the row's first pixel in span)`.
    fn segments(
        &self,
        span: std::ops::Range<usize>,
    ) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
        let rows = span.start / self.wo..span.end.div_ceil(self.wo);
        rows.map(move |oh| {
            let start = span.start.max(oh * self.wo);
            let end = span.end.min((oh + 1) * self.wo);
            (
                oh,
                start - oh * self.wo,
                end - oh * self.wo,
                start - span.start,
            )
        })
    }

    /// The input row read by output row `oh` at kernel row `i`, if it is inside the image.
    fn input_row(&self, oh: usize, i: usize) -> Option<usize> {
        (oh * self.stride[0] + i * self.dilation[0])
            .checked_sub(self.pad[0])
            .filter(|&row| row < self.h)
    }

    /// `(oh, ih)` for every output row whose input row at kernel row `i` is inside the image.
    fn rows_read(&self, i: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.ho).filter_map(move |oh| self.input_row(oh, i).map(|ih| (oh, ih)))
    }

    /// The output columns `[first, end)` whose input column at kernel column `j` is inside the
    /// image, and the input column the first of them reads.
    fn column_span(&self, j: usize) -> (usize, usize, usize) {
        let [_, sw] = self.stride;
        let offset = j * self.dilation[1];
        let pad = self.pad[1];
        // First ow with ow·sw + offset ≥ pad; end: first ow with ow·sw + offset − pad ≥ w.
        let first = pad.saturating_sub(offset).div_ceil(sw).min(self.wo);
        let end = (self.w + pad)
            .saturating_sub(offset)
            .div_ceil(sw)
            .clamp(first, self.wo);
        (first, end, (first * sw + offset).saturating_sub(pad))
    }
}

/// The weight gradient of a dense or depthwise f32 convolution, or `None` where burn's own
/// rule must run (another dtype, a grouped convolution that is not depthwise).
fn weight_gradient(
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<FlexTensor> {
    if x.dtype() != DType::F32 || output_grad.dtype() != DType::F32 {
        return None;
    }
    let weight_shape = weight.layout().shape().to_vec();
    let (x, output_grad) = (x.to_contiguous(), output_grad.to_contiguous());
    let geometry = Geometry::new(x.layout().shape(), &weight_shape, options);
    let (x, dy) = (x.storage::<f32>(), output_grad.storage::<f32>());
    let values = if let Some(shape) = geometry.winograd().filter(|_| options.groups == 1) {
        winograd::weight_gradient(x, dy, &shape)
    } else if options.groups == 1 {
        dense_weight_gradient(x, dy, &geometry)
    } else if geometry.is_depthwise(weight, options) {
        depthwise_weight_gradient(x, dy, &geometry)
    } else {
        return None;
    };
    Some(FlexTensor::from_data(TensorData::new(values, weight_shape)))
}

/// Weight matrices above this many values (4 MB) take whole-image chunks in the forward pass.
const LARGE_WEIGHTS: usize = 1 << 20;

/// The forward pass's im2col tile holds about this many values (512 KB, within a core's L2).
const TILE_VALUES: usize = 128 << 10;

/// The im2col buffer of a chunk of images holds about this many values (32 MB).
const CHUNK_VALUES: usize = 8 << 20;

/// `dW = Σ_images dY · im2col(X)ᵀ`, row-major `[co, c·kh·kw]`.
fn dense_weight_gradient(x: &[f32], dy: &[f32], g: &Geometry) -> Vec<f32> {
    if g.tiled() {
        dense_weight_gradient_tiled(x, dy, g)
    } else {
        dense_weight_gradient_chunked(x, dy, g)
    }
}

/// The tiles split into one contiguous run per thread, each run summed into its own gradient
/// (weights below [`LARGE_WEIGHTS`], so a copy per thread is small), then the runs added up.
fn dense_weight_gradient_tiled(x: &[f32], dy: &[f32], g: &Geometry) -> Vec<f32> {
    let (depth, pixels, tiles) = (g.depth(), g.pixels(), g.tiles());
    let runs = rayon::current_num_threads().clamp(1, tiles.max(1));
    let partials: Vec<Vec<f32>> = (0..runs)
        .into_par_iter()
        .map(|run| {
            let mut grad = written_zeros(g.co * depth);
            let mut cols = Vec::new();
            for tile in run * tiles / runs..(run + 1) * tiles / runs {
                let (image, span) = g.tile(tile);
                im2col_tile(x, g, image, span.clone(), &mut cols);
                // SAFETY: `grad` is co × depth; the image's output gradient is read as
                // co × width with row stride `pixels`, `cols` (depth × width) as its transpose.
                unsafe {
                    serial_product(
                        [g.co, depth, span.len()],
                        (grad.as_mut_ptr(), [depth, 1], true),
                        (
                            dy[image * g.co * pixels + span.start..].as_ptr(),
                            [pixels, 1],
                        ),
                        (cols.as_ptr(), [1, span.len()]),
                    )
                };
            }
            grad
        })
        .collect();
    let mut partials = partials.into_iter();
    let mut grad = partials
        .next()
        .unwrap_or_else(|| written_zeros(g.co * depth));
    for partial in partials {
        for (total, value) in grad.iter_mut().zip(partial) {
            *total += value;
        }
    }
    grad
}

/// `dW = Σ_chunks dY_chunk · im2col(X_chunk)ᵀ`, for large weight matrices.
fn dense_weight_gradient_chunked(x: &[f32], dy: &[f32], g: &Geometry) -> Vec<f32> {
    let depth = g.depth();
    let mut grad = vec![0.0f32; g.co * depth];
    let (mut cols, mut rows) = (Vec::new(), Vec::new());
    for (index, images) in g.chunks().enumerate() {
        let width = images.len() * g.pixels();
        im2col(x, g, images.clone(), &mut cols);
        gather_output_grad(dy, g, images, &mut rows);
        // SAFETY: `grad` is co × depth, `rows` co × width and `cols` depth × width, row-major;
        // `cols` is read as its transpose (width × depth, column stride width).
        unsafe {
            product(
                [g.co, depth, width],
                (&mut grad, [depth, 1], index > 0),
                (&rows, [width, 1]),
                (&cols, [1, width]),
            )
        };
    }
    grad
}

/// `cols[(ci·kh + i)·kw + j][slot·P + oh·wo + ow]`: the input pixel that kernel tap `(i, j)`
/// of input channel `ci` reads for output pixel `(oh, ow)` of the chunk's image `slot`, or 0 in
/// the padding. Rows in parallel.
fn im2col(x: &[f32], g: &Geometry, images: std::ops::Range<usize>, cols: &mut Vec<f32>) {
    let pixels = g.pixels();
    let width = images.len() * pixels;
    cols.resize(g.depth() * width, 0.0);
    cols.par_chunks_mut(width)
        .enumerate()
        .for_each(|(tap, row)| {
            for (slot, image) in images.clone().enumerate() {
                let target = &mut row[slot * pixels..][..pixels];
                im2col_span(x, g, image, tap, 0..pixels, target);
            }
        });
}

/// `target[p − span.start]` for the output pixels `p` of `span` of one image: the input pixel
/// that im2col row `tap` (input channel and kernel tap) reads, or 0 in the padding. Every
/// value is written once (no zero fill first).
fn im2col_span(
    x: &[f32],
    g: &Geometry,
    image: usize,
    tap: usize,
    span: std::ops::Range<usize>,
    target: &mut [f32],
) {
    let (ci, i, j) = (tap / (g.kh * g.kw), tap / g.kw % g.kh, tap % g.kw);
    let (first, end, first_column) = g.column_span(j);
    let plane = &x[(image * g.c + ci) * g.h * g.w..][..g.h * g.w];
    for (oh, start, stop, offset) in g.segments(span) {
        let out = &mut target[offset..][..stop - start];
        let Some(ih) = g.input_row(oh, i) else {
            out.fill(0.0);
            continue;
        };
        let source = &plane[ih * g.w..][..g.w];
        let (lo, hi) = (first.clamp(start, stop), end.clamp(start, stop));
        out[..lo - start].fill(0.0);
        out[hi - start..].fill(0.0);
        let inside = &mut out[lo - start..hi - start];
        let column = first_column + (lo - first) * g.stride[1];
        if g.stride[1] == 1 {
            inside.copy_from_slice(&source[column..][..inside.len()]);
        } else {
            for (k, value) in inside.iter_mut().enumerate() {
                *value = source[column + k * g.stride[1]];
            }
        }
    }
}

/// The im2col block of one tile: `depth` rows of `span.len()` values.
fn im2col_tile(
    x: &[f32],
    g: &Geometry,
    image: usize,
    span: std::ops::Range<usize>,
    cols: &mut Vec<f32>,
) {
    cols.resize(g.depth() * span.len(), 0.0);
    for (tap, row) in cols.chunks_mut(span.len()).enumerate() {
        im2col_span(x, g, image, tap, span.clone(), row);
    }
}

/// The inverse of [`im2col_span`] for one image: adds `source[p − span.start]` to the input
/// pixel that im2col row `tap` reads for output pixel `p`, in `dx_image` (`[c, h, w]`).
fn col2im_span(
    dx_image: &mut [f32],
    g: &Geometry,
    tap: usize,
    span: std::ops::Range<usize>,
    source: &[f32],
) {
    let (ci, i, j) = (tap / (g.kh * g.kw), tap / g.kw % g.kh, tap % g.kw);
    let (first, end, first_column) = g.column_span(j);
    let plane = &mut dx_image[ci * g.h * g.w..][..g.h * g.w];
    for (oh, start, stop, offset) in g.segments(span) {
        let Some(ih) = g.input_row(oh, i) else {
            continue;
        };
        let (lo, hi) = (first.clamp(start, stop), end.clamp(start, stop));
        let values = &source[offset + lo - start..offset + hi - start];
        let column = first_column + (lo - first) * g.stride[1];
        add_scaled(
            &mut plane[ih * g.w..][..g.w],
            column,
            g.stride[1],
            values,
            1.0,
        );
    }
}

/// `rows[co][image·P + p]`: the chunk's output gradient with the images side by side.
fn gather_output_grad(
    dy: &[f32],
    g: &Geometry,
    images: std::ops::Range<usize>,
    rows: &mut Vec<f32>,
) {
    let pixels = g.pixels();
    let width = images.len() * pixels;
    rows.resize(g.co * width, 0.0);
    rows.par_chunks_mut(width)
        .enumerate()
        .for_each(|(channel, row)| {
            for (slot, image) in images.clone().enumerate() {
                row[slot * pixels..][..pixels]
                    .copy_from_slice(&dy[(image * g.co + channel) * pixels..][..pixels]);
            }
        });
}

/// `dW[c][i·kw + j] = Σ_image Σ_(oh, ow) dY[image, c, oh, ow] · X[image, c, ih, iw]`, channels
/// in parallel.
fn depthwise_weight_gradient(x: &[f32], dy: &[f32], g: &Geometry) -> Vec<f32> {
    let taps = g.kh * g.kw;
    let mut grad = written_zeros(g.c * taps);
    grad.par_chunks_mut(taps)
        .enumerate()
        .for_each(|(channel, sums)| channel_tap_sums(x, dy, g, channel, sums));
    grad
}

with_simd! {
    /// Adds channel `channel`'s weight gradient, one sum per tap over every image, to `sums`.
    fn channel_tap_sums(x: &[f32], dy: &[f32], g: &Geometry, channel: usize, sums: &mut [f32]) {
        for image in 0..g.n {
            let plane = &x[(image * g.c + channel) * g.h * g.w..][..g.h * g.w];
            let out = &dy[(image * g.c + channel) * g.pixels()..][..g.pixels()];
            for (tap, sum) in sums.iter_mut().enumerate() {
                *sum += tap_sum(plane, out, g, tap / g.kw, tap % g.kw);
            }
        }
    }
}

/// `Y[image, c, oh, ow] = Σ_taps W[c, i, j] · X[image, c, ih, iw]`, planes in parallel. Each
/// plane is copied once into a zero-padded buffer split into `stride × stride` phases (rows and
/// columns by their remainder), where every tap reads one contiguous run; the output is then
/// built in that buffer's row width by one multiply-add pass per tap over the whole plane (a
/// few KB that stay in L1), and its valid columns copied out.
fn depthwise_forward(x: &[f32], w: &[f32], g: &Geometry) -> Vec<f32> {
    let shape = PhaseShape::new(g);
    let (plane_size, pixels, taps) = (g.h * g.w, g.pixels(), g.kh * g.kw);
    let offsets: Vec<usize> = (0..taps).map(|tap| shape.tap_offset(tap, g)).collect();
    let mut y = written_zeros(g.n * g.c * pixels);
    y.par_chunks_mut(pixels).enumerate().for_each_init(
        || (Vec::new(), Vec::new()),
        |(phases, sums), (plane_index, out)| {
            let channel = plane_index % g.c;
            shape.split(&x[plane_index * plane_size..][..plane_size], g, phases);
            sums.clear();
            sums.resize(g.ho * shape.width, 0.0);
            add_taps(sums, phases, &w[channel * taps..][..taps], &offsets);
            for (row, sums) in out
                .chunks_exact_mut(g.wo)
                .zip(sums.chunks_exact(shape.width))
            {
                row.copy_from_slice(&sums[..g.wo]);
            }
        },
    );
    y
}

with_simd! {
    /// `sums[k] += weights[t] · phases[offsets[t] + k]` for every tap `t`: one multiply-add
    /// pass over the plane per tap.
    fn add_taps(sums: &mut [f32], phases: &[f32], weights: &[f32], offsets: &[usize]) {
        for (&weight, &offset) in weights.iter().zip(offsets) {
            let source = &phases[offset..][..sums.len()];
            for (sum, value) in sums.iter_mut().zip(source) {
                *sum += weight * value;
            }
        }
    }
}

/// The layout of one plane's padded phases: `stride[0] × stride[1]` phases of `rows` rows of
/// `width` values, phase `(a, b)` holding padded rows `a, a + sh, …` and columns `b, b + sw, …`.
struct PhaseShape {
    rows: usize,
    width: usize,
}

impl PhaseShape {
    fn new(g: &Geometry) -> Self {
        let [sh, sw] = g.stride;
        // Every output row reads padded rows up to (ho − 1)·sh + (kh − 1)·dh; one more row
        // lets a tap's run cover the unused columns at the end of the last row.
        let reach = |out: usize, stride: usize, kernel: usize, dilation: usize| {
            (out - 1) * stride + (kernel - 1) * dilation + 1
        };
        Self {
            rows: reach(g.ho, sh, g.kh, g.dilation[0]).div_ceil(sh) + 1,
            width: reach(g.wo, sw, g.kw, g.dilation[1]).div_ceil(sw),
        }
    }

    /// Where tap `tap`'s run starts: its phase, then its row and column offset in the phase.
    fn tap_offset(&self, tap: usize, g: &Geometry) -> usize {
        let [sh, sw] = g.stride;
        let (di, dj) = (tap / g.kw * g.dilation[0], tap % g.kw * g.dilation[1]);
        let phase = di % sh * sw + dj % sw;
        phase * self.rows * self.width + di / sh * self.width + dj / sw
    }

    /// Writes `plane` (padded with zeros) into `phases` in this layout.
    fn split(&self, plane: &[f32], g: &Geometry, phases: &mut Vec<f32>) {
        let [sh, sw] = g.stride;
        let [ph, pw] = g.pad;
        phases.clear();
        phases.resize(sh * sw * self.rows * self.width, 0.0);
        for (phase, target) in phases.chunks_exact_mut(self.rows * self.width).enumerate() {
            let (a, b) = (phase / sw, phase % sw);
            for (q, row) in target.chunks_exact_mut(self.width).enumerate() {
                let Some(ih) = (q * sh + a).checked_sub(ph).filter(|&r| r < g.h) else {
                    continue;
                };
                let source = &plane[ih * g.w..][..g.w];
                // Columns t with 0 ≤ t·sw + b − pw < w.
                let first = pw.saturating_sub(b).div_ceil(sw).min(self.width);
                let end = (g.w + pw)
                    .saturating_sub(b)
                    .div_ceil(sw)
                    .clamp(first, self.width);
                let run = &mut row[first..end];
                let from = first * sw + b - pw;
                if sw == 1 {
                    run.copy_from_slice(&source[from..][..run.len()]);
                } else {
                    for (value, source) in run.iter_mut().zip(source[from..].iter().step_by(sw)) {
                        *value = *source;
                    }
                }
            }
        }
    }
}

/// `dX[image, c, ih, iw] = Σ_taps W[c, i, j] · dY[image, c, oh, ow]` over the output pixels
/// that read `(ih, iw)`; planes in parallel.
fn depthwise_input_gradient(w: &[f32], dy: &[f32], g: &Geometry) -> Vec<f32> {
    let (plane_size, pixels, taps) = (g.h * g.w, g.pixels(), g.kh * g.kw);
    let mut dx = written_zeros(g.n * g.c * plane_size);
    dx.par_chunks_mut(plane_size)
        .enumerate()
        .for_each(|(plane_index, plane)| {
            let channel = plane_index % g.c;
            let out = &dy[plane_index * pixels..][..pixels];
            plane_input_gradient(plane, out, &w[channel * taps..][..taps], g);
        });
    dx
}

with_simd! {
    /// Adds to `plane` what each of its pixels' taps (`weights`) contributed to the output
    /// gradient `out` of its channel.
    fn plane_input_gradient(plane: &mut [f32], out: &[f32], weights: &[f32], g: &Geometry) {
        for (tap, &weight) in weights.iter().enumerate() {
            let (i, j) = (tap / g.kw, tap % g.kw);
            let (first, end, first_column) = g.column_span(j);
            for (oh, ih) in g.rows_read(i) {
                let source = &out[oh * g.wo..][first..end];
                let target = &mut plane[ih * g.w..][..g.w];
                add_scaled(target, first_column, g.stride[1], source, weight);
            }
        }
    }
}

/// `Σ_(oh, ow) dY[oh, ow] · X[ih, iw]` over one image's plane for kernel tap `(i, j)`.
#[inline(always)]
fn tap_sum(plane: &[f32], out: &[f32], g: &Geometry, i: usize, j: usize) -> f32 {
    let (first, end, first_column) = g.column_span(j);
    let mut lanes = [0.0f32; 8];
    let mut total = 0.0f32;
    for (oh, ih) in g.rows_read(i) {
        let dy_row = &out[oh * g.wo..][first..end];
        let source = &plane[ih * g.w..];
        if g.stride[1] == 1 {
            let x_row = &source[first_column..][..end - first];
            let mut dy_chunks = dy_row.chunks_exact(8);
            let mut x_chunks = x_row.chunks_exact(8);
            for (a, b) in (&mut dy_chunks).zip(&mut x_chunks) {
                for lane in 0..8 {
                    lanes[lane] += a[lane] * b[lane];
                }
            }
            for (a, b) in dy_chunks.remainder().iter().zip(x_chunks.remainder()) {
                total += a * b;
            }
        } else {
            for (k, a) in dy_row.iter().enumerate() {
                total += a * source[first_column + k * g.stride[1]];
            }
        }
    }
    total + lanes.iter().sum::<f32>()
}

#[cfg(test)]
mod tests {
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;

    use super::*;

    fn assert_close(a: Tensor<4>, b: Tensor<4>, what: &str) {
        crate::testing::assert_tensors_close(a, b, 1e-4, what);
    }

    /// Output, input gradient, weight gradient and bias gradient against burn's `Conv2d`
    /// (the independent reference) for the shapes the backbones use and a few awkward ones:
    /// ResNet's 7×7 stem and 3×3 layers at strides 1 and 2, EfficientNet's `Same`-padded
    /// stride-2 convolutions (odd pixel at the end) and its 3×3 and 5×5 depthwise layers, a
    /// dilated convolution, a bias, a batch of one, weights large enough for whole-image chunks,
    /// and images large enough for many tiles that end mid-row.
    #[test]
    fn matches_burn_conv2d_forward_and_backward() {
        for (what, config, shape) in cases() {
            check_against_burn(what, config, shape);
        }
    }

    /// The shapes [`matches_burn_conv2d_forward_and_backward`] checks: name, configuration and
    /// input `[batch, height, width]`.
    fn cases() -> Vec<(&'static str, Conv2dConfig, [usize; 3])> {
        vec![
            (
                "3x3 s1",
                Conv2dConfig::new([5, 6], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
                [3, 9, 11],
            ),
            (
                "3x3 s2 + bias",
                Conv2dConfig::new([4, 7], [3, 3])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .with_bias(true),
                [2, 10, 9],
            ),
            (
                "7x7 s2 stem",
                Conv2dConfig::new([3, 8], [7, 7])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3)),
                [2, 15, 16],
            ),
            (
                "same s2",
                Conv2dConfig::new([3, 5], [3, 3])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Same),
                [2, 12, 13],
            ),
            (
                "valid dilated",
                Conv2dConfig::new([4, 3], [3, 2]).with_dilation([2, 1]),
                [2, 9, 8],
            ),
            (
                "depthwise 3x3 s1",
                Conv2dConfig::new([6, 6], [3, 3])
                    .with_groups(6)
                    .with_padding(PaddingConfig2d::Same),
                [3, 11, 21],
            ),
            (
                "depthwise 5x5 s2",
                Conv2dConfig::new([5, 5], [5, 5])
                    .with_groups(5)
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Same),
                [2, 14, 17],
            ),
            (
                "depthwise 3x3 dilated, uneven padding",
                Conv2dConfig::new([4, 4], [3, 3])
                    .with_groups(4)
                    .with_dilation([2, 1])
                    .with_padding(PaddingConfig2d::Explicit(2, 0, 1, 2)),
                [2, 10, 9],
            ),
            (
                "depthwise 3x3 s2 even size",
                Conv2dConfig::new([3, 3], [3, 3])
                    .with_groups(3)
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
                [2, 16, 16],
            ),
            (
                "batch of one",
                Conv2dConfig::new([4, 6], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
                [1, 9, 10],
            ),
            (
                "large weights, whole-image chunks",
                Conv2dConfig::new([1024, 130], [3, 3])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
                [2, 7, 6],
            ),
            (
                "3x3 s1 by Winograd, tiles cut at both edges",
                Conv2dConfig::new([16, 18], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .with_bias(true),
                [2, 17, 15],
            ),
            (
                "3x3 s1 by Winograd, same padding",
                Conv2dConfig::new([20, 16], [3, 3]).with_padding(PaddingConfig2d::Same),
                [1, 14, 19],
            ),
            (
                "many tiles",
                Conv2dConfig::new([40, 3], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
                [9, 120, 130],
            ),
        ]
    }

    /// One case of [`matches_burn_conv2d_forward_and_backward`]: output and gradients against
    /// burn's `Conv2d` on the same input and output weighting.
    fn check_against_burn(what: &str, config: Conv2dConfig, [batch, height, width]: [usize; 3]) {
        let device = Device::flex().autodiff();
        let conv = config.init(&device);
        let channels = conv.weight.dims()[1] * conv.groups;
        let input = Tensor::<4>::random(
            [batch, channels, height, width],
            Distribution::Normal(0.0, 1.0),
            &device,
        )
        .require_grad();
        let x = input.clone();
        assert!(applies(&conv, &x), "{what}");
        let ours = forward(&conv, x.clone());
        let reference = conv.forward(x);
        let weighting =
            Tensor::<4>::random(reference.dims(), Distribution::Normal(0.0, 1.0), &device);
        assert_close(ours.clone(), reference.clone(), &format!("{what}: output"));
        let ours = (ours * weighting.clone()).sum().backward();
        let reference = (reference * weighting).sum().backward();
        let grad = |grads: &_, tensor: &Tensor<4>| tensor.grad(grads).unwrap();
        let weight = conv.weight.val();
        assert_close(
            grad(&ours, &input),
            grad(&reference, &input),
            &format!("{what}: input gradient"),
        );
        assert_close(
            grad(&ours, &weight),
            grad(&reference, &weight),
            &format!("{what}: weight gradient"),
        );
        if let Some(bias) = &conv.bias {
            let [out_channels] = bias.dims();
            let of = |grads| {
                bias.val()
                    .grad(grads)
                    .unwrap()
                    .reshape([1, out_channels, 1, 1])
            };
            assert_close(of(&ours), of(&reference), &format!("{what}: bias gradient"));
        }
    }

    /// Inference (no autodiff) goes through the same kernels: Lite0's depthwise layer shapes
    /// against burn's `Conv2d`, with the bias a folded batch norm leaves.
    #[test]
    fn depthwise_inference_matches_burn() {
        let device = Device::flex();
        for (kernel, stride, size) in [(3, 1, 13), (3, 2, 12), (5, 1, 7), (5, 2, 15)] {
            let conv = Conv2dConfig::new([8, 8], [kernel, kernel])
                .with_groups(8)
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Same)
                .with_bias(true)
                .init(&device);
            let x =
                Tensor::<4>::random([3, 8, size, size], Distribution::Normal(0.0, 1.0), &device);
            assert!(applies(&conv, &x));
            let what = format!("{kernel}x{kernel} s{stride} on {size}x{size}");
            assert_close(forward(&conv, x.clone()), conv.forward(x), &what);
        }
    }

    /// Hand-computed: a 1-channel 3×3 image `1..=9`, a 2×2 kernel, no padding, and an output
    /// gradient of ones: each weight's gradient is the sum of the 2×2 window it slides over.
    #[test]
    fn weight_gradient_by_hand() {
        let device = Device::flex().autodiff();
        let conv = Conv2dConfig::new([1, 1], [2, 2])
            .with_bias(false)
            .init(&device);
        let x = Tensor::<4>::from_data(
            TensorData::new((1..=9).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 3, 3]),
            &device,
        );
        let grads = forward(&conv, x).sum().backward();
        let grad: Vec<f32> = conv
            .weight
            .val()
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        // Tap (0,0) reads 1,2,4,5; (0,1) 2,3,5,6; (1,0) 4,5,7,8; (1,1) 5,6,8,9.
        assert_eq!(grad, vec![12.0, 16.0, 24.0, 28.0]);
    }

    /// Which layers take this module's path: dense ones other than 1×1 and depthwise ones, on
    /// flex with or without autodiff, never other groupings; and which dense ones go to
    /// Winograd's transforms.
    #[test]
    fn which_convolutions_take_this_path() {
        let plain = Device::flex();
        let x = Tensor::<4>::zeros([1, 4, 5, 5], &plain);
        let dense = Conv2dConfig::new([4, 4], [3, 3]).init(&plain);
        let depthwise = Conv2dConfig::new([4, 4], [3, 3])
            .with_groups(4)
            .init(&plain);
        let pointwise = Conv2dConfig::new([4, 4], [1, 1]).init(&plain);
        assert!(applies(&dense, &x), "dense, inference");
        let geometry = |conv: &Conv2d, [n, c, h, w]: [usize; 4]| {
            let options = ConvOptions::new([1, 1], conv.kernel_size.map(|k| k / 2), [1, 1], 1);
            Geometry::new(&[n, c, h, w], &conv.weight.dims(), &options)
        };
        let wide = Conv2dConfig::new([64, 64], [3, 3]).init(&plain);
        assert!(
            geometry(&wide, [8, 64, 56, 56]).winograd().is_some(),
            "ResNet's 3x3 64"
        );
        assert!(
            geometry(&wide, [8, 64, 7, 7]).winograd().is_none(),
            "7x7 planes"
        );
        let five = Conv2dConfig::new([64, 64], [5, 5]).init(&plain);
        assert!(geometry(&five, [8, 64, 56, 56]).winograd().is_none(), "5x5");
        assert!(applies(&depthwise, &x), "depthwise, inference");
        assert!(!applies(&pointwise, &x), "1x1");
        let autodiff = Device::flex().autodiff();
        let x = Tensor::<4>::zeros([1, 4, 5, 5], &autodiff);
        let depthwise = Conv2dConfig::new([4, 4], [3, 3])
            .with_groups(4)
            .init(&autodiff);
        let grouped = Conv2dConfig::new([4, 4], [3, 3])
            .with_groups(2)
            .init(&autodiff);
        assert!(applies(&depthwise, &x), "depthwise, learning");
        assert!(!applies(&grouped, &x), "two groups of two channels");
    }
}
