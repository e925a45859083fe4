//! Catalogue behaviour, each case on SQLite and on PostgreSQL.

mod common;

use std::collections::BTreeMap;

use atelier_catalog::{
    Catalog, CatalogError, CheckOutcome, CheckedImage, ImportOptions, Split, Status,
    split_for_digest,
};
use common::{TestEnv, blob, import, sha256_hex};

on_both_backends!(
    dress_boxes_are_those_of_active_images,
    fresh_import_counts_and_records,
    reimport_of_the_same_manifest_writes_nothing,
    changed_label_is_updated_with_an_event,
    empty_cell_clears_a_label,
    unlisted_image_is_removed_and_keeps_its_labels,
    reappearing_image_becomes_active_again,
    split_from_manifest_is_used,
    hash_split_is_stable_and_near_the_fraction,
    split_change_is_refused_with_a_warning,
    unknown_label_is_refused_and_nothing_is_written,
    allow_new_labels_appends_to_the_order,
    label_order_is_validated_and_reported,
    extra_facet_columns_define_new_facets,
    folder_tree_merges_facets_of_the_same_content,
    missing_and_empty_files_are_quarantined,
    duplicate_content_keeps_the_first_row,
    csv_errors_name_line_and_column,
    box_and_design_changes_are_synchronised,
    record_checks_moves_images_between_states,
    late_error_rolls_back_earlier_chunks,
);

/// A manifest with three dresses: two facets, boxes and designs.
fn basic_manifest(env: &TestEnv) -> std::path::PathBuf {
    for name in ["a", "b", "c"] {
        env.write(&format!("img/{name}.jpg"), &blob(name));
    }
    env.write(
        "manifest.csv",
        b"path,silhouette,neckline,x0,y0,x1,y1,design\n\
          img/a.jpg,sheath,v-neck,1,2,30,40,d1\n\
          img/b.jpg,a-line,boat,,,,,d1\n\
          img/c.jpg,sheath,,5,5,10,10,\n",
    )
}

fn id_of(name: &str) -> String {
    sha256_hex(&blob(name))
}

async fn fresh_import_counts_and_records(env: &TestEnv) {
    let catalog = env.open().await;
    let manifest = basic_manifest(env);
    let report = import(&catalog, &manifest).await;
    assert_eq!((report.added, report.updated, report.unchanged), (3, 0, 0));
    assert_eq!(
        (report.removed, report.quarantined, report.duplicates),
        (0, 0, 0)
    );
    assert_eq!(report.rows, 3);
    assert_eq!(
        report.source,
        manifest.canonicalize().unwrap().to_str().unwrap()
    );

    let a = catalog.image(&id_of("a")).await.unwrap().expect("image a");
    assert_eq!(
        a.uri,
        env.path("img/a.jpg")
            .canonicalize()
            .unwrap()
            .to_str()
            .unwrap()
    );
    assert_eq!(a.byte_size, Some(blob("a").len() as u64));
    assert_eq!(a.status, Status::Active);
    assert_eq!((a.width, a.height, a.checked_at), (None, None, None));
    assert_eq!(a.design.as_deref(), Some("d1"));
    let labels: Vec<(&str, Option<&str>, i64)> = a
        .labels
        .iter()
        .map(|l| (l.facet.as_str(), l.label.as_deref(), l.version))
        .collect();
    assert_eq!(
        labels,
        vec![
            ("silhouette", Some("sheath"), 1),
            ("neckline", Some("v-neck"), 1)
        ]
    );
    assert_eq!(a.boxes.len(), 1);
    let b = &a.boxes[0];
    assert_eq!((b.x0, b.y0, b.x1, b.y1), (1.0, 2.0, 30.0, 40.0));
    assert_eq!((b.kind.as_str(), b.source.as_str()), ("dress", "import"));

    let c = catalog.image(&id_of("c")).await.unwrap().unwrap();
    assert_eq!(c.design, None);
    assert_eq!(
        c.labels.len(),
        1,
        "no label row for an empty cell of a new image"
    );

    // New facets list their labels alphabetically; counts are per split of active images.
    let facets = catalog.facets().await.unwrap();
    let names: Vec<&str> = facets.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["silhouette", "neckline"]);
    assert_eq!(facets[0].label_names(), ["a-line", "sheath"]);
    assert_eq!(facets[1].label_names(), ["boat", "v-neck"]);
    let sheath = &facets[0].labels[1];
    let expected_sheath = [id_of("a"), id_of("c")]
        .iter()
        .map(|id| catalog_split(id))
        .fold((0, 0), |(tr, te), s| {
            if s == Split::Train {
                (tr + 1, te)
            } else {
                (tr, te + 1)
            }
        });
    assert_eq!((sheath.counts.train, sheath.counts.test), expected_sheath);

    let summary = catalog.summary().await.unwrap();
    assert_eq!(summary.images, 3);
    assert_eq!(summary.active.total(), 3);
    assert_eq!(summary.unchecked, 3);
    assert_eq!(
        (summary.facets, summary.labels, summary.assignments),
        (2, 4, 5)
    );
    assert_eq!(
        (summary.designs, summary.boxes, summary.label_events),
        (1, 2, 5)
    );

    let history = catalog.label_history(&id_of("b")).await.unwrap();
    let events: Vec<String> = history
        .iter()
        .map(|e| {
            format!(
                "{} {:?}->{:?} by {} via {}",
                e.facet, e.old_label, e.new_label, e.actor, e.source
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            "silhouette None->Some(\"a-line\") by import via import",
            "neckline None->Some(\"boat\") by import via import",
        ]
    );
    assert!(matches!(
        catalog.label_history("no-such-image").await,
        Err(CatalogError::UnknownImage(_))
    ));
    assert_eq!(catalog.image("no-such-image").await.unwrap(), None);
}

