//! Memory of which transport worked, per host AND local network
//! (`~/.cache/abide/transports.toml`). It is only a hint for the link policy
//! (whether ssh waits out QUIC's head start); both transports are raced on
//! every connect anyway, so a stale entry costs nothing but a moment on ssh.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;

use crate::proto::policy::Transport;

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Default, Debug)]
struct Memory {
    #[serde(default)]
    hosts: BTreeMap<String, Entry>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Entry {
    /// "udp" or "ssh".
    pub transport: String,
    /// Unix seconds.
    pub at: u64,
}

/// How long a hint is kept.
const TRUST_SECS: u64 = 7 * 24 * 3600;

/// The local network used to reach `to`: the source address the kernel
/// picks for it, as a /24 (IPv4) or /64 (IPv6) prefix. No packet is sent.
pub fn network_of(to: SocketAddr) -> Option<String> {
    let bind: SocketAddr = if to.is_ipv6() {
        "[::]:0".parse().ok()?
    } else {
        "0.0.0.0:0".parse().ok()?
    };
    let sock = UdpSocket::bind(bind).ok()?;
    sock.connect(to).ok()?;
    Some(match sock.local_addr().ok()?.ip() {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    })
}

fn key(host: &str, network: &str) -> String {
    format!("{host} via {network}")
}

fn name(t: Transport) -> &'static str {
    match t {
        Transport::Ssh => "ssh",
        _ => "udp",
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The memory file. A value rather than a global so that tests keep theirs
/// in their own directory.
#[derive(Debug, Clone)]
pub struct TransportMemory {
    path: Option<PathBuf>,
}

impl TransportMemory {
    /// `transports.toml` in abide's cache directory (`ABIDE_CACHE_DIR`,
    /// else `~/.cache/abide`); without one, nothing is remembered.
    pub fn default_location() -> Self {
        TransportMemory {
            path: crate::paths::cache_dir()
                .ok()
                .map(|d| d.join("transports.toml")),
        }
    }

    pub fn at(path: PathBuf) -> Self {
        TransportMemory { path: Some(path) }
    }

    fn load(&self) -> Memory {
        self.path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| toml::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// What was last recorded for `host` from `network`, if anything.
    pub fn get(&self, host: &str, network: &str) -> Option<Entry> {
        self.load().hosts.get(&key(host, network)).cloned()
    }

    /// The hint for `host` from `network`: the transport that worked last
    /// time, if recent.
    pub fn hint(&self, host: &str, network: &str) -> Option<Transport> {
        let e = self.get(host, network)?;
        if now().saturating_sub(e.at) >= TRUST_SECS {
            return None;
        }
        Some(if e.transport == "ssh" {
            Transport::Ssh
        } else {
            Transport::Quic
        })
    }

    /// Records what worked; failures to write the cache are not worth an error.
    pub fn remember(&self, host: &str, network: &str, transport: Transport) {
        let Some(p) = &self.path else { return };
        let mut m = self.load();
        let k = key(host, network);
        if m.hosts.get(&k).map(|e| e.transport.as_str()) == Some(name(transport)) {
            return;
        }
        m.hosts.insert(
            k,
            Entry {
                transport: name(transport).to_string(),
                at: now(),
            },
        );
        if let Ok(text) = toml::to_string(&m) {
            let _ = crate::paths::write_private(p, text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn remembers_per_host_and_network_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("transports.toml");
        let m = TransportMemory::at(file.clone());
        assert_eq!(m.hint("a", "net1"), None);
        m.remember("a", "net1", Transport::Ssh);
        m.remember("b", "net1", Transport::Quic);
        assert_eq!(m.hint("a", "net1"), Some(Transport::Ssh));
        // Another network (home, not the cafe): no hint.
        assert_eq!(m.hint("a", "net2"), None);
        assert_eq!(m.hint("b", "net1"), Some(Transport::Quic));
        // A later record replaces the earlier one.
        m.remember("a", "net1", Transport::Quic);
        assert_eq!(m.hint("a", "net1"), Some(Transport::Quic));
        assert_eq!(m.get("b", "net1").unwrap().transport, "udp");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_damaged_file_is_no_memory_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("transports.toml");
        std::fs::write(&file, "not [ toml").unwrap();
        let m = TransportMemory::at(file);
        assert_eq!(m.hint("a", "n"), None);
        m.remember("a", "n", Transport::Ssh);
        assert_eq!(m.hint("a", "n"), Some(Transport::Ssh));
    }

    #[test]
    fn the_network_is_the_source_prefix() {
        let n = network_of("127.0.0.1:9".parse().unwrap()).unwrap();
        assert_eq!(n, "127.0.0.0/24");
    }
}
