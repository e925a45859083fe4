//! Per-channel standardisation of cached feature maps, and folding it back into the first
//! layer that reads them.
//!
//! A frozen backbone's channels come on very different scales: EfficientNet-Lite0's stage-6
//! map has a standard deviation near 5 overall, with some channels ten times larger than
//! others. A linear head or the locator's squeeze trained by AdamW on such inputs converges
//! unevenly; on the demo catalogue (clean labels) standardising the inputs first lifted sleeve
//! test macro-F1 from 0.90 to 0.94 and the locator's test IoU from 0.84 to 0.87.
//!
//! Training therefore reads `(x - mean) / std` per channel, with statistics of the training
//! rows (features only, never labels). Because the map is standardised per channel, the first
//! layer after it (a linear layer over pooled cells, or a 1x1 convolution) absorbs the affine
//! map exactly: `W' = W * s`, `b' = b - W * (m * s)` with `s = 1 / std`. The saved model then
//! reads raw backbone features like any other, and tagging needs no extra step.

use burn::module::Param;
use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

use crate::features::FeatureTable;

/// A channel whose spread is below this is only centred: dividing by a near-zero deviation
/// would blow up rounding noise (EfficientNet maps have channels that are zero everywhere).
const MIN_STD: f64 = 1e-6;

/// Mean and reciprocal standard deviation of every channel of a feature table.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStats {
    pub mean: Vec<f32>,
    pub inv_std: Vec<f32>,
}

impl ChannelStats {
    /// Statistics over every position of the maps of `rows` (population variance).
    pub fn of(table: &FeatureTable, rows: &[usize]) -> Self {
        let [channels, height, width] = table.dims;
        let cells = height * width;
        let per_image = channels * cells;
        let mut sums = vec![0f64; channels];
        let mut squares = vec![0f64; channels];
        for &row in rows {
            let map = &table.data[row * per_image..][..per_image];
            for (c, plane) in map.chunks_exact(cells).enumerate() {
                for &v in plane {
                    sums[c] += f64::from(v);
                    squares[c] += f64::from(v) * f64::from(v);
                }
            }
        }
        let count = (rows.len() * cells).max(1) as f64;
        let (mean, inv_std) = sums
            .iter()
            .zip(&squares)
            .map(|(&sum, &square)| {
                let mean = sum / count;
                let std = (square / count - mean * mean).max(0.0).sqrt();
                let inv = if std < MIN_STD { 1.0 } else { 1.0 / std };
                (mean as f32, inv as f32)
            })
            .unzip();
        Self { mean, inv_std }
    }

    /// Standardises every map of `table` in place.
    pub fn apply(&self, table: &mut FeatureTable) {
        let [channels, height, width] = table.dims;
        assert_eq!(channels, self.mean.len(), "statistics of another table");
        let cells = height * width;
        for map in table.data.chunks_exact_mut(channels * cells) {
            for (c, plane) in map.chunks_exact_mut(cells).enumerate() {
                let (mean, inv_std) = (self.mean[c], self.inv_std[c]);
                for v in plane {
                    *v = (*v - mean) * inv_std;
                }
            }
        }
    }

    /// `linear` re-expressed for raw features, when it was trained on standardised ones and
    /// its inputs are channel-major with `inputs_per_channel` values per channel (1 for a
    /// pooled vector, `cells * cells` for a grid).
    pub fn fold_into_linear(&self, linear: Linear, inputs_per_channel: usize) -> Linear {
        let device = linear.weight.device();
        let expand = |values: &[f32]| -> Tensor<1> {
            let expanded: Vec<f32> = values
                .iter()
                .flat_map(|&v| std::iter::repeat_n(v, inputs_per_channel))
                .collect();
            Tensor::from_floats(expanded.as_slice(), &device)
        };
        let scale = expand(&self.inv_std);
        let shift = expand(&self.scaled_mean());
        let weight = linear.weight.val();
        let [inputs, outputs] = weight.dims();
        assert_eq!(inputs, scale.dims()[0], "linear layer of another width");
        // b' = b - (m * s) W, computed from the original W.
        let offset = shift
            .reshape([1, inputs])
            .matmul(weight.clone())
            .reshape([outputs]);
        let bias = match &linear.bias {
            Some(bias) => bias.val() - offset,
            None => offset.neg(),
        };
        Linear {
            weight: linear.weight.map(|w| w * scale.reshape([inputs, 1])),
            bias: Some(match linear.bias {
                Some(old) => old.map(|_| bias),
                None => Param::from_tensor(bias),
            }),
        }
    }

