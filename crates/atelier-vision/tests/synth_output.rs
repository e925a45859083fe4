//! End-to-end checks of `atelier synth` output: determinism, file formats, boxes, noise.

use atelier_vision::synth::{
    FACETS, PREVIEW_EXAMPLES, SynthOptions, plan_dataset, render_picture, synthesize,
    write_preview_sheet,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

fn options(dir: &Path, count: usize, seed: u64, size: u32, label_noise: f64) -> SynthOptions {
    SynthOptions {
        out_dir: dir.to_path_buf(),
        count,
        seed,
        size,
        label_noise,
    }
}

/// Every file under `dir`, keyed by relative path.
fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
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
                    .into_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

#[test]
fn same_arguments_give_byte_identical_output_and_another_seed_does_not() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let progress = std::sync::atomic::AtomicUsize::new(0);
    let count_progress = |n: usize| {
        progress.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
    };
    synthesize(&options(a.path(), 10, 42, 64, 0.1), &count_progress).unwrap();
    assert_eq!(progress.load(std::sync::atomic::Ordering::Relaxed), 10);
    synthesize(&options(b.path(), 10, 42, 64, 0.1), &|_| {}).unwrap();
    synthesize(&options(c.path(), 10, 43, 64, 0.1), &|_| {}).unwrap();
    let (ta, tb, tc) = (
        read_tree(a.path()),
        read_tree(b.path()),
        read_tree(c.path()),
    );
    assert_eq!(
        ta.len(),
        12,
        "10 images + manifest + truth, no temp files left: {:?}",
        ta.keys()
    );
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (name, bytes) in &ta {
        assert!(bytes == &tb[name], "{name} differs between identical runs");
    }
    assert_eq!(ta.keys().collect::<Vec<_>>(), tc.keys().collect::<Vec<_>>());
    let differing = ta
        .iter()
        .filter(|(name, bytes)| *bytes != &tc[*name])
        .count();
    assert_eq!(differing, 12, "every file should change with the seed");
}

#[test]
fn manifest_and_truth_have_the_documented_columns_and_valid_rows() {
    let dir = tempfile::tempdir().unwrap();
    let size = 80;
    let summary = synthesize(&options(dir.path(), 14, 5, size, 0.0), &|_| {}).unwrap();
    assert_eq!(summary.images, 14);
    assert_eq!(summary.flipped_labels, 0);
    assert_eq!(summary.manifest, dir.path().join("manifest.csv"));
    let (header, rows) = read_csv(&summary.manifest);
    assert_eq!(
        header,
        [
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
            "varied_facet"
        ]
    );
    let (truth_header, truth_rows) = read_csv(&summary.truth);
    assert_eq!(
        truth_header,
        [
            "path",
            "silhouette",
            "neckline",
            "sleeve",
            "length",
            "occasion",
            "flipped"
        ]
    );
    assert_eq!(rows.len(), 14);
    assert_eq!(truth_rows.len(), 14);
    let mut designs = std::collections::HashSet::new();
    for (i, (row, truth)) in rows.iter().zip(&truth_rows).enumerate() {
        assert_eq!(row[0], format!("images/{i:06}.jpg"));
        assert_eq!(truth[0], row[0]);
        assert_eq!(row[1], "", "split is left for the catalogue");
        for f in 0..5 {
            assert!(
                FACETS[f].1.contains(&row[2 + f].as_str()),
                "bad {} {:?}",
                FACETS[f].0,
                row[2 + f]
            );
            assert_eq!(truth[1 + f], row[2 + f], "no noise requested");
        }
        assert_eq!(truth[6], "");
        let img = image::open(dir.path().join(&row[0])).unwrap();
        assert_eq!((img.width(), img.height()), (size, size));
        let b: Vec<u32> = row[7..11].iter().map(|v| v.parse().unwrap()).collect();
        assert!(
            b[0] < b[2] && b[1] < b[3] && b[2] <= size && b[3] <= size,
            "box {b:?}"
        );
        // A dress is a sizeable part of the picture.
        assert!(b[3] - b[1] > size / 4, "box {b:?} too short");
        assert!(
            row[11].len() == 7
                && row[11].starts_with('d')
                && row[11][1..].chars().all(|c| c.is_ascii_digit())
        );
        designs.insert(row[11].clone());
        assert_eq!(row[12].is_empty(), row[13].is_empty(), "{row:?}");
    }
    assert_eq!(designs.len(), summary.designs);
}

