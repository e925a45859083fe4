//! Request handlers, one module per page (each builds its data once and answers as HTML or
//! JSON, see [`crate::format`]).

pub mod body;
pub mod boxes;
pub mod catalogue;
pub mod crowd;
pub mod crowd_batches;
pub mod duplicates;
pub mod facet;
pub mod image;
pub mod jobs;
pub mod labels;
pub mod login;
pub mod mistags;
pub mod review;
pub mod run_facts;
pub mod runs;
pub mod search;
pub mod triplets;
pub mod users;
