//! What the catalogue refuses or survives: imports of paths that are no image files, of
//! manifests whose files are mostly missing or that would remove most of a source, folder
//! links that lead out of a tree, conflicting duplicate rows, damaged SQLite files, and the
//! run leases that keep two processes from training one run. Each case that involves the
//! database runs on SQLite and on PostgreSQL.

#[allow(dead_code)]
mod common;

use atelier_catalog::{
    Catalog, CatalogError, ImportOptions, NewRun, RunFinish, RunLease, RunStatus, now_millis,
};
use common::{TestEnv, blob};
use serde_json::json;

on_both_backends!(
    paths_that_are_no_image_files_are_refused_and_nothing_is_written,
    mostly_missing_files_are_refused_unless_allowed,
    an_import_that_would_remove_most_images_is_refused_unless_allowed,
    folder_links_are_not_followed,
    conflicting_duplicate_rows_are_named,
    a_run_is_held_by_one_process_at_a_time,
    runs_whose_process_is_gone_are_interrupted,
    the_catalogue_id_is_drawn_once,
);

fn strict() -> ImportOptions {
    ImportOptions::default()
}

async fn image_count(catalog: &Catalog) -> u64 {
    catalog.summary().await.unwrap().images
}

fn refusal(result: Result<atelier_catalog::ImportReport, CatalogError>) -> String {
    match result {
        Err(error @ CatalogError::Source { .. }) => error.to_string(),
        other => panic!("expected the import to be refused, got {other:?}"),
    }
}

async fn paths_that_are_no_image_files_are_refused_and_nothing_is_written(env: &TestEnv) {
    let catalog = env.open().await;
    env.write("img/a.jpg", &blob("a"));
    std::fs::create_dir_all(env.path("folder.jpg")).unwrap();
    std::os::unix::fs::symlink("/proc/self/environ", env.path("environ.jpg")).unwrap();
    let manifest = env.write(
        "manifest.csv",
        b"path,silhouette\nimg/a.jpg,sheath\nfolder.jpg,sheath\n/dev/null,sheath\nenviron.jpg,sheath\n",
    );
    let message = refusal(catalog.import(&manifest, &strict()).await);
    assert!(
        message.contains("3 rows name paths that are not image files"),
        "{message}"
    );
    for named in [
        "folder.jpg is a folder",
        "/dev/null is a device",
        "environ.jpg is a file of the kernel's /proc",
    ] {
        assert!(message.contains(named), "{named:?} missing from: {message}");
    }
    // Allowing missing files does not let them in: they are not missing, they are no images.
    let options = ImportOptions {
        allow_missing: true,
        ..ImportOptions::default()
    };
    assert!(catalog.import(&manifest, &options).await.is_err());
    assert_eq!(image_count(&catalog).await, 0);
    assert!(catalog.facets().await.unwrap().is_empty());
}

async fn mostly_missing_files_are_refused_unless_allowed(env: &TestEnv) {
    let catalog = env.open().await;
    env.write("img/a.jpg", &blob("a"));
    let mut manifest = String::from("path,silhouette\nimg/a.jpg,sheath\n");
    for i in 0..20 {
        manifest.push_str(&format!("img/gone-{i}.jpg,a-line\n"));
    }
    let manifest = env.write("manifest.csv", manifest.as_bytes());
    let message = refusal(catalog.import(&manifest, &strict()).await);
    assert!(message.contains("20 of 21 rows"), "{message}");
    assert!(
        message.contains("gone-0.jpg") && message.contains("and 15 more"),
        "{message}"
    );
    assert!(message.contains("allow_missing"), "{message}");
    assert_eq!(image_count(&catalog).await, 0, "nothing is written");

    let allowed = ImportOptions {
        allow_missing: true,
        ..ImportOptions::default()
    };
    let report = catalog.import(&manifest, &allowed).await.unwrap();
    assert_eq!((report.added, report.quarantined), (1, 20));

    // One missing file in twenty is below the share: imported, quarantined.
    let other = tempfile::tempdir().unwrap();
    let mut rows = String::from("path,silhouette\n");
    for i in 0..19 {
        let file = other.path().join(format!("{i}.jpg"));
        std::fs::write(&file, blob(&format!("other-{i}"))).unwrap();
        rows.push_str(&format!("{},sheath\n", file.display()));
    }
    rows.push_str("/nowhere/gone.jpg,sheath\n");
    std::fs::write(other.path().join("m.csv"), rows).unwrap();
    let report = catalog
        .import(&other.path().join("m.csv"), &strict())
        .await
        .unwrap();
    assert_eq!((report.added, report.quarantined), (19, 1));
}

