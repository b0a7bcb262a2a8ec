//! Printing results the way the AWS CLI prints them: pretty JSON under the command that would
//! produce it.

use std::io::Write;

use serde::Serialize;
use serde_json::Value;
use vigil_core::model::Timestamp;

/// Writes `$ command` and then `value` as indented JSON.
pub fn print_command<T: Serialize>(
    out: &mut dyn Write,
    command: &str,
    value: &T,
) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(value)?;
    writeln!(out, "\n$ {command}\n{json}")?;
    Ok(())
}

/// Writes `$ command` for a command whose output is empty.
pub fn print_empty_command(out: &mut dyn Write, command: &str) -> anyhow::Result<()> {
    writeln!(out, "\n$ {command}\n(no output)")?;
    Ok(())
}

/// Rewrites the named epoch-second fields of every object in `value` as ISO-8601 strings, the
/// way the AWS CLI shows dates in training summaries.
pub fn iso_dates(mut value: Value, fields: &[&str]) -> Value {
    rewrite_dates(&mut value, fields);
    value
}

fn rewrite_dates(value: &mut Value, fields: &[&str]) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if fields.contains(&key.as_str()) {
                    if let Some(seconds) = field.as_f64() {
                        *field = Value::String(iso8601((seconds * 1000.0).round() as Timestamp));
                    }
                } else {
                    rewrite_dates(field, fields);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rewrite_dates(item, fields)),
        _ => {}
    }
}

/// Formats milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmm+00:00`.
pub fn iso8601(ms: Timestamp) -> String {
    let days = ms.div_euclid(86_400_000);
    let ms_of_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (hours, minutes) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
    let (seconds, millis) = (ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hours:02}:{minutes:02}:{seconds:02}.{millis:03}+00:00")
}

/// Converts days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff][Z|+00:00]` or `YYYY-MM-DD HH:MM:SS` as UTC milliseconds.
pub fn parse_datetime(text: &str) -> Option<Timestamp> {
    let text = text.trim().trim_end_matches('Z').trim_end_matches("+00:00");
    let (date, time) = text.split_once(['T', ' ']).unwrap_or((text, "00:00:00"));
    let mut date_parts = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (
        date_parts.next()??,
        date_parts.next()??,
        date_parts.next()??,
    );
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut time_parts = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hours, minutes) = (time_parts.next()??, time_parts.next()??);
    let seconds = time_parts.next().unwrap_or(Some(0))?;
    let valid = (1..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && (0..24).contains(&hours)
        && (0..60).contains(&minutes)
        && (0..61).contains(&seconds)
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if !valid || date_parts.next().is_some() || time_parts.next().is_some() {
        return None;
    }
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hours) * 60 + minutes) * 60_000 + seconds * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_index = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_the_same_instant() {
        let ms = 1_793_491_200_123;
        assert_eq!(iso8601(ms), "2026-11-01T00:00:00.123+00:00");
        assert_eq!(parse_datetime("2026-11-01T00:00:00.123Z"), Some(ms));
        assert_eq!(parse_datetime("2026-11-01 00:00:00"), Some(ms - 123));
    }

    #[test]
    fn handles_leap_days_and_old_dates() {
        let leap = parse_datetime("2024-02-29T12:00:00").unwrap();
        assert_eq!(iso8601(leap), "2024-02-29T12:00:00.000+00:00");
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(iso8601(-86_400_000), "1969-12-31T00:00:00.000+00:00");
    }

    #[test]
    fn rejects_malformed_datetimes() {
        assert_eq!(parse_datetime("2026-13-01 00:00:00"), None);
        assert_eq!(parse_datetime("yesterday"), None);
        assert_eq!(parse_datetime("2026-11-01 25:00:00"), None);
        assert_eq!(parse_datetime("2023-02-29 00:00:00"), None);
        assert_eq!(parse_datetime("2023-04-31 00:00:00"), None);
        assert_eq!(parse_datetime("2023-01-01 -1:00:00"), None);
        assert_eq!(parse_datetime("290000000-01-01 00:00:00"), None);
    }

    #[test]
    fn rewrites_only_named_date_fields() {
        let value = serde_json::json!({"summaries": [{"lastModelRefreshDate": 0.0, "other": 1.0}]});
        let rewritten = iso_dates(value, &["lastModelRefreshDate"]);
        assert_eq!(
            rewritten["summaries"][0]["lastModelRefreshDate"],
            "1970-01-01T00:00:00.000+00:00"
        );
        assert_eq!(rewritten["summaries"][0]["other"], 1.0);
    }
}
