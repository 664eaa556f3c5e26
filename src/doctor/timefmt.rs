//! Small time helpers: human durations for messages and timestamps for backup
//! names (UTC, computed here to avoid a date crate for two lines of output).

use std::time::{SystemTime, UNIX_EPOCH};

/// "45 s", "350 s", "5 min", "1 h 30 min", "2 h": minutes only when exact,
/// so documented values like AWS's 350 s read as documented.
pub fn human(secs: u64) -> String {
    if secs < 120 || (secs < 3600 && secs % 60 != 0) {
        return format!("{secs} s");
    }
    let mins = secs / 60;
    if mins < 60 {
        return format!("{mins} min");
    }
    let (h, m) = (mins / 60, mins % 60);
    if m == 0 {
        format!("{h} h")
    } else {
        format!("{h} h {m} min")
    }
}

/// (year, month, day, hour, minute, second) in UTC.
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// `20250601-101500`: sorts by time, safe in file names.
pub fn stamp(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// `2025-06-01`.
pub fn date(t: SystemTime) -> String {
    let (y, mo, d, ..) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn human_durations() {
        assert_eq!(human(45), "45 s");
        assert_eq!(human(300), "5 min");
        assert_eq!(human(350), "350 s");
        assert_eq!(human(7200), "2 h");
        assert_eq!(human(5400), "1 h 30 min");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(stamp(UNIX_EPOCH), "19700101-000000");
        // 2024-02-29 12:34:56 UTC, a leap day.
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(stamp(t), "20240229-123456");
        assert_eq!(date(t), "2024-02-29");
    }
}
