//! A UDP reachability probe for `abide doctor HOST`: does a QUIC handshake
//! get through to abide's port range on the server, and how long is the round
//! trip?
//!
//! `abide server --probe-udp` runs over ssh: it binds a throwaway endpoint in
//! the same port range the daemon would use, prints one line with the port and
//! the certificate fingerprint, answers one handshake and exits. The client
//! pins the fingerprint exactly as a session does, so the probe says something
//! true about the path a session takes, firewall and NAT included. Nothing is
//! served over the connection: the handshake is the whole answer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::quic::{bind_server, client_endpoint, CERT_NAME};

/// First word of the probe's line in ssh's output.
pub const PROBE_TAG: &str = "ABIDE-UDP-PROBE";

/// What the probe line tells the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeLine {
    pub port: u16,
    pub fingerprint: String,
    /// The server's address as this ssh connection saw it (SSH_CONNECTION).
    pub server_ip: Option<String>,
}

impl ProbeLine {
    pub fn render(&self) -> String {
        format!(
            "{PROBE_TAG} {} {} {}",
            self.port,
            self.fingerprint,
            self.server_ip.as_deref().unwrap_or("-")
        )
    }

    pub fn parse(line: &str) -> Result<ProbeLine> {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 4 || f[0] != PROBE_TAG {
            bail!("malformed probe line from the server: {line:?}");
        }
        if f[2].len() != 64 || !f[2].bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("malformed certificate fingerprint in the probe line: {line:?}");
        }
        Ok(ProbeLine {
            port: f[1].parse().context("probe line: port")?,
            fingerprint: f[2].to_string(),
            server_ip: (f[3] != "-").then(|| f[3].to_string()),
        })
    }
}

/// The server half.
pub struct Responder {
    endpoint: quinn::Endpoint,
    pub port: u16,
    pub fingerprint: String,
}

impl Responder {
    pub fn bind(range: (u16, u16)) -> Result<Responder> {
        let (endpoint, port, fingerprint) = bind_server(range)?;
        Ok(Responder {
            endpoint,
            port,
            fingerprint,
        })
    }

    /// Waits up to `wait` for one handshake to complete; true when it did.
    /// Lingers until the client closes (at most 2 s) so that the client sees
    /// a clean close instead of a timeout.
    pub async fn answer_one(self, wait: Duration) -> bool {
        let answered = tokio::time::timeout(wait, async {
            while let Some(incoming) = self.endpoint.accept().await {
                let Ok(connecting) = incoming.accept() else {
                    continue;
                };
                if let Ok(conn) = connecting.await {
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        self.endpoint.close(0u32.into(), b"probe done");
        answered
    }
}

/// What the client measured.
#[derive(Debug, Clone, Copy)]
pub struct ProbeResult {
    /// From the first packet to the finished handshake.
    pub handshake: Duration,
    /// quinn's round-trip estimate once the handshake is done.
    pub rtt: Duration,
}

/// The client half: a pinned handshake to `addr`, given up after `limit`.
pub async fn probe(addr: SocketAddr, fingerprint: &str, limit: Duration) -> Result<ProbeResult> {
    let (endpoint, mismatch) = client_endpoint(addr, fingerprint)?;
    let started = Instant::now();
    let connecting = endpoint.connect(addr, CERT_NAME)?;
    let conn = match tokio::time::timeout(limit, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) if mismatch.load(std::sync::atomic::Ordering::SeqCst) => {
            bail!("the server's certificate is not the one the probe line named ({e})")
        }
        Ok(Err(e)) => bail!("QUIC handshake with {addr} failed: {e}"),
        Err(_) => bail!(
            "no reply on UDP port {} within {:.0} s",
            addr.port(),
            limit.as_secs_f64()
        ),
    };
    let result = ProbeResult {
        handshake: started.elapsed(),
        rtt: conn.rtt(),
    };
    conn.close(0u32.into(), b"probe done");
    endpoint.wait_idle().await;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_round_trips_and_rejects_garbage() {
        let l = ProbeLine {
            port: 60001,
            fingerprint: "ab".repeat(32),
            server_ip: Some("10.0.0.1".into()),
        };
        assert_eq!(ProbeLine::parse(&l.render()).unwrap(), l);
        let none = ProbeLine {
            server_ip: None,
            ..l.clone()
        };
        assert_eq!(ProbeLine::parse(&none.render()).unwrap(), none);
        assert!(ProbeLine::parse("ABIDE-UDP-PROBE 1 xyz -").is_err());
        assert!(ProbeLine::parse("ABIDE-UDP-PROBE 99999 ab -").is_err());
        assert!(ProbeLine::parse("hello").is_err());
    }

    #[tokio::test]
    async fn a_handshake_gets_through_on_loopback() {
        let r = Responder::bind((0, 0)).unwrap();
        let (port, fp) = (r.port, r.fingerprint.clone());
        let server = tokio::spawn(r.answer_one(Duration::from_secs(10)));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let res = probe(addr, &fp, Duration::from_secs(5)).await.unwrap();
        assert!(res.rtt < Duration::from_secs(1));
        assert!(server.await.unwrap(), "the responder saw the handshake");
    }

    #[tokio::test]
    async fn a_wrong_fingerprint_is_refused() {
        let r = Responder::bind((0, 0)).unwrap();
        let port = r.port;
        let _server = tokio::spawn(r.answer_one(Duration::from_secs(10)));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let err = probe(addr, &"00".repeat(32), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err:#}");
    }

    #[tokio::test]
    async fn silence_is_reported_not_waited_for_forever() {
        // A bound UDP socket that never answers.
        let quiet = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = quiet.local_addr().unwrap();
        let err = probe(addr, &"00".repeat(32), Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no reply"), "{err:#}");
    }
}
