//! A spatial transformer (Jaderberg et al., 2015): a small localisation network predicts one
//! affine transform per image, and the image is resampled through it, so a model can learn to
//! crop, rotate and zoom onto the dress before classifying it.
//!
//! This module owns the [`SpatialTransformer`] layer and its configuration, and the two pieces
//! usable on their own: [`affine_grid`] and [`transform`].
//!
//! Sampling semantics are PyTorch's
//! `F.grid_sample(x, F.affine_grid(theta, x.size(), align_corners=False), mode="bilinear",
//! padding_mode="zeros", align_corners=False)`: normalised coordinates -1 and 1 are the outer
//! edges of the corner pixels (not their centres), and samples that fall outside the image read
//! zeros. `tests/spatial_transformer.rs` checks outputs and gradients against PyTorch
//! (`fixtures/make_spatial_transformer_fixture.py`).
//!
//! burn's own `affine_grid_2d` uses the align_corners=true convention (it divides by
//! `size - 1`), so this module builds its grid itself. The bilinear sampling is burn's
//! `grid_sample_2d`: the CPU backend has a native kernel, and on autodiff devices burn composes it
//! from differentiable tensor ops (gather, floor, masks), so gradients reach both the images and
//! theta.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::adaptive_avg_pool2d;
use burn::tensor::ops::{GridSampleOptions, GridSamplePaddingMode, InterpolateMode};

use crate::backbone::ConfigError;

/// The affine transform that leaves an image unchanged, row-major `[2, 3]`.
const IDENTITY_THETA: [f32; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

/// Shape of a [`SpatialTransformer`]'s localisation network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpatialTransformerConfig {
    /// Output channels of each conv 3x3 + ReLU + 2x2 max-pool block; the input has 3.
    pub localization_channels: Vec<usize>,
    /// Side of the square the images are average-pooled to before the localisation network,
    /// which keeps its cost independent of the image size.
    pub localization_input: usize,
    /// Width of the hidden fully connected layer.
    pub hidden: usize,
}

impl Default for SpatialTransformerConfig {
    /// Two blocks (8 and 16 channels) on a 64x64 thumbnail, 32 hidden units.
    fn default() -> Self {
        Self {
            localization_channels: vec![8, 16],
            localization_input: 64,
            hidden: 32,
        }
    }
}

impl SpatialTransformerConfig {
    /// Checks that the configuration describes a network that can be built.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let error = |problem: String| {
            Err(ConfigError {
                model: "SpatialTransformer",
                problem,
            })
        };
        if self.localization_channels.contains(&0) {
            return error(format!(
                "localization_channels must all be positive, got {:?}",
                self.localization_channels
            ));
        }
        if self.hidden == 0 {
            return error("hidden must be positive".to_owned());
        }
        if self.localized_side() == 0 {
            return error(format!(
                "localization_input {} is too small for {} pooling blocks (each halves it); \
                 use at least {}",
                self.localization_input,
                self.localization_channels.len(),
                1usize << self.localization_channels.len()
            ));
        }
        Ok(())
    }

    /// Builds the layer; at initialisation it returns its input unchanged.
    ///
    /// # Panics
    /// When [`Self::validate`] fails; use [`Self::try_init`] to get the error instead.
    pub fn init(&self, device: &Device) -> SpatialTransformer {
        self.try_init(device)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Builds the layer, or says which field is invalid and how to fix it.
    pub fn try_init(&self, device: &Device) -> Result<SpatialTransformer, ConfigError> {
        self.validate()?;
        let inputs = std::iter::once(3).chain(self.localization_channels.iter().copied());
        let localization = inputs
            .zip(self.localization_channels.iter().copied())
            .map(|(in_channels, out_channels)| {
                LocalizationBlock::new(in_channels, out_channels, device)
            })
            .collect();
        let side = self.localized_side();
        let flat = self.localization_channels.last().copied().unwrap_or(3) * side * side;
        let mut fc_theta = LinearConfig::new(self.hidden, 6)
            .with_initializer(Initializer::Zeros)
            .init(device);
        // Zero weights make theta independent of the image at first, and the identity bias
        // makes that theta "do nothing": training starts from the untransformed image instead
        // of a random warp, as in the original paper.
        fc_theta.bias = Some(Param::from_tensor(Tensor::from_floats(
            IDENTITY_THETA,
            device,
        )));
        Ok(SpatialTransformer {
            localization,
            fc_hidden: LinearConfig::new(flat, self.hidden).init(device),
            fc_theta,
            config: self.clone(),
        })
    }

    /// Side of the localisation network's last feature map (0 when the input is too small).
    fn localized_side(&self) -> usize {
        self.localization_channels
            .iter()
            .fold(self.localization_input, |side, _| side / 2)
    }
}

