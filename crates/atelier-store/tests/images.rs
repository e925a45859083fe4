//! Catalogue images in S3 (moto) read through the bounded local cache: hits served without
//! the server, damaged copies fetched again, altered and missing objects refused by name, and
//! the cache kept within its size, least recently used evicted first.

mod common;

use std::path::Path;

use atelier_store::images::{ImageError, ImageReader, ImageRequest, ImageSettings, ObjectUri};
use common::{Moto, create_bucket, http, pseudo_random, s3_settings, test_retry, unique_bucket};
use sha2::{Digest, Sha256};

/// A fresh bucket on `endpoint` holding `count` objects `photos/<i>.jpg` of `size` bytes each;
/// returns the bucket and each object's URI and SHA-256.
fn upload(endpoint: &str, count: usize, size: usize) -> (String, Vec<(String, String)>) {
    let bucket = unique_bucket();
    create_bucket(endpoint, &bucket);
    let objects = (0..count)
        .map(|i| {
            let bytes = pseudo_random(i as u64 + 1, size);
            let key = format!("photos/{i}.jpg");
            let (status, body) = http(endpoint, "PUT", &format!("/{bucket}/{key}"), &bytes);
            assert_eq!(status, 200, "uploading {key}: {body}");
            (
                format!("s3://{bucket}/{key}"),
                hex::encode(Sha256::digest(&bytes)),
            )
        })
        .collect();
    (bucket, objects)
}

fn reader(endpoint: &str, cache: &Path, cache_size: u64) -> ImageReader {
    ImageReader::new(ImageSettings {
        cache_dir: cache.to_path_buf(),
        cache_size,
        concurrency: 4,
        retry: test_retry(),
        aws_settings: s3_settings(endpoint, "test", "test"),
    })
}

fn requests(objects: &[(String, String)]) -> Vec<ImageRequest<'_>> {
    objects
        .iter()
        .map(|(uri, sha)| ImageRequest {
            uri,
            sha256: Some(sha),
        })
        .collect()
}

fn cached_bytes(cache: &Path) -> u64 {
    let mut total = 0;
    for shard in std::fs::read_dir(cache).unwrap().flatten() {
        if shard.file_name() == "tmp" {
            continue;
        }
        for file in std::fs::read_dir(shard.path()).unwrap().flatten() {
            total += file.metadata().unwrap().len();
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_images_are_read_without_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut moto = Moto::start(dir.path());
    let (_, objects) = upload(&moto.endpoint, 5, 3000);
    let images = reader(&moto.endpoint, &dir.path().join("cache"), 1 << 20);
    let cold = images.resolve(&requests(&objects)).await.unwrap();
    for (result, (uri, sha)) in cold.iter().zip(&objects) {
        let bytes = std::fs::read(result.as_ref().unwrap()).unwrap();
        assert_eq!(&hex::encode(Sha256::digest(&bytes)), sha, "{uri}");
    }
    moto.kill();
    let warm = images.resolve(&requests(&objects)).await.unwrap();
    let warm: Vec<_> = warm.into_iter().map(Result::unwrap).collect();
    let cold: Vec<_> = cold.into_iter().map(Result::unwrap).collect();
    assert_eq!(warm, cold, "a warm pass is served from the cache");

    // A copy not yet cached now fails with the server named as the cause.
    let other = ImageRequest {
        uri: "s3://elsewhere/x.jpg",
        sha256: None,
    };
    let results = images.resolve(&[other]).await.unwrap();
    let error = results.into_iter().next().unwrap().unwrap_err();
    assert!(matches!(error, ImageError::Unavailable { .. }), "{error:?}");
    assert!(
        error.to_string().contains("s3://elsewhere/x.jpg"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn damaged_copies_are_fetched_again_and_altered_objects_refused() {
    let Some(endpoint) = common::s3_endpoint() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (bucket, objects) = upload(&endpoint, 2, 1000);
    let images = reader(&endpoint, dir.path(), 1 << 20);
    let first = images.resolve(&requests(&objects)).await.unwrap();
    let path = first[0].as_ref().unwrap().clone();
    std::fs::write(&path, b"not the photo").unwrap();
    let again = images.resolve(&requests(&objects)).await.unwrap();
    assert_eq!(again[0].as_ref().unwrap(), &path);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), objects[0].1);

    // The object replaced after import: its bytes no longer hash to what the catalogue
    // recorded (here: the hash of other bytes).
    let recorded = hex::encode(Sha256::digest(pseudo_random(99, 1000)));
    let altered = [(objects[1].0.clone(), recorded.clone())];
    std::fs::remove_file(again[1].as_ref().unwrap()).unwrap();
    let results = images.resolve(&requests(&altered)).await.unwrap();
    let error = results[0].as_ref().unwrap_err();
    assert!(matches!(error, ImageError::Changed { .. }), "{error:?}");
    assert!(error.to_string().contains(&objects[1].0), "{error}");
    assert!(
        !images.cache().path_of(&objects[1].1).exists(),
        "bytes that do not match are not kept"
    );

    let missing = format!("s3://{bucket}/photos/gone.jpg");
    let results = images
        .resolve(&[ImageRequest {
            uri: &missing,
            sha256: None,
        }])
        .await
        .unwrap();
    let error = results[0].as_ref().unwrap_err();
    assert!(matches!(error, ImageError::NotFound { .. }), "{error:?}");
    assert!(error.to_string().contains(&missing), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cache_keeps_its_size_and_evicts_the_least_recently_used() {
    let Some(endpoint) = common::s3_endpoint() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (bucket, objects) = upload(&endpoint, 6, 1000);
    // Room for three photos.
    let images = reader(&endpoint, dir.path(), 3500);
    for object in &objects[..3] {
        let one = std::slice::from_ref(object);
        images.resolve(&requests(one)).await.unwrap()[0]
            .as_ref()
            .unwrap();
        // Modification times must differ for the order to be seen.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Photo 0 used again: photo 1 is now the least recently used.
    images.resolve(&requests(&objects[..1])).await.unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    images.resolve(&requests(&objects[3..4])).await.unwrap();
    assert!(cached_bytes(dir.path()) <= 3500);
    let present: Vec<bool> = objects[..4]
        .iter()
        .map(|(_, sha)| images.cache().path_of(sha).exists())
        .collect();
    assert_eq!(present, [true, false, true, true]);

    // A pass that needs more than the cache holds is refused with the size to ask for.
    let error = images.resolve(&requests(&objects)).await.unwrap_err();
    assert!(
        matches!(
            error,
            ImageError::CacheTooSmall {
                needed: 6000,
                limit: 3500
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("--cache-size"), "{error}");

    let listed = images
        .list(&ObjectUri::parse(&format!("s3://{bucket}/photos/")).unwrap())
        .await
        .unwrap();
    assert_eq!(listed.len(), 6);
    assert!(listed.iter().all(|(_, size)| *size == 1000));
}
