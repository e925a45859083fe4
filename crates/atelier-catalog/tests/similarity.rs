//! Storage for dress similarity search, each case on SQLite, on PostgreSQL and on PostgreSQL
//! with pgvector: design variants from manifests, similarity triplets, embeddings per model,
//! the active images' labels, and nearest-neighbour search inside the database.

mod common;

use std::collections::BTreeMap;

use atelier_catalog::{
    Catalog, CatalogError, DesignRecord, ImportOptions, LABELS_COUNTER, LabelCondition, LabelEdit,
    TripletSource,
};
use common::{TestEnv, blob, import, sha256_hex};

on_every_backend!(
    nearest_images_match_a_scan_and_follow_the_labels,
    variant_columns_are_stored_on_designs,
    reimporting_variants_writes_nothing_and_changes_are_counted,
    manifests_without_variant_columns_leave_variants_alone,
    a_variant_of_an_unknown_design_is_refused_and_nothing_is_written,
    a_varied_design_may_come_later_or_from_the_catalogue,
    rows_of_one_design_must_agree_on_what_it_varies,
    triplets_are_imported_by_id_and_path,
    triplet_file_errors_name_the_row_and_write_nothing,
    review_triplets_are_added_listed_and_removed,
    embeddings_round_trip_and_replace,
    embeddings_are_checked_and_all_or_nothing,
    embeddings_of_inactive_images_are_not_returned,
    embeddings_are_deleted_per_image_and_per_model,
    many_embeddings_span_several_statements,
    active_labels_cover_every_active_image,
    change_counters_move_with_the_writes_they_count,
);

/// A reviewer's first change of the neckline of image `name` (version 1 as imported).
fn first_neckline_edit(name: &str, label: Option<&str>) -> LabelEdit {
    LabelEdit {
        image: id_of(name),
        facet: "neckline".to_string(),
        label: label.map(str::to_string),
        expected_version: 1,
        actor: "alice".to_string(),
        reason: None,
        run_id: None,
    }
}

fn id_of(name: &str) -> String {
    sha256_hex(&blob(name))
}

/// Writes `img/<name>.jpg` for each name.
fn write_images(env: &TestEnv, names: &[&str]) {
    for name in names {
        env.write(&format!("img/{name}.jpg"), &blob(name));
    }
}

/// Two designs and a variant of the first (neckline), each shown by images; `e.jpg` is missing.
fn variant_manifest(env: &TestEnv) -> std::path::PathBuf {
    write_images(env, &["a", "b", "c", "d"]);
    env.write(
        "manifest.csv",
        b"path,neckline,sleeve,design,variant_of,varied_facet\n\
          img/a.jpg,v-neck,long,d1,,\n\
          img/b.jpg,v-neck,short,d1,,\n\
          img/c.jpg,boat,long,d2,d1,neckline\n\
          img/d.jpg,round,long,d3,,\n\
          img/e.jpg,boat,long,d2,d1,neckline\n",
    )
}

fn design(id: &str, variant: Option<(&str, &str)>, images: &[&str]) -> DesignRecord {
    let mut images: Vec<String> = images.iter().map(|n| id_of(n)).collect();
    images.sort();
    DesignRecord {
        id: id.to_string(),
        variant_of: variant.map(|(of, _)| of.to_string()),
        varied_facet: variant.map(|(_, facet)| facet.to_string()),
        images,
    }
}

async fn variant_columns_are_stored_on_designs(env: &TestEnv) {
    let catalog = env.open().await;
    let report = import(&catalog, &variant_manifest(env)).await;
    assert!(!env.path("img/e.jpg").exists());
    assert_eq!((report.added, report.quarantined), (4, 1));
    assert_eq!(report.variants_updated, 1);
    // The missing e.jpg shows d2 too, but only active images are listed.
    assert_eq!(
        catalog.designs().await.unwrap(),
        [
            design("d1", None, &["a", "b"]),
            design("d2", Some(("d1", "neckline")), &["c"]),
            design("d3", None, &["d"]),
        ]
    );
    // The variant columns are no facets.
    let facets: Vec<String> = catalog
        .facets()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(facets, ["neckline", "sleeve"]);
}

