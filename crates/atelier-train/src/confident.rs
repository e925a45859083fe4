//! Confident learning's estimate of which labels are wrong (Northcutt, Jiang and Chuang,
//! "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR 2021), as cleanlab 2.x
//! computes it by default (`find_label_issues` with `filter_by="prune_by_noise_rate"`), from one
//! facet's out-of-sample probabilities `p_i` and given labels `y_i`:
//!
//! 1. **Thresholds**: `t_j` is the mean of `p_i[j]` over the examples labelled `j` (a class
//!    nobody carries gets 2, so it is never confident).
//! 2. **Confident joint** `C[y][j]`: an example is counted in row `y` (its label) and column `j`
//!    when `j` is its only class with `p[j] >= t_j` (less 1e-6), or, when several are, its
//!    most probable class overall; examples with no such class are not counted. The diagonal
//!    is at least 1.
//! 3. **Calibration**: each row is scaled to the number of examples carrying that label, then
//!    the whole to the number of examples, and rounded keeping row totals. Its off-diagonal sum
//!    is the estimated number of wrong labels ([`LabelIssues::estimated_wrong`]).
//! 4. **Pruning by noise rate**: per cell `(y, j)` off the diagonal, the `C[y][j]` examples
//!    labelled `y` with the largest `p[j] - p[y]` are flagged (after moving counts so that each
//!    class keeps at least one example, and truncating to whole examples).
//! 5. An example whose given label is its most probable class (within 1e-6) is never flagged.
//!
//! Unlike the per-class threshold rule alone, step 4 flags as many examples per cell as the
//! calibrated joint estimates are wrong, including examples whose scores fall under every
//! threshold: that is where most of the flips a threshold rule misses lie.
//! `tests/confident_vs_cleanlab.rs` checks every step against cleanlab's own output.

/// Below this, two probabilities count as equal (cleanlab's `FLOATING_POINT_COMPARISON`).
const EPSILON: f64 = 1e-6;
/// The smallest class threshold (cleanlab's `CONFIDENT_THRESHOLDS_LOWER_BOUND`).
const MIN_THRESHOLD: f64 = 2e-6;
/// The threshold of a class no example carries: above any probability.
const ABSENT_CLASS_THRESHOLD: f64 = 2.0;
/// Examples each class keeps however many of its labels look wrong.
const MIN_EXAMPLES_PER_CLASS: u64 = 1;

/// What confident learning finds in one facet.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelIssues {
    /// Per example, whether its label is estimated to be wrong.
    pub flagged: Vec<bool>,
    /// The calibrated confident joint: rows are given labels, columns the labels the model
    /// confidently sees.
    pub joint: Vec<Vec<u64>>,
    /// The number of wrong labels the calibrated joint estimates (its off-diagonal sum).
    pub estimated_wrong: u64,
}

/// Finds the examples whose labels confident learning estimates to be wrong. `labels[i]` is
/// example `i`'s class (unlabelled examples, `None` or out of range, take no part and are never
/// flagged); `probabilities[i]` its out-of-sample probabilities over `classes` classes.
pub fn find_label_issues(
    labels: &[Option<usize>],
    probabilities: &[Vec<f32>],
    classes: usize,
) -> LabelIssues {
    let rows: Vec<(usize, usize, Vec<f64>)> = labels
        .iter()
        .zip(probabilities)
        .enumerate()
        .filter_map(|(i, (label, p))| {
            let y = label.filter(|y| *y < classes && p.len() == classes)?;
            Some((i, y, p.iter().map(|&v| f64::from(v)).collect()))
        })
        .collect();
    let mut flagged = vec![false; labels.len()];
    if rows.is_empty() || classes == 0 {
        return LabelIssues {
            flagged,
            joint: vec![vec![0; classes]; classes],
            estimated_wrong: 0,
        };
    }
    let thresholds = thresholds(&rows, classes);
    let counts = label_counts(&rows, classes);
    let (joint, joint_with_ties) =
        calibrate(&confident_joint(&rows, &thresholds, classes), &counts);
    let prune = keep_at_least_one_per_class(&transpose(&joint_with_ties));
    prune_by_noise_rate(&rows, &prune, &mut flagged);
    for (i, y, p) in &rows {
        if most_probable_with_bonus(p, *y) == *y {
            flagged[*i] = false;
        }
    }
    let estimated_wrong = off_diagonal_sum(&joint);
    LabelIssues {
        flagged,
        joint,
        estimated_wrong,
    }
}

