//! The review web app's storage: users and sessions, audited relabelling with optimistic
//! versions (including under concurrency), undo, the review pages' queries, truth labels and
//! re-imports that keep reviewers' labels, each case on SQLite and on PostgreSQL.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use atelier_catalog::{
    BrowsedPage, Catalog, CatalogError, CheckOutcome, ImageFilter, LabelChange, LabelCondition,
    LabelEdit, NewRun, PredictionRow, ReviewFilter, ReviewItem, ReviewQuery, Role, RunFacetResult,
    SessionRecord, Split, Status, TruthReport,
};
use common::{TestEnv, blob, import, sha256_hex};
use serde_json::json;

on_both_backends!(
    users_are_added_checked_changed_and_removed,
    sessions_expire_follow_the_role_and_end_with_the_password,
    set_labels_writes_events_and_bumps_versions,
    stale_version_conflicts_and_a_batch_is_all_or_nothing,
    edit_to_the_current_label_writes_nothing,
    edits_of_unknown_or_inactive_things_are_refused,
    undo_restores_the_old_label_as_a_new_event,
    undo_after_a_later_change_conflicts,
    concurrent_edits_of_one_label_have_exactly_one_winner,
    review_page_filters_orders_and_pages,
    review_page_refuses_unknown_run_facet_and_label,
    image_predictions_and_current_labels,
    truth_labels_are_matched_by_path_and_replaced,
    truth_file_errors_name_the_column_or_line,
    reimport_keeps_reviewed_labels,
    browse_filters_by_labels_split_status_and_review_and_pages,
);

fn id_of(name: &str) -> String {
    sha256_hex(&blob(name))
}

/// Images `names` under `img/`, listed by `manifest.csv` with the given rows after the path
/// (`silhouette,neckline,sleeve`). New facets get their labels in alphabetical order:
/// silhouette [a-line, sheath, shift], neckline [boat, v-neck], sleeve [long, short].
fn write_manifest(env: &TestEnv, rows: &[(&str, &str)]) -> PathBuf {
    let mut text = String::from("path,split,silhouette,neckline,sleeve\n");
    for (name, rest) in rows {
        env.write(&format!("img/{name}.jpg"), &blob(name));
        text.push_str(&format!("img/{name}.jpg,{rest}\n"));
    }
    env.write("manifest.csv", text.as_bytes())
}

/// Four dresses, all labels known.
fn four_dresses(env: &TestEnv) -> PathBuf {
    write_manifest(
        env,
        &[
            ("a", "train,sheath,v-neck,long"),
            ("b", "train,a-line,boat,short"),
            ("c", "test,shift,boat,long"),
            ("d", "train,a-line,,short"),
        ],
    )
}

fn edit(image: &str, facet: &str, label: Option<&str>, expected: i64, actor: &str) -> LabelEdit {
    LabelEdit {
        image: id_of(image),
        facet: facet.to_string(),
        label: label.map(str::to_string),
        expected_version: expected,
        actor: actor.to_string(),
        reason: None,
        run_id: None,
    }
}

/// (label, version, source) of one image's facet, or `None` without a label row.
async fn label_of(
    catalog: &Catalog,
    image: &str,
    facet: &str,
) -> Option<(Option<String>, i64, String)> {
    let record = catalog.image(&id_of(image)).await.unwrap().unwrap();
    record
        .labels
        .into_iter()
        .find(|l| l.facet == facet)
        .map(|l| (l.label, l.version, l.source))
}

async fn event_count(catalog: &Catalog) -> u64 {
    catalog.summary().await.unwrap().label_events
}

async fn start_run(catalog: &Catalog) -> i64 {
    catalog
        .create_run(&NewRun {
            kind: "facets".to_string(),
            config: json!({}),
            parent_run: None,
            lease: None,
        })
        .await
        .unwrap()
}

async fn quarantine(catalog: &Catalog, name: &str) {
    catalog
        .record_checks(&[CheckOutcome {
            id: id_of(name),
            result: Err("does not decode".to_string()),
        }])
        .await
        .unwrap();
}

async fn users_are_added_checked_changed_and_removed(env: &TestEnv) {
    let catalog = env.open().await;
    assert!(catalog.users().await.unwrap().is_empty());
    catalog
        .add_user("zoe", Role::Viewer, "$argon2id$v=19$zoe")
        .await
        .unwrap();
    catalog
        .add_user("ann.lee@shop.example", Role::Admin, "$argon2id$v=19$ann")
        .await
        .unwrap();
    catalog
        .add_user("Bob_2-x", Role::Reviewer, "$argon2id$v=19$bob")
        .await
        .unwrap();

    let users = catalog.users().await.unwrap();
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    // Byte order: upper case before lower case.
    assert_eq!(names, ["Bob_2-x", "ann.lee@shop.example", "zoe"]);
    let ann = catalog.user("ann.lee@shop.example").await.unwrap().unwrap();
    assert_eq!(ann.role, Role::Admin);
    assert_eq!(ann.password_hash, "$argon2id$v=19$ann");
    assert!(ann.created_at > 1_600_000_000_000, "unix milliseconds");
    let shown = serde_json::to_value(&ann).unwrap();
    assert_eq!(shown["role"], "admin");
    assert!(
        shown.get("password_hash").is_none(),
        "the hash is never serialised: {shown}"
    );
    assert_eq!(catalog.user("nobody").await.unwrap(), None);

    let err = catalog
        .add_user("zoe", Role::Admin, "other")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CatalogError::UserExists(n) if n == "zoe"),
        "{err}"
    );
    assert!(err.to_string().contains("\"zoe\""), "{err}");
    assert_eq!(
        catalog.user("zoe").await.unwrap().unwrap().role,
        Role::Viewer,
        "a refused duplicate changes nothing"
    );
    for bad in ["", "has space", "slash/name", "ünï", &"x".repeat(65)] {
        let err = catalog.add_user(bad, Role::Viewer, "h").await.unwrap_err();
        assert!(
            matches!(&err, CatalogError::InvalidUser(n) if n == bad),
            "{err}"
        );
    }
    catalog
        .add_user(&"x".repeat(64), Role::Viewer, "h")
        .await
        .unwrap();
    assert_eq!(catalog.users().await.unwrap().len(), 4);

    catalog.set_user_role("zoe", Role::Reviewer).await.unwrap();
    assert_eq!(
        catalog.user("zoe").await.unwrap().unwrap().role,
        Role::Reviewer
    );
    let err = catalog
        .set_user_role("nobody", Role::Admin)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CatalogError::UnknownUser(n) if n == "nobody"),
        "{err}"
    );
    let err = catalog.set_user_password("nobody", "h").await.unwrap_err();
    assert!(matches!(err, CatalogError::UnknownUser(_)), "{err}");

    // Removing a user ends the user's sessions and no one else's.
    catalog
        .create_session("zoe-token", "zoe", "csrf-z", i64::MAX)
        .await
        .unwrap();
    catalog
        .create_session("bob-token", "Bob_2-x", "csrf-b", i64::MAX)
        .await
        .unwrap();
    catalog.remove_user("zoe").await.unwrap();
    assert_eq!(catalog.user("zoe").await.unwrap(), None);
    assert_eq!(catalog.session("zoe-token", 0).await.unwrap(), None);
    assert!(catalog.session("bob-token", 0).await.unwrap().is_some());
    let err = catalog.remove_user("zoe").await.unwrap_err();
    assert!(matches!(err, CatalogError::UnknownUser(_)), "{err}");
    // The name is free again, and the old session does not come back with it.
    catalog.add_user("zoe", Role::Admin, "new").await.unwrap();
    assert_eq!(catalog.session("zoe-token", 0).await.unwrap(), None);
    assert_eq!(catalog.delete_expired_sessions(0).await.unwrap(), 0);
}