/// Hash split as the catalogue must compute it: an independent reimplementation.
fn catalog_split(id_hex: &str) -> Split {
    let bytes = hex::decode(id_hex).unwrap();
    let head = u64::from_be_bytes(bytes[..8].try_into().unwrap());
    if (head as f64) / 2f64.powi(64) < 0.1 {
        Split::Test
    } else {
        Split::Train
    }
}

async fn reimport_of_the_same_manifest_writes_nothing(env: &TestEnv) {
    let catalog = env.open().await;
    let manifest = basic_manifest(env);
    import(&catalog, &manifest).await;
    let before = snapshot(&catalog).await;
    let summary_before = catalog.summary().await.unwrap();
    // Timestamps are in milliseconds; make sure a rewrite would show.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let again = import(&catalog, &manifest).await;
    assert_eq!((again.added, again.updated, again.unchanged), (0, 0, 3));
    assert_eq!((again.removed, again.quarantined), (0, 0));
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    assert_eq!(snapshot(&catalog).await, before);
    assert_eq!(catalog.summary().await.unwrap(), summary_before);
}

/// Every image record (with timestamps, label versions and boxes), by id.
async fn snapshot(catalog: &Catalog) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for image in catalog.images_for_check().await.unwrap() {
        let record = catalog.image(&image.id).await.unwrap().unwrap();
        out.insert(image.id, format!("{record:?}"));
    }
    out
}

async fn changed_label_is_updated_with_an_event(env: &TestEnv) {
    let catalog = env.open().await;
    let manifest = basic_manifest(env);
    import(&catalog, &manifest).await;
    let before = catalog.image(&id_of("b")).await.unwrap().unwrap();
    let manifest = env.write(
        "manifest.csv",
        b"path,silhouette,neckline,x0,y0,x1,y1,design\n\
          img/a.jpg,sheath,v-neck,1,2,30,40,d1\n\
          img/b.jpg,sheath,boat,,,,,d1\n\
          img/c.jpg,sheath,,5,5,10,10,\n",
    );
    let opts = ImportOptions {
        actor: "alice".to_string(),
        ..ImportOptions::default()
    };
    let report = catalog.import(&manifest, &opts).await.unwrap();
    assert_eq!((report.added, report.updated, report.unchanged), (0, 1, 2));

    let after = catalog.image(&id_of("b")).await.unwrap().unwrap();
    let silhouette = after
        .labels
        .iter()
        .find(|l| l.facet == "silhouette")
        .unwrap();
    assert_eq!(
        (silhouette.label.as_deref(), silhouette.version),
        (Some("sheath"), 2)
    );
    let neckline = after.labels.iter().find(|l| l.facet == "neckline").unwrap();
    assert_eq!(neckline.version, 1, "an unchanged label keeps its version");
    assert!(after.updated_at >= before.updated_at);
    assert_eq!(after.created_at, before.created_at);

    let history = catalog.label_history(&id_of("b")).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(last.facet, "silhouette");
    assert_eq!(
        (last.old_label.as_deref(), last.new_label.as_deref()),
        (Some("a-line"), Some("sheath"))
    );
    assert_eq!(
        (last.actor.as_str(), last.source.as_str()),
        ("alice", "import")
    );
    assert_eq!((last.reason.as_deref(), last.run_id), (None, None));

    // a-line lost its only image; the label stays in the facet with zero counts.
    let facets = catalog.facets().await.unwrap();
    let a_line = &facets[0].labels[0];
    assert_eq!(
        (a_line.label.as_str(), a_line.counts.total()),
        ("a-line", 0)
    );
    assert_eq!(facets[0].labels[1].counts.total(), 3);
}

