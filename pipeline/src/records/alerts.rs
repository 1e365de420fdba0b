//! Alert events as the sinks carry them: keyed by (rule, group), JSON as
//! `glassbox_operators::alerts::AlertEvent` serializes, timestamps rendered as RFC 3339.

use glassbox_operators::alerts::AlertEvent;

use super::Record;

impl Record for AlertEvent {
    fn key(&self) -> &str {
        &self.key
    }

    fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("alert events serialize")
    }
}

/// `ms` since the epoch as RFC 3339 UTC, e.g. `2026-11-28T10:25:00.000Z`.
pub fn rfc3339(ms: u64) -> String {
    let (days, rem) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    let (y, m, d) = crate::config::cost::civil_from_days(days);
    let (h, min, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1_000 % 60,
        rem % 1_000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_908_600_123), "2026-11-28T23:30:00.123Z");
    }
}