async fn sessions_expire_follow_the_role_and_end_with_the_password(env: &TestEnv) {
    let catalog = env.open().await;
    catalog
        .add_user("rita", Role::Reviewer, "hash-1")
        .await
        .unwrap();
    let now = 1_700_000_000_000i64;
    catalog
        .create_session("t1", "rita", "csrf-1", now + 1_000)
        .await
        .unwrap();
    catalog
        .create_session("t2", "rita", "csrf-2", now + 5_000)
        .await
        .unwrap();
    let err = catalog
        .create_session("t3", "nobody", "csrf-3", now + 1_000)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CatalogError::UnknownUser(n) if n == "nobody"),
        "{err}"
    );

    assert_eq!(
        catalog.session("t1", now).await.unwrap(),
        Some(SessionRecord {
            user: "rita".to_string(),
            role: Role::Reviewer,
            csrf_token: "csrf-1".to_string(),
            expires_at: now + 1_000,
        })
    );
    assert!(catalog.session("t1", now + 999).await.unwrap().is_some());
    assert_eq!(
        catalog.session("t1", now + 1_000).await.unwrap(),
        None,
        "a session ends at its expiry time"
    );
    assert_eq!(catalog.session("unknown", now).await.unwrap(), None);

    // A role change applies to open sessions at once.
    catalog.set_user_role("rita", Role::Viewer).await.unwrap();
    assert_eq!(
        catalog.session("t2", now).await.unwrap().unwrap().role,
        Role::Viewer
    );

    // Expired rows are reclaimed; live ones stay.
    assert_eq!(
        catalog.delete_expired_sessions(now + 1_000).await.unwrap(),
        1
    );
    assert!(catalog.session("t2", now).await.unwrap().is_some());

    catalog.delete_session("t2").await.unwrap();
    assert_eq!(catalog.session("t2", now).await.unwrap(), None);
    catalog.delete_session("t2").await.unwrap();

    // A new password ends every session of the user.
    catalog
        .create_session("t4", "rita", "csrf-4", now + 9_000)
        .await
        .unwrap();
    catalog
        .create_session("t5", "rita", "csrf-5", now + 9_000)
        .await
        .unwrap();
    catalog.set_user_password("rita", "hash-2").await.unwrap();
    assert_eq!(catalog.session("t4", now).await.unwrap(), None);
    assert_eq!(catalog.session("t5", now).await.unwrap(), None);
    assert_eq!(
        catalog.user("rita").await.unwrap().unwrap().password_hash,
        "hash-2"
    );
}

async fn set_labels_writes_events_and_bumps_versions(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &four_dresses(env)).await;
    let run = start_run(&catalog).await;
    let before = event_count(&catalog).await;

    let mut retag = edit("a", "silhouette", Some("shift"), 1, "rita");
    retag.reason = Some("the hem is straight".to_string());
    retag.run_id = Some(run);
    let clear = edit("b", "neckline", None, 1, "rita");
    // d never had a neckline: no label row, version 0.
    let first = edit("d", "neckline", Some("v-neck"), 0, "sam");
    let changes = catalog.set_labels(&[retag, clear, first]).await.unwrap();

    assert_eq!(changes.len(), 3);
    let ids: Vec<i64> = changes.iter().map(|c| c.event_id.unwrap()).collect();
    let distinct: std::collections::HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 3, "one event per change: {ids:?}");
    assert_eq!(
        changes[0],
        LabelChange {
            event_id: Some(ids[0]),
            image: id_of("a"),
            facet: "silhouette".to_string(),
            old_label: Some("sheath".to_string()),
            new_label: Some("shift".to_string()),
            version: 2,
        }
    );
    assert_eq!(
        (
            changes[1].old_label.as_deref(),
            changes[1].new_label.as_deref(),
            changes[1].version
        ),
        (Some("boat"), None, 2)
    );
    assert_eq!(
        (
            changes[2].old_label.as_deref(),
            changes[2].new_label.as_deref(),
            changes[2].version
        ),
        (None, Some("v-neck"), 1)
    );
    assert_eq!(event_count(&catalog).await, before + 3);

    // The stored labels follow, with source 'review'.
    assert_eq!(
        label_of(&catalog, "a", "silhouette").await,
        Some((Some("shift".to_string()), 2, "review".to_string()))
    );
    assert_eq!(
        label_of(&catalog, "b", "neckline").await,
        Some((None, 2, "review".to_string()))
    );
    assert_eq!(
        label_of(&catalog, "d", "neckline").await,
        Some((Some("v-neck".to_string()), 1, "review".to_string()))
    );
    assert_eq!(
        label_of(&catalog, "a", "neckline").await,
        Some((Some("v-neck".to_string()), 1, "import".to_string())),
        "untouched labels stay"
    );

    // The history names actor, source, reason and run.
    let history = catalog.label_history(&id_of("a")).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(last.id, ids[0]);
    assert_eq!(
        (
            last.facet.as_str(),
            last.old_label.as_deref(),
            last.new_label.as_deref()
        ),
        ("silhouette", Some("sheath"), Some("shift"))
    );
    assert_eq!(
        (last.actor.as_str(), last.source.as_str()),
        ("rita", "review")
    );
    assert_eq!(last.reason.as_deref(), Some("the hem is straight"));
    assert_eq!(last.run_id, Some(run));
    assert!(last.at > 1_600_000_000_000);
    let d_last = catalog
        .label_history(&id_of("d"))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        (
            d_last.actor.as_str(),
            d_last.reason.as_deref(),
            d_last.run_id
        ),
        ("sam", None, None)
    );

    // Versions keep counting: an edit based on version 2 is accepted and makes 3.
    let again = catalog
        .set_labels(&[edit("a", "silhouette", Some("a-line"), 2, "sam")])
        .await
        .unwrap();
    assert_eq!(again[0].version, 3);
    assert_eq!(again[0].old_label.as_deref(), Some("shift"));
    // A cleared label is set again on top of its row.
    let refill = catalog
        .set_labels(&[edit("b", "neckline", Some("v-neck"), 2, "sam")])
        .await
        .unwrap();
    assert_eq!(
        (refill[0].old_label.as_deref(), refill[0].version),
        (None, 3)
    );
}

