//! Dress boxes as reviewers edit them: the current box (a reviewer's over the imported one),
//! edits guarded by a version (also under concurrency), refused boxes that write nothing,
//! re-imports that keep a reviewer's box, and the queue of located boxes the locator was least
//! sure of; each case on SQLite and on PostgreSQL.

mod common;

use std::path::PathBuf;

use atelier_catalog::{
    BoxEdit, Catalog, CatalogError, CheckOutcome, CheckedImage, LocatedBox, NewRun,
};
use common::{TestEnv, blob, import, sha256_hex};
use serde_json::json;

on_both_backends!(
    a_reviewer_box_wins_over_the_imported_one_and_records_events,
    stale_versions_conflict_with_the_current_box,
    boxes_outside_the_image_or_empty_are_refused,
    concurrent_box_edits_have_exactly_one_winner,
    the_least_sure_queue_orders_by_confidence_and_drops_checked_boxes,
);

fn id_of(name: &str) -> String {
    sha256_hex(&blob(name))
}

/// a: boxed (10, 20, 50, 90); b: no box; c: boxed (0, 0, 5, 5).
fn manifest(env: &TestEnv, shift: f64) -> PathBuf {
    for name in ["a", "b", "c"] {
        env.write(&format!("img/{name}.jpg"), &blob(name));
    }
    let text = format!(
        "path,silhouette,x0,y0,x1,y1\n\
         img/a.jpg,sheath,{},20,50,90\n\
         img/b.jpg,a-line,,,,\n\
         img/c.jpg,sheath,0,0,5,5\n",
        10.0 + shift
    );
    env.write("manifest.csv", text.as_bytes())
}

/// Marks every image decoded at 100x120 pixels.
async fn checked(catalog: &Catalog) {
    let outcomes: Vec<CheckOutcome> = ["a", "b", "c"]
        .iter()
        .map(|name| CheckOutcome {
            id: id_of(name),
            result: Ok(CheckedImage {
                width: 100,
                height: 120,
            }),
        })
        .collect();
    catalog.record_checks(&outcomes).await.unwrap();
}

fn edit(name: &str, coords: [f64; 4], expected: i64, actor: &str) -> BoxEdit {
    BoxEdit {
        image: id_of(name),
        coords,
        expected_version: expected,
        actor: actor.to_string(),
    }
}

async fn a_reviewer_box_wins_over_the_imported_one_and_records_events(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &manifest(env, 0.0)).await;
    checked(&catalog).await;
    let imported = catalog.dress_box(&id_of("a")).await.unwrap().unwrap();
    assert_eq!(imported.coords, [10.0, 20.0, 50.0, 90.0]);
    assert_eq!((imported.source.as_str(), imported.version), ("import", 0));
    assert_eq!(catalog.dress_box(&id_of("b")).await.unwrap(), None);

    let (event, now) = catalog
        .set_dress_box(&edit("a", [12.0, 22.0, 60.0, 100.0], 0, "zoe"))
        .await
        .unwrap();
    assert_eq!(event.old, Some([10.0, 20.0, 50.0, 90.0]));
    assert_eq!(event.new, [12.0, 22.0, 60.0, 100.0]);
    assert_eq!((now.source.as_str(), now.version), ("review", 1));
    assert_eq!(now.actor.as_deref(), Some("zoe"));
    let (_, again) = catalog
        .set_dress_box(&edit("a", [13.0, 22.0, 61.0, 100.0], 1, "bob"))
        .await
        .unwrap();
    assert_eq!(again.version, 2);
    // The locator learns from the reviewer's box.
    let boxes = catalog.dress_boxes().await.unwrap();
    assert_eq!(boxes[&id_of("a")], [13.0, 22.0, 61.0, 100.0]);
    assert_eq!(boxes[&id_of("c")], [0.0, 0.0, 5.0, 5.0]);

    // An image without a box gets one from version 0; its event has no old box.
    let (event, _) = catalog
        .set_dress_box(&edit("b", [1.0, 2.0, 3.0, 4.0], 0, "zoe"))
        .await
        .unwrap();
    assert_eq!(event.old, None);
    let events = catalog.box_events(&id_of("a")).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
        ["zoe", "bob"]
    );
    assert_eq!(events[1].old, Some([12.0, 22.0, 60.0, 100.0]));

    // A re-import that moves the imported box keeps the reviewer's.
    import(&catalog, &manifest(env, 5.0)).await;
    let kept = catalog.dress_box(&id_of("a")).await.unwrap().unwrap();
    assert_eq!((kept.coords, kept.version), ([13.0, 22.0, 61.0, 100.0], 2));
    let summary = catalog.summary().await.unwrap();
    assert_eq!(summary.boxes, 4, "two imported, two reviewers' boxes");
}

async fn stale_versions_conflict_with_the_current_box(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &manifest(env, 0.0)).await;
    checked(&catalog).await;
    catalog
        .set_dress_box(&edit("a", [12.0, 22.0, 60.0, 100.0], 0, "zoe"))
        .await
        .unwrap();
    for stale in [0, 2] {
        let error = catalog
            .set_dress_box(&edit("a", [1.0, 1.0, 9.0, 9.0], stale, "bob"))
            .await
            .unwrap_err();
        let CatalogError::BoxConflict {
            current,
            expected_version,
            ..
        } = &error
        else {
            panic!("expected a box conflict, got {error}");
        };
        assert_eq!(*expected_version, stale);
        let current = current.as_deref().unwrap();
        assert_eq!(
            (current.version, current.coords),
            (1, [12.0, 22.0, 60.0, 100.0])
        );
        assert!(error.to_string().contains("version 1"), "{error}");
    }
    // A version for a box that has no reviewer's version yet.
    let error = catalog
        .set_dress_box(&edit("c", [1.0, 1.0, 4.0, 4.0], 3, "bob"))
        .await
        .unwrap_err();
    assert!(matches!(error, CatalogError::BoxConflict { .. }), "{error}");
    assert_eq!(catalog.box_events(&id_of("a")).await.unwrap().len(), 1);
    assert!(catalog.box_events(&id_of("c")).await.unwrap().is_empty());
}

