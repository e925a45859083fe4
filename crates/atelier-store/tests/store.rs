//! The model store on a local folder and on a real S3 server (moto): publishing, listing,
//! tags, removal, the pull cache, and the faults the store must survive — interrupted
//! publishes, a server that is down, wrong credentials, altered objects and concurrent
//! publishers.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use atelier_store::object_store::path::Path as ObjectPath;
use atelier_store::object_store::{ObjectStoreExt, PutPayload};
use atelier_store::{ModelRef, ModelStore, PublishStep, StoreError, StoreOptions};
use common::{Moto, TestStore};
use serde_json::json;

fn reference(text: &str) -> ModelRef {
    text.parse().unwrap()
}

fn versions(info: &atelier_store::ModelInfo) -> Vec<u64> {
    info.versions.iter().map(|v| v.version).collect()
}

/// Overwrites an object of the store, as someone with write access to the bucket could.
async fn overwrite(store: &ModelStore, key: &str, bytes: Vec<u8>) {
    let (raw, root) = store.raw();
    let mut location = root.clone();
    for part in key.split('/') {
        location = location.join(part);
    }
    raw.put(&location, PutPayload::from(bytes)).await.unwrap();
}

async fn delete(store: &ModelStore, key: &str) {
    let (raw, root) = store.raw();
    let mut location: ObjectPath = root.clone();
    for part in key.split('/') {
        location = location.join(part);
    }
    raw.delete(&location).await.unwrap();
}

async fn publish_pull_promote_and_remove(env: &TestStore) {
    let store = env.open();
    assert!(
        store.list().await.unwrap().is_empty(),
        "a new store is empty"
    );
    let first = env.model_folder("a", 1, 100_000);
    let second = env.model_folder("b", 2, 120_000);

    let v1 = store
        .publish("dresses", &first, json!({"run": 1}))
        .await
        .unwrap();
    let v2 = store
        .publish("dresses", &second, json!({"run": 2}))
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(v1.metadata["run"], 1);
    let weights = v2.parts.iter().find(|p| p.name == "weights.bin").unwrap();
    assert_eq!(weights.size, 120_000);
    assert_eq!(
        weights.sha256,
        hex_sha256(&std::fs::read(second.join("weights.bin")).unwrap())
    );

    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(versions(&listed[0]), [1, 2]);

    // A bare name is the latest version; the pulled files are the published bytes.
    let latest = store.pull(&reference("dresses")).await.unwrap();
    assert_eq!(latest.manifest.version, 2);
    assert!(latest.downloaded);
    for name in ["model.json", "weights.bin", "metrics.json"] {
        assert_eq!(
            std::fs::read(latest.dir.join(name)).unwrap(),
            std::fs::read(second.join(name)).unwrap(),
            "{name}"
        );
    }

    store.promote("dresses", 1, "production").await.unwrap();
    let production = store.pull(&reference("dresses:production")).await.unwrap();
    assert_eq!(production.manifest.version, 1);
    assert_eq!(
        std::fs::read(production.dir.join("weights.bin")).unwrap(),
        std::fs::read(first.join("weights.bin")).unwrap()
    );
    assert_eq!(
        store.model("dresses").await.unwrap().versions[0].tags,
        ["production"]
    );

    // The cache answers a second pull without downloading: even with the parts gone from the
    // store, another client sharing the cache still gets the model.
    for part in ["model.json", "weights.bin", "metrics.json"] {
        delete(&store, &format!("dresses/1/{part}")).await;
    }
    let again = env.open().pull(&reference("dresses@1")).await.unwrap();
    assert!(!again.downloaded, "served from the cache");
    assert_eq!(again.dir, production.dir);
    // A client with an empty cache must download, and finds the parts missing.
    let error = env
        .open_with_cache("empty")
        .pull(&reference("dresses@1"))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    assert!(
        error.to_string().contains("is missing from the store"),
        "{error}"
    );

    // Moving the tag, then removing; a tagged version is refused.
    let error = store.remove("dresses", 1).await.unwrap_err();
    assert!(error.to_string().contains("tagged production"), "{error}");
    store.promote("dresses", 2, "production").await.unwrap();
    assert_eq!(
        store
            .resolve(&reference("dresses:production"))
            .await
            .unwrap(),
        2
    );
    store.remove("dresses", 1).await.unwrap();
    assert_eq!(versions(&store.model("dresses").await.unwrap()), [2]);
    let error = store.pull(&reference("dresses@1")).await.unwrap_err();
    assert!(
        error.to_string().contains("no version dresses@1"),
        "{error}"
    );
    assert!(
        error.to_string().contains("published versions: 2"),
        "{error}"
    );

    // Numbers are never reused, even after the highest version is removed.
    store.promote("dresses", 2, "staging").await.unwrap();
    let v3 = store.publish("dresses", &first, json!({})).await.unwrap();
    assert_eq!(v3.version, 3);
    store.promote("dresses", 3, "production").await.unwrap();
    store.promote("dresses", 3, "staging").await.unwrap();
    store.remove("dresses", 2).await.unwrap();
    // 3 is still there, 2 is gone; the next is 4.
    assert_eq!(
        store
            .publish("dresses", &first, json!({}))
            .await
            .unwrap()
            .version,
        4
    );
}

