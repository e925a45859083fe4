//! Statistics of the design sampler and the dataset plan (no rendering).

use atelier_vision::synth::design::{MAX_VARIANTS, VARIABLE_FACETS};
use atelier_vision::synth::{DatasetPlan, FACETS, plan_dataset};

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

/// Number of variants of each design (0 for variants themselves).
fn family_sizes(plan: &DatasetPlan) -> Vec<usize> {
    let mut sizes = vec![0usize; plan.designs.len()];
    for v in plan.designs.iter().filter_map(|d| d.variation) {
        sizes[v.base] += 1;
    }
    sizes
}

#[test]
fn variants_change_exactly_one_facet_of_their_base_and_keep_its_fabric() {
    for seed in [7, 8, 11] {
        let plan = plan_dataset(3000, seed);
        let mut varied = [0usize; 5];
        for d in &plan.designs {
            assert!(d.facets.is_drawable(), "{:?}", d.facets);
            let Some(v) = d.variation else { continue };
            let base = &plan.designs[v.base];
            assert!(
                v.base < d.id && base.variation.is_none(),
                "{d:?} varies {base:?}"
            );
            assert!(VARIABLE_FACETS.contains(&v.facet), "{v:?}");
            let (a, b) = (d.facets.indices(), base.facets.indices());
            let changed: Vec<usize> = (0..5).filter(|&f| a[f] != b[f]).collect();
            assert_eq!(changed, [v.facet], "{:?} -> {:?}", base.facets, d.facets);
            assert_eq!(d.fabric, base.fabric, "same colours, print, sheen");
            varied[v.facet] += 1;
            // No two members of a family are the same dress.
            for other in &plan.designs[v.base..d.id] {
                assert_ne!(
                    other.facets,
                    d.facets,
                    "{} repeats {}",
                    d.name(),
                    other.name()
                );
            }
        }
        assert!(
            VARIABLE_FACETS.iter().all(|&f| varied[f] >= 10),
            "seed {seed}: varied facets {varied:?}"
        );
    }
}

#[test]
fn about_a_sixth_of_base_designs_get_one_or_two_variants() {
    let plan = plan_dataset(3000, 7);
    let sizes = family_sizes(&plan);
    let bases: Vec<usize> = (0..plan.designs.len())
        .filter(|&d| plan.designs[d].variation.is_none())
        .collect();
    let families = bases.iter().filter(|&&b| sizes[b] > 0).count();
    let variants = plan.designs.len() - bases.len();
    assert!(sizes.iter().all(|&n| n <= MAX_VARIANTS), "{sizes:?}");
    let share = families as f64 / bases.len() as f64;
    eprintln!(
        "3000 pictures, seed 7: {} designs, {} base, {families} with variants ({:.1}%), \
         {variants} variants ({:.1}% of designs)",
        plan.designs.len(),
        bases.len(),
        100.0 * share,
        100.0 * variants as f64 / plan.designs.len() as f64,
    );
    assert!(
        (0.14..0.22).contains(&share),
        "share of bases with variants {share}"
    );
    // Every design is shown, variants included.
    let mut shown = vec![false; plan.designs.len()];
    for &d in &plan.shots {
        shown[d] = true;
    }
    assert!(shown.iter().all(|&s| s));
}

#[test]
fn small_data_sets_have_variant_families() {
    for seed in 0..20 {
        let plan = plan_dataset(60, seed);
        let families = family_sizes(&plan).iter().filter(|&&n| n > 0).count();
        assert!(families >= 1, "seed {seed}: no family in 60 pictures");
    }
}

#[test]
fn variants_keep_the_class_balance_of_base_designs() {
    // Over ten plans (about 4,500 variants), each facet's value shares among variants stay
    // close to those among base designs; drawing changed values by weight would not (it
    // turns many knee-length bases into minis, e.g. 7-8% minis instead of 5%).
    let plans: Vec<DatasetPlan> = (0..10).map(|seed| plan_dataset(3000, seed)).collect();
    for (f, (name, values)) in FACETS.iter().enumerate() {
        let (mut base, mut variant) = (vec![0.0; values.len()], vec![0.0; values.len()]);
        for d in plans.iter().flat_map(|p| &p.designs) {
            let counts = if d.variation.is_some() {
                &mut variant
            } else {
                &mut base
            };
            counts[d.facets.indices()[f]] += 1.0;
        }
        let (nb, nv): (f64, f64) = (base.iter().sum(), variant.iter().sum());
        let distance: f64 = (0..values.len())
            .map(|v| (base[v] / nb - variant[v] / nv).abs())
            .sum::<f64>()
            / 2.0;
        let limit = if *name == "length" { 0.02 } else { 0.05 };
        assert!(
            distance < limit,
            "{name}: {base:?} vs {variant:?}, distance {distance}"
        );
    }
}
