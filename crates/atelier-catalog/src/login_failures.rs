//! Failed logins shared between app instances: each instance records the failures it sees
//! ([`Catalog::record_login_failure`]) and, before it lets a login try, reads those the other
//! instances recorded ([`Catalog::login_failures`]); a successful login clears its name's and
//! device's failures everywhere ([`Catalog::clear_login_failures`]).

use sqlx::Row;

use crate::Catalog;
use crate::error::{CatalogError, db};

/// What a login failure is counted against: a user name, a client address or a known device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginTally {
    Name,
    Address,
    Device,
}

impl LoginTally {
    fn as_str(self) -> &'static str {
        match self {
            LoginTally::Name => "name",
            LoginTally::Address => "address",
            LoginTally::Device => "device",
        }
    }
}

impl Catalog {
    /// Records one failed login by `instance` at `at` (UTC unix ms) against each of `keys`,
    /// in one transaction.
    pub async fn record_login_failure(
        &self,
        instance: &str,
        keys: &[(LoginTally, &str)],
        at: i64,
    ) -> Result<(), CatalogError> {
        let context = "recording a failed login";
        let mut tx = self.begin_write().await?;
        for (kind, key) in keys {
            sqlx::query(
                "INSERT INTO login_failures (instance, kind, key, at) VALUES ($1, $2, $3, $4)",
            )
            .bind(instance)
            .bind(kind.as_str())
            .bind(*key)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(db(context))?;
        }
        tx.commit().await.map_err(db(context))
    }

    /// For each of `keys`, the times (oldest first) of the failures since `since` that
    /// instances other than `instance` recorded.
    pub async fn login_failures(
        &self,
        instance: &str,
        keys: &[(LoginTally, &str)],
        since: i64,
    ) -> Result<Vec<Vec<i64>>, CatalogError> {
        let context = "reading failed logins";
        let mut found = Vec::with_capacity(keys.len());
        for (kind, key) in keys {
            let rows = sqlx::query(
                "SELECT at FROM login_failures WHERE kind = $1 AND key = $2 AND at > $3 \
                 AND instance <> $4 ORDER BY at",
            )
            .bind(kind.as_str())
            .bind(*key)
            .bind(since)
            .bind(instance)
            .fetch_all(&self.pool)
            .await
            .map_err(db(context))?;
            found.push(
                rows.iter()
                    .map(|row| row.try_get("at"))
                    .collect::<Result<_, _>>()
                    .map_err(db(context))?,
            );
        }
        Ok(found)
    }

    /// Forgets every recorded failure against `keys` (a name or device whose owner just logged
    /// in), whichever instance recorded it.
    pub async fn clear_login_failures(
        &self,
        keys: &[(LoginTally, &str)],
    ) -> Result<(), CatalogError> {
        let context = "clearing failed logins";
        let mut tx = self.begin_write().await?;
        for (kind, key) in keys {
            sqlx::query("DELETE FROM login_failures WHERE kind = $1 AND key = $2")
                .bind(kind.as_str())
                .bind(*key)
                .execute(&mut *tx)
                .await
                .map_err(db(context))?;
        }
        tx.commit().await.map_err(db(context))
    }

    /// Deletes the failures recorded before `before` (they no longer count anywhere).
    pub async fn prune_login_failures(&self, before: i64) -> Result<u64, CatalogError> {
        let done = sqlx::query("DELETE FROM login_failures WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db("pruning failed logins"))?;
        Ok(done.rows_affected())
    }
}