/// Flags, per given class and other class, the `prune[other][given]` examples labelled `given`
/// with the largest `p[other] - p[given]`; examples whose margin equals the last one taken are
/// taken too (which of them cleanlab takes is up to numpy's unstable sort). A class with no
/// more than [`MIN_EXAMPLES_PER_CLASS`] examples loses none.
fn prune_by_noise_rate(
    rows: &[(usize, usize, Vec<f64>)],
    prune: &[Vec<u64>],
    flagged: &mut [bool],
) {
    for given in 0..prune.len() {
        let members: Vec<&(usize, usize, Vec<f64>)> =
            rows.iter().filter(|(_, y, _)| *y == given).collect();
        if members.len() as u64 <= MIN_EXAMPLES_PER_CLASS {
            continue;
        }
        for (other, prune_row) in prune.iter().enumerate() {
            let count = (prune_row[given] as usize).min(members.len());
            if other == given || count == 0 {
                continue;
            }
            let mut order: Vec<(f64, usize)> = members
                .iter()
                .map(|(i, _, p)| (p[other] - p[given], *i))
                .collect();
            order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let cut = order[count - 1].0;
            for (taken, (margin, i)) in order.into_iter().enumerate() {
                if taken >= count && margin != cut {
                    break;
                }
                flagged[i] = true;
            }
        }
    }
}

/// Per class, the mean probability of that class over the examples labelled with it.
fn thresholds(rows: &[(usize, usize, Vec<f64>)], classes: usize) -> Vec<f64> {
    let mut sums = vec![0f64; classes];
    let mut counts = vec![0u64; classes];
    for (_, y, p) in rows {
        sums[*y] += p[*y];
        counts[*y] += 1;
    }
    sums.iter()
        .zip(&counts)
        .map(|(&sum, &count)| {
            if count == 0 {
                ABSENT_CLASS_THRESHOLD
            } else {
                (sum / count as f64).max(MIN_THRESHOLD)
            }
        })
        .collect()
}

fn label_counts(rows: &[(usize, usize, Vec<f64>)], classes: usize) -> Vec<u64> {
    let mut counts = vec![0u64; classes];
    for (_, y, _) in rows {
        counts[*y] += 1;
    }
    counts
}

/// The first index of the largest value (numpy's `argmax`).
fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (j, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = j;
        }
    }
    best
}

/// The most probable class once the given one gets a tie-breaking bonus of [`EPSILON`].
fn most_probable_with_bonus(p: &[f64], given: usize) -> usize {
    let mut bonus = p.to_vec();
    bonus[given] += EPSILON;
    argmax(&bonus)
}

/// Counts of (given label, confidently seen label), diagonal at least 1.
fn confident_joint(
    rows: &[(usize, usize, Vec<f64>)],
    thresholds: &[f64],
    classes: usize,
) -> Vec<Vec<u64>> {
    let mut joint = vec![vec![0u64; classes]; classes];
    for (_, y, p) in rows {
        let confident: Vec<usize> = (0..classes)
            .filter(|&j| p[j] >= thresholds[j] - EPSILON)
            .collect();
        let seen = match confident.as_slice() {
            [] => continue,
            [only] => *only,
            _ => argmax(p),
        };
        joint[*y][seen] += 1;
    }
    for (j, row) in joint.iter_mut().enumerate() {
        row[j] = row[j].max(1);
    }
    joint
}

/// Rows scaled to the label counts, the whole to the number of examples, rounded keeping each
/// row's total; and the same with every rounding tie resolved upwards (see
/// [`round_preserving_sum`]), which is what the pruning counts.
fn calibrate(joint: &[Vec<u64>], counts: &[u64]) -> (Vec<Vec<u64>>, Vec<Vec<u64>>) {
    let scaled: Vec<Vec<f64>> = joint
        .iter()
        .zip(counts)
        .map(|(row, &count)| {
            let total = (row.iter().sum::<u64>() as f64).max(f64::MIN_POSITIVE);
            row.iter()
                .map(|&c| c as f64 / total * count as f64)
                .collect()
        })
        .collect();
    let flat: Vec<f64> = scaled.iter().flatten().copied().collect();
    let grand: f64 = numpy_sum(&flat).max(f64::MIN_POSITIVE);
    let examples: f64 = counts.iter().sum::<u64>() as f64;
    scaled
        .iter()
        .map(|row| {
            let row: Vec<f64> = row.iter().map(|v| v / grand * examples).collect();
            let rounded = round_preserving_sum(&row);
            (rounded.values, rounded.with_ties)
        })
        .unzip()
}

/// Values rounded keeping their total, and the same with ties resolved upwards.
struct Rounded {
    values: Vec<u64>,
    /// Where the last unit added (or taken away) had to choose between equal remainders, every
    /// one of them keeps the larger value. Which one cleanlab picks depends on the order in
    /// which numpy's (unstable) sort leaves equal values, so a count it might give is counted.
    with_ties: Vec<u64>,
}

