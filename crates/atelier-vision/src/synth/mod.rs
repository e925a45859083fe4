//! `atelier synth`: renders a synthetic, labelled data set of dress photos.
//!
//! We have no licensed product photos, so the project draws its own: a simple figure (head,
//! hair, neck, arms, legs, varied skin tones and poses) wearing a dress whose silhouette,
//! neckline, sleeve and length are shown by shape, over studio, gradient, textured or
//! cluttered backgrounds, with random framing, a small tilt, lighting and JPEG quality.
//! Occasion is shown only through colour, print, sheen and length odds (see [`design`]).
//!
//! Output of [`synthesize`] in `out_dir`:
//! - `images/NNNNNN.jpg`, one per picture;
//! - `manifest.csv`: `path,split,silhouette,neckline,sleeve,length,occasion,x0,y0,x1,y1,`
//!   `design,variant_of,varied_facet` with the (possibly noisy) labels, the dress box
//!   (half-open pixel ranges, see [`DressBox`]), the design id (`d000123`; about a third of
//!   designs appear 2-4 times) and, for a variant design, the id of the design it varies and
//!   the one facet it changes (`neckline`, `sleeve`, `length` or `silhouette`; both empty for
//!   other designs; about 18% of base designs get 1 or 2 variants, see [`design`]); `split`
//!   is left empty for the catalogue to fill;
//! - `truth.csv`: `path,silhouette,neckline,sleeve,length,occasion,flipped` with the clean
//!   labels and the `;`-separated facets whose manifest label was flipped by label noise.
//!
//! The same options always give byte-identical files: every design and picture draws from
//! its own random stream derived from the seed, and files are written in a fixed order.
//!
//! Module map: [`facets`] holds the label lists and the combinations that are never drawn
//! (mermaid only midi/maxi, ball-gown never mini, halter always sleeveless, off-shoulder
//! never sleeveless); [`design`] draws designs (long-tailed facets, occasion cues, variant
//! families) and plans which design each picture shows; `figure`, `dress`, `fabric` and
//! `background` draw the parts; `scene` composes, frames and lights one picture and measures
//! the dress box; `manifest` applies label noise and writes the CSV files; `preview` draws
//! the captioned preview sheet.

mod background;
mod canvas;
mod color;
pub mod design;
mod dress;
mod fabric;
pub mod facets;
mod figure;
mod geometry;
mod manifest;
mod preview;
mod rng;
mod scene;

pub use color::Rgb;
pub use design::{DatasetPlan, Design, Fabric, Print, Variation, plan_dataset};
pub use facets::{FACETS, Facets, Length, Neckline, Occasion, Silhouette, Sleeve};
pub use manifest::{LabelNoise, apply_label_noise};
pub use preview::{PREVIEW_EXAMPLES, write_preview_sheet};
pub use scene::{BOX_COVERAGE, DressBox, Rendering, tight_box};

use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Options of one `atelier synth` run.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthOptions {
    pub out_dir: PathBuf,
    /// Number of pictures (at least 1).
    pub count: usize,
    pub seed: u64,
    /// Picture width and height in pixels (64..=1024).
    pub size: u32,
    /// Fraction of all facet labels in the manifest replaced by another value (0..=1).
    pub label_noise: f64,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            out_dir: PathBuf::from("synth"),
            count: 2000,
            seed: 7,
            size: 256,
            label_noise: 0.0,
        }
    }
}

impl SynthOptions {
    /// Checks every option against its allowed range.
    pub fn validate(&self) -> Result<(), SynthError> {
        if self.count == 0 {
            return Err(SynthError::InvalidOption {
                option: "--count",
                value: self.count.to_string(),
                allowed: "at least 1",
            });
        }
        if !(64..=1024).contains(&self.size) {
            return Err(SynthError::InvalidOption {
                option: "--size",
                value: self.size.to_string(),
                allowed: "64 to 1024 pixels",
            });
        }
        if !(0.0..=1.0).contains(&self.label_noise) {
            return Err(SynthError::InvalidOption {
                option: "--label-noise",
                value: self.label_noise.to_string(),
                allowed: "a fraction from 0 to 1",
            });
        }
        Ok(())
    }
}

/// What a run wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthSummary {
    pub images: usize,
    pub designs: usize,
    /// Facet labels changed by label noise (over all pictures and all five facets).
    pub flipped_labels: usize,
    pub manifest: PathBuf,
    pub truth: PathBuf,
}