async fn an_import_that_would_remove_most_images_is_refused_unless_allowed(env: &TestEnv) {
    let catalog = env.open().await;
    let mut rows = String::from("path,silhouette\n");
    for i in 0..10 {
        env.write(&format!("img/{i}.jpg"), &blob(&i.to_string()));
        rows.push_str(&format!("img/{i}.jpg,sheath\n"));
    }
    let manifest = env.write("manifest.csv", rows.as_bytes());
    catalog.import(&manifest, &strict()).await.unwrap();

    // Cut down to its header: every image would be removed.
    env.write("manifest.csv", b"path,silhouette\n");
    let message = refusal(catalog.import(&manifest, &strict()).await);
    assert!(
        message.contains("would mark 10 of the source's 10 images removed"),
        "{message}"
    );
    assert!(message.contains("allow_removals"), "{message}");
    let summary = catalog.summary().await.unwrap();
    assert_eq!((summary.active.total(), summary.removed.total()), (10, 0));

    // Two of ten (the share allowed) go through; three need the flag.
    let keep = |n: usize| {
        let mut rows = String::from("path,silhouette\n");
        for i in 0..n {
            rows.push_str(&format!("img/{i}.jpg,sheath\n"));
        }
        rows
    };
    env.write("manifest.csv", keep(8).as_bytes());
    assert_eq!(
        catalog.import(&manifest, &strict()).await.unwrap().removed,
        2
    );
    env.write("manifest.csv", keep(5).as_bytes());
    refusal(catalog.import(&manifest, &strict()).await);
    let allowed = ImportOptions {
        allow_removals: true,
        ..ImportOptions::default()
    };
    assert_eq!(
        catalog.import(&manifest, &allowed).await.unwrap().removed,
        3
    );
}

async fn folder_links_are_not_followed(env: &TestEnv) {
    let catalog = env.open().await;
    env.write("tree/silhouette/sheath/one.jpg", &blob("one"));
    env.write("elsewhere/neckline/v-neck/two.jpg", &blob("two"));
    let root = env.path("tree");
    std::os::unix::fs::symlink("..", root.join("up")).unwrap();
    std::os::unix::fs::symlink(env.path("elsewhere/neckline"), root.join("neckline")).unwrap();
    // A link to a file is followed: a picture filed under a second facet.
    std::fs::create_dir_all(root.join("length/midi")).unwrap();
    std::os::unix::fs::symlink(
        root.join("silhouette/sheath/one.jpg"),
        root.join("length/midi/one.jpg"),
    )
    .unwrap();
    let report = catalog.import(&root, &strict()).await.unwrap();
    assert_eq!((report.added, report.rows), (1, 2));
    let names: Vec<String> = catalog
        .facets()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, ["length", "silhouette"]);
    let warning = report.warnings.join("\n");
    assert!(
        warning.contains("up (a link to a folder, not followed)"),
        "{warning}"
    );
    assert!(
        warning.contains("neckline (a link to a folder, not followed)"),
        "{warning}"
    );
}

