//! What the effective client settings mean for a session that sits idle behind
//! NATs and stateful firewalls, as checklist entries.

use super::report::{Check, Status};
use super::sshconfig::Effective;
use super::timefmt::human;

/// The keepalive settings `--fix` writes.
///
/// 15 s: a keepalive every 15 s keeps a flow alive through any NAT or firewall
/// that forgets idle flows after more than 15 s, which covers the aggressive
/// ones (30–60 s on some mobile and corporate networks) with margin; RFC 5382
/// asks NATs for two hours, but many use minutes. The cost is one small
/// encrypted packet each way every 15 s.
pub const RECOMMENDED_INTERVAL: u64 = 15;
/// 4: ssh disconnects after about 4 × 15 = 60 s without any answer. Long enough
/// to ride out a Wi-Fi hand-over or a short outage, short enough that a dead
/// connection does not freeze the terminal for minutes. (ssh's default 3 would
/// give 45 s.)
pub const RECOMMENDED_COUNT_MAX: u64 = 4;

/// An interval above this misses NATs that forget flows after a minute, the
/// shortest timeout commonly met in practice.
pub const MAX_GOOD_INTERVAL: u64 = 60;
/// Giving up after less silence than this turns short outages into lost sessions.
pub const MIN_DEAD_PEER_WINDOW: u64 = 30;
/// Beyond this, a dead connection hangs the terminal for a long time.
const LONG_DEAD_PEER_WINDOW: u64 = 600;

/// Linux's default tcp_keepalive_time, used when /proc cannot be read.
pub const DEFAULT_KERNEL_KEEPALIVE: u64 = 7200;

/// Idle timeouts met in practice, shortest first, for concrete advice. The
/// cloud values are the providers' documented defaults.
const KNOWN_TIMEOUTS: &[(u64, &str)] = &[
    (60, "some mobile and corporate networks"),
    (240, "Azure load balancers"),
    (350, "AWS NAT gateways"),
    (1200, "Google Cloud NAT"),
];

/// The local kernel's TCP keepalive idle time (what `TCPKeepAlive yes` means).
pub fn kernel_keepalive_secs() -> u64 {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_keepalive_time")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_KERNEL_KEEPALIVE)
}

/// Whether the interval passes the check (the same rule `--fix` uses).
pub fn interval_ok(interval: u64) -> bool {
    (1..=MAX_GOOD_INTERVAL).contains(&interval)
}

/// Whether interval × count leaves enough room for short outages.
pub fn count_ok(interval: u64, count: u64) -> bool {
    interval * count.max(1) >= MIN_DEAD_PEER_WINDOW
}

/// `fix_hint`: the command that would fix a problem, e.g. `abide doctor HOST --fix`.
pub fn checks(eff: &Effective, kernel_keepalive: u64, fix_hint: &str) -> Vec<Check> {
    let interval = eff.number("serveraliveinterval").unwrap_or(0);
    let count = eff.number("serveralivecountmax").unwrap_or(3);
    let tcp_keepalive = eff.get("tcpkeepalive") != Some("no");
    vec![
        interval_check(interval, tcp_keepalive, kernel_keepalive, fix_hint),
        count_check(interval, count, fix_hint),
        tcp_keepalive_check(tcp_keepalive, kernel_keepalive, interval),
        connect_timeout_check(eff.get("connecttimeout").unwrap_or("none")),
        control_master_check(
            eff.get("controlmaster").unwrap_or("false"),
            eff.get("controlpersist").unwrap_or("no"),
            interval,
        ),
    ]
}

fn dies_behind(silence: u64) -> String {
    let known: Vec<String> = KNOWN_TIMEOUTS
        .iter()
        .filter(|(t, _)| *t < silence)
        .map(|(t, who)| format!("{} ({who})", human(*t)))
        .collect();
    let mut s = "so it dies behind any NAT or firewall that forgets idle flows sooner".to_string();
    if !known.is_empty() {
        s.push_str(&format!(", e.g. after {}", known.join(", ")));
    }
    s
}