async fn stale_version_conflicts_and_a_batch_is_all_or_nothing(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &four_dresses(env)).await;
    catalog
        .set_labels(&[edit("a", "silhouette", Some("shift"), 1, "rita")])
        .await
        .unwrap();
    let before = event_count(&catalog).await;

    // Someone who still sees version 1 is refused with the current state.
    let err = catalog
        .set_labels(&[edit("a", "silhouette", Some("a-line"), 1, "sam")])
        .await
        .unwrap_err();
    match &err {
        CatalogError::Conflict {
            image,
            facet,
            expected_version,
            current_version,
            current_label,
        } => {
            assert_eq!(image, &id_of("a"));
            assert_eq!(facet, "silhouette");
            assert_eq!((*expected_version, *current_version), (1, 2));
            assert_eq!(current_label.as_deref(), Some("shift"));
        }
        other => panic!("expected a conflict, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains("someone else"), "{message}");
    assert!(message.contains("reload"), "{message}");
    assert!(message.contains("\"shift\""), "{message}");

    // Version 0 for a label row that exists is stale too, and so is a version from the
    // future.
    for expected in [0, 3] {
        let err = catalog
            .set_labels(&[edit("a", "silhouette", Some("a-line"), expected, "sam")])
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                CatalogError::Conflict {
                    current_version: 2,
                    ..
                }
            ),
            "{err}"
        );
    }
    // A label row the editor did not know about: d's neckline set by someone else first.
    catalog
        .set_labels(&[edit("d", "neckline", Some("boat"), 0, "rita")])
        .await
        .unwrap();
    let err = catalog
        .set_labels(&[edit("d", "neckline", Some("v-neck"), 0, "sam")])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CatalogError::Conflict { expected_version: 0, current_version: 1, current_label: Some(l), .. } if l == "boat"),
        "{err}"
    );
    let before = before + 1;

    // The second edit fails, so the first one (valid on its own) is not applied either.
    let err = catalog
        .set_labels(&[
            edit("b", "silhouette", Some("sheath"), 1, "sam"),
            edit("a", "silhouette", Some("a-line"), 1, "sam"),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::Conflict { .. }), "{err}");
    assert_eq!(
        label_of(&catalog, "b", "silhouette").await,
        Some((Some("a-line".to_string()), 1, "import".to_string()))
    );
    assert_eq!(
        label_of(&catalog, "a", "silhouette").await,
        Some((Some("shift".to_string()), 2, "review".to_string()))
    );
    assert_eq!(event_count(&catalog).await, before, "nothing was written");

    // Two edits of one label in one batch: the second must build on the first's version.
    let err = catalog
        .set_labels(&[
            edit("c", "sleeve", Some("short"), 1, "sam"),
            edit("c", "sleeve", Some("long"), 1, "sam"),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CatalogError::Conflict {
                current_version: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(event_count(&catalog).await, before);
    let both = catalog
        .set_labels(&[
            edit("c", "sleeve", Some("short"), 1, "sam"),
            edit("c", "sleeve", Some("long"), 2, "sam"),
        ])
        .await
        .unwrap();
    assert_eq!(both.iter().map(|c| c.version).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(event_count(&catalog).await, before + 2);
}

async fn edit_to_the_current_label_writes_nothing(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &four_dresses(env)).await;
    let before = event_count(&catalog).await;
    let changes = catalog
        .set_labels(&[
            edit("a", "silhouette", Some("sheath"), 1, "rita"),
            // No row and nothing asked for: nothing to do either.
            edit("d", "neckline", None, 0, "rita"),
        ])
        .await
        .unwrap();
    assert_eq!(
        changes[0],
        LabelChange {
            event_id: None,
            image: id_of("a"),
            facet: "silhouette".to_string(),
            old_label: Some("sheath".to_string()),
            new_label: Some("sheath".to_string()),
            version: 1,
        }
    );
    assert_eq!(
        (
            changes[1].event_id,
            changes[1].new_label.as_ref(),
            changes[1].version
        ),
        (None, None, 0)
    );
    assert_eq!(event_count(&catalog).await, before);
    assert_eq!(
        label_of(&catalog, "a", "silhouette").await,
        Some((Some("sheath".to_string()), 1, "import".to_string())),
        "not even the source changes"
    );
    assert_eq!(label_of(&catalog, "d", "neckline").await, None);
    // A no-op still checks the version.
    let err = catalog
        .set_labels(&[edit("a", "silhouette", Some("sheath"), 2, "rita")])
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::Conflict { .. }), "{err}");
}

async fn edits_of_unknown_or_inactive_things_are_refused(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &four_dresses(env)).await;
    quarantine(&catalog, "c").await;
    let before = event_count(&catalog).await;
    // Each bad edit comes second, after a valid one that must not be applied.
    let valid = edit("a", "silhouette", Some("shift"), 1, "rita");
    let attempt = |bad: LabelEdit| {
        let catalog = catalog.clone();
        let valid = valid.clone();
        async move { catalog.set_labels(&[valid, bad]).await.unwrap_err() }
    };

    let mut unknown_image = edit("a", "silhouette", Some("shift"), 1, "rita");
    unknown_image.image = "f".repeat(64);
    let err = attempt(unknown_image).await;
    assert!(
        matches!(&err, CatalogError::UnknownImage(id) if *id == "f".repeat(64)),
        "{err}"
    );

    let err = attempt(edit("c", "silhouette", Some("sheath"), 1, "rita")).await;
    assert!(
        matches!(&err, CatalogError::ImageNotActive { image, status: Status::Quarantined } if *image == id_of("c")),
        "{err}"
    );
    assert!(err.to_string().contains("quarantined"), "{err}");

    let err = attempt(edit("b", "colour", Some("red"), 1, "rita")).await;
    assert!(
        matches!(&err, CatalogError::UnknownFacet { facet, known } if facet == "colour" && known.contains("silhouette")),
        "{err}"
    );

    let err = attempt(edit("b", "silhouette", Some("mermaid"), 1, "rita")).await;
    match &err {
        CatalogError::UnknownLabel {
            location,
            facet,
            label,
            known,
        } => {
            assert_eq!(location, "retag");
            assert_eq!((facet.as_str(), label.as_str()), ("silhouette", "mermaid"));
            assert_eq!(known, "a-line, sheath, shift");
        }
        other => panic!("expected UnknownLabel, got {other}"),
    }

    let mut unknown_run = edit("b", "silhouette", Some("sheath"), 1, "rita");
    unknown_run.run_id = Some(4242);
    let err = attempt(unknown_run).await;
    assert!(matches!(err, CatalogError::UnknownRun(4242)), "{err}");

    let err = attempt(edit("b", "silhouette", Some("sheath"), 1, " ")).await;
    assert!(matches!(err, CatalogError::InvalidUser(_)), "{err}");

    assert_eq!(event_count(&catalog).await, before);
    assert_eq!(
        label_of(&catalog, "a", "silhouette").await,
        Some((Some("sheath".to_string()), 1, "import".to_string()))
    );
}