async fn empty_cell_clears_a_label(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &basic_manifest(env)).await;
    let manifest = env.write(
        "manifest.csv",
        b"path,silhouette,neckline,x0,y0,x1,y1,design\n\
          img/a.jpg,sheath,,1,2,30,40,d1\n\
          img/b.jpg,a-line,boat,,,,,d1\n\
          img/c.jpg,sheath,,5,5,10,10,\n",
    );
    let report = import(&catalog, &manifest).await;
    assert_eq!((report.updated, report.unchanged), (1, 2));
    let a = catalog.image(&id_of("a")).await.unwrap().unwrap();
    let neckline = a.labels.iter().find(|l| l.facet == "neckline").unwrap();
    assert_eq!((neckline.label.as_deref(), neckline.version), (None, 2));
    let last = catalog
        .label_history(&id_of("a"))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        (last.old_label.as_deref(), last.new_label),
        (Some("v-neck"), None)
    );
    let facets = catalog.facets().await.unwrap();
    assert_eq!(facets[1].labels[1].label, "v-neck");
    assert_eq!(facets[1].labels[1].counts.total(), 0);
    // Setting it again continues the version count.
    import(&catalog, &basic_manifest(env)).await;
    let a = catalog.image(&id_of("a")).await.unwrap().unwrap();
    let neckline = a.labels.iter().find(|l| l.facet == "neckline").unwrap();
    assert_eq!(
        (neckline.label.as_deref(), neckline.version),
        (Some("v-neck"), 3)
    );
}

async fn unlisted_image_is_removed_and_keeps_its_labels(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &basic_manifest(env)).await;
    let manifest = env.write(
        "manifest.csv",
        b"path,silhouette,neckline,x0,y0,x1,y1,design\n\
          img/a.jpg,sheath,v-neck,1,2,30,40,d1\n\
          img/c.jpg,sheath,,5,5,10,10,\n",
    );
    let report = import(&catalog, &manifest).await;
    assert_eq!(
        (report.removed, report.unchanged, report.updated),
        (1, 2, 0)
    );
    let b = catalog
        .image(&id_of("b"))
        .await
        .unwrap()
        .expect("removed images are kept");
    assert_eq!(b.status, Status::Removed);
    assert_eq!(b.labels.len(), 2);
    assert!(b.labels.iter().all(|l| l.label.is_some() && l.version == 1));
    let summary = catalog.summary().await.unwrap();
    assert_eq!(
        (
            summary.images,
            summary.active.total(),
            summary.removed.total()
        ),
        (3, 2, 1)
    );
    let facets = catalog.facets().await.unwrap();
    assert_eq!(
        facets[0].labels[0].counts.total(),
        0,
        "removed images are not counted"
    );
    assert!(
        !catalog
            .images_for_check()
            .await
            .unwrap()
            .iter()
            .any(|i| i.id == id_of("b"))
    );
    // A second run does not remove it again.
    let again = import(&catalog, &manifest).await;
    assert_eq!((again.removed, again.unchanged), (0, 2));
}

async fn reappearing_image_becomes_active_again(env: &TestEnv) {
    let catalog = env.open().await;
    let full = basic_manifest(env);
    import(&catalog, &full).await;
    let partial = env.write(
        "partial/manifest.csv",
        b"path,silhouette\n../img/a.jpg,sheath\n",
    );
    // Another source lists a: it does not own it, so its own import leaves a's status alone.
    let other = import(&catalog, &partial).await;
    assert_eq!((other.unchanged, other.removed), (1, 0));
    assert!(
        other
            .warnings
            .iter()
            .any(|w| w.contains("first imported from")),
        "{:?}",
        other.warnings
    );

    let without_b = env.write(
        "manifest.csv",
        b"path,silhouette,neckline,x0,y0,x1,y1,design\n\
          img/a.jpg,sheath,v-neck,1,2,30,40,d1\n\
          img/c.jpg,sheath,,5,5,10,10,\n",
    );
    assert_eq!(import(&catalog, &without_b).await.removed, 1);
    let with_b = basic_manifest(env);
    let report = import(&catalog, &with_b).await;
    assert_eq!((report.added, report.updated, report.unchanged), (0, 1, 2));
    let b = catalog.image(&id_of("b")).await.unwrap().unwrap();
    assert_eq!(b.status, Status::Active);
    assert!(
        b.labels.iter().all(|l| l.version == 1),
        "labels were kept while removed"
    );
}

