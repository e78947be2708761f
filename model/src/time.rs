//! Time helpers: parsing the contract's time forms, formatting times for people and JSON,
//! the hour a time falls in (the lake's partitions are named in [`crate::lake`]), and the
//! wall clock.

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

/// RFC 3339 text of a time in UTC (`Z`), with 0, 3 or 6 fraction digits as the time needs:
/// the form the API's query output gives timestamps, so an alert's `time` reads the same
/// in every JSON authtrail writes.
pub fn format_micros(time: Micros) -> String {
    DateTime::<Utc>::from_timestamp_micros(time)
        .map(|time| time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| format!("{time} µs"))
}

/// The hour an event time falls in, counted from the epoch; the unit of lake partitioning.
pub fn hour_of(time: Micros) -> i64 {
    time.div_euclid(MICROS_PER_HOUR)
}

/// Microseconds since the Unix epoch by the wall clock (0 if the clock is before 1970):
/// when a manifest record, an outbox entry or a maintenance run happened.
pub fn now_micros() -> Micros {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as Micros)
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
    fn formats_with_as_many_fraction_digits_as_needed() {
        assert_eq!(format_micros(1_795_456_800_000_000), "2026-11-23T18:00:00Z");
        assert_eq!(
            format_micros(1_795_456_800_120_000),
            "2026-11-23T18:00:00.120Z"
        );
        assert_eq!(
            format_micros(1_795_456_800_000_007),
            "2026-11-23T18:00:00.000007Z"
        );
    }
}
