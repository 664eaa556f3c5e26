//! The effective client configuration, as ssh itself computes it (`ssh -G`).
//! Reading it this way means Include, Match, Host patterns, defaults and the
//! system-wide file are all handled by the one implementation that matters.

use std::collections::BTreeMap;

use super::ssh::Ssh;

#[derive(Debug, Default, Clone)]
pub struct Effective {
    values: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SshGError {
    #[error("could not run `{program} -G` ({source}); install OpenSSH or pass --ssh")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{program} -G {host}` failed: {reason}")]
    Failed {
        program: String,
        host: String,
        reason: String,
    },
}

impl Effective {
    /// `ssh -G` prints one `keyword value` per line, keywords in lower case;
    /// repeatable keywords (IdentityFile, LocalForward, …) appear several times.
    pub fn parse(text: &str) -> Effective {
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (k, v) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            values
                .entry(k.to_ascii_lowercase())
                .or_default()
                .push(v.trim().to_string());
        }
        Effective { values }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(&key.to_ascii_lowercase())
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// A numeric value; `none` / `no` (how ssh -G prints "unset") read as None.
    pub fn number(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|v| v.parse().ok())
    }
}

pub fn read(ssh: &Ssh, host: &str) -> Result<Effective, SshGError> {
    let out = ssh
        .command()
        .arg("-G")
        .arg("--")
        .arg(host)
        .output()
        .map_err(|source| SshGError::Spawn {
            program: ssh.program().to_string(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let eff = Effective::parse(&stdout);
    if !out.status.success() || eff.get("serveraliveinterval").is_none() {
        let reason = match super::ssh::last_line(&stderr) {
            "" if out.status.success() => "its output has no serveraliveinterval line".to_string(),
            "" => format!("it exited with {}", out.status),
            line => line.to_string(),
        };
        return Err(SshGError::Failed {
            program: ssh.program().to_string(),
            host: host.to_string(),
            reason,
        });
    }
    Ok(eff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_first_value_and_numbers() {
        let e = Effective::parse(
            "host foo\nserveraliveinterval 30\nidentityfile ~/.ssh/a\nidentityfile ~/.ssh/b\nconnecttimeout none\n",
        );
        assert_eq!(e.number("ServerAliveInterval"), Some(30));
        assert_eq!(e.get("identityfile"), Some("~/.ssh/a"));
        assert_eq!(e.number("connecttimeout"), None);
        assert_eq!(e.get("connecttimeout"), Some("none"));
        assert_eq!(e.get("missing"), None);
        assert_eq!(Effective::parse("").get("serveraliveinterval"), None);
    }
}