async fn split_from_manifest_is_used(env: &TestEnv) {
    let catalog = env.open().await;
    for name in ["s1", "s2", "s3"] {
        env.write(&format!("{name}.png"), &blob(name));
    }
    let manifest = env.write(
        "m.csv",
        b"path,split,sleeve\ns1.png,test,long\ns2.png,Train,short\ns3.png,,long\n",
    );
    import(&catalog, &manifest).await;
    let split = |name: &'static str| {
        let catalog = &catalog;
        async move { catalog.image(&id_of(name)).await.unwrap().unwrap().split }
    };
    assert_eq!(split("s1").await, Split::Test);
    assert_eq!(split("s2").await, Split::Train);
    assert_eq!(split("s3").await, catalog_split(&id_of("s3")));
}

async fn hash_split_is_stable_and_near_the_fraction(env: &TestEnv) {
    let catalog = env.open().await;
    let mut text = String::from("path,length\n");
    for i in 0..1000 {
        env.write(&format!("many/{i}.jpg"), &blob(&format!("many-{i}")));
        text.push_str(&format!("many/{i}.jpg,midi\n"));
    }
    let manifest = env.write("many.csv", text.as_bytes());
    let report = import(&catalog, &manifest).await;
    assert_eq!(report.added, 1000);
    let mut test = 0;
    for i in 0..1000 {
        let id = sha256_hex(&blob(&format!("many-{i}")));
        let record = catalog.image(&id).await.unwrap().unwrap();
        assert_eq!(record.split, catalog_split(&id), "image {i}");
        if record.split == Split::Test {
            test += 1;
        }
    }
    // Binomial(1000, 0.1): mean 100, sd 9.5; the bounds are over 4 sd away.
    assert!((60..=140).contains(&test), "{test} test images out of 1000");
    let summary = catalog.summary().await.unwrap();
    assert_eq!(summary.active.test, test);
    // Another fraction does not move assigned images.
    let opts = ImportOptions {
        test_fraction: 0.9,
        ..ImportOptions::default()
    };
    let again = catalog.import(&manifest, &opts).await.unwrap();
    assert_eq!(again.unchanged, 1000);
    assert_eq!(catalog.summary().await.unwrap().active.test, test);
    // The public helper agrees with the reference on every id.
    for i in 0..1000 {
        let digest: [u8; 32] = hex::decode(sha256_hex(&blob(&format!("many-{i}"))))
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            split_for_digest(&digest, 0.1),
            catalog_split(&hex::encode(digest))
        );
    }
}

async fn split_change_is_refused_with_a_warning(env: &TestEnv) {
    let catalog = env.open().await;
    env.write("x.jpg", &blob("x"));
    let manifest = env.write("m.csv", b"path,split,sleeve\nx.jpg,train,long\n");
    import(&catalog, &manifest).await;
    let manifest = env.write("m.csv", b"path,split,sleeve\nx.jpg,test,long\n");
    let report = import(&catalog, &manifest).await;
    assert_eq!((report.updated, report.unchanged), (0, 1));
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    let warning = &report.warnings[0];
    assert!(warning.contains(&id_of("x")), "{warning}");
    assert!(warning.contains("x.jpg"), "{warning}");
    assert!(warning.contains("line 2"), "{warning}");
    assert!(warning.contains("stays in split train"), "{warning}");
    assert_eq!(
        catalog.image(&id_of("x")).await.unwrap().unwrap().split,
        Split::Train
    );
}

async fn unknown_label_is_refused_and_nothing_is_written(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &basic_manifest(env)).await;
    let before = snapshot(&catalog).await;
    let summary_before = catalog.summary().await.unwrap();
    let facets_before = catalog.facets().await.unwrap();
    env.write("img/d.jpg", &blob("d"));
    let manifest = env.write(
        "manifest.csv",
        b"path,silhouette,neckline,x0,y0,x1,y1,design,sleeve\n\
          img/a.jpg,a-line,v-neck,1,2,30,40,d1,long\n\
          img/d.jpg,mermaid,boat,,,,,d9,short\n\
          img/c.jpg,sheath,,5,5,10,10,,\n",
    );
    let error = catalog
        .import(&manifest, &ImportOptions::default())
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, CatalogError::UnknownLabel { .. }),
        "{message}"
    );
    assert!(
        message.contains("manifest.csv line 3, column silhouette"),
        "{message}"
    );
    assert!(message.contains("\"mermaid\""), "{message}");
    assert!(message.contains("\"silhouette\""), "{message}");
    assert!(message.contains("allow_new_labels"), "{message}");
    assert!(!message.contains('\n'));
    // Nothing of the failed import is stored: not a's change, not d, not the sleeve facet.
    assert_eq!(snapshot(&catalog).await, before);
    assert_eq!(catalog.summary().await.unwrap(), summary_before);
    assert_eq!(catalog.facets().await.unwrap(), facets_before);
}