async fn reimporting_variants_writes_nothing_and_changes_are_counted(env: &TestEnv) {
    let catalog = env.open().await;
    let manifest = variant_manifest(env);
    import(&catalog, &manifest).await;
    let before = catalog.designs().await.unwrap();
    let summary = catalog.summary().await.unwrap();

    let again = import(&catalog, &manifest).await;
    assert_eq!((again.added, again.updated, again.unchanged), (0, 0, 4));
    assert_eq!(again.variants_updated, 0);
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    assert_eq!(catalog.designs().await.unwrap(), before);
    assert_eq!(catalog.summary().await.unwrap(), summary);

    // d2 no longer varies d1, and d3 now varies d2 in its sleeve.
    let manifest = env.write(
        "manifest.csv",
        b"path,neckline,sleeve,design,variant_of,varied_facet\n\
          img/a.jpg,v-neck,long,d1,,\n\
          img/b.jpg,v-neck,short,d1,,\n\
          img/c.jpg,boat,long,d2,,\n\
          img/d.jpg,round,long,d3,d2,sleeve\n",
    );
    let changed = import(&catalog, &manifest).await;
    assert_eq!(changed.variants_updated, 2);
    assert_eq!((changed.updated, changed.unchanged), (0, 4));
    assert_eq!(
        catalog.designs().await.unwrap(),
        [
            design("d1", None, &["a", "b"]),
            design("d2", None, &["c"]),
            design("d3", Some(("d2", "sleeve")), &["d"]),
        ]
    );
}

async fn manifests_without_variant_columns_leave_variants_alone(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &variant_manifest(env)).await;
    let before = catalog.designs().await.unwrap();
    // The same designs from a manifest of the old layout: no variant columns, nothing changes.
    let old = env.write(
        "old.csv",
        b"path,neckline,sleeve,design\n\
          img/c.jpg,boat,long,d2\n",
    );
    let report = import(&catalog, &old).await;
    assert_eq!((report.unchanged, report.variants_updated), (1, 0));
    assert_eq!(catalog.designs().await.unwrap(), before);

    // A catalogue made from old manifests only has designs that vary none.
    let fresh_env = TestEnv::sqlite();
    let fresh = fresh_env.open().await;
    let report = import(&fresh, &old).await;
    assert_eq!((report.added, report.variants_updated), (1, 0));
    assert_eq!(fresh.designs().await.unwrap(), [design("d2", None, &["c"])]);
}

