//! Attention as the user reads it on this machine: local clock times, the
//! line an attach announces, and the short state column of `abide ls`.

use crate::proto::attention::{duration, State, Summary};
use crate::proto::frame::SessionEntry;

/// `14:02` in the local time zone (the user's, not the server's).
pub fn local_hhmm(unix: u64) -> String {
    let t = unix as libc::time_t;
    // SAFETY: localtime_r writes one `tm` through a valid pointer and reads
    // one time_t; it is the thread-safe variant.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = !unsafe { libc::localtime_r(&t, &mut tm) }.is_null();
    if ok {
        format!("{:02}:{:02}", tm.tm_hour, tm.tm_min)
    } else {
        "?".into()
    }
}

/// "abide: while you were away: 2 notifications, last: '…' at 14:02".
pub fn announcement(s: &Summary) -> Option<String> {
    s.announcement(local_hhmm).map(|a| format!("abide: {a}"))
}

/// The `ls` state column: `running`, `bell`, `asks "…"`, `quiet 12m`, `exited 0`.
pub fn state_column(s: &Summary, last_output: Option<u64>, now: u64) -> String {
    match &s.state {
        State::Running => "running".into(),
        State::Bell => "bell".into(),
        State::Asks(text) => {
            let t: String = text.chars().take(40).collect();
            let more = if text.chars().count() > 40 {
                "\u{2026}"
            } else {
                ""
            };
            format!("asks \"{t}{more}\"")
        }
        State::Quiet => match last_output {
            Some(t) => format!("quiet {}", duration(now.saturating_sub(t))),
            None => "quiet".into(),
        },
        State::Exited(code) => format!("exited {code}"),
    }
}

/// The state's name in `ls --json` (`state`), without its text.
pub fn state_name(s: &State) -> &'static str {
    match s {
        State::Running => "running",
        State::Quiet => "quiet",
        State::Bell => "bell",
        State::Asks(_) => "asks",
        State::Exited(_) => "exited",
    }
}

/// The attention fields of an `ls --json` entry (merged into the others).
pub fn json_fields(e: &SessionEntry, now: u64) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let a = &e.attention;
    let mut m = serde_json::Map::new();
    m.insert("state".into(), json!(state_name(&a.state)));
    m.insert(
        "status".into(),
        json!(state_column(a, e.info.last_output, now)),
    );
    let asks = match &a.state {
        State::Asks(t) => Some(t.clone()),
        _ => None,
    };
    m.insert("asks".into(), json!(asks));
    let code = match a.state {
        State::Exited(c) => Some(c),
        _ => None,
    };
    m.insert("exit_code".into(), json!(code));
    m.insert("bells".into(), json!(a.bells));
    m.insert("notifications".into(), json!(a.notifications));
    m.insert(
        "last_notification".into(),
        json!(a
            .last_notification
            .as_ref()
            .map(|(t, at)| json!({"text": t, "at": at}))),
    );
    m.insert("title".into(), json!(a.title));
    m.insert("detached_since".into(), json!(e.detached_since));
    m.insert("expire_after".into(), json!(e.expire_after));
    m
}

/// Reads back what [`json_fields`] wrote (`abide ls HOST` gets JSON over ssh).
pub fn summary_from_json(v: &serde_json::Value) -> Summary {
    let state = match v["state"].as_str() {
        Some("bell") => State::Bell,
        Some("quiet") => State::Quiet,
        Some("asks") => State::Asks(v["asks"].as_str().unwrap_or_default().to_string()),
        Some("exited") => State::Exited(v["exit_code"].as_i64().unwrap_or(0) as i32),
        _ => State::Running,
    };
    Summary {
        state,
        bells: v["bells"].as_u64().unwrap_or(0) as u32,
        notifications: v["notifications"].as_u64().unwrap_or(0) as u32,
        last_notification: v["last_notification"]["text"].as_str().map(|t| {
            (
                t.to_string(),
                v["last_notification"]["at"].as_u64().unwrap_or(0),
            )
        }),
        title: v["title"].as_str().map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(state: State) -> Summary {
        Summary {
            state,
            bells: 0,
            notifications: 0,
            last_notification: None,
            title: None,
        }
    }

    #[test]
    fn columns() {
        assert_eq!(state_column(&summary(State::Running), None, 0), "running");
        assert_eq!(
            state_column(&summary(State::Quiet), Some(1000), 1000 + 12 * 60),
            "quiet 12m"
        );
        assert_eq!(
            state_column(&summary(State::Asks("May I?".into())), None, 0),
            "asks \"May I?\""
        );
        assert_eq!(
            state_column(&summary(State::Exited(0)), None, 0),
            "exited 0"
        );
        assert!(local_hhmm(0).contains(':'));
    }
}
