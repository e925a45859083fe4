//! Where the dress is in each photo of a run: training the box regressor
//! ([`crate::locator`]) and, for similarity runs, the foreground classifier
//! ([`crate::foreground`]) on the train split's stored boxes, boxing every photo with them, and
//! placing the zoomed views that models read beside the whole photo.
//!
//! A similarity model boxes a dress in two steps: the regressor places a square around the
//! dress on the whole photo's map, and a [`BoxStage`] (a regressor and a foreground classifier
//! whose boxes are averaged, [`crate::foreground::combine`]) boxes it again on the map of that
//! square (which the embedding reads anyway), where the dress fills the view and a cell covers
//! about a quarter of the area. On the whole photo the same combination gained less (see
//! [`LocatorReport`], which gives the test split's mean IoU of every piece).

use std::path::Path;

use burn::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::crop::{DetailCrop, Region, iou, to_square};
use crate::data::{Dataset, Split};
use crate::error::TrainError;
use crate::features::{self, FeatureCache, FeatureTable, View, load_rgb};
use crate::foreground::{
    CellVotes, FOREGROUND_THRESHOLD, ForegroundLocator, combine, fit_foreground,
};
use crate::input::InputConfig;
use crate::locator::{DressLocator, fit_locator};
use crate::map_fit::LocatorTraining;
use crate::progress::Observer;

/// A box regressor and a foreground classifier over the same map.
#[derive(Module, Debug)]
pub struct BoxStage {
    pub regressor: DressLocator,
    pub classifier: ForegroundLocator,
}

/// One photo's boxes from a [`BoxStage`] (fractions of the map's square).
#[derive(Debug, Clone, PartialEq)]
pub struct StageBoxes {
    pub regressed: [f32; 4],
    pub voted: [f32; 4],
    /// The mean of the two, corners in order: the stage's answer.
    pub combined: [f32; 4],
    pub votes: CellVotes,
}

impl BoxStage {
    pub fn new(channels: usize, map_size: usize, device: &Device) -> Self {
        Self {
            regressor: DressLocator::new(channels, map_size, device),
            classifier: ForegroundLocator::new(channels, device),
        }
    }

    /// The boxes of a batch of maps.
    pub fn boxes(&self, maps: Tensor<4>) -> Vec<StageBoxes> {
        let regressed = self.regressor.boxes(maps.clone());
        let votes = self.classifier.votes(maps);
        regressed
            .into_iter()
            .zip(votes)
            .map(|(regressed, votes)| {
                let voted = votes.vote(FOREGROUND_THRESHOLD);
                StageBoxes {
                    regressed,
                    voted,
                    combined: ordered(combine(regressed, voted)),
                    votes,
                }
            })
            .collect()
    }
}

/// A box with its corners in order (an untrained or confused regressor may swap them).
pub fn ordered([x0, y0, x1, y1]: [f32; 4]) -> [f32; 4] {
    [x0.min(x1), y0.min(y1), x0.max(x1), y0.max(y1)]
}

/// Trains a [`BoxStage`] on the rows `rows` of `table`, whose boxes are `targets`.
pub fn fit_box_stage(
    table: &FeatureTable,
    rows: &[usize],
    targets: &[[f32; 4]],
    training: &LocatorTraining,
    device: &Device,
) -> BoxStage {
    BoxStage {
        regressor: fit_locator(table, rows, targets, training, device),
        classifier: fit_foreground(table, rows, targets, training, device),
    }
}

/// A stage's boxes for every row of `table`.
pub fn stage_boxes(
    stage: &BoxStage,
    table: &FeatureTable,
    batch_size: usize,
    device: &Device,
) -> Vec<StageBoxes> {
    let rows: Vec<usize> = (0..table.len()).collect();
    rows.chunks(batch_size.max(1))
        .flat_map(|batch| stage.boxes(table.batch(batch, device)))
        .collect()
}

/// A box in fractions of a crop square as pixels of the photo it was cut from.
pub fn from_crop(crop_box: [f32; 4], region: Region) -> [f32; 4] {
    let side = region.side as f32;
    let (x0, y0) = (region.x0 as f32, region.y0 as f32);
    [
        x0 + crop_box[0] * side,
        y0 + crop_box[1] * side,
        x0 + crop_box[2] * side,
        y0 + crop_box[3] * side,
    ]
}

/// A box in pixels as fractions of a crop square cut from the photo.
pub fn to_crop(pixels: [f32; 4], region: Region) -> [f32; 4] {
    let side = region.side.max(1) as f32;
    let (x0, y0) = (region.x0 as f32, region.y0 as f32);
    [
        (pixels[0] - x0) / side,
        (pixels[1] - y0) / side,
        (pixels[2] - x0) / side,
        (pixels[3] - y0) / side,
    ]
}

/// Mean IoUs on the test split's boxed photos of one stage's pieces.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    pub regressor: f32,
    pub vote: f32,
    pub combined: f32,
}

