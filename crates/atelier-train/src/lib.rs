//! Training, evaluation and inference of multi-facet dress taggers: pure machine learning, with
//! no catalogue, database or async runtime in it.
//!
//! This crate owns:
//! - what a run trains on ([`data`]): facets with their label orders, labelled images, and the
//!   fit/validation/test parts;
//! - the facet network ([`model`]): optional spatial transformer, a backbone from
//!   `atelier-models`, one head per facet;
//! - the loss ([`loss`]: class-weighted, focal, masked per facet), optimisers and schedules
//!   ([`schedule`]), input preprocessing and augmentation ([`input`]), frozen-feature caching
//!   ([`features`]) and the per-channel standardisation heads train on ([`standardize`]);
//! - the run's configuration, its defaults, named recipes and validation ([`config`]);
//! - the dress locator and the zoomed detail views it places ([`locator`]), and the crop
//!   geometry of those views ([`crop`]);
//! - the training loop with checkpoints and resume ([`trainer`], [`checkpoint`]);
//! - per-class precision/recall/F1 tables and confusion matrices ([`metrics`], [`evaluate`]);
//! - model artifacts and tagging new images with them ([`artifact`], [`tagger`]);
//! - similarity: unit-length embeddings, GeM pooling, the triplet hinge and batch mining
//!   ([`metric`]), the embedding network with its training and retrieval numbers
//!   ([`similarity`]), the facet probes and colour histograms that join it ([`facet_probe`],
//!   [`colour`]), and the hubness correction its searches rank with ([`hubness`]);
//! - cross-fitted out-of-fold predictions for the train split ([`folds`]), and confident
//!   learning's estimate of which labels are wrong ([`confident`], [`mistags`]);
//! - crowd workers' votes aggregated into labels: majority vote and Dawid–Skene with gold
//!   answers, and a simulated crowd to measure them ([`crowd`]).
//!
//! Datasets come in as [`Dataset`]s and results go out as values; `atelier-app` reads them
//! from the catalogue and stores them back. Progress goes to an [`progress::Observer`], so
//! this crate draws nothing.

pub mod artifact;
pub mod backbones;
pub mod checkpoint;
pub mod colour;
pub mod confident;
pub mod config;
pub mod crop;
pub mod crowd;
pub mod data;
pub mod device;
pub mod dress_boxes;
pub mod error;
pub mod evaluate;
pub mod facet_probe;
pub mod features;
pub mod folds;
pub mod foreground;
pub mod fused_adamw;
pub mod hubness;
pub mod init;
pub mod input;
pub mod locator;
pub mod loss;
pub mod map_fit;
pub mod metric;
pub mod metrics;
pub mod mistags;
pub mod model;
pub mod prefetch;
pub mod progress;
pub mod schedule;
pub mod similarity;
pub mod similarity_model;
pub mod similarity_run;
pub mod standardize;
pub mod tagger;
pub mod trainer;

pub use backbones::BackboneChoice;
pub use config::{DeviceChoice, HeadKind, Recipe, TrainConfig};
pub use data::{Dataset, Example, FacetSpec, Split};
pub use error::TrainError;
pub use trainer::{TrainOutcome, train};