async fn conflicting_duplicate_rows_are_named(env: &TestEnv) {
    let catalog = env.open().await;
    env.write("a.jpg", &blob("a"));
    env.write("copy-of-a.jpg", &blob("a"));
    let manifest = env.write(
        "m.csv",
        b"path,silhouette,neckline\na.jpg,sheath,v-neck\na.jpg,sheath,v-neck\ncopy-of-a.jpg,a-line,v-neck\n",
    );
    let report = catalog.import(&manifest, &strict()).await.unwrap();
    assert_eq!((report.added, report.duplicates), (1, 2));
    let same = &report.warnings[0];
    assert!(
        same.contains("line 3") && same.ends_with("; the later row is skipped"),
        "{same}"
    );
    let conflict = &report.warnings[1];
    assert!(
        conflict.contains("line 4")
            && conflict
                .contains("but with other labels (silhouette \"sheath\" there, \"a-line\" here)")
            && conflict.contains("line 2's labels are kept"),
        "{conflict}"
    );
}

async fn new_run(catalog: &Catalog, lease: Option<RunLease>) -> i64 {
    catalog
        .create_run(&NewRun {
            kind: "facets".into(),
            config: json!({}),
            parent_run: None,
            lease,
        })
        .await
        .unwrap()
}

fn lease(owner: &str, seconds: i64) -> Option<RunLease> {
    Some(RunLease {
        owner: owner.into(),
        expires_at: now_millis() + seconds * 1000,
    })
}

async fn a_run_is_held_by_one_process_at_a_time(env: &TestEnv) {
    let catalog = env.open().await;
    let run = new_run(&catalog, lease("app:1:a", 60)).await;
    let record = catalog.run(run).await.unwrap().unwrap();
    assert_eq!(
        record.lease.as_ref().map(|l| l.owner.as_str()),
        Some("app:1:a")
    );

    // Another process is refused while the lease lives, and says who holds it.
    let later = now_millis() + 60_000;
    match catalog.take_run(run, "cli:2:b", later, None).await {
        Err(CatalogError::RunHeld {
            owner,
            seconds_left,
            ..
        }) => {
            assert_eq!(owner, "app:1:a");
            assert!((1..=60).contains(&seconds_left), "{seconds_left}");
        }
        other => panic!("expected RunHeld, got {other:?}"),
    }
    // The holder may take it again; so may a process that knows the holder is dead.
    catalog.take_run(run, "app:1:a", later, None).await.unwrap();
    catalog
        .take_run(run, "cli:2:b", later, Some("app:1:a"))
        .await
        .unwrap();
    // Renewals: only the holder's count.
    assert_eq!(
        catalog
            .renew_run_leases("app:1:a", &[run], later)
            .await
            .unwrap(),
        [run]
    );
    assert!(
        catalog
            .renew_run_leases("cli:2:b", &[run], later)
            .await
            .unwrap()
            .is_empty()
    );

    // A holder that lost the run cannot finish it; the one that holds it can.
    let done = RunFinish {
        status: RunStatus::Completed,
        summary: Some(json!({})),
        model_ref: None,
        error: None,
    };
    assert!(
        catalog
            .finish_held_run(run, "app:1:a", &done)
            .await
            .is_err()
    );
    catalog
        .finish_held_run(run, "cli:2:b", &done)
        .await
        .unwrap();
    let record = catalog.run(run).await.unwrap().unwrap();
    assert_eq!((record.status, record.lease), (RunStatus::Completed, None));
    // A completed run is never taken again.
    assert!(matches!(
        catalog.take_run(run, "cli:2:b", later, None).await,
        Err(CatalogError::RunState { .. })
    ));

    // An expired lease frees the run, and a failed run is taken back to running.
    let expired = new_run(&catalog, lease("app:1:a", -1)).await;
    catalog
        .take_run(expired, "cli:2:b", later, None)
        .await
        .unwrap();
    let failed = RunFinish {
        status: RunStatus::Failed,
        summary: None,
        model_ref: None,
        error: Some("boom".into()),
    };
    catalog
        .finish_held_run(expired, "cli:2:b", &failed)
        .await
        .unwrap();
    catalog
        .take_run(expired, "app:1:a", later, None)
        .await
        .unwrap();
    let record = catalog.run(expired).await.unwrap().unwrap();
    assert_eq!((record.status, record.error), (RunStatus::Running, None));
}

