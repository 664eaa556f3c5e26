//! The bootstrap's connect line: the one line `abide server --bootstrap`
//! prints over ssh, which carries everything a client needs to reach the
//! session over QUIC (port, certificate fingerprint, grant id and secret).
//! Client and server both speak it, so it lives in the core: a wire format,
//! parsed without trusting whatever else a login script prints.

use crate::frame::PROTOCOL_VERSION;

/// First word of the bootstrap line; lets the client find it among whatever a
/// login script prints.
pub const LINE_TAG: &str = "ABIDE-CONNECT";

/// Why a connect line was not accepted. The version mismatch is the one a
/// user can act on, so it says what to do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnectLineError {
    #[error("malformed bootstrap line from the server: {0:?}")]
    Malformed(String),
    #[error("bootstrap line: bad {0}")]
    Field(&'static str),
    #[error("protocol version mismatch: the remote abide speaks {peer}, this one speaks {PROTOCOL_VERSION}; leave out --server and --no-deploy so that abide installs its own version there, or install the same version on both ends")]
    VersionMismatch { peer: u32 },
}

/// The parsed bootstrap line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectLine {
    pub version: u32,
    pub port: u16,
    pub fingerprint: String,
    pub grant_id: [u8; 16],
    pub secret: [u8; 32],
    pub session_id: u64,
    pub session_name: String,
    /// The server's address as this ssh connection saw it (from SSH_CONNECTION).
    pub server_ip: Option<String>,
}

impl ConnectLine {
    pub fn render(&self) -> String {
        format!(
            "{LINE_TAG} {} {} {} {} {} {} {} {}",
            self.version,
            self.port,
            self.fingerprint,
            hex::encode(self.grant_id),
            hex::encode(self.secret),
            self.session_id,
            self.server_ip.as_deref().unwrap_or("-"),
            self.session_name,
        )
    }

    /// Finds and parses the line in ssh's output.
    pub fn find(output: &str) -> Option<Result<ConnectLine, ConnectLineError>> {
        let line = output
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with(LINE_TAG))?;
        Some(Self::parse(line.trim()))
    }

    fn parse(line: &str) -> Result<ConnectLine, ConnectLineError> {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() != 9 || f[0] != LINE_TAG {
            return Err(ConnectLineError::Malformed(
                line.chars().take(200).collect(),
            ));
        }
        let version: u32 = f[1]
            .parse()
            .map_err(|_| ConnectLineError::Field("version"))?;
        if version != PROTOCOL_VERSION {
            return Err(ConnectLineError::VersionMismatch { peer: version });
        }
        let mut grant_id = [0u8; 16];
        hex::decode_to_slice(f[4], &mut grant_id)
            .map_err(|_| ConnectLineError::Field("grant id"))?;
        let mut secret = [0u8; 32];
        hex::decode_to_slice(f[5], &mut secret).map_err(|_| ConnectLineError::Field("secret"))?;
        Ok(ConnectLine {
            version,
            port: f[2].parse().map_err(|_| ConnectLineError::Field("port"))?,
            fingerprint: f[3].to_string(),
            grant_id,
            secret,
            session_id: f[6]
                .parse()
                .map_err(|_| ConnectLineError::Field("session id"))?,
            server_ip: (f[7] != "-").then(|| f[7].to_string()),
            session_name: f[8].to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_round_trips_through_noise() {
        let l = ConnectLine {
            version: PROTOCOL_VERSION,
            port: 60001,
            fingerprint: "ab".repeat(32),
            grant_id: [1; 16],
            secret: [2; 32],
            session_id: 77,
            session_name: "work".into(),
            server_ip: Some("10.0.0.1".into()),
        };
        let out = format!("Welcome to host\nlast login: x\n{}\n", l.render());
        assert_eq!(ConnectLine::find(&out).unwrap().unwrap(), l);
        assert!(ConnectLine::find("nothing here").is_none());
        let v = PROTOCOL_VERSION;
        let other = l.render().replacen(&format!(" {v} "), " 99 ", 1);
        let err = ConnectLine::find(&other).unwrap().unwrap_err().to_string();
        assert!(err.contains("version mismatch"), "{err}");
    }
}
