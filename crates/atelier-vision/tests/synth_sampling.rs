//! Statistics of the design sampler and the dataset plan (no rendering).

use atelier_vision::synth::{FACETS, plan_dataset};

#[test]
fn every_facet_is_long_tailed_on_2000_images() {
    for seed in [7, 8, 9] {
        let plan = plan_dataset(2000, seed);
        for (f, (name, values)) in FACETS.iter().enumerate() {
            let mut counts = vec![0usize; values.len()];
            for &d in &plan.shots {
                counts[plan.designs[d].facets.indices()[f]] += 1;
            }
            let (max, min) = (*counts.iter().max().unwrap(), *counts.iter().min().unwrap());
            assert!(min > 0, "seed {seed}: some {name} never drawn: {counts:?}");
            assert!(
                max as f64 >= 8.0 * min as f64,
                "seed {seed}: {name} not long-tailed: {counts:?}"
            );
            // ...but even the rarest value must stay learnable.
            assert!(min >= 20, "seed {seed}: rarest {name} too rare: {counts:?}");
        }
    }
}

#[test]
fn about_a_third_of_designs_repeat_two_to_four_times() {
    let plan = plan_dataset(3000, 11);
    assert_eq!(plan.shots.len(), 3000);
    let mut copies = vec![0usize; plan.designs.len()];
    for &d in &plan.shots {
        copies[d] += 1;
    }
    assert!(
        copies.iter().all(|&c| (1..=4).contains(&c)),
        "copies out of 1..=4"
    );
    let repeated = copies.iter().filter(|&&c| c >= 2).count();
    let share = repeated as f64 / plan.designs.len() as f64;
    assert!(
        (0.28..0.39).contains(&share),
        "share of repeated designs {share}"
    );
    // Copies are spread through the data set rather than adjacent.
    let adjacent = plan.shots.windows(2).filter(|w| w[0] == w[1]).count();
    assert!(adjacent < 20, "{adjacent} adjacent copies");
    for (i, d) in plan.designs.iter().enumerate() {
        assert_eq!(d.id, i);
        assert!(d.facets.is_drawable(), "{:?}", d.facets);
    }
}

#[test]
fn occasion_is_learnable_from_length_but_not_a_function_of_it() {
    // Evening and bridal are mostly maxi, casual/work/cocktail mostly not: the cue agrees
    // often, not always.
    let plan = plan_dataset(3000, 4);
    let (mut agree, mut total) = (0, 0);
    for d in &plan.designs {
        let formal = d.facets.occasion.index() >= 3;
        let long = d.facets.length.index() == 3;
        agree += usize::from(formal == long);
        total += 1;
    }
    let share = agree as f64 / total as f64;
    assert!(
        (0.85..0.97).contains(&share),
        "length/occasion agreement {share}"
    );
}