async fn runs_whose_process_is_gone_are_interrupted(env: &TestEnv) {
    let catalog = env.open().await;
    let alive = new_run(&catalog, lease("host:10:a", 60)).await;
    let expired = new_run(&catalog, lease("host:11:b", -5)).await;
    let dead = new_run(&catalog, lease("host:12:c", 60)).await;
    let unheld = new_run(&catalog, None).await;
    let gone = |owner: &str| owner == "host:12:c";
    let mut interrupted = catalog.interrupt_orphaned_runs(&gone).await.unwrap();
    interrupted.sort_unstable();
    assert_eq!(interrupted, [expired, dead, unheld]);
    assert_eq!(
        catalog.run(alive).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    let record = catalog.run(dead).await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Interrupted);
    assert!(record.lease.is_none());
    assert!(record.error.unwrap().contains("host:12:c"));
    // Nothing left to interrupt.
    assert!(
        catalog
            .interrupt_orphaned_runs(&gone)
            .await
            .unwrap()
            .is_empty()
    );

    // An interrupted run is resumed by taking it, or marked failed; a running one is not
    // marked failed that way.
    catalog
        .take_run(expired, "host:13:d", now_millis() + 60_000, None)
        .await
        .unwrap();
    assert_eq!(
        catalog.run(expired).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    catalog
        .fail_interrupted_run(dead, "given up")
        .await
        .unwrap();
    let record = catalog.run(dead).await.unwrap().unwrap();
    assert_eq!(
        (record.status, record.error.as_deref()),
        (RunStatus::Failed, Some("given up"))
    );
    assert!(matches!(
        catalog.fail_interrupted_run(alive, "no").await,
        Err(CatalogError::RunState { .. })
    ));
}

async fn the_catalogue_id_is_drawn_once(env: &TestEnv) {
    let catalog = env.open().await;
    let id = catalog.catalog_id().await.unwrap();
    assert_eq!(id.len(), 16);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    let again = env.open().await;
    assert_eq!(again.catalog_id().await.unwrap(), id);
    assert_eq!(
        catalog.setting_or_insert("k", "first").await.unwrap(),
        "first"
    );
    assert_eq!(
        again.setting_or_insert("k", "second").await.unwrap(),
        "first"
    );
    // Another catalogue draws another id.
    let other = TestEnv::sqlite();
    assert_ne!(other.open().await.catalog_id().await.unwrap(), id);
}

/// Damaged or foreign SQLite files fail at once with one line that names the file (not a pool
/// timeout after 30 s), and nothing is created in their place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_sqlite_files_are_refused_at_once() {
    let env = TestEnv::sqlite();
    // A healthy catalogue with some content, to damage in several ways.
    let catalog = env.open().await;
    let mut rows = String::from("path,silhouette\n");
    for i in 0..300 {
        env.write(&format!("img/{i}.jpg"), &blob(&format!("img-{i}")));
        rows.push_str(&format!("img/{i}.jpg,sheath\n"));
    }
    let manifest = env.write("manifest.csv", rows.as_bytes());
    catalog.import(&manifest, &strict()).await.unwrap();
    catalog.close().await;
    let file = env.dir.path().join("catalog.db");
    // Fold the WAL into the file, so that the file alone is the catalogue.
    {
        let catalog = Catalog::open(&env.url).await.unwrap();
        catalog.close().await;
    }
    let good = std::fs::read(&file).unwrap();
    let _ = std::fs::remove_file(env.dir.path().join("catalog.db-wal"));
    let _ = std::fs::remove_file(env.dir.path().join("catalog.db-shm"));
    assert!(
        good.len() > 8 * 4096,
        "a catalogue of several pages: {}",
        good.len()
    );

    let mut zeroed_header = good.clone();
    zeroed_header[..100].fill(0);
    let mut zeroed_page = good.clone();
    zeroed_page[4096..8192].fill(0);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "the file is empty"),
        (
            "text",
            b"path,silhouette\na.jpg,sheath\n".to_vec(),
            "not a SQLite database",
        ),
        ("zeroed header", zeroed_header, "not a SQLite database"),
        ("half", good[..good.len() / 2].to_vec(), "malformed"),
        ("zeroed page", zeroed_page, "malformed"),
    ];
    for (case, bytes, reason) in cases {
        let path = env
            .dir
            .path()
            .join(format!("{}.db", case.replace(' ', "-")));
        std::fs::write(&path, &bytes).unwrap();
        let url = format!("sqlite://{}", path.display());
        match Catalog::open(&url).await {
            Err(error @ CatalogError::NotACatalogue { .. }) => {
                let message = error.to_string();
                assert!(
                    message.contains(&path.display().to_string()),
                    "{case}: {message}"
                );
                assert!(message.contains(reason), "{case}: {message}");
                assert!(
                    message.contains("restore it from a backup"),
                    "{case}: {message}"
                );
            }
            Err(other) => panic!("{case}: expected NotACatalogue, got {other}"),
            Ok(_) => panic!("{case}: a damaged catalogue opened"),
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{case}: the file is left as it was"
        );
    }

    // Another program's SQLite database is not taken over.
    let foreign = env.dir.path().join("foreign.db");
    {
        let url = format!("sqlite://{}?mode=rwc", foreign.display());
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE notes (body TEXT)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    match Catalog::open(&format!("sqlite://{}", foreign.display())).await {
        Err(CatalogError::NotACatalogue { reason, .. }) => {
            assert!(
                reason.contains("another program (tables notes)"),
                "{reason}"
            )
        }
        other => panic!("expected NotACatalogue, got {:?}", other.map(|_| ())),
    }
    // A file that does not exist yet still becomes a new catalogue.
    let fresh = env.dir.path().join("fresh.db");
    Catalog::open(&format!("sqlite://{}", fresh.display()))
        .await
        .unwrap();
    assert!(fresh.exists());
}

