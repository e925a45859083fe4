//! Folders mirrored in the store (a run's checkpoints) on a local folder and on S3 (moto):
//! upload sends what changed and deletes what went, skipped sub-folders are left alone, a
//! download rebuilds the folder elsewhere, and models listed beside a mirror are unaffected.

mod common;

use std::path::Path;

use atelier_store::FolderMirror;
use common::TestStore;

on_both_stores!(mirror_round_trip);

fn write(root: &Path, relative: &str, bytes: &[u8]) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn is_fold(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("fold-"))
}

async fn mirror_round_trip(env: &TestStore) {
    let store = std::sync::Arc::new(env.open());
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("run-3");
    write(&root, "config.json", b"{}");
    write(&root, "epoch-0001/model.bpk", b"one");
    write(&root, "state.json", b"{\"epoch\": 1}");
    write(&root, "epoch-0002.partial/model.bpk", b"half-written");
    write(&root, "fold-1/state.json", b"fold");
    let mirror = FolderMirror::new(store.clone(), "checkpoints/cat/run-3");
    mirror
        .upload(&root, &root, &["state.json"], &is_fold)
        .await
        .unwrap();
    let mut keys = mirror.keys().await.unwrap();
    keys.sort();
    assert_eq!(keys, ["config.json", "epoch-0001/model.bpk", "state.json"]);

    // The fold folder on its own; then the main folder moves on an epoch.
    let fold = root.join("fold-1");
    mirror
        .upload(&root, &fold, &["state.json"], &is_fold)
        .await
        .unwrap();
    std::fs::remove_dir_all(root.join("epoch-0001")).unwrap();
    write(&root, "fold-1/epoch-0001/model.bpk", b"fold one");
    mirror
        .upload(&root, &fold, &["state.json"], &is_fold)
        .await
        .unwrap();
    std::fs::remove_dir_all(root.join("fold-1/epoch-0001")).unwrap();
    write(&root, "fold-1/epoch-0002/model.bpk", b"fold two");
    mirror
        .upload(&root, &fold, &["state.json"], &is_fold)
        .await
        .unwrap();
    write(&root, "epoch-0002/model.bpk", b"two");
    write(&root, "state.json", b"{\"epoch\": 2}");
    mirror
        .upload(&root, &root, &["state.json"], &is_fold)
        .await
        .unwrap();
    let mut keys = mirror.keys().await.unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "config.json",
            "epoch-0002/model.bpk",
            "fold-1/epoch-0002/model.bpk",
            "fold-1/state.json",
            "state.json"
        ],
        "the gone epoch is deleted, the skipped fold folder kept"
    );

    // Another machine rebuilds the folder from the mirror.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("run-3");
    let written = FolderMirror::new(store.clone(), "checkpoints/cat/run-3")
        .download(&copy, &["state.json"])
        .await
        .unwrap();
    assert_eq!(written, 5);
    assert_eq!(
        std::fs::read(copy.join("epoch-0002/model.bpk")).unwrap(),
        b"two"
    );
    assert_eq!(
        std::fs::read(copy.join("state.json")).unwrap(),
        b"{\"epoch\": 2}"
    );
    assert_eq!(
        std::fs::read(copy.join("fold-1/state.json")).unwrap(),
        b"fold"
    );
    assert!(!copy.join("epoch-0001").exists());

    // A mirror is not a model, and other keys' mirrors are apart.
    assert!(store.list().await.unwrap().is_empty());
    assert!(
        FolderMirror::new(store.clone(), "checkpoints/cat/run-4")
            .keys()
            .await
            .unwrap()
            .is_empty()
    );
    mirror.clear().await.unwrap();
    assert!(mirror.keys().await.unwrap().is_empty());
}