async fn allow_new_labels_appends_to_the_order(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &basic_manifest(env)).await;
    env.write("img/d.jpg", &blob("d"));
    env.write("img/e.jpg", &blob("e"));
    let manifest = env.write(
        "manifest.csv",
        b"path,silhouette,neckline,x0,y0,x1,y1,design\n\
          img/a.jpg,sheath,v-neck,1,2,30,40,d1\n\
          img/b.jpg,a-line,boat,,,,,d1\n\
          img/c.jpg,sheath,,5,5,10,10,\n\
          img/d.jpg,mermaid,boat,,,,,\n\
          img/e.jpg,ball-gown,,,,,,\n",
    );
    let opts = ImportOptions {
        allow_new_labels: true,
        ..ImportOptions::default()
    };
    let report = catalog.import(&manifest, &opts).await.unwrap();
    assert_eq!((report.added, report.unchanged), (2, 3));
    let facets = catalog.facets().await.unwrap();
    // Existing order kept, new labels after it (alphabetically among themselves).
    assert_eq!(
        facets[0].label_names(),
        ["a-line", "sheath", "ball-gown", "mermaid"]
    );
    assert_eq!(facets[0].labels[3].counts.total(), 1);
}

async fn label_order_is_validated_and_reported(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &basic_manifest(env)).await;
    let order = |labels: &[&str]| labels.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    catalog
        .set_label_order("neckline", &order(&["v-neck", "boat"]))
        .await
        .unwrap();
    let facets = catalog.facets().await.unwrap();
    assert_eq!(facets[1].label_names(), ["v-neck", "boat"]);
    assert_eq!(facets[1].labels[0].counts.total(), 1);

    let message = catalog
        .set_label_order("neckline", &order(&["boat", "square", "square"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("missing \"v-neck\""), "{message}");
    assert!(message.contains("unknown \"square\""), "{message}");
    assert!(message.contains("repeated \"square\""), "{message}");
    assert!(message.contains("\"neckline\""), "{message}");
    let message = catalog
        .set_label_order("colour", &order(&["red"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("unknown facet \"colour\""), "{message}");
    assert!(message.contains("silhouette, neckline"), "{message}");
    // The failed attempts changed nothing; the order survives a re-import.
    import(&catalog, &basic_manifest(env)).await;
    assert_eq!(
        catalog.facets().await.unwrap()[1].label_names(),
        ["v-neck", "boat"]
    );
}

async fn extra_facet_columns_define_new_facets(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &basic_manifest(env)).await;
    let manifest = env.write(
        "manifest.csv",
        b"path,silhouette,neckline,x0,y0,x1,y1,design,occasion,length\n\
          img/a.jpg,sheath,v-neck,1,2,30,40,d1,party,mini\n\
          img/b.jpg,a-line,boat,,,,,d1,bridal,\n\
          img/c.jpg,sheath,,5,5,10,10,,,\n",
    );
    let report = import(&catalog, &manifest).await;
    assert_eq!((report.updated, report.unchanged), (2, 1));
    let facets = catalog.facets().await.unwrap();
    let names: Vec<&str> = facets.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["silhouette", "neckline", "occasion", "length"]);
    assert_eq!(facets[2].label_names(), ["bridal", "party"]);
    assert_eq!(facets[3].label_names(), ["mini"]);
    // A manifest without some facet columns leaves those facets' labels alone.
    let narrow = env.write(
        "manifest.csv",
        b"path,occasion\nimg/a.jpg,party\nimg/b.jpg,bridal\nimg/c.jpg,\n",
    );
    let report = import(&catalog, &narrow).await;
    assert_eq!((report.unchanged, report.updated), (3, 0));
    let a = catalog.image(&id_of("a")).await.unwrap().unwrap();
    assert_eq!(a.labels.len(), 4);
    assert_eq!(a.design.as_deref(), Some("d1"));
    assert_eq!(a.boxes.len(), 1);
}

async fn folder_tree_merges_facets_of_the_same_content(env: &TestEnv) {
    let catalog = env.open().await;
    env.write("tree/silhouette/sheath/one.jpg", &blob("one"));
    env.write("tree/neckline/v-neck/one-copy.JPG", &blob("one"));
    env.write("tree/silhouette/a-line/two.png", &blob("two"));
    env.write("tree/silhouette/a-line/notes.txt", b"not an image");
    env.write("tree/README.md", b"ignored");
    env.write("tree/neckline/boat/.hidden.jpg", &blob("hidden"));
    let root = env.path("tree");
    let report = import(&catalog, &root).await;
    assert_eq!((report.added, report.rows), (2, 3));
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("notes.txt"),
        "{:?}",
        report.warnings
    );

    let one = catalog.image(&id_of("one")).await.unwrap().unwrap();
    let labels: Vec<(&str, Option<&str>)> = one
        .labels
        .iter()
        .map(|l| (l.facet.as_str(), l.label.as_deref()))
        .collect();
    assert_eq!(
        labels,
        vec![("neckline", Some("v-neck")), ("silhouette", Some("sheath"))]
    );
    assert_eq!(one.source, root.canonicalize().unwrap().to_str().unwrap());
    let facets = catalog.facets().await.unwrap();
    assert_eq!(facets[0].name, "neckline");
    // Labels come from images: the boat folder holds only a hidden file.
    assert_eq!(facets[0].label_names(), ["v-neck"]);

    assert_eq!(import(&catalog, &root).await.unchanged, 2);
    // Taking the copy out of the neckline folder clears that label; deleting two removes it.
    std::fs::remove_file(env.path("tree/neckline/v-neck/one-copy.JPG")).unwrap();
    std::fs::remove_file(env.path("tree/silhouette/a-line/two.png")).unwrap();
    let report = import(&catalog, &root).await;
    assert_eq!((report.updated, report.removed), (1, 1));
    let one = catalog.image(&id_of("one")).await.unwrap().unwrap();
    let neckline = one.labels.iter().find(|l| l.facet == "neckline").unwrap();
    assert_eq!((neckline.label.as_deref(), neckline.version), (None, 2));
    assert_eq!(
        catalog.image(&id_of("two")).await.unwrap().unwrap().status,
        Status::Removed
    );
}

