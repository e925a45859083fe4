//! Users of the review web app and their login sessions.
//!
//! The catalogue stores what the web app hands it and never sees a secret in the clear: a
//! user's password arrives as a PHC hash string (argon2, computed by the web app), a session
//! as the hash of its token. A session's role is read from its user on every look-up, so a
//! role change or a removal applies to sessions that are already open.

use std::fmt;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Catalog;
use crate::error::{CatalogError, db};
use crate::sql::now_millis;

/// Longest accepted user name, in characters.
const MAX_NAME_CHARS: usize = 64;

/// What a user may do. Roles are ordered: each one may do everything the ones below it may
/// (`Viewer < Reviewer < Admin`), so a permission check reads `role >= Role::Reviewer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Looks at images, predictions and reports.
    Viewer,
    /// Also changes labels.
    Reviewer,
    /// Also manages users and starts training runs.
    Admin,
}

impl Role {
    /// The role as stored and shown: `viewer`, `reviewer` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }

    /// The role spelt as [`Role::as_str`] spells it, or `None`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "reviewer" => Some(Role::Reviewer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    fn from_db(value: &str) -> Result<Role, CatalogError> {
        Role::parse(value).ok_or_else(|| CatalogError::Corrupt {
            table: "users",
            column: "role",
            value: value.to_string(),
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user as stored. The password hash is never serialised, so a user can be sent to a page
/// as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    pub name: String,
    pub role: Role,
    /// PHC string of the password hash, as the web app wrote it.
    #[serde(skip)]
    pub password_hash: String,
    /// UTC unix milliseconds.
    pub created_at: i64,
}

/// A live session: who it belongs to, with the user's current role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub user: String,
    pub role: Role,
    /// The token forms must echo, against cross-site request forgery.
    pub csrf_token: String,
    /// When the session ends, in the unit the web app gave (UTC unix milliseconds).
    pub expires_at: i64,
}

/// A user name is 1 to 64 characters of `[A-Za-z0-9._@-]`: safe in URLs, logs and HTML
/// without escaping, and long enough for an e-mail address.
fn check_name(name: &str) -> Result<(), CatalogError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-');
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || !name.chars().all(allowed) {
        return Err(CatalogError::InvalidUser(name.to_string()));
    }
    Ok(())
}

