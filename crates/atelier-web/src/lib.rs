//! atelier's review web app (`atelier serve`).
//!
//! This crate owns the HTTP side of the review loop: login and roles, the pages (runs and their
//! comparison, the per-facet F1 view with its confusion matrix, false negatives and positives,
//! the suspected-mistag queue, the image page), audited retagging with undo and conflict
//! handling, thumbnails, and retraining in the background. It stores nothing itself: every
//! label, user, session and run lives in the catalogue (`atelier-catalog`), and training and
//! the mistag queue come from `atelier-app`.
//!
//! Every page is server-rendered HTML (maud templates, checked at compile time) with a JSON
//! twin under `/api/...` that carries the same data, so scripts can do what a person does.
//! The CSS and the small script are compiled into the binary.

mod app;
pub mod auth;
mod error;
mod format;
pub mod limits;
mod pages;
mod thumbs;
mod views;

pub use app::{AppConfig, router, serve, serve_on, start};
pub use auth::{hash_password, verify_password};
pub use error::WebError;
pub use limits::LoginPolicy;