/// Rounds each value (halves to even, as numpy does), then moves the rounding error onto the
/// values with the largest (or smallest) remainders so that the rounded values sum to the
/// rounded total; equal remainders go to the later value when adding, the earlier when taking
/// away (numpy's stable sort, reversed for adding).
fn round_preserving_sum(values: &[f64]) -> Rounded {
    let total = numpy_sum(values).round_ties_even();
    let mut rounded: Vec<f64> = values.iter().map(|v| v.round_ties_even()).collect();
    let mut tie_bonus = vec![0u64; values.len()];
    loop {
        let sum: f64 = numpy_sum(&rounded).round_ties_even();
        let difference = total - sum;
        if difference.abs() <= EPSILON {
            break;
        }
        let step = if difference < 0.0 { -1.0 } else { 1.0 };
        let changes = (difference.abs() as usize).min(values.len());
        let remainders: Vec<f64> = values.iter().zip(&rounded).map(|(v, r)| v - r).collect();
        let remainder = |j: usize| remainders[j];
        let mut order: Vec<usize> = (0..values.len()).collect();
        // Adding: the largest remainders first; removing: the smallest.
        order.sort_by(|&a, &b| {
            let (ra, rb) = (remainder(a), remainder(b));
            if step > 0.0 {
                rb.total_cmp(&ra).then(b.cmp(&a))
            } else {
                ra.total_cmp(&rb).then(a.cmp(&b))
            }
        });
        let last = remainder(order[changes - 1]);
        let ambiguous = order
            .get(changes)
            .is_some_and(|&next| remainder(next) == last);
        for (position, &j) in order.iter().enumerate() {
            let changed = position < changes;
            if ambiguous && remainder(j) == last && (changed != (step > 0.0)) {
                tie_bonus[j] += 1;
            }
            if changed {
                rounded[j] += step;
            }
        }
    }
    let values: Vec<u64> = rounded.iter().map(|v| v.max(0.0) as u64).collect();
    let with_ties = values.iter().zip(&tie_bonus).map(|(v, b)| v + b).collect();
    Rounded { values, with_ties }
}

/// A sum in numpy's pairwise order (eight running sums in blocks of up to 128 values, then
/// halves), so that the last bits, and with them exact ties between remainders, come out as
/// cleanlab's.
fn numpy_sum(values: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = values.len();
    if n < 8 {
        return values.iter().fold(0.0, |sum, v| sum + v);
    }
    if n > BLOCK {
        let half = n / 2;
        let half = half - half % 8;
        return numpy_sum(&values[..half]) + numpy_sum(&values[half..]);
    }
    let mut partial = [0f64; 8];
    partial.copy_from_slice(&values[..8]);
    let whole = n - n % 8;
    for block in values[8..whole].chunks_exact(8) {
        for (sum, v) in partial.iter_mut().zip(block) {
            *sum += v;
        }
    }
    let mut total = ((partial[0] + partial[1]) + (partial[2] + partial[3]))
        + ((partial[4] + partial[5]) + (partial[6] + partial[7]));
    for v in &values[whole..] {
        total += v;
    }
    total
}

fn transpose(matrix: &[Vec<u64>]) -> Vec<Vec<u64>> {
    let n = matrix.len();
    (0..n)
        .map(|r| (0..n).map(|c| matrix[c][r]).collect())
        .collect()
}

/// The prune counts (rows: the label seen, columns: the given label), with each column's
/// diagonal raised to at least [`MIN_EXAMPLES_PER_CLASS`], the rise taken evenly from that
/// column's other non-zero cells, and every count truncated to whole examples.
fn keep_at_least_one_per_class(prune: &[Vec<u64>]) -> Vec<Vec<u64>> {
    let n = prune.len();
    let mut result = vec![vec![0u64; n]; n];
    for column in 0..n {
        let diagonal = prune[column][column];
        let raised = diagonal.max(MIN_EXAMPLES_PER_CLASS);
        let rise = (raised - diagonal) as f64;
        let nonzero = (0..n).filter(|&r| prune[r][column] != 0).count();
        let spread = (nonzero as f64 - 1.0).max(1.0);
        for row in 0..n {
            result[row][column] = if row == column {
                raised
            } else {
                (prune[row][column] as f64 - rise / spread).max(0.0).trunc() as u64
            };
        }
    }
    result
}

