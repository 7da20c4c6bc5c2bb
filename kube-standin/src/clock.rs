//! Wall-clock timestamps in the API's RFC 3339 form, and ages as kubectl prints them.
//!
//! Kubernetes stamps objects with second-precision UTC times (`creationTimestamp`,
//! managed-field times, condition times) and prints ages in `kubectl get` tables in a
//! compact form ("42s", "5m10s", "3h"). Both live here so no other module formats time.

use std::time::{Duration, SystemTime};

/// The current time as the API writes it: `2006-01-02T15:04:05Z`.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// The age of an object stamped `timestamp`, as the `AGE` column shows it; `<unknown>` when
/// the timestamp does not parse (the real printer shows the same).
pub(crate) fn age(timestamp: &str) -> String {
    let Ok(then) = humantime::parse_rfc3339(timestamp) else {
        return "<unknown>".to_owned();
    };
    let elapsed = SystemTime::now()
        .duration_since(then)
        .unwrap_or(Duration::ZERO);
    human_duration(elapsed)
}

/// Follows `k8s.io/apimachinery/pkg/util/duration.HumanDuration` closely enough for tables.
fn human_duration(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    let minutes = seconds / 60;
    let hours = minutes / 60;
    let days = hours / 24;
    match () {
        () if seconds < 120 => format!("{seconds}s"),
        () if minutes < 10 && !seconds.is_multiple_of(60) => format!("{minutes}m{}s", seconds % 60),
        () if minutes < 180 => format!("{minutes}m"),
        () if hours < 8 && !minutes.is_multiple_of(60) => format!("{hours}h{}m", minutes % 60),
        () if hours < 48 => format!("{hours}h"),
        () if hours < 24 * 8 && !hours.is_multiple_of(24) => format!("{days}d{}h", hours % 24),
        () => format!("{days}d"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_kubectl() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
        ];
        for (seconds, want) in cases {
            assert_eq!(
                human_duration(Duration::from_secs(seconds)),
                want,
                "{seconds}s"
            );
        }
    }

    #[test]
    fn fresh_timestamps_are_seconds_old() {
        assert!(age(&now_rfc3339()).ends_with('s'));
        assert_eq!(age("yesterday"), "<unknown>");
    }
}
