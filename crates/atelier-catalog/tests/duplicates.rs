//! Reviewers' verdicts on near-duplicate pairs: stored once per pair whatever the order, the
//! newest replacing the older, refused for unknown or identical images; on SQLite and on
//! PostgreSQL.

mod common;

use atelier_catalog::{CatalogError, DuplicateVerdict};
use common::{TestEnv, blob, import, sha256_hex};

on_both_backends!(verdicts_are_kept_per_pair_and_replaced);

fn id_of(name: &str) -> String {
    sha256_hex(&blob(name))
}

async fn verdicts_are_kept_per_pair_and_replaced(env: &TestEnv) {
    let catalog = env.open().await;
    let mut manifest = String::from("path,silhouette\n");
    for name in ["a", "b", "c"] {
        env.write(&format!("img/{name}.jpg"), &blob(name));
        manifest.push_str(&format!("img/{name}.jpg,sheath\n"));
    }
    import(&catalog, &env.write("manifest.csv", manifest.as_bytes())).await;
    let (a, b, c) = (id_of("a"), id_of("b"), id_of("c"));
    let (low, high) = if a < b { (&a, &b) } else { (&b, &a) };
    // Either order names the same pair; the smaller id comes first.
    let first = catalog
        .decide_duplicate(high, low, DuplicateVerdict::Same, "zoe")
        .await
        .unwrap();
    assert_eq!((&first.image_a, &first.image_b), (low, high));
    catalog
        .decide_duplicate(&a, &c, DuplicateVerdict::Different, "bob")
        .await
        .unwrap();
    let replaced = catalog
        .decide_duplicate(low, high, DuplicateVerdict::Different, "bob")
        .await
        .unwrap();
    assert_eq!(replaced.verdict, DuplicateVerdict::Different);
    let stored = catalog.duplicate_decisions().await.unwrap();
    assert_eq!(stored.len(), 2);
    let pair = stored
        .iter()
        .find(|d| d.image_a == *low && d.image_b == *high)
        .unwrap();
    assert_eq!(
        (pair.verdict, pair.actor.as_str()),
        (DuplicateVerdict::Different, "bob")
    );

    assert!(matches!(
        catalog
            .decide_duplicate(&a, &a, DuplicateVerdict::Same, "zoe")
            .await
            .unwrap_err(),
        CatalogError::InvalidDuplicate(_)
    ));
    assert!(matches!(
        catalog
            .decide_duplicate(&a, &"f".repeat(64), DuplicateVerdict::Same, "zoe")
            .await
            .unwrap_err(),
        CatalogError::UnknownImage(_)
    ));
    assert!(matches!(
        catalog
            .decide_duplicate(&a, &b, DuplicateVerdict::Same, "")
            .await
            .unwrap_err(),
        CatalogError::InvalidUser(_)
    ));
    assert_eq!(catalog.duplicate_decisions().await.unwrap().len(), 2);
}
