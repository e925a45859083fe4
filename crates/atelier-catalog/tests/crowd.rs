//! Crowd retagging's storage on SQLite and PostgreSQL: a batch records its tasks with the label
//! version of the moment and random tokens; bad tasks leave nothing; votes are stored once per
//! worker and task, and a bad vote leaves nothing.

#[allow(dead_code)] // the helpers this file does not need
mod common;

use atelier_catalog::{CatalogError, LabelEdit, NewCrowdBatch, NewCrowdTask, NewCrowdVote};
use common::{TestEnv, blob, import, sha256_hex};

on_both_backends!(batches_tasks_and_votes);

fn task(image: &str, facet: &str, gold: Option<&str>) -> NewCrowdTask {
    NewCrowdTask {
        image_id: image.to_string(),
        facet: facet.to_string(),
        gold_label: gold.map(str::to_string),
    }
}

fn vote(token: &str, worker: &str, label: &str) -> NewCrowdVote {
    NewCrowdVote {
        token: token.to_string(),
        worker: worker.to_string(),
        label: label.to_string(),
        assignment: None,
        at: 1_000,
    }
}

async fn batches_tasks_and_votes(env: &TestEnv) {
    for name in ["a", "b"] {
        env.write(&format!("img/{name}.jpg"), &blob(name));
    }
    let manifest = env.write(
        "manifest.csv",
        b"path,split,silhouette\nimg/a.jpg,train,sheath\nimg/b.jpg,test,a-line\n",
    );
    let catalog = env.open().await;
    import(&catalog, &manifest).await;
    let (a, b) = (sha256_hex(&blob("a")), sha256_hex(&blob("b")));
    // A reviewer's change first: image a's silhouette is at version 2.
    catalog
        .set_labels(&[LabelEdit {
            image: a.clone(),
            facet: "silhouette".into(),
            label: Some("a-line".into()),
            expected_version: 1,
            actor: "rita".into(),
            reason: None,
            run_id: None,
        }])
        .await
        .unwrap();

    let bad = catalog
        .create_crowd_batch(&NewCrowdBatch {
            run_id: None,
            source: "all".into(),
            votes_per_task: 3,
            created_by: "cli".into(),
            tasks: vec![task(&a, "silhouette", None), task(&b, "colour", None)],
        })
        .await;
    assert!(
        matches!(bad, Err(CatalogError::UnknownFacet { .. })),
        "{bad:?}"
    );
    assert!(
        catalog.crowd_batches().await.unwrap().is_empty(),
        "nothing written"
    );

    let batch = catalog
        .create_crowd_batch(&NewCrowdBatch {
            run_id: None,
            source: "all".into(),
            votes_per_task: 3,
            created_by: "cli".into(),
            tasks: vec![
                task(&a, "silhouette", Some("a-line")),
                task(&b, "silhouette", None),
            ],
        })
        .await
        .unwrap();
    let tasks = catalog.crowd_tasks(batch).await.unwrap();
    assert_eq!(tasks.len(), 2);
    assert_eq!((tasks[0].label_version, tasks[1].label_version), (2, 1));
    assert_eq!(tasks[0].gold_label.as_deref(), Some("a-line"));
    assert_eq!(tasks[1].current_label.as_deref(), Some("a-line"));
    assert_eq!(
        tasks[0].labels,
        ["a-line", "sheath"],
        "the facet's label order"
    );
    assert!(tasks[0].token.len() == 32 && tasks[0].token != tasks[1].token);
    assert!(tasks[1].uri.ends_with("img/b.jpg"));
    assert_eq!(
        catalog.crowd_task(&tasks[1].token).await.unwrap().unwrap(),
        tasks[1]
    );
    assert!(catalog.crowd_task("nope").await.unwrap().is_none());
    assert!(matches!(
        catalog.crowd_tasks(batch + 1).await,
        Err(CatalogError::UnknownCrowdBatch(_))
    ));

    let (t0, t1) = (&tasks[0].token, &tasks[1].token);
    let votes = [
        vote(t0, "w1", "a-line"),
        vote(t1, "w1", "sheath"),
        vote(t1, "w2", "a-line"),
    ];
    let stored = catalog.add_crowd_votes(&votes).await.unwrap();
    assert_eq!((stored.added, stored.already_stored), (3, 0));
    let again = catalog.add_crowd_votes(&votes).await.unwrap();
    assert_eq!(
        (again.added, again.already_stored),
        (0, 3),
        "the same answers add nothing"
    );
    let bad_label = catalog
        .add_crowd_votes(&[vote(t0, "w3", "sheath"), vote(t1, "w3", "maxi")])
        .await;
    assert!(
        matches!(
            bad_label,
            Err(CatalogError::InvalidCrowdVote { index: 1, .. })
        ),
        "{bad_label:?}"
    );
    let bad_task = catalog
        .add_crowd_votes(&[vote("unknown", "w3", "sheath")])
        .await;
    assert!(matches!(
        bad_task,
        Err(CatalogError::InvalidCrowdVote { index: 0, .. })
    ));
    let stored = catalog.crowd_votes(batch).await.unwrap();
    assert_eq!(stored.len(), 3, "the refused batches left nothing");
    assert_eq!(
        (stored[1].worker.as_str(), stored[1].label.as_str()),
        ("w1", "sheath")
    );
    let listed = catalog.crowd_batches().await.unwrap();
    assert_eq!((listed[0].tasks, listed[0].votes), (2, 3));

    // A label the crowd decided is kept by a re-import of the source, like a reviewer's.
    catalog
        .set_crowd_labels(&[LabelEdit {
            image: b.clone(),
            facet: "silhouette".into(),
            label: Some("sheath".into()),
            expected_version: tasks[1].label_version,
            actor: "crowd".into(),
            reason: Some("batch 1: 2 of 2 votes".into()),
            run_id: None,
        }])
        .await
        .unwrap();
    let report = import(&catalog, &manifest).await;
    assert_eq!(
        report.kept_reviewed_labels, 2,
        "the reviewer's and the crowd's"
    );
    let stored = catalog.crowd_task(&tasks[1].token).await.unwrap().unwrap();
    assert_eq!(stored.current_label.as_deref(), Some("sheath"));
}