async fn missing_and_empty_files_are_quarantined(env: &TestEnv) {
    let catalog = env.open().await;
    env.write("ok.jpg", &blob("ok"));
    env.write("empty.jpg", b"");
    let manifest = env.write(
        "m.csv",
        b"path,sleeve\nok.jpg,long\ngone.jpg,short\nempty.jpg,long\n",
    );
    let report = import(&catalog, &manifest).await;
    assert_eq!((report.added, report.quarantined), (1, 2));
    let dir = env.dir.path().canonicalize().unwrap();
    let gone = dir.join("gone.jpg");
    let empty = dir.join("empty.jpg");
    let quarantined = catalog.quarantined().await.unwrap();
    let reasons: Vec<(&str, &str)> = quarantined
        .iter()
        .map(|q| (q.uri.as_str(), q.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (
                empty.to_str().unwrap(),
                format!("file is empty (0 bytes): {}", empty.display()).as_str()
            ),
            (
                gone.to_str().unwrap(),
                format!("file not found: {}", gone.display()).as_str()
            ),
        ]
    );
    let placeholder = format!("missing-{}", sha256_hex(gone.to_str().unwrap().as_bytes()));
    assert!(quarantined.iter().any(|q| q.id == placeholder));
    let record = catalog.image(&placeholder).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.byte_size),
        (Status::Quarantined, None)
    );
    // Placeholders are not handed out for decoding.
    let to_check = catalog.images_for_check().await.unwrap();
    assert_eq!(to_check.len(), 1);
    assert_eq!(to_check[0].id, id_of("ok"));
    // Same manifest again: the same placeholders, nothing rewritten.
    let again = import(&catalog, &manifest).await;
    assert_eq!((again.unchanged, again.quarantined, again.added), (1, 2, 0));
    assert_eq!(catalog.summary().await.unwrap().images, 3);
    // The file turns up: a real image is added, the placeholder is removed.
    env.write("gone.jpg", &blob("gone"));
    let healed = import(&catalog, &manifest).await;
    assert_eq!(
        (healed.added, healed.quarantined, healed.removed),
        (1, 1, 1)
    );
    assert_eq!(
        catalog.image(&placeholder).await.unwrap().unwrap().status,
        Status::Removed
    );
}

async fn duplicate_content_keeps_the_first_row(env: &TestEnv) {
    let catalog = env.open().await;
    env.write("first.jpg", &blob("same"));
    env.write("second.jpg", &blob("same"));
    let manifest = env.write("m.csv", b"path,sleeve\nfirst.jpg,long\nsecond.jpg,short\n");
    let report = import(&catalog, &manifest).await;
    assert_eq!((report.added, report.duplicates, report.rows), (1, 1, 2));
    assert_eq!(report.warnings.len(), 1);
    let warning = &report.warnings[0];
    assert!(warning.contains("m.csv line 3"), "{warning}");
    assert!(warning.contains("m.csv line 2"), "{warning}");
    assert!(warning.contains("second.jpg"), "{warning}");
    let record = catalog.image(&id_of("same")).await.unwrap().unwrap();
    assert!(record.uri.ends_with("first.jpg"));
    assert_eq!(record.labels[0].label.as_deref(), Some("long"));
}

