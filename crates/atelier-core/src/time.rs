//! atelier's one clock: timestamps are UTC unix milliseconds everywhere, shown to people as
//! UTC minutes.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time as UTC unix milliseconds, the unit of every atelier timestamp
/// (the catalogue's, the model store's): callers that store or compare them use this one clock.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A timestamp (UTC unix milliseconds) as `YYYY-MM-DD HH:MM`, in UTC.
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
    use super::*;

    #[test]
    fn utc_minutes_match_known_dates() {
        assert_eq!(utc_minutes(0), "1970-01-01 00:00");
        // 2000-02-29 12:34:56 UTC, a leap day (checked with `date -u -d @951827696`).
        assert_eq!(utc_minutes(951_827_696_000), "2000-02-29 12:34");
        // 2026-11-28 07:42:12 UTC.
        assert_eq!(utc_minutes(1_795_851_732_000), "2026-11-28 07:42");
        assert_eq!(utc_minutes(-1), "1969-12-31 23:59");
    }
}
