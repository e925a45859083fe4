//! Classification metrics for one facet on one split: per-class precision, recall, F1 and
//! support, macro and weighted F1, accuracy and the confusion matrix, plus the plain-text
//! table the CLI prints.
//!
//! The numbers follow scikit-learn's
//! `precision_recall_fscore_support(y_true, y_pred, labels=range(n), zero_division=0)`
//! exactly (checked against it by `tests/metrics_vs_sklearn.rs`), so a report from atelier can
//! be compared with one computed in Python on the same predictions. Every listed class counts,
//! including classes with no true samples in the split: a facet's label set is fixed by the
//! catalogue, and a class the split lacks should drag macro F1 down rather than silently drop
//! out of it.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub label: String,
    /// True positives over samples predicted as this class; 0 when none were.
    pub precision: f64,
    /// True positives over samples of this class; 0 when the class has no samples.
    pub recall: f64,
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
    /// Number of samples whose true class is this one.
    pub support: u64,
}

/// Everything measured on one split for one facet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitMetrics {
    /// One entry per label, in the label order given to [`classification_report`].
    pub per_class: Vec<ClassMetrics>,
    /// Unweighted mean of the per-class F1 over all listed classes (support 0 included).
    pub macro_f1: f64,
    /// Support-weighted mean of the per-class F1; 0 when there are no samples.
    pub weighted_f1: f64,
    /// Fraction of samples predicted correctly; 0 when there are no samples.
    pub accuracy: f64,
    /// Number of samples.
    pub count: u64,
    /// `confusion[true][predicted]`, rows and columns in label order.
    pub confusion: Vec<Vec<u64>>,
}

/// Computes the metrics of `predicted` against `truth`, both class indices into `labels`.
///
/// Semantics are scikit-learn's `precision_recall_fscore_support(labels=range(n),
/// zero_division=0)`: a 0/0 precision, recall or F1 is 0, and macro F1 averages over every
/// label, including those with no true samples. Empty input gives all zeros and a zero
/// confusion matrix (scikit-learn rejects empty input instead); with no labels at all the
/// averages are 0 too.
///
/// # Panics
///
/// If `truth` and `predicted` differ in length or hold an index `>= labels.len()`: both are
/// programming errors in the caller (the indices come from the model's own head and the
/// catalogue's label list), not bad user input.
pub fn classification_report(
    labels: &[String],
    truth: &[usize],
    predicted: &[usize],
) -> SplitMetrics {
    assert_eq!(
        truth.len(),
        predicted.len(),
        "classification_report: {} true labels but {} predictions",
        truth.len(),
        predicted.len()
    );
    let n = labels.len();
    let mut confusion = vec![vec![0u64; n]; n];
    for (i, (&t, &p)) in truth.iter().zip(predicted).enumerate() {
        assert!(
            t < n && p < n,
            "classification_report: sample {i} has true class {t} and predicted class {p}, \
             but there are only {n} labels"
        );
        confusion[t][p] += 1;
    }

    let count = truth.len() as u64;
    let mut per_class = Vec::with_capacity(n);
    let mut correct = 0u64;
    for (k, label) in labels.iter().enumerate() {
        let tp = confusion[k][k];
        let support: u64 = confusion[k].iter().sum();
        let predicted_as: u64 = confusion.iter().map(|row| row[k]).sum();
        correct += tp;
        // F1 as 2·tp / (support + predicted) rather than from p and r: it is the same value,
        // it is what scikit-learn computes (so results agree to the last bit or so), and its
        // denominator is 0 exactly when p + r would be 0/0.
        per_class.push(ClassMetrics {
            label: label.clone(),
            precision: ratio(tp as f64, predicted_as as f64),
            recall: ratio(tp as f64, support as f64),
            f1: ratio(2.0 * tp as f64, (support + predicted_as) as f64),
            support,
        });
    }

    let macro_f1 = ratio(per_class.iter().map(|c| c.f1).sum(), n as f64);
    let weighted_f1 = ratio(
        per_class.iter().map(|c| c.f1 * c.support as f64).sum(),
        count as f64,
    );
    SplitMetrics {
        per_class,
        macro_f1,
        weighted_f1,
        accuracy: ratio(correct as f64, count as f64),
        count,
        confusion,
    }
}

/// `num / den`, or 0 when `den` is 0 (scikit-learn's `zero_division=0`).
fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 { 0.0 } else { num / den }
}