async fn undo_restores_the_old_label_as_a_new_event(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &four_dresses(env)).await;
    let run = start_run(&catalog).await;
    let mut retag = edit("a", "silhouette", Some("shift"), 1, "rita");
    retag.run_id = Some(run);
    let event = catalog.set_labels(&[retag]).await.unwrap()[0]
        .event_id
        .unwrap();

    let undone = catalog.undo_label_event(event, "sam").await.unwrap();
    let undo_event = undone.event_id.expect("an undo writes an event");
    assert!(undo_event > event);
    assert_eq!(
        undone,
        LabelChange {
            event_id: Some(undo_event),
            image: id_of("a"),
            facet: "silhouette".to_string(),
            old_label: Some("shift".to_string()),
            new_label: Some("sheath".to_string()),
            version: 3,
        }
    );
    assert_eq!(
        label_of(&catalog, "a", "silhouette").await,
        Some((Some("sheath".to_string()), 3, "review".to_string()))
    );
    let last = catalog
        .label_history(&id_of("a"))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last.id, undo_event);
    assert_eq!(
        (last.actor.as_str(), last.source.as_str()),
        ("sam", "review")
    );
    assert_eq!(
        last.reason.as_deref(),
        Some(format!("undo of event {event}").as_str())
    );
    assert_eq!(last.run_id, Some(run), "the run is copied");

    // Undoing an event that created a label clears it again (the row keeps counting).
    let created = catalog
        .set_labels(&[edit("d", "neckline", Some("boat"), 0, "rita")])
        .await
        .unwrap()[0]
        .event_id
        .unwrap();
    let cleared = catalog.undo_label_event(created, "rita").await.unwrap();
    assert_eq!(
        (
            cleared.old_label.as_deref(),
            cleared.new_label,
            cleared.version
        ),
        (Some("boat"), None, 2)
    );
    assert_eq!(
        label_of(&catalog, "d", "neckline").await,
        Some((None, 2, "review".to_string()))
    );

    // An import's events can be undone too: b's silhouette was set by the import.
    let imported = catalog
        .label_history(&id_of("b"))
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.facet == "silhouette")
        .unwrap();
    let undone = catalog.undo_label_event(imported.id, "rita").await.unwrap();
    assert_eq!(
        (
            undone.old_label.as_deref(),
            undone.new_label,
            undone.version
        ),
        (Some("a-line"), None, 2)
    );

    let err = catalog.undo_label_event(999_999, "rita").await.unwrap_err();
    assert!(matches!(err, CatalogError::UnknownEvent(999_999)), "{err}");
    assert!(err.to_string().contains("999999"), "{err}");
}

async fn undo_after_a_later_change_conflicts(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &four_dresses(env)).await;
    let first = catalog
        .set_labels(&[edit("a", "silhouette", Some("shift"), 1, "rita")])
        .await
        .unwrap()[0]
        .event_id
        .unwrap();
    catalog
        .set_labels(&[edit("a", "silhouette", Some("a-line"), 2, "sam")])
        .await
        .unwrap();
    let before = event_count(&catalog).await;
    let err = catalog.undo_label_event(first, "rita").await.unwrap_err();
    match &err {
        CatalogError::Conflict {
            image,
            facet,
            expected_version,
            current_version,
            current_label,
        } => {
            assert_eq!((image, facet.as_str()), (&id_of("a"), "silhouette"));
            // The event made version 2; the label is at 3 now, with sam's label.
            assert_eq!((*expected_version, *current_version), (2, 3));
            assert_eq!(current_label.as_deref(), Some("a-line"));
        }
        other => panic!("expected a conflict, got {other}"),
    }
    assert_eq!(event_count(&catalog).await, before);
    assert_eq!(
        label_of(&catalog, "a", "silhouette").await,
        Some((Some("a-line".to_string()), 3, "review".to_string()))
    );

    // The later event itself can still be undone, and then the first one can.
    let later = catalog
        .label_history(&id_of("a"))
        .await
        .unwrap()
        .pop()
        .unwrap()
        .id;
    catalog.undo_label_event(later, "sam").await.unwrap();
    let back = catalog.undo_label_event(first, "rita").await.unwrap();
    assert_eq!(
        (back.new_label.as_deref(), back.version),
        (Some("sheath"), 5)
    );

    // An image that is no longer active cannot be changed by an undo either.
    let b_event = catalog
        .set_labels(&[edit("b", "sleeve", Some("long"), 1, "rita")])
        .await
        .unwrap()[0]
        .event_id
        .unwrap();
    quarantine(&catalog, "b").await;
    let err = catalog.undo_label_event(b_event, "rita").await.unwrap_err();
    assert!(matches!(err, CatalogError::ImageNotActive { .. }), "{err}");
}

