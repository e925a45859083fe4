//! Checks `classification_report` against scikit-learn on the cases in
//! `fixtures/metrics/sklearn_reference.json` (made by `make_sklearn_reference.py` there):
//! every per-class number, both F1 averages, accuracy and the confusion matrix.

use std::path::PathBuf;

use atelier_train::metrics::{SplitMetrics, classification_report};
use serde::Deserialize;

const TOLERANCE: f64 = 1e-12;

#[derive(Deserialize)]
struct Reference {
    sklearn_version: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    source: String,
    labels: Vec<String>,
    truth: Vec<usize>,
    predicted: Vec<usize>,
    precision: Vec<f64>,
    recall: Vec<f64>,
    f1: Vec<f64>,
    support: Vec<u64>,
    macro_f1: f64,
    weighted_f1: f64,
    accuracy: f64,
    confusion: Vec<Vec<u64>>,
}

fn load() -> Reference {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "fixtures",
        "metrics",
        "sklearn_reference.json",
    ]
    .iter()
    .collect();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; regenerate it with make_sklearn_reference.py",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is malformed: {e}", path.display()))
}

/// Collects every mismatch of one case instead of stopping at the first, so a failure shows
/// whether one class or the whole formula is off.
fn compare(case: &Case, got: &SplitMetrics) -> Vec<String> {
    let mut errors = Vec::new();
    let mut num = |what: String, got: f64, want: f64| {
        // `<=` is false for NaN, so a NaN on either side counts as a mismatch.
        let agrees = (got - want).abs() <= TOLERANCE;
        if !agrees {
            errors.push(format!("{what}: got {got:e}, sklearn {want:e}"));
        }
    };
    for (k, c) in got.per_class.iter().enumerate() {
        num(
            format!("precision[{}]", c.label),
            c.precision,
            case.precision[k],
        );
        num(format!("recall[{}]", c.label), c.recall, case.recall[k]);
        num(format!("f1[{}]", c.label), c.f1, case.f1[k]);
    }
    num("macro_f1".into(), got.macro_f1, case.macro_f1);
    num("weighted_f1".into(), got.weighted_f1, case.weighted_f1);
    num("accuracy".into(), got.accuracy, case.accuracy);

    let labels: Vec<&str> = got.per_class.iter().map(|c| c.label.as_str()).collect();
    if labels != case.labels {
        errors.push(format!("labels {labels:?}, expected {:?}", case.labels));
    }
    let support: Vec<u64> = got.per_class.iter().map(|c| c.support).collect();
    if support != case.support {
        errors.push(format!("support {support:?}, sklearn {:?}", case.support));
    }
    if got.confusion != case.confusion {
        errors.push(format!(
            "confusion {:?}, sklearn {:?}",
            got.confusion, case.confusion
        ));
    }
    if got.count != case.truth.len() as u64 {
        errors.push(format!(
            "count {}, expected {}",
            got.count,
            case.truth.len()
        ));
    }
    errors
}

#[test]
fn matches_sklearn_on_every_fixture_case() {
    let reference = load();
    // Guards against a truncated or regenerated-without-a-case fixture passing vacuously.
    let names: Vec<&str> = reference.cases.iter().map(|c| c.name.as_str()).collect();
    for required in [
        "binary_skewed",
        "never_predicted",
        "zero_support",
        "all_correct",
        "empty",
    ] {
        assert!(
            names.contains(&required),
            "fixture lacks case {required}: {names:?}"
        );
    }

    let mut failures = Vec::new();
    for case in &reference.cases {
        let n = case.labels.len();
        for (field, len) in [
            ("precision", case.precision.len()),
            ("recall", case.recall.len()),
            ("f1", case.f1.len()),
            ("support", case.support.len()),
            ("confusion", case.confusion.len()),
        ] {
            assert_eq!(
                len, n,
                "case {}: {field} has {len} entries for {n} labels",
                case.name
            );
        }
        let got = classification_report(&case.labels, &case.truth, &case.predicted);
        assert_eq!(got.per_class.len(), n, "case {}", case.name);
        for e in compare(case, &got) {
            failures.push(format!("{} ({}): {e}", case.name, case.source));
        }
    }
    assert!(
        failures.is_empty(),
        "differences from scikit-learn {}:\n{}",
        reference.sklearn_version,
        failures.join("\n")
    );
}

/// The fixture's edge cases really exercise the zero-division rules: otherwise a change to
/// the generator could quietly turn them into ordinary cases.
#[test]
fn fixture_covers_the_zero_division_edges() {
    let reference = load();
    let case = |name: &str| {
        reference
            .cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("fixture lacks case {name}"))
    };

    let never = case("never_predicted");
    let never_predicted = (0..never.labels.len())
        .any(|k| never.support[k] > 0 && never.confusion.iter().all(|row| row[k] == 0));
    assert!(
        never_predicted,
        "never_predicted has no class with support that is never predicted"
    );

    let zero = case("zero_support");
    let k_zero: Vec<usize> = (0..zero.labels.len())
        .filter(|&k| zero.support[k] == 0)
        .collect();
    assert!(
        k_zero
            .iter()
            .any(|&k| zero.confusion.iter().any(|row| row[k] > 0)),
        "zero_support has no zero-support class that is predicted"
    );
    assert!(
        k_zero
            .iter()
            .any(|&k| zero.confusion.iter().all(|row| row[k] == 0)),
        "zero_support has no class that is entirely absent"
    );
    // With zero-support classes, sklearn's macro F1 is the mean over all labels.
    let mean = zero.f1.iter().sum::<f64>() / zero.f1.len() as f64;
    assert!((zero.macro_f1 - mean).abs() <= TOLERANCE);

    let correct = case("all_correct");
    assert_eq!(correct.truth, correct.predicted);
    assert_eq!(correct.accuracy, 1.0);

    let empty = case("empty");
    assert!(empty.truth.is_empty() && empty.source == "contract");
}