impl Catalog {
    /// Adds a user. `name` is 1 to 64 characters of `[A-Za-z0-9._@-]`
    /// ([`CatalogError::InvalidUser`] otherwise); a taken name is
    /// [`CatalogError::UserExists`]. `password_hash` is stored as given (a PHC string).
    pub async fn add_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
    ) -> Result<(), CatalogError> {
        check_name(name)?;
        // ON CONFLICT instead of a look-up first: two admins adding the same name at once get one
        // success and one UserExists, never a database error.
        let added = sqlx::query(
            "INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(now_millis())
        .execute(&self.pool)
        .await
        .map_err(db("adding a user"))?;
        if added.rows_affected() == 0 {
            return Err(CatalogError::UserExists(name.to_string()));
        }
        Ok(())
    }

    /// One user, or `None` if the name is unknown.
    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>, CatalogError> {
        sqlx::query("SELECT name, role, password_hash, created_at FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a user"))?
            .as_ref()
            .map(user_record)
            .transpose()
    }

    /// Every user, ordered by name.
    pub async fn users(&self) -> Result<Vec<UserRecord>, CatalogError> {
        let mut users = sqlx::query("SELECT name, role, password_hash, created_at FROM users")
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing users"))?
            .iter()
            .map(user_record)
            .collect::<Result<Vec<_>, _>>()?;
        // Sorted here rather than by ORDER BY: PostgreSQL orders text by the database's collation,
        // SQLite by bytes, and the list should read the same on both.
        users.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(users)
    }

    /// Changes a user's role; open sessions get the new role at their next look-up. An
    /// unknown name is [`CatalogError::UnknownUser`].
    pub async fn set_user_role(&self, name: &str, role: Role) -> Result<(), CatalogError> {
        let updated = sqlx::query("UPDATE users SET role = $1 WHERE name = $2")
            .bind(role.as_str())
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db("changing a user's role"))?;
        if updated.rows_affected() == 0 {
            return Err(CatalogError::UnknownUser(name.to_string()));
        }
        Ok(())
    }

    /// Replaces a user's password hash and ends all of the user's sessions, in one transaction
    /// so that a session opened with the old password cannot outlive the change. An unknown
    /// name is [`CatalogError::UnknownUser`].
    pub async fn set_user_password(
        &self,
        name: &str,
        password_hash: &str,
    ) -> Result<(), CatalogError> {
        let context = "changing a user's password";
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
            .bind(password_hash)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db(context))?;
        if updated.rows_affected() == 0 {
            return Err(CatalogError::UnknownUser(name.to_string()));
        }
        sqlx::query("DELETE FROM sessions WHERE user_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db(context))?;
        tx.commit().await.map_err(db(context))
    }

    /// Removes a user with all of the user's sessions (label events keep the name as their
    /// actor). An unknown name is [`CatalogError::UnknownUser`].
    pub async fn remove_user(&self, name: &str) -> Result<(), CatalogError> {
        let context = "removing a user";
        let mut tx = self.begin_write().await?;
        // The foreign key cascades as well; deleting explicitly does not depend on SQLite's
        // foreign_keys setting of the connection.
        sqlx::query("DELETE FROM sessions WHERE user_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db(context))?;
        let removed = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db(context))?;
        if removed.rows_affected() == 0 {
            return Err(CatalogError::UnknownUser(name.to_string()));
        }
        tx.commit().await.map_err(db(context))
    }

    /// Stores a session of `user` under the hash of its token, valid until `expires_at` (UTC
    /// unix milliseconds, like `now` of [`Catalog::session`]). An unknown user is
    /// [`CatalogError::UnknownUser`].
    pub async fn create_session(
        &self,
        token_hash: &str,
        user: &str,
        csrf_token: &str,
        expires_at: i64,
    ) -> Result<(), CatalogError> {
        // Inserting from the users row makes "the user exists" and "the session is written" one
        // statement: a user removed at the same moment cannot be left with a session.
        let created = sqlx::query(
            "INSERT INTO sessions (token_hash, user_name, csrf_token, created_at, expires_at) \
             SELECT $1, name, $2, $3, $4 FROM users WHERE name = $5",
        )
        .bind(token_hash)
        .bind(csrf_token)
        .bind(now_millis())
        .bind(expires_at)
        .bind(user)
        .execute(&self.pool)
        .await
        .map_err(db("creating a session"))?;
        if created.rows_affected() == 0 {
            return Err(CatalogError::UnknownUser(user.to_string()));
        }
        Ok(())
    }

    /// The session stored under `token_hash` with its user's current role, or `None` when the
    /// hash is unknown or the session expired (`expires_at <= now`).
    pub async fn session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<SessionRecord>, CatalogError> {
        let context = "reading a session";
        let Some(row) = sqlx::query(
            "SELECT s.user_name, u.role, s.csrf_token, s.expires_at \
             FROM sessions s JOIN users u ON u.name = s.user_name \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db(context))?
        else {
            return Ok(None);
        };
        let get = db(context);
        let role: String = row.try_get("role").map_err(&get)?;
        Ok(Some(SessionRecord {
            user: row.try_get("user_name").map_err(&get)?,
            role: Role::from_db(&role)?,
            csrf_token: row.try_get("csrf_token").map_err(&get)?,
            expires_at: row.try_get("expires_at").map_err(&get)?,
        }))
    }

    /// Ends a session (logout); an unknown hash is not an error.
    pub async fn delete_session(&self, token_hash: &str) -> Result<(), CatalogError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(db("deleting a session"))?;
        Ok(())
    }

    /// Deletes every session that expired by `now` and returns how many there were. Expired
    /// sessions are already refused by [`Catalog::session`]; this only reclaims their rows.
    pub async fn delete_expired_sessions(&self, now: i64) -> Result<u64, CatalogError> {
        let deleted = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db("deleting expired sessions"))?;
        Ok(deleted.rows_affected())
    }
}

fn user_record(row: &AnyRow) -> Result<UserRecord, CatalogError> {
    let get = db("reading a user");
    let role: String = row.try_get("role").map_err(&get)?;
    Ok(UserRecord {
        name: row.try_get("name").map_err(&get)?,
        role: Role::from_db(&role)?,
        password_hash: row.try_get("password_hash").map_err(&get)?,
        created_at: row.try_get("created_at").map_err(&get)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_round_trip() {
        assert!(Role::Viewer < Role::Reviewer && Role::Reviewer < Role::Admin);
        for role in [Role::Viewer, Role::Reviewer, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(role.to_string(), role.as_str());
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), role);
        }
        assert_eq!(Role::parse("Admin"), None);
        assert_eq!(Role::parse(""), None);
    }

    #[test]
    fn user_names_are_checked() {
        for good in ["a", "ann.lee", "a_b-c@shop.example", &"x".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", " ", "ann lee", "a/b", "é", "<b>", &"x".repeat(65)] {
            assert!(
                matches!(check_name(bad), Err(CatalogError::InvalidUser(n)) if n == bad),
                "{bad}"
            );
        }
    }
}
