//! Small helpers for writing SQL that both SQLite and PostgreSQL accept through sqlx's `Any`
//! driver: placeholders each engine binds efficiently, and multi-row statements that stay under
//! both engines' bound-parameter limits. Fixed statements use `$N`, which both accept.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::AnyConnection;
use sqlx::AssertSqlSafe;
use sqlx::any::{Any, AnyArguments, AnyRow};
use sqlx::query::Query;

use crate::error::CatalogError;
use crate::model::Backend;

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
/// [`MAX_PARAMS`] values. `bind` binds exactly `columns` values of one row.
pub(crate) async fn insert_values<T>(
    conn: &mut AnyConnection,
    style: ParamStyle,
    head: &str,
    columns: usize,
    tail: &str,
    rows: &[T],
    bind: impl for<'q> Fn(AnyQuery<'q>, &'q T) -> AnyQuery<'q>,
) -> Result<(), sqlx::Error> {
    let per_statement = (MAX_PARAMS / columns).max(1);
    for batch in rows.chunks(per_statement) {
        let sql = format!(
            "{head} VALUES {} {tail}",
            value_tuples(style, 1, batch.len(), columns)
        );
        let mut query = assembled(sql);
        for row in batch {
            query = bind(query, row);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
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

/// The current time as UTC unix milliseconds, the catalogue's timestamp unit (callers that
/// store or compare catalogue timestamps use this one clock).
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A catalogue timestamp (UTC unix milliseconds) as `YYYY-MM-DD HH:MM`, in UTC.
pub fn utc_minutes(millis: i64) -> String {
    let seconds = millis.div_euclid(1000);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_minutes_match_known_dates() {
        use super::utc_minutes;
        assert_eq!(utc_minutes(0), "1970-01-01 00:00");
        // 2000-02-29 12:34:56 UTC, a leap day (checked with `date -u -d @951827696`).
        assert_eq!(utc_minutes(951_827_696_000), "2000-02-29 12:34");
        // 2026-11-28 07:42:12 UTC.
        assert_eq!(utc_minutes(1_795_851_732_000), "2026-11-28 07:42");
        assert_eq!(utc_minutes(-1), "1969-12-31 23:59");
    }

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
