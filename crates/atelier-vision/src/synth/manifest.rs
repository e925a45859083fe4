//! Label noise and the two CSV files, written through a temporary name and renamed so that
//! a crash never leaves a half-written file under the final name.

use super::SynthError;
use super::design::{Variation, design_name};
use super::facets::FACETS;
use super::rng::{Dice, Stream};
use super::scene::DressBox;
use std::path::{Path, PathBuf};

/// Manifest labels after noise.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelNoise {
    /// Label index per picture and facet, as written to the manifest.
    pub labels: Vec<[usize; 5]>,
    /// Which facets of each picture were changed.
    pub flipped: Vec<[bool; 5]>,
    pub flipped_count: usize,
}

/// Replaces exactly `round(fraction * 5 * pictures)` facet labels, chosen uniformly over
/// all pictures and facets, by a different value of the same facet (uniform among the
/// others). Deterministic in `seed`; `fraction` is clamped to 0..=1.
pub fn apply_label_noise(truth: &[[usize; 5]], fraction: f64, seed: u64) -> LabelNoise {
    let slots = truth.len() * 5;
    let n_flip = ((fraction.clamp(0.0, 1.0) * slots as f64).round() as usize).min(slots);
    let mut dice = Dice::new(seed, Stream::LabelNoise, 0);
    let mut order: Vec<usize> = (0..slots).collect();
    // Partial Fisher-Yates: the first n_flip entries become a uniform random subset.
    for k in 0..n_flip {
        let j = dice.int(k, slots - 1);
        order.swap(k, j);
    }
    let mut labels = truth.to_vec();
    let mut flipped = vec![[false; 5]; truth.len()];
    for &slot in &order[..n_flip] {
        let (picture, facet) = (slot / 5, slot % 5);
        let n_values = FACETS[facet].1.len();
        let clean = truth[picture][facet];
        let other = dice.int(0, n_values - 2);
        labels[picture][facet] = if other >= clean { other + 1 } else { other };
        flipped[picture][facet] = true;
    }
    LabelNoise {
        labels,
        flipped,
        flipped_count: n_flip,
    }
}

/// One picture's manifest and truth entries.
pub struct Row<'a> {
    pub path: &'a str,
    pub design: usize,
    pub variation: Option<Variation>,
    pub truth: [usize; 5],
    pub labels: [usize; 5],
    pub flipped: [bool; 5],
    pub dress_box: DressBox,
}

fn temp_name(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `bytes` to `path` via `path.tmp` and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SynthError> {
    let tmp = temp_name(path);
    std::fs::write(&tmp, bytes).map_err(|source| SynthError::Io {
        action: "write",
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| SynthError::Io {
        action: "rename into place",
        path: path.to_path_buf(),
        source,
    })
}

fn csv_bytes(
    path: &Path,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> Result<Vec<u8>, SynthError> {
    let encode_error = |message: String| SynthError::Encode {
        path: path.to_path_buf(),
        message,
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header)
        .map_err(|e| encode_error(e.to_string()))?;
    for row in rows {
        w.write_record(&row)
            .map_err(|e| encode_error(e.to_string()))?;
    }
    w.into_inner().map_err(|e| encode_error(e.to_string()))
}

fn label_texts(labels: [usize; 5]) -> impl Iterator<Item = String> {
    labels
        .into_iter()
        .enumerate()
        .map(|(f, v)| FACETS[f].1[v].to_string())
}

pub const MANIFEST_HEADER: [&str; 14] = [
    "path",
    "split",
    "silhouette",
    "neckline",
    "sleeve",
    "length",
    "occasion",
    "x0",
    "y0",
    "x1",
    "y1",
    "design",
    "variant_of",
    "varied_facet",
];
pub const TRUTH_HEADER: [&str; 7] = [
    "path",
    "silhouette",
    "neckline",
    "sleeve",
    "length",
    "occasion",
    "flipped",
];

pub fn write_manifest(path: &Path, rows: &[Row<'_>]) -> Result<(), SynthError> {
    let records = rows.iter().map(|r| {
        let mut rec = vec![r.path.to_string(), String::new()];
        rec.extend(label_texts(r.labels));
        let b = r.dress_box;
        rec.extend([b.x0, b.y0, b.x1, b.y1].map(|v| v.to_string()));
        rec.push(design_name(r.design));
        match r.variation {
            Some(v) => rec.extend([design_name(v.base), FACETS[v.facet].0.to_string()]),
            None => rec.extend([String::new(), String::new()]),
        }
        rec
    });
    write_atomic(path, &csv_bytes(path, &MANIFEST_HEADER, records)?)
}

pub fn write_truth(path: &Path, rows: &[Row<'_>]) -> Result<(), SynthError> {
    let records = rows.iter().map(|r| {
        let mut rec = vec![r.path.to_string()];
        rec.extend(label_texts(r.truth));
        let flipped: Vec<&str> = (0..5)
            .filter(|&f| r.flipped[f])
            .map(|f| FACETS[f].0)
            .collect();
        rec.push(flipped.join(";"));
        rec
    });
    write_atomic(path, &csv_bytes(path, &TRUTH_HEADER, records)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_the_exact_share_to_other_valid_values() {
        let truth: Vec<[usize; 5]> = (0..400)
            .map(|i| [i % 6, i % 8, i % 6, i % 4, i % 5])
            .collect();
        let noise = apply_label_noise(&truth, 0.1, 11);
        assert_eq!(noise.flipped_count, 200);
        let mut seen = 0;
        for (i, row) in noise.labels.iter().enumerate() {
            for f in 0..5 {
                assert!(row[f] < FACETS[f].1.len());
                assert_eq!(row[f] != truth[i][f], noise.flipped[i][f]);
                seen += usize::from(noise.flipped[i][f]);
            }
        }
        assert_eq!(seen, 200);
        let none = apply_label_noise(&truth, 0.0, 11);
        assert_eq!(none.labels, truth);
        assert_eq!(none.flipped_count, 0);
    }
}