fn off_diagonal_sum(matrix: &[Vec<u64>]) -> u64 {
    matrix
        .iter()
        .enumerate()
        .map(|(r, row)| {
            row.iter()
                .enumerate()
                .filter(|(c, _)| *c != r)
                .map(|(_, v)| v)
                .sum::<u64>()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flagged(issues: &LabelIssues) -> Vec<usize> {
        (0..issues.flagged.len())
            .filter(|&i| issues.flagged[i])
            .collect()
    }

    /// Worked by hand. Thresholds: t0 = (0.8 + 0.7 + 0.1) / 3 = 0.533, t1 = (0.8 + 0.7) / 2 =
    /// 0.75, t2 = 0.4. Confidently seen: e0, e1 as 0; e2 as 1 (its label is 0); e3 as 1; e4
    /// nothing (0.7 < t1); e5 as 2. Joint [[2,1,0],[0,1,0],[0,0,1]], calibrated to the label
    /// counts (3, 2, 1): [[2,1,0],[0,2,0],[0,0,1]], one wrong label estimated. Pruning cell
    /// (given 0, seen 1) takes the one example labelled 0 with the largest p1 - p0: e2.
    #[test]
    fn a_flip_is_found_as_worked_by_hand() {
        let labels = [Some(0), Some(0), Some(0), Some(1), Some(1), Some(2)];
        let probabilities = [
            vec![0.8, 0.1, 0.1],
            vec![0.7, 0.2, 0.1],
            vec![0.1, 0.8, 0.1],
            vec![0.1, 0.8, 0.1],
            vec![0.2, 0.7, 0.1],
            vec![0.3, 0.3, 0.4],
        ];
        let issues = find_label_issues(&labels, &probabilities, 3);
        assert_eq!(issues.joint, [[2, 1, 0], [0, 2, 0], [0, 0, 1]]);
        assert_eq!(issues.estimated_wrong, 1);
        assert_eq!(flagged(&issues), [2]);
    }

    /// Every label right and the model agrees: the joint is diagonal, nothing is flagged. A
    /// class nobody carries (2) is never confident, so an example the model gives to it is not
    /// flagged either.
    #[test]
    fn right_labels_and_absent_classes_are_not_flagged() {
        let labels = [Some(0), Some(0), Some(1), Some(1), Some(0)];
        let probabilities = [
            vec![0.9, 0.1, 0.0],
            vec![0.8, 0.2, 0.0],
            vec![0.2, 0.8, 0.0],
            vec![0.1, 0.9, 0.0],
            vec![0.05, 0.05, 0.9],
        ];
        let issues = find_label_issues(&labels, &probabilities, 3);
        assert_eq!(issues.estimated_wrong, 0);
        assert!(flagged(&issues).is_empty());
        assert_eq!(
            issues.joint[2],
            [0, 0, 0],
            "a class without labels has an empty row"
        );
    }

    /// The expected values are what cleanlab 2.9's `round_preserving_sum` returns.
    #[test]
    fn rounding_keeps_the_total_as_cleanlab_does() {
        let cases: [(&[f64], &[u64]); 6] = [
            (&[0.5, 0.5, 1.0], &[0, 1, 1]),
            (&[2.4, 2.4, 2.2], &[2, 3, 2]),
            (&[1.6, 1.6, 1.8], &[1, 2, 2]),
            (&[3.0, 0.0], &[3, 0]),
            (&[0.3, 0.3, 0.3, 0.1], &[0, 0, 1, 0]),
            (&[2.5, 2.5, 0.0], &[2, 3, 0]),
        ];
        for (values, expected) in cases {
            assert_eq!(round_preserving_sum(values).values, expected, "{values:?}");
        }
    }

    /// [2.4, 2.4, 2.2] rounds to [2, 2, 2] and must gain one unit: the two 2.4s tie for it, so
    /// both keep it where ties count. [1.6, 1.6, 1.8] must lose one: the two 1.6s tie to lose
    /// it, so neither does. [0.5, 0.5, 1.0]: rounding to even gives [0, 0, 1], one unit to add,
    /// a tie between the two halves.
    #[test]
    fn rounding_ties_resolve_upwards_where_counted() {
        assert_eq!(round_preserving_sum(&[2.4, 2.4, 2.2]).with_ties, [3, 3, 2]);
        assert_eq!(round_preserving_sum(&[1.6, 1.6, 1.8]).with_ties, [2, 2, 2]);
        assert_eq!(round_preserving_sum(&[0.5, 0.5, 1.0]).with_ties, [1, 1, 1]);
        // No tie: both agree.
        let clear = round_preserving_sum(&[2.6, 2.3, 2.1]);
        assert_eq!(
            (clear.values.clone(), clear.with_ties),
            (vec![3, 2, 2], vec![3, 2, 2])
        );
    }
}