async fn concurrent_edits_of_one_label_have_exactly_one_winner(env: &TestEnv) {
    let catalog = env.open().await;
    let names: Vec<String> = (0..50).map(|i| format!("p{i:02}")).collect();
    // p48 and p49 bring the other labels of silhouette and neckline into the catalogue.
    let rows: Vec<(&str, &str)> = names
        .iter()
        .map(|n| match n.as_str() {
            "p48" => (n.as_str(), "train,shift,boat,long"),
            "p49" => (n.as_str(), "train,sheath,v-neck,short"),
            _ => (n.as_str(), "train,a-line,boat,long"),
        })
        .collect();
    import(&catalog, &write_manifest(env, &rows)).await;
    let before = event_count(&catalog).await;

    // 50 reviewers who all saw version 1 of p00's silhouette.
    let mut tasks = Vec::new();
    for k in 0..50 {
        let catalog = catalog.clone();
        let label = if k % 2 == 0 { "sheath" } else { "shift" };
        tasks.push(tokio::spawn(async move {
            let actor = format!("reviewer{k}");
            let result = catalog
                .set_labels(&[edit("p00", "silhouette", Some(label), 1, &actor)])
                .await;
            (actor, label, result)
        }));
    }
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        let (actor, label, result) = task.await.unwrap();
        match result {
            Ok(changes) => winners.push((actor, label, changes)),
            Err(CatalogError::Conflict {
                current_version, ..
            }) => {
                assert_eq!(current_version, 2, "the loser sees the winner's version");
                conflicts += 1;
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one edit wins");
    assert_eq!(conflicts, 49);
    let (winner, winner_label, changes) = &winners[0];
    assert_eq!(changes[0].version, 2);
    assert_eq!(
        label_of(&catalog, "p00", "silhouette").await,
        Some((Some(winner_label.to_string()), 2, "review".to_string()))
    );

    // 50 reviewers on 50 different images: no one is in anyone's way.
    let mut tasks = Vec::new();
    for (k, name) in names.iter().enumerate() {
        let catalog = catalog.clone();
        let name = name.clone();
        // Each to a label the image does not have, so that every edit writes.
        let label = if name == "p49" { "boat" } else { "v-neck" };
        tasks.push(tokio::spawn(async move {
            catalog
                .set_labels(&[edit(&name, "neckline", Some(label), 1, &format!("r{k}"))])
                .await
        }));
    }
    for task in tasks {
        let changes = task.await.unwrap().expect("independent edits all succeed");
        assert_eq!(changes[0].version, 2);
    }

    // The history holds exactly the accepted changes, and each label's version is 1 (the
    // import) plus its review events.
    assert_eq!(event_count(&catalog).await, before + 1 + 50);
    for name in &names {
        let history = catalog.label_history(&id_of(name)).await.unwrap();
        for facet in ["silhouette", "neckline", "sleeve"] {
            let events: Vec<_> = history.iter().filter(|e| e.facet == facet).collect();
            assert_eq!(events[0].source, "import");
            let reviews: Vec<_> = events.iter().filter(|e| e.source == "review").collect();
            let (_, version, _) = label_of(&catalog, name, facet).await.unwrap();
            assert_eq!(version, 1 + reviews.len() as i64, "{name} {facet}");
            let expected_reviews = match (name.as_str(), facet) {
                ("p00", "silhouette") | (_, "neckline") => 1,
                _ => 0,
            };
            assert_eq!(reviews.len(), expected_reviews, "{name} {facet}");
            if name == "p00" && facet == "silhouette" {
                assert_eq!(&reviews[0].actor, winner);
            }
        }
    }
}

/// The catalogue and run of the review-page tests: eight dresses, a run with hand-set
/// predictions for silhouette (all eight) and neckline (two), and h quarantined.
struct ReviewFixture {
    catalog: Catalog,
    run: i64,
    /// (image name, label at training, predicted, confidence, split) of silhouette.
    silhouette: Vec<(&'static str, Option<&'static str>, &'static str, f64, Split)>,
}

async fn review_fixture(env: &TestEnv) -> ReviewFixture {
    let catalog = env.open().await;
    import(
        &catalog,
        &write_manifest(
            env,
            &[
                ("a", "train,a-line,boat,long"),
                ("b", "test,a-line,boat,long"),
                ("c", "train,a-line,v-neck,long"),
                ("d", "train,sheath,boat,long"),
                ("e", "train,,boat,long"),
                ("f", "test,shift,boat,long"),
                ("g", "test,a-line,boat,long"),
                ("h", "train,a-line,boat,long"),
            ],
        ),
    )
    .await;
    let silhouette = vec![
        ("a", Some("a-line"), "sheath", 0.9, Split::Train),
        ("b", Some("a-line"), "shift", 0.8, Split::Test),
        ("c", Some("a-line"), "a-line", 0.95, Split::Train),
        ("d", Some("sheath"), "a-line", 0.7, Split::Train),
        ("e", None, "a-line", 0.99, Split::Train),
        ("f", Some("shift"), "a-line", 0.7, Split::Test),
        ("g", Some("a-line"), "sheath", 0.9, Split::Test),
        ("h", Some("a-line"), "sheath", 0.85, Split::Train),
    ];
    let mut rows: Vec<PredictionRow> = silhouette
        .iter()
        .map(|(name, label, predicted, confidence, split)| {
            let labels = ["a-line", "sheath", "shift"];
            let rest = (1.0 - *confidence as f32) / 2.0;
            PredictionRow {
                image_id: id_of(name),
                facet: "silhouette".to_string(),
                split: *split,
                label: label.map(str::to_string),
                predicted: predicted.to_string(),
                confidence: *confidence,
                scores: labels
                    .iter()
                    .map(|l| {
                        if l == predicted {
                            *confidence as f32
                        } else {
                            rest
                        }
                    })
                    .collect(),
                out_of_fold: false,
            }
        })
        .collect();
    for (name, label, predicted) in [("a", "boat", "v-neck"), ("c", "v-neck", "v-neck")] {
        rows.push(PredictionRow {
            image_id: id_of(name),
            facet: "neckline".to_string(),
            split: Split::Train,
            label: Some(label.to_string()),
            predicted: predicted.to_string(),
            confidence: 0.6,
            scores: if predicted == "boat" {
                vec![0.6, 0.4]
            } else {
                vec![0.4, 0.6]
            },
            out_of_fold: true,
        });
    }
    let run = start_run(&catalog).await;
    let facet = |name: &str, labels: &[&str]| RunFacetResult {
        facet: name.to_string(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        class_weights: vec![1.0; labels.len()],
        train_metrics: None,
        test_metrics: None,
    };
    // The run's facet order differs from the catalogue's.
    catalog
        .record_run_results(
            run,
            &[
                facet("neckline", &["boat", "v-neck"]),
                facet("silhouette", &["a-line", "sheath", "shift"]),
            ],
            &rows,
        )
        .await
        .unwrap();
    quarantine(&catalog, "h").await;
    ReviewFixture {
        catalog,
        run,
        silhouette,
    }
}

impl ReviewFixture {
    /// The reference answer, computed from the hand-set predictions: active images matching
    /// `keep`, most confident first, ties by image id.
    fn expected(
        &self,
        keep: impl Fn(Option<&str>, &str, Split) -> bool,
    ) -> Vec<(String, Option<&'static str>, &'static str, f64, Split)> {
        let mut rows: Vec<_> = self
            .silhouette
            .iter()
            .filter(|(name, ..)| *name != "h")
            .filter(|(_, label, predicted, _, split)| keep(*label, predicted, *split))
            .map(|(name, label, predicted, confidence, split)| {
                (id_of(name), *label, *predicted, *confidence, *split)
            })
            .collect();
        rows.sort_by(|x, y| y.3.total_cmp(&x.3).then_with(|| x.0.cmp(&y.0)));
        rows
    }

    async fn page(
        &self,
        filter: ReviewFilter,
        split: Option<Split>,
        offset: u64,
        limit: u64,
    ) -> (u64, Vec<ReviewItem>) {
        let page = self
            .catalog
            .review_page(&ReviewQuery {
                run: self.run,
                facet: "silhouette".to_string(),
                filter,
                split,
                offset,
                limit,
            })
            .await
            .unwrap();
        (page.total, page.items)
    }
}

fn as_tuples(items: &[ReviewItem]) -> Vec<(String, Option<&str>, &str, f64, Split)> {
    items
        .iter()
        .map(|i| {
            (
                i.image_id.clone(),
                i.label_at_training.as_deref(),
                i.predicted.as_str(),
                i.confidence,
                i.split,
            )
        })
        .collect()
}

async fn review_page_filters_orders_and_pages(env: &TestEnv) {
    let fx = review_fixture(env).await;
    let label = |l: &str| l.to_string();

    // False negatives of a-line: a and g (0.9, tied), b (0.8); c is right, h quarantined.
    let (total, items) = fx
        .page(
            ReviewFilter::FalseNegatives {
                label: label("a-line"),
            },
            None,
            0,
            50,
        )
        .await;
    let expected = fx.expected(|l, p, _| l == Some("a-line") && p != "a-line");
    assert_eq!(expected.len(), 3);
    assert_eq!((total, as_tuples(&items)), (3, expected.clone()));
    let mut tied = [id_of("a"), id_of("g")];
    tied.sort();
    assert_eq!(
        items.iter().map(|i| i.image_id.clone()).collect::<Vec<_>>(),
        [tied[0].clone(), tied[1].clone(), id_of("b")]
    );
    // Current labels come with their versions, to edit against.
    assert!(
        items
            .iter()
            .all(|i| i.current_label.as_deref() == Some("a-line") && i.version == 1)
    );

    // False positives of a-line: d and f (0.7, tied); e has no label and is left out.
    let (total, items) = fx
        .page(
            ReviewFilter::FalsePositives {
                label: label("a-line"),
            },
            None,
            0,
            50,
        )
        .await;
    let expected = fx.expected(|l, p, _| p == "a-line" && l.is_some() && l != Some("a-line"));
    assert_eq!(expected.len(), 2);
    assert_eq!((total, as_tuples(&items)), (2, expected));

    // Cells, the diagonal included.
    let (total, items) = fx
        .page(
            ReviewFilter::Cell {
                label: label("a-line"),
                predicted: label("sheath"),
            },
            None,
            0,
            50,
        )
        .await;
    assert_eq!(
        (total, as_tuples(&items)),
        (
            2,
            fx.expected(|l, p, _| l == Some("a-line") && p == "sheath")
        )
    );
    let (total, items) = fx
        .page(
            ReviewFilter::Cell {
                label: label("a-line"),
                predicted: label("a-line"),
            },
            None,
            0,
            50,
        )
        .await;
    assert_eq!(total, 1);
    assert_eq!(items[0].image_id, id_of("c"));
    assert_eq!(items[0].confidence, 0.95);
    let (total, items) = fx
        .page(
            ReviewFilter::Cell {
                label: label("shift"),
                predicted: label("sheath"),
            },
            None,
            0,
            50,
        )
        .await;
    assert_eq!((total, items.len()), (0, 0));

    // Split filter: only the test split's false negatives, g then b.
    let (total, items) = fx
        .page(
            ReviewFilter::FalseNegatives {
                label: label("a-line"),
            },
            Some(Split::Test),
            0,
            50,
        )
        .await;
    assert_eq!(
        items.iter().map(|i| i.image_id.clone()).collect::<Vec<_>>(),
        [id_of("g"), id_of("b")]
    );
    assert_eq!(total, 2);
    assert!(items.iter().all(|i| i.split == Split::Test));
    let (total, items) = fx
        .page(
            ReviewFilter::FalsePositives {
                label: label("a-line"),
            },
            Some(Split::Train),
            0,
            50,
        )
        .await;
    assert_eq!(
        (
            total,
            items.iter().map(|i| i.image_id.clone()).collect::<Vec<_>>()
        ),
        (1, vec![id_of("d")])
    );

    // Paging: the total stays the whole query's; pages are slices of one order.
    let all = fx.expected(|l, p, _| l == Some("a-line") && p != "a-line");
    for offset in 0..4u64 {
        let (total, items) = fx
            .page(
                ReviewFilter::FalseNegatives {
                    label: label("a-line"),
                },
                None,
                offset,
                1,
            )
            .await;
        assert_eq!(total, 3);
        let expected: Vec<_> = all.iter().skip(offset as usize).take(1).cloned().collect();
        assert_eq!(as_tuples(&items), expected, "offset {offset}");
    }
    let (total, items) = fx
        .page(
            ReviewFilter::FalseNegatives {
                label: label("a-line"),
            },
            None,
            1,
            0,
        )
        .await;
    assert_eq!((total, items.len()), (3, 0));

    // A reviewer's change shows as the current label; the label at training stays.
    fx.catalog
        .set_labels(&[edit("b", "silhouette", Some("shift"), 1, "rita")])
        .await
        .unwrap();
    let (_, items) = fx
        .page(
            ReviewFilter::Cell {
                label: label("a-line"),
                predicted: label("shift"),
            },
            None,
            0,
            50,
        )
        .await;
    assert_eq!(items.len(), 1);
    assert_eq!(
        (
            items[0].label_at_training.as_deref(),
            items[0].current_label.as_deref(),
            items[0].version
        ),
        (Some("a-line"), Some("shift"), 2)
    );
    // A cleared label shows as none, with its row's version.
    fx.catalog
        .set_labels(&[edit("d", "silhouette", None, 1, "rita")])
        .await
        .unwrap();
    let (_, items) = fx
        .page(
            ReviewFilter::FalsePositives {
                label: label("a-line"),
            },
            None,
            0,
            50,
        )
        .await;
    let d = items.iter().find(|i| i.image_id == id_of("d")).unwrap();
    assert_eq!((d.current_label.as_deref(), d.version), (None, 2));
}

async fn review_page_refuses_unknown_run_facet_and_label(env: &TestEnv) {
    let fx = review_fixture(env).await;
    let query = |run: i64, facet: &str, filter: ReviewFilter| ReviewQuery {
        run,
        facet: facet.to_string(),
        filter,
        split: None,
        offset: 0,
        limit: 10,
    };
    let fn_of = |l: &str| ReviewFilter::FalseNegatives {
        label: l.to_string(),
    };
    let err = fx
        .catalog
        .review_page(&query(fx.run + 7, "silhouette", fn_of("a-line")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CatalogError::UnknownRun(r) if r == fx.run + 7),
        "{err}"
    );
    let err = fx
        .catalog
        .review_page(&query(fx.run, "colour", fn_of("red")))
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::UnknownFacet { .. }), "{err}");
    let err = fx
        .catalog
        .review_page(&query(fx.run, "silhouette", fn_of("mermaid")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CatalogError::UnknownLabel { label, .. } if label == "mermaid"),
        "{err}"
    );
    let err = fx
        .catalog
        .review_page(&query(
            fx.run,
            "silhouette",
            ReviewFilter::Cell {
                label: "a-line".to_string(),
                predicted: "mermaid".to_string(),
            },
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::UnknownLabel { .. }), "{err}");
    // sleeve is a facet of the catalogue, but the run did not train it.
    let err = fx
        .catalog
        .review_page(&query(fx.run, "sleeve", fn_of("long")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CatalogError::FacetNotInRun { facet, trained, .. } if facet == "sleeve" && trained == "neckline, silhouette"),
        "{err}"
    );
}

async fn image_predictions_and_current_labels(env: &TestEnv) {
    let fx = review_fixture(env).await;
    let catalog = &fx.catalog;

    // In the run's facet order: neckline first.
    let a = catalog
        .image_predictions(&id_of("a"), fx.run)
        .await
        .unwrap();
    assert_eq!(
        a.iter()
            .map(|p| (p.facet.as_str(), p.predicted.as_str()))
            .collect::<Vec<_>>(),
        [("neckline", "v-neck"), ("silhouette", "sheath")]
    );
    let all = catalog.predictions(fx.run, None).await.unwrap();
    let expected: Vec<_> = all
        .iter()
        .filter(|p| p.image_id == id_of("a"))
        .cloned()
        .collect();
    assert_eq!(a, expected, "the same records as the run's full listing");
    assert_eq!((a[1].scores.len(), a[1].scores[1]), (3, 0.9f32));
    assert_eq!(a[0].label.as_deref(), Some("boat"));
    // Only silhouette was predicted for b.
    let b = catalog
        .image_predictions(&id_of("b"), fx.run)
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(
        (b[0].facet.as_str(), b[0].split),
        ("silhouette", Split::Test)
    );
    // A run without results has no predictions of any image.
    let other = start_run(catalog).await;
    assert!(
        catalog
            .image_predictions(&id_of("a"), other)
            .await
            .unwrap()
            .is_empty()
    );
    let err = catalog
        .image_predictions(&"0".repeat(64), fx.run)
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::UnknownImage(_)), "{err}");
    let err = catalog
        .image_predictions(&id_of("a"), other + 1)
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::UnknownRun(_)), "{err}");

    // Current labels: active images with a row (e never had a silhouette, h is quarantined).
    catalog
        .set_labels(&[
            edit("a", "silhouette", Some("sheath"), 1, "rita"),
            edit("b", "silhouette", None, 1, "rita"),
        ])
        .await
        .unwrap();
    let current = catalog.current_labels("silhouette").await.unwrap();
    let mut expected: HashMap<String, (Option<String>, i64)> = HashMap::new();
    for (name, label, version) in [
        ("a", Some("sheath"), 2),
        ("b", None, 2),
        ("c", Some("a-line"), 1),
        ("d", Some("sheath"), 1),
        ("f", Some("shift"), 1),
        ("g", Some("a-line"), 1),
    ] {
        expected.insert(id_of(name), (label.map(str::to_string), version));
    }
    assert_eq!(current, expected);
    let err = catalog.current_labels("colour").await.unwrap_err();
    assert!(matches!(err, CatalogError::UnknownFacet { .. }), "{err}");
}

