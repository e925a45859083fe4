//! A small catalogue for the web tests: 12 images with silhouette labels, one completed run
//! with per-class tables and predictions, and three users (admin, reviewer, viewer). The app
//! is driven as a router, without a socket.

#![allow(dead_code)]

use atelier_app::runner::RunPaths;
use atelier_catalog::{
    Catalog, CheckOutcome, CheckedImage, ImportOptions, NewRun, PredictionRow, Role,
    RunFacetResult, RunFinish, RunStatus, Split,
};
use atelier_train::DeviceChoice;
use atelier_train::metrics::classification_report;
use atelier_web::{AppConfig, hash_password, router};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const PASSWORD: &str = "password-123";
pub const LABELS: [&str; 3] = ["a-line", "mermaid", "sheath"];

/// Per image: (split, label index, predicted index, confidence).
pub const IMAGES: [(&str, usize, usize, f32); 12] = [
    ("train", 0, 0, 0.9),
    ("train", 0, 2, 0.8),
    ("train", 1, 1, 0.7),
    ("train", 1, 1, 0.9),
    ("train", 2, 2, 0.6),
    ("train", 2, 0, 0.95),
    ("train", 0, 0, 0.5),
    ("train", 2, 2, 0.85),
    ("test", 0, 2, 0.7),
    ("test", 1, 1, 0.8),
    ("test", 2, 0, 0.6),
    ("test", 2, 2, 0.9),
];

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub catalog: Catalog,
    pub app: Router,
    pub run: i64,
    /// Image ids in the order of [`IMAGES`].
    pub images: Vec<String>,
}

fn scores(predicted: usize, confidence: f32) -> Vec<f32> {
    let rest = (1.0 - confidence) / 2.0;
    (0..3)
        .map(|i| if i == predicted { confidence } else { rest })
        .collect()
}

pub async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let images_dir = dir.path().join("img");
    std::fs::create_dir_all(&images_dir).unwrap();
    let mut manifest = String::from("path,split,silhouette\n");
    for (i, (split, label, _, _)) in IMAGES.iter().enumerate() {
        let shade = (i * 20) as u8;
        image::RgbImage::from_pixel(24, 32, image::Rgb([shade, 100, 255 - shade]))
            .save(images_dir.join(format!("{i}.png")))
            .unwrap();
        manifest.push_str(&format!("img/{i}.png,{split},{}\n", LABELS[*label]));
    }
    std::fs::write(dir.path().join("manifest.csv"), manifest).unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let catalog = Catalog::open(&url).await.unwrap();
    catalog
        .import(&dir.path().join("manifest.csv"), &ImportOptions::default())
        .await
        .unwrap();
    // As `atelier check` would: every image decodes at 24 x 32 (only checked images are served).
    let checked: Vec<CheckOutcome> = catalog
        .images_for_check()
        .await
        .unwrap()
        .into_iter()
        .map(|image| CheckOutcome {
            id: image.id,
            result: Ok(CheckedImage {
                width: 24,
                height: 32,
            }),
        })
        .collect();
    catalog.record_checks(&checked).await.unwrap();
    let records = catalog
        .training_images(&["silhouette".to_string()])
        .await
        .unwrap();
    let images: Vec<String> = (0..IMAGES.len())
        .map(|i| {
            let uri = dir
                .path()
                .join(format!("img/{i}.png"))
                .canonicalize()
                .unwrap();
            records
                .iter()
                .find(|r| std::path::Path::new(&r.uri) == uri)
                .unwrap()
                .id
                .clone()
        })
        .collect();
    let run = record_run(&catalog, &images).await;
    for (name, role) in [
        ("ada", Role::Admin),
        ("rita", Role::Reviewer),
        ("ron", Role::Reviewer),
        ("vic", Role::Viewer),
    ] {
        catalog
            .add_user(name, role, &hash_password(PASSWORD).unwrap())
            .await
            .unwrap();
    }
    let config = AppConfig::new(
        RunPaths {
            checkpoint_base: dir.path().join("checkpoints"),
            model_base: dir.path().join("models"),
            feature_cache: dir.path().join("features"),
            store: None,
            mirror_checkpoints: false,
        },
        dir.path().join("thumbs"),
    );
    let app = router(catalog.clone(), config);
    Fixture {
        dir,
        catalog,
        app,
        run,
        images,
    }
}

