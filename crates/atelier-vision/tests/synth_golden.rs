//! Golden output: the SHA-256 of every file of a small `atelier synth` run, committed in
//! `tests/golden/`. Any change to the renderer, the design sampler, label noise or the file
//! formats changes these sums. When a change to the pictures is intended, rerun this test
//! and replace the list with the one it prints (it is in `sha256sum` format, so
//! `sha256sum -c` also checks it from inside an output folder).

use atelier_vision::synth::{SynthOptions, synthesize};
use sha2::{Digest, Sha256};
use std::path::Path;

const GOLDEN: &str = include_str!("golden/synth-count40-size96-seed3-noise0.05.sha256");

/// `sha256sum`-style lines (`<hex>  <relative path>`) for every file under `dir`, by path.
fn sums(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                let digest = hex::encode(Sha256::digest(std::fs::read(&path).unwrap()));
                lines.push(format!("{digest}  {rel}"));
            }
        }
    }
    lines.sort_by(|a, b| a[66..].cmp(&b[66..]));
    lines
}

#[test]
fn a_small_run_matches_the_committed_sha256_sums() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        out_dir: dir.path().to_path_buf(),
        count: 40,
        seed: 3,
        size: 96,
        label_noise: 0.05,
    };
    synthesize(&opts, &|_| {}).unwrap();
    let actual = sums(dir.path());
    let expected: Vec<&str> = GOLDEN.lines().collect();
    assert_eq!(actual.len(), 42, "40 images + manifest + truth");
    let differing: Vec<&String> = actual
        .iter()
        .filter(|line| !expected.contains(&line.as_str()))
        .collect();
    assert!(
        differing.is_empty() && actual.len() == expected.len(),
        "output differs from tests/golden in {} files: {differing:#?}\n\
         full list of this run's sums:\n{}",
        differing.len(),
        actual.join("\n")
    );
}
