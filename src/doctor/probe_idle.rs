//! `--probe-idle`: measure how long the path to a host keeps an idle flow.
//!
//! Several ssh connections are opened at once, each running `cat` on the
//! server as an echo. Keepalives are switched off for them (ServerAliveInterval
//! 0, TCPKeepAlive no, no connection sharing), so nothing crosses the path
//! until, after its idle time, each flow sends one line and waits for the echo.
//! A NAT or firewall that forgot the flow either resets it (ssh exits) or drops
//! the line silently (no echo within REPLY_TIMEOUT).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::report::{Check, Status};
use super::ssh::{last_line, Ssh};
use super::timefmt::human;

pub const DEFAULT_DURATIONS: [u64; 4] = [30, 60, 120, 300];
/// Overrides the durations (comma-separated seconds), like the hidden flag.
pub const ENV_DURATIONS: &str = "ABIDE_PROBE_IDLE_DURATIONS";
/// A live path echoes within milliseconds; 10 s also covers a slow server.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// ConnectTimeout (10 s) plus authentication.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// From the flag, else the environment, else 30, 60, 120, 300 s.
pub fn durations(flag: &[u64]) -> anyhow::Result<Vec<u64>> {
    let mut d = if !flag.is_empty() {
        flag.to_vec()
    } else if let Ok(v) = std::env::var(ENV_DURATIONS) {
        v.split(',')
            .map(|s| s.trim().parse::<u64>())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{ENV_DURATIONS}={v:?}: expected seconds like 30,60,120"))?
    } else {
        DEFAULT_DURATIONS.to_vec()
    };
    d.sort_unstable();
    d.dedup();
    if d.is_empty() || d[0] == 0 {
        bail!("idle probe durations must be whole seconds above 0");
    }
    Ok(d)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    Survived,
    Dropped(String),
    NotOpened(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct FlowResult {
    pub idle_secs: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Runs one flow per duration, all at once, with a progress bar on stderr
/// (indicatif hides it when stderr is not a terminal).
pub fn run(ssh: &Ssh, host: &str, durations: &[u64]) -> Vec<FlowResult> {
    let longest = *durations.iter().max().unwrap_or(&0);
    let bar = ProgressBar::new(longest);
    bar.set_style(
        ProgressStyle::with_template("{spinner} idle probe [{bar:30}] {pos}/{len} s  {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let (tx, rx) = mpsc::channel();
    for (i, &secs) in durations.iter().enumerate() {
        let (ssh, host, tx) = (ssh.clone(), host.to_string(), tx.clone());
        std::thread::spawn(move || {
            let outcome = flow(&ssh, &host, Duration::from_secs(secs));
            let _ = tx.send((i, outcome));
        });
    }
    drop(tx);
    let mut results: Vec<Option<Outcome>> = vec![None; durations.len()];
    let start = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((i, o)) => results[i] = Some(o),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        bar.set_position(start.elapsed().as_secs().min(longest));
        bar.set_message(progress_message(durations, &results));
        bar.tick();
    }
    bar.finish_and_clear();
    durations
        .iter()
        .zip(results)
        .map(|(&idle_secs, o)| FlowResult {
            idle_secs,
            outcome: o.unwrap_or_else(|| Outcome::NotOpened("the probe thread ended early".into())),
        })
        .collect()
}

fn progress_message(durations: &[u64], results: &[Option<Outcome>]) -> String {
    durations
        .iter()
        .zip(results)
        .map(|(d, r)| {
            let mark = match r {
                None => "…",
                Some(Outcome::Survived) => "✓",
                Some(_) => "✗",
            };
            format!("{} {mark}", human(*d))
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// Kills the ssh child however the flow ends.
struct Reaper(Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn flow(ssh: &Ssh, host: &str, idle: Duration) -> Outcome {
    let mut cmd = ssh.batch(
        host,
        &[
            "ServerAliveInterval=0",
            "TCPKeepAlive=no",
            "ControlMaster=no",
            "ControlPath=none",
        ],
        &["cat"],
    );
    let child = match cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Outcome::NotOpened(format!("could not run {}: {e}", ssh.program())),
    };
    let mut child = Reaper(child);
    let mut stdin = child.0.stdin.take().expect("piped");
    let stdout = child.0.stdout.take().expect("piped");
    let mut stderr = child.0.stderr.take().expect("piped");
    let (line_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_text = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let why_closed = |child: &mut Reaper| {
        let _ = child.0.kill();
        let _ = child.0.wait();
        err_text
            .join()
            .ok()
            .map(|t| last_line(&t).to_string())
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| "ssh exited".to_string())
    };

    if writeln!(stdin, "abide-probe open")
        .and_then(|()| stdin.flush())
        .is_err()
    {
        return Outcome::NotOpened(why_closed(&mut child));
    }
    match lines.recv_timeout(OPEN_TIMEOUT) {
        Ok(_) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => {
            return Outcome::NotOpened(format!("no echo within {} s", OPEN_TIMEOUT.as_secs()))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            return Outcome::NotOpened(why_closed(&mut child))
        }
    }
    std::thread::sleep(idle);
    let sent =
        writeln!(stdin, "abide-probe after {} s", idle.as_secs()).and_then(|()| stdin.flush());
    if sent.is_err() {
        return Outcome::Dropped(why_closed(&mut child));
    }
    match lines.recv_timeout(REPLY_TIMEOUT) {
        Ok(_) => Outcome::Survived,
        Err(mpsc::RecvTimeoutError::Timeout) => Outcome::Dropped(format!(
            "no echo within {} s: the path dropped the flow silently",
            REPLY_TIMEOUT.as_secs()
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => Outcome::Dropped(why_closed(&mut child)),
    }
}

/// Judges the measurement against the keepalive interval in effect.
pub fn check(
    host: &str,
    results: &[FlowResult],
    interval: u64,
    server_interval: Option<u64>,
) -> Check {
    let id = "path.idle_timeout";
    let opened: Vec<&FlowResult> = results
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::NotOpened(_)))
        .collect();
    if opened.is_empty() {
        let reason = results
            .iter()
            .find_map(|r| match &r.outcome {
                Outcome::NotOpened(why) => Some(why.as_str()),
                _ => None,
            })
            .unwrap_or("no durations");
        return Check::new(
            id,
            Status::Problem,
            format!("Idle probe: could not open a flow to {host}: {reason}."),
            format!("The probe needs `ssh -o BatchMode=yes {host} cat` to work without a prompt."),
        );
    }
    let survived = opened
        .iter()
        .filter(|r| r.outcome == Outcome::Survived)
        .map(|r| r.idle_secs)
        .max();
    let dropped = opened
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Dropped(_)))
        .map(|r| r.idle_secs)
        .min();
    let mut advice = match server_interval {
        Some(s) if s > 0 => format!(
            "sshd on {host} sends keepalives every {}, so flows idle longer than that were not fully silent.",
            human(s)
        ),
        _ => String::new(),
    };
    let Some(dropped) = dropped else {
        let longest = survived.unwrap_or(0);
        return Check::new(
            id,
            Status::Ok,
            format!(
                "Idle probe: flows to {host} survived {} idle (the longest tested).",
                human(longest)
            ),
            advice,
        );
    };
    let summary = match survived {
        Some(s) if s < dropped => format!(
            "Idle probe: flows to {host} survived {} idle but not {}: the path forgets idle flows after {}–{}.",
            human(s),
            human(dropped),
            human(s),
            human(dropped)
        ),
        Some(s) => format!(
            "Idle probe: inconsistent: a flow survived {} idle but another died after {}; the path is flaky.",
            human(s),
            human(dropped)
        ),
        None => format!(
            "Idle probe: even {} idle was too long: the path to {host} forgets idle flows sooner.",
            human(dropped)
        ),
    };
    let safe_below = survived.filter(|s| *s < dropped).unwrap_or(0);
    let covered =
        interval > 0 && (interval <= safe_below || (safe_below == 0 && interval < dropped / 2));
    let status = if covered { Status::Ok } else { Status::Problem };
    let own = if covered {
        format!("ServerAliveInterval {interval} keeps sessions alive on this path.")
    } else {
        let target = if safe_below > 0 {
            safe_below.min(super::client::RECOMMENDED_INTERVAL)
        } else {
            (dropped / 3).max(5)
        };
        format!(
            "Set ServerAliveInterval {target} or less for {host} (`abide doctor {host} --fix`)."
        )
    };
    advice = if advice.is_empty() {
        own
    } else {
        format!("{own} {advice}")
    };
    Check::new(id, status, summary, advice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(idle: u64, o: Outcome) -> FlowResult {
        FlowResult {
            idle_secs: idle,
            outcome: o,
        }
    }

    #[test]
    fn durations_default_flag_and_validation() {
        assert_eq!(durations(&[5, 1, 5]).unwrap(), [1, 5]);
        assert!(durations(&[0]).is_err());
    }

    #[test]
    fn a_nat_between_60_and_120_seconds() {
        let res = [
            r(30, Outcome::Survived),
            r(60, Outcome::Survived),
            r(120, Outcome::Dropped("Broken pipe".into())),
            r(300, Outcome::Dropped("Broken pipe".into())),
        ];
        let bad = check("h", &res, 0, None);
        assert_eq!(bad.status, Status::Problem);
        assert!(
            bad.summary.contains("survived 60 s idle but not 2 min"),
            "{}",
            bad.summary
        );
        assert!(
            bad.advice.contains("ServerAliveInterval 15"),
            "{}",
            bad.advice
        );
        let good = check("h", &res, 15, Some(0));
        assert_eq!(good.status, Status::Ok);
        let too_slow = check("h", &res, 90, None);
        assert_eq!(too_slow.status, Status::Problem);
    }

    #[test]
    fn everything_survived_or_nothing_opened() {
        let all = [r(30, Outcome::Survived), r(300, Outcome::Survived)];
        let c = check("h", &all, 0, Some(60));
        assert_eq!(c.status, Status::Ok);
        assert!(c.summary.contains("5 min"));
        assert!(c.advice.contains("sshd on h sends keepalives every 60 s"));
        let none = [r(
            30,
            Outcome::NotOpened("Permission denied (publickey).".into()),
        )];
        let c = check("h", &none, 15, None);
        assert_eq!(c.status, Status::Problem);
        assert!(c.summary.contains("Permission denied"));
    }

    #[test]
    fn even_the_shortest_died() {
        let res = [
            r(30, Outcome::Dropped("x".into())),
            r(60, Outcome::Dropped("x".into())),
        ];
        let c = check("h", &res, 0, None);
        assert_eq!(c.status, Status::Problem);
        assert!(c.summary.contains("even 30 s"));
        assert!(c.advice.contains("ServerAliveInterval 10"), "{}", c.advice);
    }
}
