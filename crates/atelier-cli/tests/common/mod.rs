//! Helpers shared by the binary's end-to-end tests: a folder with a small synthetic catalogue
//! that runs `atelier` against itself, and readers of `--json` output.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// A temporary folder holding a synthetic catalogue (`catalog.db`), its store (`models/`) and
/// its feature cache, with `atelier` run inside it.
pub struct Workspace {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub db: String,
}

impl Workspace {
    /// `count` synthetic 64-pixel images, imported and checked; `synth` and `import` are extra
    /// options of those two commands (e.g. `--label-noise 0.2`, `--test-fraction 0.3`).
    pub fn synthetic(count: usize, synth: &[&str], import: &[&str]) -> Self {
        Self::synthetic_on(None, count, synth, import)
    }

    /// Like [`Workspace::synthetic`], with the catalogue at `db` (`None`: `catalog.db`).
    pub fn synthetic_on(db: Option<String>, count: usize, synth: &[&str], import: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let db = db.unwrap_or_else(|| format!("sqlite://{}", root.join("catalog.db").display()));
        let folder = root.join("synth");
        let workspace = Self {
            _dir: dir,
            root,
            db,
        };
        let count = count.to_string();
        let mut synth_args = vec![
            "synth",
            "--out",
            folder.to_str().unwrap(),
            "--count",
            &count,
        ];
        synth_args.extend(["--size", "64", "--json"]);
        synth_args.extend(synth);
        json_of(&workspace.run(&synth_args));
        let manifest = folder.join("manifest.csv");
        let mut import_args = vec!["import", manifest.to_str().unwrap(), "--json"];
        import_args.extend(import);
        json_of(&workspace.run(&import_args));
        json_of(&workspace.run(&["check", "--json"]));
        workspace
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_on(&self.db, args)
    }

    /// A command on another catalogue (`--db`) in the same folder, store and feature cache.
    pub fn command_on(&self, db: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_atelier"));
        command
            .current_dir(&self.root)
            .arg("--db")
            .arg(db)
            .arg("--store")
            .arg(self.root.join("models"))
            .args(args)
            .env("ATELIER_FEATURE_CACHE", self.root.join("feature-cache"))
            .env_remove("ATELIER_DB")
            .env_remove("ATELIER_STORE");
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run atelier")
    }
}

/// `train facets` with the small CNN at 64 px for `epochs` epochs, batches of 16, `--json`,
/// and `extra` options.
pub fn tiny_training<'a>(epochs: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "facets",
        "--backbone",
        "tiny",
        "--image-size",
        "64",
        "--epochs",
        epochs,
        "--batch-size",
        "16",
        "--json",
    ];
    args.extend(extra);
    args
}

/// The last line of a successful command's standard output, as JSON.
pub fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "atelier failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().expect("some output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// Every line of a command's standard output, as JSON (also for commands that exit non-zero
/// after reporting each item, like `tag` with a broken file).
pub fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// A fresh database on the PostgreSQL server at `admin_url`; its URL.
pub async fn fresh_postgres_database(admin_url: &str) -> String {
    use sqlx::Connection;
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "atelier_cli_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to the PostgreSQL admin URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let base = admin_url.rsplit_once('/').expect("URL with a database").0;
    format!("{base}/{name}")
}

/// Run `b` has the per-class tables and (within float tolerance) the probabilities of `a`.
pub fn assert_same_results(command: &dyn Fn(&[&str]) -> Command, a: i64, b: i64) {
    let eval = |run: i64| {
        json_of(
            &command(&["eval", &run.to_string(), "--json"])
                .output()
                .unwrap(),
        )
    };
    assert_eq!(
        eval(a)["facets"],
        eval(b)["facets"],
        "same tables as the uninterrupted run"
    );
    let scores = |run: i64| -> Vec<f64> {
        json_lines(
            &command(&["eval", &run.to_string(), "--predictions", "--json"])
                .output()
                .unwrap(),
        )
        .iter()
        .flat_map(|l| serde_json::from_value::<Vec<f64>>(l["scores"].clone()).unwrap())
        .collect()
    };
    let (a, b) = (scores(a), scores(b));
    assert_eq!(a.len(), b.len());
    let largest = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(largest < 1e-5, "probabilities differ by {largest}");
}

/// The HOST:PORT that a starting `atelier serve` prints on the first line of its standard
/// output (which must be piped).
pub fn served_address(server: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().expect("a piped standard output"))
        .read_line(&mut line)
        .unwrap();
    line.split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string()
}