    /// A 1x1 convolution trained on standardised maps, re-expressed for raw ones.
    pub fn fold_into_conv1x1(&self, mut conv: Conv2d) -> Conv2d {
        let device = conv.weight.device();
        let weight = conv.weight.val();
        let [outputs, inputs, kh, kw] = weight.dims();
        assert_eq!(
            (kh, kw),
            (1, 1),
            "only a 1x1 convolution can absorb the statistics"
        );
        assert_eq!(inputs, self.mean.len(), "convolution over another table");
        let scale: Tensor<1> = Tensor::from_floats(self.inv_std.as_slice(), &device);
        let shift: Tensor<1> = Tensor::from_floats(self.scaled_mean().as_slice(), &device);
        let matrix = weight.reshape([outputs, inputs]);
        let offset = matrix
            .clone()
            .matmul(shift.reshape([inputs, 1]))
            .reshape([outputs]);
        let bias = match &conv.bias {
            Some(bias) => bias.val() - offset,
            None => offset.neg(),
        };
        conv.weight = conv.weight.map(|w| w * scale.reshape([1, inputs, 1, 1]));
        conv.bias = Some(match conv.bias {
            Some(old) => old.map(|_| bias),
            None => Param::from_tensor(bias),
        });
        conv
    }

    /// `mean * inv_std` per channel: what standardising subtracts after scaling.
    fn scaled_mean(&self) -> Vec<f32> {
        self.mean
            .iter()
            .zip(&self.inv_std)
            .map(|(m, s)| m * s)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::LinearConfig;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::module::adaptive_avg_pool2d;

    use super::*;

    /// Two images of 2 channels on a 1x2 map; channel 1 is constant (only centred).
    fn table() -> FeatureTable {
        FeatureTable {
            dims: [2, 1, 2],
            data: vec![
                1.0, 3.0, 5.0, 5.0, // image 0: channel 0 = [1, 3], channel 1 = [5, 5]
                5.0, 7.0, 5.0, 5.0, // image 1
            ],
        }
    }

    #[test]
    fn statistics_are_per_channel_over_all_positions() {
        let stats = ChannelStats::of(&table(), &[0, 1]);
        // Channel 0: values 1, 3, 5, 7: mean 4, population variance (9+1+1+9)/4 = 5.
        assert_eq!(stats.mean, vec![4.0, 5.0]);
        assert!((stats.inv_std[0] - 1.0 / 5f32.sqrt()).abs() < 1e-6);
        assert_eq!(stats.inv_std[1], 1.0);
        // Only the rows given count.
        let first = ChannelStats::of(&table(), &[0]);
        assert_eq!(first.mean, vec![2.0, 5.0]);
        assert_eq!(first.inv_std[0], 1.0);

        let mut standardized = table();
        stats.apply(&mut standardized);
        let s = 1.0 / 5f32.sqrt();
        let expected = [-3.0 * s, -s, 0.0, 0.0, s, 3.0 * s, 0.0, 0.0];
        for (got, want) in standardized.data.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    fn maps(table: &FeatureTable, device: &Device) -> Tensor<4> {
        let [c, h, w] = table.dims;
        Tensor::<1>::from_floats(table.data.as_slice(), device).reshape([table.len(), c, h, w])
    }

    fn assert_close(a: Tensor<2>, b: Tensor<2>) {
        let largest = (a - b).abs().max().into_scalar::<f32>();
        assert!(largest < 1e-5, "differs by {largest}");
    }

    #[test]
    fn folded_layers_read_raw_maps_as_the_trained_ones_read_standardized_maps() {
        let device = Device::flex();
        let raw = table();
        let stats = ChannelStats::of(&raw, &[0, 1]);
        let mut standardized = raw.clone();
        stats.apply(&mut standardized);
        let (raw, standardized) = (maps(&raw, &device), maps(&standardized, &device));

        // A grid head: 1x2 cells per channel, channel-major, with and without a bias.
        for bias in [true, false] {
            let linear = LinearConfig::new(4, 3).with_bias(bias).init(&device);
            let trained = linear.forward(standardized.clone().reshape([2, 4]));
            let folded = stats.fold_into_linear(linear, 2);
            assert_close(trained, folded.forward(raw.clone().reshape([2, 4])));
        }
        // A pooled head: one input per channel.
        let linear = LinearConfig::new(2, 3).init(&device);
        let pool = |m: Tensor<4>| adaptive_avg_pool2d(m, [1, 1]).reshape([2, 2]);
        let trained = linear.forward(pool(standardized.clone()));
        let folded = stats.fold_into_linear(linear, 1);
        assert_close(trained, folded.forward(pool(raw.clone())));
        // A 1x1 squeeze.
        let conv = Conv2dConfig::new([2, 3], [1, 1]).init(&device);
        let trained = conv.forward(standardized).reshape([2, 6]);
        let folded = stats.fold_into_conv1x1(conv);
        assert_close(trained, folded.forward(raw).reshape([2, 6]));
    }
}
