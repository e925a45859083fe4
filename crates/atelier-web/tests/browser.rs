//! The review loop in a real headless Chromium (Debian's `chromium`, driven by `playwright-core`
//! from `e2e/`): log in as a reviewer, open a class's false negatives, retag an image with the
//! keyboard, undo, retag again; then the catalogue and the label history must show exactly
//! that. Then "the same dress, another silhouette", the catalogue browser filtered by a label,
//! a search by an uploaded photo, a dress box moved with the keyboard and saved, three
//! triplets labelled with the keyboard, and a crowd batch's tasks answered with the keyboard.
//! Screenshots of every page land in `e2e/screenshots/`.
//!
//! `.ci/run` installs both (`scripts/browser.sh`); elsewhere the test says it is skipped when
//! they are missing, and under CI it fails instead.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixture;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The browser and the driver, or why they are not there.
fn tools() -> Result<(PathBuf, PathBuf), String> {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        return Err(format!(
            "{} not found (apt-get install chromium)",
            chromium.display()
        ));
    }
    let e2e = workspace().join("e2e");
    if !e2e.join("node_modules/playwright-core").is_dir() {
        return Err("e2e/node_modules/playwright-core missing (run scripts/browser.sh)".into());
    }
    Ok((chromium, e2e))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_retags_undoes_and_retags_with_the_keyboard() {
    let (chromium, e2e) = match tools() {
        Ok(found) => found,
        Err(missing) if std::env::var_os("CI").is_some() => panic!("browser test: {missing}"),
        Err(missing) => {
            eprintln!("skipped: {missing}");
            return;
        }
    };
    let fx = fixture().await;
    // The upload searches with a run that has a model; the image page with the newest run.
    let search_run = common::record_model_similarity_run(&fx).await.to_string();
    common::record_similarity_run(&fx.catalog, &fx.images).await;
    let photo = fx.dir.path().join("img/3.png");
    let crowd_batch = atelier_app::crowd::export(
        &fx.catalog,
        &atelier_app::crowd::ExportRequest {
            run: fx.run,
            facet: None,
            from: atelier_app::crowd::TaskSource::All,
            limit: 2,
            votes: 3,
            gold: 0.0,
            base_url: Some("https://crowd.example".into()),
            publish_images: None,
            expires_in: std::time::Duration::from_secs(3600),
            created_by: "test".into(),
        },
    )
    .await
    .unwrap()
    .batch;
    let batch_env = crowd_batch.to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = fx.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let shots = e2e.join("screenshots");
    let run = fx.run.to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("review.mjs")
            .current_dir(&e2e)
            .env("BASE_URL", &base)
            .env("USER", "rita")
            .env("PASSWORD", common::PASSWORD)
            .env("RUN", &run)
            .env("FACET", "silhouette")
            .env("LABEL", "sheath")
            .env("FILTER_LABEL", "mermaid")
            .env("SEARCH_RUN", &search_run)
            .env("PHOTO", &photo)
            .env("CROWD_BATCH", &batch_env)
            .env("SHOTS", &shots)
            .env("CHROMIUM", &chromium)
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "browser script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();

    // The most confident false negative of sheath is image 5 (predicted a-line at 0.95).
    let image = result["image"].as_str().unwrap();
    assert_eq!(image, fx.images[5]);
    assert_eq!(
        result["labels_seen"],
        serde_json::json!(["sheath", "a-line", "sheath", "mermaid"])
    );
    let history = fx.catalog.label_history(image).await.unwrap();
    let changes: Vec<(Option<&str>, Option<&str>, &str)> = history
        .iter()
        .map(|e| {
            (
                e.old_label.as_deref(),
                e.new_label.as_deref(),
                e.actor.as_str(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            (None, Some("sheath"), "import"),
            (Some("sheath"), Some("a-line"), "rita"),
            (Some("a-line"), Some("sheath"), "rita"),
            (Some("sheath"), Some("mermaid"), "rita"),
        ]
    );
    assert_eq!(
        history[2].reason.as_deref(),
        Some(format!("undo of event {}", history[1].id).as_str())
    );
    assert_eq!(
        history[1].run_id,
        Some(fx.run),
        "the change names the run that suggested it"
    );
    let record = fx.catalog.image(image).await.unwrap().unwrap();
    assert_eq!(record.labels[0].label.as_deref(), Some("mermaid"));
    // "The same dress, another silhouette: a-line" showed the a-line photos (fixture rows 0,
    // 1, 6 and 8), nearest to image 5 first, each titled with its labels.
    let swapped: Vec<&str> = result["swap_titles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(swapped, vec!["silhouette: a-line"; 4], "{result}");
    let swapped_ids: Vec<&str> = result["swap_images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let expected = [6, 8, 1, 0].map(|i| fx.images[i].as_str());
    assert_eq!(swapped_ids, expected);
    // The catalogue filtered to mermaid: the three mermaid photos (rows 2, 3 and 9) plus image 5,
    // which the reviewer just retagged mermaid.
    let labels = result["catalogue_labels"].as_array().unwrap();
    assert_eq!(labels.len(), 4, "{result}");
    assert!(labels.iter().all(|l| l == "mermaid"), "{result}");
    // The uploaded photo is catalogue image 3, so it comes first.
    assert_eq!(
        result["upload_results"][0],
        serde_json::json!(fx.images[3]),
        "{result}"
    );
    // The box editor: the bottom-right corner moved 10 px left and 1 up, saved, shown after a
    // reload, stored as the reviewer's box with its event.
    let corners = |name: &str| [0, 1, 2, 3].map(|i| result[name][i].as_f64().unwrap());
    let [x0, y0, x1, y1] = corners("box_before");
    let wanted = [x0, y0, x1 - 10.0, y1 - 1.0];
    assert_eq!(corners("box_wanted"), wanted, "{result}");
    assert_eq!(corners("box_saved"), wanted, "{result}");
    let saved = fx.catalog.dress_box(image).await.unwrap().unwrap();
    assert_eq!(saved.coords, [x0, y0, x1 - 10.0, y1 - 1.0]);
    assert_eq!((saved.version, saved.actor.as_deref()), (1, Some("rita")));
    assert_eq!(fx.catalog.box_events(image).await.unwrap().len(), 1);
    // Three triplets, labelled with the keyboard, stored with the reviewer's name.
    assert_eq!(result["triplet_rows"], serde_json::json!(3), "{result}");
    let triplets = fx.catalog.triplets().await.unwrap();
    assert_eq!(triplets.len(), 3);
    assert!(triplets.iter().all(|t| t.actor.as_deref() == Some("rita")));
    // The crowd batch's two tasks, answered with the key 2: each task's second label, stored
    // as rita's votes.
    assert_eq!(result["crowd_answers"], serde_json::json!(2), "{result}");
    let tasks = fx.catalog.crowd_tasks(crowd_batch).await.unwrap();
    let votes = fx.catalog.crowd_votes(crowd_batch).await.unwrap();
    assert_eq!(votes.len(), 2);
    for (task, vote) in tasks.iter().zip(&votes) {
        assert_eq!(
            (vote.task_id, vote.worker.as_str()),
            (task.id, "review:rita")
        );
        assert_eq!(vote.label, task.labels[1]);
    }
    for shot in [
        "01-login",
        "04-f1-view",
        "05-false-negatives",
        "08-retagged-again",
        "09-image",
        "12-similar-swap",
        "13-catalogue",
        "14-search-upload",
        "15-triplets",
        "16-box-editor",
        "17-crowd-answer",
    ] {
        assert!(e2e_shot(shot).exists(), "screenshot {shot} was not saved");
    }
}

fn e2e_shot(name: &str) -> PathBuf {
    workspace().join(format!("e2e/screenshots/{name}.png"))
}
