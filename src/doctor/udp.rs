//! Whether UDP reaches the server, for abide's QUIC transport.

use std::time::Duration;

use super::report::{Check, Status};

/// The result of a short QUIC/UDP round trip to the server.
#[derive(Debug, Clone)]
pub struct UdpProbe {
    /// A reply came back.
    pub reachable: bool,
    pub rtt: Option<Duration>,
    /// Port probed, error text, or whatever else is worth a line.
    pub detail: String,
}

/// Probes UDP to `host` with abide's transport. The transport is built
/// separately; until it is wired in here this returns `None`, which the
/// doctor reports as a neutral "not available in this build" line.
pub fn probe_udp(host: &str) -> Option<UdpProbe> {
    let _ = host;
    None
}

pub fn check(host: &str, probe: Option<UdpProbe>) -> Check {
    let id = "path.udp";
    match probe {
        None => Check::new(id, Status::Info, "UDP probe: not available in this build.", ""),
        Some(p) if p.reachable => {
            let rtt = p
                .rtt
                .map(|d| format!(", round trip {:.1} ms", d.as_secs_f64() * 1000.0))
                .unwrap_or_default();
            Check::new(id, Status::Ok, format!("UDP reaches {host}{rtt} ({}).", p.detail), "")
        }
        Some(p) => Check::new(
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
    fn unavailable_probe_is_neutral() {
        assert!(probe_udp("example.com").is_none());
        let c = check("example.com", None);
        assert_eq!(c.status, Status::Info);
        assert_eq!(c.summary, "UDP probe: not available in this build.");
    }

    #[test]
    fn probe_results_are_judged() {
        let ok = UdpProbe {
            reachable: true,
            rtt: Some(Duration::from_micros(12_340)),
            detail: "port 4433".into(),
        };
        let c = check("h", Some(ok));
        assert_eq!(c.status, Status::Ok);
        assert!(c.summary.contains("12.3 ms"));
        let bad = UdpProbe {
            reachable: false,
            rtt: None,
            detail: "no reply from port 4433".into(),
        };
        assert_eq!(check("h", Some(bad)).status, Status::Problem);
    }
}