/// Clean labels of each design, from `truth.csv` rows matched to the manifest by path.
fn clean_labels_by_design(
    rows: &[Vec<String>],
    truth: &[Vec<String>],
    design: usize,
) -> HashMap<String, Vec<String>> {
    let mut by_design: HashMap<String, Vec<String>> = HashMap::new();
    for (row, clean) in rows.iter().zip(truth) {
        assert_eq!(row[0], clean[0]);
        let labels = clean[1..6].to_vec();
        let first = by_design
            .entry(row[design].clone())
            .or_insert(labels.clone());
        assert_eq!(*first, labels, "one design, one set of clean labels");
    }
    by_design
}

#[test]
fn variant_rows_name_their_base_and_differ_from_it_in_the_varied_facet_only() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let summary = synthesize(&options(a.path(), 60, 7, 64, 0.1), &|_| {}).unwrap();
    synthesize(&options(b.path(), 60, 7, 64, 0.1), &|_| {}).unwrap();
    for name in ["manifest.csv", "truth.csv"] {
        let (x, y) = (a.path().join(name), b.path().join(name));
        assert!(
            std::fs::read(x).unwrap() == std::fs::read(y).unwrap(),
            "{name} differs"
        );
    }
    let (header, rows) = read_csv(&summary.manifest);
    let (_, truth) = read_csv(&summary.truth);
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (design, variant_of, varied) = (
        column("design"),
        column("variant_of"),
        column("varied_facet"),
    );
    let clean = clean_labels_by_design(&rows, &truth, design);
    let bases: HashSet<&str> = rows
        .iter()
        .filter(|r| r[variant_of].is_empty())
        .map(|r| r[design].as_str())
        .collect();
    let mut variants = HashSet::new();
    for row in &rows {
        assert_eq!(
            row[variant_of].is_empty(),
            row[varied].is_empty(),
            "{row:?}"
        );
        if row[variant_of].is_empty() {
            continue;
        }
        let base = row[variant_of].as_str();
        assert!(
            bases.contains(base),
            "{base} is shown and is not itself a variant"
        );
        let facet = FACETS.iter().position(|(n, _)| *n == row[varied]).unwrap();
        assert!(["neckline", "sleeve", "length", "silhouette"].contains(&row[varied].as_str()));
        let (mine, theirs) = (&clean[&row[design]], &clean[base]);
        let changed: Vec<usize> = (0..5).filter(|&f| mine[f] != theirs[f]).collect();
        assert_eq!(changed, [facet], "{row:?}: {mine:?} vs {theirs:?}");
        variants.insert(row[design].clone());
    }
    assert!(
        !variants.is_empty(),
        "60 pictures with seed 7 show a variant family"
    );
    // The columns agree with the plan the pictures were drawn from.
    let plan = plan_dataset(60, 7);
    let planned = plan
        .designs
        .iter()
        .filter(|d| d.variation.is_some())
        .count();
    assert_eq!(variants.len(), planned);
}

/// The manifest box must hug the dress: compare pictures rendered with and without the
/// dress (same person, pose, framing and background) and find where they differ.
#[test]
fn boxes_are_tight_around_the_pixels_the_dress_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (count, seed, size) = (12, 9, 96u32);
    synthesize(&options(dir.path(), count, seed, size, 0.0), &|_| {}).unwrap();
    let (_, rows) = read_csv(&dir.path().join("manifest.csv"));
    let plan = plan_dataset(count, seed);
    for (i, row) in rows.iter().enumerate() {
        let design = &plan.designs[plan.shots[i]];
        assert_eq!(row[11], design.name());
        let with = render_picture(design, seed, i as u64, size, true);
        let without = render_picture(design, seed, i as u64, size, false);
        let b = with.dress_box;
        assert_eq!(row[7..11], [b.x0, b.y0, b.x1, b.y1].map(|v| v.to_string()));
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        for (x, y, p) in with.image.enumerate_pixels() {
            let q = without.image.get_pixel(x, y);
            let diff: i32 = (0..3).map(|c| (p.0[c] as i32 - q.0[c] as i32).abs()).sum();
            if diff > 24 {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
            }
        }
        // Anti-aliased edges and the outline may reach one pixel past the half-coverage box;
        // inside, the changed pixels must reach every side of the box.
        assert!(
            x0 + 1 >= b.x0 && y0 + 1 >= b.y0 && x1 <= b.x1 + 1 && y1 <= b.y1 + 1,
            "#{i}: changed {:?} outside box {b:?}",
            (x0, y0, x1, y1)
        );
        assert!(
            x0 <= b.x0 + 2 && y0 <= b.y0 + 2 && x1 + 2 >= b.x1 && y1 + 2 >= b.y1,
            "#{i}: box {b:?} looser than changed {:?}",
            (x0, y0, x1, y1)
        );
        // And the mask agrees with the box.
        assert_eq!(atelier_vision::synth::tight_box(&with.dress_mask), Some(b));
    }
}