/// How well the dress boxes fit the stored boxes of the test split (mean IoU over its boxed
/// images; `None` without any).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LocatorReport {
    /// Train images with a dress box (the locator learned from these).
    pub fit_images: usize,
    /// The boxes the run reports: the regressor's for facet runs, the second stage's
    /// combination for similarity runs.
    pub test_mean_iou: Option<f32>,
    /// Similarity runs: the first stage, on the whole photo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole_photo: Option<StageReport>,
    /// Similarity runs: the second stage, on the square cut around the first stage's box.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dress_crop: Option<StageReport>,
}

/// The dress boxes of a dataset's photos and what placed them.
pub struct LocatedDresses {
    pub locator: DressLocator,
    /// Per example, its box in fractions of the letterboxed square.
    pub boxes: Vec<[f32; 4]>,
    /// Per example, its decoded `(width, height)`.
    pub sizes: Vec<(u32, u32)>,
    /// Train split's photos with a stored box, and test split's.
    pub fit_rows: Vec<usize>,
    pub test_rows: Vec<usize>,
    pub report: LocatorReport,
}

impl LocatedDresses {
    /// Sets every example's `detail_regions`, one per crop, from its located box.
    pub fn place(&self, dataset: &mut Dataset, crops: &[DetailCrop]) {
        let placed = dataset
            .examples
            .iter_mut()
            .zip(&self.boxes)
            .zip(&self.sizes);
        for ((example, square), (w, h)) in placed {
            example.detail_regions = crops
                .iter()
                .map(|crop| crop.region_for(*square, *w, *h))
                .collect();
        }
    }
}

/// Trains the dress locator of a detail-view run on the whole-photo features of the train
/// split's boxed images, then sets every example's `detail_regions`, one per crop, from the
/// locator's own box (train and test alike, as tagging will). Cross-fitted fold models reuse
/// these regions, so the detail features are computed once per run.
pub fn place_detail_views(
    dataset: &mut Dataset,
    config: &TrainConfig,
    crops: &[DetailCrop],
    feature_cache: Option<&Path>,
    observer: &mut dyn Observer,
) -> Result<(DressLocator, LocatorReport), TrainError> {
    let located = locate_dresses(dataset, config, feature_cache, false, observer)?;
    located.place(dataset, crops);
    Ok((located.locator, located.report))
}

/// Trains the box regressor on the whole-photo features of the train split's boxed images and
/// boxes every example with it: train and test alike, as new photos will be. With
/// `foreground`, a foreground classifier is trained beside it and the report gives the IoUs of
/// the regressor, the cells' vote and their mean on the whole photo; the boxes stay the
/// regressor's (the second stage does better, see [`refine_in_crops`]).
pub fn locate_dresses(
    dataset: &Dataset,
    config: &TrainConfig,
    feature_cache: Option<&Path>,
    foreground: bool,
    observer: &mut dyn Observer,
) -> Result<LocatedDresses, TrainError> {
    let device = crate::device::device_for(config.device)?;
    let (_, _, table) = view_maps(
        dataset,
        config,
        View::Whole,
        feature_cache,
        &device,
        observer,
    )?;
    // Decoding (not the file header) gives the size after EXIF rotation, as training sees it.
    observer.phase("image sizes", dataset.examples.len() as u64);
    let sizes = dataset
        .examples
        .par_iter()
        .map(|e| load_rgb(&e.path).map(|rgb| rgb.dimensions()))
        .collect::<Result<Vec<_>, _>>()?;
    observer.phase_end();
    let fit_rows = boxed_rows(dataset, Split::Train);
    if fit_rows.is_empty() {
        return Err(TrainError::EmptyDataset {
            what: "train images with a dress box".into(),
            fix: "import a manifest with x0,y0,x1,y1 dress boxes, or train without detail views"
                .into(),
        });
    }
    let square_box = |i: usize| {
        let (w, h) = sizes[i];
        to_square(dataset.examples[i].dress_box.expect("boxed"), w, h)
    };
    let targets: Vec<[f32; 4]> = fit_rows.iter().map(|&i| square_box(i)).collect();
    observer.phase("dress locator", 1);
    let training = LocatorTraining::seeded(config.seed);
    let (locator, boxes, whole_photo) = if foreground {
        // Measured, not used: the cells' vote on the whole photo. The square cut around the
        // regressor's box is what the second stage and the embedding read.
        let stage = fit_box_stage(&table, &fit_rows, &targets, &training, &device);
        let boxed = stage_boxes(&stage, &table, config.batch_size, &device);
        let report = stage_report(&boxed, &boxed_rows(dataset, Split::Test), square_box);
        let boxes = boxed.iter().map(|b| b.regressed).collect();
        (stage.regressor, boxes, report)
    } else {
        let locator = fit_locator(&table, &fit_rows, &targets, &training, &device);
        let boxes = crate::locator::predict_boxes(&locator, &table, config.batch_size, &device);
        (locator, boxes, None)
    };
    observer.advance(1, None);
    observer.phase_end();
    let test_rows = boxed_rows(dataset, Split::Test);
    let report = LocatorReport {
        fit_images: fit_rows.len(),
        test_mean_iou: mean_iou(&test_rows, |i| iou(boxes[i], square_box(i))),
        whole_photo,
        dress_crop: None,
    };
    Ok(LocatedDresses {
        locator,
        boxes,
        sizes,
        fit_rows,
        test_rows,
        report,
    })
}