async fn record_run(catalog: &Catalog, images: &[String]) -> i64 {
    let run = catalog
        .create_run(&NewRun {
            kind: "facets".into(),
            config: json!({"train": {"backbone": "tiny", "facets": ["silhouette"]}}),
            parent_run: None,
            lease: None,
        })
        .await
        .unwrap();
    let labels: Vec<String> = LABELS.iter().map(|l| l.to_string()).collect();
    let part = |split: &str| {
        let rows: Vec<_> = IMAGES.iter().filter(|r| r.0 == split).collect();
        classification_report(
            &labels,
            &rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        )
    };
    let (train, test) = (part("train"), part("test"));
    let rows: Vec<PredictionRow> = IMAGES
        .iter()
        .zip(images)
        .map(
            |((split, label, predicted, confidence), id)| PredictionRow {
                image_id: id.clone(),
                facet: "silhouette".into(),
                split: if *split == "train" {
                    Split::Train
                } else {
                    Split::Test
                },
                label: Some(labels[*label].clone()),
                predicted: labels[*predicted].clone(),
                confidence: f64::from(*confidence),
                scores: scores(*predicted, *confidence),
                out_of_fold: false,
            },
        )
        .collect();
    catalog
        .record_run_results(
            run,
            &[RunFacetResult {
                facet: "silhouette".into(),
                labels: labels.clone(),
                class_weights: vec![1.0; 3],
                train_metrics: Some(serde_json::to_value(&train).unwrap()),
                test_metrics: Some(serde_json::to_value(&test).unwrap()),
            }],
            &rows,
        )
        .await
        .unwrap();
    let summary = json!({"facets": {"silhouette": {
        "train_macro_f1": train.macro_f1, "test_macro_f1": test.macro_f1}}});
    complete(catalog, run, Some(summary)).await;
    run
}

/// Marks `run` completed with `summary`.
async fn complete(catalog: &Catalog, run: i64, summary: Option<Value>) {
    finish(catalog, run, summary, None).await;
}

/// Marks `run` completed with `summary` and the folder of its model.
async fn finish(catalog: &Catalog, run: i64, summary: Option<Value>, model_ref: Option<String>) {
    catalog
        .finish_run(
            run,
            &RunFinish {
                status: RunStatus::Completed,
                summary,
                model_ref,
                error: None,
            },
        )
        .await
        .unwrap();
}

/// A new similarity run in the catalogue, still running.
async fn new_similarity_run(catalog: &Catalog) -> i64 {
    catalog
        .create_run(&NewRun {
            kind: atelier_app::similarity::SIMILARITY_RUN.into(),
            config: json!({}),
            parent_run: None,
            lease: None,
        })
        .await
        .unwrap()
}

/// Where [`record_similarity_run`] puts image `i` in the off-the-shelf embedding: at
/// ((5 i) mod 12) / 10 radians, a shuffle of the trained embedding's order.
pub fn off_the_shelf_angle(i: usize) -> f32 {
    ((5 * i) % 12) as f32 / 10.0
}

/// A completed similarity run whose stored embeddings put image i at angle i / 10 radians, so
/// image 0's nearest neighbours are images 1, 2, 3, ... in that order (its off-the-shelf
/// embeddings at [`off_the_shelf_angle`]).
pub async fn record_similarity_run(catalog: &Catalog, images: &[String]) -> i64 {
    let run = new_similarity_run(catalog).await;
    let vectors: Vec<(String, Vec<f32>)> = images
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let angle = i as f32 / 10.0;
            (id.clone(), vec![angle.cos(), angle.sin()])
        })
        .collect();
    catalog
        .put_embeddings(&atelier_app::similarity::embedding_key(run), &vectors)
        .await
        .unwrap();
    let plain: Vec<(String, Vec<f32>)> = images
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let angle = off_the_shelf_angle(i);
            (id.clone(), vec![angle.cos(), angle.sin()])
        })
        .collect();
    catalog
        .put_embeddings(&atelier_app::similarity::off_the_shelf_key(run), &plain)
        .await
        .unwrap();
    complete(catalog, run, None).await;
    run
}

/// A logged-in client: its session cookie and CSRF token.
#[derive(Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }
}

/// Sends one request; `csrf` adds the session's token header, `body` is sent as JSON.
pub async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    session: Option<&Session>,
    csrf: bool,
    body: Option<Value>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(session) = session {
        request = request.header(header::COOKIE, &session.cookie);
        if csrf {
            request = request.header("x-csrf-token", &session.csrf);
        }
    }
    let body = match body {
        Some(value) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(value.to_string())
        }
        None => Body::empty(),
    };
    reply_to(app, request.body(body).unwrap()).await
}

