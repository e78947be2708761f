//! Event-time helpers: parsing the contract's time forms and naming lake partitions.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::event::Micros;

/// Microseconds in one millisecond.
pub const MICROS_PER_MILLI: i64 = 1_000;
/// Microseconds in one hour, the lake's partition width.
pub const MICROS_PER_HOUR: i64 = 3_600 * 1_000_000;

/// Parses an RFC 3339 time with offset (`2026-11-23T18:00:00.120Z`, `...+01:00`).
pub fn parse_rfc3339(text: &str) -> Option<Micros> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.timestamp_micros())
}

/// RFC 3339 text of a time, for messages and logs.
pub fn format_micros(time: Micros) -> String {
    DateTime::<Utc>::from_timestamp_micros(time)
        .map(|time| time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| format!("{time} µs"))
}

/// The hour an event time falls in, counted from the epoch; the unit of lake partitioning.
pub fn hour_of(time: Micros) -> i64 {
    time.div_euclid(MICROS_PER_HOUR)
}

/// The Hive partition path of an hour: `date=YYYY-MM-DD/hour=HH`.
pub fn partition_path(hour: i64) -> String {
    let start = hour.saturating_mul(MICROS_PER_HOUR);
    match DateTime::<Utc>::from_timestamp_micros(start) {
        Some(time) => time.format("date=%Y-%m-%d/hour=%H").to_string(),
        // Unreachable for accepted events (their time is bounded); kept total for rejects.
        None => "date=unknown/hour=00".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_with_fraction_and_offset() {
        assert_eq!(
            parse_rfc3339("2026-11-23T18:00:00.120Z"),
            Some(1_795_456_800_120_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T19:00:00+01:00"),
            Some(1_795_456_800_000_000)
        );
        assert_eq!(parse_rfc3339("2026-11-23T18:00:00"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn names_partitions_by_utc_hour() {
        let time = parse_rfc3339("2026-11-23T18:59:59.999Z").unwrap();
        assert_eq!(partition_path(hour_of(time)), "date=2026-11-23/hour=18");
        assert_eq!(partition_path(hour_of(0)), "date=1970-01-01/hour=00");
    }
}