async fn a_variant_of_an_unknown_design_is_refused_and_nothing_is_written(env: &TestEnv) {
    let catalog = env.open().await;
    write_images(env, &["a", "b"]);
    let manifest = env.write(
        "manifest.csv",
        b"path,neckline,design,variant_of,varied_facet\n\
          img/a.jpg,v-neck,d1,,\n\
          img/b.jpg,boat,d2,d9,neckline\n",
    );
    let error = catalog
        .import(&manifest, &ImportOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(error, CatalogError::Source { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message
            .contains("manifest.csv line 3, column variant_of: design \"d2\" varies design \"d9\""),
        "{message}"
    );
    assert!(message.contains("list the design it varies"), "{message}");
    let summary = catalog.summary().await.unwrap();
    assert_eq!((summary.images, summary.designs, summary.facets), (0, 0, 0));

    // Cell-level mistakes name their column.
    for (row, column) in [
        ("img/b.jpg,boat,d2,d1,", "column varied_facet"),
        ("img/b.jpg,boat,d2,,neckline", "column variant_of"),
        ("img/b.jpg,boat,,d1,neckline", "column design"),
        ("img/b.jpg,boat,d2,d2,neckline", "column variant_of"),
        ("img/b.jpg,boat,d2,d1,colour", "column varied_facet"),
    ] {
        let text =
            format!("path,neckline,design,variant_of,varied_facet\nimg/a.jpg,v-neck,d1,,\n{row}\n");
        let manifest = env.write("manifest.csv", text.as_bytes());
        let message = catalog
            .import(&manifest, &ImportOptions::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(&format!("manifest.csv line 3, {column}")),
            "{row}: {message}"
        );
    }
    assert_eq!(catalog.summary().await.unwrap().images, 0);
}

async fn a_varied_design_may_come_later_or_from_the_catalogue(env: &TestEnv) {
    let catalog = env.open().await;
    // The base design is listed after more rows than one write chunk (2 000): its variant's
    // chunk is written before the base design exists. Missing files are placeholders, which
    // are enough to carry designs.
    let mut text = String::from("path,neckline,design,variant_of,varied_facet\n");
    text.push_str("img/a.jpg,boat,d2,d1,neckline\n");
    for i in 0..2_050 {
        text.push_str(&format!("gone/{i}.jpg,boat,,,\n"));
    }
    text.push_str("img/b.jpg,v-neck,d1,,\n");
    write_images(env, &["a", "b", "c"]);
    let manifest = env.write("manifest.csv", text.as_bytes());
    let report = import(&catalog, &manifest).await;
    assert_eq!((report.added, report.variants_updated), (2, 1));

    // Another source may vary a design that only the catalogue lists.
    let other = env.write(
        "other.csv",
        b"path,neckline,design,variant_of,varied_facet\n\
          img/c.jpg,boat,d3,d1,neckline\n",
    );
    let report = import(&catalog, &other).await;
    assert_eq!((report.added, report.variants_updated), (1, 1));
    assert_eq!(
        catalog.designs().await.unwrap(),
        [
            design("d1", None, &["b"]),
            design("d2", Some(("d1", "neckline")), &["a"]),
            design("d3", Some(("d1", "neckline")), &["c"]),
        ]
    );
}

async fn rows_of_one_design_must_agree_on_what_it_varies(env: &TestEnv) {
    let catalog = env.open().await;
    write_images(env, &["a", "b", "c"]);
    let manifest = env.write(
        "manifest.csv",
        b"path,neckline,sleeve,design,variant_of,varied_facet\n\
          img/a.jpg,v-neck,long,d1,,\n\
          img/b.jpg,boat,long,d2,d1,neckline\n\
          img/c.jpg,boat,short,d2,d1,sleeve\n",
    );
    let message = catalog
        .import(&manifest, &ImportOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(
            "manifest.csv line 4, column variant_of: design \"d2\" is a variant of \"d1\" in \
             sleeve here but a variant of \"d1\" in neckline at "
        ),
        "{message}"
    );
    assert!(
        message.contains("manifest.csv line 3; give every row"),
        "{message}"
    );
    assert_eq!(catalog.summary().await.unwrap().images, 0);
}

/// `pairs` in image id order, as the embeddings come back.
fn by_id(mut pairs: Vec<(String, Vec<f32>)>) -> Vec<(String, Vec<f32>)> {
    pairs.sort_by(|x, y| x.0.cmp(&y.0));
    pairs
}

/// Imports `a` to `e` (all active) and returns the catalogue.
async fn five_images(env: &TestEnv) -> Catalog {
    let catalog = env.open().await;
    write_images(env, &["a", "b", "c", "d", "e"]);
    let manifest = env.write(
        "manifest.csv",
        b"path,neckline\nimg/a.jpg,v-neck\nimg/b.jpg,v-neck\nimg/c.jpg,boat\n\
          img/d.jpg,boat\nimg/e.jpg,round\n",
    );
    import(&catalog, &manifest).await;
    catalog
}

fn ids(names: [&str; 3]) -> [String; 3] {
    names.map(id_of)
}

fn stored(catalog_triplets: &[atelier_catalog::TripletRecord]) -> Vec<[String; 3]> {
    catalog_triplets
        .iter()
        .map(|t| [t.reference.clone(), t.similar.clone(), t.dissimilar.clone()])
        .collect()
}

async fn triplets_are_imported_by_id_and_path(env: &TestEnv) {
    let catalog = five_images(env).await;
    // Paths are relative to the CSV's folder; ids and paths mix; the columns may come in any
    // order; the last row repeats the first.
    let text = format!(
        "similar,reference,dissimilar\n\
         ../img/b.jpg,../img/a.jpg,../img/c.jpg\n\
         {},{},../img/e.jpg\n\
         {},../img/c.jpg,../img/a.jpg\n\
         ../img/b.jpg,{},../img/c.jpg\n",
        id_of("d"),
        id_of("c"),
        env.path("img/d.jpg").display(),
        id_of("a"),
    );
    let csv = env.write("eval/triplets.csv", text.as_bytes());
    let report = catalog.import_triplets(&csv, "alice").await.unwrap();
    assert_eq!(
        (report.rows, report.added, report.already_stored),
        (4, 3, 1)
    );
    let triplets = catalog.triplets().await.unwrap();
    assert_eq!(
        stored(&triplets),
        [
            ids(["a", "b", "c"]),
            ids(["c", "d", "e"]),
            ids(["c", "d", "a"])
        ]
    );
    for t in &triplets {
        assert_eq!(t.source, TripletSource::Import);
        assert_eq!(t.actor.as_deref(), Some("alice"));
        assert!(t.usable);
        assert!(t.created_at > 0);
    }
    assert!(triplets.windows(2).all(|w| w[0].id < w[1].id));

    // Again: every triplet is counted as stored, none is added twice.
    let again = catalog.import_triplets(&csv, "bob").await.unwrap();
    assert_eq!((again.added, again.already_stored), (0, 4));
    assert_eq!(catalog.triplets().await.unwrap(), triplets);

    // Once an image is removed, its triplets stay but are no longer usable.
    let manifest = env.write(
        "manifest.csv",
        b"path,neckline\nimg/a.jpg,v-neck\nimg/b.jpg,v-neck\nimg/c.jpg,boat\nimg/d.jpg,boat\n",
    );
    import(&catalog, &manifest).await;
    let usable: Vec<bool> = catalog
        .triplets()
        .await
        .unwrap()
        .iter()
        .map(|t| t.usable)
        .collect();
    assert_eq!(usable, [true, false, true]);
}

async fn triplet_file_errors_name_the_row_and_write_nothing(env: &TestEnv) {
    let catalog = five_images(env).await;
    let unknown_id = "f".repeat(64);
    let cases = [
        (
            format!(
                "reference,similar,dissimilar\nimg/a.jpg,img/b.jpg,img/c.jpg\nimg/a.jpg,img/b.jpg,{unknown_id}\n"
            ),
            format!("t.csv line 3, column dissimilar: image {unknown_id} is not in the catalogue"),
        ),
        (
            "reference,similar,dissimilar\nimg/a.jpg,img/zz.jpg,img/c.jpg\n".to_string(),
            "t.csv line 2, column similar: \"img/zz.jpg\"".to_string(),
        ),
        (
            format!(
                "reference,similar,dissimilar\nimg/a.jpg,img/b.jpg,img/c.jpg\nimg/a.jpg,{},img/c.jpg\n",
                id_of("a")
            ),
            "t.csv line 3: reference and similar are the same image".to_string(),
        ),
        (
            "reference,similar,dissimilar\nimg/a.jpg,,img/c.jpg\n".to_string(),
            "t.csv line 2, column similar: empty".to_string(),
        ),
        (
            "reference,similar\nimg/a.jpg,img/b.jpg\n".to_string(),
            "t.csv line 1 (header): no dissimilar column".to_string(),
        ),
        (
            "reference,similar,dissimilar,note\n".to_string(),
            "t.csv line 1 (header): column 4 (\"note\")".to_string(),
        ),
    ];
    for (text, expected) in cases {
        let csv = env.write("t.csv", text.as_bytes());
        let error = catalog.import_triplets(&csv, "alice").await.unwrap_err();
        assert!(matches!(error, CatalogError::Source { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains(&expected),
            "{message}\nexpected: {expected}"
        );
        assert!(catalog.triplets().await.unwrap().is_empty(), "{expected}");
    }
    let csv = env.write("t.csv", b"reference,similar,dissimilar\n");
    assert!(matches!(
        catalog.import_triplets(&csv, " ").await,
        Err(CatalogError::InvalidOptions(_))
    ));
}

async fn review_triplets_are_added_listed_and_removed(env: &TestEnv) {
    let catalog = five_images(env).await;
    let [a, b, c] = ids(["a", "b", "c"]);
    let first = catalog.add_triplet(&a, &b, &c, "alice").await.unwrap();
    let second = catalog.add_triplet(&b, &a, &c, "bob").await.unwrap();
    assert!(second > first);
    let triplets = catalog.triplets().await.unwrap();
    assert_eq!(
        stored(&triplets),
        [
            [a.clone(), b.clone(), c.clone()],
            [b.clone(), a.clone(), c.clone()]
        ]
    );
    assert_eq!(triplets[1].source, TripletSource::Review);
    assert_eq!(triplets[1].actor.as_deref(), Some("bob"));

    match catalog.add_triplet(&a, &b, &c, "carol").await {
        Err(CatalogError::TripletExists { id, .. }) => assert_eq!(id, first),
        other => panic!("expected TripletExists, got {other:?}"),
    }
    match catalog.add_triplet(&a, &b, &b, "carol").await {
        Err(CatalogError::InvalidTriplet(message)) => {
            assert!(
                message.contains("similar and dissimilar are the same image"),
                "{message}"
            )
        }
        other => panic!("expected InvalidTriplet, got {other:?}"),
    }
    let unknown = "0".repeat(64);
    match catalog.add_triplet(&a, &unknown, &c, "carol").await {
        Err(CatalogError::UnknownImage(id)) => assert_eq!(id, unknown),
        other => panic!("expected UnknownImage, got {other:?}"),
    }
    assert!(matches!(
        catalog.add_triplet(&a, &c, &b, "").await,
        Err(CatalogError::InvalidTriplet(_))
    ));
    assert_eq!(catalog.triplets().await.unwrap().len(), 2);

    catalog.remove_triplet(first).await.unwrap();
    assert_eq!(
        stored(&catalog.triplets().await.unwrap()),
        [[b.clone(), a.clone(), c.clone()]]
    );
    assert!(matches!(
        catalog.remove_triplet(first).await,
        Err(CatalogError::UnknownTriplet(id)) if id == first
    ));
    // A removed triplet's id is never reused.
    let third = catalog.add_triplet(&a, &b, &c, "alice").await.unwrap();
    assert!(third > second);
}

fn vector(seed: f32, dim: usize) -> Vec<f32> {
    (0..dim).map(|i| seed + i as f32 / 8.0 - 1.0e-3).collect()
}

async fn embeddings_round_trip_and_replace(env: &TestEnv) {
    let catalog = five_images(env).await;
    let [a, b, c] = ids(["a", "b", "c"]);
    let model = "store:abc@sha256:0123";
    catalog
        .put_embeddings(
            model,
            &[(b.clone(), vector(2.0, 4)), (a.clone(), vector(1.0, 4))],
        )
        .await
        .unwrap();
    catalog
        .put_embeddings("other", &[(a.clone(), vector(9.0, 2))])
        .await
        .unwrap();
    assert_eq!(
        catalog.embeddings(model).await.unwrap(),
        by_id(vec![
            (a.clone(), vector(1.0, 4)),
            (b.clone(), vector(2.0, 4))
        ])
    );
    // Replacing b and adding c leaves a alone.
    catalog
        .put_embeddings(
            model,
            &[(b.clone(), vector(-3.5, 4)), (c.clone(), vector(0.25, 4))],
        )
        .await
        .unwrap();
    assert_eq!(
        catalog.embeddings(model).await.unwrap(),
        by_id(vec![
            (a.clone(), vector(1.0, 4)),
            (b.clone(), vector(-3.5, 4)),
            (c.clone(), vector(0.25, 4))
        ])
    );
    assert_eq!(
        catalog.embeddings("other").await.unwrap(),
        [(a.clone(), vector(9.0, 2))]
    );
    assert!(catalog.embeddings("none").await.unwrap().is_empty());
    let mut expected = vec![a, b, c];
    expected.sort();
    assert_eq!(catalog.embedded_image_ids(model).await.unwrap(), expected);
    // Nothing to store is fine.
    catalog.put_embeddings(model, &[]).await.unwrap();
}

async fn embeddings_are_checked_and_all_or_nothing(env: &TestEnv) {
    let catalog = five_images(env).await;
    let [a, b, c] = ids(["a", "b", "c"]);
    let model = "m";
    catalog
        .put_embeddings(model, &[(a.clone(), vector(1.0, 3))])
        .await
        .unwrap();
    let unknown = "e".repeat(64);
    let attempts: Vec<Vec<(String, Vec<f32>)>> = vec![
        vec![
            (b.clone(), vector(2.0, 3)),
            (unknown.clone(), vector(3.0, 3)),
        ],
        vec![(b.clone(), vector(2.0, 3)), (c.clone(), vector(3.0, 2))],
        vec![
            (b.clone(), vector(2.0, 3)),
            (c.clone(), vec![1.0, f32::NAN, 0.0]),
        ],
        vec![(b.clone(), vector(2.0, 3)), (b.clone(), vector(3.0, 3))],
        // The model's stored vectors have 3 values.
        vec![(b.clone(), vector(2.0, 5)), (c.clone(), vector(3.0, 5))],
    ];
    for (n, vectors) in attempts.iter().enumerate() {
        let error = catalog.put_embeddings(model, vectors).await.unwrap_err();
        match (n, &error) {
            (0, CatalogError::UnknownImage(id)) => assert_eq!(*id, unknown),
            (1.., CatalogError::InvalidEmbeddings { model: m, .. }) => assert_eq!(m, model),
            _ => panic!("attempt {n}: unexpected {error:?}"),
        }
        assert_eq!(
            catalog.embedded_image_ids(model).await.unwrap(),
            std::slice::from_ref(&a),
            "attempt {n} wrote something"
        );
    }
    let message = catalog
        .put_embeddings(model, &attempts[4])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("the vectors have 5 values, but the model's stored vectors have 3"),
        "{message}"
    );
    assert!(matches!(
        catalog.put_embeddings("", &[(b, vector(1.0, 3))]).await,
        Err(CatalogError::InvalidEmbeddings { .. })
    ));
    // Once the model's vectors are gone, another length is fine.
    catalog.delete_model_embeddings(model).await.unwrap();
    catalog.put_embeddings(model, &attempts[4]).await.unwrap();
}

async fn embeddings_of_inactive_images_are_not_returned(env: &TestEnv) {
    let catalog = five_images(env).await;
    let all: Vec<(String, Vec<f32>)> = ["a", "b", "c", "d", "e"]
        .iter()
        .enumerate()
        .map(|(i, n)| (id_of(n), vector(i as f32, 8)))
        .collect();
    catalog.put_embeddings("m", &all).await.unwrap();
    // e is no longer listed (removed); a fails its decode check (quarantined).
    let manifest = env.write(
        "manifest.csv",
        b"path,neckline\nimg/a.jpg,v-neck\nimg/b.jpg,v-neck\nimg/c.jpg,boat\nimg/d.jpg,boat\n",
    );
    import(&catalog, &manifest).await;
    catalog
        .record_checks(&[atelier_catalog::CheckOutcome {
            id: id_of("a"),
            result: Err("does not decode".to_string()),
        }])
        .await
        .unwrap();
    let returned: Vec<String> = catalog
        .embeddings("m")
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut expected: Vec<String> = ["b", "c", "d"].iter().map(|n| id_of(n)).collect();
    expected.sort();
    assert_eq!(returned, expected);
    // Their vectors are still stored: a reactivated image needs no new one.
    assert_eq!(catalog.embedded_image_ids("m").await.unwrap().len(), 5);
}

async fn embeddings_are_deleted_per_image_and_per_model(env: &TestEnv) {
    let catalog = five_images(env).await;
    let [a, b, c] = ids(["a", "b", "c"]);
    let vectors = [
        (a.clone(), vector(1.0, 2)),
        (b.clone(), vector(2.0, 2)),
        (c.clone(), vector(3.0, 2)),
    ];
    catalog.put_embeddings("m", &vectors).await.unwrap();
    catalog.put_embeddings("n", &vectors).await.unwrap();
    let unknown = "d".repeat(64);
    let deleted = catalog
        .delete_embeddings("m", &[a.clone(), unknown, c.clone()])
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    assert_eq!(
        catalog.embedded_image_ids("m").await.unwrap(),
        std::slice::from_ref(&b)
    );
    assert_eq!(catalog.embedded_image_ids("n").await.unwrap().len(), 3);
    assert_eq!(catalog.delete_model_embeddings("n").await.unwrap(), 3);
    assert!(catalog.embedded_image_ids("n").await.unwrap().is_empty());
    assert_eq!(catalog.delete_model_embeddings("n").await.unwrap(), 0);
    assert_eq!(
        catalog.embeddings("m").await.unwrap(),
        [(b, vector(2.0, 2))]
    );
}

async fn many_embeddings_span_several_statements(env: &TestEnv) {
    let catalog = env.open().await;
    // More rows than one insert statement holds (8 000 values at 5 per row).
    let count = 3_300;
    let mut text = String::from("path,neckline\n");
    for i in 0..count {
        env.write(&format!("many/{i}.jpg"), &blob(&format!("many-{i}")));
        text.push_str(&format!("many/{i}.jpg,boat\n"));
    }
    let manifest = env.write("many.csv", text.as_bytes());
    import(&catalog, &manifest).await;
    let vectors: Vec<(String, Vec<f32>)> = (0..count)
        .map(|i| {
            (
                sha256_hex(&blob(&format!("many-{i}"))),
                vector(i as f32, 16),
            )
        })
        .collect();
    catalog.put_embeddings("m", &vectors).await.unwrap();
    let vectors = by_id(vectors);
    assert_eq!(catalog.embeddings("m").await.unwrap(), vectors);
    let ids: Vec<String> = vectors.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        catalog.delete_embeddings("m", &ids).await.unwrap(),
        count as u64
    );
}

async fn active_labels_cover_every_active_image(env: &TestEnv) {
    let catalog = env.open().await;
    write_images(env, &["a", "b", "c", "d"]);
    let manifest = env.write(
        "manifest.csv",
        b"path,neckline,sleeve\n\
          img/a.jpg,v-neck,long\n\
          img/b.jpg,boat,\n\
          img/c.jpg,,\n\
          img/d.jpg,round,short\n\
          img/missing.jpg,boat,long\n",
    );
    import(&catalog, &manifest).await;
    // A reviewer clears b's neckline; d is then no longer listed (removed).
    catalog
        .set_labels(&[first_neckline_edit("b", None)])
        .await
        .unwrap();
    let manifest = env.write(
        "manifest.csv",
        b"path,neckline,sleeve\nimg/a.jpg,v-neck,long\nimg/b.jpg,boat,\nimg/c.jpg,,\n",
    );
    import(&catalog, &manifest).await;

    let labels = catalog.active_labels().await.unwrap();
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(f, l)| (f.to_string(), l.to_string()))
            .collect()
    };
    let expected = [
        (
            id_of("a"),
            map(&[("neckline", "v-neck"), ("sleeve", "long")]),
        ),
        (id_of("b"), map(&[])),
        (id_of("c"), map(&[])),
    ];
    assert_eq!(labels.len(), expected.len(), "{labels:?}");
    for (id, wanted) in expected {
        assert_eq!(labels.get(&id), Some(&wanted), "image {id}");
    }
}

