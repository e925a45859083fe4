//! Small helpers for writing SQL that both SQLite and PostgreSQL accept through sqlx's `Any`
//! driver: placeholders each engine binds efficiently, and multi-row statements that stay under
//! both engines' bound-parameter limits. Fixed statements use `$N`, which both accept.

pub use atelier_core::{now_millis, utc_minutes};

use sqlx::AnyConnection;
use sqlx::AssertSqlSafe;
use sqlx::any::{Any, AnyArguments, AnyRow};
use sqlx::query::Query;

use crate::error::CatalogError;
use crate::model::{Backend, Split, Status};

pub(crate) type AnyQuery<'q> = Query<'q, Any, AnyArguments>;

/// How generated statements spell their bound parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamStyle {
    /// `?`, bound by position. With numbered names, sqlx-sqlite asks SQLite for every
    /// parameter's name, which SQLite finds by a linear scan: quadratic in the statement size
    /// (measured: half of a 100 000-row import at 8 000 values per statement).
    Positional,
    /// `$1, $2, ...`: the only form PostgreSQL accepts.
    Numbered,
}

impl ParamStyle {
    pub fn for_backend(backend: Backend) -> ParamStyle {
        match backend {
            Backend::Sqlite => ParamStyle::Positional,
            Backend::Postgres => ParamStyle::Numbered,
        }
    }
}

/// Bound values per statement. SQLite allows 32 766 and PostgreSQL 65 535; staying well below
/// keeps statements small enough to prepare quickly while amortising round trips.
pub(crate) const MAX_PARAMS: usize = 8_000;

/// `$first, $first+1, ..., $first+count-1`, or `?, ?, ...` in the positional style (where the
/// whole statement must be positional, bound in order).
pub(crate) fn placeholders(style: ParamStyle, first: usize, count: usize) -> String {
    let mut out = String::with_capacity(count * 6);
    for n in first..first + count {
        if n > first {
            out.push_str(", ");
        }
        match style {
            ParamStyle::Positional => out.push('?'),
            ParamStyle::Numbered => {
                out.push('$');
                out.push_str(&n.to_string());
            }
        }
    }
    out
}

/// `($first, ...), (...), ...` for `rows` tuples of `columns` values each.
pub(crate) fn value_tuples(style: ParamStyle, first: usize, rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 6);
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        out.push_str(&placeholders(style, first + row * columns, columns));
        out.push(')');
    }
    out
}

/// Wraps SQL text that this crate assembled from constant fragments and placeholders only
/// (never from user input), which sqlx asks us to vouch for.
pub(crate) fn assembled(sql: String) -> AnyQuery<'static> {
    sqlx::query(AssertSqlSafe(sql))
}

/// Fetches the rows of `select` (which must end in `IN (`) for every key in `keys`, split into
/// statements of at most [`MAX_PARAMS`] keys, e.g. `SELECT .. FROM labels WHERE image_id IN (`.
/// `tail` follows the closing parenthesis (an `ORDER BY`, or empty).
pub(crate) async fn select_where_in<K: AsRef<str>>(
    conn: &mut AnyConnection,
    style: ParamStyle,
    select: &str,
    tail: &str,
    keys: &[K],
) -> Result<Vec<AnyRow>, sqlx::Error> {
    let mut rows = Vec::new();
    for chunk in keys.chunks(MAX_PARAMS) {
        let sql = format!("{select}{}){tail}", placeholders(style, 1, chunk.len()));
        let mut query = assembled(sql);
        for key in chunk {
            query = query.bind(key.as_ref());
        }
        rows.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

/// Runs `{head} VALUES (..), (..) {tail}` for all `rows`, split into statements of at most
/// [`MAX_PARAMS`] values, and returns the number of rows they wrote. `bind` binds exactly
/// `columns` values of one row.
pub(crate) async fn insert_values<T>(
    conn: &mut AnyConnection,
    style: ParamStyle,
    head: &str,
    columns: usize,
    tail: &str,
    rows: &[T],
    bind: impl for<'q> Fn(AnyQuery<'q>, &'q T) -> AnyQuery<'q>,
) -> Result<u64, sqlx::Error> {
    let per_statement = (MAX_PARAMS / columns).max(1);
    let mut written = 0;
    for batch in rows.chunks(per_statement) {
        let sql = format!(
            "{head} VALUES {} {tail}",
            value_tuples(style, 1, batch.len(), columns)
        );
        let mut query = assembled(sql);
        for row in batch {
            query = bind(query, row);
        }
        written += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(written)
}

/// Parses JSON text stored in `table.column`; text that is no such JSON is corruption.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    column: &'static str,
    text: &str,
) -> Result<T, CatalogError> {
    serde_json::from_str(text).map_err(|_| CatalogError::Corrupt {
        table,
        column,
        value: text.chars().take(200).collect(),
    })
}

/// An image status as stored in the `images` table.
pub(crate) fn status_from_db(value: &str) -> Result<Status, CatalogError> {
    match value {
        "active" => Ok(Status::Active),
        "quarantined" => Ok(Status::Quarantined),
        "removed" => Ok(Status::Removed),
        other => Err(CatalogError::Corrupt {
            table: "images",
            column: "status",
            value: other.to_string(),
        }),
    }
}

/// A split as stored in the `images` table.
pub(crate) fn split_from_db(value: &str) -> Result<Split, CatalogError> {
    value.parse().map_err(|_| CatalogError::Corrupt {
        table: "images",
        column: "split",
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_from_first() {
        assert_eq!(placeholders(ParamStyle::Numbered, 3, 3), "$3, $4, $5");
        assert_eq!(placeholders(ParamStyle::Numbered, 1, 0), "");
        assert_eq!(placeholders(ParamStyle::Positional, 3, 3), "?, ?, ?");
    }

    #[test]
    fn value_tuples_continue_numbering_across_rows() {
        assert_eq!(
            value_tuples(ParamStyle::Numbered, 2, 2, 2),
            "($2, $3), ($4, $5)"
        );
        assert_eq!(
            value_tuples(ParamStyle::Positional, 2, 2, 2),
            "(?, ?), (?, ?)"
        );
    }
}
