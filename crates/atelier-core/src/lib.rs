//! The vocabulary every atelier crate shares, so that the catalogue, training, the store and
//! the front ends speak of the same things with the same types: an image's [`Split`],
//! timestamps as UTC unix milliseconds ([`now_millis`], [`utc_minutes`]), and a hash of text
//! that never changes ([`stable_hash`]).
//!
//! It depends on nothing of atelier and on no runtime; every other crate may use it.
//!
//! ```
//! use atelier_core::Split;
//! let split: Split = "test".parse().unwrap();
//! assert_eq!(split, Split::Test);
//! assert_eq!(split.to_string(), "test");
//! ```

mod hash;
mod time;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use hash::stable_hash;
pub use time::{now_millis, utc_minutes};

/// Train/test membership of an image: assigned once when the catalogue first sees the image,
/// never changed. Training fits on the train split only; the test split is only evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not a split's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSplit(pub String);

impl fmt::Display for UnknownSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a split; use train or test", self.0)
    }
}

impl std::error::Error for UnknownSplit {}

impl FromStr for Split {
    type Err = UnknownSplit;

    fn from_str(text: &str) -> Result<Split, UnknownSplit> {
        match text {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            other => Err(UnknownSplit(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_words_are_refused() {
        for split in [Split::Train, Split::Test] {
            assert_eq!(split.as_str().parse::<Split>(), Ok(split));
            let json = serde_json::to_string(&split).unwrap();
            assert_eq!(json, format!("\"{split}\""));
            assert_eq!(serde_json::from_str::<Split>(&json).unwrap(), split);
        }
        let error = "Train".parse::<Split>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "`Train` is not a split; use train or test"
        );
    }
}
