//! Settings from `~/.config/abide/config.toml`, each overridable by an
//! environment variable (which is also how tests set small limits).

use serde::Deserialize;

use crate::proto::outlog::DEFAULT_CAPACITY;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Output log per session, bytes (`ABIDE_RING_BYTES`).
    pub ring_bytes: usize,
    /// Scrollback lines kept by the terminal model for snapshots (`ABIDE_SCROLLBACK_LINES`).
    pub scrollback_lines: usize,
    /// UDP ports for the QUIC endpoint, inclusive, as mosh uses (`ABIDE_UDP_PORTS=lo-hi`).
    pub udp_ports: (u16, u16),
    /// Silence after activity that marks a detached session "quiet", like
    /// tmux's monitor-silence: `quiet_after = "30s"`, `"off"` (`ABIDE_QUIET_AFTER`).
    #[serde(deserialize_with = "de_duration")]
    pub quiet_after: Option<std::time::Duration>,
    /// End sessions detached this long: `expire_detached = "7d"`; off unless
    /// set (`ABIDE_EXPIRE_DETACHED`).
    #[serde(deserialize_with = "de_duration")]
    pub expire_detached: Option<std::time::Duration>,
}

/// `"30s"`, `"7d"`, or `"off"`.
fn parse_opt_duration(s: &str) -> Result<Option<std::time::Duration>, String> {
    match s.trim() {
        "off" | "never" | "" => Ok(None),
        d => crate::server::attention::parse_duration(d).map(Some),
    }
}

fn de_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_opt_duration(&s).map_err(serde::de::Error::custom)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ring_bytes: DEFAULT_CAPACITY,
            scrollback_lines: 10_000,
            udp_ports: (60001, 61000),
            quiet_after: Some(std::time::Duration::from_secs(30)),
            expire_detached: None,
        }
    }
}

impl Config {
    pub fn load() -> anyhow::Result<Config> {
        use anyhow::Context;
        let mut cfg = match crate::paths::config_file() {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("bad config in {}", path.display()))?
            }
            _ => Config::default(),
        };
        if let Some(v) = env_parse::<usize>("ABIDE_RING_BYTES")? {
            cfg.ring_bytes = v.max(1024);
        }
        if let Some(v) = env_parse::<usize>("ABIDE_SCROLLBACK_LINES")? {
            cfg.scrollback_lines = v;
        }
        if let Ok(v) = std::env::var("ABIDE_QUIET_AFTER") {
            cfg.quiet_after = parse_opt_duration(&v).map_err(anyhow::Error::msg)?;
        }
        if let Ok(v) = std::env::var("ABIDE_EXPIRE_DETACHED") {
            cfg.expire_detached = parse_opt_duration(&v).map_err(anyhow::Error::msg)?;
        }
        if let Ok(v) = std::env::var("ABIDE_UDP_PORTS") {
            cfg.udp_ports = parse_port_range(&v)?;
        }
        Ok(cfg)
    }
}

fn env_parse<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a valid number")),
        Err(_) => Ok(None),
    }
}

/// `60001-61000` or `60001:61000` or a single port.
pub fn parse_port_range(s: &str) -> anyhow::Result<(u16, u16)> {
    let bad = || anyhow::anyhow!("{s:?} is not a UDP port range like 60001-61000");
    let (lo, hi) = match s.split_once(['-', ':']) {
        Some((a, b)) => (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        ),
        None => {
            let p = s.trim().parse().map_err(|_| bad())?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    #[test]
    fn port_ranges() {
        assert_eq!(
            super::parse_port_range("60001-61000").unwrap(),
            (60001, 61000)
        );
        assert_eq!(super::parse_port_range("0").unwrap(), (0, 0));
        assert!(super::parse_port_range("9-3").is_err());
        assert!(super::parse_port_range("x").is_err());
    }
}
