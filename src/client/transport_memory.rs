//! Per-host memory of which transport worked (`~/.cache/abide/transports.toml`),
//! so that a host behind a UDP-blocking network does not cost a handshake
//! timeout on every connect.

use std::collections::BTreeMap;
use std::path::PathBuf;

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

/// How long an "ssh only" verdict is trusted before UDP gets a fresh chance up front.
const TRUST_SECS: u64 = 7 * 24 * 3600;

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

    /// What was last recorded for `host`, if anything.
    pub fn get(&self, host: &str) -> Option<Entry> {
        self.load().hosts.get(host).cloned()
    }

    /// Whether the last verdict for `host` was "ssh only", and recent.
    pub fn prefers_ssh(&self, host: &str) -> bool {
        self.get(host)
            .is_some_and(|e| e.transport == "ssh" && now().saturating_sub(e.at) < TRUST_SECS)
    }

    /// Records what worked; failures to write the cache are not worth an error.
    pub fn remember(&self, host: &str, transport: &str) {
        let Some(p) = &self.path else { return };
        let mut m = self.load();
        if m.hosts.get(host).map(|e| e.transport.as_str()) == Some(transport) {
            return;
        }
        m.hosts.insert(
            host.to_string(),
            Entry {
                transport: transport.to_string(),
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
    fn remembers_per_host_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("transports.toml");
        let m = TransportMemory::at(file.clone());
        assert!(!m.prefers_ssh("a"));
        m.remember("a", "ssh");
        m.remember("b", "udp");
        assert!(m.prefers_ssh("a"));
        assert!(!m.prefers_ssh("b"));
        // A later verdict replaces the earlier one.
        m.remember("a", "udp");
        assert!(!m.prefers_ssh("a"));
        assert_eq!(m.get("b").unwrap().transport, "udp");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_damaged_file_is_no_memory_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("transports.toml");
        std::fs::write(&file, "not [ toml").unwrap();
        let m = TransportMemory::at(file);
        assert!(!m.prefers_ssh("a"));
        m.remember("a", "ssh");
        assert!(m.prefers_ssh("a"));
    }
}