async fn boxes_outside_the_image_or_empty_are_refused(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &manifest(env, 0.0)).await;
    checked(&catalog).await;
    let bad = [
        ([10.0, 10.0, 10.0, 50.0], "x1 must be greater"),
        ([30.0, 10.0, 20.0, 50.0], "x1 must be greater"),
        ([-1.0, 10.0, 20.0, 50.0], "outside the image"),
        ([10.0, 10.0, 101.0, 50.0], "outside the 100x120 image"),
        ([10.0, 10.0, 20.0, 121.0], "outside the 100x120 image"),
        ([f64::NAN, 10.0, 20.0, 50.0], "not a number"),
    ];
    for (coords, says) in bad {
        let error = catalog
            .set_dress_box(&edit("a", coords, 0, "zoe"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, CatalogError::InvalidBox { .. }) && error.to_string().contains(says),
            "{coords:?}: {error}"
        );
    }
    let unknown = BoxEdit {
        image: "0".repeat(64),
        ..edit("a", [1.0, 1.0, 2.0, 2.0], 0, "zoe")
    };
    assert!(matches!(
        catalog.set_dress_box(&unknown).await.unwrap_err(),
        CatalogError::UnknownImage(_)
    ));
    assert!(matches!(
        catalog
            .set_dress_box(&edit("a", [1.0, 1.0, 2.0, 2.0], 0, " "))
            .await
            .unwrap_err(),
        CatalogError::InvalidUser(_)
    ));
    // The whole image is a box.
    catalog
        .set_dress_box(&edit("a", [0.0, 0.0, 100.0, 120.0], 0, "zoe"))
        .await
        .unwrap();
    assert_eq!(catalog.box_events(&id_of("a")).await.unwrap().len(), 1);
}

async fn concurrent_box_edits_have_exactly_one_winner(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &manifest(env, 0.0)).await;
    checked(&catalog).await;
    for expected in [0, 1] {
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let catalog = catalog.clone();
                let edit = edit("b", [1.0, 1.0, 10.0 + i as f64, 10.0], expected, "zoe");
                tokio::spawn(async move { catalog.set_dress_box(&edit).await })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => won += 1,
                Err(CatalogError::BoxConflict { current, .. }) => {
                    assert_eq!(current.unwrap().version, expected + 1);
                }
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(won, 1, "version {expected}");
    }
    assert_eq!(catalog.box_events(&id_of("b")).await.unwrap().len(), 2);
}

async fn the_least_sure_queue_orders_by_confidence_and_drops_checked_boxes(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &manifest(env, 0.0)).await;
    checked(&catalog).await;
    let run = catalog
        .create_run(&NewRun {
            kind: "similarity".to_string(),
            config: json!({}),
            parent_run: None,
            lease: None,
        })
        .await
        .unwrap();
    let located = |name: &str, foreground: f64, agreement: f64| LocatedBox {
        image: id_of(name),
        coords: [1.0, 2.0, 30.0, 40.0],
        foreground: Some(foreground),
        agreement: Some(agreement),
    };
    // A model without the foreground classifier stores no confidence.
    let unsure = LocatedBox {
        foreground: None,
        agreement: None,
        ..located("a", 0.0, 0.0)
    };
    catalog.store_located_boxes(run, &[unsure]).await.unwrap();
    let stored = catalog
        .located_box(run, &id_of("a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.foreground, stored.agreement), (None, None));
    // a: sure of both; b: unsure of the foreground; c: its regressor disagrees most.
    catalog
        .store_located_boxes(
            run,
            &[
                located("a", 0.9, 0.95),
                located("b", 0.4, 0.9),
                located("c", 0.8, 0.3),
            ],
        )
        .await
        .unwrap();
    let order = |queue: Vec<atelier_catalog::UnsureBox>| -> Vec<String> {
        queue.into_iter().map(|u| u.located.image).collect()
    };
    let queue = catalog.least_sure_boxes(run, 10, 0).await.unwrap();
    assert_eq!(queue[0].width, Some(100));
    assert_eq!(
        queue[0].current.as_ref().map(|b| b.coords),
        Some([0.0, 0.0, 5.0, 5.0])
    );
    assert_eq!(order(queue), [id_of("c"), id_of("b"), id_of("a")]);
    assert_eq!(
        order(catalog.least_sure_boxes(run, 1, 1).await.unwrap()),
        [id_of("b")]
    );
    // Storing again replaces; a reviewer's box takes the image out of the queue.
    catalog
        .store_located_boxes(run, &[located("a", 0.1, 0.9)])
        .await
        .unwrap();
    catalog
        .set_dress_box(&edit("c", [1.0, 1.0, 9.0, 9.0], 0, "zoe"))
        .await
        .unwrap();
    assert_eq!(
        order(catalog.least_sure_boxes(run, 10, 0).await.unwrap()),
        [id_of("a"), id_of("b")]
    );
    let one = catalog
        .located_box(run, &id_of("a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.foreground, Some(0.1));
    assert_eq!(catalog.located_box(run, &id_of("zz")).await.unwrap(), None);
    assert!(matches!(
        catalog
            .store_located_boxes(run + 100, &[])
            .await
            .unwrap_err(),
        CatalogError::UnknownRun(_)
    ));
}