/// The photos of `split` with a stored dress box.
fn boxed_rows(dataset: &Dataset, split: Split) -> Vec<usize> {
    (0..dataset.examples.len())
        .filter(|&i| dataset.examples[i].split == split && dataset.examples[i].dress_box.is_some())
        .collect()
}

fn mean_iou(rows: &[usize], iou_of: impl Fn(usize) -> f32) -> Option<f32> {
    (!rows.is_empty()).then(|| rows.iter().map(|&i| iou_of(i)).sum::<f32>() / rows.len() as f32)
}

/// A stage's mean IoUs on the rows `test_rows`, against `truth` (in the stage's coordinates).
pub fn stage_report(
    boxed: &[StageBoxes],
    test_rows: &[usize],
    truth: impl Fn(usize) -> [f32; 4],
) -> Option<StageReport> {
    let of =
        |pick: fn(&StageBoxes) -> [f32; 4]| mean_iou(test_rows, |i| iou(pick(&boxed[i]), truth(i)));
    Some(StageReport {
        regressor: of(|b| b.regressed)?,
        vote: of(|b| b.voted)?,
        combined: of(|b| b.combined)?,
    })
}

/// The second stage of a similarity run: trained on the maps of the squares cut around the
/// first stage's boxes (`crop_maps`, one per example, cut at `detail_regions[0]`), it boxes
/// each dress again inside its square. Returns the stage and the report completed with the
/// stage's IoUs.
pub fn refine_in_crops(
    dataset: &Dataset,
    located: &LocatedDresses,
    crop_maps: &FeatureTable,
    training: &LocatorTraining,
    device: &Device,
) -> (BoxStage, LocatorReport, Vec<SureBox>) {
    let region = |i: usize| dataset.examples[i].detail_regions[0];
    let truth = |i: usize| to_crop(dataset.examples[i].dress_box.expect("boxed"), region(i));
    let targets: Vec<[f32; 4]> = located.fit_rows.iter().map(|&i| truth(i)).collect();
    let stage = fit_box_stage(crop_maps, &located.fit_rows, &targets, training, device);
    let boxed = stage_boxes(&stage, crop_maps, 64, device);
    let dress_crop = stage_report(&boxed, &located.test_rows, truth);
    let report = LocatorReport {
        test_mean_iou: dress_crop.map(|r| r.combined),
        dress_crop,
        ..located.report
    };
    let sure = boxed
        .iter()
        .enumerate()
        .map(|(i, b)| b.sure_box(region(i)))
        .collect();
    (stage, report, sure)
}

/// A photo's final dress box and how sure the box stage was of it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SureBox {
    /// In the photo's pixels `[x0, y0, x1, y1]`.
    pub pixels: [f32; 4],
    /// The foreground classifier's mean probability of the cells inside the box.
    pub foreground: f32,
    /// The IoU of the regressor's box with the final (combined) one.
    pub agreement: f32,
}

impl StageBoxes {
    /// The final box in the pixels of the photo the crop `region` was cut from, with how sure
    /// the stage was of it.
    pub fn sure_box(&self, region: Region) -> SureBox {
        SureBox {
            pixels: from_crop(self.combined, region),
            foreground: self.votes.foreground(self.combined),
            agreement: crate::crop::iou(ordered(self.regressed), self.combined),
        }
    }
}

/// The backbone, its input settings and the maps of `view` of every example (through the
/// feature cache when given).
pub(crate) fn view_maps(
    dataset: &Dataset,
    config: &TrainConfig,
    view: View,
    feature_cache: Option<&Path>,
    device: &Device,
    observer: &mut dyn Observer,
) -> Result<(atelier_models::AnyBackbone, InputConfig, FeatureTable), TrainError> {
    let backbone = crate::init::exclusive(|| {
        device.seed(config.seed);
        config.backbone.build(config.weights.as_deref(), device)
    })?;
    let input = InputConfig::new(
        config.image_size,
        atelier_models::Backbone::normalization(&backbone),
    );
    let cache = feature_cache
        .map(|root| FeatureCache::new(root, config, &input, false))
        .transpose()?;
    let maps = features::extract(
        &backbone,
        &dataset.examples,
        view,
        &input,
        config.feature_tap(),
        false,
        cache.as_ref(),
        device,
        observer,
    )?;
    Ok((backbone, input, maps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_coordinates_round_trip_by_hand() {
        // A 100-pixel square whose corner is at (-10, 20): pixel x 40 is half way across.
        let region = Region {
            x0: -10,
            y0: 20,
            side: 100,
        };
        assert_eq!(
            to_crop([40.0, 20.0, 90.0, 120.0], region),
            [0.5, 0.0, 1.0, 1.0]
        );
        assert_eq!(
            from_crop([0.5, 0.0, 1.0, 1.0], region),
            [40.0, 20.0, 90.0, 120.0]
        );
        assert_eq!(ordered([3.0, 4.0, 1.0, 2.0]), [1.0, 2.0, 3.0, 4.0]);
    }
}