/// A synthetic catalogue as `atelier synth` lays it out: `manifest.csv` with noisy labels and
/// `truth.csv` with the clean ones, in one folder.
fn synth_folder(env: &TestEnv, truth: &str) -> (PathBuf, PathBuf) {
    for name in ["a", "b", "c"] {
        env.write(&format!("synth/img/{name}.jpg"), &blob(name));
    }
    let manifest = env.write(
        "synth/manifest.csv",
        b"path,split,silhouette,neckline\n\
          img/a.jpg,train,sheath,v-neck\n\
          img/b.jpg,train,a-line,boat\n\
          img/c.jpg,test,shift,boat\n",
    );
    let truth = env.write("synth/truth.csv", truth.as_bytes());
    (manifest, truth)
}

async fn truth_labels_are_matched_by_path_and_replaced(env: &TestEnv) {
    let catalog = env.open().await;
    let absolute_c = env
        .dir
        .path()
        .canonicalize()
        .unwrap()
        .join("synth/img/c.jpg");
    let (manifest, truth) = synth_folder(
        env,
        &format!(
            "path,silhouette,neckline,flipped\n\
             img/a.jpg,a-line,v-neck,silhouette\n\
             ./img/../img/b.jpg,a-line,,\n\
             {},shift,v-neck,neckline\n\
             img/zzz.jpg,sheath,boat,\n",
            absolute_c.display()
        ),
    );
    import(&catalog, &manifest).await;
    let report = catalog.import_truth(&truth).await.unwrap();
    assert_eq!(
        report,
        TruthReport {
            rows: 4,
            matched_images: 3,
            labels: 5,
            unmatched_paths: vec!["img/zzz.jpg".to_string()],
        }
    );
    let silhouette = catalog.truth_labels("silhouette").await.unwrap();
    let expected: HashMap<String, String> = [("a", "a-line"), ("b", "a-line"), ("c", "shift")]
        .into_iter()
        .map(|(n, l)| (id_of(n), l.to_string()))
        .collect();
    assert_eq!(silhouette, expected);
    let neckline = catalog.truth_labels("neckline").await.unwrap();
    let expected: HashMap<String, String> = [("a", "v-neck"), ("c", "v-neck")]
        .into_iter()
        .map(|(n, l)| (id_of(n), l.to_string()))
        .collect();
    assert_eq!(neckline, expected, "an empty cell stores no truth");
    // The truth is kept apart from the labels.
    assert_eq!(
        label_of(&catalog, "a", "silhouette")
            .await
            .unwrap()
            .0
            .as_deref(),
        Some("sheath")
    );

    // A re-import replaces everything stored before.
    std::fs::write(&truth, "path,neckline\nimg/b.jpg,v-neck\n").unwrap();
    let report = catalog.import_truth(&truth).await.unwrap();
    assert_eq!(
        (report.rows, report.matched_images, report.labels),
        (1, 1, 1)
    );
    assert!(report.unmatched_paths.is_empty());
    assert!(catalog.truth_labels("silhouette").await.unwrap().is_empty());
    assert_eq!(
        catalog.truth_labels("neckline").await.unwrap(),
        HashMap::from([(id_of("b"), "v-neck".to_string())])
    );

    // Only the first 20 unmatched paths are named.
    let mut many = String::from("path,silhouette\n");
    for i in 0..25 {
        many.push_str(&format!("missing/{i}.jpg,sheath\n"));
    }
    std::fs::write(&truth, many).unwrap();
    let report = catalog.import_truth(&truth).await.unwrap();
    assert_eq!((report.rows, report.matched_images), (25, 0));
    assert_eq!(report.unmatched_paths.len(), 20);
    assert_eq!(report.unmatched_paths[19], "missing/19.jpg");
    let err = catalog.truth_labels("colour").await.unwrap_err();
    assert!(matches!(err, CatalogError::UnknownFacet { .. }), "{err}");
}

