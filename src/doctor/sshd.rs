//! The server's ClientAliveInterval / ClientAliveCountMax: from `sshd -T` when
//! the remote user may run it, otherwise from the config files, and the exact
//! lines to change them (abide never edits root-owned files).

use super::cfgfile::{self, Kind};
use super::report::{Check, Status};
use super::timefmt::human;

const MAIN_CONFIG: &str = "/etc/ssh/sshd_config";
const DROP_IN_DIR: &str = "/etc/ssh/sshd_config.d/";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAlive {
    pub interval: u64,
    pub count: u64,
    /// Where the values come from, for the report.
    pub source: String,
    /// The file that sets the interval, if a file does: that is where to change it.
    pub interval_file: Option<String>,
    /// Settings inside Match blocks, which apply only to some connections.
    pub conditional: Vec<String>,
    /// Whether the main config includes the drop-in directory.
    pub has_drop_ins: bool,
}

/// Parses the relevant lines of `sshd -T` output (keywords in lower case).
pub fn from_sshd_t(text: &str) -> Option<ClientAlive> {
    let value = |key: &str| {
        text.lines()
            .filter_map(|l| l.trim().split_once(' '))
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
    };
    Some(ClientAlive {
        interval: value("clientaliveinterval")?,
        count: value("clientalivecountmax")?,
        source: "sshd -T".into(),
        interval_file: None,
        conditional: Vec::new(),
        has_drop_ins: false,
    })
}

/// sshd time values: `30`, `30s`, `5m`, `1h30m`.
pub fn parse_time(v: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut num = String::new();
    for c in v.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let mult = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total += num.parse::<u64>().ok()? * mult;
        num.clear();
    }
    if !num.is_empty() {
        total += num.parse::<u64>().ok()?;
    }
    Some(total)
}

struct Eval<'a> {
    files: &'a [(String, String)],
    interval: Option<(u64, String)>,
    count: Option<(u64, String)>,
    conditional: Vec<String>,
    read: Vec<String>,
}

impl Eval<'_> {
    /// First value wins, as in sshd; Include is expanded in place; lines after
    /// a `Match` (to the end of that file) apply only to some connections.
    fn file(&mut self, path: &str, depth: u32) {
        let Some((_, text)) = self.files.iter().find(|(p, _)| p == path) else {
            return;
        };
        if depth > 16 || self.read.iter().any(|r| r == path) {
            return;
        }
        self.read.push(path.to_string());
        let mut in_match = false;
        for line in text.lines() {
            match cfgfile::classify(line) {
                Kind::Match => in_match = true,
                Kind::Include(args) if !in_match => {
                    for arg in args {
                        let pattern = if arg.starts_with('/') {
                            arg
                        } else {
                            format!("/etc/ssh/{arg}")
                        };
                        let mut matching: Vec<String> = self
                            .files
                            .iter()
                            .map(|(p, _)| p.clone())
                            .filter(|p| cfgfile::wildcard(&pattern, p))
                            .collect();
                        matching.sort();
                        for m in matching {
                            self.file(&m, depth + 1);
                        }
                    }
                }
                Kind::Setting { key, value, .. } => {
                    let slot = match key.as_str() {
                        "clientaliveinterval" => &mut self.interval,
                        "clientalivecountmax" => &mut self.count,
                        _ => continue,
                    };
                    let Some(n) = parse_time(&value) else {
                        continue;
                    };
                    if in_match {
                        self.conditional.push(format!(
                            "a Match block in {path} sets {} {value}",
                            if key == "clientaliveinterval" {
                                "ClientAliveInterval"
                            } else {
                                "ClientAliveCountMax"
                            }
                        ));
                    } else if slot.is_none() {
                        *slot = Some((n, path.to_string()));
                    }
                }
                _ => {}
            }
        }
    }
}

/// Evaluates the config files the remote script sent (path, contents). `None`
/// when the main file was not readable.
pub fn from_files(files: &[(String, String)]) -> Option<ClientAlive> {
    let main = files.iter().find(|(p, _)| p == MAIN_CONFIG)?;
    let has_drop_ins = main.1.lines().any(|l| {
        matches!(cfgfile::classify(l), Kind::Include(a) if a.iter().any(|x| x.contains("sshd_config.d")))
    });
    let mut e = Eval {
        files,
        interval: None,
        count: None,
        conditional: Vec::new(),
        read: Vec::new(),
    };
    e.file(MAIN_CONFIG, 0);
    let source = match (&e.interval, &e.count) {
        (None, None) => format!("not set in {}; OpenSSH defaults", e.read.join(", ")),
        _ => {
            let mut from: Vec<&str> = [&e.interval, &e.count]
                .iter()
                .filter_map(|s| s.as_ref().map(|(_, p)| p.as_str()))
                .collect();
            from.dedup();
            from.join(", ")
        }
    };
    Some(ClientAlive {
        interval: e.interval.as_ref().map_or(0, |(n, _)| *n),
        count: e.count.as_ref().map_or(3, |(n, _)| *n),
        source,
        interval_file: e.interval.map(|(_, p)| p),
        conditional: e.conditional,
        has_drop_ins,
    })
}