async fn csv_errors_name_line_and_column(env: &TestEnv) {
    let catalog = env.open().await;
    env.write("a.jpg", &blob("a"));
    let cases: [(&[u8], &str); 6] = [
        (
            b"path,split\na.jpg,train\na.jpg,tst\n",
            "m.csv line 3, column split: \"tst\" is not train, test or empty",
        ),
        (
            b"path,x0,y0,x1,y1\na.jpg,1,2,x,4\n",
            "m.csv line 2, column x1: \"x\" is not a finite number",
        ),
        (
            b"path,x0,y0,x1,y1\na.jpg,1,,3,4\n",
            "m.csv line 2, column y0: empty while other box columns are set",
        ),
        (
            b"path,sleeve\na.jpg,long\na.jpg\n",
            "m.csv line 3: has 1 fields but the header has 2",
        ),
        (
            b"file,sleeve\na.jpg,long\n",
            "m.csv line 1 (header): no \"path\" column",
        ),
        (b"path,sleeve\n,long\n", "m.csv line 2, column path: empty"),
    ];
    for (text, expected) in cases {
        let manifest = env.write("m.csv", text);
        let message = catalog
            .import(&manifest, &ImportOptions::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message:?}"
        );
        assert!(!message.contains('\n'), "{message}");
    }
    let summary = catalog.summary().await.unwrap();
    assert_eq!(
        (summary.images, summary.facets),
        (0, 0),
        "failed imports write nothing"
    );
    let missing = catalog
        .import(&env.path("nope.csv"), &ImportOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope.csv"), "{missing}");
}

async fn box_and_design_changes_are_synchronised(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &basic_manifest(env)).await;
    let manifest = env.write(
        "manifest.csv",
        b"path,silhouette,neckline,x0,y0,x1,y1,design\n\
          img/a.jpg,sheath,v-neck,1,2,30,41.5,d2\n\
          img/b.jpg,a-line,boat,0,0,9,9,d1\n\
          img/c.jpg,sheath,,,,,,\n",
    );
    let report = import(&catalog, &manifest).await;
    assert_eq!((report.updated, report.unchanged), (3, 0));
    let a = catalog.image(&id_of("a")).await.unwrap().unwrap();
    assert_eq!(a.design.as_deref(), Some("d2"));
    assert_eq!(a.boxes.len(), 1);
    assert_eq!(a.boxes[0].y1, 41.5);
    assert_eq!(
        catalog
            .image(&id_of("b"))
            .await
            .unwrap()
            .unwrap()
            .boxes
            .len(),
        1
    );
    assert!(
        catalog
            .image(&id_of("c"))
            .await
            .unwrap()
            .unwrap()
            .boxes
            .is_empty()
    );
    let summary = catalog.summary().await.unwrap();
    assert_eq!((summary.designs, summary.boxes), (2, 2));
    assert_eq!(import(&catalog, &manifest).await.unchanged, 3);
}