async fn only_versions_with_a_manifest_are_visible(env: &TestStore) {
    let store = env.open();
    let folder = env.model_folder("a", 3, 5_000);
    store.publish("coats", &folder, json!({})).await.unwrap();
    // What an interrupted publisher leaves: a claim and some parts, no manifest.
    overwrite(
        &store,
        "coats/2/claim.json",
        br#"{"publisher":"x","created_at":0}"#.to_vec(),
    )
    .await;
    overwrite(&store, "coats/2/weights.bin", vec![1; 10]).await;
    assert_eq!(versions(&store.model("coats").await.unwrap()), [1]);
    assert_eq!(store.resolve(&reference("coats")).await.unwrap(), 1);
    let error = store.pull(&reference("coats@2")).await.unwrap_err();
    assert!(matches!(error, StoreError::NotFound { .. }), "{error}");
    // The half-published number stays taken.
    assert_eq!(
        store
            .publish("coats", &folder, json!({}))
            .await
            .unwrap()
            .version,
        3
    );
    // A name with nothing visible is not listed.
    overwrite(&store, "hats/1/claim.json", b"{}".to_vec()).await;
    let names: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["coats"]);
}

async fn altered_or_truncated_parts_are_refused_by_name(env: &TestStore) {
    let store = env.open();
    let folder = env.model_folder("a", 4, 50_000);
    store.publish("skirts", &folder, json!({})).await.unwrap();
    store.publish("skirts", &folder, json!({})).await.unwrap();

    // Same length, one byte different: caught by the hash.
    let mut altered = std::fs::read(folder.join("weights.bin")).unwrap();
    altered[25_000] ^= 0x40;
    overwrite(&store, "skirts/1/weights.bin", altered).await;
    let error = store.pull(&reference("skirts@1")).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{message}");
    assert!(
        message.contains("skirts@1: part weights.bin has SHA-256"),
        "{message}"
    );
    assert!(message.contains("truncated or altered"), "{message}");

    // Truncated: caught by the size.
    overwrite(&store, "skirts/2/model.json", b"{\"lab".to_vec()).await;
    let error = store
        .pull(&reference("skirts@2"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("part model.json is 5 bytes, but the manifest says"),
        "{error}"
    );

    // Neither left anything in the cache: no folder, no partial download.
    let cache = store.cache_dir();
    let leftovers: Vec<_> = std::fs::read_dir(cache)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "cache holds {leftovers:?}");

    // An altered manifest is refused too.
    overwrite(&store, "skirts/2/manifest.json", b"not json".to_vec()).await;
    let error = store
        .pull(&reference("skirts@2"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("part manifest.json is not a readable manifest"),
        "{error}"
    );
}

async fn concurrent_publishers_get_distinct_versions(env: &TestStore) {
    const PUBLISHERS: u64 = 6;
    let folders: Vec<_> = (0..PUBLISHERS)
        .map(|i| env.model_folder(&format!("p{i}"), 100 + i, 20_000 + i as usize))
        .collect();
    let mut tasks = Vec::new();
    for (i, folder) in folders.iter().enumerate() {
        // Each publisher is its own client, as separate trainers would be.
        let store = env.open_with_cache(&format!("p{i}"));
        let folder = folder.clone();
        tasks.push(tokio::spawn(async move {
            store
                .publish("gowns", &folder, json!({"publisher": i}))
                .await
                .map(|m| (i, m.version))
        }));
    }
    let mut published = Vec::new();
    for task in tasks {
        published.push(task.await.unwrap().expect("every publisher succeeds"));
    }
    let numbers: BTreeSet<u64> = published.iter().map(|(_, v)| *v).collect();
    assert_eq!(numbers, (1..=PUBLISHERS).collect(), "{published:?}");
    // Every version holds exactly what its publisher uploaded.
    let store = env.open_with_cache("check");
    for (i, version) in published {
        let pulled = store
            .pull(&ModelRef::version("gowns", version))
            .await
            .unwrap();
        assert_eq!(pulled.manifest.metadata["publisher"], i);
        assert_eq!(
            std::fs::read(pulled.dir.join("weights.bin")).unwrap(),
            std::fs::read(folders[i].join("weights.bin")).unwrap(),
            "gowns@{version} from publisher {i}"
        );
    }
}

async fn bad_folders_and_tags_are_refused(env: &TestStore) {
    let store = env.open();
    let folder = env.model_folder("a", 5, 10);
    std::fs::create_dir(folder.join("sub")).unwrap();
    let error = store
        .publish("x", &folder, json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("contains the folder sub"), "{error}");
    std::fs::remove_dir(folder.join("sub")).unwrap();
    std::fs::write(folder.join("manifest.json"), b"{}").unwrap();
    let error = store
        .publish("x", &folder, json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("contains manifest.json"), "{error}");
    std::fs::remove_file(folder.join("manifest.json")).unwrap();
    let error = store
        .publish("X", &folder, json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("lowercase"), "{error}");

    store.publish("x", &folder, json!({})).await.unwrap();
    let error = store
        .promote("x", 7, "production")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no version x@7") && error.contains("published versions: 1"),
        "{error}"
    );
    let error = store
        .pull(&reference("x:production"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no tag `production` on model x"), "{error}");
    let error = store
        .pull(&reference("nothing"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no model named nothing"), "{error}");
}

on_both_stores!(
    publish_pull_promote_and_remove,
    only_versions_with_a_manifest_are_visible,
    altered_or_truncated_parts_are_refused_by_name,
    concurrent_publishers_get_distinct_versions,
    bad_folders_and_tags_are_refused,
);

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A store on a moto server of the test's own.
fn own_s3(moto: &Moto, env: &TestStore, key: &str, secret: &str, bucket: &str) -> ModelStore {
    ModelStore::open(
        &format!("s3://{bucket}/m"),
        StoreOptions {
            cache_dir: env.dir.path().join(format!("cache-{key}-{secret}")),
            retry: common::test_retry(),
            aws_settings: common::s3_settings(&moto.endpoint, key, secret),
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_interrupted_by_a_stopped_server_leaves_no_version() {
    if common::s3_endpoint().is_none() {
        return;
    }
    let env = TestStore::local();
    let moto = Moto::start(env.dir.path());
    common::create_bucket(&moto.endpoint, "atelier");
    let store = own_s3(&moto, &env, "k", "s", "atelier");
    let folder = env.model_folder("a", 6, 200_000);
    store.publish("dresses", &folder, json!({})).await.unwrap();

    // Stop the server once the second version's first part is up.
    let started = Instant::now();
    let mut claimed = None;
    let mut paused = false;
    let error = store
        .publish_with("dresses", &folder, json!({}), |step| match step {
            PublishStep::Claimed { version } => claimed = Some(version),
            PublishStep::Uploaded { .. } if !paused => {
                moto.pause();
                paused = true;
            }
            PublishStep::Uploaded { .. } => {}
        })
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(paused && claimed == Some(2));
    let message = error.to_string();
    assert!(matches!(error, StoreError::Unavailable { .. }), "{message}");
    assert!(
        message.contains("the model store s3://atelier/m is unreachable"),
        "{message}"
    );
    assert!(message.contains("timed out"), "{message}");
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(
        elapsed < Duration::from_secs(20),
        "gave up after {elapsed:?}"
    );

    // Back up: the interrupted version is invisible, the earlier one intact, and the next
    // publish does not reuse the interrupted number.
    moto.resume();
    let model = store.model("dresses").await.unwrap();
    assert_eq!(versions(&model), [1]);
    assert_eq!(store.resolve(&reference("dresses")).await.unwrap(), 1);
    store.pull(&reference("dresses")).await.unwrap();
    assert_eq!(
        store
            .publish("dresses", &folder, json!({}))
            .await
            .unwrap()
            .version,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_gives_one_clear_error() {
    if common::s3_endpoint().is_none() {
        return;
    }
    let env = TestStore::local();
    let mut moto = Moto::start(env.dir.path());
    common::create_bucket(&moto.endpoint, "atelier");
    let store = own_s3(&moto, &env, "k", "s", "atelier");
    let folder = env.model_folder("a", 7, 1_000);
    store.publish("dresses", &folder, json!({})).await.unwrap();
    moto.kill();

    let started = Instant::now();
    let errors = [
        store.list().await.unwrap_err(),
        store.pull(&reference("dresses@1")).await.unwrap_err(),
        store
            .publish("dresses", &folder, json!({}))
            .await
            .unwrap_err(),
        store.promote("dresses", 1, "production").await.unwrap_err(),
    ];
    let elapsed = started.elapsed();
    for error in errors {
        let message = error.to_string();
        assert!(matches!(error, StoreError::Unavailable { .. }), "{message}");
        assert!(
            message.contains("s3://atelier/m is unreachable (cannot connect"),
            "{message}"
        );
        assert!(message.contains("AWS_ENDPOINT_URL"), "{message}");
        assert!(!error.is_bad_input());
    }
    // Four operations, each retried with backoff, and bounded by the retry policy.
    assert!(
        elapsed > Duration::from_millis(4 * 100),
        "retried: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(30), "bounded: {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_refused_clearly() {
    if common::s3_endpoint().is_none() {
        return;
    }
    let env = TestStore::local();
    let moto = Moto::start(env.dir.path());
    common::create_bucket(&moto.endpoint, "atelier");
    let folder = env.model_folder("a", 8, 1_000);
    let anyone = own_s3(&moto, &env, "k", "s", "atelier");
    anyone.publish("dresses", &folder, json!({})).await.unwrap();
    let (key, secret) = common::enable_moto_auth(&moto.endpoint);

    // The right keys are accepted. (Only GETs here: moto 5.2.1 miscomputes the signature of a
    // listing whose prefix contains `/`, so it refuses every listing, right keys or not.)
    let good = own_s3(&moto, &env, &key, &secret, "atelier");
    good.pull(&reference("dresses@1")).await.unwrap();

    for (key, secret, code) in [
        (key.as_str(), "wrong-secret", "SignatureDoesNotMatch"),
        (
            "AKIAUNKNOWNKEY000000",
            secret.as_str(),
            "InvalidAccessKeyId",
        ),
    ] {
        let bad = own_s3(&moto, &env, key, secret, "atelier");
        let started = Instant::now();
        for error in [
            bad.pull(&reference("dresses@1")).await.unwrap_err(),
            bad.list().await.unwrap_err(),
            bad.publish("dresses", &folder, json!({}))
                .await
                .unwrap_err(),
        ] {
            let message = error.to_string();
            assert!(matches!(error, StoreError::Denied { .. }), "{message}");
            assert!(
                message.contains("s3://atelier/m refused access"),
                "{message}"
            );
            assert!(message.contains(code), "{message}");
            assert!(message.contains("AWS_SECRET_ACCESS_KEY"), "{message}");
            assert!(error.is_bad_input());
        }
        // A refusal is not retried.
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // Nothing was published with the wrong keys.
    common::set_moto_auth(&moto.endpoint, false);
    assert_eq!(versions(&anyone.model("dresses").await.unwrap()), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_named() {
    let Some(endpoint) = common::s3_endpoint() else {
        return;
    };
    let env = TestStore::local();
    let store = ModelStore::open(
        "s3://no-such-bucket-atelier/x",
        StoreOptions {
            cache_dir: env.dir.path().join("cache"),
            retry: common::test_retry(),
            aws_settings: common::s3_settings(&endpoint, "k", "s"),
        },
    )
    .unwrap();
    let error = store.list().await.unwrap_err().to_string();
    assert!(
        error.contains("no such bucket in s3://no-such-bucket-atelier/x"),
        "{error}"
    );
}