/// See the module documentation. Build it with [`SpatialTransformerConfig::init`].
///
/// The layers are public so training code and tests can reach their parameters (for example
/// to give the localisation network its own learning rate).
#[derive(Module, Debug)]
pub struct SpatialTransformer {
    /// Conv 3x3 (padding 1) + ReLU + 2x2 max-pool, one per `localization_channels` entry.
    pub localization: Vec<LocalizationBlock>,
    /// Flattened features to `hidden`, followed by a ReLU.
    pub fc_hidden: Linear,
    /// `hidden` to the six entries of theta, row-major; starts at zero weights and identity bias.
    pub fc_theta: Linear,
    #[module(skip)]
    config: SpatialTransformerConfig,
}

impl SpatialTransformer {
    pub fn config(&self) -> &SpatialTransformerConfig {
        &self.config
    }

    /// Resamples each image `[batch, 3, height, width]` through its predicted transform; the
    /// output has the input's shape.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        let theta = self.theta(images.clone());
        transform(images, theta)
    }

    /// The affine transform predicted for each image, `[batch, 2, 3]`, mapping output
    /// coordinates to input coordinates in the normalised `-1..=1` frame (see [`affine_grid`]).
    pub fn theta(&self, images: Tensor<4>) -> Tensor<3> {
        let [batch, channels, _, _] = images.dims();
        assert_eq!(
            channels, 3,
            "SpatialTransformer: the localisation network takes 3-channel images, got {channels} channels"
        );
        let side = self.config.localization_input;
        let mut x = adaptive_avg_pool2d(images, [side, side]);
        for block in &self.localization {
            x = block.forward(x);
        }
        let x = x.flatten::<2>(1, 3);
        let hidden = relu(self.fc_hidden.forward(x));
        self.fc_theta.forward(hidden).reshape([batch, 2, 3])
    }
}

/// One conv 3x3 + ReLU + 2x2 max-pool stage of the localisation network.
#[derive(Module, Debug)]
pub struct LocalizationBlock {
    pub conv: Conv2d,
    pool: MaxPool2d,
}

impl LocalizationBlock {
    fn new(in_channels: usize, out_channels: usize, device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([in_channels, out_channels], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.pool.forward(relu(self.conv.forward(x)))
    }
}

/// The sampling grid of `theta` `[batch, 2, 3]` for an output of `height x width`, as
/// `[batch, height, width, 2]` holding the `(x, y)` input position of each output pixel.
///
/// Like PyTorch's `F.affine_grid(theta, size, align_corners=False)`: output pixel `(i, j)` sits
/// at `x = (2j + 1) / width - 1`, `y = (2i + 1) / height - 1` (pixel centres, with -1 and 1 on
/// the image's outer edges), and maps to `theta · (x, y, 1)`.
pub fn affine_grid(theta: Tensor<3>, height: usize, width: usize) -> Tensor<4> {
    let [batch, rows, cols] = theta.dims();
    assert!(
        rows == 2 && cols == 3,
        "affine_grid: theta must be [batch, 2, 3], got [{batch}, {rows}, {cols}]"
    );
    let device = theta.device();
    let mut base = Vec::with_capacity(height * width * 3);
    for i in 0..height {
        let y = ((2 * i + 1) as f64 / height as f64 - 1.0) as f32;
        for j in 0..width {
            let x = ((2 * j + 1) as f64 / width as f64 - 1.0) as f32;
            base.extend_from_slice(&[x, y, 1.0]);
        }
    }
    let base = Tensor::<3>::from_data(TensorData::new(base, [1, height * width, 3]), &device)
        .expand([batch, height * width, 3]);
    base.matmul(theta.swap_dims(1, 2))
        .reshape([batch, height, width, 2])
}

/// Resamples `images` `[batch, channels, height, width]` through the affine transforms `theta`
/// `[batch, 2, 3]`: bilinear, zeros outside the image, output the size of the input. This is
/// PyTorch's `F.grid_sample(images, F.affine_grid(theta, images.size(), align_corners=False),
/// mode="bilinear", padding_mode="zeros", align_corners=False)`, differentiable in both
/// arguments on autodiff devices.
pub fn transform(images: Tensor<4>, theta: Tensor<3>) -> Tensor<4> {
    let [batch, _, height, width] = images.dims();
    let theta_dims = theta.dims();
    assert_eq!(
        theta_dims,
        [batch, 2, 3],
        "transform: theta must be [batch, 2, 3] with the images' batch of {batch}"
    );
    let grid = affine_grid(theta, height, width);
    images.grid_sample_2d(
        grid,
        GridSampleOptions::new(InterpolateMode::Bilinear)
            .with_padding_mode(GridSamplePaddingMode::Zeros)
            .with_align_corners(false),
    )
}