async fn truth_file_errors_name_the_column_or_line(env: &TestEnv) {
    let catalog = env.open().await;
    let (manifest, truth) = synth_folder(
        env,
        "path,silhouette,flipped\nimg/a.jpg,a-line,\nimg/b.jpg,a-line,\n",
    );
    import(&catalog, &manifest).await;
    catalog.import_truth(&truth).await.unwrap();
    let stored = catalog.truth_labels("silhouette").await.unwrap();
    assert_eq!(stored.len(), 2);

    let cases: [(&str, &[&str]); 6] = [
        (
            "path,silhouette,colour,flipped\nimg/a.jpg,sheath,red,\n",
            &["line 1", "colour", "not a facet"],
        ),
        (
            "path,silhouette\nimg/a.jpg,sheath\nimg/b.jpg,mermaid\n",
            &["truth.csv line 3", "\"mermaid\"", "silhouette"],
        ),
        ("silhouette\nsheath\n", &["line 1", "\"path\""]),
        (
            "path,silhouette\nimg/a.jpg,sheath\n,sheath\n",
            &["line 3", "empty"],
        ),
        (
            "path,silhouette\nimg/a.jpg,sheath\nimg/./a.jpg,a-line\n",
            &["line 3", "same image as line 2"],
        ),
        (
            "path,silhouette,silhouette\nimg/a.jpg,sheath,sheath\n",
            &["line 1", "twice"],
        ),
    ];
    for (text, needles) in cases {
        std::fs::write(&truth, text).unwrap();
        let err = catalog.import_truth(&truth).await.unwrap_err();
        let message = err.to_string();
        for needle in needles {
            assert!(message.contains(needle), "{needle:?} not in: {message}");
        }
        assert!(!message.contains('\n'), "{message}");
        assert_eq!(
            catalog.truth_labels("silhouette").await.unwrap(),
            stored,
            "a failed import keeps the stored truth ({message})"
        );
    }
    let err = catalog
        .import_truth(&env.path("synth/nothing.csv"))
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::Io { .. }), "{err}");
}

