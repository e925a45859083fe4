//! Failed logins shared between app instances, on SQLite and on PostgreSQL: each instance sees
//! the others' failures (not its own), a success clears a name everywhere, old ones are pruned.

#[allow(dead_code)] // the helpers this file does not need
mod common;

use atelier_catalog::LoginTally;
use common::TestEnv;

on_both_backends!(failures_are_shared_cleared_and_pruned);

async fn failures_are_shared_cleared_and_pruned(env: &TestEnv) {
    let catalog = env.open().await;
    let name = (LoginTally::Name, "ann");
    let address = (LoginTally::Address, "10.0.0.1");
    catalog
        .record_login_failure("a", &[name, address], 1_000)
        .await
        .unwrap();
    catalog
        .record_login_failure("b", &[name, address], 2_000)
        .await
        .unwrap();
    catalog
        .record_login_failure("b", &[name], 3_000)
        .await
        .unwrap();
    let seen_by_a = catalog
        .login_failures("a", &[name, address], 0)
        .await
        .unwrap();
    assert_eq!(seen_by_a, vec![vec![2_000, 3_000], vec![2_000]]);
    let seen_by_c = catalog.login_failures("c", &[name], 1_500).await.unwrap();
    assert_eq!(
        seen_by_c,
        vec![vec![2_000, 3_000]],
        "only those in the window"
    );
    catalog.clear_login_failures(&[name]).await.unwrap();
    let cleared = catalog
        .login_failures("c", &[name, address], 0)
        .await
        .unwrap();
    assert_eq!(
        cleared,
        vec![vec![], vec![1_000, 2_000]],
        "the address keeps its own"
    );
    assert_eq!(catalog.prune_login_failures(1_500).await.unwrap(), 1);
    let pruned = catalog.login_failures("c", &[address], 0).await.unwrap();
    assert_eq!(pruned, vec![vec![2_000]]);
}
