//! Test environments: every catalogue test body runs once on a fresh SQLite file and once on a
//! fresh PostgreSQL database (created under `ATELIER_TEST_POSTGRES_URL`, dropped afterwards).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use atelier_catalog::{Catalog, ImportOptions, ImportReport};
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};

pub const POSTGRES_ENV: &str = "ATELIER_TEST_POSTGRES_URL";
/// A PostgreSQL server with the pgvector extension (scripts/test starts one).
pub const PGVECTOR_ENV: &str = "ATELIER_TEST_PGVECTOR_URL";

/// One test named `$backend` that runs `super::$case` on the environment `$env` makes (an
/// `Option<TestEnv>`: `None` skips, after saying why).
#[macro_export]
macro_rules! backend_test {
    ($case:ident, $backend:ident, $env:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $backend() {
            if let Some(env) = $env {
                super::$case(&env).await;
            }
        }
    };
}

/// Runs each named `async fn(&TestEnv)` as two tests: `<name>::sqlite` and `<name>::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => { $(
        mod $case {
            $crate::backend_test!($case, sqlite, Some($crate::common::TestEnv::sqlite()));
            $crate::backend_test!($case, postgres, $crate::common::TestEnv::postgres().await);
        }
    )* };
}

/// Like [`on_both_backends`], plus `<name>::pgvector` on a PostgreSQL server with pgvector.
#[macro_export]
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => { $(
        mod $case {
            $crate::backend_test!($case, sqlite, Some($crate::common::TestEnv::sqlite()));
            $crate::backend_test!($case, postgres, $crate::common::TestEnv::postgres().await);
            $crate::backend_test!($case, pgvector, $crate::common::TestEnv::pgvector().await);
        }
    )* };
}

struct PostgresDatabase {
    admin_url: String,
    name: String,
}

pub struct TestEnv {
    /// Holds image files and manifests.
    pub dir: tempfile::TempDir,
    pub url: String,
    /// Whether the server has pgvector (the environment named [`PGVECTOR_ENV`]).
    #[allow(dead_code)] // read by the test files that run on pgvector
    pub pgvector: bool,
    postgres: Option<PostgresDatabase>,
}

impl TestEnv {
    pub fn sqlite() -> TestEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
        TestEnv {
            dir,
            url,
            pgvector: false,
            postgres: None,
        }
    }

    /// A fresh database, or `None` (after saying so) when PostgreSQL is not configured.
    /// Under CI a missing configuration fails the test instead.
    pub async fn postgres() -> Option<TestEnv> {
        Self::database_under(POSTGRES_ENV).await
    }

    /// A fresh database on the pgvector server, or `None` as for [`TestEnv::postgres`].
    #[allow(dead_code)] // called by the test files that run on pgvector
    pub async fn pgvector() -> Option<TestEnv> {
        Self::database_under(PGVECTOR_ENV).await
    }

    async fn database_under(variable: &str) -> Option<TestEnv> {
        let Ok(admin_url) = std::env::var(variable) else {
            if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
                panic!(
                    "{variable} is not set, but CI is: the PostgreSQL parts of the catalogue tests must run in CI"
                );
            }
            eprintln!("skipped: {variable} not set");
            return None;
        };
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "atelier_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {variable}={admin_url}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = database_url(&admin_url, &name);
        Some(TestEnv {
            dir: tempfile::tempdir().expect("temp dir"),
            url,
            pgvector: variable == PGVECTOR_ENV,
            postgres: Some(PostgresDatabase { admin_url, name }),
        })
    }

    pub async fn open(&self) -> Catalog {
        Catalog::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.url))
    }

    /// Writes a file under the test folder and returns its path.
    pub fn write(&self, relative: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[allow(dead_code)] // called by the test files that name files they did not write
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let Some(db) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime (or while unwinding), so use a thread of our own.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&db.admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name);
                    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut admin)
                        .await
                    {
                        eprintln!("could not drop test database {}: {e}", db.name);
                    }
                }
            });
        });
        let _ = dropper.join();
    }
}

/// The admin URL with its database name replaced by `name`.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let server = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// Independent reference for image ids.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Distinct, non-empty image bytes.
pub fn blob(tag: &str) -> Vec<u8> {
    format!("fake image bytes for {tag}").into_bytes()
}

/// Imports with missing files and removals allowed: the tests that use it are about other
/// rules (the refusals have tests of their own).
pub async fn import(catalog: &Catalog, path: &Path) -> ImportReport {
    catalog
        .import(
            path,
            &ImportOptions {
                allow_missing: true,
                allow_removals: true,
                ..ImportOptions::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("import {}: {e}", path.display()))
}

#[test]
fn database_url_replaces_only_the_name() {
    assert_eq!(
        database_url("postgres://u@h:1/postgres?sslmode=disable", "x"),
        "postgres://u@h:1/x?sslmode=disable"
    );
    assert_eq!(database_url("postgres://u@h:1", "x"), "postgres://u@h:1/x");
}