async fn reimport_keeps_reviewed_labels(env: &TestEnv) {
    let catalog = env.open().await;
    let manifest = four_dresses(env);
    import(&catalog, &manifest).await;
    catalog
        .set_labels(&[
            edit("a", "silhouette", Some("shift"), 1, "rita"),
            edit("d", "neckline", Some("boat"), 0, "rita"),
        ])
        .await
        .unwrap();
    let events = event_count(&catalog).await;

    // The same manifest again: it disagrees with both reviewed labels and keeps them.
    let report = import(&catalog, &manifest).await;
    assert_eq!(report.kept_reviewed_labels, 2);
    assert_eq!((report.updated, report.unchanged), (0, 4));
    assert_eq!(event_count(&catalog).await, events);
    assert_eq!(
        label_of(&catalog, "a", "silhouette").await,
        Some((Some("shift".to_string()), 2, "review".to_string()))
    );
    assert_eq!(
        label_of(&catalog, "d", "neckline").await,
        Some((Some("boat".to_string()), 1, "review".to_string()))
    );

    // A changed source: a's silhouette differs again (kept), b's changes (written), and d's
    // neckline now agrees with the reviewer (nothing to keep).
    let manifest = write_manifest(
        env,
        &[
            ("a", "train,a-line,v-neck,long"),
            ("b", "train,sheath,boat,short"),
            ("c", "test,shift,boat,long"),
            ("d", "train,a-line,boat,short"),
        ],
    );
    let report = import(&catalog, &manifest).await;
    assert_eq!(report.kept_reviewed_labels, 1);
    assert_eq!((report.updated, report.unchanged), (1, 3));
    assert_eq!(event_count(&catalog).await, events + 1);
    assert_eq!(
        label_of(&catalog, "a", "silhouette").await,
        Some((Some("shift".to_string()), 2, "review".to_string()))
    );
    assert_eq!(
        label_of(&catalog, "b", "silhouette").await,
        Some((Some("sheath".to_string()), 2, "import".to_string()))
    );
}

fn names_of(page: &BrowsedPage) -> Vec<String> {
    let by_id: HashMap<String, &str> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|n| (id_of(n), n))
        .collect();
    page.images
        .iter()
        .map(|i| by_id[&i.id].to_string())
        .collect()
}

fn has(facet: &str, label: &str, keep: bool) -> LabelCondition {
    LabelCondition {
        facet: facet.to_string(),
        label: label.to_string(),
        keep,
    }
}

async fn browse_filters_by_labels_split_status_and_review_and_pages(env: &TestEnv) {
    let catalog = env.open().await;
    import(&catalog, &four_dresses(env)).await;
    quarantine(&catalog, "d").await;
    catalog
        .set_labels(&[edit("b", "neckline", Some("v-neck"), 1, "rita")])
        .await
        .unwrap();
    let all = catalog
        .browse(&ImageFilter::default(), 0, 10)
        .await
        .unwrap();
    assert_eq!(
        (all.total, names_of(&all)),
        (
            4,
            vec!["a", "b", "c", "d"]
                .into_iter()
                .map(String::from)
                .collect()
        )
    );
    let d = &all.images[3];
    assert_eq!(d.status, Status::Quarantined);
    assert_eq!(d.quarantine_reason.as_deref(), Some("does not decode"));
    let b = &all.images[1];
    assert!(b.reviewed && !all.images[0].reviewed);
    assert_eq!(b.labels["neckline"], "v-neck");
    assert_eq!(b.labels["silhouette"], "a-line");
    assert!(
        !d.labels.contains_key("neckline"),
        "d has no neckline label"
    );

    let cases: Vec<(ImageFilter, Vec<&str>)> = vec![
        (
            ImageFilter {
                labels: vec![has("neckline", "v-neck", true)],
                ..Default::default()
            },
            vec!["a", "b"],
        ),
        (
            ImageFilter {
                labels: vec![has("neckline", "v-neck", false)],
                ..Default::default()
            },
            vec!["c", "d"],
        ),
        (
            ImageFilter {
                labels: vec![
                    has("sleeve", "long", true),
                    has("silhouette", "shift", false),
                ],
                ..Default::default()
            },
            vec!["a"],
        ),
        (
            ImageFilter {
                split: Some(Split::Test),
                ..Default::default()
            },
            vec!["c"],
        ),
        (
            ImageFilter {
                status: Some(Status::Quarantined),
                ..Default::default()
            },
            vec!["d"],
        ),
        (
            ImageFilter {
                status: Some(Status::Active),
                ..Default::default()
            },
            vec!["a", "b", "c"],
        ),
        (
            ImageFilter {
                reviewed: Some(true),
                ..Default::default()
            },
            vec!["b"],
        ),
        (
            ImageFilter {
                reviewed: Some(false),
                ..Default::default()
            },
            vec!["a", "c", "d"],
        ),
        (
            ImageFilter {
                design: Some("none-such".into()),
                ..Default::default()
            },
            vec![],
        ),
        (
            ImageFilter {
                labels: vec![has("neckline", "no-such-label", true)],
                ..Default::default()
            },
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        let page = catalog.browse(&filter, 0, 10).await.unwrap();
        assert_eq!(names_of(&page), expected, "{filter:?}");
        assert_eq!(page.total, expected.len() as u64, "{filter:?}");
    }
    let second = catalog.browse(&ImageFilter::default(), 1, 2).await.unwrap();
    assert_eq!(
        (second.total, names_of(&second)),
        (4, vec!["b".to_string(), "c".to_string()])
    );
    let past_the_end = catalog
        .browse(&ImageFilter::default(), 10, 2)
        .await
        .unwrap();
    assert_eq!((past_the_end.total, past_the_end.images.len()), (4, 0));
}