fn interval_check(interval: u64, tcp_keepalive: bool, kernel: u64, fix_hint: &str) -> Check {
    let advice = format!(
        "Set ServerAliveInterval {RECOMMENDED_INTERVAL} (and ServerAliveCountMax {RECOMMENDED_COUNT_MAX}): run `{fix_hint}`."
    );
    let id = "client.server_alive_interval";
    if interval == 0 {
        let summary = if tcp_keepalive {
            format!(
                "ServerAliveInterval 0 (off): an idle session sends nothing for {} (the kernel's TCP keepalive time), {}.",
                human(kernel),
                dies_behind(kernel)
            )
        } else {
            "ServerAliveInterval 0 (off) and TCPKeepAlive no: an idle session sends nothing at all; \
             it dies behind any NAT or firewall that forgets idle flows."
                .to_string()
        };
        return Check::new(id, Status::Problem, summary, advice);
    }
    if !interval_ok(interval) {
        return Check::new(
            id,
            Status::Problem,
            format!(
                "ServerAliveInterval {interval}: an idle session is silent for {}, {}.",
                human(interval),
                dies_behind(interval)
            ),
            advice,
        );
    }
    Check::new(
        id,
        Status::Ok,
        format!(
            "ServerAliveInterval {interval}: a keepalive every {}, so NATs that forget idle flows after more than {} keep the session.",
            human(interval),
            human(interval)
        ),
        "",
    )
}

fn count_check(interval: u64, count: u64, fix_hint: &str) -> Check {
    let id = "client.server_alive_count_max";
    if interval == 0 {
        return Check::new(
            id,
            Status::Info,
            format!("ServerAliveCountMax {count}: unused while ServerAliveInterval is 0."),
            "",
        );
    }
    let window = interval * count.max(1);
    if !count_ok(interval, count) {
        return Check::new(
            id,
            Status::Problem,
            format!(
                "ServerAliveCountMax {count}: ssh gives up after {} without an answer; a Wi-Fi hand-over or a short outage ends the session.",
                human(window)
            ),
            format!("Allow about a minute: ServerAliveCountMax {} (run `{fix_hint}`).", 60 / interval.min(60)),
        );
    }
    if window > LONG_DEAD_PEER_WINDOW {
        return Check::new(
            id,
            Status::Info,
            format!(
                "ServerAliveCountMax {count}: a dead connection is noticed only after {}; the terminal hangs meanwhile.",
                human(window)
            ),
            format!("ServerAliveCountMax {} would notice after about a minute.", (60 / interval).max(1)),
        );
    }
    Check::new(
        id,
        Status::Ok,
        format!(
            "ServerAliveCountMax {count}: a dead connection is noticed after about {}.",
            human(window)
        ),
        "",
    )
}

fn tcp_keepalive_check(on: bool, kernel: u64, interval: u64) -> Check {
    let id = "client.tcp_keepalive";
    if on {
        Check::new(
            id,
            Status::Info,
            format!(
                "TCPKeepAlive yes: the kernel probes only after {} idle, too late for NAT timeouts.",
                human(kernel)
            ),
            "Keepalives that matter come from ServerAliveInterval.",
        )
    } else if interval > 0 {
        Check::new(
            id,
            Status::Info,
            "TCPKeepAlive no: no kernel probes; ServerAliveInterval keeps the flow alive.",
            "",
        )
    } else {
        Check::new(
            id,
            Status::Info,
            "TCPKeepAlive no: no kernel probes either.",
            "",
        )
    }
}

fn connect_timeout_check(value: &str) -> Check {
    let id = "client.connect_timeout";
    match value.parse::<u64>() {
        Ok(secs) => Check::new(
            id,
            Status::Ok,
            format!("ConnectTimeout {secs}: an unreachable host fails after {}.", human(secs)),
            "",
        ),
        Err(_) => Check::new(
            id,
            Status::Info,
            "ConnectTimeout none: an unreachable host makes ssh wait for the kernel (about 2 min on Linux).",
            "ConnectTimeout 10 fails fast, which helps reconnect loops.",
        ),
    }
}

