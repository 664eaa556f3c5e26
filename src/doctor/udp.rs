//! Whether UDP reaches the server, for abide's QUIC transport.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::report::{Check, Status};
use super::ssh::Ssh;
use crate::transport::quic_probe::{self, ProbeLine, PROBE_TAG};

/// The result of a short QUIC/UDP round trip to the server.
#[derive(Debug, Clone)]
pub struct UdpProbe {
    /// A reply came back.
    pub reachable: bool,
    pub rtt: Option<Duration>,
    /// Port probed, error text, or whatever else is worth a line.
    pub detail: String,
}

/// How long the server may take to print its probe line (ssh login included).
const LINE_WAIT: Duration = Duration::from_secs(20);
/// How long a handshake may take once the server listens. A session's own
/// handshake attempts give up after 3 s too.
const HANDSHAKE_WAIT: Duration = Duration::from_secs(3);

/// Probes UDP to `host` the way a session would: `abide server --probe-udp`
/// (at `abide`, the path the server checks found) over ssh listens in the
/// server's UDP port range, and a QUIC handshake pinned to its certificate
/// either gets through or not. `Err` is the reason nothing could be probed.
pub fn probe_udp(ssh: &Ssh, host: &str, abide: &str) -> Result<UdpProbe, String> {
    let remote = format!(
        "{} server --probe-udp",
        crate::client::remote::sh_quote(abide)
    );
    let mut cmd = ssh.batch(host, &[], &[&remote]);
    // Its own process group: a stuck ssh (and its ProxyCommand) can be ended.
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not run `{}`: {e}", ssh.program()))?;
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + LINE_WAIT;
    let line = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(Ok(l)) if l.trim_start().starts_with(PROBE_TAG) => break Some(l),
            Ok(Ok(_)) => continue,
            _ => break None,
        }
    };
    let result = match line {
        Some(line) => handshake(host, &line),
        None => {
            end(&mut child);
            let err = stderr.join().unwrap_or_default();
            Err(no_line_reason(host, &err))
        }
    };
    end(&mut child);
    result
}

fn handshake(host: &str, line: &str) -> Result<UdpProbe, String> {
    let line = ProbeLine::parse(line.trim()).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    rt.block_on(async {
        let addr = crate::client::remote::resolve_udp(host, line.server_ip.as_deref(), line.port)
            .await
            .map_err(|e| format!("{e:#}"))?;
        Ok(
            match quic_probe::probe(addr, &line.fingerprint, HANDSHAKE_WAIT).await {
                Ok(r) => UdpProbe {
                    reachable: true,
                    rtt: Some(r.rtt),
                    detail: format!(
                        "QUIC handshake with {addr} in {:.0} ms",
                        r.handshake.as_secs_f64() * 1000.0
                    ),
                },
                Err(e) => UdpProbe {
                    reachable: false,
                    rtt: None,
                    detail: format!("{e:#}"),
                },
            },
        )
    })
}

/// Why the server printed no probe line, from what ssh said.
fn no_line_reason(host: &str, stderr: &str) -> String {
    if stderr.contains("--probe-udp") {
        return format!("the abide on {host} is too old to answer the probe");
    }
    match super::ssh::last_line(stderr) {
        "" => format!("the abide on {host} printed no probe line"),
        reason => reason.to_string(),
    }
}

/// Stops ssh if it is still running (it exits by itself after the probe).
fn end(child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    super::ssh::kill_group(child);
}

pub fn check(host: &str, probe: Result<UdpProbe, String>) -> Check {
    let id = "path.udp";
    match probe {
        Err(reason) => Check::new(id, Status::Info, format!("UDP not probed: {reason}."), ""),
        Ok(p) if p.reachable => {
            let rtt = p
                .rtt
                .map(|d| format!(", round trip {:.1} ms", d.as_secs_f64() * 1000.0))
                .unwrap_or_default();
            Check::new(id, Status::Ok, format!("UDP reaches {host}{rtt} ({}).", p.detail), "")
        }
        Ok(p) => Check::new(
            id,
            Status::Problem,
            format!("UDP does not reach {host} ({}).", p.detail),
            "abide carries on over its ssh transport (it still resumes, in about a second instead of a tenth); open UDP 60001-61000 on the server's firewall for the fastest recovery.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_probe_is_neutral() {
        let c = check("example.com", Err("abide is not installed there".into()));
        assert_eq!(c.status, Status::Info);
        assert_eq!(c.summary, "UDP not probed: abide is not installed there.");
    }

    #[test]
    fn probe_results_are_judged() {
        let ok = UdpProbe {
            reachable: true,
            rtt: Some(Duration::from_micros(12_340)),
            detail: "port 4433".into(),
        };
        let c = check("h", Ok(ok));
        assert_eq!(c.status, Status::Ok);
        assert!(c.summary.contains("12.3 ms"));
        let bad = UdpProbe {
            reachable: false,
            rtt: None,
            detail: "no reply from port 4433".into(),
        };
        assert_eq!(check("h", Ok(bad)).status, Status::Problem);
    }
}