#[test]
fn label_noise_flips_the_requested_share_to_other_valid_values() {
    let dir = tempfile::tempdir().unwrap();
    let summary = synthesize(&options(dir.path(), 40, 3, 64, 0.1), &|_| {}).unwrap();
    assert_eq!(summary.flipped_labels, 20, "10% of 40 x 5 labels");
    let (_, rows) = read_csv(&summary.manifest);
    let (_, truth) = read_csv(&summary.truth);
    let mut flipped = 0;
    for (row, clean) in rows.iter().zip(&truth) {
        let listed: Vec<&str> = if clean[6].is_empty() {
            vec![]
        } else {
            clean[6].split(';').collect()
        };
        for f in 0..5 {
            let (noisy, clean_label) = (&row[2 + f], &clean[1 + f]);
            assert!(FACETS[f].1.contains(&noisy.as_str()));
            assert!(FACETS[f].1.contains(&clean_label.as_str()));
            let changed = noisy != clean_label;
            assert_eq!(
                changed,
                listed.contains(&FACETS[f].0),
                "row {row:?} truth {clean:?}"
            );
            flipped += usize::from(changed);
        }
    }
    assert_eq!(flipped, 20);
}

#[test]
fn bad_options_are_rejected_with_the_option_and_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (options(dir.path(), 0, 1, 64, 0.0), "--count", "at least 1"),
        (options(dir.path(), 1, 1, 63, 0.0), "--size", "64 to 1024"),
        (options(dir.path(), 1, 1, 1025, 0.0), "--size", "64 to 1024"),
        (
            options(dir.path(), 1, 1, 64, -0.1),
            "--label-noise",
            "0 to 1",
        ),
        (
            options(dir.path(), 1, 1, 64, 1.5),
            "--label-noise",
            "0 to 1",
        ),
        (
            options(dir.path(), 1, 1, 64, f64::NAN),
            "--label-noise",
            "0 to 1",
        ),
    ];
    for (opts, option, range) in cases {
        let err = synthesize(&opts, &|_| {}).unwrap_err().to_string();
        assert!(err.contains(option) && err.contains(range), "{err}");
        assert!(!err.contains('\n'));
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written on bad options"
    );

    // An output "directory" that is a file: the error names the path.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = synthesize(&options(&file, 1, 1, 64, 0.0), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("not-a-dir"), "{err}");
}

#[test]
fn defaults_match_the_documented_command_line() {
    let d = SynthOptions::default();
    assert_eq!(
        (d.count, d.seed, d.size, d.label_noise),
        (2000, 7, 256, 0.0)
    );
    assert_eq!(d.out_dir, Path::new("synth"));
}

#[test]
fn preview_sheet_has_a_captioned_row_per_facet_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sheet.png");
    let size = 48;
    write_preview_sheet(&path, 7, size).unwrap();
    let sheet = image::open(&path).unwrap().to_rgb8();
    let values: u32 = FACETS.iter().map(|(_, v)| v.len() as u32).sum();
    assert_eq!(values, 29);
    assert!(sheet.height() >= values * size && sheet.width() >= PREVIEW_EXAMPLES as u32 * size);
    // Count separate lines of dark caption text in the left margin: title + one per value.
    let ink_rows: Vec<bool> = (0..sheet.height())
        .map(|y| (0..120).any(|x| sheet.get_pixel(x, y).0.iter().all(|&c| c < 80)))
        .collect();
    let lines = ink_rows.windows(2).filter(|w| !w[0] && w[1]).count() + usize::from(ink_rows[0]);
    assert_eq!(lines as u32, values + 1);
    let err = write_preview_sheet(&path, 7, 20).unwrap_err().to_string();
    assert!(
        err.contains("preview thumbnail size") && err.contains("48 to 512"),
        "{err}"
    );
}
