//! Opening databases: URL forms and SQLite file creation.

use atelier_catalog::{Backend, Catalog, CatalogError};

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new.db");
    let catalog = Catalog::open(&format!("sqlite:{}", file.display()))
        .await
        .unwrap();
    assert_eq!(catalog.backend(), Backend::Sqlite);
    assert!(file.exists());
    assert_eq!(catalog.summary().await.unwrap().images, 0);
    catalog.close().await;
    // Opening again finds the schema in place (migrations are not re-applied).
    let again = Catalog::open(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    assert_eq!(again.facets().await.unwrap(), vec![]);
    again.close().await;
    assert!(
        dir.path().join("new.db-wal").exists() || dir.path().join("new.db-shm").exists() || {
            // The WAL files can be checkpointed away on close; the header says WAL all the same.
            let header = std::fs::read(&file).unwrap();
            header[18] == 2 && header[19] == 2
        }
    );
}

#[tokio::test]
async fn bad_urls_are_refused_with_the_accepted_forms() {
    for url in [
        "mysql://localhost/x",
        "atelier.db",
        "sqlite:/no/such/folder/x.db",
    ] {
        let error = Catalog::open(url).await.unwrap_err();
        assert!(
            matches!(error, CatalogError::BadUrl { .. }),
            "{url}: {error}"
        );
        let message = error.to_string();
        assert!(message.contains(url), "{message}");
        assert!(message.contains("sqlite://PATH"), "{message}");
    }
}