/// Sends a request as it is and collects the reply.
pub async fn reply_to(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// Posts an HTML form (`body` already urlencoded) with the session's cookie.
pub async fn post_form(app: &Router, uri: &str, session: &Session, body: String) -> Reply {
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::COOKIE, &session.cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    reply_to(app, request).await
}

pub async fn get(app: &Router, uri: &str, session: Option<&Session>) -> Reply {
    send(app, Method::GET, uri, session, false, None).await
}

/// Logs in through the JSON API.
pub async fn login(app: &Router, user: &str) -> Session {
    let reply = send(
        app,
        Method::POST,
        "/api/login",
        None,
        false,
        Some(json!({"user": user, "password": PASSWORD})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let cookie = reply
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_string();
    Session {
        cookie,
        csrf: reply.json()["csrf_token"].as_str().unwrap().to_string(),
    }
}

/// `count` photos rendered with `seed` (64 pixels, `label_noise` of their labels flipped) under
/// `root/synth`, imported into a new SQLite catalogue `root/catalog.db` with 30 % test.
pub async fn synthetic_catalogue(
    root: &std::path::Path,
    count: usize,
    seed: u64,
    label_noise: f64,
) -> Catalog {
    use atelier_vision::synth::{SynthOptions, synthesize};

    let synth = synthesize(
        &SynthOptions {
            out_dir: root.join("synth"),
            count,
            seed,
            size: 64,
            label_noise,
        },
        &|_| {},
    )
    .unwrap();
    let url = format!("sqlite://{}", root.join("catalog.db").display());
    let catalog = Catalog::open(&url).await.unwrap();
    catalog
        .import(
            &synth.manifest,
            &ImportOptions {
                test_fraction: 0.3,
                ..ImportOptions::default()
            },
        )
        .await
        .unwrap();
    catalog
}

/// An app on `catalog` with the reviewer `rita`, and her session.
pub async fn app_with_reviewer(
    catalog: &Catalog,
    paths: RunPaths,
    thumbs: std::path::PathBuf,
) -> (Router, Session) {
    catalog
        .add_user("rita", Role::Reviewer, &hash_password(PASSWORD).unwrap())
        .await
        .unwrap();
    let app = router(catalog.clone(), AppConfig::new(paths, thumbs));
    let rita = login(&app, "rita").await;
    (app, rita)
}

/// A small synthetic catalogue of its own under `root` (40 photos, 30 % test) with one
/// completed similarity run of a tiny model: the catalogue, the run, its model folder and the
/// run folders.
pub async fn similarity_catalogue(
    root: &std::path::Path,
) -> (Catalog, i64, std::path::PathBuf, RunPaths) {
    use atelier_app::similarity::{create_similarity_run, execute_similarity_run};
    use atelier_train::similarity::SimilarityConfig;
    use atelier_train::similarity_run::SimilarityRunConfig;

    let catalog = synthetic_catalogue(root, 40, 4, 0.0).await;
    let config = SimilarityRunConfig {
        backbone: atelier_train::BackboneChoice::Tiny,
        weights: Some(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../atelier-models/fixtures/tiny_cnn.safetensors"),
        ),
        image_size: 48,
        feature_stage: None,
        batch_size: 16,
        similarity: SimilarityConfig {
            embedding_dim: 8,
            hidden: 16,
            epochs: 1,
            designs_per_batch: 4,
            eval_fraction: 0.3,
            ..SimilarityConfig::default()
        },
        ..SimilarityRunConfig::default()
    };
    let paths = RunPaths {
        checkpoint_base: root.join("checkpoints"),
        model_base: root.join("models"),
        feature_cache: root.join("features"),
        store: None,
        mirror_checkpoints: false,
    };
    let run = create_similarity_run(&catalog, &config, &paths, None)
        .await
        .unwrap();
    let finished = execute_similarity_run(
        &catalog,
        run,
        &paths,
        Box::new(atelier_train::progress::Silent),
    )
    .await
    .unwrap();
    (catalog, run, finished.model_dir, paths)
}

/// A completed similarity run with a real (tiny) saved model, so that uploads can be embedded:
/// the model is trained on [`similarity_catalogue`], then the run is recorded in the fixture's
/// catalogue with that model and its photos embedded by `index`.
pub async fn record_model_similarity_run(fx: &Fixture) -> i64 {
    let (_, _, model_dir, _) = similarity_catalogue(&fx.dir.path().join("similarity-model")).await;
    let run = new_similarity_run(&fx.catalog).await;
    finish(
        &fx.catalog,
        run,
        None,
        Some(model_dir.display().to_string()),
    )
    .await;
    atelier_app::similar::index(&fx.catalog, Some(run), None, DeviceChoice::Cpu)
        .await
        .unwrap();
    run
}