/// Why a run or a preview sheet failed; every message is one line naming the option or path.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// An option outside its allowed range (`option` as spelled on the command line).
    #[error("invalid {option} {value}: must be {allowed}")]
    InvalidOption {
        option: &'static str,
        value: String,
        allowed: &'static str,
    },
    /// Reading or writing a file or directory failed.
    #[error("cannot {action} {}: {source}; check the path exists and is writable", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Encoding a picture or a CSV file failed before anything was written.
    #[error("cannot encode {}: {message}", path.display())]
    Encode { path: PathBuf, message: String },
}

/// Renders one picture of `design` exactly as [`synthesize`] would for picture `index` of
/// a run with `seed` (before JPEG encoding). With `show_dress` false the same scene is drawn
/// without the dress, for checking masks against pixels.
pub fn render_picture(
    design: &Design,
    seed: u64,
    index: u64,
    size: u32,
    show_dress: bool,
) -> Rendering {
    scene::render(design, seed, index, size, show_dress)
}

/// Encodes a rendering as the JPEG [`synthesize`] writes (baseline, 4:2:0 chroma).
pub fn encode_jpeg(rendering: &Rendering, path_for_errors: &Path) -> Result<Vec<u8>, SynthError> {
    let (w, h) = rendering.image.dimensions();
    let encode_error = |message: String| SynthError::Encode {
        path: path_for_errors.to_path_buf(),
        message,
    };
    let (w, h) = (
        u16::try_from(w).map_err(|_| encode_error(format!("width {w} exceeds the JPEG limit")))?,
        u16::try_from(h).map_err(|_| encode_error(format!("height {h} exceeds the JPEG limit")))?,
    );
    // Typical pictures compress to about a quarter of a byte per pixel.
    let mut bytes = Vec::with_capacity((w as usize * h as usize) / 4);
    jpeg_encoder::Encoder::new(&mut bytes, rendering.jpeg_quality)
        .encode(rendering.image.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| encode_error(e.to_string()))?;
    Ok(bytes)
}

/// One written picture, as listed in the manifest.
struct Written {
    path: String,
    design: usize,
    variation: Option<Variation>,
    labels: [usize; 5],
    dress_box: DressBox,
}

/// Renders and writes everything; calls `on_progress(n_done)` as images finish (from worker
/// threads).
pub fn synthesize(
    opts: &SynthOptions,
    on_progress: &(dyn Fn(usize) + Sync),
) -> Result<SynthSummary, SynthError> {
    opts.validate()?;
    let images_dir = opts.out_dir.join("images");
    std::fs::create_dir_all(&images_dir).map_err(|source| SynthError::Io {
        action: "create directory",
        path: images_dir.clone(),
        source,
    })?;
    let plan = plan_dataset(opts.count, opts.seed);
    let digits = (opts.count - 1).to_string().len().max(6);
    let done = AtomicUsize::new(0);
    let written: Vec<Written> = (0..opts.count)
        .into_par_iter()
        .map(|i| {
            let design = &plan.designs[plan.shots[i]];
            let rendering = scene::render(design, opts.seed, i as u64, opts.size, true);
            let rel = format!("images/{i:0digits$}.jpg");
            let path = opts.out_dir.join(&rel);
            let jpeg = encode_jpeg(&rendering, &path)?;
            manifest::write_atomic(&path, &jpeg)?;
            on_progress(done.fetch_add(1, Ordering::Relaxed) + 1);
            Ok(Written {
                path: rel,
                design: design.id,
                variation: design.variation,
                labels: design.facets.indices(),
                dress_box: rendering.dress_box,
            })
        })
        .collect::<Result<_, SynthError>>()?;

    let truth: Vec<[usize; 5]> = written.iter().map(|w| w.labels).collect();
    let noise = apply_label_noise(&truth, opts.label_noise, opts.seed);
    let manifest_path = opts.out_dir.join("manifest.csv");
    let truth_path = opts.out_dir.join("truth.csv");
    let rows: Vec<manifest::Row<'_>> = written
        .iter()
        .enumerate()
        .map(|(i, w)| manifest::Row {
            path: &w.path,
            design: w.design,
            variation: w.variation,
            truth: w.labels,
            labels: noise.labels[i],
            flipped: noise.flipped[i],
            dress_box: w.dress_box,
        })
        .collect();
    manifest::write_manifest(&manifest_path, &rows)?;
    manifest::write_truth(&truth_path, &rows)?;
    Ok(SynthSummary {
        images: written.len(),
        designs: plan.designs.len(),
        flipped_labels: noise.flipped_count,
        manifest: manifest_path,
        truth: truth_path,
    })
}
