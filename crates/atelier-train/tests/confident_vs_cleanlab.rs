//! Confident learning as atelier computes it ([`atelier_train::confident`]) against cleanlab
//! 2.9 on the same probabilities: the flagged examples, the calibrated confident joint and its
//! estimate of wrong labels, case by case. The reference is made by
//! `fixtures/cleanlab/make_cleanlab_reference.py`.

use atelier_train::confident::find_label_issues;
use serde_json::Value;

#[test]
fn flags_the_examples_cleanlab_flags() {
    let text = include_str!("../fixtures/cleanlab/cleanlab_reference.json");
    let reference: Value = serde_json::from_str(text).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 9);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let classes = case["classes"].as_u64().unwrap() as usize;
        let labels: Vec<Option<usize>> = case["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| Some(l.as_u64().unwrap() as usize))
            .collect();
        let probabilities: Vec<Vec<f32>> =
            serde_json::from_value(case["probabilities"].clone()).unwrap();
        let found = find_label_issues(&labels, &probabilities, classes);
        let flagged: Vec<usize> = found
            .flagged
            .iter()
            .enumerate()
            .filter(|(_, f)| **f)
            .map(|(i, _)| i)
            .collect();
        let expected: Vec<usize> = serde_json::from_value(case["flagged"].clone()).unwrap();
        let joint: Vec<Vec<u64>> = serde_json::from_value(case["joint"].clone()).unwrap();
        if case["ambiguous"].as_bool().unwrap() {
            // A rounding tie cleanlab settles by numpy's sort order: atelier counts both sides,
            // so it flags all cleanlab flags and a few more at most; rows keep their totals.
            let missing: Vec<&usize> = expected.iter().filter(|i| !flagged.contains(i)).collect();
            assert!(missing.is_empty(), "{name}: cleanlab flags {missing:?} too");
            assert!(flagged.len() <= expected.len() + joint.len(), "{name}");
            for (ours, theirs) in found.joint.iter().zip(&joint) {
                assert_eq!(
                    ours.iter().sum::<u64>(),
                    theirs.iter().sum::<u64>(),
                    "{name}"
                );
            }
        } else {
            assert_eq!(flagged, expected, "{name}: flagged examples");
            assert_eq!(found.joint, joint, "{name}: calibrated confident joint");
        }
        assert_eq!(
            found.estimated_wrong,
            case["estimated_wrong"].as_u64().unwrap(),
            "{name}: estimated wrong labels"
        );
    }
}

/// Unlabelled examples take no part, and nothing is flagged without labels.
#[test]
fn unlabelled_examples_are_never_flagged() {
    let probabilities = vec![vec![0.9, 0.1], vec![0.1, 0.9], vec![0.05, 0.95]];
    let found = find_label_issues(&[Some(0), None, Some(7)], &probabilities, 2);
    assert_eq!(found.flagged, [false, false, false]);
    let empty = find_label_issues(&[None, None], &probabilities[..2], 2);
    assert_eq!(
        (empty.flagged, empty.estimated_wrong),
        (vec![false, false], 0)
    );
}