/// Renders `metrics` as an aligned plain-text table under `title`, for the CLI:
///
/// ```text
/// validation · length
/// label  precision  recall     f1  support
/// mini       0.750   0.600  0.667        5
/// ...
///
/// macro F1      0.655
/// weighted F1   0.678
/// accuracy      0.667  (6 samples)
/// ```
pub fn format_table(title: &str, metrics: &SplitMetrics) -> String {
    const HEADERS: [&str; 5] = ["label", "precision", "recall", "f1", "support"];
    // `{:<w$}` pads by `char` count, so width is measured in chars for labels like "décolleté".
    let label_width = metrics
        .per_class
        .iter()
        .map(|c| c.label.chars().count())
        .chain([HEADERS[0].len()])
        .max()
        .unwrap_or(0);
    let support_width = metrics
        .per_class
        .iter()
        .map(|c| c.support.to_string().len())
        .chain([HEADERS[4].len()])
        .max()
        .unwrap_or(0);
    let p_width = HEADERS[1].len();
    let r_width = HEADERS[2].len().max(5);
    let f_width = HEADERS[3].len().max(5);

    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(out, "{title}");
    let _ = writeln!(
        out,
        "{:<label_width$}  {:>p_width$}  {:>r_width$}  {:>f_width$}  {:>support_width$}",
        HEADERS[0], HEADERS[1], HEADERS[2], HEADERS[3], HEADERS[4]
    );
    for c in &metrics.per_class {
        let _ = writeln!(
            out,
            "{:<label_width$}  {:>p_width$.3}  {:>r_width$.3}  {:>f_width$.3}  {:>support_width$}",
            c.label, c.precision, c.recall, c.f1, c.support
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<12}  {:.3}", "macro F1", metrics.macro_f1);
    let _ = writeln!(out, "{:<12}  {:.3}", "weighted F1", metrics.weighted_f1);
    let _ = writeln!(
        out,
        "{:<12}  {:.3}  ({} samples)",
        "accuracy", metrics.accuracy, metrics.count
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    // Hand computation for labels [a, b, c]:
    //   truth     = [a, a, a, b, b, c]
    //   predicted = [a, b, a, b, c, c]
    // confusion[true][pred]:  a: [2, 1, 0]   b: [0, 1, 1]   c: [0, 0, 1]
    //   a: tp 2, support 3, predicted 2 -> p = 2/2 = 1,   r = 2/3, f1 = 2·2/(3+2) = 4/5
    //   b: tp 1, support 2, predicted 2 -> p = 1/2,       r = 1/2, f1 = 2·1/(2+2) = 1/2
    //   c: tp 1, support 1, predicted 2 -> p = 1/2,       r = 1,   f1 = 2·1/(1+2) = 2/3
    // macro F1    = (4/5 + 1/2 + 2/3) / 3         = (24 + 15 + 20)/30 / 3 = 59/90
    // weighted F1 = (3·4/5 + 2·1/2 + 1·2/3) / 6   = (72 + 30 + 20)/30 / 6 = 122/180 = 61/90
    // accuracy    = (2 + 1 + 1) / 6               = 2/3
    const TRUTH: [usize; 6] = [0, 0, 0, 1, 1, 2];
    const PREDICTED: [usize; 6] = [0, 1, 0, 1, 2, 2];

    #[test]
    fn hand_computed_three_classes() {
        let m = classification_report(&labels(&["a", "b", "c"]), &TRUTH, &PREDICTED);
        assert_eq!(
            m.confusion,
            vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]
        );
        let expected = [
            ("a", 1.0, 2.0 / 3.0, 4.0 / 5.0, 3),
            ("b", 0.5, 0.5, 0.5, 2),
            ("c", 0.5, 1.0, 2.0 / 3.0, 1),
        ];
        assert_eq!(m.per_class.len(), 3);
        for (c, (label, p, r, f1, support)) in m.per_class.iter().zip(expected) {
            assert_eq!(c.label, label);
            assert!(close(c.precision, p), "{label} precision {}", c.precision);
            assert!(close(c.recall, r), "{label} recall {}", c.recall);
            assert!(close(c.f1, f1), "{label} f1 {}", c.f1);
            assert_eq!(c.support, support);
        }
        assert!(close(m.macro_f1, 59.0 / 90.0), "macro {}", m.macro_f1);
        assert!(
            close(m.weighted_f1, 61.0 / 90.0),
            "weighted {}",
            m.weighted_f1
        );
        assert!(close(m.accuracy, 2.0 / 3.0));
        assert_eq!(m.count, 6);
    }

    // Adding a label "d" that never occurs leaves a, b, c and the weighted mean unchanged but
    // divides the macro F1 sum by 4: 59/90 · 3/4 = 59/120.
    #[test]
    fn absent_class_counts_in_macro_not_weighted() {
        let m = classification_report(&labels(&["a", "b", "c", "d"]), &TRUTH, &PREDICTED);
        let d = &m.per_class[3];
        assert_eq!((d.precision, d.recall, d.f1, d.support), (0.0, 0.0, 0.0, 0));
        assert!(close(m.macro_f1, 59.0 / 120.0), "macro {}", m.macro_f1);
        assert!(close(m.weighted_f1, 61.0 / 90.0));
        assert_eq!(m.confusion[3], vec![0, 0, 0, 0]);
        assert!(m.confusion.iter().all(|row| row[3] == 0));
    }

    // A class with support that is never predicted: precision 0/0 -> 0, recall 0, F1 0.
    // truth [a, b, b], predicted [a, a, a]: b has tp 0, support 2, predicted 0.
    #[test]
    fn never_predicted_class_is_zero_not_nan() {
        let m = classification_report(&labels(&["a", "b"]), &[0, 1, 1], &[0, 0, 0]);
        let b = &m.per_class[1];
        assert_eq!((b.precision, b.recall, b.f1, b.support), (0.0, 0.0, 0.0, 2));
        // a: p = 1/3, r = 1, f1 = 2·1/(1+3) = 1/2.
        assert!(close(m.per_class[0].f1, 0.5));
        assert!(close(m.macro_f1, 0.25));
        assert!(close(m.weighted_f1, 0.5 / 3.0));
    }

    #[test]
    fn empty_input_is_all_zeros() {
        let m = classification_report(&labels(&["a", "b", "c"]), &[], &[]);
        assert_eq!(m.count, 0);
        assert_eq!((m.macro_f1, m.weighted_f1, m.accuracy), (0.0, 0.0, 0.0));
        assert_eq!(m.confusion, vec![vec![0; 3]; 3]);
        assert!(
            m.per_class
                .iter()
                .all(|c| (c.precision, c.recall, c.f1, c.support) == (0.0, 0.0, 0.0, 0))
        );

        let none = classification_report(&[], &[], &[]);
        assert!(none.per_class.is_empty() && none.confusion.is_empty());
        assert_eq!(none.macro_f1, 0.0);
    }

    #[test]
    #[should_panic(expected = "3 true labels but 2 predictions")]
    fn mismatched_lengths_panic() {
        let _quiet = crate::device::tests::PANICKING.lock();
        classification_report(&labels(&["a", "b"]), &[0, 1, 1], &[0, 1]);
    }

    #[test]
    #[should_panic(expected = "sample 1 has true class 0 and predicted class 2")]
    fn out_of_range_index_panics() {
        let _quiet = crate::device::tests::PANICKING.lock();
        classification_report(&labels(&["a", "b"]), &[0, 0], &[0, 2]);
    }

    #[test]
    fn json_round_trip_keeps_field_names() {
        let m = classification_report(&labels(&["a", "b", "c"]), &TRUTH, &PREDICTED);
        let json = serde_json::to_value(&m).unwrap();
        for key in [
            "per_class",
            "macro_f1",
            "weighted_f1",
            "accuracy",
            "count",
            "confusion",
        ] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
        assert_eq!(json["per_class"][0]["label"], "a");
        assert_eq!(json["confusion"][0][1], 1);
        let back: SplitMetrics = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn table_columns_line_up() {
        let names = labels(&["mini", "three-quarter", "décolleté"]);
        let m = classification_report(&names, &[0, 1, 2, 2], &[0, 1, 2, 0]);
        let table = format_table("validation · sleeve", &m);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "validation · sleeve");
        assert_eq!(lines[1], "label          precision  recall     f1  support");
        // a: tp 1, support 1, predicted 2 -> 0.500 1.000 0.667
        assert_eq!(lines[2], "mini               0.500   1.000  0.667        1");
        assert_eq!(lines[4], "décolleté          1.000   0.500  0.667        2");
        // Header and rows have the same width in chars, so columns line up.
        let widths: Vec<usize> = lines[1..5].iter().map(|l| l.chars().count()).collect();
        assert!(
            widths.iter().all(|&w| w == widths[0]),
            "{widths:?}\n{table}"
        );
        assert!(table.contains("macro F1      0.778"), "{table}");
        assert!(
            table.contains("accuracy      0.750  (4 samples)"),
            "{table}"
        );
    }
}
