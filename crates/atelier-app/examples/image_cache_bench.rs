//! What reading catalogue photos through S3 and the image cache costs against local files:
//! decodes every photo of a folder (as `atelier check` does: resolved a chunk of 256 at a time,
//! decoded in parallel) from the local files, then from a fresh bucket with an empty cache
//! (cold: every object fetched), then again (warm: every photo from the cache, hashed to check
//! it), and prints images per second and the ratios to local reading.
//!
//! ```sh
//! atelier synth --out /tmp/photos --count 2000
//! python3 -m moto.server -H 127.0.0.1 -p 5055 &
//! cargo run -p atelier-app --example image_cache_bench -- /tmp/photos/images http://127.0.0.1:5055
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Instant;

use atelier_app::images::ImageResolver;
use atelier_store::images::ImageSettings;
use atelier_store::object_store::aws::AmazonS3Builder;
use atelier_store::object_store::path::Path as ObjectPath;
use atelier_store::object_store::{ObjectStoreExt, PutPayload};
use atelier_vision::decode::{DecodeLimits, decode_file};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

const CHUNK: usize = 256;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [folder, endpoint] = &args[..] else {
        eprintln!("usage: image_cache_bench PHOTO_FOLDER S3_ENDPOINT");
        std::process::exit(2);
    };
    let photos = photos_in(Path::new(folder));
    let ids: Vec<String> = photos
        .iter()
        .map(|p| hex::encode(Sha256::digest(std::fs::read(p).unwrap())))
        .collect();
    let bytes: u64 = photos.iter().map(|p| p.metadata().unwrap().len()).sum();
    println!(
        "{} photos, {:.1} MB, {} threads",
        photos.len(),
        bytes as f64 / 1e6,
        rayon::current_num_threads()
    );
    let uris = upload(endpoint, &photos).await;
    let local: Vec<String> = photos.iter().map(|p| p.display().to_string()).collect();
    let cache = tempfile::tempdir().unwrap();
    let resolver = ImageResolver::new(ImageSettings {
        cache_dir: cache.path().to_path_buf(),
        aws_settings: s3_settings(endpoint),
        ..ImageSettings::default()
    });
    let local_rate = decode_all(&resolver, &local, &ids).await;
    let cold = decode_all(&resolver, &uris, &ids).await;
    let warm = decode_all(&resolver, &uris, &ids).await;
    println!("local files: {local_rate:.1} images/s");
    println!(
        "S3, cold cache: {cold:.1} images/s ({:.2}x local)",
        cold / local_rate
    );
    println!(
        "S3, warm cache: {warm:.1} images/s ({:.2}x local)",
        warm / local_rate
    );
}

/// Images per second: resolve a chunk, decode it in parallel, next chunk.
async fn decode_all(resolver: &ImageResolver, uris: &[String], ids: &[String]) -> f64 {
    let started = Instant::now();
    for (uris, ids) in uris.chunks(CHUNK).zip(ids.chunks(CHUNK)) {
        let images: Vec<(&str, &str)> = uris
            .iter()
            .zip(ids)
            .map(|(u, i)| (u.as_str(), i.as_str()))
            .collect();
        let files: Vec<PathBuf> = resolver
            .resolve(&images)
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let decoded = tokio::task::spawn_blocking(move || {
            files
                .par_iter()
                .filter(|f| decode_file(f, &DecodeLimits::default()).is_ok())
                .count()
        })
        .await
        .unwrap();
        assert_eq!(decoded, uris.len(), "every photo decodes");
    }
    uris.len() as f64 / started.elapsed().as_secs_f64()
}

fn photos_in(folder: &Path) -> Vec<PathBuf> {
    let mut photos: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png"))
        .collect();
    photos.sort();
    photos
}

fn s3_settings(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec()
}

/// Uploads the photos to a new bucket; their URIs.
async fn upload(endpoint: &str, photos: &[PathBuf]) -> Vec<String> {
    let bucket = format!("atelier-bench-{}", std::process::id());
    create_bucket(endpoint, &bucket);
    let mut builder = AmazonS3Builder::new().with_bucket_name(&bucket);
    for (key, value) in s3_settings(endpoint) {
        builder = builder.with_config(key.to_ascii_lowercase().parse().unwrap(), value);
    }
    let client = builder.build().unwrap();
    let mut uris = Vec::with_capacity(photos.len());
    for photo in photos {
        let key = format!("photos/{}", photo.file_name().unwrap().to_str().unwrap());
        let bytes = std::fs::read(photo).unwrap();
        client
            .put(&ObjectPath::from(key.as_str()), PutPayload::from(bytes))
            .await
            .unwrap();
        uris.push(format!("s3://{bucket}/{key}"));
    }
    uris
}

fn create_bucket(endpoint: &str, bucket: &str) {
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}