fn control_master_check(master: &str, persist: &str, interval: u64) -> Check {
    let id = "client.control_master";
    let sharing = !matches!(master, "false" | "no");
    if !sharing {
        return Check::new(
            id,
            Status::Info,
            "ControlMaster no: every ssh opens its own connection.",
            "",
        );
    }
    let persist = match persist {
        "no" | "false" => "ControlPersist no".to_string(),
        "yes" | "true" | "0" => "ControlPersist yes (forever)".to_string(),
        secs => match secs.parse::<u64>() {
            Ok(s) => format!("ControlPersist {}", human(s)),
            Err(_) => format!("ControlPersist {secs}"),
        },
    };
    let advice = if interval == 0 {
        "Sessions share one connection: when an idle NAT timeout kills it, all of them die, and new ones fail with mux_client errors until it is gone."
    } else {
        "Sessions share one connection, so they live and die together; keepalives protect all of them."
    };
    Check::new(
        id,
        Status::Info,
        format!("ControlMaster {master}, {persist}."),
        advice,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eff(text: &str) -> Effective {
        Effective::parse(text)
    }

    fn find<'a>(checks: &'a [Check], id: &str) -> &'a Check {
        checks.iter().find(|c| c.id == id).unwrap()
    }

    #[test]
    fn no_keepalive_is_a_problem_that_names_the_nat_timeout() {
        let c = checks(
            &eff("serveraliveinterval 0\nserveralivecountmax 3\ntcpkeepalive yes\n"),
            7200,
            "abide doctor h --fix",
        );
        let i = find(&c, "client.server_alive_interval");
        assert_eq!(i.status, Status::Problem);
        assert!(i.summary.contains("sends nothing for 2 h"), "{}", i.summary);
        assert!(
            i.summary.contains("e.g. after 60 s (some mobile"),
            "{}",
            i.summary
        );
        assert!(i.summary.contains("AWS NAT gateways"), "{}", i.summary);
        assert!(i.advice.contains("abide doctor h --fix"));
        assert_eq!(
            find(&c, "client.server_alive_count_max").status,
            Status::Info
        );
    }

    #[test]
    fn short_and_long_intervals() {
        let good = checks(
            &eff("serveraliveinterval 15\nserveralivecountmax 4\n"),
            7200,
            "x",
        );
        assert_eq!(
            find(&good, "client.server_alive_interval").status,
            Status::Ok
        );
        let cm = find(&good, "client.server_alive_count_max");
        assert_eq!(cm.status, Status::Ok);
        assert!(cm.summary.contains("about 60 s"), "{}", cm.summary);

        let slow = checks(
            &eff("serveraliveinterval 300\nserveralivecountmax 3\n"),
            7200,
            "x",
        );
        let i = find(&slow, "client.server_alive_interval");
        assert_eq!(i.status, Status::Problem);
        assert!(i.summary.contains("Azure"), "{}", i.summary);
        assert!(
            !i.summary.contains("AWS"),
            "350 s is longer than 300 s: {}",
            i.summary
        );
    }

    #[test]
    fn a_hair_trigger_count_is_a_problem() {
        let c = checks(
            &eff("serveraliveinterval 10\nserveralivecountmax 1\n"),
            7200,
            "x",
        );
        let cm = find(&c, "client.server_alive_count_max");
        assert_eq!(cm.status, Status::Problem);
        assert!(cm.advice.contains("ServerAliveCountMax 6"), "{}", cm.advice);
    }

    #[test]
    fn no_tcp_keepalive_and_no_interval_means_total_silence() {
        let c = checks(&eff("serveraliveinterval 0\ntcpkeepalive no\n"), 7200, "x");
        assert!(find(&c, "client.server_alive_interval")
            .summary
            .contains("nothing at all"));
    }

    #[test]
    fn control_master_and_connect_timeout_are_context() {
        let c = checks(
            &eff("serveraliveinterval 0\ncontrolmaster auto\ncontrolpersist 600\nconnecttimeout 10\n"),
            7200,
            "x",
        );
        let m = find(&c, "client.control_master");
        assert_eq!(m.status, Status::Info);
        assert_eq!(m.summary, "ControlMaster auto, ControlPersist 10 min.");
        assert!(m.advice.contains("all of them die"));
        assert_eq!(find(&c, "client.connect_timeout").status, Status::Ok);
    }
}
