//! atelier's use cases that the command line and the web app share, between the libraries
//! (catalogue, training) and the two front ends: a catalogue run's whole life ([`runner`]:
//! record, train, save, record results, or fail; retrain), either kind of run by its id
//! ([`any_run`]), which process holds a run
//! ([`lease`]), the job queue and its workers ([`jobs`]; checkpoints kept in the store for
//! them: [`checkpoint_mirror`]), datasets read from the catalogue and results written back ([`dataset`]), a
//! run's review queue of likely mistagged images ([`mistags`]), the catalogue a page at a time
//! ([`browse`]), dress boxes and their editing ([`boxes`]), near-duplicates and reviewers'
//! verdicts on them ([`duplicates`]), the decoding check that
//! quarantines unusable files ([`check`]), catalogue images in object storage read through the
//! bounded local cache and imports from there ([`images`]), crowd retagging's task export, signed
//! image URLs and imported votes ([`crowd`]), a similarity run's life ([`similarity`]) and
//! similar-dress queries with facet filters and the embeddings they search ([`similar`]), the
//! triplet editor's tasks ([`triplet_editor`]); and
//! models: the store, publishing, and finding the
//! model a reference names ([`models`]).
//!
//! Training itself (`atelier-train`) never touches the catalogue; this crate reads a dataset
//! from it, hands it to training, and stores what comes back. Front ends parse, render and map
//! [`AppError`]s to exit or status codes; they hold no rule of their own.

pub mod ann;
pub mod any_run;
pub mod boxes;
pub mod browse;
pub mod check;
pub mod checkpoint_mirror;
pub mod crowd;
pub mod dataset;
pub mod duplicates;
mod error;
pub mod images;
pub mod jobs;
pub mod lease;
pub mod mistags;
pub mod models;
pub mod runner;
pub mod similar;
pub mod similarity;
pub mod summary;
pub mod triplet_editor;

pub use error::{AppError, ErrorKind};
pub use runner::{FinishedRun, RunPaths, create_retrain, create_run, execute_run};
pub use summary::RunSummary;
