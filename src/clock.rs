//! The wall clock, read in one place: Unix time as the exposition shows it (seconds, fractional)
//! and as Tencent's API 3.0 signs it (whole seconds). Intervals and deadlines use tokio's clock
//! instead, so tests can pause it; only the values a person or a server compares with the calendar
//! come from here.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, fractional (the unit of the `*_timestamp_seconds` gauges and the
/// status page's ages). A clock set before 1970 reads 0.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Whole seconds since the Unix epoch: API 3.0's `X-TC-Timestamp`, and the unit of the expiry
/// times STS and the metadata service answer. A clock set before 1970 reads 0.
pub fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{unix_now, unix_seconds};

    #[test]
    fn both_readings_agree_to_the_second_and_are_after_2020() {
        let (secs, now) = (unix_seconds(), unix_now());
        assert!(secs > 1_577_836_800, "{secs}");
        assert!((now - secs as f64).abs() < 2.0, "{now} vs {secs}");
    }
}
