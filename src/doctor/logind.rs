//! systemd-logind on the server: with `KillUserProcesses=yes`, logging out
//! kills every process the user started, which ends every persistent session
//! (abide's daemon, tmux, screen) no matter how good the network is.

use super::report::{Check, Status};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Logind {
    pub user: Option<String>,
    pub systemd: bool,
    pub kill: Option<bool>,
    /// Where `kill` comes from: the running logind, or its config files.
    pub kill_source: &'static str,
    pub exclude: Vec<String>,
    pub linger: Option<bool>,
}

/// Parses the `logind` section of the remote script's output.
pub fn parse(section: &str) -> Logind {
    let mut l = Logind::default();
    let mut conf_kill = None;
    let mut conf_exclude = None;
    for line in section.lines() {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        match tag {
            "user" => l.user = Some(rest.to_string()),
            "systemd" => l.systemd = rest == "yes",
            // busctl: `b true`
            "kill" => {
                l.kill = rest.strip_prefix("b ").map(|v| v.trim() == "true");
                l.kill_source = "running systemd-logind";
            }
            // busctl: `as 2 "root" "alice"`
            "exclude" => {
                l.exclude = rest
                    .split_whitespace()
                    .skip(2)
                    .map(|s| s.trim_matches('"').to_string())
                    .collect();
            }
            "linger" => l.linger = rest.strip_prefix("Linger=").map(|v| v == "yes"),
            "linger-file" => l.linger = l.linger.or(Some(true)),
            // logind.conf lines; later files override earlier ones.
            "conf" => {
                if let Some((k, v)) = rest.split_once('=') {
                    match k.trim() {
                        "KillUserProcesses" => conf_kill = Some(is_yes(v)),
                        "KillExcludeUsers" => {
                            conf_exclude = Some(v.split_whitespace().map(str::to_string).collect())
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if l.kill.is_none() {
        if let Some(k) = conf_kill {
            l.kill = Some(k);
            l.kill_source = "logind.conf";
            if let Some(e) = conf_exclude {
                l.exclude = e;
            }
        }
    }
    l
}

fn is_yes(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "yes" | "true" | "1" | "on"
    )
}

pub fn checks(l: &Logind) -> Vec<Check> {
    let user = l.user.as_deref().unwrap_or("$USER");
    if !l.systemd {
        return vec![Check::new(
            "server.logind",
            Status::Info,
            "No systemd-logind: nothing kills your processes at logout.",
            "",
        )];
    }
    let mut out = Vec::new();
    out.push(match l.kill {
        Some(true) if l.exclude.iter().any(|u| u == user) => Check::new(
            "server.logind",
            Status::Ok,
            format!("systemd-logind KillUserProcesses=yes, but {user} is in KillExcludeUsers: sessions survive logout."),
            "",
        ),
        Some(true) => Check::new(
            "server.logind",
            Status::Problem,
            format!(
                "systemd-logind KillUserProcesses=yes ({}): logging out kills everything you started, abide's sessions, tmux and screen included.",
                l.kill_source
            ),
            format!(
                "As root: KillUserProcesses=no (or KillExcludeUsers={user}) in /etc/systemd/logind.conf, then `sudo systemctl restart systemd-logind`."
            ),
        ),
        Some(false) => Check::new(
            "server.logind",
            Status::Ok,
            format!("systemd-logind KillUserProcesses=no ({}): processes survive logout.", l.kill_source),
            "",
        ),
        None => Check::new(
            "server.logind",
            Status::Info,
            "systemd-logind's KillUserProcesses could not be read (no busctl, not set in logind.conf).",
            "Most distributions build it as \"no\"; `loginctl show-session` on the server shows the truth.",
        ),
    });
    out.push(match l.linger {
        Some(true) => Check::new(
            "server.linger",
            Status::Info,
            format!("Lingering is on for {user}: the user's systemd services run without a login."),
            "",
        ),
        Some(false) => Check::new(
            "server.linger",
            Status::Info,
            format!("Lingering is off for {user}: the user's systemd manager stops at the last logout."),
            format!("Only matters for sessions started as user services: `loginctl enable-linger {user}`."),
        ),
        None => Check::new(
            "server.linger",
            Status::Info,
            "Lingering could not be read (no loginctl).",
            "",
        ),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_logind_that_kills() {
        let l = parse(
            "user alice\nsystemd yes\nkill b true\nexclude as 1 \"root\"\nlinger Linger=no\n",
        );
        assert_eq!(l.kill, Some(true));
        assert_eq!(l.exclude, ["root"]);
        let c = checks(&l);
        assert_eq!(c[0].status, Status::Problem);
        assert!(c[0].advice.contains("KillExcludeUsers=alice"));
        assert_eq!(c[1].status, Status::Info);
    }

    #[test]
    fn excluded_user_is_fine() {
        let l = parse("user alice\nsystemd yes\nkill b true\nexclude as 2 \"root\" \"alice\"\n");
        assert_eq!(checks(&l)[0].status, Status::Ok);
    }

    #[test]
    fn config_files_when_busctl_is_missing_last_wins() {
        let l =
            parse("user bob\nsystemd yes\nconf KillUserProcesses=no\nconf KillUserProcesses=yes\n");
        assert_eq!(l.kill, Some(true));
        assert_eq!(l.kill_source, "logind.conf");
        let l = parse("user bob\nsystemd yes\n");
        assert_eq!(l.kill, None);
        assert_eq!(checks(&l)[0].status, Status::Info);
    }

    #[test]
    fn no_systemd() {
        let c = checks(&parse("user bob\nsystemd no\n"));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].status, Status::Info);
    }
}