/// A catalogue made before run leases keeps its runs, their ids and its id counter when the
/// lease migration rebuilds the runs table (SQLite cannot change a CHECK constraint in place).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_migration_keeps_old_runs_and_their_ids() {
    use sqlx::Connection;
    let env = TestEnv::sqlite();
    let migrations = env.dir.path().join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.as_str() < "0005" {
            std::fs::copy(&path, migrations.join(&name)).unwrap();
        }
    }
    let file = env.dir.path().join("catalog.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let old = sqlx::migrate::Migrator::new(migrations.as_path())
            .await
            .unwrap();
        old.run(&mut conn).await.unwrap();
        for (status, finished) in [("completed", "1"), ("failed", "2"), ("running", "NULL")] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "INSERT INTO runs (kind, status, created_at, updated_at, finished_at, config) \
                 VALUES ('facets', '{status}', 0, 0, {finished}, '{{}}')"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
        // Run 4 existed once: its id must never come back.
        sqlx::raw_sql("INSERT INTO runs (kind, status, created_at, updated_at, config) VALUES ('facets', 'running', 0, 0, '{}'); DELETE FROM runs WHERE id = 4")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let catalog = env.open().await;
    let runs = catalog.runs().await.unwrap();
    let statuses: Vec<(i64, RunStatus)> = runs.iter().map(|r| (r.id, r.status)).collect();
    assert_eq!(
        statuses,
        [
            (3, RunStatus::Running),
            (2, RunStatus::Failed),
            (1, RunStatus::Completed)
        ]
    );
    assert_eq!(new_run(&catalog, None).await, 5);
    // The old running run has no holder: it is interrupted at once.
    assert_eq!(
        catalog.interrupt_orphaned_runs(&|_| false).await.unwrap(),
        [3, 5]
    );
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    let problems: Vec<sqlx::sqlite::SqliteRow> = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(problems.is_empty());
}
