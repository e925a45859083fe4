//! What the command line refuses or survives: altered model files, damaged caches, damaged
//! catalogues, imports that name missing or no image files or would empty a source, a run
//! another living process trains, and two catalogues sharing one folder.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Workspace, json_of, tiny_training};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_refused(output: &Output, needles: &[&str]) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
}

/// A quick run of the small CNN; returns the run's JSON summary.
fn train(workspace: &Workspace, epochs: &str, extra: &[&str]) -> serde_json::Value {
    json_of(&workspace.run(&tiny_training(epochs, extra)))
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

fn first_image(workspace: &Workspace) -> PathBuf {
    let mut images: Vec<PathBuf> = std::fs::read_dir(workspace.root.join("synth/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    images.sort();
    images.remove(0)
}

#[test]
fn models_are_used_only_when_every_file_matches_its_checksum() {
    let workspace = Workspace::synthetic(24, &[], &[]);
    let trained = train(&workspace, "1", &[]);
    let model = PathBuf::from(trained["model"].as_str().unwrap());
    let image = first_image(&workspace);
    let image = image.to_str().unwrap();
    let tag = |reference: &str| workspace.run(&["tag", "--model", reference, image, "--json"]);
    let good = json_of(&tag("1"));

    // One flipped bit in the weights: refused, naming the file; never silently used.
    let weights = model.join("weights.bpk");
    flip_a_byte(&weights);
    assert_refused(
        &tag("1"),
        &["weights.bpk", "changed after the model was saved"],
    );
    flip_a_byte(&weights);
    assert_eq!(json_of(&tag("1")), good);

    // A model folder without checksums (saved before they existed) is refused until sealed.
    let checksums = model.join("checksums.json");
    std::fs::remove_file(&checksums).unwrap();
    assert_refused(
        &tag(model.to_str().unwrap()),
        &["checksums.json", "models seal"],
    );
    json_of(&workspace.run(&["models", "seal", model.to_str().unwrap(), "--json"]));
    assert_eq!(json_of(&tag(model.to_str().unwrap())), good);
    assert_refused(
        &workspace.run(&["models", "seal", model.to_str().unwrap()]),
        &["already has checksums.json"],
    );

    // A published model: its cached copy is checked at every pull, and fetched again when
    // damaged; a damaged folder is never published.
    let cache = workspace.root.join("model-cache");
    let with_cache = |args: &[&str]| {
        workspace
            .command(args)
            .env("ATELIER_MODEL_CACHE", &cache)
            .output()
            .unwrap()
    };
    json_of(&with_cache(&[
        "models",
        "push",
        model.to_str().unwrap(),
        "--name",
        "dresses",
        "--json",
    ]));
    let pulled = json_of(&with_cache(&["models", "pull", "dresses", "--json"]));
    assert_eq!(pulled["downloaded"], true);
    let cached = PathBuf::from(pulled["dir"].as_str().unwrap());
    flip_a_byte(&cached.join("weights.bpk"));
    let again = json_of(&with_cache(&["models", "pull", "dresses", "--json"]));
    assert_eq!(
        again["downloaded"], true,
        "a damaged cache is downloaded again"
    );
    let tagged = json_of(&with_cache(&["tag", "--model", "dresses", image, "--json"]));
    assert_eq!(tagged, good);
    assert_eq!(
        json_of(&with_cache(&["models", "pull", "dresses", "--json"]))["downloaded"],
        false
    );
    flip_a_byte(&weights);
    assert_refused(
        &with_cache(&[
            "models",
            "push",
            model.to_str().unwrap(),
            "--name",
            "dresses",
        ]),
        &["weights.bpk"],
    );
}

#[test]
fn a_damaged_catalogue_fails_at_once_with_one_line() {
    let workspace = Workspace::synthetic(8, &[], &[]);
    let good = std::fs::read(workspace.root.join("catalog.db")).unwrap();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("empty.db", Vec::new(), "empty"),
        ("header.db", vec![0u8; good.len()], "not a SQLite database"),
        (
            "words.db",
            b"these are not the bytes of a catalogue".repeat(100),
            "not a SQLite database",
        ),
    ];
    for (name, bytes, reason) in cases {
        let path = workspace.root.join(name);
        std::fs::write(&path, &bytes).unwrap();
        let started = Instant::now();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_atelier"))
            .args(["--db", &format!("sqlite://{}", path.display()), "summary"])
            .output()
            .unwrap();
        eprintln!("{name}: refused after {:?}", started.elapsed());
        assert_refused(
            &output,
            &[
                "is not a valid atelier catalogue",
                reason,
                "restore it from a backup",
            ],
        );
        assert_eq!(
            stderr(&output).trim_end().lines().count(),
            1,
            "{}",
            stderr(&output)
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{name} is left as it was"
        );
    }
}

#[test]
fn imports_refuse_what_they_should_not_write() {
    let workspace = Workspace::synthetic(8, &[], &[]);
    let summary = || json_of(&workspace.run(&["summary", "--json"]));
    let images_before = summary()["images"].clone();

    // A manifest for another machine: every file is missing.
    let mut rows = String::from("path,silhouette\n");
    for i in 0..50 {
        rows.push_str(&format!("/nowhere/dress-{i}.jpg,sheath\n"));
    }
    let elsewhere = workspace.root.join("elsewhere.csv");
    std::fs::write(&elsewhere, rows).unwrap();
    let refused = workspace.run(&["import", elsewhere.to_str().unwrap()]);
    assert_refused(
        &refused,
        &[
            "50 of 50 rows",
            "/nowhere/dress-0.jpg",
            "allow_missing",
            "Nothing was imported",
        ],
    );
    assert_eq!(summary()["images"], images_before, "nothing written");
    let allowed = json_of(&workspace.run(&[
        "import",
        elsewhere.to_str().unwrap(),
        "--allow-missing",
        "--json",
    ]));
    assert_eq!(allowed["quarantined"], 50);

    // Paths that are no image files are refused whatever the options.
    let secrets = workspace.root.join("secrets.csv");
    std::fs::write(
        &secrets,
        "path,silhouette\n/proc/self/environ,sheath\n/etc,sheath\n",
    )
    .unwrap();
    assert_refused(
        &workspace.run(&["import", secrets.to_str().unwrap(), "--allow-missing"]),
        &["not image files", "/proc/self/environ", "/etc is a folder"],
    );

    // The synthetic manifest cut down to its header would remove every image.
    let manifest = workspace.root.join("synth/manifest.csv");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let header = text.lines().next().unwrap();
    std::fs::write(&manifest, format!("{header}\n")).unwrap();
    assert_refused(
        &workspace.run(&["import", manifest.to_str().unwrap()]),
        &[
            "would mark 8 of the source's 8 images removed",
            "allow_removals",
        ],
    );
    images_active(&workspace, 8);
    let removed = json_of(&workspace.run(&[
        "import",
        manifest.to_str().unwrap(),
        "--allow-removals",
        "--json",
    ]));
    assert_eq!(removed["removed"], 8);
}

fn images_active(workspace: &Workspace, total: u64) {
    let active = json_of(&workspace.run(&["summary", "--json"]))["active"].clone();
    assert_eq!(
        active["train"].as_u64().unwrap() + active["test"].as_u64().unwrap(),
        total
    );
}

fn state_file(root: &Path, run: i64) -> Option<PathBuf> {
    std::fs::read_dir(root.join("checkpoints"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(format!("run-{run}/state.json")))
        .find(|p| p.exists())
}

#[test]
fn a_run_another_living_process_trains_is_not_resumed() {
    let workspace = Workspace::synthetic(160, &[], &[]);
    let mut child = workspace
        .command(&tiny_training("50", &[]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while state_file(&workspace.root, 1).is_none() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended too soon"
        );
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The training process holds run 1: a second process may not train it too.
    let second = workspace.run(&["train", "facets", "--resume", "1"]);
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert_refused(
        &second,
        &["training run 1 is held by", "wait for it to finish"],
    );
    // Once that process is gone (it ran here, so that is known at once), the run resumes.
    let resumed = json_of(&workspace.run(&[
        "train", "facets", "--resume", "1", "--epochs", "1", "--json",
    ]));
    assert_eq!(resumed["run"], 1);
}

#[test]
fn two_catalogues_in_one_folder_train_side_by_side() {
    let workspace = Workspace::synthetic(24, &[], &[]);
    let first = train(&workspace, "1", &[]);
    // A second catalogue in the same folder, with the same store and checkpoint folder.
    let other_db = format!("sqlite://{}", workspace.root.join("other.db").display());
    let manifest = workspace.root.join("synth/manifest.csv");
    let other = |args: &[&str]| workspace.command_on(&other_db, args).output().unwrap();
    json_of(&other(&["import", manifest.to_str().unwrap(), "--json"]));
    json_of(&other(&["check", "--json"]));
    let second = json_of(&other(&tiny_training("1", &["--seed", "9"])));
    assert_eq!(
        (first["run"].as_i64(), second["run"].as_i64()),
        (Some(1), Some(1))
    );
    assert_ne!(
        first["model"], second["model"],
        "each catalogue keeps its own run-1"
    );
    for model in [&first["model"], &second["model"]] {
        assert!(
            Path::new(model.as_str().unwrap())
                .join("model.json")
                .exists()
        );
    }
    // `--model 1` means run 1 of the catalogue asked.
    let image = first_image(&workspace);
    let tagged = |output: Output| json_of(&output)["facets"].clone();
    let a = tagged(workspace.run(&["tag", "--model", "1", image.to_str().unwrap(), "--json"]));
    let b = tagged(other(&[
        "tag",
        "--model",
        "1",
        image.to_str().unwrap(),
        "--json",
    ]));
    assert_ne!(a, b, "two different models (seeds 1 and 9)");
}

/// Naming something that does not exist is the user's input to fix: exit 2, like the README
/// promises, with one line that names it.
#[test]
fn unknown_users_and_runs_exit_2() {
    let workspace = Workspace::synthetic(4, &[], &[]);
    for (args, named) in [
        (vec!["users", "remove", "ghost"], "ghost"),
        (vec!["users", "role", "ghost", "admin"], "ghost"),
        (vec!["retrain", "99"], "99"),
        (vec!["mistags", "99"], "99"),
    ] {
        let output = workspace.run(&args);
        assert_refused(&output, &[named]);
        assert_eq!(stderr(&output).trim_end().lines().count(), 1, "{args:?}");
    }
}