pub fn check(ca: &ClientAlive) -> Check {
    let id = "server.client_alive";
    let values = format!(
        "ClientAliveInterval {}, ClientAliveCountMax {} ({})",
        ca.interval, ca.count, ca.source
    );
    let mut advice = String::new();
    let status = if ca.interval == 0 {
        advice.push_str("Optional: server keepalives also protect clients that send none.");
        Status::Info
    } else if ca.interval * ca.count.max(1) < super::client::MIN_DEAD_PEER_WINDOW {
        advice.push_str("Allow about a minute: see the sshd_config lines below.");
        Status::Problem
    } else {
        Status::Ok
    };
    let meaning = match status {
        Status::Info => "sshd sends no keepalives; idle sessions rely on the client's.".to_string(),
        Status::Problem => format!(
            "sshd drops a client after {} without an answer, so a short outage ends the session.",
            human(ca.interval * ca.count.max(1))
        ),
        Status::Ok => format!(
            "sshd checks every {} and gives up after {} of silence.",
            human(ca.interval),
            human(ca.interval * ca.count.max(1))
        ),
    };
    if !ca.conditional.is_empty() {
        if !advice.is_empty() {
            advice.push(' ');
        }
        advice.push_str(&format!("Note: {}.", ca.conditional.join("; ")));
    }
    Check::new(id, status, format!("sshd: {values}: {meaning}"), advice)
}

/// The lines to paste on the server and how to apply them. `unit` is the
/// systemd unit name the remote reported (`ssh` on Debian/Ubuntu, `sshd`
/// elsewhere), if any.
pub fn server_lines(ca: Option<&ClientAlive>, unit: Option<&str>) -> String {
    let file = match ca {
        Some(ClientAlive {
            interval_file: Some(f),
            ..
        }) => format!("{f} (replace the ClientAlive lines there)"),
        Some(ClientAlive {
            has_drop_ins: true, ..
        }) => format!("{DROP_IN_DIR}50-keepalive.conf (read before {MAIN_CONFIG})"),
        _ => format!("{MAIN_CONFIG}, above any Match block"),
    };
    let reload = match unit {
        Some(u) => format!("sudo sshd -t && sudo systemctl reload {u}"),
        None => "sudo sshd -t && sudo systemctl reload ssh   # the unit is \"sshd\" on Fedora, RHEL, Arch".to_string(),
    };
    format!(
        "As root on the server, in {file}:\n\n    ClientAliveInterval {}\n    ClientAliveCountMax {}\n\nthen check and reload (existing sessions are kept):\n\n    {reload}\n",
        super::client::RECOMMENDED_INTERVAL,
        super::client::RECOMMENDED_COUNT_MAX
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn sshd_t_values() {
        let ca = from_sshd_t("port 22\nclientaliveinterval 30\nclientalivecountmax 2\n").unwrap();
        assert_eq!((ca.interval, ca.count), (30, 2));
        assert!(from_sshd_t("sshd: no hostkeys available -- exiting.").is_none());
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("30"), Some(30));
        assert_eq!(parse_time("5m"), Some(300));
        assert_eq!(parse_time("1h30m"), Some(5400));
        assert_eq!(parse_time("x"), None);
    }

    #[test]
    fn drop_ins_come_first_and_match_is_conditional() {
        let f = files(&[
            (
                "/etc/ssh/sshd_config",
                "Include /etc/ssh/sshd_config.d/*.conf\nClientAliveInterval 120\nClientAliveCountMax 3\nMatch User backup\n  ClientAliveInterval 0\n",
            ),
            ("/etc/ssh/sshd_config.d/10-a.conf", "ClientAliveInterval 10\n"),
            ("/etc/ssh/sshd_config.d/20-b.conf", "ClientAliveInterval 20\nClientAliveCountMax 1\n"),
        ]);
        let ca = from_files(&f).unwrap();
        assert_eq!((ca.interval, ca.count), (10, 1));
        assert_eq!(
            ca.interval_file.as_deref(),
            Some("/etc/ssh/sshd_config.d/10-a.conf")
        );
        assert_eq!(ca.conditional.len(), 1);
        assert!(ca.has_drop_ins);
        let c = check(&ca);
        assert_eq!(c.status, Status::Problem);
        assert!(c.summary.contains("after 10 s"), "{}", c.summary);
        assert!(c.advice.contains("Match block"), "{}", c.advice);
        let lines = server_lines(Some(&ca), Some("ssh"));
        assert!(
            lines.contains("/etc/ssh/sshd_config.d/10-a.conf"),
            "{lines}"
        );
        assert!(lines.contains("    ClientAliveInterval 15\n    ClientAliveCountMax 4\n"));
        assert!(lines.contains("sudo sshd -t && sudo systemctl reload ssh"));
    }

    #[test]
    fn defaults_when_unset() {
        let ca = from_files(&files(&[("/etc/ssh/sshd_config", "Port 22\n")])).unwrap();
        assert_eq!((ca.interval, ca.count), (0, 3));
        assert!(ca.source.contains("OpenSSH defaults"));
        assert_eq!(check(&ca).status, Status::Info);
        assert!(server_lines(Some(&ca), None).contains("above any Match block"));
        assert!(from_files(&[]).is_none());
    }
}