async fn record_checks_moves_images_between_states(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &basic_manifest(env)).await;
    let good = |name: &str, w: u32, h: u32| CheckOutcome {
        id: id_of(name),
        result: Ok(CheckedImage {
            width: w,
            height: h,
        }),
    };
    let bad = |name: &str| CheckOutcome {
        id: id_of(name),
        result: Err("cannot decode: invalid JPEG marker".to_string()),
    };
    let report = catalog
        .record_checks(&[good("a", 640, 480), bad("b"), good("c", 10, 20)])
        .await
        .unwrap();
    assert_eq!(
        (
            report.ok,
            report.bad,
            report.newly_quarantined,
            report.reactivated
        ),
        (2, 1, 1, 0)
    );
    let a = catalog.image(&id_of("a")).await.unwrap().unwrap();
    assert_eq!(
        (a.width, a.height, a.status),
        (Some(640), Some(480), Status::Active)
    );
    assert!(a.checked_at.is_some());
    let quarantined = catalog.quarantined().await.unwrap();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].id, id_of("b"));
    assert_eq!(quarantined[0].reason, "cannot decode: invalid JPEG marker");
    let summary = catalog.summary().await.unwrap();
    assert_eq!(
        (
            summary.active.total(),
            summary.quarantined.total(),
            summary.unchecked
        ),
        (2, 1, 0)
    );
    let facets = catalog.facets().await.unwrap();
    assert_eq!(
        facets[0].labels[0].counts.total(),
        0,
        "quarantined images are not counted"
    );

    // Fixed file decodes now: active again. Unknown ids are reported, not stored.
    let report = catalog
        .record_checks(&[
            good("b", 100, 200),
            CheckOutcome {
                id: "feed".to_string(),
                result: Ok(CheckedImage {
                    width: 1,
                    height: 1,
                }),
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        (report.reactivated, report.ok, report.unknown_ids.clone()),
        (1, 1, vec!["feed".to_string()])
    );
    let b = catalog.image(&id_of("b")).await.unwrap().unwrap();
    assert_eq!(
        (b.status, b.quarantine_reason, b.width),
        (Status::Active, None, Some(100))
    );
    assert!(catalog.quarantined().await.unwrap().is_empty());

    // A quarantined image that is removed and listed again comes back quarantined.
    catalog.record_checks(&[bad("c")]).await.unwrap();
    let without_c = env.write(
        "manifest.csv",
        b"path,silhouette,neckline,x0,y0,x1,y1,design\n\
          img/a.jpg,sheath,v-neck,1,2,30,40,d1\n\
          img/b.jpg,a-line,boat,,,,,d1\n",
    );
    import(&catalog, &without_c).await;
    let removed_check = catalog.record_checks(&[good("c", 1, 1)]).await.unwrap();
    assert_eq!(removed_check.reactivated, 0);
    assert_eq!(
        catalog.image(&id_of("c")).await.unwrap().unwrap().status,
        Status::Removed
    );
    catalog.record_checks(&[bad("c")]).await.unwrap();
    import(&catalog, &basic_manifest(env)).await;
    assert_eq!(
        catalog.image(&id_of("c")).await.unwrap().unwrap().status,
        Status::Quarantined
    );
}

async fn late_error_rolls_back_earlier_chunks(env: &TestEnv) {
    let catalog = env.open().await;
    // More rows than one write chunk (2 000), so earlier chunks are already in the transaction
    // when the bad row is read.
    let rows = 2_100;
    let mut text = String::from("path,split,sleeve\n");
    for i in 0..rows {
        env.write(&format!("late/{i}.jpg"), &blob(&format!("late-{i}")));
        let split = if i == rows - 1 { "later" } else { "" };
        text.push_str(&format!("late/{i}.jpg,{split},long\n"));
    }
    let manifest = env.write("late.csv", text.as_bytes());
    let progress = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = progress.clone();
    let opts = ImportOptions {
        on_progress: Some(std::sync::Arc::new(move |p| seen.lock().unwrap().push(p))),
        ..ImportOptions::default()
    };
    let message = catalog
        .import(&manifest, &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(&format!("late.csv line {}, column split", rows + 1)),
        "{message}"
    );
    let summary = catalog.summary().await.unwrap();
    assert_eq!((summary.images, summary.facets, summary.labels), (0, 0, 0));
    assert_eq!(summary.label_events, 0);
    assert!(
        progress
            .lock()
            .unwrap()
            .iter()
            .all(|p| p.rows_total == rows as u64),
        "progress totals are the row count"
    );

    // Fixed, the same manifest imports whole, reporting progress up to the total.
    let fixed = text.replace(",later,", ",,");
    let manifest = env.write("late.csv", fixed.as_bytes());
    progress.lock().unwrap().clear();
    let report = catalog.import(&manifest, &opts).await.unwrap();
    assert_eq!(report.added, rows as u64);
    let reported = progress.lock().unwrap().clone();
    assert!(reported.len() >= 2, "{reported:?}");
    assert!(
        reported
            .windows(2)
            .all(|w| w[0].rows_done <= w[1].rows_done)
    );
    assert_eq!(reported.last().unwrap().rows_done, rows as u64);
}

/// The dress locator's training targets: one box per active image that has one.
async fn dress_boxes_are_those_of_active_images(env: &TestEnv) {
    let catalog = env.open().await;
    let manifest = basic_manifest(env);
    import(&catalog, &manifest).await;
    let boxes = catalog.dress_boxes().await.unwrap();
    assert_eq!(boxes.len(), 2, "{boxes:?}");
    assert_eq!(boxes[&id_of("a")], [1.0, 2.0, 30.0, 40.0]);
    assert_eq!(boxes[&id_of("c")], [5.0, 5.0, 10.0, 10.0]);

    // c leaves the source: it is marked removed, and its box no longer trains anything.
    env.write(
        "manifest.csv",
        b"path,silhouette,neckline,x0,y0,x1,y1,design\n\
          img/a.jpg,sheath,v-neck,1,2,30,40,d1\n\
          img/b.jpg,a-line,boat,,,,,d1\n",
    );
    import(&catalog, &manifest).await;
    let boxes = catalog.dress_boxes().await.unwrap();
    assert_eq!(boxes.keys().collect::<Vec<_>>(), [&id_of("a")]);
}