/// A catalogue made before the similarity tables keeps its designs and images; its designs
/// vary none until a manifest says otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_similarity_migration_keeps_designs_and_images() {
    use sqlx::Connection;
    let env = TestEnv::sqlite();
    let migrations = env.dir.path().join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.as_str() < "0006" {
            std::fs::copy(&path, migrations.join(&name)).unwrap();
        }
    }
    let file = env.dir.path().join("catalog.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let old = sqlx::migrate::Migrator::new(migrations.as_path())
            .await
            .unwrap();
        old.run(&mut conn).await.unwrap();
        sqlx::raw_sql(
            "INSERT INTO designs (id, created_at) VALUES ('d1', 0); \
             INSERT INTO images (id, uri, split, status, source, design, created_at, updated_at) \
             VALUES ('i1', '/x/1.jpg', 'train', 'active', '/x/m.csv', 'd1', 0, 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let catalog = env.open().await;
    assert_eq!(
        catalog.designs().await.unwrap(),
        [DesignRecord {
            id: "d1".to_string(),
            variant_of: None,
            varied_facet: None,
            images: vec!["i1".to_string()],
        }]
    );
    assert!(catalog.triplets().await.unwrap().is_empty());
    catalog
        .put_embeddings("m", &[("i1".to_string(), vec![0.5])])
        .await
        .unwrap();
    assert_eq!(
        catalog.embeddings("m").await.unwrap(),
        [("i1".to_string(), vec![0.5])]
    );
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn condition(facet: &str, label: &str, keep: bool) -> LabelCondition {
    LabelCondition {
        facet: facet.to_string(),
        label: label.to_string(),
        keep,
    }
}

/// pgvector answers like a scan of the vectors by cosine, filters on the current labels, and
/// never returns the query or an image that left the catalogue; elsewhere the catalogue says
/// it cannot search vectors itself.
async fn nearest_images_match_a_scan_and_follow_the_labels(env: &TestEnv) {
    let catalog = five_images(env).await;
    assert_eq!(catalog.searches_vectors(), env.pgvector);
    let names = ["a", "b", "c", "d", "e"];
    let vectors: Vec<Vec<f32>> = vec![
        vec![1.0, 0.0, 0.0],
        vec![0.9, 0.3, 0.0],
        vec![0.6, 0.6, 0.1],
        vec![0.1, 0.9, 0.2],
        vec![0.8, 0.0, 0.5],
    ];
    let stored: Vec<(String, Vec<f32>)> = names
        .iter()
        .zip(&vectors)
        .map(|(n, v)| (id_of(n), v.clone()))
        .collect();
    catalog.put_embeddings("m", &stored).await.unwrap();
    catalog.put_embeddings("other", &stored[..2]).await.unwrap();
    catalog.index_vectors("m", 3).await.unwrap();
    let query = [1.0f32, 0.1, 0.0];
    let a = id_of("a");
    if !env.pgvector {
        assert!(catalog.nearest("m", &query, 3, &[], None).await.is_err());
        return;
    }
    // The scan: every image but a, most similar first.
    let mut expected: Vec<(String, f32)> = (1..5)
        .map(|i| (id_of(names[i]), cosine(&query, &vectors[i])))
        .collect();
    expected.sort_by(|x, y| y.1.total_cmp(&x.1));
    let found = catalog
        .nearest("m", &query, 3, &[], Some(&a))
        .await
        .unwrap();
    assert_eq!(found.len(), 3);
    for ((id, score), (want, want_score)) in found.iter().zip(&expected) {
        assert_eq!(id, want);
        assert!((score - want_score).abs() < 1e-5, "{score} vs {want_score}");
    }
    let ids =
        |found: Vec<(String, f32)>| -> Vec<String> { found.into_iter().map(|p| p.0).collect() };
    let boat = [condition("neckline", "boat", true)];
    assert_eq!(
        ids(catalog
            .nearest("m", &query, 5, &boat, Some(&a))
            .await
            .unwrap()),
        [id_of("c"), id_of("d")]
    );
    let not_v = [condition("neckline", "v-neck", false)];
    assert_eq!(
        ids(catalog.nearest("m", &query, 5, &not_v, None).await.unwrap()),
        [id_of("e"), id_of("c"), id_of("d")]
    );
    // A retag changes the next answer: c is round now.
    catalog
        .set_labels(&[first_neckline_edit("c", Some("round"))])
        .await
        .unwrap();
    assert_eq!(
        ids(catalog.nearest("m", &query, 5, &boat, None).await.unwrap()),
        [id_of("d")]
    );
    // An image removed from the catalogue is never returned.
    let manifest = env.write(
        "manifest.csv",
        b"path,neckline\nimg/a.jpg,v-neck\nimg/b.jpg,v-neck\nimg/c.jpg,boat\nimg/d.jpg,boat\n",
    );
    import(&catalog, &manifest).await;
    let all = ids(catalog.nearest("m", &query, 5, &[], None).await.unwrap());
    assert_eq!(all.len(), 4);
    assert!(!all.contains(&id_of("e")));
}

async fn change_counters_move_with_the_writes_they_count(env: &TestEnv) {
    let catalog = five_images(env).await;
    let a = id_of("a");
    let model = "store:abc@sha256:0123";
    let other = atelier_catalog::embeddings_counter("other");
    let counters = |catalog: &Catalog| {
        let model = atelier_catalog::embeddings_counter(model);
        let other = other.clone();
        let catalog = catalog.clone();
        async move {
            catalog
                .change_counters([LABELS_COUNTER, &model, &other])
                .await
                .unwrap()
        }
    };
    let [labels, vectors, never] = counters(&catalog).await;
    assert!(labels > 0, "the import changed the labels");
    assert_eq!((vectors, never), (0, 0), "no vectors stored yet");

    catalog
        .put_embeddings(model, &[(a.clone(), vector(1.0, 4))])
        .await
        .unwrap();
    assert_eq!(
        counters(&catalog).await,
        [labels, vectors + 1, 0],
        "storing vectors moves only their model's counter"
    );

    catalog
        .set_labels(&[first_neckline_edit("a", Some("boat"))])
        .await
        .unwrap();
    assert_eq!(counters(&catalog).await, [labels + 1, vectors + 1, 0]);
    // The same name twice, and no names at all.
    assert_eq!(
        catalog
            .change_counters([LABELS_COUNTER, LABELS_COUNTER])
            .await
            .unwrap(),
        [labels + 1, labels + 1]
    );
    assert_eq!(catalog.change_counters([]).await.unwrap(), [0i64; 0]);
}
