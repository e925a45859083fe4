//! Training, evaluation and inference of multi-facet dress taggers.
//!
//! This crate owns:
//! - what a run trains on ([`data`]): facets with their label orders, labelled images, and the
//!   fit/validation/test parts;
//! - the facet network ([`model`]): optional spatial transformer, a backbone from
//!   `atelier-models`, one head per facet;
//! - the loss ([`loss`]: class-weighted, focal, masked per facet), optimisers and schedules
//!   ([`schedule`]), input preprocessing and augmentation ([`input`]), frozen-feature caching
//!   ([`features`]) and the per-channel standardisation heads train on ([`standardize`]);
//! - the dress locator and the zoomed detail view it places ([`locator`]);
//! - the training loop with checkpoints and resume ([`trainer`], [`checkpoint`]);
//! - per-class precision/recall/F1 tables and confusion matrices ([`metrics`], [`evaluate`]);
//! - model artifacts and tagging new images with them ([`artifact`], [`tagger`]);
//! - cross-fitted out-of-fold predictions for the train split ([`folds`]) and the
//!   confident-learning queue of likely mistagged images built from them ([`mistags`]).
//!
//! Training itself never touches the catalogue; [`job`] reads a dataset from it and stores a
//! run's results back, and [`runner`] drives a catalogue run from creation to completion
//! (including `retrain`), for the command line and the web app alike, holding each run by a
//! lease in the catalogue ([`lease`]). Progress goes to an
//! [`progress::Observer`], so this crate draws nothing.

pub mod artifact;
pub mod backbones;
pub mod checkpoint;
pub mod confident;
pub mod config;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod features;
pub mod folds;
pub mod init;
pub mod input;
pub mod job;
pub mod lease;
pub mod locator;
pub mod loss;
pub mod metrics;
pub mod mistags;
pub mod model;
pub mod progress;
pub mod runner;
pub mod schedule;
pub mod standardize;
pub mod tagger;
pub mod trainer;

pub use backbones::BackboneChoice;
pub use config::{DeviceChoice, TrainConfig};
pub use data::{Dataset, Example, FacetSpec, Split};
pub use error::TrainError;
pub use runner::{FinishedRun, RunPaths, create_retrain, create_run, execute_run};
pub use trainer::{TrainOutcome, train};
