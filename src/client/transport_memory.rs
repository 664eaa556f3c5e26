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

fn path() -> Option<PathBuf> {
    crate::paths::cache_dir()
        .ok()
        .map(|d| d.join("transports.toml"))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn load() -> Memory {
    path()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| toml::from_str(&t).ok())
        .unwrap_or_default()
}

/// Whether the last verdict for `host` was "ssh only", and recent.
pub fn prefers_ssh(host: &str) -> bool {
    load()
        .hosts
        .get(host)
        .is_some_and(|e| e.transport == "ssh" && now().saturating_sub(e.at) < TRUST_SECS)
}

/// Records what worked; failures to write the cache are not worth an error.
pub fn remember(host: &str, transport: &str) {
    let Some(p) = path() else { return };
    let mut m = load();
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
        let _ = crate::paths::write_private(&p, text.as_bytes());
    }
}
